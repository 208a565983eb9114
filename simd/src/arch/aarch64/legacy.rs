//! Dot products of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with Q8_0 / Q8_1
//! activations, generic over the 16-byte integer dot ([`Dot`]).
//!
//! Per block: unpack the weight quants to 32 signed bytes, two 16-byte dots against the
//! activation quants, convert the four i32 lanes to f32 and fused-multiply-add them by the product
//! of the two block scales. Two blocks per iteration into two accumulators, so the integer work of
//! one block overlaps the float latency of the other.

use super::common::*;
use crate::blocks::*;
use core::arch::aarch64::*;

/// Product of two f16 scales.
#[inline(always)]
fn scale(a: half::f16, b: half::f16) -> f32 {
    f16_to_f32(a.to_bits()) * f16_to_f32(b.to_bits())
}

/// Sums `$body` (the i32 lanes of the weight block `$a` against the activation block `$b`, and
/// the pair's scale) over the blocks of `$x` and `$y`, two pairs at a time into two float
/// accumulators; evaluates to the f32 total. A macro rather than a function taking a closure:
/// closures are not `inline(always)`, and the SDOT assembly must end up inside the
/// `#[target_feature(enable = "dotprod")]` function.
macro_rules! sum_blocks {
    ($x:expr, $y:expr, |$a:ident, $b:ident| $body:expr) => {{
        let (x, y) = ($x, $y);
        let nb = x.len().min(y.len());
        let (x, y) = (&x[..nb], &y[..nb]);
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let (xs, ys) = (x.chunks_exact(2), y.chunks_exact(2));
        let (xr, yr) = (xs.remainder(), ys.remainder());
        for (x2, y2) in xs.zip(ys) {
            let (p0, d0): (int32x4_t, f32) = {
                let ($a, $b) = (&x2[0], &y2[0]);
                $body
            };
            let (p1, d1): (int32x4_t, f32) = {
                let ($a, $b) = (&x2[1], &y2[1]);
                $body
            };
            acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), d0);
            acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), d1);
        }
        if let (Some($a), Some($b)) = (xr.first(), yr.first()) {
            let (p0, d0): (int32x4_t, f32) = $body;
            acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), d0);
        }
        vaddvq_f32(vaddq_f32(acc0, acc1))
    }};
}

/// Activation quants of one Q8 block as two 16-byte halves.
#[inline(always)]
unsafe fn load_q8(qs: &[i8; 32]) -> (int8x16_t, int8x16_t) {
    (vld1q_s8(qs.as_ptr()), vld1q_s8(qs.as_ptr().add(16)))
}

/// Q4_0 · Q8_0.
///
/// # Safety
/// `D`'s instructions must be available. Reads only inside the given blocks.
#[inline(always)]
pub(crate) unsafe fn q4_0_q8_0<D: Dot>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let eight = vdupq_n_s8(8);
    sum_blocks!(x, y, |a, b| {
        let q = vld1q_u8(a.qs.as_ptr());
        let lo = vsubq_s8(lo_nibbles(q), eight);
        let hi = vsubq_s8(hi_nibbles(q), eight);
        let (y0, y1) = load_q8(&b.qs);
        let p = D::dot(D::dot(vdupq_n_s32(0), lo, y0), hi, y1);
        (p, scale(a.d, b.d))
    })
}

/// Q4_1 · Q8_1: unsigned nibbles, plus `m * s` per block for the minimum.
///
/// # Safety
/// As [`q4_0_q8_0`].
#[inline(always)]
pub(crate) unsafe fn q4_1_q8_1<D: Dot>(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut summs = 0.0f32;
    let total = sum_blocks!(x, y, |a, b| {
        summs += f16_to_f32(a.m.to_bits()) * f16_to_f32(b.s.to_bits());
        let q = vld1q_u8(a.qs.as_ptr());
        let (y0, y1) = load_q8(&b.qs);
        let p = D::dot(D::dot(vdupq_n_s32(0), lo_nibbles(q), y0), hi_nibbles(q), y1);
        (p, scale(a.d, b.d))
    });
    total + summs
}

/// The fifth bits of a Q5 block, spread to bytes: for element `j` of the low / high 16 elements,
/// all ones where bit `j` / `j + 16` of `qh` is set, else zero.
#[inline(always)]
pub(crate) unsafe fn q5_high_masks(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    const SPREAD_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const SPREAD_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // The four bytes of qh in the low lanes; a table lookup copies byte k to lanes 8k..8k+8 (mod
    // 16), then each lane tests its own bit.
    let bytes = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
    let bits = vld1q_u8(BITS.as_ptr());
    let lo = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(SPREAD_LO.as_ptr())), bits);
    let hi = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(SPREAD_HI.as_ptr())), bits);
    (lo, hi)
}

/// Q5_0 · Q8_0: `q = nibble + 16 * bit - 16`, computed as `nibble - (bit ? 0 : 16)`.
///
/// # Safety
/// As [`q4_0_q8_0`].
#[inline(always)]
pub(crate) unsafe fn q5_0_q8_0<D: Dot>(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let sixteen = vdupq_n_u8(0x10);
    sum_blocks!(x, y, |a, b| {
        let (mlo, mhi) = q5_high_masks(a.qh);
        let q = vld1q_u8(a.qs.as_ptr());
        let lo = vsubq_s8(lo_nibbles(q), vreinterpretq_s8_u8(vbicq_u8(sixteen, mlo)));
        let hi = vsubq_s8(hi_nibbles(q), vreinterpretq_s8_u8(vbicq_u8(sixteen, mhi)));
        let (y0, y1) = load_q8(&b.qs);
        let p = D::dot(D::dot(vdupq_n_s32(0), lo, y0), hi, y1);
        (p, scale(a.d, b.d))
    })
}

/// Q5_1 · Q8_1: `q = nibble | 16 * bit` (0..31), plus `m * s` per block.
///
/// # Safety
/// As [`q4_0_q8_0`].
#[inline(always)]
pub(crate) unsafe fn q5_1_q8_1<D: Dot>(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let sixteen = vdupq_n_u8(0x10);
    let mut summs = 0.0f32;
    let total = sum_blocks!(x, y, |a, b| {
        summs += f16_to_f32(a.m.to_bits()) * f16_to_f32(b.s.to_bits());
        let (mlo, mhi) = q5_high_masks(a.qh);
        let q = vld1q_u8(a.qs.as_ptr());
        let lo = vorrq_s8(lo_nibbles(q), vreinterpretq_s8_u8(vandq_u8(sixteen, mlo)));
        let hi = vorrq_s8(hi_nibbles(q), vreinterpretq_s8_u8(vandq_u8(sixteen, mhi)));
        let (y0, y1) = load_q8(&b.qs);
        let p = D::dot(D::dot(vdupq_n_s32(0), lo, y0), hi, y1);
        (p, scale(a.d, b.d))
    });
    total + summs
}

/// Q8_0 · Q8_0.
///
/// # Safety
/// As [`q4_0_q8_0`].
#[inline(always)]
pub(crate) unsafe fn q8_0_q8_0<D: Dot>(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    sum_blocks!(x, y, |a, b| {
        let (x0, x1) = load_q8(&a.qs);
        let (y0, y1) = load_q8(&b.qs);
        let p = D::dot(D::dot(vdupq_n_s32(0), x0, y0), x1, y1);
        (p, scale(a.d, b.d))
    })
}
