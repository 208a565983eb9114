//! The float formats with AVX2 + FMA + F16C, in the scalar reference's orders: F16 · F16 as
//! llama.cpp's AVX-512 `ggml_vec_dot_f16` ([`crate::vec::dot_f16`]: 64 lanes of FMAs, a fixed
//! reduction tree, the tail in f64), F32 and BF16 as products rounded to f32 and summed in order
//! in f64 ([`crate::dot::scalar::vec_dot_f32`]); and the F16/BF16 → f32 conversions.

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

/// F16 · F16: element `i < n - n % 64` goes to lane `i % 64` with `fma(x, y, lane)` (eight
/// 8-lane vectors `acc[k]` = lanes `8k..8k+8`); `v[i] = (L[i] + L[i+32]) + (L[i+16] + L[i+48])`
/// for `i < 16`, then `hsum8(v[8..16] + v[0..8])` (which is `reduce16(v)`); the tail is added in
/// f64 and the sum rounded to f32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    let np = n - n % 64;
    let (x64, _) = x[..np].as_chunks::<64>();
    let (y64, _) = y[..np].as_chunks::<64>();
    let mut acc = [_mm256_setzero_ps(); 8];
    for (a, b) in x64.iter().zip(y64) {
        let (a, _) = a.as_chunks::<8>();
        let (b, _) = b.as_chunks::<8>();
        for k in 0..8 {
            acc[k] = _mm256_fmadd_ps(f16x8(&a[k]), f16x8(&b[k]), acc[k]);
        }
    }
    let lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    let hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    let mut sum = hsum_f32x8(_mm256_add_ps(hi, lo)) as f64;
    for i in np..n {
        sum += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    sum as f32
}

/// `Σ f64(x·y)` in order, the products rounded to f32: eight at a time, added one by one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_in_f64<T>(
    x: &[T],
    y: &[T],
    load: impl Fn(&[T; 8]) -> __m256,
    scalar: impl Fn(&T) -> f32,
) -> f32 {
    let (x8, xt) = x.as_chunks::<8>();
    let (y8, yt) = y.as_chunks::<8>();
    let mut s = 0f64;
    for (a, b) in x8.iter().zip(y8) {
        let mut p = [0f32; 8];
        store_f32x8(&mut p, _mm256_mul_ps(load(a), load(b)));
        for v in p {
            s += v as f64;
        }
    }
    for (a, b) in xt.iter().zip(yt) {
        s += (scalar(a) * scalar(b)) as f64;
    }
    s as f32
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    dot_in_f64(x, y, |v| load_f32x8(v), |v| *v)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
    dot_in_f64(x, y, |v| bf16x8(v), |v| v.to_f32())
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
