//! The 32-element formats in the [`Order::Block`] order over rows interleaved eight at a time
//! ([`crate::interleave::Layout::Interleaved8`]), with the by-element SDOT: a 16-byte load from a
//! unit of the interleaved block holds four bytes of each of four rows, which one `sdot` multiplies
//! by the same four activation bytes (a 32-bit lane of the activations, repeated), so the four
//! lanes of the accumulator are the four rows' block sums and nothing is summed across lanes. One
//! `fcvtl` converts four rows' scales, one `fmla` updates four outputs. This is how Neoverse-N1
//! (dotprod, no i8mm) multiplies quantized matrices fastest, as llama.cpp's `q4_0_4x4` kernels do.
//!
//! Per block and group of four rows, the integer sum starts from the activations' offset term
//! (`-offset · Σ y.qs`, precomputed per token and block with the activations' f32 scale and, for
//! Q8_1, `s`), so the unsigned nibbles and 5-bit values feed `sdot` as they are. The term also
//! carries [`MAGIC`], so the sum's bits read as an f32 are `1.5·2²³ + isum` exactly and one
//! subtraction (either vector pipe) converts it where `scvtf` takes two cycles of the one pipe
//! that converts. The nibbles:
//!
//! * nibbles: `and 0x0F` and `ushr 4` give 16 low and 16 high values of a unit;
//! * five bits: the fifth bits of the unit's elements gathered from the rows' `qh` with one `tbl`
//!   and tested with one `cmtst`, then or-ed in as 16;
//! * bytes (Q8_0): used as loaded.
//!
//! Decode passes eight rows (two accumulators) over each block; batches keep four rows' unpacked
//! weights in registers for `T` tokens, so each weight is unpacked once per `T` tokens.

use super::kernel::GroupKernel;
use super::simd::*;
use crate::formats::block32::{has_min, Act32, Block32, Quants};
use crate::interleave::{MAX_BLOCKS, ROWS};
use crate::traits::{Order, Tile};
use crate::GgmlType;
use core::arch::aarch64::*;
use core::marker::PhantomData;

/// [`Order::Block`] over [`crate::interleave::Layout::Interleaved8`] rows of `B`, in register
/// tiles of eight rows for one token and four rows × `T` tokens for batches.
pub(crate) struct Groups8<B, const T: usize>(PhantomData<B>);

impl<B: Block32, const T: usize> GroupKernel for Groups8<B, T> {
    const TYPE: GgmlType = B::TYPE;
    const ORDER: Order = Order::Block;

    #[inline(always)]
    unsafe fn tile<D: Dot>(t: &Tile<'_>) -> bool {
        let nb = t.n / 32;
        let (xb, yb) = (size_of::<B>(), size_of::<B::Act>());
        if nb == 0
            || nb > MAX_BLOCKS
            || !t.rows.is_multiple_of(ROWS)
            || t.w.len() < t.rows * nb * xb
            || (t.tokens > 0 && t.a.len() < (t.tokens - 1) * t.a_stride + nb * yb)
        {
            return false;
        }
        let group_bytes = ROWS * nb * xb;
        let mut c0 = 0;
        while c0 < t.tokens {
            // Tokens in chunks of `T` (a batch), or one at a time (decode, leftovers).
            let tc = if T > 1 && t.tokens - c0 >= T { T } else { 1 };
            let tables = Tables::new::<B>(t.a, t.a_stride, c0, tc, nb);
            let a = t.a.as_ptr().add(c0 * t.a_stride);
            for g in 0..t.rows / ROWS {
                let gp = t.w.as_ptr().add(g * group_bytes);
                // Outputs: rows `8g..8g + 8` of tokens `c0..c0 + tc` (writable by the caller's
                // `DotTile` contract).
                let out = t.out.add(c0 * t.out_stride + g * ROWS);
                if tc == 1 {
                    let v = group::<B, D>(gp, nb, &tables, a);
                    vst1q_f32(out, v[0]);
                    vst1q_f32(out.add(4), v[1]);
                } else {
                    for h in 0..2 {
                        let v = half::<B, D, T>(gp, h, nb, &tables, a, t.a_stride);
                        for (c, v) in v.iter().enumerate() {
                            vst1q_f32(out.add(c * t.out_stride + 4 * h), *v);
                        }
                    }
                }
            }
            c0 += tc;
        }
        true
    }
}

/// The bits of the f32 `1.5·2²³`: added to an integer `k` with `|k| < 2²²`, they are the bits of
/// the f32 `1.5·2²³ + k` (the integer sums stay below 2²⁰).
const MAGIC: i32 = 0x4B40_0000;

/// `isum` from its [`MAGIC`] form: `f32(isum)`, exactly.
#[inline(always)]
unsafe fn to_f32(isum: int32x4_t) -> float32x4_t {
    vsubq_f32(vreinterpretq_f32_s32(isum), vdupq_n_f32(12_582_912.0))
}

/// Per token and block of the activations, at `b * tokens + t`: the offset term `-offset · Σq`
/// plus [`MAGIC`] in every lane of two vectors (the integer sums of each four rows of a group
/// start from a plain load of it: `ld1r` would take a vector-pipe cycle), then the f32 scale and
/// (Q8_1) the f32 `s`. 48 bytes: three loads bring a block's entry.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    off: [i32; 8],
    d: f32,
    s: f32,
    _pad: [f32; 2],
}

struct Tables(Vec<Entry>);

impl Tables {
    /// The tables of tokens `c0..c0 + tc` of the activation rows at `a` (`stride` bytes apart).
    ///
    /// # Safety
    /// Each of those rows holds `nb` blocks of `B::Act`.
    #[inline(always)]
    unsafe fn new<B: Block32>(a: &[u8], stride: usize, c0: usize, tc: usize, nb: usize) -> Tables {
        let yb = size_of::<B::Act>();
        let zero = Entry {
            off: [0; 8],
            d: 0.0,
            s: 0.0,
            _pad: [0.0; 2],
        };
        let mut tb = vec![zero; nb * tc];
        for t in 0..tc {
            let row = a.as_ptr().add((c0 + t) * stride);
            for b in 0..nb {
                let p = row.add(b * yb);
                let e = &mut tb[b * tc + t];
                e.d = ld_f16(p);
                let mut off = MAGIC;
                if B::OFFSET != 0 {
                    let q = p.add(B::Act::QS_AT);
                    let sum = vaddlvq_s8(ld_s8(q)) as i32 + vaddlvq_s8(ld_s8(q.add(16))) as i32;
                    off -= B::OFFSET as i32 * sum;
                }
                e.off = [off; 8];
                if let Some(s_at) = B::Act::S_AT {
                    e.s = ld_f16(p.add(s_at));
                }
            }
        }
        Tables(tb)
    }

    /// Entry `at`.
    ///
    /// # Safety
    /// `at` is in range.
    #[inline(always)]
    unsafe fn entry(&self, at: usize) -> &Entry {
        debug_assert!(at < self.0.len());
        &*self.0.as_ptr().add(at)
    }

    /// Entry `at`'s two offset vectors and its (d, s) in lanes 0 and 1 of the third.
    ///
    /// # Safety
    /// `at` is in range.
    #[inline(always)]
    unsafe fn get(&self, at: usize) -> int32x4x3_t {
        debug_assert!(at < self.0.len());
        let p = Unscaled::new(self.0.as_ptr().add(at) as *const u8);
        int32x4x3_t(
            vreinterpretq_s32_u8(p.get(0)),
            vreinterpretq_s32_u8(p.get(1)),
            vreinterpretq_s32_u8(p.get(2)),
        )
    }
}

/// The 16-byte registers of an interleaved block (eight rows of `B`: at most 8 × 34 bytes, 17
/// registers), each one `ldur` (see [`Unscaled`]).
///
/// # Safety
/// `p` points at a whole interleaved block.
#[inline(always)]
unsafe fn block_regs<B: Block32>(p: *const u8) -> [uint8x16_t; 17] {
    let p = Unscaled::new(p);
    let mut r = [vdupq_n_u8(0); 17];
    for (i, r) in r[..ROWS * size_of::<B>() / 16].iter_mut().enumerate() {
        *r = p.get(i);
    }
    r
}

/// Where a block's parts lie, in 16-byte registers: the scales (then the mins), the rows' `qh`
/// (five-bit formats), then the quant units, unit `u` of rows `4h..4h + 4` at `qs + 2u + h`.
#[inline(always)]
fn reg_at<B: Block32>() -> (usize, usize) {
    let f16s = if has_min::<B>() { 2 } else { 1 };
    let qs = f16s + if B::QUANTS == Quants::FiveBits { 2 } else { 0 };
    (f16s, qs)
}

/// The four rows `4h..4h + 4` of an interleaved block (its registers `r`), unpacked into the
/// eight weight vectors of the block sum, each with the activation half (0: elements 0..16,
/// 1: 16..32) and lane it pairs with.
#[inline(always)]
unsafe fn weights<B: Block32>(r: &[uint8x16_t; 17], h: usize) -> [int8x16_t; 8] {
    let (qh_at, qs_at) = reg_at::<B>();
    let unit = |u: usize| r[qs_at + 2 * u + h];
    let mut w = [vdupq_n_s8(0); 8];
    match B::QUANTS {
        Quants::Bytes => {
            for (u, v) in w.iter_mut().enumerate() {
                *v = vreinterpretq_s8_u8(unit(u));
            }
        }
        Quants::Nibbles | Quants::FiveBits => {
            // The five-bit formats: the rows' `qh` (four u32), and per unit the source byte and
            // bit of each element's fifth bit (see the module doc).
            let qh = r[qh_at + h];
            for g in 0..4 {
                let q = unit(g);
                let (mut lo, mut hi) = (vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(q));
                if B::QUANTS == Quants::FiveBits {
                    lo = vorrq_u8(lo, fifth_bits(qh, g / 2, g % 2));
                    hi = vorrq_u8(hi, fifth_bits(qh, 2 + g / 2, g % 2));
                }
                w[2 * g] = vreinterpretq_s8_u8(lo);
                w[2 * g + 1] = vreinterpretq_s8_u8(hi);
            }
        }
    }
    w
}

/// [`weights`] from memory: only the registers of rows `4h..4h + 4`.
///
/// # Safety
/// `p` points at a whole interleaved block.
#[inline(always)]
unsafe fn weights_at<B: Block32>(p: *const u8, h: usize) -> [int8x16_t; 8] {
    let (qh_at, qs_at) = reg_at::<B>();
    let p = Unscaled::new(p);
    let mut r = [vdupq_n_u8(0); 17];
    if B::QUANTS == Quants::FiveBits {
        r[qh_at + h] = p.get(qh_at + h);
    }
    let units = if B::QUANTS == Quants::Bytes { 8 } else { 4 };
    for u in 0..units {
        let i = qs_at + 2 * u + h;
        r[i] = p.get(i);
    }
    weights::<B>(&r, h)
}

/// For each byte lane `4r + k` of a unit: 16 where bit `4·nib + k` of byte `byte` of row `r`'s
/// `qh` (lane `r` of `qh`) is set, else 0.
#[inline(always)]
unsafe fn fifth_bits(qh: uint8x16_t, byte: usize, nib: usize) -> uint8x16_t {
    const IDX: [[u8; 16]; 4] = {
        let mut m = [[0u8; 16]; 4];
        let mut j = 0;
        while j < 4 {
            let mut p = 0;
            while p < 16 {
                m[j][p] = (4 * (p / 4) + j) as u8;
                p += 1;
            }
            j += 1;
        }
        m
    };
    const BIT: [[u8; 16]; 2] = {
        let mut m = [[0u8; 16]; 2];
        let mut n = 0;
        while n < 2 {
            let mut p = 0;
            while p < 16 {
                m[n][p] = 1 << (4 * n + p % 4);
                p += 1;
            }
            n += 1;
        }
        m
    };
    let bytes = vqtbl1q_u8(qh, vld1q_u8(IDX[byte].as_ptr()));
    vandq_u8(
        vtstq_u8(bytes, vld1q_u8(BIT[nib].as_ptr())),
        vdupq_n_u8(0x10),
    )
}

/// Which activation half and lane weight vector `i` pairs with.
#[inline(always)]
fn pairing<B: Block32>(i: usize) -> (usize, usize) {
    if B::QUANTS == Quants::Bytes {
        (i / 4, i % 4)
    } else {
        (i % 2, i / 2)
    }
}

/// One block's integer sums of four rows (weights `w`) with one token (activation halves `a`),
/// from `init` (the token's offset term).
#[inline(always)]
unsafe fn block_sum<B: Block32, D: Dot>(
    init: int32x4_t,
    w: &[int8x16_t; 8],
    a: &[int8x16_t; 2],
) -> int32x4_t {
    let mut s = init;
    for i in 0..8 {
        let (half, lane) = pairing::<B>(i);
        s = if B::QUANTS == Quants::Bytes {
            dot_lane::<D, false>(s, w[i], a[half], lane)
        } else {
            dot_lane::<D, true>(s, w[i], a[half], lane)
        };
    }
    s
}

/// The activation halves of token row `a`, block `b`.
#[inline(always)]
unsafe fn act<B: Block32>(a: *const u8, b: usize) -> [int8x16_t; 2] {
    let q = Unscaled::new(a.add(b * size_of::<B::Act>() + B::Act::QS_AT));
    [vreinterpretq_s8_u8(q.get(0)), vreinterpretq_s8_u8(q.get(1))]
}

/// All eight rows of the group at `gp` for one token (`a`: its activation row): the eight outputs
/// in two vectors.
///
/// # Safety
/// `gp` points at `nb` interleaved blocks; `a` holds `nb` activation blocks; `tables` were made
/// for this token alone.
#[inline(always)]
unsafe fn group<B: Block32, D: Dot>(
    gp: *const u8,
    nb: usize,
    tables: &Tables,
    a: *const u8,
) -> [float32x4_t; 2] {
    let xb = ROWS * size_of::<B>();
    let z = vdupq_n_f32(0.0);
    let (mut acc, mut accm) = ([z; 2], [z; 2]);
    for b in 0..nb {
        let r = block_regs::<B>(gp.add(b * xb));
        let av = act::<B>(a, b);
        let e = tables.get(b);
        let dw = vreinterpretq_u16_u8(r[0]);
        let dw = [f16x4_to_f32(vget_low_u16(dw)), f16x8_high_to_f32(dw)];
        let off = [e.0, e.1];
        for h in 0..2 {
            let w = weights::<B>(&r, h);
            let isum = block_sum::<B, D>(off[h], &w, &av);
            acc[h] = vfmaq_f32(
                acc[h],
                to_f32(isum),
                vmulq_laneq_f32::<0>(dw[h], vreinterpretq_f32_s32(e.2)),
            );
        }
        if has_min::<B>() {
            let m = vreinterpretq_u16_u8(r[1]);
            let m = [f16x4_to_f32(vget_low_u16(m)), f16x8_high_to_f32(m)];
            for h in 0..2 {
                accm[h] = vfmaq_laneq_f32::<1>(accm[h], m[h], vreinterpretq_f32_s32(e.2));
            }
        }
    }
    if has_min::<B>() {
        [vaddq_f32(acc[0], accm[0]), vaddq_f32(acc[1], accm[1])]
    } else {
        acc
    }
}

/// Rows `4h..4h + 4` of the group at `gp` for the `T` tokens of `tables` (activation rows from
/// `a`, `stride` bytes apart): `T` vectors of four outputs.
///
/// # Safety
/// As for [`group`], with `tables` made for these `T` tokens.
#[inline(always)]
unsafe fn half<B: Block32, D: Dot, const T: usize>(
    gp: *const u8,
    h: usize,
    nb: usize,
    tables: &Tables,
    a: *const u8,
    stride: usize,
) -> [float32x4_t; T] {
    let xb = ROWS * size_of::<B>();
    let z = vdupq_n_f32(0.0);
    let (mut acc, mut accm) = ([z; T], [z; T]);
    for b in 0..nb {
        let p = gp.add(b * xb);
        let w = weights_at::<B>(p, h);
        let dw = f16x4_to_f32(vld1_u16(p.add(8 * h) as *const u16));
        let m = if has_min::<B>() {
            f16x4_to_f32(vld1_u16(p.add(2 * ROWS + 8 * h) as *const u16))
        } else {
            z
        };
        unroll8!(t in 0..T => {
            let at = b * T + t;
            let av = act::<B>(a.add(t * stride), b);
            let e = tables.entry(at);
            let isum = block_sum::<B, D>(vld1q_s32(e.off.as_ptr()), &w, &av);
            acc[t] = vfmaq_f32(acc[t], to_f32(isum), vmulq_n_f32(dw, e.d));
            if has_min::<B>() {
                accm[t] = vfmaq_n_f32(accm[t], m, e.s);
            }
        });
    }
    if has_min::<B>() {
        unroll8!(t in 0..T => {
            acc[t] = vaddq_f32(acc[t], accm[t]);
        });
    }
    acc
}
