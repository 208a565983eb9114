//! The float formats with AVX2 + FMA + F16C, in the scalar reference's orders: F16 · F16 as
//! llama.cpp's AVX-512 `ggml_vec_dot_f16` ([`crate::vec::scalar::dot_f16`]: 64 lanes of FMAs, a
//! fixed reduction tree, the tail in f64), F32 and BF16 as products rounded to f32 and summed in
//! order in f64 ([`crate::formats::float::vec_dot_f32`]); and the F16/BF16 conversions.

use super::kernel::{Dequant, Quantize};
use super::simd::*;
use super::tile::by_element_kernel;
use crate::GgmlType;
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
fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
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
fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    dot_in_f64(x, y, |v| load_f32x8(v), |v| *v)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
    dot_in_f64(x, y, |v| bf16x8(v), |v| v.to_f32())
}

impl Dequant for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[f16], y: &mut [f32]) {
        let (x8, xt) = x.as_chunks::<8>();
        let (y8, yt) = y.as_chunks_mut::<8>();
        for (a, o) in x8.iter().zip(y8.iter_mut()) {
            store_f32x8(o, f16x8(a));
        }
        for (a, o) in xt.iter().zip(yt) {
            *o = a.to_f32();
        }
    }
}

impl Dequant for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[bf16], y: &mut [f32]) {
        let (x8, xt) = x.as_chunks::<8>();
        let (y8, yt) = y.as_chunks_mut::<8>();
        for (a, o) in x8.iter().zip(y8.iter_mut()) {
            store_f32x8(o, bf16x8(a));
        }
        for (a, o) in xt.iter().zip(yt) {
            *o = a.to_f32();
        }
    }
}

// f32 to F16 and BF16.

impl Quantize for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const PER: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize(x: &[f32], y: &mut [f16]) {
        let (x8, xt) = x.as_chunks::<8>();
        let (y8, yt) = y.as_chunks_mut::<8>();
        for (v, o) in x8.iter().zip(y8.iter_mut()) {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(load_f32x8(v));
            store_128(bytemuck::cast_mut(o), h);
        }
        for (v, o) in xt.iter().zip(yt) {
            *o = f16::from_f32(*v);
        }
    }
}

/// f32 → bf16 for 8 lanes as 8 × u32: round to nearest even; NaN stays NaN (made quiet).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bf16_bits(v: __m256) -> __m256i {
    let u = _mm256_castps_si256(v);
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
        u,
        _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)),
    ));
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(0x40));
    let nan = _mm256_cmpgt_epi32(
        _mm256_and_si256(u, _mm256_set1_epi32(0x7FFF_FFFF)),
        _mm256_set1_epi32(0x7F80_0000),
    );
    _mm256_blendv_epi8(rounded, quiet, nan)
}

impl Quantize for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const PER: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize(x: &[f32], y: &mut [bf16]) {
        let (x16, xt) = x.as_chunks::<16>();
        let (y16, yt) = y.as_chunks_mut::<16>();
        for (v, o) in x16.iter().zip(y16.iter_mut()) {
            let (v, _) = v.as_chunks::<8>();
            let p = _mm256_packus_epi32(bf16_bits(load_f32x8(&v[0])), bf16_bits(load_f32x8(&v[1])));
            store_256(
                bytemuck::cast_mut(o),
                _mm256_permute4x64_epi64::<0b11_01_10_00>(p),
            );
        }
        for (v, o) in xt.iter().zip(yt) {
            *o = bf16::from_f32(*v);
        }
    }
}

// The float formats' dot products as kernels (their orders sum in f64 or in 64 lanes: nothing to
// share between the elements of a tile).
by_element_kernel!(F32: F32, f32, f32, 1, dot_f32);
by_element_kernel!(F16: F16, f16, f16, 1, dot_f16);
by_element_kernel!(BF16: BF16, bf16, bf16, 1, dot_bf16);
