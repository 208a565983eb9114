//! The K-quants (Q2_K .. Q6_K) with Q8_K activations: each format's unpacking ([`KFormat`]) and
//! the integer passes that every summation order shares. The kernels, one per order, are in
//! `kquant_orders`.
//!
//! The integer part is shared: a block is consumed in four passes of four 16-byte weight vectors
//! ([`KFormat`]), each dotted with its 16 activation bytes into per-lane quad sums (exact) and
//! multiplied by its sub-block scale with a lane-indexed `mla`. Where the order keeps eight x86
//! lanes, a vector's quads go to the accumulator of its half (lanes 0..4 or 4..8); where it keeps
//! one accumulator per output, only the four lanes' total matters, and the outputs of up to four
//! weight rows are the four lanes of one f32 vector (the row totals gathered with pairwise adds),
//! so one `vfmaq` updates four outputs.
//!
//! Offsets in the scalar definitions that come from the activations' `bsums` (Q4_K's mins, Q6_K's
//! `-32` in the eight-lane order, Q2_K's mins, Q5_K's mins) use `bsums` here too; the others
//! (Q3_K's `-4`, Q6_K's `-32` in the tiled order) are applied to the weights, as the scalar code
//! does, so every kernel returns the scalar bits for any bytes.

use super::simd::*;
use core::arch::aarch64::*;

/// Bytes of a Q8_K block: `d` (f32) at 0, 256 quants at 4, sixteen i16 `bsums` at 260.
pub(super) const Q8K: usize = 292;

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

/// Eight bytes (a little-endian u64) as two i32 vectors of four.
#[inline(always)]
pub(super) unsafe fn bytes8_i32(v: u64) -> [int32x4_t; 2] {
    let w = vmovl_u8(vcreate_u8(v));
    [
        vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))),
        vreinterpretq_s32_u32(vmovl_high_u16(w)),
    ]
}

/// Sixteen i8 as four i32 vectors of four.
#[inline(always)]
pub(super) unsafe fn bytes16_i32(v: int8x16_t) -> [int32x4_t; 4] {
    let [lo, hi] = widen16(v);
    [
        vmovl_s16(vget_low_s16(lo)),
        vmovl_high_s16(lo),
        vmovl_s16(vget_low_s16(hi)),
        vmovl_high_s16(hi),
    ]
}

/// Sixteen i8 as two i16 vectors of eight.
#[inline(always)]
pub(super) unsafe fn widen16(v: int8x16_t) -> [int16x8_t; 2] {
    [vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v)]
}

/// The sixteen i16 `bsums` of the Q8_K block at `q`.
#[inline(always)]
pub(super) unsafe fn bsums(q: *const u8) -> [int16x8_t; 2] {
    [
        vreinterpretq_s16_u8(vld1q_u8(q.add(260))),
        vreinterpretq_s16_u8(vld1q_u8(q.add(276))),
    ]
}

/// The per-32 sums of the Q8_K block at `q` (adjacent `bsums` pairs, in i32): sums 0..4, 4..8.
#[inline(always)]
pub(super) unsafe fn bsums32(q: *const u8) -> [int32x4_t; 2] {
    let [b0, b1] = bsums(q);
    [vpaddlq_s16(b0), vpaddlq_s16(b1)]
}

/// `Σ b[k]·s[k]` over sixteen i16 pairs, as four partial lanes (only their total is meaningful).
#[inline(always)]
pub(super) unsafe fn dot16_i16(b: &[int16x8_t; 2], s: &[int16x8_t; 2]) -> int32x4_t {
    let p = vmull_s16(vget_low_s16(b[0]), vget_low_s16(s[0]));
    let p = vmlal_high_s16(p, b[0], s[0]);
    let p = vmlal_s16(p, vget_low_s16(b[1]), vget_low_s16(s[1]));
    vmlal_high_s16(p, b[1], s[1])
}

/// Q4_K's and Q5_K's eight mins against the per-32 sums `s`: lane `i` is
/// `mn[2i]·s[2i] + mn[2i+1]·s[2i+1]`, the integer of min lane `i` in the eight-lane order and of
/// sub-block pair `i` in the repacked `gemm` order.
#[inline(always)]
pub(super) unsafe fn k4_min_pairs(mn: &[int32x4_t; 2], s: &[int32x4_t; 2]) -> int32x4_t {
    vpaddq_s32(vmulq_s32(mn[0], s[0]), vmulq_s32(mn[1], s[1]))
}

/// The 4×4 transpose of four i32 vectors: lane `r` of result `i` is lane `i` of `m[r]`.
#[inline(always)]
pub(super) unsafe fn transpose4(m: [int32x4_t; 4]) -> [int32x4_t; 4] {
    let t0 = vreinterpretq_s64_s32(vtrn1q_s32(m[0], m[1]));
    let t1 = vreinterpretq_s64_s32(vtrn2q_s32(m[0], m[1]));
    let t2 = vreinterpretq_s64_s32(vtrn1q_s32(m[2], m[3]));
    let t3 = vreinterpretq_s64_s32(vtrn2q_s32(m[2], m[3]));
    [
        vreinterpretq_s32_s64(vtrn1q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn1q_s64(t1, t3)),
        vreinterpretq_s32_s64(vtrn2q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn2q_s64(t1, t3)),
    ]
}

/// A K-quant weight format as four passes of four 16-element weight vectors.
pub(super) trait KFormat {
    /// Bytes per block.
    const XB: usize;
    /// Per pass and vector: `(activation byte offset within the 256 quants, scale vector, scale
    /// lane, half)`, where the scale of the vector's sub-block is lane `scale lane` of
    /// `scales()[scale vector]` and `half` says which four of llama.cpp's eight lanes its quads
    /// feed (elements `32g..32g+16` of a 32-element group: 0, `32g+16..32g+32`: 1).
    const MAP: [[(usize, usize, usize, usize); 4]; 4];
    /// Vectors 0 and 1 of a pass share a scale, and so do 2 and 3.
    const PAIRED: bool;

    /// The weight vectors of pass `P` of the block at `p`, each value in `-127..=127`.
    ///
    /// # Safety
    /// `p` must be valid for reading `XB` bytes.
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4];

    /// The block's sub-block scales as i32 lanes (unused vectors zero).
    ///
    /// # Safety
    /// As [`KFormat::weights`].
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4];
}

/// The `MAP` of formats whose passes are 64 consecutive elements with one scale per 32
/// (Q4_K, Q5_K): pass `P` holds sub-blocks `2P` and `2P + 1`.
const MAP_PAIRS: [[(usize, usize, usize, usize); 4]; 4] = {
    let mut m = [[(0, 0, 0, 0); 4]; 4];
    let mut p = 0;
    while p < 4 {
        let mut i = 0;
        while i < 4 {
            let sub = 2 * p + i / 2;
            m[p][i] = (64 * p + 16 * i, sub / 4, sub % 4, i % 2);
            i += 1;
        }
        p += 1;
    }
    m
};

/// The `MAP` of formats whose passes are 64 consecutive elements with one scale per 16
/// (Q2_K, Q3_K): vector `i` of pass `P` is sub-block `4P + i`.
const MAP_SIXTEENS: [[(usize, usize, usize, usize); 4]; 4] = {
    let mut m = [[(0, 0, 0, 0); 4]; 4];
    let mut p = 0;
    while p < 4 {
        let mut i = 0;
        while i < 4 {
            m[p][i] = (64 * p + 16 * i, p, i, i % 2);
            i += 1;
        }
        p += 1;
    }
    m
};

#[inline(always)]
pub(super) unsafe fn s8(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(v)
}

/// Q4_K: `d` at 0, `dmin` at 2, packed 6-bit scales and mins at 4, 128 quant bytes at 16
/// (sub-block `2P` in the low nibbles of bytes `32P..32P+32`, `2P + 1` in their high nibbles).
pub(super) struct Q4K;

impl KFormat for Q4K {
    const XB: usize = 144;
    const MAP: [[(usize, usize, usize, usize); 4]; 4] = MAP_PAIRS;
    const PAIRED: bool = true;

    #[inline(always)]
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4] {
        let q0 = vld1q_u8(p.add(16 + 32 * P));
        let q1 = vld1q_u8(p.add(32 + 32 * P));
        [
            lo_nibbles(q0),
            lo_nibbles(q1),
            hi_nibbles(q0),
            hi_nibbles(q1),
        ]
    }

    #[inline(always)]
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4] {
        let [a, b] = k4_header(p).0;
        let z = vdupq_n_s32(0);
        [a, b, z, z]
    }
}

/// The scales and the mins of a Q4_K / Q5_K block, each as two i32 vectors.
#[inline(always)]
pub(super) unsafe fn k4_header(p: *const u8) -> ([int32x4_t; 2], [int32x4_t; 2]) {
    let (sc, mn) = k4_scales_mins(&(p.add(4) as *const [u8; 12]).read_unaligned());
    (bytes8_i32(sc), bytes8_i32(mn))
}

/// Q5_K: as Q4_K, with the fifth bits at 16 (bit `2P` / `2P + 1` of `qh[l]` for element `l` of
/// sub-block `2P` / `2P + 1`) and the quants at 48.
pub(super) struct Q5K;

impl KFormat for Q5K {
    const XB: usize = 176;
    const MAP: [[(usize, usize, usize, usize); 4]; 4] = MAP_PAIRS;
    const PAIRED: bool = true;

    #[inline(always)]
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4] {
        let q0 = vld1q_u8(p.add(48 + 32 * P));
        let q1 = vld1q_u8(p.add(64 + 32 * P));
        let h0 = vld1q_u8(p.add(16));
        let h1 = vld1q_u8(p.add(32));
        let (h0, h1) = match P {
            0 => (h0, h1),
            1 => (vshrq_n_u8::<2>(h0), vshrq_n_u8::<2>(h1)),
            2 => (vshrq_n_u8::<4>(h0), vshrq_n_u8::<4>(h1)),
            _ => (vshrq_n_u8::<6>(h0), vshrq_n_u8::<6>(h1)),
        };
        let m10 = vdupq_n_u8(0x10);
        // Bit 0 of h (bit 2P of qh) → 16 for the low nibbles, bit 1 → 16 for the high ones.
        let lo = |q: uint8x16_t, h: uint8x16_t| {
            s8(vorrq_u8(
                vandq_u8(q, vdupq_n_u8(0x0F)),
                vandq_u8(vshlq_n_u8::<4>(h), m10),
            ))
        };
        let hi = |q: uint8x16_t, h: uint8x16_t| {
            s8(vorrq_u8(
                vshrq_n_u8::<4>(q),
                vandq_u8(vshlq_n_u8::<3>(h), m10),
            ))
        };
        [lo(q0, h0), lo(q1, h1), hi(q0, h0), hi(q1, h1)]
    }

    #[inline(always)]
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4] {
        Q4K::scales(p)
    }
}

/// Q6_K: 128 bytes of low nibbles at 0, 64 bytes of high bit pairs at 128, sixteen i8 scales at
/// 192, `d` at 208. Pass `P` covers half `N = P / 2` (128 elements) and, of its eight vectors
/// (elements `128N + 16i`), `i` = `2Q, 2Q + 1, 4 + 2Q, 5 + 2Q` with `Q = P % 2`: the four that
/// share two `ql` loads. `SIGNED` gives the values minus 32 (else unsigned, 0..63).
pub(super) struct Q6K<const SIGNED: bool>;

impl<const SIGNED: bool> KFormat for Q6K<SIGNED> {
    const XB: usize = 210;
    const MAP: [[(usize, usize, usize, usize); 4]; 4] = {
        let mut m = [[(0, 0, 0, 0); 4]; 4];
        let mut p = 0;
        while p < 4 {
            let (n, q) = (p / 2, p % 2);
            let idx = [2 * q, 2 * q + 1, 4 + 2 * q, 5 + 2 * q];
            let mut i = 0;
            while i < 4 {
                let k = 8 * n + idx[i];
                m[p][i] = (16 * k, k / 4, k % 4, k % 2);
                i += 1;
            }
            p += 1;
        }
        m
    };
    const PAIRED: bool = false;

    #[inline(always)]
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4] {
        let (n, q) = (P / 2, P % 2);
        let l0 = vld1q_u8(p.add(64 * n + 32 * q));
        let l1 = vld1q_u8(p.add(64 * n + 32 * q + 16));
        let mut h0 = vld1q_u8(p.add(128 + 32 * n));
        let mut h1 = vld1q_u8(p.add(144 + 32 * n));
        if q == 1 {
            h0 = vshrq_n_u8::<2>(h0);
            h1 = vshrq_n_u8::<2>(h1);
        }
        let (m3, m30) = (vdupq_n_u8(3), vdupq_n_u8(0x30));
        // Low nibbles with bits (0,1) of h shifted in above them; high nibbles below bits (4,5).
        let v = [
            vsliq_n_u8::<4>(l0, vandq_u8(h0, m3)),
            vsliq_n_u8::<4>(l1, vandq_u8(h1, m3)),
            vsriq_n_u8::<4>(vandq_u8(h0, m30), l0),
            vsriq_n_u8::<4>(vandq_u8(h1, m30), l1),
        ];
        if SIGNED {
            let k = vdupq_n_s8(32);
            [
                vsubq_s8(s8(v[0]), k),
                vsubq_s8(s8(v[1]), k),
                vsubq_s8(s8(v[2]), k),
                vsubq_s8(s8(v[3]), k),
            ]
        } else {
            [s8(v[0]), s8(v[1]), s8(v[2]), s8(v[3])]
        }
    }

    #[inline(always)]
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4] {
        bytes16_i32(ld_s8(p.add(192)))
    }
}

/// Q2_K: sixteen scale bytes at 0 (low nibble: scale, high nibble: min), 64 quant bytes at 16,
/// `d` at 80, `dmin` at 82. Sub-block `is = 8k + 2s + h` is bits `2s..2s+2` of bytes
/// `32k + 16h ..+16`; pass `P = 2k + S` holds sub-blocks `4P..4P+4` (`s = 2S, 2S + 1`).
pub(super) struct Q2K;

impl KFormat for Q2K {
    const XB: usize = 84;
    const MAP: [[(usize, usize, usize, usize); 4]; 4] = MAP_SIXTEENS;
    const PAIRED: bool = false;

    #[inline(always)]
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4] {
        let (k, s) = (P / 2, 2 * (P % 2));
        let q0 = vld1q_u8(p.add(16 + 32 * k));
        let q1 = vld1q_u8(p.add(32 + 32 * k));
        let m3 = vdupq_n_u8(3);
        let (q0, q1) = if s == 2 {
            (vshrq_n_u8::<4>(q0), vshrq_n_u8::<4>(q1))
        } else {
            (q0, q1)
        };
        [
            s8(vandq_u8(q0, m3)),
            s8(vandq_u8(q1, m3)),
            s8(vandq_u8(vshrq_n_u8::<2>(q0), m3)),
            s8(vandq_u8(vshrq_n_u8::<2>(q1), m3)),
        ]
    }

    #[inline(always)]
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4] {
        bytes16_i32(s8(vandq_u8(vld1q_u8(p), vdupq_n_u8(0x0F))))
    }
}

/// Q3_K: 32 bytes of high bits at 0, 64 quant bytes at 32, packed 6-bit scales at 96, `d` at 108.
/// Sub-block `is = 8k + 2s + h`: low bits `2s..2s+2` of bytes `32 + 32k + 16h ..+16`, high bit
/// `4k + s` of `hmask[16h ..+16]`; value `low - (high bit ? 0 : 4)`. Passes as Q2_K's.
pub(super) struct Q3K;

impl KFormat for Q3K {
    const XB: usize = 110;
    const MAP: [[(usize, usize, usize, usize); 4]; 4] = MAP_SIXTEENS;
    const PAIRED: bool = false;

    #[inline(always)]
    unsafe fn weights<const P: usize>(p: *const u8) -> [int8x16_t; 4] {
        let (k, s) = (P / 2, 2 * (P % 2));
        let q0 = vld1q_u8(p.add(32 + 32 * k));
        let q1 = vld1q_u8(p.add(48 + 32 * k));
        let h0 = vld1q_u8(p);
        let h1 = vld1q_u8(p.add(16));
        // Bits 2s (s = 0, 2) of q, bit 4k + s of h: shift both down once per pass.
        let (q0, q1) = if s == 2 {
            (vshrq_n_u8::<4>(q0), vshrq_n_u8::<4>(q1))
        } else {
            (q0, q1)
        };
        let (h0, h1) = match P {
            0 => (h0, h1),
            1 => (vshrq_n_u8::<2>(h0), vshrq_n_u8::<2>(h1)),
            2 => (vshrq_n_u8::<4>(h0), vshrq_n_u8::<4>(h1)),
            _ => (vshrq_n_u8::<6>(h0), vshrq_n_u8::<6>(h1)),
        };
        let (m3, four) = (vdupq_n_u8(3), vdupq_n_u8(4));
        // (low | 4·bit) - 4 = low - (bit ? 0 : 4).
        let v = |q: uint8x16_t, h: uint8x16_t| {
            vsubq_s8(
                s8(vorrq_u8(
                    vandq_u8(q, m3),
                    vandq_u8(vshlq_n_u8::<2>(h), four),
                )),
                s8(four),
            )
        };
        [
            v(q0, h0),
            v(q1, h1),
            v(vshrq_n_u8::<2>(q0), vshrq_n_u8::<1>(h0)),
            v(vshrq_n_u8::<2>(q1), vshrq_n_u8::<1>(h1)),
        ]
    }

    #[inline(always)]
    unsafe fn scales(p: *const u8) -> [int32x4_t; 4] {
        let w = q3_k_scales(&(p.add(96) as *const [u8; 12]).read_unaligned());
        bytes16_i32(vreinterpretq_s8_u32(vld1q_u32(w.as_ptr())))
    }
}

/// Pass `P` for `R` rows and `T` tokens, one integer per output: `isum[t][r]` gains
/// `Σ_i scale_i · quads(w_i · a_i)` (its four lanes' total is the pass's exact contribution).
///
/// # Safety
/// `p[r]` and `q[t]` point at whole blocks; `D`'s instructions are available.
#[inline(always)]
pub(super) unsafe fn pass_total<
    F: KFormat,
    D: Dot,
    const P: usize,
    const R: usize,
    const T: usize,
>(
    isum: &mut [[int32x4_t; R]; T],
    p: &[*const u8; R],
    q: &[*const u8; T],
    sc: &[[int32x4_t; 4]; R],
) {
    let z = vdupq_n_s32(0);
    let m = F::MAP[P];
    let mut w = [[vdupq_n_s8(0); 4]; R];
    unroll4!(r in 0..R => {
        w[r] = F::weights::<P>(p[r]);
    });
    unroll4!(t in 0..T => {
        let a = q[t].add(4);
        let av = [
            ld_s8(a.add(m[0].0)),
            ld_s8(a.add(m[1].0)),
            ld_s8(a.add(m[2].0)),
            ld_s8(a.add(m[3].0)),
        ];
        unroll4!(r in 0..R => {
            let (w, s) = (&w[r], &sc[r]);
            let mut acc = isum[t][r];
            if F::PAIRED {
                let d01 = D::dot_small(D::dot_small(z, w[0], av[0]), w[1], av[1]);
                let d23 = D::dot_small(D::dot_small(z, w[2], av[2]), w[3], av[3]);
                acc = mla_lane(acc, d01, s[m[0].1], m[0].2);
                acc = mla_lane(acc, d23, s[m[2].1], m[2].2);
            } else {
                acc = mla_lane(acc, D::dot_small(z, w[0], av[0]), s[m[0].1], m[0].2);
                acc = mla_lane(acc, D::dot_small(z, w[1], av[1]), s[m[1].1], m[1].2);
                acc = mla_lane(acc, D::dot_small(z, w[2], av[2]), s[m[2].1], m[2].2);
                acc = mla_lane(acc, D::dot_small(z, w[3], av[3]), s[m[3].1], m[3].2);
            }
            isum[t][r] = acc;
        });
    });
}

/// Pass `P` in the eight-lane order: `isum[t][r][h]` (x86 lanes `4h..4h+4`) gains
/// `scale_i · quads(w_i · a_i)` for the vectors `i` of half `h`.
///
/// # Safety
/// As [`pass_total`].
#[inline(always)]
pub(super) unsafe fn pass_lanes<
    F: KFormat,
    D: Dot,
    const P: usize,
    const R: usize,
    const T: usize,
>(
    isum: &mut [[[int32x4_t; 2]; R]; T],
    p: &[*const u8; R],
    q: &[*const u8; T],
    sc: &[[int32x4_t; 4]; R],
) {
    let z = vdupq_n_s32(0);
    let m = F::MAP[P];
    let mut w = [[vdupq_n_s8(0); 4]; R];
    unroll4!(r in 0..R => {
        w[r] = F::weights::<P>(p[r]);
    });
    unroll4!(t in 0..T => {
        let a = q[t].add(4);
        let av = [
            ld_s8(a.add(m[0].0)),
            ld_s8(a.add(m[1].0)),
            ld_s8(a.add(m[2].0)),
            ld_s8(a.add(m[3].0)),
        ];
        unroll4!(r in 0..R => {
            let (w, s, acc) = (&w[r], &sc[r], &mut isum[t][r]);
            acc[m[0].3] = mla_lane(acc[m[0].3], D::dot_small(z, w[0], av[0]), s[m[0].1], m[0].2);
            acc[m[1].3] = mla_lane(acc[m[1].3], D::dot_small(z, w[1], av[1]), s[m[1].1], m[1].2);
            acc[m[2].3] = mla_lane(acc[m[2].3], D::dot_small(z, w[2], av[2]), s[m[2].1], m[2].2);
            acc[m[3].3] = mla_lane(acc[m[3].3], D::dot_small(z, w[3], av[3]), s[m[3].1], m[3].2);
        });
    });
}

/// All four passes of [`pass_total`].
#[inline(always)]
pub(super) unsafe fn block_total<F: KFormat, D: Dot, const R: usize, const T: usize>(
    p: &[*const u8; R],
    q: &[*const u8; T],
    sc: &[[int32x4_t; 4]; R],
) -> [[int32x4_t; R]; T] {
    let mut isum = [[vdupq_n_s32(0); R]; T];
    pass_total::<F, D, 0, R, T>(&mut isum, p, q, sc);
    pass_total::<F, D, 1, R, T>(&mut isum, p, q, sc);
    pass_total::<F, D, 2, R, T>(&mut isum, p, q, sc);
    pass_total::<F, D, 3, R, T>(&mut isum, p, q, sc);
    isum
}

/// All four passes of [`pass_lanes`].
#[inline(always)]
pub(super) unsafe fn block_lanes<F: KFormat, D: Dot, const R: usize, const T: usize>(
    p: &[*const u8; R],
    q: &[*const u8; T],
    sc: &[[int32x4_t; 4]; R],
) -> [[[int32x4_t; 2]; R]; T] {
    let z = vdupq_n_s32(0);
    let mut isum = [[[z, z]; R]; T];
    pass_lanes::<F, D, 0, R, T>(&mut isum, p, q, sc);
    pass_lanes::<F, D, 1, R, T>(&mut isum, p, q, sc);
    pass_lanes::<F, D, 2, R, T>(&mut isum, p, q, sc);
    pass_lanes::<F, D, 3, R, T>(&mut isum, p, q, sc);
    isum
}

/// Block `b` of each row and each token.
#[inline(always)]
pub(super) unsafe fn at<const N: usize>(
    base: &[*const u8; N],
    b: usize,
    size: usize,
) -> [*const u8; N] {
    let mut p = *base;
    for v in p.iter_mut() {
        *v = v.add(b * size);
    }
    p
}

/// The scales of each row's block.
#[inline(always)]
pub(super) unsafe fn scales_of<F: KFormat, const R: usize>(
    p: &[*const u8; R],
) -> [[int32x4_t; 4]; R] {
    let mut sc = [[vdupq_n_s32(0); 4]; R];
    unroll4!(r in 0..R => {
        sc[r] = F::scales(p[r]).map(opaque);
    });
    sc
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::q3_k::unpack_scales as q3_ref;
    use crate::formats::q4_k::get_scale_min_k4;

    #[test]
    fn scale_unpacking_matches_the_reference() {
        let mut rng = crate::testing::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let q: [u8; 12] = core::array::from_fn(|_| rng.byte());
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
