//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with AVX2: dot products with their
//! 8-bit activation blocks, and dequantization.
//!
//! Per block the integer dot product is exact (`maddubs` + `madd`, never saturating for these
//! ranges); the f32 scale product is folded in with one FMA per block into one of two
//! accumulators, so the result differs from the scalar kernel only by float rounding.

use super::util::*;
use crate::blocks::*;
use half::f16;
use std::arch::x86_64::*;

/// Runs `f(x0, y0, x1, y1, acc)` over pairs of blocks (two FMA chains inside `f` hide the
/// latency) and `tail(x, y, acc)` on a last unpaired block; returns the sum of the lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn by_pairs<A, B>(
    x: &[A],
    y: &[B],
    mut f: impl FnMut(&A, &B, &A, &B, [__m256; 2]) -> [__m256; 2],
    tail: impl FnOnce(&A, &B, __m256) -> __m256,
) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    let (x2, xr) = x.as_chunks::<2>();
    let (y2, yr) = y.as_chunks::<2>();
    for (a, b) in x2.iter().zip(y2) {
        acc = f(&a[0], &b[0], &a[1], &b[1], acc);
    }
    if let (Some(a), Some(b)) = (xr.first(), yr.first()) {
        acc[0] = tail(a, b, acc[0]);
    }
    hsum_f32x8(_mm256_add_ps(acc[0], acc[1]))
}

/// `Σ (u − off)·s` in groups of four, for unsigned `u` with `u·|s|` pairs within `i16` (5-bit
/// values and smaller): `maddubs(u, s) − maddubs(off, s)`, one multiply-add cheaper than moving
/// signs around with `vpsignb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_offset_u8_i8(u: __m256i, off: i8, s: __m256i) -> __m256i {
    let p = _mm256_sub_epi16(
        _mm256_maddubs_epi16(u, s),
        _mm256_maddubs_epi16(_mm256_set1_epi8(off), s),
    );
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// `acc + d · float(s)` for 8 integer partial sums `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn fma_i32(d: __m256, s: __m256i, acc: __m256) -> __m256 {
    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc)
}

/// The scale products of two block pairs, `[dx0·dy0 ×8]` and `[dx1·dy1 ×8]`: the four f16 go
/// through one conversion (packed in a general-purpose register) instead of four.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pair_scales(dx0: f16, dy0: f16, dx1: f16, dy1: f16) -> [__m256; 2] {
    let bits = dx0.to_bits() as u64
        | ((dy0.to_bits() as u64) << 16)
        | ((dx1.to_bits() as u64) << 32)
        | ((dy1.to_bits() as u64) << 48);
    let v = _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64)); // dx0 dy0 dx1 dy1
    let p = _mm256_castps128_ps256(_mm_mul_ps(v, _mm_permute_ps::<0b10_11_00_01>(v)));
    [
        _mm256_permutevar8x32_ps(p, _mm256_setzero_si256()),
        _mm256_permutevar8x32_ps(p, _mm256_set1_epi32(2)),
    ]
}

/// For two blocks with minimum: `[dx0·dy0 ×8]`, `[dx1·dy1 ×8]` and a vector whose lanes 1 and 5
/// hold `m0·s0` and `m1·s1`, from each block's `(d, m)` and its activation block's `(d, s)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pair_scales_min(
    x0: [f16; 2],
    y0: [f16; 2],
    x1: [f16; 2],
    y1: [f16; 2],
) -> ([__m256; 2], __m256) {
    let bits = |x: [f16; 2], y: [f16; 2]| {
        (x[0].to_bits() as u64
            | ((x[1].to_bits() as u64) << 16)
            | ((y[0].to_bits() as u64) << 32)
            | ((y[1].to_bits() as u64) << 48)) as i64
    };
    let v = _mm256_cvtph_ps(_mm_set_epi64x(bits(x1, y1), bits(x0, y0)));
    let p = _mm256_mul_ps(v, _mm256_permute_ps::<0b01_00_11_10>(v));
    let d = [
        _mm256_permutevar8x32_ps(p, _mm256_setzero_si256()),
        _mm256_permutevar8x32_ps(p, _mm256_set1_epi32(4)),
    ];
    (d, p)
}

/// Lanes 1 and 5 of the `m·s` accumulator of [`pair_scales_min`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn min_lanes(v: __m256) -> f32 {
    let mut l = [0f32; 8];
    store_f32x8(&mut l, v);
    l[1] + l[5]
}

/// One block's `dx·dy` in all lanes (for a last unpaired block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn block_scale(dx: f16, dy: f16) -> __m256 {
    _mm256_mul_ps(f16_splat(dx), f16_splat(dy))
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let dot =
        |a: &BlockQ4_0, b: &BlockQ8_0| dot_offset_u8_i8(nibbles_32(&a.qs), 8, load_256_i8(&b.qs));
    by_pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let d = pair_scales(a0.d, b0.d, a1.d, b1.d);
            [
                fma_i32(d[0], dot(a0, b0), acc[0]),
                fma_i32(d[1], dot(a1, b1), acc[1]),
            ]
        },
        |a, b, acc| fma_i32(block_scale(a.d, b.d), dot(a, b), acc),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let dot = |a: &BlockQ5_0, b: &BlockQ8_0| {
        dot_offset_u8_i8(q5_1_values(&a.qs, a.qh), 16, load_256_i8(&b.qs))
    };
    by_pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let d = pair_scales(a0.d, b0.d, a1.d, b1.d);
            [
                fma_i32(d[0], dot(a0, b0), acc[0]),
                fma_i32(d[1], dot(a1, b1), acc[1]),
            ]
        },
        |a, b, acc| fma_i32(block_scale(a.d, b.d), dot(a, b), acc),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let dot = |a: &BlockQ8_0, b: &BlockQ8_0| dot_i8_i8(load_256_i8(&a.qs), load_256_i8(&b.qs));
    by_pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let d = pair_scales(a0.d, b0.d, a1.d, b1.d);
            [
                fma_i32(d[0], dot(a0, b0), acc[0]),
                fma_i32(d[1], dot(a1, b1), acc[1]),
            ]
        },
        |a, b, acc| fma_i32(block_scale(a.d, b.d), dot(a, b), acc),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let dot = |a: &BlockQ4_1, b: &BlockQ8_1| dot_u8_i8(nibbles_32(&a.qs), load_256_i8(&b.qs));
    let mut mins = _mm256_setzero_ps();
    let mut last_min = 0.0f32;
    let sum = by_pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let (d, ms) = pair_scales_min([a0.d, a0.m], [b0.d, b0.s], [a1.d, a1.m], [b1.d, b1.s]);
            mins = _mm256_add_ps(mins, ms);
            [
                fma_i32(d[0], dot(a0, b0), acc[0]),
                fma_i32(d[1], dot(a1, b1), acc[1]),
            ]
        },
        |a, b, acc| {
            last_min = a.m.to_f32() * b.s.to_f32();
            fma_i32(block_scale(a.d, b.d), dot(a, b), acc)
        },
    );
    sum + min_lanes(mins) + last_min
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let dot =
        |a: &BlockQ5_1, b: &BlockQ8_1| dot_u8_i8(q5_1_values(&a.qs, a.qh), load_256_i8(&b.qs));
    let mut mins = _mm256_setzero_ps();
    let mut last_min = 0.0f32;
    let sum = by_pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let (d, ms) = pair_scales_min([a0.d, a0.m], [b0.d, b0.s], [a1.d, a1.m], [b1.d, b1.s]);
            mins = _mm256_add_ps(mins, ms);
            [
                fma_i32(d[0], dot(a0, b0), acc[0]),
                fma_i32(d[1], dot(a1, b1), acc[1]),
            ]
        },
        |a, b, acc| {
            last_min = a.m.to_f32() * b.s.to_f32();
            fma_i32(block_scale(a.d, b.d), dot(a, b), acc)
        },
    );
    sum + min_lanes(mins) + last_min
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
