//! The float formats with AVX2 + FMA + F16C: F32, F16 and BF16 dot products (four independent
//! 8-lane FMA chains, a scalar tail for lengths that are not a multiple of 8) and the F16/BF16 →
//! f32 conversions.

use super::util::*;
use half::{bf16, f16};
use std::arch::x86_64::*;

/// 8 f16 to 8 f32 (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16x8(h: &[f16; 8]) -> __m256 {
    _mm256_cvtph_ps(load_128(bytemuck::cast_ref(h)))
}

/// 8 bf16 to 8 f32 (exact: a bf16 is the top half of an f32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bf16x8(h: &[bf16; 8]) -> __m256 {
    let wide = _mm256_cvtepu16_epi32(load_128(bytemuck::cast_ref(h)));
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
}

/// `Σ x[i]·y[i]` with `load` turning 8 elements of either side into floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_by<T>(
    x: &[T],
    y: &[T],
    load: impl Fn(&[T; 8]) -> __m256,
    scalar: impl Fn(&T) -> f32,
) -> f32 {
    let (x32, xt) = x.as_chunks::<32>();
    let (y32, yt) = y.as_chunks::<32>();
    let mut acc = [_mm256_setzero_ps(); 4];
    for (a, b) in x32.iter().zip(y32) {
        let (a, _) = a.as_chunks::<8>();
        let (b, _) = b.as_chunks::<8>();
        for k in 0..4 {
            acc[k] = _mm256_fmadd_ps(load(&a[k]), load(&b[k]), acc[k]);
        }
    }
    let (x8, xt) = xt.as_chunks::<8>();
    let (y8, yt) = yt.as_chunks::<8>();
    for (a, b) in x8.iter().zip(y8) {
        acc[0] = _mm256_fmadd_ps(load(a), load(b), acc[0]);
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let tail: f32 = xt.iter().zip(yt).map(|(a, b)| scalar(a) * scalar(b)).sum();
    hsum_f32x8(sum) + tail
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    dot_by(x, y, |v| load_f32x8(v), |v| *v)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
    dot_by(x, y, |v| f16x8(v), |v| v.to_f32())
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
    dot_by(x, y, |v| bf16x8(v), |v| v.to_f32())
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_to_f32_row(x: &[f16], y: &mut [f32]) {
    let (x8, xt) = x.as_chunks::<8>();
    let (y8, yt) = y.as_chunks_mut::<8>();
    for (a, o) in x8.iter().zip(y8.iter_mut()) {
        store_f32x8(o, f16x8(a));
    }
    for (a, o) in xt.iter().zip(yt) {
        *o = a.to_f32();
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn bf16_to_f32_row(x: &[bf16], y: &mut [f32]) {
    let (x8, xt) = x.as_chunks::<8>();
    let (y8, yt) = y.as_chunks_mut::<8>();
    for (a, o) in x8.iter().zip(y8.iter_mut()) {
        store_f32x8(o, bf16x8(a));
    }
    for (a, o) in xt.iter().zip(yt) {
        *o = a.to_f32();
    }
}
