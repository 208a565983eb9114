//! The K-quants (Q2_K..Q6_K) with AVX2: unpacking their scales and quants into what the integer
//! kernels take. The kernels, one per summation order, are in `kquant_orders`.

use super::simd::*;
use std::arch::x86_64::*;

/// The eight 6-bit scales and eight 6-bit minimums packed in the 12 scale bytes of Q4_K and
/// Q5_K (the same values as [`crate::formats::q4_k::get_scale_min_k4`] for 0..8), unpacked 4 at a time.
#[inline]
pub(super) fn k4_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
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

/// The sixteen signed 6-bit scales of Q3_K (as [`crate::formats::q3_k::unpack_scales`]) as bytes of a vector,
/// assembled 4 at a time in general-purpose registers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q3_k_scales(s: &[u8; 12]) -> __m128i {
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
pub(super) fn halves(q: &[i8; 64]) -> (&[i8; 32], &[i8; 32]) {
    let (a, b) = q.split_at(32);
    (a.try_into().unwrap(), b.try_into().unwrap())
}

#[inline]
pub(super) fn quarters(q: &[i8; 128]) -> [&[i8; 32]; 4] {
    let (c, _) = q.as_chunks::<32>();
    [&c[0], &c[1], &c[2], &c[3]]
}

/// The 16 signed byte scales of a super-block's 16-element sub-blocks as `i16`, ready for
/// [`scale_pair`]: scales 0..8 in both 128-bit lanes of the first vector, 8..16 of the second.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn scales_i16(scales: __m128i) -> [__m256i; 2] {
    [
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scales)),
        _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128::<8>(scales))),
    ]
}

/// `vpshufb` masks: [`PAIR_MASKS`]`[p]` puts `i16` lane `2p` of each 128-bit half in all lanes of
/// the low half and lane `2p + 1` in the high half; [`LANE_MASKS`]`[j]` puts lane `j` everywhere.
pub(super) static PAIR_MASKS: [[u8; 32]; 4] = shuffle_masks(true);
pub(super) static LANE_MASKS: [[u8; 32]; 8] = shuffle_masks(false);

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
pub(super) fn opaque<T>(masks: &'static T) -> &'static T {
    std::hint::black_box(masks)
}

/// The `i16` multipliers for the 32-byte vector `k` (0..8) of a super-block: sub-block `2k`'s
/// scale in the low lane (its 16 elements' `maddubs` pairs), `2k + 1`'s in the high lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn scale_pair(sc: &[__m256i; 2], k: usize, masks: &[[u8; 32]; 4]) -> __m256i {
    _mm256_shuffle_epi8(sc[k / 4], load_256(&masks[k % 4]))
}

/// min·bsum over the 8 sub-blocks of 32 of a Q4_K / Q5_K super-block, in 4 partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn k4_min_sums(mins: &[u8; 8], bsums: &[i16; 16]) -> __m128i {
    let bs = load_256_i16(bsums);
    let per32 = _mm_hadd_epi16(
        _mm256_castsi256_si128(bs),
        _mm256_extracti128_si256::<1>(bs),
    );
    _mm_madd_epi16(per32, _mm_cvtepu8_epi16(load_64(mins)))
}

/// The four 32-byte vectors of unsigned 6-bit values (0..64) of one 128-element half of a Q6_K
/// block, in element order: `ql` is its 64 low-nibble bytes, `qh` its 32 high-bit bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q6_k_quarter_values(ql: &[u8; 64], qh: &[u8; 32]) -> [__m256i; 4] {
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

/// The unsigned 5-bit values of the 64 elements `j` of a Q5_K super-block (`q`: their 32 nibble
/// bytes) as two 32-byte vectors (sub-blocks `2j` and `2j + 1`), with the fifth bits from `qh`,
/// which is then shifted right by 2 for the next step (sub-block `2j` takes bit `2j` of each
/// `qh` byte, `2j + 1` bit `2j + 1`: bits 0 and 1 after `j` shifts).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q5k_values(q: &[u8; 32], qh: &mut __m256i) -> (__m256i, __m256i) {
    let (m4, bit4) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x10));
    let q = load_256(q);
    let lo = _mm256_or_si256(
        _mm256_and_si256(q, m4),
        _mm256_and_si256(_mm256_slli_epi16::<4>(*qh), bit4),
    );
    let hi = _mm256_or_si256(
        _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
        _mm256_and_si256(_mm256_slli_epi16::<3>(*qh), bit4),
    );
    *qh = _mm256_srli_epi16::<2>(*qh);
    (lo, hi)
}
