//! F32, F16 and BF16 rows: dot products and conversions, bit-identical to the scalar reference.
//! Rows are taken as bytes and loaded bytewise, so no alignment is assumed.
//!
//! * F16 · F16 follows [`crate::vec::dot_f16`] (llama.cpp's AVX-512 `ggml_vec_dot_f16`): 64 f32
//!   lanes (sixteen NEON accumulators, lane `i` of the reference in accumulator `i / 4`) updated
//!   with fused multiply-adds, reduced in its tree, the tail summed in f64.
//! * F32 · F32 and BF16 · BF16 are, in the reference, f32 products added in order into an f64:
//!   the products are computed four at a time here, but the f64 additions stay one chain.

use super::simd::*;
use core::arch::aarch64::*;

/// Four f32 at byte pointer `p`.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
unsafe fn ld_f32x4(p: *const u8) -> float32x4_t {
    vreinterpretq_f32_u8(vld1q_u8(p))
}

/// Eight halves at byte pointer `p` as two f32 vectors.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
unsafe fn ld_f16x8(p: *const u8) -> (float32x4_t, float32x4_t) {
    let h = vreinterpretq_u16_u8(vld1q_u8(p));
    (f16x4_to_f32(vget_low_u16(h)), f16x8_high_to_f32(h))
}

/// bf16 bits (widened to the high half of u32 lanes) as f32, NaNs quieted as
/// `half::bf16::to_f32` does.
#[inline(always)]
unsafe fn bf16_bits_to_f32(v: uint32x4_t) -> float32x4_t {
    let nan = vcgtq_u32(
        vandq_u32(v, vdupq_n_u32(0x7FFF_FFFF)),
        vdupq_n_u32(0x7F80_0000),
    );
    vreinterpretq_f32_u32(vorrq_u32(v, vandq_u32(nan, vdupq_n_u32(0x0040_0000))))
}

/// Eight bf16 at byte pointer `p` as two f32 vectors.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
unsafe fn ld_bf16x8(p: *const u8) -> (float32x4_t, float32x4_t) {
    let h = vreinterpretq_u16_u8(vld1q_u8(p));
    (
        bf16_bits_to_f32(vshll_n_u16::<16>(vget_low_u16(h))),
        bf16_bits_to_f32(vshll_high_n_u16::<16>(h)),
    )
}

fn f32_at(x: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]])
}

fn f16_at(x: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([x[2 * i], x[2 * i + 1]]))
}

fn bf16_at(x: &[u8], i: usize) -> f32 {
    half::bf16::from_le_bytes([x[2 * i], x[2 * i + 1]]).to_f32()
}

/// `s + p0 + p1 + p2 + p3` in f64, in that order, for the four f32 lanes of `p`.
#[inline(always)]
unsafe fn add_f64_in_order(s: f64, p: float32x4_t) -> f64 {
    let lo = vcvt_f64_f32(vget_low_f32(p));
    let hi = vcvt_high_f64_f32(p);
    let s = s + vgetq_lane_f64::<0>(lo);
    let s = s + vgetq_lane_f64::<1>(lo);
    let s = s + vgetq_lane_f64::<0>(hi);
    s + vgetq_lane_f64::<1>(hi)
}

/// `Σ (x[i] * y[i]) as f64` over `n` f32 (little-endian bytes), as [`crate::formats::float::vec_dot_f32`].
/// Panics if a row is shorter.
pub(super) fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (&x[..4 * n], &y[..4 * n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut s = 0f64;
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: reads 4 f32 (16 bytes) at element `i`, `i + 4 <= n`; Advanced SIMD is baseline.
        s = unsafe {
            add_f64_in_order(
                s,
                vmulq_f32(ld_f32x4(px.add(4 * i)), ld_f32x4(py.add(4 * i))),
            )
        };
        i += 4;
    }
    for j in i..n {
        s += (f32_at(x, j) * f32_at(y, j)) as f64;
    }
    s as f32
}

/// `Σ (x[i] * y[i]) as f64` over `n` bf16, as [`crate::formats::float::vec_dot_bf16`].
pub(super) fn vec_dot_bf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (&x[..2 * n], &y[..2 * n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut s = 0f64;
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: reads 8 bf16 (16 bytes) at element `i`, `i + 8 <= n`.
        s = unsafe {
            let (x0, x1) = ld_bf16x8(px.add(2 * i));
            let (y0, y1) = ld_bf16x8(py.add(2 * i));
            let s = add_f64_in_order(s, vmulq_f32(x0, y0));
            add_f64_in_order(s, vmulq_f32(x1, y1))
        };
        i += 8;
    }
    for j in i..n {
        s += (bf16_at(x, j) * bf16_at(y, j)) as f64;
    }
    s as f32
}

/// f16 · f16 as [`crate::vec::dot_f16`] (llama.cpp's `ggml_vec_dot_f16` on AVX-512).
pub(super) fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (&x[..2 * n], &y[..2 * n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let np = n - n % 64;
    // SAFETY: every load reads 8 halves (16 bytes) at element `c + 8k + 8 <= np <= n`; the rest
    // is register arithmetic of the aarch64 baseline.
    let mut sum = unsafe {
        // Accumulator k holds the reference's lanes 4k..4k+4.
        let mut acc = [vdupq_n_f32(0.0); 16];
        let mut c = 0;
        while c < np {
            for k in 0..8 {
                let (x0, x1) = ld_f16x8(px.add(2 * (c + 8 * k)));
                let (y0, y1) = ld_f16x8(py.add(2 * (c + 8 * k)));
                acc[2 * k] = vfmaq_f32(acc[2 * k], x0, y0);
                acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], x1, y1);
            }
            c += 64;
        }
        // v[i] = (l[i] + l[i+32]) + (l[i+16] + l[i+48]) for i < 16, as four vectors.
        let v: [float32x4_t; 4] = core::array::from_fn(|k| {
            vaddq_f32(
                vaddq_f32(acc[k], acc[k + 8]),
                vaddq_f32(acc[k + 4], acc[k + 12]),
            )
        });
        // reduce16: t[i] = v[i+8] + v[i], u[i] = t[i+4] + t[i], then (u0+u2) + (u1+u3).
        let t0 = vaddq_f32(v[2], v[0]);
        let t1 = vaddq_f32(v[3], v[1]);
        hsum4(vaddq_f32(t1, t0)) as f64
    };
    for j in np..n {
        sum += (f16_at(x, j) * f16_at(y, j)) as f64;
    }
    sum as f32
}

/// f16 row (bytes) → f32, exactly, for `min(x.len() / 2, y.len())` elements.
pub(super) fn dequantize_row_f16(x: &[u8], y: &mut [f32]) {
    let n = (x.len() / 2).min(y.len());
    let mut i = 0;
    // SAFETY: each step reads 16 bytes (8 halves) and writes 8 f32 at element `i`, `i + 8 <= n`.
    unsafe {
        while i + 8 <= n {
            let (a, b) = ld_f16x8(x.as_ptr().add(2 * i));
            vst1q_f32(y.as_mut_ptr().add(i), a);
            vst1q_f32(y.as_mut_ptr().add(i + 4), b);
            i += 8;
        }
    }
    for (j, o) in y.iter_mut().enumerate().take(n).skip(i) {
        *o = f16_at(x, j);
    }
}

/// f32 row → f16 (bytes), rounding to nearest even, for `min(x.len(), y.len() / 2)` elements.
pub(super) fn quantize_row_f16(x: &[f32], y: &mut [u8]) {
    let n = x.len().min(y.len() / 2);
    let mut i = 0;
    // SAFETY: each step reads 8 f32 and writes 16 bytes (8 halves) at element `i`, `i + 8 <= n`.
    unsafe {
        while i + 8 <= n {
            let a = vld1q_f32(x.as_ptr().add(i));
            let b = vld1q_f32(x.as_ptr().add(i + 4));
            vst1q_u8(
                y.as_mut_ptr().add(2 * i),
                vreinterpretq_u8_u16(f32x8_to_f16(a, b)),
            );
            i += 8;
        }
    }
    for (v, o) in x[i..n].iter().zip(y[2 * i..2 * n].chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16(*v).to_le_bytes());
    }
}

/// bf16 row (bytes) → f32 as `half::bf16::to_f32` (exact; NaNs quieted), for
/// `min(x.len() / 2, y.len())` elements.
pub(super) fn dequantize_row_bf16(x: &[u8], y: &mut [f32]) {
    let n = (x.len() / 2).min(y.len());
    let mut i = 0;
    // SAFETY: each step reads 16 bytes (8 values) and writes 8 f32 at element `i`, `i + 8 <= n`.
    unsafe {
        while i + 8 <= n {
            let (a, b) = ld_bf16x8(x.as_ptr().add(2 * i));
            vst1q_f32(y.as_mut_ptr().add(i), a);
            vst1q_f32(y.as_mut_ptr().add(i + 4), b);
            i += 8;
        }
    }
    for (j, o) in y.iter_mut().enumerate().take(n).skip(i) {
        *o = bf16_at(x, j);
    }
}

/// Four f32 to bf16 bits (in u32 lanes) as `half::bf16::from_f32`: round to nearest even, NaNs
/// truncated with the quiet bit set.
#[inline(always)]
unsafe fn f32_to_bf16_bits(v: float32x4_t) -> uint32x4_t {
    let x = vreinterpretq_u32_f32(v);
    let hi = vshrq_n_u32::<16>(x);
    // x + 0x7FFF + lsb carries into bit 16 exactly when the low half rounds up.
    let rounded = vshrq_n_u32::<16>(vaddq_u32(
        vaddq_u32(x, vdupq_n_u32(0x7FFF)),
        vandq_u32(hi, vdupq_n_u32(1)),
    ));
    let nan = vcgtq_u32(
        vandq_u32(x, vdupq_n_u32(0x7FFF_FFFF)),
        vdupq_n_u32(0x7F80_0000),
    );
    vbslq_u32(nan, vorrq_u32(hi, vdupq_n_u32(0x40)), rounded)
}

/// f32 row → bf16 (bytes) as `half::bf16::from_f32`, for `min(x.len(), y.len() / 2)` elements.
pub(super) fn quantize_row_bf16(x: &[f32], y: &mut [u8]) {
    let n = x.len().min(y.len() / 2);
    let mut i = 0;
    // SAFETY: each step reads 8 f32 and writes 16 bytes (8 values) at element `i`, `i + 8 <= n`.
    unsafe {
        while i + 8 <= n {
            let a = f32_to_bf16_bits(vld1q_f32(x.as_ptr().add(i)));
            let b = f32_to_bf16_bits(vld1q_f32(x.as_ptr().add(i + 4)));
            let h = vmovn_high_u32(vmovn_u32(a), b);
            vst1q_u8(y.as_mut_ptr().add(2 * i), vreinterpretq_u8_u16(h));
            i += 8;
        }
    }
    for (v, o) in x[i..n].iter().zip(y[2 * i..2 * n].chunks_exact_mut(2)) {
        o.copy_from_slice(&half::bf16::from_f32(*v).to_le_bytes());
    }
}
