//! F32 and F16 rows: dot products (f32 fused multiply-add over four accumulators), f16 ↔ f32
//! conversion of whole rows. Rows are taken as bytes and loaded bytewise, so no alignment is
//! assumed.

use super::common::*;
use core::arch::aarch64::*;

/// Four f32 at byte pointer `p`.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
unsafe fn ld_f32(p: *const u8) -> float32x4_t {
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

fn f32_at(x: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]])
}

fn f16_at(x: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([x[2 * i], x[2 * i + 1]]))
}

/// `sum(x[i] * y[i])` over `n` f32 (little-endian bytes). Panics if a row is shorter.
pub(crate) fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (&x[..4 * n], &y[..4 * n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut i = 0;
    // SAFETY: every load reads 4 f32 (16 bytes) at element `i + 4k` with `i + 4k + 4 <= n`;
    // the rest is register arithmetic of the aarch64 baseline (Advanced SIMD).
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let off = 4 * (i + 4 * k);
                *a = vfmaq_f32(*a, ld_f32(px.add(off)), ld_f32(py.add(off)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], ld_f32(px.add(4 * i)), ld_f32(py.add(4 * i)));
            i += 4;
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    for j in i..n {
        s += f32_at(x, j) * f32_at(y, j);
    }
    s
}

/// `sum(x[i] * y[i])` over `n` f16 (little-endian bytes), products and sums in f32.
pub(crate) fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = (&x[..2 * n], &y[..2 * n]);
    let (px, py) = (x.as_ptr(), y.as_ptr());
    let mut i = 0;
    // SAFETY: every load reads 8 halves (16 bytes) at element `i` or `i + 8`, with the last
    // element read below `n` by the loop conditions; the rest is register arithmetic.
    let mut s = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            let (x0, x1) = ld_f16x8(px.add(2 * i));
            let (x2, x3) = ld_f16x8(px.add(2 * i + 16));
            let (y0, y1) = ld_f16x8(py.add(2 * i));
            let (y2, y3) = ld_f16x8(py.add(2 * i + 16));
            acc[0] = vfmaq_f32(acc[0], x0, y0);
            acc[1] = vfmaq_f32(acc[1], x1, y1);
            acc[2] = vfmaq_f32(acc[2], x2, y2);
            acc[3] = vfmaq_f32(acc[3], x3, y3);
            i += 16;
        }
        while i + 8 <= n {
            let (x0, x1) = ld_f16x8(px.add(2 * i));
            let (y0, y1) = ld_f16x8(py.add(2 * i));
            acc[0] = vfmaq_f32(acc[0], x0, y0);
            acc[1] = vfmaq_f32(acc[1], x1, y1);
            i += 8;
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    for j in i..n {
        s += f16_at(x, j) * f16_at(y, j);
    }
    s
}

/// f16 row (bytes) → f32, exactly, for `min(x.len() / 2, y.len())` elements.
pub(crate) fn dequantize_row_f16(x: &[u8], y: &mut [f32]) {
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
pub(crate) fn quantize_row_f16(x: &[f32], y: &mut [u8]) {
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
