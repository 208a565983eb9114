//! Scalar reference conversions: dequantize a row of any supported format to f32, and quantize f32
//! activations to the 8-bit formats the dot products pair with. These follow ggml's `*_ref`
//! functions (`ggml/src/ggml-quants.c`) and are the truth every optimised kernel is tested against.

use crate::blocks::*;
use bytemuck::cast_slice;
use half::{bf16, f16};

#[inline]
fn f16_to_f32(h: f16) -> f32 {
    h.to_f32()
}

/// Round to nearest, ties to even, as ggml's `nearest_int`.
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

// ---------------------------------------------------------------------------------------------
// Dequantization: a row of blocks to f32.
// ---------------------------------------------------------------------------------------------

pub fn dequantize_row_f32(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

pub fn dequantize_row_f16(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(2)) {
        *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

pub fn dequantize_row_bf16(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(2)) {
        *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

pub fn dequantize_row_q4_0(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ4_0] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            out[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
            out[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub fn dequantize_row_q4_1(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ4_1] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for j in 0..QK / 2 {
            out[j] = (b.qs[j] & 0x0F) as f32 * d + m;
            out[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// The 5-bit values (0..31) of a Q5 block, in element order.
#[inline]
fn q5_values(qs: &[u8; 16], qh: [u8; 4]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut v = [0u8; 32];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        v[j] = (qs[j] & 0x0F) | h0;
        v[j + 16] = (qs[j] >> 4) | h1;
    }
    v
}

pub fn dequantize_row_q5_0(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ5_0] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let v = q5_values(&b.qs, b.qh);
        for j in 0..QK {
            out[j] = (v[j] as i32 - 16) as f32 * d;
        }
    }
}

pub fn dequantize_row_q5_1(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ5_1] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let v = q5_values(&b.qs, b.qh);
        for j in 0..QK {
            out[j] = v[j] as f32 * d + m;
        }
    }
}

pub fn dequantize_row_q8_0(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ8_0] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

pub fn dequantize_row_q8_1(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ8_1] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

pub fn dequantize_row_q2_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ2K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        let mut is = 0;
        let mut o = 0;
        for n in 0..QK_K / 128 {
            let q = &b.qs[n * 32..n * 32 + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = b.scales[is];
                    is += 1;
                    let dl = d * (sc & 0x0F) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        out[o] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                        o += 1;
                    }
                }
            }
        }
    }
}

/// The 16 signed 6-bit scales of a Q3_K block.
#[inline]
pub fn q3_k_scales(scales: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for j in 0..16 {
        let low = if j < 8 {
            scales[j] & 0x0F
        } else {
            scales[j - 8] >> 4
        };
        let high = (scales[8 + (j % 4)] >> (2 * (j / 4))) & 3;
        out[j] = ((low | (high << 4)) as i8).wrapping_sub(32);
    }
    out
}

pub fn dequantize_row_q3_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ3K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = f16_to_f32(b.d);
        let scales = q3_k_scales(&b.scales);
        let mut m: u8 = 1;
        let mut is = 0;
        let mut o = 0;
        for n in 0..QK_K / 128 {
            let q = &b.qs[n * 32..n * 32 + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * scales[is] as f32;
                    is += 1;
                    for l in 0..16 {
                        let idx = l + 16 * half;
                        let low = ((q[idx] >> shift) & 3) as i32;
                        let hi = if b.hmask[idx] & m != 0 { 0 } else { 4 };
                        out[o] = dl * (low - hi) as f32;
                        o += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// Scale and min `j` (0..8) of the packed 6-bit scales of Q4_K / Q5_K.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

pub fn dequantize_row_q4_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ4K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for j in 0..QK_K / 64 {
            let q = &b.qs[j * 32..j * 32 + 32];
            let (sc1, m1) = get_scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let o = &mut out[j * 64..j * 64 + 64];
            for l in 0..32 {
                o[l] = d1 * (q[l] & 0x0F) as f32 - m1;
                o[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

pub fn dequantize_row_q5_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ5K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for j in 0..QK_K / 64 {
            let ql = &b.qs[j * 32..j * 32 + 32];
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let (sc1, m1) = get_scale_min_k4(2 * j, &b.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let o = &mut out[j * 64..j * 64 + 64];
            for l in 0..32 {
                let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                o[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
                o[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// The 256 signed 6-bit values (-32..31) of a Q6_K block, in element order.
#[inline]
pub fn q6_k_values(b: &BlockQ6K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    for n in 0..QK_K / 128 {
        let ql = &b.ql[n * 64..n * 64 + 64];
        let qh = &b.qh[n * 32..n * 32 + 32];
        let o = &mut v[n * 128..n * 128 + 128];
        for l in 0..32 {
            o[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
            o[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    v
}

pub fn dequantize_row_q6_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ6K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_to_f32(b.d);
        let v = q6_k_values(b);
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * v[i] as f32;
        }
    }
}

pub fn dequantize_row_q8_k(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ8K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = b.d * q as f32;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantization of activations (and the float formats).
// ---------------------------------------------------------------------------------------------

pub fn quantize_row_f32(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(4)) {
        o.copy_from_slice(&v.to_le_bytes());
    }
}

pub fn quantize_row_f16(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(2)) {
        o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
    }
}

pub fn quantize_row_bf16(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(2)) {
        o.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
    }
}

/// Q8_0 activations as llama.cpp's x86 kernels make them (`quantize_row_q8_0` with AVX2):
/// per block `d = max|x| / 127`, `q = round_ties_even(x * (127 / max|x|))`. nib uses this one
/// definition at every level and on every architecture, so results agree with llama.cpp's x86
/// builds and are identical between nib's x86 and ARM builds.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16::from_f32(d);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

/// Q8_1 activations, as [`quantize_row_q8_0`] plus `s = d * sum(q)` (llama.cpp's x86
/// `quantize_row_q8_1`).
pub fn quantize_row_q8_1(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_1] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        b.s = f16::from_f32(d * sum as f32);
    }
}

/// ggml's `quantize_row_q8_K_ref`: the value of largest magnitude maps to -127, with per-16 sums.
pub fn quantize_row_q8_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8K] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = BlockQ8K::zeroed();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            b.bsums[j] = b.qs[j * 16..j * 16 + 16].iter().map(|&q| q as i16).sum();
        }
        b.d = 1.0 / iscale;
    }
}

use bytemuck::Zeroable;
