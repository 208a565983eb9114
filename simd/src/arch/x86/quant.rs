//! Activation quantizers with AVX2: f32 → Q8_0, Q8_1, Q8_K, F16, BF16.
//!
//! They produce the same bytes as the scalar reference: the scale is computed with the same
//! scalar f32 operations, each element is multiplied by the same f32 inverse scale and rounded
//! half to even (Q8_0/Q8_1: `127 / max|x|`, as llama.cpp's x86 `quantize_row_q8_0`; Q8_K:
//! `−127 / max`, as ggml's `nearest_int`), and out-of-range values saturate as Rust's `as` casts.

use super::util::*;
use crate::blocks::*;
use half::{bf16, f16};
use std::arch::x86_64::*;

/// Round half to even (the default rounding mode, written out rather than relied on).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_half_even(v: __m256) -> __m256 {
    _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
}

/// Rust's `f32 as i8` on integral values: NaN → 0, beyond the range → its end.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn saturate_i8(r: __m256) -> __m256 {
    let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
    _mm256_min_ps(
        _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
        _mm256_set1_ps(127.0),
    )
}

/// The reference's `(r as i32).min(127) as i8` on integral values, for `r` within ±127 or
/// infinite or NaN (the only values Q8_K's `iscale · x` takes): NaN and −∞ → 0, +∞ → 127.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_k_clamp(r: __m256) -> __m256 {
    let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_GE_OQ>(r, _mm256_set1_ps(-128.0)));
    _mm256_min_ps(r, _mm256_set1_ps(127.0))
}

/// The maximum of `|v|` over some vectors, ignoring NaN as `f32::max` does (`maxps` returns its
/// second operand when the first is NaN).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn abs_max(v: &[__m256]) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    v.iter().fold(_mm256_setzero_ps(), |m, &x| {
        _mm256_max_ps(_mm256_andnot_ps(sign, x), m)
    })
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// 32 integers (in four 8-lane vectors, each within i8) packed to 32 bytes in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i8(q: [__m256i; 4]) -> __m256i {
    // packs works per 128-bit lane, leaving the 4-byte groups in the order 0 2 4 6 1 3 5 7.
    let p = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

fn load4(x: &[f32; 32]) -> [&[f32; 8]; 4] {
    let (c, _) = x.as_chunks::<8>();
    [&c[0], &c[1], &c[2], &c[3]]
}

/// Q8_0/Q8_1 for one block: `d = max|x| / 127`, `q = round_ties_even(x · (127 / max|x|))`.
/// Returns `(d, q, Σq)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_block(xs: &[f32; 32]) -> (f32, __m256i, i32) {
    let v = load4(xs).map(|c| load_f32x8(c));
    let amax = hmax(abs_max(&v));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let q = v.map(|v| _mm256_cvtps_epi32(saturate_i8(round_half_even(_mm256_mul_ps(v, id)))));
    let sum = hsum_i32x8(_mm256_add_epi32(
        _mm256_add_epi32(q[0], q[1]),
        _mm256_add_epi32(q[2], q[3]),
    ));
    (d, pack_i8(q), sum)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xs, b) in x.as_chunks::<32>().0.iter().zip(y) {
        let (d, q, _) = q8_block(xs);
        b.d = f16::from_f32(d);
        store_256(bytemuck::cast_mut(&mut b.qs), q);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    for (xs, b) in x.as_chunks::<32>().0.iter().zip(y) {
        let (d, q, sum) = q8_block(xs);
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(d * sum as f32);
        store_256(bytemuck::cast_mut(&mut b.qs), q);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_q8_k(x: &[f32], y: &mut [BlockQ8K]) {
    let sign = _mm256_set1_ps(-0.0);
    for (xs, b) in x.as_chunks::<256>().0.iter().zip(y) {
        let (groups, _) = xs.as_chunks::<32>();
        let amax = groups.iter().fold(_mm256_setzero_ps(), |m, g| {
            _mm256_max_ps(abs_max(&load4(g).map(|c| load_f32x8(c))), m)
        });
        let amax = hmax(amax);
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The scale's sign comes from the first element of largest magnitude, as in the reference.
        let target = _mm256_set1_ps(amax);
        let (eights, _) = xs.as_chunks::<8>();
        let first = eights
            .iter()
            .enumerate()
            .find_map(|(i, c)| {
                let hit =
                    _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, load_f32x8(c)), target);
                let mask = _mm256_movemask_ps(hit);
                (mask != 0).then(|| 8 * i + mask.trailing_zeros() as usize)
            })
            .unwrap_or(0);
        let iscale = -127.0 / xs[first];
        let vs = _mm256_set1_ps(iscale);
        let ones8 = _mm256_set1_epi8(1);
        let ones16 = _mm256_set1_epi16(1);
        let (qs, _) = b.qs.as_chunks_mut::<32>();
        // Per 32 elements: 8 lanes holding the sums of 4 quants each (lanes 0..4: the first 16).
        let mut quad_sums = [_mm256_setzero_si256(); 8];
        for ((g, o), s) in groups.iter().zip(qs).zip(&mut quad_sums) {
            let q = load4(g).map(|c| {
                _mm256_cvtps_epi32(q8_k_clamp(round_half_even(_mm256_mul_ps(
                    vs,
                    load_f32x8(c),
                ))))
            });
            let q = pack_i8(q);
            store_256(bytemuck::cast_mut(o), q);
            *s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
        }
        // Two rounds of pairwise adds give, per 128-bit lane, the sums of 16: lane 0 holds sub-blocks
        // 0 2 4 6 (8 10 12 14), lane 1 sub-blocks 1 3 5 7 (9 11 13 15); unpacking interleaves them.
        let h = |a: usize| {
            let s = |i: usize| _mm256_hadd_epi32(quad_sums[i], quad_sums[i + 1]);
            _mm256_hadd_epi32(s(a), s(a + 2))
        };
        let packed = _mm256_packs_epi32(h(0), h(4));
        let (lo, hi) = (
            _mm256_castsi256_si128(packed),
            _mm256_extracti128_si256::<1>(packed),
        );
        let (bs, _) = b.bsums.as_chunks_mut::<8>();
        store_128(bytemuck::cast_mut(&mut bs[0]), _mm_unpacklo_epi16(lo, hi));
        store_128(bytemuck::cast_mut(&mut bs[1]), _mm_unpackhi_epi16(lo, hi));
        b.d = 1.0 / iscale;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_f16(x: &[f32], y: &mut [f16]) {
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn quantize_bf16(x: &[f32], y: &mut [bf16]) {
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
