//! The K-quants (Q2_K..Q6_K) with AVX2: dot products with Q8_K activations, and dequantization.
//!
//! Each super-block's integer sum is exact: the quants are expanded to unsigned bytes, multiplied
//! with the activations by `maddubs` (never saturating for these ranges), and weighted by their
//! sub-block scales with `madd`. Offsets (Q6_K's −32, Q3_K's −4, the Q2_K/Q4_K/Q5_K minimums)
//! are folded in through Q8_K's per-16 sums `bsums`. One FMA per super-block adds the scale.

use super::legacy::i8x32_to_f32;
use super::util::*;
use crate::blocks::*;
use std::arch::x86_64::*;

/// The eight 6-bit scales and eight 6-bit minimums packed in the 12 scale bytes of Q4_K and
/// Q5_K (the same values as `reference::get_scale_min_k4(0..8)`), unpacked 4 at a time.
#[inline]
pub(crate) fn k4_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a0, a1, a2) = (word(0), word(1), word(2));
    // Sub-blocks 0..4 keep their 6 bits in bytes 0..4 (scales) and 4..8 (mins); sub-blocks 4..8
    // have their low 4 bits in bytes 8..12 and their top 2 bits in bits 6..8 of bytes 0..8.
    let sc_lo = a0 & 0x3F3F_3F3F;
    let sc_hi = (a2 & 0x0F0F_0F0F) | ((a0 >> 2) & 0x3030_3030);
    let mn_lo = a1 & 0x3F3F_3F3F;
    let mn_hi = ((a2 >> 4) & 0x0F0F_0F0F) | ((a1 >> 2) & 0x3030_3030);
    let join = |lo: u32, hi: u32| (lo as u64 | ((hi as u64) << 32)).to_le_bytes();
    (join(sc_lo, sc_hi), join(mn_lo, mn_hi))
}

/// The sixteen signed 6-bit scales of Q3_K (as `reference::q3_k_scales`) as bytes of a vector,
/// assembled 4 at a time in general-purpose registers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q3_k_scales(s: &[u8; 12]) -> __m128i {
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a0, a1, a2) = (word(0), word(1), word(2));
    // Low 4 bits: the low nibbles of bytes 0..8 (scales 0..8), then their high nibbles (8..16).
    // High 2 bits: bit pair `j / 4` of byte `8 + j % 4`.
    let w0 = (a0 & 0x0F0F_0F0F) | ((a2 << 4) & 0x3030_3030);
    let w1 = (a1 & 0x0F0F_0F0F) | ((a2 << 2) & 0x3030_3030);
    let w2 = ((a0 >> 4) & 0x0F0F_0F0F) | (a2 & 0x3030_3030);
    let w3 = ((a1 >> 4) & 0x0F0F_0F0F) | ((a2 >> 2) & 0x3030_3030);
    let v = _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32);
    _mm_sub_epi8(v, _mm_set1_epi8(32))
}

/// The first and second 32 activations of a 64-element slice.
#[inline]
fn halves(q: &[i8; 64]) -> (&[i8; 32], &[i8; 32]) {
    let (a, b) = q.split_at(32);
    (a.try_into().unwrap(), b.try_into().unwrap())
}

#[inline]
fn quarters(q: &[i8; 128]) -> [&[i8; 32]; 4] {
    let (c, _) = q.as_chunks::<32>();
    [&c[0], &c[1], &c[2], &c[3]]
}

/// The 16 signed byte scales of a super-block's 16-element sub-blocks as `i16`, ready for
/// [`scale_pair`]: scales 0..8 in both 128-bit lanes of the first vector, 8..16 of the second.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_i16(scales: __m128i) -> [__m256i; 2] {
    [
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scales)),
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128::<8>(scales))),
    ]
}

/// `vpshufb` masks: [`PAIR_MASKS`]`[p]` puts `i16` lane `2p` of each 128-bit half in all lanes of
/// the low half and lane `2p + 1` in the high half; [`LANE_MASKS`]`[j]` puts lane `j` everywhere.
static PAIR_MASKS: [[u8; 32]; 4] = shuffle_masks(true);
static LANE_MASKS: [[u8; 32]; 8] = shuffle_masks(false);

/// Masks whose byte `i` picks byte `i % 2` of `i16` lane `2k` (`pairs`: `2k + 1` for the high
/// half) or lane `k`.
const fn shuffle_masks<const N: usize>(pairs: bool) -> [[u8; 32]; N] {
    let mut m = [[0u8; 32]; N];
    let mut k = 0;
    while k < N {
        let mut i = 0;
        while i < 32 {
            let lane = if !pairs {
                k
            } else if i < 16 {
                2 * k
            } else {
                2 * k + 1
            };
            m[k][i] = (2 * lane + i % 2) as u8;
            i += 1;
        }
        k += 1;
    }
    m
}

/// The masks, hidden from the optimiser: with constant masks LLVM rewrites each one-instruction
/// `vpshufb` of a broadcast into three shuffles (`pshuflw`/`pshufd`/`vpermq`), which made the
/// shuffle port the bottleneck of the K-quant loops. Loaded from L1 they stay one `vpshufb`.
#[inline]
fn opaque<T>(masks: &'static T) -> &'static T {
    std::hint::black_box(masks)
}

/// The `i16` multipliers for the 32-byte vector `k` (0..8) of a super-block: sub-block `2k`'s
/// scale in the low lane (its 16 elements' `maddubs` pairs), `2k + 1`'s in the high lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pair(sc: &[__m256i; 2], k: usize, masks: &[[u8; 32]; 4]) -> __m256i {
    _mm256_shuffle_epi8(sc[k / 4], load_256(&masks[k % 4]))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&PAIR_MASKS);
    let m3 = _mm256_set1_epi8(3);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let packed = load_128(&a.scales);
        let scales = scales_i16(_mm_and_si128(packed, _mm_set1_epi8(0x0F)));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(
            _mm_srli_epi16::<4>(packed),
            _mm_set1_epi8(0x0F),
        ));
        let mins = _mm256_madd_epi16(mins, load_256_i16(&b.bsums));
        let mut sumi = _mm256_setzero_si256();
        let (q2, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<128>();
        for (k, (q2, q8)) in q2.iter().zip(q8).enumerate() {
            let mut q = load_256(q2);
            for (s, q8) in quarters(q8).into_iter().enumerate() {
                let u = _mm256_and_si256(q, m3);
                let p = _mm256_maddubs_epi16(u, load_256_i8(q8));
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_madd_epi16(p, scale_pair(&scales, 4 * k + s, masks)),
                );
                q = _mm256_srli_epi16::<2>(q);
            }
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm256_fmadd_ps(even_lanes(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(odd_lanes(d), _mm256_cvtepi32_ps(mins), acc_min);
    }
    hsum_f32x8(acc) - hsum_f32x8(acc_min)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&PAIR_MASKS);
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let scales = q3_k_scales(&a.scales);
        // Σ sc·(u − 4)·q8 = Σ sc·u·q8 − 4·Σ sc·bsum
        let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load_256_i16(&b.bsums));
        let scales = scales_i16(scales);
        let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<2>(offset));
        let mut hm = load_256(&a.hmask);
        let (q3, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<128>();
        for (k, (q3, q8)) in q3.iter().zip(q8).enumerate() {
            let mut q = load_256(q3);
            for (s, q8) in quarters(q8).into_iter().enumerate() {
                // u = low 2 bits | high bit << 2, in 0..8
                let u = _mm256_or_si256(
                    _mm256_and_si256(q, m3),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(hm), m4),
                );
                let p = _mm256_maddubs_epi16(u, load_256_i8(q8));
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_madd_epi16(p, scale_pair(&scales, 4 * k + s, masks)),
                );
                q = _mm256_srli_epi16::<2>(q);
                hm = _mm256_srli_epi16::<1>(hm);
            }
        }
        let d = _mm256_mul_ps(f16_splat(a.d), _mm256_set1_ps(b.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// min·bsum over the 8 sub-blocks of 32 of a Q4_K / Q5_K super-block, in 4 partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_min_sums(mins: &[u8; 8], bsums: &[i16; 16]) -> __m128i {
    let bs = load_256_i16(bsums);
    let per32 = _mm_hadd_epi16(
        _mm256_castsi256_si128(bs),
        _mm256_extracti128_si256::<1>(bs),
    );
    _mm_madd_epi16(per32, _mm_cvtepu8_epi16(load_64(mins)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&LANE_MASKS);
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let mins = k4_min_sums(&mn, &b.bsums);
        let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(load_64(&sc)));
        let mut sumi = _mm256_setzero_si256();
        let (q4, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (j, (q4, q8)) in q4.iter().zip(q8).enumerate() {
            let q = load_256(q4);
            let (y0, y1) = halves(q8);
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(q, m4), load_256_i8(y0));
            let hi = _mm256_maddubs_epi16(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                load_256_i8(y1),
            );
            let lo = _mm256_madd_epi16(lo, _mm256_shuffle_epi8(sc16, load_256(&masks[2 * j])));
            let hi = _mm256_madd_epi16(hi, _mm256_shuffle_epi8(sc16, load_256(&masks[2 * j + 1])));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(lo, hi));
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm256_fmadd_ps(even_lanes(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm_fmadd_ps(
            _mm256_castps256_ps128(odd_lanes(d)),
            _mm_cvtepi32_ps(mins),
            acc_min,
        );
    }
    hsum_f32x8(acc) - hsum_f32x4(acc_min)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&LANE_MASKS);
    let m4 = _mm256_set1_epi8(0x0F);
    let bit4 = _mm256_set1_epi8(0x10);
    let mut acc = _mm256_setzero_ps();
    let mut acc_min = _mm_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let mins = k4_min_sums(&mn, &b.bsums);
        let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(load_64(&sc)));
        let mut sumi = _mm256_setzero_si256();
        let mut qh = load_256(&a.qh);
        let (q5, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (j, (q5, q8)) in q5.iter().zip(q8).enumerate() {
            // Sub-block 2j takes bit 2j of qh as its fifth bit, sub-block 2j + 1 bit 2j + 1;
            // qh is shifted right by 2 per step so these are always bits 0 and 1.
            let q = load_256(q5);
            let ulo = _mm256_or_si256(
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_slli_epi16::<4>(qh), bit4),
            );
            let uhi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
                _mm256_and_si256(_mm256_slli_epi16::<3>(qh), bit4),
            );
            qh = _mm256_srli_epi16::<2>(qh);
            let (y0, y1) = halves(q8);
            let lo = _mm256_madd_epi16(
                _mm256_maddubs_epi16(ulo, load_256_i8(y0)),
                _mm256_shuffle_epi8(sc16, load_256(&masks[2 * j])),
            );
            let hi = _mm256_madd_epi16(
                _mm256_maddubs_epi16(uhi, load_256_i8(y1)),
                _mm256_shuffle_epi8(sc16, load_256(&masks[2 * j + 1])),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(lo, hi));
        }
        let d = _mm256_mul_ps(f16_pair(a.d, a.dmin), _mm256_set1_ps(b.d));
        acc = _mm256_fmadd_ps(even_lanes(d), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm_fmadd_ps(
            _mm256_castps256_ps128(odd_lanes(d)),
            _mm_cvtepi32_ps(mins),
            acc_min,
        );
    }
    hsum_f32x8(acc) - hsum_f32x4(acc_min)
}

/// The four 32-byte vectors of unsigned 6-bit values (0..64) of one 128-element half of a Q6_K
/// block, in element order: `ql` is its 64 low-nibble bytes, `qh` its 32 high-bit bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_quarter_values(ql: &[u8; 64], qh: &[u8; 32]) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let (l, _) = ql.as_chunks::<32>();
    let (l0, l1) = (load_256(&l[0]), load_256(&l[1]));
    let h = load_256(qh);
    [
        _mm256_or_si256(
            _mm256_and_si256(l0, m4),
            _mm256_and_si256(_mm256_slli_epi16::<4>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(l1, m4),
            _mm256_and_si256(_mm256_slli_epi16::<2>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
            _mm256_and_si256(h, m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
            _mm256_and_si256(_mm256_srli_epi16::<2>(h), m30),
        ),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&PAIR_MASKS);
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let scales = load_128(bytemuck::cast_ref(&a.scales));
        // Σ sc·(u − 32)·q8 = Σ sc·u·q8 − 32·Σ sc·bsum
        let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load_256_i16(&b.bsums));
        let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(offset));
        let scales = scales_i16(scales);
        let (ql, _) = a.ql.as_chunks::<64>();
        let (qh, _) = a.qh.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<128>();
        for (n, ((ql, qh), q8)) in ql.iter().zip(qh).zip(q8).enumerate() {
            let u = q6_k_quarter_values(ql, qh);
            for (k, (u, q8)) in u.into_iter().zip(quarters(q8)).enumerate() {
                let p = _mm256_maddubs_epi16(u, load_256_i8(q8));
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_madd_epi16(p, scale_pair(&scales, 4 * n + k, masks)),
                );
            }
        }
        let d = _mm256_mul_ps(f16_splat(a.d), _mm256_set1_ps(b.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

// ---------------------------------------------------------------------------------------------
// Dequantization, bit-identical to the scalar reference (same f32 operations in the same order).
// ---------------------------------------------------------------------------------------------

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
