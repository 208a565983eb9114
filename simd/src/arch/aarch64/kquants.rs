//! Dot products of the K-quants (Q2_K .. Q6_K) with Q8_K activations, generic over the 16-byte
//! integer dot ([`Dot`]).
//!
//! All integer sums are exact. Offsets in the weights (Q3_K's `-4`, Q6_K's `-32`) and the
//! minimums (Q2_K, Q4_K, Q5_K) are applied through the activation block's per-16 sums `bsums`,
//! so the quants are dotted unsigned and the offset costs one small dot per super-block.
//! Where sub-blocks of 16 carry their own scale, four 16-byte dots are reduced to one vector of
//! four sums (pairwise adds) and multiplied by four scales at once.
//!
//! The activation blocks must be what `quantize_row_q8_k` produces: `bsums[j]` is the sum of
//! `qs[16j..16j + 16]`.

use super::common::*;
use crate::blocks::*;
use core::arch::aarch64::*;

#[inline(always)]
fn le32(q: &[u8], k: usize) -> u32 {
    u32::from_le_bytes([q[4 * k], q[4 * k + 1], q[4 * k + 2], q[4 * k + 3]])
}

/// The eight 6-bit scales and eight 6-bit mins of Q4_K / Q5_K, each as eight bytes (sub-block
/// order) packed in a little-endian u64.
#[inline(always)]
pub(crate) fn k4_scales_mins(q: &[u8; 12]) -> (u64, u64) {
    let (a, b, c) = (le32(q, 0), le32(q, 1), le32(q, 2));
    // Sub-blocks 0..4: the low six bits of bytes 0..4 (scales) and 4..8 (mins). Sub-blocks 4..8:
    // a nibble of bytes 8..12, topped with the two spare high bits of bytes 0..4 / 4..8.
    let sc_lo = a & 0x3f3f_3f3f;
    let mn_lo = b & 0x3f3f_3f3f;
    let sc_hi = (c & 0x0f0f_0f0f) | ((a >> 2) & 0x3030_3030);
    let mn_hi = ((c >> 4) & 0x0f0f_0f0f) | ((b >> 2) & 0x3030_3030);
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        mn_lo as u64 | (mn_hi as u64) << 32,
    )
}

/// The sixteen signed 6-bit scales of Q3_K, in sub-block order.
#[inline(always)]
pub(crate) fn q3_k_scales(q: &[u8; 12]) -> [u32; 4] {
    let (a, b, c) = (le32(q, 0), le32(q, 1), le32(q, 2));
    // Four low bits from bytes 0..8 (low nibbles, then high nibbles), two high bits from bytes
    // 8..12 (bit pair 2k for the k-th group of four sub-blocks); then minus 32, bytewise.
    let lo = 0x0f0f_0f0f;
    let hi = 0x0303_0303;
    let s = [
        (a & lo) | ((c & hi) << 4),
        (b & lo) | (((c >> 2) & hi) << 4),
        ((a >> 4) & lo) | (((c >> 4) & hi) << 4),
        ((b >> 4) & lo) | (((c >> 6) & hi) << 4),
    ];
    // Every byte is in 0..64, so adding 0x60 never carries into the next byte, and flipping bit
    // 7 afterwards makes the sum `x + 0xE0`, i.e. `x - 32` modulo 256 (as i8: -32..31).
    let sub32 = |w: u32| w.wrapping_add(0x6060_6060) ^ 0x8080_8080;
    [sub32(s[0]), sub32(s[1]), sub32(s[2]), sub32(s[3])]
}

/// `sum(m[j] * (bsums[2j] + bsums[2j + 1]))` for eight unsigned 6-bit mins.
#[inline(always)]
unsafe fn mins_dot_bsums(mins: u64, bsums: &[i16; 16]) -> i32 {
    // Pair sums of valid bsums are at most 32 * 127 in magnitude: they fit an i16.
    let bs = vpaddq_s16(vld1q_s16(bsums.as_ptr()), vld1q_s16(bsums.as_ptr().add(8)));
    let m = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(mins)));
    let prod = vmlal_high_s16(vmull_s16(vget_low_s16(bs), vget_low_s16(m)), bs, m);
    vaddvq_s32(prod)
}

/// `sum(s[j] * bsums[j])` for sixteen i16 scales given as two vectors.
#[inline(always)]
unsafe fn scales_dot_bsums(s0: int16x8_t, s1: int16x8_t, bsums: &[i16; 16]) -> i32 {
    let b0 = vld1q_s16(bsums.as_ptr());
    let b1 = vld1q_s16(bsums.as_ptr().add(8));
    let p = vmull_s16(vget_low_s16(b0), vget_low_s16(s0));
    let p = vmlal_high_s16(p, b0, s0);
    let p = vmlal_s16(p, vget_low_s16(b1), vget_low_s16(s1));
    let p = vmlal_high_s16(p, b1, s1);
    vaddvq_s32(p)
}

/// Sixteen i8 scales widened to four i32x4 vectors (and the two i16x8 halves).
#[inline(always)]
unsafe fn widen_scales(s: int8x16_t) -> ([int32x4_t; 4], int16x8_t, int16x8_t) {
    let s0 = vmovl_s8(vget_low_s8(s));
    let s1 = vmovl_high_s8(s);
    let w = [
        vmovl_s16(vget_low_s16(s0)),
        vmovl_high_s16(s0),
        vmovl_s16(vget_low_s16(s1)),
        vmovl_high_s16(s1),
    ];
    (w, s0, s1)
}

#[inline(always)]
unsafe fn s8(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// Eight 16-byte dots of `v[g]` with the activations at `q8 + 16 g`, reduced to two vectors of
/// four sums (groups 0..4 and 4..8), weighted by `sc_a` / `sc_b` and added to `acc`.
#[inline(always)]
unsafe fn eight_groups<D: Dot>(
    acc: int32x4_t,
    v: [uint8x16_t; 8],
    q8: *const i8,
    sc_a: int32x4_t,
    sc_b: int32x4_t,
) -> int32x4_t {
    let z = vdupq_n_s32(0);
    // No `array::from_fn` here: its closure would not be `inline(always)` (see `legacy`).
    let mut d = [z; 8];
    for g in 0..8 {
        d[g] = D::dot(z, s8(v[g]), vld1q_s8(q8.add(16 * g)));
    }
    let acc = vmlaq_s32(acc, hsum4(d[0], d[1], d[2], d[3]), sc_a);
    vmlaq_s32(acc, hsum4(d[4], d[5], d[6], d[7]), sc_b)
}

/// Q2_K · Q8_K.
///
/// # Safety
/// `D`'s instructions must be available. Reads only inside the given blocks.
#[inline(always)]
pub(crate) unsafe fn q2_k_q8_k<D: Dot>(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let m3 = vdupq_n_u8(3);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sc = vld1q_u8(a.scales.as_ptr());
        let mins = vshrq_n_u8::<4>(sc);
        let mins0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
        let mins1 = vreinterpretq_s16_u16(vmovl_high_u8(mins));
        let summs = scales_dot_bsums(mins0, mins1, &b.bsums);
        let (scl, _, _) = widen_scales(s8(vandq_u8(sc, vdupq_n_u8(0x0F))));

        let mut isum = vdupq_n_s32(0);
        for k in 0..2 {
            let mut q0 = vld1q_u8(a.qs.as_ptr().add(32 * k));
            let mut q1 = vld1q_u8(a.qs.as_ptr().add(32 * k + 16));
            let mut v = [vdupq_n_u8(0); 8];
            for s in 0..4 {
                v[2 * s] = vandq_u8(q0, m3);
                v[2 * s + 1] = vandq_u8(q1, m3);
                q0 = vshrq_n_u8::<2>(q0);
                q1 = vshrq_n_u8::<2>(q1);
            }
            isum = eight_groups::<D>(
                isum,
                v,
                b.qs.as_ptr().add(128 * k),
                scl[2 * k],
                scl[2 * k + 1],
            );
        }
        let dall = b.d * f16_to_f32(a.d.to_bits());
        let dmin = b.d * f16_to_f32(a.dmin.to_bits());
        sumf += dall * vaddvq_s32(isum) as f32 - dmin * summs as f32;
    }
    sumf
}

/// Q3_K · Q8_K: quants `low2 + 4 * hbit` (0..7) dotted unsigned, minus `4 * bsums`.
///
/// # Safety
/// As [`q2_k_q8_k`].
#[inline(always)]
pub(crate) unsafe fn q3_k_q8_k<D: Dot>(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let m3 = vdupq_n_u8(3);
    let four = vdupq_n_u8(4);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sc_words = q3_k_scales(&a.scales);
        let (sc, sc0, sc1) = widen_scales(vreinterpretq_s8_u32(vld1q_u32(sc_words.as_ptr())));
        let offset = scales_dot_bsums(sc0, sc1, &b.bsums);

        let mut hm0 = vld1q_u8(a.hmask.as_ptr());
        let mut hm1 = vld1q_u8(a.hmask.as_ptr().add(16));
        let mut isum = vdupq_n_s32(0);
        for k in 0..2 {
            let mut q0 = vld1q_u8(a.qs.as_ptr().add(32 * k));
            let mut q1 = vld1q_u8(a.qs.as_ptr().add(32 * k + 16));
            let mut v = [vdupq_n_u8(0); 8];
            for s in 0..4 {
                v[2 * s] = vorrq_u8(vandq_u8(q0, m3), vandq_u8(vshlq_n_u8::<2>(hm0), four));
                v[2 * s + 1] = vorrq_u8(vandq_u8(q1, m3), vandq_u8(vshlq_n_u8::<2>(hm1), four));
                q0 = vshrq_n_u8::<2>(q0);
                q1 = vshrq_n_u8::<2>(q1);
                hm0 = vshrq_n_u8::<1>(hm0);
                hm1 = vshrq_n_u8::<1>(hm1);
            }
            isum = eight_groups::<D>(
                isum,
                v,
                b.qs.as_ptr().add(128 * k),
                sc[2 * k],
                sc[2 * k + 1],
            );
        }
        let d = f16_to_f32(a.d.to_bits()) * b.d;
        sumf += d * (vaddvq_s32(isum) - 4 * offset) as f32;
    }
    sumf
}

/// The common part of Q4_K and Q5_K: 64 quants per step (two sub-blocks of 32, each its own
/// scale), `lo[0..2]` for the first sub-block and `hi[0..2]` for the second.
#[inline(always)]
unsafe fn k4_step<D: Dot>(
    acc: int32x4_t,
    lo: [int8x16_t; 2],
    hi: [int8x16_t; 2],
    q8: *const i8,
    sc1: i32,
    sc2: i32,
) -> int32x4_t {
    let z = vdupq_n_s32(0);
    let p1 = D::dot(D::dot(z, lo[0], vld1q_s8(q8)), lo[1], vld1q_s8(q8.add(16)));
    let p2 = D::dot(
        D::dot(z, hi[0], vld1q_s8(q8.add(32))),
        hi[1],
        vld1q_s8(q8.add(48)),
    );
    vmlaq_n_s32(vmlaq_n_s32(acc, p1, sc1), p2, sc2)
}

/// Q4_K · Q8_K.
///
/// # Safety
/// As [`q2_k_q8_k`].
#[inline(always)]
pub(crate) unsafe fn q4_k_q8_k<D: Dot>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let sum_m = mins_dot_bsums(mn, &b.bsums);
        let sc = sc.to_le_bytes();
        let mut isum = vdupq_n_s32(0);
        for j in 0..4 {
            let q0 = vld1q_u8(a.qs.as_ptr().add(32 * j));
            let q1 = vld1q_u8(a.qs.as_ptr().add(32 * j + 16));
            isum = k4_step::<D>(
                isum,
                [lo_nibbles(q0), lo_nibbles(q1)],
                [hi_nibbles(q0), hi_nibbles(q1)],
                b.qs.as_ptr().add(64 * j),
                sc[2 * j] as i32,
                sc[2 * j + 1] as i32,
            );
        }
        let d = f16_to_f32(a.d.to_bits()) * b.d;
        let dmin = f16_to_f32(a.dmin.to_bits()) * b.d;
        sumf += d * vaddvq_s32(isum) as f32 - dmin * sum_m as f32;
    }
    sumf
}

/// Q5_K · Q8_K: Q4_K's nibbles plus a fifth bit per quant from `qh` (bit `2j` / `2j + 1` of
/// `qh[l]` for the two sub-blocks of step `j`).
///
/// # Safety
/// As [`q2_k_q8_k`].
#[inline(always)]
pub(crate) unsafe fn q5_k_q8_k<D: Dot>(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m10 = vdupq_n_u8(0x10);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let sum_m = mins_dot_bsums(mn, &b.bsums);
        let sc = sc.to_le_bytes();
        let mut h0 = vld1q_u8(a.qh.as_ptr());
        let mut h1 = vld1q_u8(a.qh.as_ptr().add(16));
        let mut isum = vdupq_n_s32(0);
        for j in 0..4 {
            let q0 = vld1q_u8(a.qs.as_ptr().add(32 * j));
            let q1 = vld1q_u8(a.qs.as_ptr().add(32 * j + 16));
            // Bit 0 of h → 0x10 for the first sub-block, bit 1 → 0x10 for the second.
            let lo = [
                vorrq_s8(lo_nibbles(q0), s8(vandq_u8(vshlq_n_u8::<4>(h0), m10))),
                vorrq_s8(lo_nibbles(q1), s8(vandq_u8(vshlq_n_u8::<4>(h1), m10))),
            ];
            let hi = [
                vorrq_s8(hi_nibbles(q0), s8(vandq_u8(vshlq_n_u8::<3>(h0), m10))),
                vorrq_s8(hi_nibbles(q1), s8(vandq_u8(vshlq_n_u8::<3>(h1), m10))),
            ];
            h0 = vshrq_n_u8::<2>(h0);
            h1 = vshrq_n_u8::<2>(h1);
            isum = k4_step::<D>(
                isum,
                lo,
                hi,
                b.qs.as_ptr().add(64 * j),
                sc[2 * j] as i32,
                sc[2 * j + 1] as i32,
            );
        }
        let d = f16_to_f32(a.d.to_bits()) * b.d;
        let dmin = f16_to_f32(a.dmin.to_bits()) * b.d;
        sumf += d * vaddvq_s32(isum) as f32 - dmin * sum_m as f32;
    }
    sumf
}

/// The unsigned 6-bit quants (0..63) of one 128-element half of a Q6_K block, as eight vectors
/// of 16 in element order. `ql` points at 64 bytes, `qh` at 32.
#[inline(always)]
pub(crate) unsafe fn q6_k_half(ql: *const u8, qh: *const u8) -> [uint8x16_t; 8] {
    let m3 = vdupq_n_u8(3);
    let m30 = vdupq_n_u8(0x30);
    let l = [
        vld1q_u8(ql),
        vld1q_u8(ql.add(16)),
        vld1q_u8(ql.add(32)),
        vld1q_u8(ql.add(48)),
    ];
    let h0 = vld1q_u8(qh);
    let h1 = vld1q_u8(qh.add(16));
    let h0s = vshrq_n_u8::<2>(h0);
    let h1s = vshrq_n_u8::<2>(h1);
    // Elements 0..64 take the low nibbles of ql with bits (0,1) then (2,3) of qh shifted in above
    // them (shift-left-and-insert keeps the destination's low nibble); elements 64..128 take the
    // high nibbles (shift-right-and-insert keeps the destination's high nibble) with bits (4,5)
    // then (6,7) of qh.
    [
        vsliq_n_u8::<4>(l[0], vandq_u8(h0, m3)),
        vsliq_n_u8::<4>(l[1], vandq_u8(h1, m3)),
        vsliq_n_u8::<4>(l[2], vandq_u8(h0s, m3)),
        vsliq_n_u8::<4>(l[3], vandq_u8(h1s, m3)),
        vsriq_n_u8::<4>(vandq_u8(h0, m30), l[0]),
        vsriq_n_u8::<4>(vandq_u8(h1, m30), l[1]),
        vsriq_n_u8::<4>(vandq_u8(h0s, m30), l[2]),
        vsriq_n_u8::<4>(vandq_u8(h1s, m30), l[3]),
    ]
}

/// Q6_K · Q8_K: quants dotted unsigned (0..63), minus `32 * bsums` per sub-block of 16.
///
/// # Safety
/// As [`q2_k_q8_k`].
#[inline(always)]
pub(crate) unsafe fn q6_k_q8_k<D: Dot>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, sc0, sc1) = widen_scales(vld1q_s8(a.scales.as_ptr()));
        let offset = scales_dot_bsums(sc0, sc1, &b.bsums);
        let mut isum = vdupq_n_s32(0);
        for n in 0..2 {
            let v = q6_k_half(a.ql.as_ptr().add(64 * n), a.qh.as_ptr().add(32 * n));
            isum = eight_groups::<D>(
                isum,
                v,
                b.qs.as_ptr().add(128 * n),
                sc[2 * n],
                sc[2 * n + 1],
            );
        }
        let d = f16_to_f32(a.d.to_bits()) * b.d;
        sumf += d * (vaddvq_s32(isum) - 32 * offset) as f32;
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{get_scale_min_k4, q3_k_scales as q3_ref};

    #[test]
    fn scale_unpacking_matches_the_reference() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let q: [u8; 12] = core::array::from_fn(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            });
            let (sc, mn) = k4_scales_mins(&q);
            for j in 0..8 {
                let (s, m) = get_scale_min_k4(j, &q);
                assert_eq!(sc.to_le_bytes()[j], s, "scale {j} of {q:?}");
                assert_eq!(mn.to_le_bytes()[j], m, "min {j} of {q:?}");
            }
            let words = q3_k_scales(&q);
            let got: Vec<i8> = words
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .map(|b| b as i8)
                .collect();
            assert_eq!(got, q3_ref(&q).to_vec(), "{q:?}");
        }
    }
}
