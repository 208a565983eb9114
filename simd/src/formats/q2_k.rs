//! Q2_K: 256 elements in 16 sub-blocks of 16, 2-bit quants, 4-bit scales and minimums:
//! `x = d·sc·q − dmin·m`. Pairs with Q8_K.

use super::common::{clamped, make_qkx2_quants, max_of, nearest_int, out_blocks};
use super::q8_k::operands;
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

/// Every element of a Q2_K / Q3_K super-block in ggml's order, `f(e, is, idx, plane, q)`: element
/// `e`, its sub-block of 16 `is`, its byte `idx` within its 128-element half of the 2-bit quants
/// (`qs[32·(e / 128) + idx]`), the bit plane of that byte it takes (`plane` = 4·half + shift / 2,
/// also the bit of Q3_K's `hmask[idx]`), and its 2-bit value `q`.
pub(crate) fn walk_2bit(qs: &[u8; QK_K / 4], mut f: impl FnMut(usize, usize, usize, usize, u8)) {
    for e in 0..QK_K {
        let (n, s, half, l) = (e / 128, e % 128 / 32, e % 32 / 16, e % 16);
        let idx = l + 16 * half;
        f(
            e,
            8 * n + 2 * s + half,
            idx,
            4 * n + s,
            (qs[32 * n + idx] >> (2 * s)) & 3,
        );
    }
}

/// `x = d·sc·q − dmin·m` with the 4-bit scale and minimum of each sub-block of 16.
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ2K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
        walk_2bit(&b.qs, |e, is, _, _, q| {
            let sc = b.scales[is];
            let (dl, ml) = (d * (sc & 0x0F) as f32, min * (sc >> 4) as f32);
            out[e] = dl * q as f32 - ml;
        });
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

/// llama.cpp's `ggml_vec_dot_q2_K_q8_K`: the exact super-block integers `isum = Σ sc·q·q8` and
/// `summs = Σ bsums·m`, then `sumf += dall·isum − dmin·summs` per super-block (f32, unfused).
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ2K>(n, x, y);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let summs: i32 = (0..16)
            .map(|j| b.bsums[j] as i32 * (a.scales[j] >> 4) as i32)
            .sum();
        let dall = b.d * a.d.to_f32();
        let dmin = b.d * a.dmin.to_f32();
        let mut isum = 0i32;
        walk_2bit(&a.qs, |e, is, _, _, q| {
            isum += (a.scales[is] & 0x0F) as i32 * q as i32 * b.qs[e] as i32;
        });
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}
