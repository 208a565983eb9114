//! Scalar dot products of a weight row with an activation row in its paired 8-bit format
//! (ggml's `ggml_vec_dot_*_generic`). Integer sums are exact; the float steps follow ggml's order
//! closely enough that optimised kernels can be held to float-rounding tolerances against them.
//!
//! Every function takes `n` (elements), the weight row's bytes `x` and the activation row's bytes `y`.

use crate::blocks::*;
use crate::reference::{get_scale_min_k4, q3_k_scales, q6_k_values};
use bytemuck::cast_slice;
use half::{bf16, f16};

pub fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f32] = cast_slice(&x[..n * 4]);
    let y: &[f32] = cast_slice(&y[..n * 4]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i] * y[i]) as f64;
    }
    s as f32
}

pub fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f16] = cast_slice(&x[..n * 2]);
    let y: &[f16] = cast_slice(&y[..n * 2]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    s as f32
}

pub fn vec_dot_bf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[bf16] = cast_slice(&x[..n * 2]);
    let y: &[bf16] = cast_slice(&y[..n * 2]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    s as f32
}

pub fn vec_dot_q4_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ4_0] = cast_slice(&x[..nb * 18]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = (a.qs[j] & 0x0F) as i32 - 8;
            let v1 = (a.qs[j] >> 4) as i32 - 8;
            sumi += v0 * b.qs[j] as i32 + v1 * b.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

pub fn vec_dot_q4_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ4_1] = cast_slice(&x[..nb * 20]);
    let y: &[BlockQ8_1] = cast_slice(&y[..nb * 36]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let v0 = (a.qs[j] & 0x0F) as i32;
            let v1 = (a.qs[j] >> 4) as i32;
            sumi += v0 * b.qs[j] as i32 + v1 * b.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32()) + a.m.to_f32() * b.s.to_f32();
    }
    sumf
}

fn q5_values(qs: &[u8; 16], qh: [u8; 4]) -> [i32; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut v = [0i32; 32];
    for j in 0..16 {
        v[j] = ((qs[j] & 0x0F) as u32 | (((qh >> j) << 4) & 0x10)) as i32;
        v[j + 16] = ((qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10)) as i32;
    }
    v
}

pub fn vec_dot_q5_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ5_0] = cast_slice(&x[..nb * 22]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let v = q5_values(&a.qs, a.qh);
        let sumi: i32 = (0..QK).map(|j| (v[j] - 16) * b.qs[j] as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

pub fn vec_dot_q5_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ5_1] = cast_slice(&x[..nb * 24]);
    let y: &[BlockQ8_1] = cast_slice(&y[..nb * 36]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let v = q5_values(&a.qs, a.qh);
        let sumi: i32 = (0..QK).map(|j| v[j] * b.qs[j] as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32()) + a.m.to_f32() * b.s.to_f32();
    }
    sumf
}

pub fn vec_dot_q8_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ8_0] = cast_slice(&x[..nb * 34]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sumi: i32 = (0..QK).map(|j| a.qs[j] as i32 * b.qs[j] as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

pub fn vec_dot_q2_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ2K] = cast_slice(&x[..nb * 84]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let summs: i32 = (0..16)
            .map(|j| b.bsums[j] as i32 * (a.scales[j] >> 4) as i32)
            .sum();
        let dall = b.d * a.d.to_f32();
        let dmin = b.d * a.dmin.to_f32();
        let mut isum = 0i32;
        let mut is = 0;
        for k in 0..QK_K / 128 {
            let q2 = &a.qs[k * 32..k * 32 + 32];
            for (s, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &b.qs[k * 128 + s * 32..k * 128 + s * 32 + 32];
                for half in 0..2 {
                    let d = (a.scales[is] & 0x0F) as i32;
                    is += 1;
                    let mut isuml = 0i32;
                    for l in 0..16 {
                        isuml +=
                            q8[l + 16 * half] as i32 * ((q2[l + 16 * half] >> shift) & 3) as i32;
                    }
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub fn vec_dot_q3_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ3K] = cast_slice(&x[..nb * 110]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let scales = q3_k_scales(&a.scales);
        let mut m: u8 = 1;
        let mut is = 0;
        let mut isum = 0i32;
        for k in 0..QK_K / 128 {
            let q = &a.qs[k * 32..k * 32 + 32];
            for (s, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &b.qs[k * 128 + s * 32..k * 128 + s * 32 + 32];
                for half in 0..2 {
                    let mut isuml = 0i32;
                    for l in 0..16 {
                        let idx = l + 16 * half;
                        let low = ((q[idx] >> shift) & 3) as i32;
                        let hi = if a.hmask[idx] & m != 0 { 0 } else { 4 };
                        isuml += (low - hi) * q8[idx] as i32;
                    }
                    isum += scales[is] as i32 * isuml;
                    is += 1;
                }
                m <<= 1;
            }
        }
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}

pub fn vec_dot_q4_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ4K] = cast_slice(&x[..nb * 144]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sum_q = 0i32;
        let mut sum_m = 0i32;
        for j in 0..QK_K / 64 {
            let q4 = &a.qs[j * 32..j * 32 + 32];
            let (sc1, m1) = get_scale_min_k4(2 * j, &a.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &a.scales);
            let q8 = &b.qs[j * 64..j * 64 + 64];
            let mut s1 = 0i32;
            let mut s2 = 0i32;
            for l in 0..32 {
                s1 += (q4[l] & 0x0F) as i32 * q8[l] as i32;
                s2 += (q4[l] >> 4) as i32 * q8[l + 32] as i32;
            }
            sum_q += sc1 as i32 * s1 + sc2 as i32 * s2;
            let bs1 = b.bsums[4 * j] as i32 + b.bsums[4 * j + 1] as i32;
            let bs2 = b.bsums[4 * j + 2] as i32 + b.bsums[4 * j + 3] as i32;
            sum_m += m1 as i32 * bs1 + m2 as i32 * bs2;
        }
        sumf += a.d.to_f32() * b.d * sum_q as f32 - a.dmin.to_f32() * b.d * sum_m as f32;
    }
    sumf
}

pub fn vec_dot_q5_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ5K] = cast_slice(&x[..nb * 176]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sum_q = 0i32;
        let mut sum_m = 0i32;
        for j in 0..QK_K / 64 {
            let ql = &a.qs[j * 32..j * 32 + 32];
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let (sc1, m1) = get_scale_min_k4(2 * j, &a.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &a.scales);
            let q8 = &b.qs[j * 64..j * 64 + 64];
            let mut s1 = 0i32;
            let mut s2 = 0i32;
            for l in 0..32 {
                let h1 = if a.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if a.qh[l] & u2 != 0 { 16 } else { 0 };
                s1 += ((ql[l] & 0x0F) as i32 + h1) * q8[l] as i32;
                s2 += ((ql[l] >> 4) as i32 + h2) * q8[l + 32] as i32;
            }
            sum_q += sc1 as i32 * s1 + sc2 as i32 * s2;
            let bs1 = b.bsums[4 * j] as i32 + b.bsums[4 * j + 1] as i32;
            let bs2 = b.bsums[4 * j + 2] as i32 + b.bsums[4 * j + 3] as i32;
            sum_m += m1 as i32 * bs1 + m2 as i32 * bs2;
        }
        sumf += a.d.to_f32() * b.d * sum_q as f32 - a.dmin.to_f32() * b.d * sum_m as f32;
    }
    sumf
}

pub fn vec_dot_q6_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ6K] = cast_slice(&x[..nb * 210]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let v = q6_k_values(a);
        let mut isum = 0i32;
        for j in 0..QK_K / 16 {
            let s: i32 = (0..16)
                .map(|l| v[j * 16 + l] as i32 * b.qs[j * 16 + l] as i32)
                .sum();
            isum += a.scales[j] as i32 * s;
        }
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}
