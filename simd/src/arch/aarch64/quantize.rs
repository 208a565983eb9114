//! Activation quantizers (f32 → Q8_0, Q8_1, Q8_K) with NEON. They compute exactly what the
//! scalar reference does, byte for byte: the same maximum (NaNs ignored, as `f32::max` and the
//! scalar `>` do), the same scale, the same rounding (`vcvtnq` = ties to even, as
//! `round_ties_even` / `nearest_int`, NaN to 0), and narrows that saturate or truncate as the
//! reference's casts do.

use super::common::f32_to_f16;
use crate::blocks::*;
use bytemuck::Zeroable;
use core::arch::aarch64::*;
use half::f16;

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

/// f32 → Q8_0 as the scalar reference (llama.cpp's x86 definition): per block
/// `d = amax / 127`, `q = round_ties_even(x * (127 / amax))`.
pub(crate) fn quantize_row_q8_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: `xs` holds 32 f32 and `b.qs` 32 bytes: the loads and stores stay inside them.
        unsafe {
            let v = load32(xs);
            let amax = amax(&v);
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            b.d = f16::from_bits(f32_to_f16(d));
            round_store_q8(&v, id, b.qs.as_mut_ptr());
        }
    }
}

/// f32 → Q8_1: as Q8_0, plus `s = d * sum(q)`.
pub(crate) fn quantize_row_q8_1(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_1] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        // SAFETY: as in `quantize_row_q8_0`.
        unsafe {
            let v = load32(xs);
            let amax = amax(&v);
            let d = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            b.d = f16::from_bits(f32_to_f16(d));
            let sum = round_store_q8(&v, id, b.qs.as_mut_ptr());
            b.s = f16::from_bits(f32_to_f16(sum as f32 * d));
        }
    }
}

/// f32 → Q8_K: the value of largest magnitude (the first such, with its sign) maps to -127;
/// quants round to nearest even; per-16 sums in `bsums`.
pub(crate) fn quantize_row_q8_k(x: &[f32], y: &mut [u8]) {
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
