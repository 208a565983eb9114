//! x86-64 kernels with AVX-512 (F, BW, VL) and AVX-512 VNNI, for the formats where 512-bit
//! vectors measurably beat the AVX2 kernels (see `bench/benches/kernels.rs`): two legacy blocks
//! or 64 K-quant elements per instruction, `vpdpbusd` for the byte dot products, and 16-lane
//! FMAs for the float formats. Everything else at this level is the AVX2 kernel.
//!
//! Integer sums are exact as in the AVX2 kernels; only the f32 accumulation order differs.

use super::util::{f16_pair, load_256, load_256_i16, load_256_i8, load_64};
use super::{kquants, legacy};
use crate::blocks::*;
use half::{bf16, f16};
use std::arch::x86_64::*;

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_512(b: &[u8; 64]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_512_i8(b: &[i8; 64]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load_f32x16(v: &[f32; 16]) -> __m512 {
    // SAFETY: `v` is 16 readable floats; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_ps(v.as_ptr()) }
}

/// Two 256-bit halves as one vector: `lo` in bits 0..256.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// The 32 activations of two Q8_0 / Q8_1 blocks in one vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pair_i8(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
    join(load_256_i8(a), load_256_i8(b))
}

/// The nibbles of two legacy blocks in element order: `[lo(a) | hi(a) | lo(b) | hi(b)]`, 16
/// bytes each.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn nibbles_pair(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    let a = _mm256_broadcastsi128_si256(super::util::load_128(a));
    let b = _mm256_broadcastsi128_si256(super::util::load_128(b));
    // Shift the second copy of each block by 4 (16-bit lanes 8..16 and 24..32).
    let shift = _mm512_mask_blend_epi16(0xFF00_FF00, _mm512_setzero_si512(), _mm512_set1_epi16(4));
    _mm512_and_si512(_mm512_srlv_epi16(join(a, b), shift), _mm512_set1_epi8(0x0F))
}

/// `[a0·b0 ×8 | a1·b1 ×8]` from four f16 scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn scale_products(a0: f16, b0: f16, a1: f16, b1: f16) -> __m512 {
    let bits = a0.to_bits() as u64
        | ((b0.to_bits() as u64) << 16)
        | ((a1.to_bits() as u64) << 32)
        | ((b1.to_bits() as u64) << 48);
    let v = _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64)); // a0 b0 a1 b1
    let p = _mm_mul_ps(v, _mm_permute_ps::<0b10_11_00_01>(v)); // a0b0 a0b0 a1b1 a1b1
    let idx = _mm512_mask_blend_epi32(0xFF00, _mm512_setzero_si512(), _mm512_set1_epi32(2));
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(p))
}

/// For two blocks with minimum: `([dx0·dy0 ×8 | dx1·dy1 ×8], [_, m0·s0, _, _, _, m1·s1, _, _])`
/// from each block's `(d, m)` and its activation block's `(d, s)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn scale_products_min(x0: [f16; 2], y0: [f16; 2], x1: [f16; 2], y1: [f16; 2]) -> (__m512, __m256) {
    let bits = |x: [f16; 2], y: [f16; 2]| {
        (x[0].to_bits() as u64
            | ((x[1].to_bits() as u64) << 16)
            | ((y[0].to_bits() as u64) << 32)
            | ((y[1].to_bits() as u64) << 48)) as i64
    };
    let v = _mm256_cvtph_ps(_mm_set_epi64x(bits(x1, y1), bits(x0, y0)));
    let p = _mm256_mul_ps(v, _mm256_permute_ps::<0b01_00_11_10>(v));
    let idx = _mm512_mask_blend_epi32(0xFF00, _mm512_setzero_si512(), _mm512_set1_epi32(4));
    (_mm512_permutexvar_ps(idx, _mm512_castps256_ps512(p)), p)
}

/// `Σ x·y` over groups of four for unsigned `u` (each ≤ 128) and signed `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_u8_i8(u: __m512i, s: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s)
}

/// `Σ (u − off)·s` over groups of four, for unsigned `u` and a constant offset `off`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_offset_u8_i8(u: __m512i, off: i8, s: __m512i) -> __m512i {
    _mm512_sub_epi32(dot_u8_i8(u, s), dot_u8_i8(_mm512_set1_epi8(off), s))
}

/// `Σ w·a` over groups of four for signed `w` and `a` (`a` never −128): `|w|` times `a` with
/// `w`'s sign.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_i8_i8(w: __m512i, a: __m512i) -> __m512i {
    let neg = _mm512_movepi8_mask(w);
    let a = _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
    dot_u8_i8(_mm512_abs_epi8(w), a)
}

/// Sums pairs of blocks with `f(x0, y0, x1, y1, acc)` into two accumulators; a last unpaired
/// block goes to `tail` (the AVX2 kernel).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pairs<A, B>(
    x: &[A],
    y: &[B],
    mut f: impl FnMut(&A, &B, &A, &B, __m512) -> __m512,
    tail: impl Fn(&[A], &[B]) -> f32,
) -> f32 {
    let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let (x4, xr) = x.as_chunks::<4>();
    let (y4, yr) = y.as_chunks::<4>();
    for (a, b) in x4.iter().zip(y4) {
        acc0 = f(&a[0], &b[0], &a[1], &b[1], acc0);
        acc1 = f(&a[2], &b[2], &a[3], &b[3], acc1);
    }
    let (x2, xr) = xr.as_chunks::<2>();
    let (y2, yr) = yr.as_chunks::<2>();
    if let (Some(a), Some(b)) = (x2.first(), y2.first()) {
        acc0 = f(&a[0], &b[0], &a[1], &b[1], acc0);
    }
    let rest = if xr.is_empty() { 0.0 } else { tail(xr, yr) };
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + rest
}

// ---------------------------------------------------------------------------------------------
// Legacy formats: two blocks per 512-bit vector, VNNI dot products.
// ---------------------------------------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let s = dot_offset_u8_i8(nibbles_pair(&a0.qs, &a1.qs), 8, pair_i8(&b0.qs, &b1.qs));
            _mm512_fmadd_ps(
                scale_products(a0.d, b0.d, a1.d, b1.d),
                _mm512_cvtepi32_ps(s),
                acc,
            )
        },
        |x, y| legacy::dot_q4_0_q8_0(x, y),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let s = dot_i8_i8(pair_i8(&a0.qs, &a1.qs), pair_i8(&b0.qs, &b1.qs));
            _mm512_fmadd_ps(
                scale_products(a0.d, b0.d, a1.d, b1.d),
                _mm512_cvtepi32_ps(s),
                acc,
            )
        },
        |x, y| legacy::dot_q8_0_q8_0(x, y),
    )
}

/// The fifth bits of two Q5 blocks as a byte mask over `[a | b]`.
#[inline]
fn fifth_bits_pair(a: [u8; 4], b: [u8; 4]) -> __mmask64 {
    u32::from_le_bytes(a) as u64 | ((u32::from_le_bytes(b) as u64) << 32)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let n = nibbles_pair(&a0.qs, &a1.qs);
            let u = _mm512_mask_add_epi8(n, fifth_bits_pair(a0.qh, a1.qh), n, _mm512_set1_epi8(16));
            let s = dot_offset_u8_i8(u, 16, pair_i8(&b0.qs, &b1.qs));
            _mm512_fmadd_ps(
                scale_products(a0.d, b0.d, a1.d, b1.d),
                _mm512_cvtepi32_ps(s),
                acc,
            )
        },
        |x, y| legacy::dot_q5_0_q8_0(x, y),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut mins = _mm256_setzero_ps();
    let sum = pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let s = dot_u8_i8(nibbles_pair(&a0.qs, &a1.qs), pair_i8(&b0.qs, &b1.qs));
            let (d, ms) =
                scale_products_min([a0.d, a0.m], [b0.d, b0.s], [a1.d, a1.m], [b1.d, b1.s]);
            mins = _mm256_add_ps(mins, ms);
            _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc)
        },
        |x, y| legacy::dot_q4_1_q8_1(x, y),
    );
    sum + min_lanes(mins)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut mins = _mm256_setzero_ps();
    let sum = pairs(
        x,
        y,
        |a0, b0, a1, b1, acc| {
            let n = nibbles_pair(&a0.qs, &a1.qs);
            let u = _mm512_mask_add_epi8(n, fifth_bits_pair(a0.qh, a1.qh), n, _mm512_set1_epi8(16));
            let s = dot_u8_i8(u, pair_i8(&b0.qs, &b1.qs));
            let (d, ms) =
                scale_products_min([a0.d, a0.m], [b0.d, b0.s], [a1.d, a1.m], [b1.d, b1.s]);
            mins = _mm256_add_ps(mins, ms);
            _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc)
        },
        |x, y| legacy::dot_q5_1_q8_1(x, y),
    );
    sum + min_lanes(mins)
}

/// Lanes 1 and 5 of the `m·s` accumulator of [`scale_products_min`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn min_lanes(v: __m256) -> f32 {
    let mut l = [0f32; 8];
    super::util::store_f32x8(&mut l, v);
    l[1] + l[5]
}

// ---------------------------------------------------------------------------------------------
// K-quants: 64 elements per vector.
// ---------------------------------------------------------------------------------------------

/// `[v ×16 | w ×16]` as `i16` lanes picked from the `i16` lanes of `src` (a `vpermw`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pick_two_i16(src: __m512i, v: usize, w: usize) -> __m512i {
    let idx = _mm512_mask_blend_epi16(
        0xFFFF_0000,
        _mm512_set1_epi16(v as i16),
        _mm512_set1_epi16(w as i16),
    );
    _mm512_permutexvar_epi16(idx, src)
}

/// `[s[a] ×8 | s[a+1] ×8 | s[a+2] ×8 | s[a+3] ×8]` as `i16` lanes: the multipliers of four
/// 16-element sub-blocks' `maddubs` pairs.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn pick_four_i16(src: __m512i, a: usize) -> __m512i {
    let a = a as i16;
    let lo = _mm512_mask_blend_epi16(0xFF00_FF00, _mm512_set1_epi16(a), _mm512_set1_epi16(a + 1));
    let hi = _mm512_add_epi16(lo, _mm512_set1_epi16(2));
    let idx = _mm512_mask_blend_epi16(0xFFFF_0000, lo, hi);
    _mm512_permutexvar_epi16(idx, src)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm512_set1_epi8(0x0F);
    // The second 256-bit half of each vector takes the high nibbles.
    let shift = _mm512_mask_blend_epi16(0xFFFF_0000, _mm512_setzero_si512(), _mm512_set1_epi16(4));
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = kquants::k4_scales_mins(&a.scales);
        let bs = load_256_i16(&b.bsums);
        let per32 = _mm_hadd_epi16(
            _mm256_castsi256_si128(bs),
            _mm256_extracti128_si256::<1>(bs),
        );
        let mins = _mm_madd_epi16(per32, _mm_cvtepu8_epi16(load_64(&mn)));
        let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(load_64(&sc)));
        let mut sumi = _mm512_setzero_si512();
        let (q4, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (j, (q4, q8)) in q4.iter().zip(q8).enumerate() {
            let q = _mm512_and_si512(
                _mm512_srlv_epi16(_mm512_broadcast_i64x4(load_256(q4)), shift),
                m4,
            );
            let p = _mm512_maddubs_epi16(q, load_512_i8(q8));
            sumi = _mm512_add_epi32(
                sumi,
                _mm512_madd_epi16(p, pick_two_i16(sc16, 2 * j, 2 * j + 1)),
            );
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm512_fmadd_ps(
            _mm512_set1_ps(_mm256_cvtss_f32(d)),
            _mm512_cvtepi32_ps(sumi),
            acc,
        );
        let dmin = _mm256_castps256_ps128(_mm256_permute_ps::<0b01_01_01_01>(d));
        acc_min = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(mins), acc_min);
    }
    _mm512_reduce_add_ps(acc) - super::util::hsum_f32x4(acc_min)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm512_set1_epi8(0x0F);
    let m30 = _mm512_set1_epi8(0x30);
    // qh bit pairs 0-1 | 2-3 move to bits 4-5 by shifting left 4 | 2; pairs 4-5 | 6-7 by 0 | −2.
    let shl = _mm512_mask_blend_epi16(0xFFFF_0000, _mm512_set1_epi16(4), _mm512_set1_epi16(2));
    let shr = _mm512_mask_blend_epi16(0xFFFF_0000, _mm512_setzero_si512(), _mm512_set1_epi16(2));
    let mut acc = _mm512_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let scales = super::util::load_128(bytemuck::cast_ref(&a.scales));
        let sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
        // Σ sc·(u − 32)·q8 = Σ sc·u·q8 − 32·Σ sc·bsum
        let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load_256_i16(&b.bsums));
        let offset = _mm512_castsi256_si512(_mm256_slli_epi32::<5>(offset));
        let mut sumi = _mm512_sub_epi32(_mm512_setzero_si512(), offset);
        let (ql, _) = a.ql.as_chunks::<64>();
        let (qh, _) = a.qh.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (n, (ql, qh)) in ql.iter().zip(qh).enumerate() {
            let l = load_512(ql);
            let h = _mm512_broadcast_i64x4(load_256(qh));
            // Elements 0..64: low nibbles | high bits 0-1, 2-3; elements 64..128: high nibbles |
            // high bits 4-5, 6-7.
            let u0 = _mm512_or_si512(
                _mm512_and_si512(l, m4),
                _mm512_and_si512(_mm512_sllv_epi16(h, shl), m30),
            );
            let u1 = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(l), m4),
                _mm512_and_si512(_mm512_srlv_epi16(h, shr), m30),
            );
            for (k, u) in [u0, u1].into_iter().enumerate() {
                let p = _mm512_maddubs_epi16(u, load_512_i8(&q8[2 * n + k]));
                sumi = _mm512_add_epi32(
                    sumi,
                    _mm512_madd_epi16(p, pick_four_i16(sc16, 8 * n + 4 * k)),
                );
            }
        }
        let d = super::util::f16_splat(a.d);
        let d = _mm256_mul_ps(d, _mm256_set1_ps(b.d));
        acc = _mm512_fmadd_ps(
            _mm512_set1_ps(_mm256_cvtss_f32(d)),
            _mm512_cvtepi32_ps(sumi),
            acc,
        );
    }
    _mm512_reduce_add_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm512_set1_epi8(0x0F);
    let bit4 = _mm512_set1_epi8(0x10);
    let halves = |lo: i16, hi: i16| {
        _mm512_mask_blend_epi16(0xFFFF_0000, _mm512_set1_epi16(lo), _mm512_set1_epi16(hi))
    };
    let (nibble_shift, bit_shift) = (halves(0, 4), halves(0, 1));
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = kquants::k4_scales_mins(&a.scales);
        let bs = load_256_i16(&b.bsums);
        let per32 = _mm_hadd_epi16(
            _mm256_castsi256_si128(bs),
            _mm256_extracti128_si256::<1>(bs),
        );
        let mins = _mm_madd_epi16(per32, _mm_cvtepu8_epi16(load_64(&mn)));
        let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(load_64(&sc)));
        // Sub-block 2j takes bit 2j of qh, 2j + 1 bit 2j + 1: shifting the upper half right by
        // one lines both up at bit 2j, and each step shifts by two more.
        let mut qh = _mm512_srlv_epi16(_mm512_broadcast_i64x4(load_256(&a.qh)), bit_shift);
        let mut sumi = _mm512_setzero_si512();
        let (q5, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (j, (q5, q8)) in q5.iter().zip(q8).enumerate() {
            let q = _mm512_and_si512(
                _mm512_srlv_epi16(_mm512_broadcast_i64x4(load_256(q5)), nibble_shift),
                m4,
            );
            let u = _mm512_or_si512(q, _mm512_and_si512(_mm512_slli_epi16::<4>(qh), bit4));
            qh = _mm512_srli_epi16::<2>(qh);
            let p = _mm512_maddubs_epi16(u, load_512_i8(q8));
            sumi = _mm512_add_epi32(
                sumi,
                _mm512_madd_epi16(p, pick_two_i16(sc16, 2 * j, 2 * j + 1)),
            );
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm512_fmadd_ps(
            _mm512_set1_ps(_mm256_cvtss_f32(d)),
            _mm512_cvtepi32_ps(sumi),
            acc,
        );
        let dmin = _mm256_castps256_ps128(_mm256_permute_ps::<0b01_01_01_01>(d));
        acc_min = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(mins), acc_min);
    }
    _mm512_reduce_add_ps(acc) - super::util::hsum_f32x4(acc_min)
}

/// The 2-bit fields of 32 bytes for shifts `2s` (low half) and `2s + 2` (high half): 64 values
/// in element order for Q2_K / Q3_K, where field `s` of byte `l` is element `32·s + l`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn two_bit_fields(q: __m512i, s: i16) -> __m512i {
    let shift = _mm512_mask_blend_epi16(
        0xFFFF_0000,
        _mm512_set1_epi16(2 * s),
        _mm512_set1_epi16(2 * s + 2),
    );
    _mm512_and_si512(_mm512_srlv_epi16(q, shift), _mm512_set1_epi8(3))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let packed = super::util::load_128(&a.scales);
        let sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(
            packed,
            _mm_set1_epi8(0x0F),
        )));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(
            _mm_srli_epi16::<4>(packed),
            _mm_set1_epi8(0x0F),
        ));
        let mins = _mm256_madd_epi16(mins, load_256_i16(&b.bsums));
        let mut sumi = _mm512_setzero_si512();
        let (q2, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (k, q2) in q2.iter().enumerate() {
            let q = _mm512_broadcast_i64x4(load_256(q2));
            for h in 0..2 {
                let u = two_bit_fields(q, 2 * h as i16);
                let p = _mm512_maddubs_epi16(u, load_512_i8(&q8[2 * k + h]));
                sumi = _mm512_add_epi32(
                    sumi,
                    _mm512_madd_epi16(p, pick_four_i16(sc16, 8 * k + 4 * h)),
                );
            }
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm512_fmadd_ps(
            _mm512_set1_ps(_mm256_cvtss_f32(d)),
            _mm512_cvtepi32_ps(sumi),
            acc,
        );
        acc_min = _mm256_fmadd_ps(
            _mm256_permute_ps::<0b01_01_01_01>(d),
            _mm256_cvtepi32_ps(mins),
            acc_min,
        );
    }
    _mm512_reduce_add_ps(acc) - super::util::hsum_f32x8(acc_min)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let scales = kquants::q3_k_scales(&a.scales);
        let sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
        // Σ sc·(u − 4)·q8 = Σ sc·u·q8 − 4·Σ sc·bsum
        let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load_256_i16(&b.bsums));
        let mut sumi = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_castsi256_si512(_mm256_slli_epi32::<2>(offset)),
        );
        let hm = _mm512_broadcast_i64x4(load_256(&a.hmask));
        let (q3, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (k, q3) in q3.iter().enumerate() {
            let q = _mm512_broadcast_i64x4(load_256(q3));
            for h in 0..2 {
                // Field s of byte l has its high bit in bit 4k + s of hmask[l].
                let s = (4 * k + 2 * h) as u32;
                let bits = _mm512_mask_blend_epi8(
                    0xFFFF_FFFF_0000_0000,
                    _mm512_set1_epi8((1u32 << s) as i8),
                    _mm512_set1_epi8((1u32 << (s + 1)) as u8 as i8),
                );
                let high = _mm512_test_epi8_mask(hm, bits);
                let low = two_bit_fields(q, 2 * h as i16);
                let u = _mm512_mask_add_epi8(low, high, low, _mm512_set1_epi8(4));
                let p = _mm512_maddubs_epi16(u, load_512_i8(&q8[2 * k + h]));
                sumi = _mm512_add_epi32(
                    sumi,
                    _mm512_madd_epi16(p, pick_four_i16(sc16, 8 * k + 4 * h)),
                );
            }
        }
        let d = _mm512_set1_ps(b.d * _mm256_cvtss_f32(super::util::f16_splat(a.d)));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}

// ---------------------------------------------------------------------------------------------
// Float formats: 16 lanes, four FMA chains.
// ---------------------------------------------------------------------------------------------

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_by16<T: Copy>(
    x: &[T],
    y: &[T],
    load: impl Fn(&[T; 16]) -> __m512,
    tail: impl Fn(&[T], &[T]) -> f32,
) -> f32 {
    let (x64, xt) = x.as_chunks::<64>();
    let (y64, yt) = y.as_chunks::<64>();
    let mut acc = [_mm512_setzero_ps(); 4];
    for (a, b) in x64.iter().zip(y64) {
        let (a, _) = a.as_chunks::<16>();
        let (b, _) = b.as_chunks::<16>();
        for k in 0..4 {
            acc[k] = _mm512_fmadd_ps(load(&a[k]), load(&b[k]), acc[k]);
        }
    }
    let (x16, xt) = xt.as_chunks::<16>();
    let (y16, yt) = yt.as_chunks::<16>();
    for (a, b) in x16.iter().zip(y16) {
        acc[0] = _mm512_fmadd_ps(load(a), load(b), acc[0]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let rest = if xt.is_empty() { 0.0 } else { tail(xt, yt) };
    _mm512_reduce_add_ps(sum) + rest
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    dot_by16(x, y, |v| load_f32x16(v), |x, y| super::float::dot_f32(x, y))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
    dot_by16(
        x,
        y,
        |v| _mm512_cvtph_ps(load_256(bytemuck::cast_ref(v))),
        |x, y| super::float::dot_f16(x, y),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
    dot_by16(
        x,
        y,
        |v| {
            let wide = _mm512_cvtepu16_epi32(load_256(bytemuck::cast_ref(v)));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        },
        |x, y| super::float::dot_bf16(x, y),
    )
}

/// BF16 · BF16 with AVX-512 BF16's `vdpbf16ps` (pairs of products added into f32 lanes): 32
/// elements per instruction. Installed only where the CPU has `avx512bf16`. Like the hardware, it
/// treats subnormal inputs as zero, which moves the sum by less than 2^-126 per element.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")]
pub(super) fn dot_bf16_dpbf16(x: &[bf16], y: &[bf16]) -> f32 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")]
    fn load(v: &[bf16; 32]) -> __m512bh {
        let bits = load_512(bytemuck::cast_ref(v));
        // SAFETY: `__m512i` and `__m512bh` are both 64-byte vectors of plain integer lanes, and
        // every bit pattern is a valid value of either.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(bits) }
    }
    let (x128, xt) = x.as_chunks::<128>();
    let (y128, yt) = y.as_chunks::<128>();
    let mut acc = [_mm512_setzero_ps(); 4];
    for (a, b) in x128.iter().zip(y128) {
        let (a, _) = a.as_chunks::<32>();
        let (b, _) = b.as_chunks::<32>();
        for k in 0..4 {
            acc[k] = _mm512_dpbf16_ps(acc[k], load(&a[k]), load(&b[k]));
        }
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let rest = if xt.is_empty() { 0.0 } else { dot_bf16(xt, yt) };
    _mm512_reduce_add_ps(sum) + rest
}
