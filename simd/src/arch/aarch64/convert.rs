//! Conversions with NEON, bit-identical to the scalar reference: weight rows to f32 (integer
//! quants convert to f32 exactly, and the float steps are the reference's, in its order,
//! unfused), and f32 activations to Q8_0, Q8_1 and Q8_K (the same maximum, NaNs ignored as
//! `f32::max` and the scalar `>` do; the same scale; the same rounding, `vcvtnq` = ties to even as
//! `round_ties_even` / `nearest_int`, NaN to 0; narrows that saturate or truncate as the
//! reference's casts do).

use super::kquants::{k4_scales_mins, q3_k_scales, q6_k_half};
use super::legacy::unpack;
use super::simd::*;
use crate::formats::block32::{self as b32, has_min, Block32, QK};
use crate::formats::*;
use bytemuck::{cast_slice, Zeroable};
use core::arch::aarch64::*;
use half::f16;

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

pub(super) fn dequantize_row_q8_1(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<BlockQ8_1, QK>(x, y) {
        let d = h(b.d);
        // SAFETY: two 16-byte loads from the 32 quants, two 16-float stores into the 32 outputs.
        unsafe {
            store_i8_scaled(out.as_mut_ptr(), vld1q_s8(b.qs.as_ptr()), d);
            store_i8_scaled(out.as_mut_ptr().add(16), vld1q_s8(b.qs.as_ptr().add(16)), d);
        }
    }
}

pub(super) fn dequantize_row_q8_k(x: &[u8], y: &mut [f32]) {
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

/// Every 32-element format: `(q − offset)·d`, or `q·d + m`.
pub(super) fn dequantize<B: Block32>(x: &[u8], y: &mut [f32]) {
    for (b, out) in pairs::<B, QK>(x, y) {
        let p = bytemuck::bytes_of(b).as_ptr();
        let d = h(b32::d(b));
        // SAFETY: `p` is a whole block; two stores of 16 floats into the 32 outputs.
        unsafe {
            if has_min::<B>() {
                // Values 0..31 (no offset with a minimum): `q·d + m`.
                let (lo, hi) = unpack::<B>(p);
                let m = h(b32::m(b));
                store_u8_affine(out.as_mut_ptr(), vreinterpretq_u8_s8(lo), d, m);
                store_u8_affine(out.as_mut_ptr().add(16), vreinterpretq_u8_s8(hi), d, m);
            } else {
                let (lo, hi) = unpack::<B>(p);
                store_i8_scaled(out.as_mut_ptr(), lo, d);
                store_i8_scaled(out.as_mut_ptr().add(16), hi, d);
            }
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

pub(super) fn dequantize_row_q4_k(x: &[u8], y: &mut [f32]) {
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

pub(super) fn dequantize_row_q5_k(x: &[u8], y: &mut [f32]) {
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

pub(super) fn dequantize_row_q6_k(x: &[u8], y: &mut [f32]) {
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

pub(super) fn dequantize_row_q2_k(x: &[u8], y: &mut [f32]) {
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

pub(super) fn dequantize_row_q3_k(x: &[u8], y: &mut [f32]) {
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

// Activations: f32 to Q8_0, Q8_1 and Q8_K.

/// Eight f32 vectors (32 values) of one block.
#[inline(always)]
unsafe fn load32(x: &[f32]) -> [float32x4_t; 8] {
    debug_assert!(x.len() >= 32);
    let mut v = [vdupq_n_f32(0.0); 8];
    for (k, vk) in v.iter_mut().enumerate() {
        *vk = vld1q_f32(x.as_ptr().add(4 * k));
    }
    v
}

/// The largest magnitude among `v`, ignoring NaNs as `f32::max` does (`fmaxnm`).
#[inline(always)]
unsafe fn amax(v: &[float32x4_t]) -> f32 {
    let m = v
        .iter()
        .fold(vdupq_n_f32(0.0), |m, &x| vmaxnmq_f32(m, vabsq_f32(x)));
    vmaxnmvq_f32(m)
}

/// Round `x * id` (ties to even) to i8 with saturation, 32 values; returns the sum of the stored
/// bytes as well (for Q8_1; summed after the saturation, as the reference sums its i8 quants).
#[inline(always)]
unsafe fn round_store_q8(v: &[float32x4_t; 8], id: f32, out: *mut i8) -> i32 {
    let mut sum = 0i32;
    for h in 0..2 {
        let mut q = [vdupq_n_s32(0); 4];
        for k in 0..4 {
            q[k] = vcvtnq_s32_f32(vmulq_n_f32(v[4 * h + k], id));
        }
        let a = vqmovn_high_s32(vqmovn_s32(q[0]), q[1]);
        let b = vqmovn_high_s32(vqmovn_s32(q[2]), q[3]);
        let q8 = vqmovn_high_s16(vqmovn_s16(a), b);
        vst1q_s8(out.add(16 * h), q8);
        sum += vaddlvq_s8(q8) as i32;
    }
    sum
}

/// One Q8_0 / Q8_1 block as the scalar reference (llama.cpp's x86 definition):
/// `d = amax / 127`, `q = round_ties_even(x * (127 / amax))`. Stores the quants at `qs`; returns
/// `d` and the quants' sum.
///
/// # Safety
/// `xs` holds 32 values and `qs` is valid for writing 32 bytes.
#[inline(always)]
unsafe fn q8_block(xs: &[f32], qs: *mut i8) -> (f32, i32) {
    let v = load32(xs);
    let amax = amax(&v);
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, round_store_q8(&v, id, qs))
}

/// f32 → Q8_0.
pub(super) fn quantize_row_q8_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: `xs` holds 32 f32 and `b.qs` 32 bytes.
        let (d, _) = unsafe { q8_block(xs, b.qs.as_mut_ptr()) };
        b.d = f16::from_bits(f32_to_f16(d));
    }
}

/// f32 → Q8_1: as Q8_0, plus `s = d * sum(q)`.
pub(super) fn quantize_row_q8_1(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_1] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: `xs` holds 32 f32 and `b.qs` 32 bytes.
        let (d, sum) = unsafe { q8_block(xs, b.qs.as_mut_ptr()) };
        b.d = f16::from_bits(f32_to_f16(d));
        b.s = f16::from_bits(f32_to_f16(sum as f32 * d));
    }
}

/// f32 → Q8_K: the value of largest magnitude (the first such, with its sign) maps to -127;
/// quants round to nearest even; per-16 sums in `bsums`.
pub(super) fn quantize_row_q8_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8K] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        // SAFETY: `xs` holds 256 f32 and `b.qs` 256 bytes; every access is at an offset below
        // those lengths (64 vectors of 4, 16 stores of 16).
        unsafe {
            let mut m = vdupq_n_f32(0.0);
            for k in 0..QK_K / 4 {
                m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(xs.as_ptr().add(4 * k))));
            }
            // NaNs never win the scalar loop's `>` comparisons; `fmaxnm` skips them too.
            let amax = vmaxnmvq_f32(m);
            if amax == 0.0 {
                *b = BlockQ8K::zeroed();
                continue;
            }
            // The sign comes from the first element whose magnitude is the maximum, as in the
            // scalar loop (`+a` and `-a` may both occur).
            let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
            let iscale = -127.0 / max;
            let lim = vdupq_n_s32(127);
            for g in 0..QK_K / 16 {
                let p = xs.as_ptr().add(16 * g);
                let mut q = [lim; 4];
                for (k, qk) in q.iter_mut().enumerate() {
                    *qk = vminq_s32(
                        vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(p.add(4 * k)), iscale)),
                        lim,
                    );
                }
                // `nearest_int(..).min(127) as i8`: the cast keeps the low byte (it matters only
                // where an overflowing scale saturated the conversion to i32::MIN).
                let a = vmovn_high_s32(vmovn_s32(q[0]), q[1]);
                let c = vmovn_high_s32(vmovn_s32(q[2]), q[3]);
                let q8 = vmovn_high_s16(vmovn_s16(a), c);
                vst1q_s8(b.qs.as_mut_ptr().add(16 * g), q8);
                b.bsums[g] = vaddlvq_s8(q8);
            }
            b.d = 1.0 / iscale;
        }
    }
}
