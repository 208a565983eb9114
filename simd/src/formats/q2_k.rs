//! Q2_K: 256 elements in 16 sub-blocks of 16, 2-bit quants, 4-bit scales and minimums:
//! `x = d·sc·q − dmin·m`. Pairs with Q8_K.

use super::common::{clamped, make_qkx2_quants, max_of, nearest_int, out_blocks};
use super::q8_k::BlockQ8K;
use super::QK_K;
use bytemuck::{cast_slice, Pod, Zeroable};
use half::f16;

/// 84 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ2K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
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

/// As ggml's `quantize_row_q2_K_ref` (llama-quantize without an importance matrix).
pub fn quantize(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ2K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let weights: [f32; 16] = std::array::from_fn(|i| g[i].abs());
            (scales[j], mins[j]) = make_qkx2_quants(3, g, &weights, lg, -0.5, 0.1, 15, true);
        }
        let (max_scale, max_min) = (max_of(&scales), max_of(&mins));
        *b = BlockQ2K::zeroed();
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (o, &s) in b.scales.iter_mut().zip(&scales) {
                *o = nearest_int(iscale * s) as u8;
            }
            b.d = f16::from_f32(max_scale / 15.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (o, &m) in b.scales.iter_mut().zip(&mins) {
                *o |= (nearest_int(iscale * m) as u8) << 4;
            }
            b.dmin = f16::from_f32(max_min / 15.0);
        }
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let d = b.d.to_f32() * (b.scales[j] & 0x0F) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = b.dmin.to_f32() * (b.scales[j] >> 4) as f32;
            for (o, &v) in lg.iter_mut().zip(g) {
                *o = clamped((v + dm) / d, 0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// Packs 256 2-bit values: per 128, byte `l` holds elements `l`, `l+32`, `l+64`, `l+96`.
pub(crate) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (half, out) in l.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = half[i] | (half[i + 32] << 2) | (half[i + 64] << 4) | (half[i + 96] << 6);
        }
    }
}

/// llama.cpp's `ggml_vec_dot_q2_K_q8_K`: the exact super-block integers, then
/// `sumf += dall·isum − dmin·summs` per super-block (f32, unfused).
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
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
