//! Dequantization with AVX2: a row of blocks to f32. Each element is computed with the same f32
//! operations, in the same order, as the scalar reference (`q * d`, `q * d + m`, `d*sc * q - m*mn`,
//! never fused), so the output is bit-identical to it.

use super::kquants::{k4_scales_mins, q3_k_scales, q6_k_quarter_values};
use super::util::*;
use crate::blocks::*;
use std::arch::x86_64::*;

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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q2_k(x: &[BlockQ2K], y: &mut [f32]) {
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q3_k(x: &[BlockQ3K], y: &mut [f32]) {
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q4_k(x: &[BlockQ4K], y: &mut [f32]) {
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q5_k(x: &[BlockQ5K], y: &mut [f32]) {
    let m4 = _mm256_set1_epi8(0x0F);
    let bit4 = _mm256_set1_epi8(0x10);
    for (b, out) in x.iter().zip(y.as_chunks_mut::<256>().0) {
        let (sc, mn) = k4_scales_mins(&b.scales);
        let dl = _mm256_mul_ps(f16_splat(b.d), u8x8_to_f32(&sc));
        let ml = _mm256_mul_ps(f16_splat(b.dmin), u8x8_to_f32(&mn));
        let mut qh = load_256(&b.qh);
        let (q5, _) = b.qs.as_chunks::<32>();
        let (outs, _) = out.as_chunks_mut::<32>();
        for (j, (q5, o)) in q5.iter().zip(outs.chunks_exact_mut(2)).enumerate() {
            let q = load_256(q5);
            let lo = _mm256_or_si256(
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_slli_epi16::<4>(qh), bit4),
            );
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                _mm256_and_si256(_mm256_slli_epi16::<3>(qh), bit4),
            );
            qh = _mm256_srli_epi16::<2>(qh);
            let (d1, m1) = (lane(dl, 2 * j), lane(ml, 2 * j));
            let (d2, m2) = (lane(dl, 2 * j + 1), lane(ml, 2 * j + 1));
            store_two_subblocks(&mut o[0], lo, [d1; 2], Some([m1; 2]));
            store_two_subblocks(&mut o[1], hi, [d2; 2], Some([m2; 2]));
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dequant_q6_k(x: &[BlockQ6K], y: &mut [f32]) {
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
