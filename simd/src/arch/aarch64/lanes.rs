//! aarch64 [`Lanes`]: Advanced SIMD (4 lanes), part of the aarch64 baseline, with the f16
//! conversions of `simd` (`fcvtl` / `fcvtn` in inline assembly: stable Rust has no f16 vector
//! intrinsics); the vectors the elementwise and attention kernels ([`crate::vec`]) are written
//! over.
//!
//! `vscalefps` is emulated as on AVX2: `(j * 2^n1) * 2^(n - n1)` with `n1 = clamp(n, -100, 100)`.

use super::simd::{f16x4_to_f32, f32x4_to_f16};
use crate::vec::lanes::Lanes;
use core::arch::aarch64::*;
use half::f16;

/// Proof that the CPU has Advanced SIMD (always, on aarch64 Linux).
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    #[inline(always)]
    pub(crate) fn new() -> Neon {
        Neon(())
    }
}

/// `2^n` for integral `n` in `[-126, 127]`: `n + 127 + 1.5·2²³` is exact and its low bits are
/// the integer `n + 127`, which the shift moves into the exponent field (the constant's own bits
/// leave the register). An add and a shift where `fcvtzs` alone takes two cycles of one pipe.
#[inline(always)]
fn pow2(n: float32x4_t) -> float32x4_t {
    // SAFETY: base Advanced SIMD register arithmetic.
    unsafe {
        let e = vaddq_f32(n, vdupq_n_f32(12_582_912.0 + 127.0));
        vreinterpretq_f32_u32(vshlq_n_u32::<23>(vreinterpretq_u32_f32(e)))
    }
}

// SAFETY (every `unsafe` block in this impl): Advanced SIMD is part of the aarch64 baseline;
// the loads and stores touch `W` elements of slices first checked (by slicing) to hold them.
impl Lanes for Neon {
    const W: usize = 4;
    type F = float32x4_t;
    type M = uint32x4_t;

    #[inline(always)]
    fn zero(self) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        let s = &s[..4];
        // SAFETY: see the impl; `s` holds 4 floats.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: float32x4_t) {
        let s = &mut s[..4];
        // SAFETY: see the impl; `s` holds 4 floats.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_h(self, s: &[f16]) -> float32x4_t {
        let s = &s[..4];
        // SAFETY: see the impl; `s` holds 4 halves (8 bytes).
        f16x4_to_f32(unsafe { vld1_u16(s.as_ptr().cast()) })
    }
    #[inline(always)]
    fn store_h(self, s: &mut [f16], v: float32x4_t) {
        let s = &mut s[..4];
        // SAFETY: see the impl; `s` holds 4 halves (8 bytes).
        unsafe { vst1_u16(s.as_mut_ptr().cast(), f32x4_to_f16(v)) }
    }
    #[inline(always)]
    fn round_h(self, v: float32x4_t) -> float32x4_t {
        f16x4_to_f32(f32x4_to_f16(v))
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn fnma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vfmsq_f32(c, a, b) }
    }
    #[inline(always)]
    fn neg(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vnegq_f32(a) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn max(self, x: float32x4_t, acc: float32x4_t) -> float32x4_t {
        // `fmaxnm` returns the number when one operand is a quiet NaN (arithmetic only makes
        // quiet NaNs).
        // SAFETY: see the impl.
        unsafe { vmaxnmq_f32(x, acc) }
    }
    #[inline(always)]
    fn gt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: see the impl.
        unsafe { vcgtq_f32(a, b) }
    }
    #[inline(always)]
    fn le(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: see the impl.
        unsafe { vcleq_f32(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: see the impl.
        unsafe { vcgeq_f32(a, b) }
    }
    #[inline(always)]
    fn select(self, m: uint32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe { vbslq_f32(m, a, b) }
    }
    /// As on AVX2: `(j * 2^n1) * 2^(n - n1)` with `n1 = clamp(n, -100, 100)`, exact or rounded
    /// once.
    #[inline(always)]
    fn scalef(self, j: float32x4_t, n: float32x4_t) -> float32x4_t {
        // SAFETY: see the impl.
        unsafe {
            let n1 = vminq_f32(vmaxq_f32(n, vdupq_n_f32(-100.0)), vdupq_n_f32(100.0));
            let n2 = vsubq_f32(n, n1);
            vmulq_f32(vmulq_f32(j, pow2(n1)), pow2(n2))
        }
    }
    /// Lanes 0..16 in `v[0..4]`: `t = (v[8..12] + v[0..4], v[12..16] + v[4..8])`,
    /// `u = t[4..8] + t[0..4]`, then `(u0 + u2) + (u1 + u3)`.
    #[inline(always)]
    fn reduce16(self, v: &[float32x4_t]) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let t_lo = vaddq_f32(v[2], v[0]);
            let t_hi = vaddq_f32(v[3], v[1]);
            let u = vaddq_f32(t_hi, t_lo);
            let p = vadd_f32(vget_low_f32(u), vget_high_f32(u));
            vget_lane_f32::<0>(p) + vget_lane_f32::<1>(p)
        }
    }
}
