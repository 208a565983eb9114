//! Q5_K: 256 elements in 8 sub-blocks of 32, 5-bit quants, Q4_K's 6-bit scales and minimums:
//! `x = d·sc·q − dmin·m`. Pairs with Q8_K.

use super::common::quantize_blocks;
use super::q4_k::{dequantize_k4, get_scale_min_k4, quantize_k4};
use super::q8_k::operands;
use super::QK_K;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// 176 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// `x = d·sc·q − dmin·m`, the fifth bit of element `l` of sub-block `2j` / `2j + 1` bit `2j` /
/// `2j + 1` of `qh[l]`.
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    dequantize_k4::<BlockQ5K>(
        x,
        y,
        |b| (b.d, b.dmin, &b.scales),
        |b, j, l| {
            let (q, h) = (b.qs[32 * j + l], b.qh[l] >> (2 * j));
            ((q & 0x0F) | (h & 1) << 4, (q >> 4) | (h & 2) << 3)
        },
    );
}

/// As ggml's `quantize_row_q5_K_ref`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK_K, |xs, b: &mut BlockQ5K| {
        let l = quantize_k4(xs, 31, -0.5, 15, (&mut b.d, &mut b.dmin, &mut b.scales));
        b.qh = [0; QK_K / 8];
        // Per 64 elements: low nibbles of the first 32 and high nibbles of the next 32 share
        // bytes; their fifth bits are bits 2j and 2j + 1 of qh.
        for (j, (q, c)) in
            b.qs.chunks_exact_mut(32)
                .zip(l.chunks_exact(64))
                .enumerate()
        {
            for (i, o) in q.iter_mut().enumerate() {
                let (lo, hi) = (c[i], c[i + 32]);
                b.qh[i] |= ((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1));
                *o = (lo & 0x0F) | ((hi & 0x0F) << 4);
            }
        }
    });
}

/// llama.cpp's `ggml_vec_dot_q5_K_q8_K`: the exact super-block integers, then
/// `sumf += f32(x.d)·y.d·sum_q − f32(x.dmin)·y.d·sum_m` per super-block (f32, unfused).
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ5K>(n, x, y);
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
