//! Conversions with AVX2 of the quantized formats: weight rows to f32 (every element computed with
//! the same f32 operations, in the same order, as the scalar reference: `q * d`, `q * d + m`,
//! `d*sc * q - m*mn`, never fused), and f32 activations to Q8_0, Q8_1 and Q8_K (the same bytes as
//! the reference: the scale from the same scalar f32 operations, each element multiplied by the
//! same f32 inverse scale and rounded half to even, out-of-range values saturating as Rust's `as`
//! casts do).

use super::kernel::{Dequant, Quantize};
use super::kquants::{k4_scales_mins, q3_k_scales, q5k_values, q6_k_quarter_values};
use super::simd::*;
use crate::formats::block32::{self as b32, has_min, Block32, Quants};
use crate::formats::*;
use crate::GgmlType;
use half::f16;
use std::arch::x86_64::*;

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

/// The 32 values of a block (its quants minus the offset) as signed bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn values<B: Block32>(b: &B) -> __m256i {
    let v = match B::QUANTS {
        Quants::Bytes => return load_256_i8(b32::byte_quants(b)),
        Quants::Nibbles => nibbles_32(b32::nibble_bytes(b)),
        Quants::FiveBits => _mm256_or_si256(
            nibbles_32(b32::nibble_bytes(b)),
            _mm256_and_si256(bits_to_bytes(b32::fifth_bits(b)), _mm256_set1_epi8(0x10)),
        ),
    };
    if B::OFFSET == 0 {
        v
    } else {
        _mm256_sub_epi8(v, _mm256_set1_epi8(B::OFFSET))
    }
}

/// Every 32-element format: `(q − offset)·d`, or `q·d + m`.
impl<B: Block32> Dequant for B {
    const TYPE: GgmlType = B::TYPE;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[B], y: &mut [f32]) {
        for (b, out) in x.iter().zip(y.as_chunks_mut::<32>().0) {
            let m = has_min::<B>().then(|| f16_splat(b32::m(b)));
            store_scaled(out, values(b), f16_splat(b32::d(b)), m);
        }
    }
}

/// Stores 32 values from two 16-element sub-blocks: `q · d[i] − m[i]`, or `q · d[i]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store_two_subblocks(out: &mut [f32; 32], q: __m256i, d: [__m256; 2], m: Option<[__m256; 2]>) {
    let f = i8x32_to_f32(q);
    for (i, (o, v)) in out.as_chunks_mut::<8>().0.iter_mut().zip(f).enumerate() {
        let p = _mm256_mul_ps(v, d[i / 2]);
        store_f32x8(
            o,
            if let Some(m) = m {
                _mm256_sub_ps(p, m[i / 2])
            } else {
                p
            },
        );
    }
}

/// `d · s[i]` for 16 signed byte scales, as two vectors of 8 (the same f32 products as the
/// reference).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scaled16(d: __m256, s: __m128i) -> [__m256; 2] {
    let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s));
    let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(s)));
    [_mm256_mul_ps(d, lo), _mm256_mul_ps(d, hi)]
}

impl Dequant for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[BlockQ2K], y: &mut [f32]) {
        let m3 = _mm256_set1_epi8(3);
        for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
            // Scales and minimums are 4-bit, so as i8 they are non-negative.
            let packed = load_128(&b.scales);
            let dl = scaled16(f16_splat(b.d), _mm_and_si128(packed, _mm_set1_epi8(0x0F)));
            let ml = scaled16(
                f16_splat(b.dmin),
                _mm_and_si128(_mm_srli_epi16::<4>(packed), _mm_set1_epi8(0x0F)),
            );
            let (q2, _) = b.qs.as_chunks::<32>();
            let (outs, _) = out.as_chunks_mut::<32>();
            let mut outs = outs.iter_mut();
            for (k, q2) in q2.iter().enumerate() {
                let mut q = load_256(q2);
                for s in 0..4 {
                    let d = [lane(dl[k], 2 * s), lane(dl[k], 2 * s + 1)];
                    let m = [lane(ml[k], 2 * s), lane(ml[k], 2 * s + 1)];
                    store_two_subblocks(outs.next().unwrap(), _mm256_and_si256(q, m3), d, Some(m));
                    q = _mm256_srli_epi16::<2>(q);
                }
            }
        }
    }
}

impl Dequant for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[BlockQ3K], y: &mut [f32]) {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm256_set1_epi8(4);
        for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
            let sc = q3_k_scales(&b.scales);
            let dl = scaled16(f16_splat(b.d), sc);
            let mut hm = load_256(&b.hmask);
            let (q3, _) = b.qs.as_chunks::<32>();
            let (outs, _) = out.as_chunks_mut::<32>();
            let mut outs = outs.iter_mut();
            for (k, q3) in q3.iter().enumerate() {
                let mut q = load_256(q3);
                for s in 0..4 {
                    let u = _mm256_or_si256(
                        _mm256_and_si256(q, m3),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(hm), m4),
                    );
                    let d = [lane(dl[k], 2 * s), lane(dl[k], 2 * s + 1)];
                    store_two_subblocks(outs.next().unwrap(), _mm256_sub_epi8(u, m4), d, None);
                    q = _mm256_srli_epi16::<2>(q);
                    hm = _mm256_srli_epi16::<1>(hm);
                }
            }
        }
    }
}

impl Dequant for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[BlockQ4K], y: &mut [f32]) {
        let m4 = _mm256_set1_epi8(0x0F);
        for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
            let (sc, mn) = k4_scales_mins(&b.scales);
            let dl = _mm256_mul_ps(f16_splat(b.d), u8x8_to_f32(&sc));
            let ml = _mm256_mul_ps(f16_splat(b.dmin), u8x8_to_f32(&mn));
            let (q4, _) = b.qs.as_chunks::<32>();
            let (outs, _) = out.as_chunks_mut::<32>();
            for (j, (q4, o)) in q4.iter().zip(outs.chunks_exact_mut(2)).enumerate() {
                let q = load_256(q4);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                let (d1, m1) = (lane(dl, 2 * j), lane(ml, 2 * j));
                let (d2, m2) = (lane(dl, 2 * j + 1), lane(ml, 2 * j + 1));
                store_two_subblocks(&mut o[0], lo, [d1; 2], Some([m1; 2]));
                store_two_subblocks(&mut o[1], hi, [d2; 2], Some([m2; 2]));
            }
        }
    }
}

impl Dequant for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[BlockQ5K], y: &mut [f32]) {
        for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
            let (sc, mn) = k4_scales_mins(&b.scales);
            let dl = _mm256_mul_ps(f16_splat(b.d), u8x8_to_f32(&sc));
            let ml = _mm256_mul_ps(f16_splat(b.dmin), u8x8_to_f32(&mn));
            let mut qh = load_256(&b.qh);
            let (q5, _) = b.qs.as_chunks::<32>();
            let (outs, _) = out.as_chunks_mut::<32>();
            for (j, (q5, o)) in q5.iter().zip(outs.chunks_exact_mut(2)).enumerate() {
                let (lo, hi) = q5k_values(q5, &mut qh);
                let (d1, m1) = (lane(dl, 2 * j), lane(ml, 2 * j));
                let (d2, m2) = (lane(dl, 2 * j + 1), lane(ml, 2 * j + 1));
                store_two_subblocks(&mut o[0], lo, [d1; 2], Some([m1; 2]));
                store_two_subblocks(&mut o[1], hi, [d2; 2], Some([m2; 2]));
            }
        }
    }
}

impl Dequant for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dequant(x: &[BlockQ6K], y: &mut [f32]) {
        let m32 = _mm256_set1_epi8(32);
        for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
            let dl = scaled16(f16_splat(b.d), load_128(bytemuck::cast_ref(&b.scales)));
            let (ql, _) = b.ql.as_chunks::<64>();
            let (qh, _) = b.qh.as_chunks::<32>();
            let (outs, _) = out.as_chunks_mut::<32>();
            let mut outs = outs.iter_mut();
            for (n, (ql, qh)) in ql.iter().zip(qh).enumerate() {
                for (k, u) in q6_k_quarter_values(ql, qh).into_iter().enumerate() {
                    let d = [lane(dl[n], 2 * k), lane(dl[n], 2 * k + 1)];
                    store_two_subblocks(outs.next().unwrap(), _mm256_sub_epi8(u, m32), d, None);
                }
            }
        }
    }
}

// Activations: f32 to Q8_0, Q8_1, Q8_K.

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

impl Quantize for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const PER: usize = 32;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize(x: &[f32], y: &mut [BlockQ8_0]) {
        for (xs, b) in x.as_chunks::<32>().0.iter().zip(y) {
            let (d, q, _) = q8_block(xs);
            b.d = f16::from_f32(d);
            store_256(bytemuck::cast_mut(&mut b.qs), q);
        }
    }
}

impl Quantize for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const PER: usize = 32;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize(x: &[f32], y: &mut [BlockQ8_1]) {
        for (xs, b) in x.as_chunks::<32>().0.iter().zip(y) {
            let (d, q, sum) = q8_block(xs);
            b.d = f16::from_f32(d);
            b.s = f16::from_f32(d * sum as f32);
            store_256(bytemuck::cast_mut(&mut b.qs), q);
        }
    }
}

impl Quantize for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const PER: usize = 256;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn quantize(x: &[f32], y: &mut [BlockQ8K]) {
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
}
