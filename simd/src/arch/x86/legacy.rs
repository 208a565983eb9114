//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with AVX2: dot products with their
//! 8-bit activation blocks, and dequantization.
//!
//! Per block the integer dot product is exact (`maddubs` + `madd`, never saturating for these
//! ranges); the f32 scale product is folded in with one FMA per block into one of two
//! accumulators, so the result differs from the scalar kernel only by float rounding.

use super::util::*;
use crate::blocks::*;
use std::arch::x86_64::*;

/// Two f32 accumulators: the scaled integer sums and, for the formats with a minimum, `m · s`.
type Acc = (__m256, __m256);

/// Runs `f(block_x, block_y, acc)` over the block pairs into two interleaved accumulators (to
/// hide the FMA latency) and returns the sum of all lanes of the first plus lane 0 of the second.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn two_acc<A, B>(x: &[A], y: &[B], mut f: impl FnMut(&A, &B, Acc) -> Acc) -> f32 {
    let zero = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut acc0, mut acc1) = (zero, zero);
    let (x2, xr) = x.as_chunks::<2>();
    let (y2, yr) = y.as_chunks::<2>();
    for (a, b) in x2.iter().zip(y2) {
        acc0 = f(&a[0], &b[0], acc0);
        acc1 = f(&a[1], &b[1], acc1);
    }
    if let (Some(a), Some(b)) = (xr.first(), yr.first()) {
        acc0 = f(a, b, acc0);
    }
    let mins = _mm256_add_ps(acc0.1, acc1.1);
    hsum_f32x8(_mm256_add_ps(acc0.0, acc1.0)) + _mm256_cvtss_f32(mins)
}

/// `acc + d · float(s)` for 8 integer partial sums `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fma_i32(d: __m256, s: __m256i, acc: __m256) -> __m256 {
    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc)
}

/// The 32 signed 5-bit values (−16..15) of a Q5_0 block: where the fifth bit is clear, the
/// nibble gets 0xF0 ORed in, which as `i8` is exactly `nibble − 16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_0_values(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    let high = bits_to_bytes(u32::from_le_bytes(qh));
    _mm256_or_si256(
        nibbles_32(qs),
        _mm256_andnot_si256(high, _mm256_set1_epi8(0xF0u8 as i8)),
    )
}

/// The 32 unsigned 5-bit values (0..31) of a Q5_1 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q5_1_values(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    let high = bits_to_bytes(u32::from_le_bytes(qh));
    _mm256_or_si256(
        nibbles_32(qs),
        _mm256_and_si256(high, _mm256_set1_epi8(0x10)),
    )
}

/// One block of a format without minimum: `acc + dx·dy·s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn symmetric(dx: half::f16, dy: half::f16, s: __m256i, acc: Acc) -> Acc {
    (
        fma_i32(_mm256_mul_ps(f16_splat(dx), f16_splat(dy)), s, acc.0),
        acc.1,
    )
}

/// One block of a format with minimum: `acc + dx·dy·s`, `mins + m·sy` (`x_dm` holds `dx`, `m`;
/// `y_ds` holds `dy` and the activation block's `d·Σq`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn with_min(x_dm: [half::f16; 2], y_ds: [half::f16; 2], s: __m256i, acc: Acc) -> Acc {
    let p = _mm256_mul_ps(f16_pair(x_dm[0], x_dm[1]), f16_pair(y_ds[0], y_ds[1]));
    (
        fma_i32(even_lanes(p), s, acc.0),
        _mm256_add_ps(odd_lanes(p), acc.1),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    two_acc(x, y, |a, b, acc| {
        let w = _mm256_sub_epi8(nibbles_32(&a.qs), _mm256_set1_epi8(8));
        symmetric(a.d, b.d, dot_i8_i8(w, load_256_i8(&b.qs)), acc)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    two_acc(x, y, |a, b, acc| {
        let s = dot_u8_i8(nibbles_32(&a.qs), load_256_i8(&b.qs));
        with_min([a.d, a.m], [b.d, b.s], s, acc)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    two_acc(x, y, |a, b, acc| {
        symmetric(
            a.d,
            b.d,
            dot_i8_i8(q5_0_values(&a.qs, a.qh), load_256_i8(&b.qs)),
            acc,
        )
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    two_acc(x, y, |a, b, acc| {
        let s = dot_u8_i8(q5_1_values(&a.qs, a.qh), load_256_i8(&b.qs));
        with_min([a.d, a.m], [b.d, b.s], s, acc)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    two_acc(x, y, |a, b, acc| {
        symmetric(
            a.d,
            b.d,
            dot_i8_i8(load_256_i8(&a.qs), load_256_i8(&b.qs)),
            acc,
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Dequantization. Each element is computed with the same f32 operations, in the same order, as
// the scalar reference (`q * d`, or `q * d + m` without fusing), so the output is bit-identical.
// ---------------------------------------------------------------------------------------------

/// 32 bytes as signed integers to 4 × 8 floats, in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn i8x32_to_f32(v: __m256i) -> [__m256; 4] {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    [
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(lo))),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(hi))),
    ]
}

/// Stores `q · d` (and `+ m` when given, rounded separately) for 32 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_scaled(out: &mut [f32; 32], q: __m256i, d: __m256, m: Option<__m256>) {
    let f = i8x32_to_f32(q);
    for (o, v) in out.as_chunks_mut::<8>().0.iter_mut().zip(f) {
        let p = _mm256_mul_ps(v, d);
        store_f32x8(
            o,
            if let Some(m) = m {
                _mm256_add_ps(p, m)
            } else {
                p
            },
        );
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
        let q = _mm256_sub_epi8(nibbles_32(&b.qs), _mm256_set1_epi8(8));
        store_scaled(out, q, f16_splat(b.d), None);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q4_1(x: &[BlockQ4_1], y: &mut [f32]) {
    for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
        store_scaled(out, nibbles_32(&b.qs), f16_splat(b.d), Some(f16_splat(b.m)));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q5_0(x: &[BlockQ5_0], y: &mut [f32]) {
    for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
        store_scaled(out, q5_0_values(&b.qs, b.qh), f16_splat(b.d), None);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q5_1(x: &[BlockQ5_1], y: &mut [f32]) {
    for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
        store_scaled(
            out,
            q5_1_values(&b.qs, b.qh),
            f16_splat(b.d),
            Some(f16_splat(b.m)),
        );
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
        store_scaled(out, load_256_i8(&b.qs), f16_splat(b.d), None);
    }
}
