//! Dequantization (weight row → f32) with NEON, bit-identical to the scalar reference: integer
//! quants convert to f32 exactly, and the float steps are the reference's, in its order, unfused.

use super::common::*;
use super::kquants::{k4_scales_mins, q3_k_scales, q6_k_half};
use super::legacy::q5_high_masks;
use crate::blocks::*;
use bytemuck::cast_slice;
use core::arch::aarch64::*;

#[inline(always)]
fn h(x: half::f16) -> f32 {
    f16_to_f32(x.to_bits())
}

/// Blocks of `x` paired with their `QB`-element output chunks of `y`.
fn pairs<'a, B: bytemuck::Pod, const QB: usize>(
    x: &'a [u8],
    y: &'a mut [f32],
) -> impl Iterator<Item = (&'a B, &'a mut [f32; QB])> {
    let blocks: &[B] = cast_slice(&x[..x.len() / size_of::<B>() * size_of::<B>()]);
    blocks.iter().zip(
        y.chunks_exact_mut(QB)
            .map(|c| <&mut [f32; QB]>::try_from(c).unwrap()),
    )
}

pub(crate) fn dequantize_row_q8_0(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ8_0, QK>(x, y) {
        let d = h(b.d);
        // SAFETY: two 16-byte loads from the 32 quants, two 16-float stores into the 32 outputs.
        unsafe {
            store_i8_scaled(out.as_mut_ptr(), vld1q_s8(b.qs.as_ptr()), d);
            store_i8_scaled(out.as_mut_ptr().add(16), vld1q_s8(b.qs.as_ptr().add(16)), d);
        }
    }
}

pub(crate) fn dequantize_row_q8_1(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ8_1, QK>(x, y) {
        let d = h(b.d);
        // SAFETY: as in `dequantize_row_q8_0`.
        unsafe {
            store_i8_scaled(out.as_mut_ptr(), vld1q_s8(b.qs.as_ptr()), d);
            store_i8_scaled(out.as_mut_ptr().add(16), vld1q_s8(b.qs.as_ptr().add(16)), d);
        }
    }
}

pub(crate) fn dequantize_row_q8_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ8K, QK_K>(x, y) {
        for g in 0..QK_K / 16 {
            // SAFETY: 16 quants and 16 outputs at offset 16g < 256.
            unsafe {
                store_i8_scaled(
                    out.as_mut_ptr().add(16 * g),
                    vld1q_s8(b.qs.as_ptr().add(16 * g)),
                    b.d,
                );
            }
        }
    }
}

pub(crate) fn dequantize_row_q4_0(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ4_0, QK>(x, y) {
        let d = h(b.d);
        // SAFETY: one 16-byte load from the 16 quant bytes, two 16-float stores into 32 outputs.
        unsafe {
            let q = vld1q_u8(b.qs.as_ptr());
            let eight = vdupq_n_s8(8);
            store_i8_scaled(out.as_mut_ptr(), vsubq_s8(lo_nibbles(q), eight), d);
            store_i8_scaled(out.as_mut_ptr().add(16), vsubq_s8(hi_nibbles(q), eight), d);
        }
    }
}

pub(crate) fn dequantize_row_q4_1(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ4_1, QK>(x, y) {
        let (d, m) = (h(b.d), h(b.m));
        // SAFETY: as in `dequantize_row_q4_0`.
        unsafe {
            let q = vld1q_u8(b.qs.as_ptr());
            store_u8_affine(out.as_mut_ptr(), vandq_u8(q, vdupq_n_u8(0x0F)), d, m);
            store_u8_affine(out.as_mut_ptr().add(16), vshrq_n_u8::<4>(q), d, m);
        }
    }
}

/// The 5-bit quants (0..31) of a Q5 block as two vectors of 16 (elements 0..16, 16..32).
#[inline(always)]
unsafe fn q5_quants(qs: &[u8; 16], qh: &[u8; 4]) -> (uint8x16_t, uint8x16_t) {
    let (mlo, mhi) = q5_high_masks(qh.as_ptr());
    let sixteen = vdupq_n_u8(0x10);
    let q = vld1q_u8(qs.as_ptr());
    (
        vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), vandq_u8(mlo, sixteen)),
        vorrq_u8(vshrq_n_u8::<4>(q), vandq_u8(mhi, sixteen)),
    )
}

pub(crate) fn dequantize_row_q5_0(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ5_0, QK>(x, y) {
        let d = h(b.d);
        // SAFETY: one 16-byte load from the 16 quant bytes, stores into the 32 outputs.
        unsafe {
            let (lo, hi) = q5_quants(&b.qs, &b.qh);
            let sixteen = vdupq_n_s8(16);
            store_i8_scaled(
                out.as_mut_ptr(),
                vsubq_s8(vreinterpretq_s8_u8(lo), sixteen),
                d,
            );
            store_i8_scaled(
                out.as_mut_ptr().add(16),
                vsubq_s8(vreinterpretq_s8_u8(hi), sixteen),
                d,
            );
        }
    }
}

pub(crate) fn dequantize_row_q5_1(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ5_1, QK>(x, y) {
        let (d, m) = (h(b.d), h(b.m));
        // SAFETY: as in `dequantize_row_q5_0`.
        unsafe {
            let (lo, hi) = q5_quants(&b.qs, &b.qh);
            store_u8_affine(out.as_mut_ptr(), lo, d, m);
            store_u8_affine(out.as_mut_ptr().add(16), hi, d, m);
        }
    }
}

/// Sixteen u8 mapped to `d * q - m` (multiply, then subtract, as the scalar code) at `out`.
///
/// # Safety
/// `out` must be valid for writing 16 f32.
#[inline(always)]
unsafe fn store_u8_scale_sub(out: *mut f32, q: uint8x16_t, d: f32, m: f32) {
    store_u8_affine(out, q, d, -m);
}

pub(crate) fn dequantize_row_q4_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ4K, QK_K>(x, y) {
        let (d, min) = (h(b.d), h(b.dmin));
        let (sc, mn) = k4_scales_mins(&b.scales);
        let (sc, mn) = (sc.to_le_bytes(), mn.to_le_bytes());
        for j in 0..QK_K / 64 {
            let (d1, m1) = (d * sc[2 * j] as f32, min * mn[2 * j] as f32);
            let (d2, m2) = (d * sc[2 * j + 1] as f32, min * mn[2 * j + 1] as f32);
            // SAFETY: 32 quant bytes at 32j < 128, 64 outputs at 64j < 256.
            unsafe {
                let o = out.as_mut_ptr().add(64 * j);
                for k in 0..2 {
                    let q = vld1q_u8(b.qs.as_ptr().add(32 * j + 16 * k));
                    store_u8_scale_sub(o.add(16 * k), vandq_u8(q, vdupq_n_u8(0x0F)), d1, m1);
                    store_u8_scale_sub(o.add(32 + 16 * k), vshrq_n_u8::<4>(q), d2, m2);
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_q5_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ5K, QK_K>(x, y) {
        let (d, min) = (h(b.d), h(b.dmin));
        let (sc, mn) = k4_scales_mins(&b.scales);
        let (sc, mn) = (sc.to_le_bytes(), mn.to_le_bytes());
        // SAFETY: qh is 32 bytes (two loads), qs 128 (loads at 32j + 16k < 128), out 256 floats
        // (stores at 64j + 16k and 64j + 32 + 16k, below 256).
        unsafe {
            let m10 = vdupq_n_u8(0x10);
            let mut hb = [vld1q_u8(b.qh.as_ptr()), vld1q_u8(b.qh.as_ptr().add(16))];
            for j in 0..QK_K / 64 {
                let (d1, m1) = (d * sc[2 * j] as f32, min * mn[2 * j] as f32);
                let (d2, m2) = (d * sc[2 * j + 1] as f32, min * mn[2 * j + 1] as f32);
                let o = out.as_mut_ptr().add(64 * j);
                for (k, hk) in hb.iter_mut().enumerate() {
                    let q = vld1q_u8(b.qs.as_ptr().add(32 * j + 16 * k));
                    let lo = vorrq_u8(
                        vandq_u8(q, vdupq_n_u8(0x0F)),
                        vandq_u8(vshlq_n_u8::<4>(*hk), m10),
                    );
                    let hi = vorrq_u8(vshrq_n_u8::<4>(q), vandq_u8(vshlq_n_u8::<3>(*hk), m10));
                    store_u8_scale_sub(o.add(16 * k), lo, d1, m1);
                    store_u8_scale_sub(o.add(32 + 16 * k), hi, d2, m2);
                    *hk = vshrq_n_u8::<2>(*hk);
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_q6_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ6K, QK_K>(x, y) {
        let d = h(b.d);
        for n in 0..2 {
            // SAFETY: `q6_k_half` reads 64 bytes of ql at 64n and 32 of qh at 32n (inside the
            // block); the stores write 16 floats at 128n + 16g < 256.
            unsafe {
                let v = q6_k_half(b.ql.as_ptr().add(64 * n), b.qh.as_ptr().add(32 * n));
                for (g, q) in v.into_iter().enumerate() {
                    let dl = d * b.scales[8 * n + g] as f32;
                    let q = vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(32));
                    store_i8_scaled(out.as_mut_ptr().add(128 * n + 16 * g), q, dl);
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_q2_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ2K, QK_K>(x, y) {
        let (d, min) = (h(b.d), h(b.dmin));
        // SAFETY: qs loads at 32k + 16half < 64; stores of 16 floats at
        // 128k + 32s + 16half < 256.
        unsafe {
            for k in 0..2 {
                let mut q = [
                    vld1q_u8(b.qs.as_ptr().add(32 * k)),
                    vld1q_u8(b.qs.as_ptr().add(32 * k + 16)),
                ];
                for s in 0..4 {
                    for (half, qh) in q.iter_mut().enumerate() {
                        let sc = b.scales[8 * k + 2 * s + half];
                        let dl = d * (sc & 0x0F) as f32;
                        let ml = min * (sc >> 4) as f32;
                        let o = out.as_mut_ptr().add(128 * k + 32 * s + 16 * half);
                        store_u8_scale_sub(o, vandq_u8(*qh, vdupq_n_u8(3)), dl, ml);
                        *qh = vshrq_n_u8::<2>(*qh);
                    }
                }
            }
        }
    }
}

pub(crate) fn dequantize_row_q3_k(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ3K, QK_K>(x, y) {
        let d_all = h(b.d);
        let scales: [i8; 16] = bytemuck::cast(q3_k_scales(&b.scales).map(u32::to_le));
        // SAFETY: hmask loads at 0 and 16 (32 bytes), qs loads at 32k + 16half < 64, stores of
        // 16 floats at 128k + 32s + 16half < 256.
        unsafe {
            let mut hm = [
                vld1q_u8(b.hmask.as_ptr()),
                vld1q_u8(b.hmask.as_ptr().add(16)),
            ];
            for k in 0..2 {
                let mut q = [
                    vld1q_u8(b.qs.as_ptr().add(32 * k)),
                    vld1q_u8(b.qs.as_ptr().add(32 * k + 16)),
                ];
                for s in 0..4 {
                    for half in 0..2 {
                        let dl = d_all * scales[8 * k + 2 * s + half] as f32;
                        // low - (bit ? 0 : 4) = (low | 4 * bit) - 4
                        let v = vorrq_u8(
                            vandq_u8(q[half], vdupq_n_u8(3)),
                            vandq_u8(vshlq_n_u8::<2>(hm[half]), vdupq_n_u8(4)),
                        );
                        let v = vsubq_s8(vreinterpretq_s8_u8(v), vdupq_n_s8(4));
                        store_i8_scaled(out.as_mut_ptr().add(128 * k + 32 * s + 16 * half), v, dl);
                        q[half] = vshrq_n_u8::<2>(q[half]);
                        hm[half] = vshrq_n_u8::<1>(hm[half]);
                    }
                }
            }
        }
    }
}
