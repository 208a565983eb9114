//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and any format [`Block32`] describes)
//! with Q8_0 / Q8_1 activations, bit-identical to [`crate::formats::block32`]:
//!
//! * [`Lanes8`] ([`Order::Vec`]): llama.cpp's eight f32 lanes. A block's 32 weight values are two
//!   16-byte halves; the integer dot of each half leaves the quad sums `q_0..q_3` / `q_4..q_7` in
//!   its four lanes, so x86 lanes 0..4 live in one NEON accumulator and lanes 4..8 in another,
//!   each updated with `vfmaq` (fused, as `_mm256_fmadd_ps`) by the block's
//!   `d = f32(x.d) * f32(y.d)`, and reduced at the end in `hsum_float_8`'s tree. The formats with
//!   a minimum add their `fma(m, s, summs)` chain.
//! * [`PerBlock`] ([`Order::Block`]): one accumulator per output, `acc = fma(Σ block, d, acc)`
//!   (and the `summs` chain). Here the four lanes of a vector are four weight rows: the rows'
//!   integer totals are gathered with pairwise adds and one `vfmaq` updates four outputs. (The
//!   rows interleaved at load take `interleaved`'s kernels instead.)

use super::kernel::Kernel;
use super::simd::*;
use crate::formats::block32::{has_min, Act32, Block32, Quants};
use crate::traits::Order;
use crate::GgmlType;
use core::arch::aarch64::*;
use core::marker::PhantomData;

/// The 32 quants of the block at `p` minus the format's offset, as signed bytes (elements 0..16,
/// 16..32). Every value is in `-127..=127` except for [`Quants::Bytes`].
///
/// # Safety
/// `p` must be valid for reading a block of `B`.
#[inline(always)]
pub(super) unsafe fn unpack<B: Block32>(p: *const u8) -> (int8x16_t, int8x16_t) {
    let offset = |v: int8x16_t| {
        if B::OFFSET == 0 {
            v
        } else {
            vsubq_s8(v, vdupq_n_s8(B::OFFSET))
        }
    };
    match B::QUANTS {
        Quants::Bytes => (ld_s8(p.add(B::QS_AT)), ld_s8(p.add(B::QS_AT + 16))),
        Quants::Nibbles => {
            let q = vld1q_u8(p.add(B::QS_AT));
            (offset(lo_nibbles(q)), offset(hi_nibbles(q)))
        }
        Quants::FiveBits => {
            let (mlo, mhi) = q5_high_masks(p.add(B::QH_AT));
            let q = vld1q_u8(p.add(B::QS_AT));
            let sixteen = vdupq_n_u8(0x10);
            if B::OFFSET == 16 {
                // `nibble + 16·bit - 16`, computed as `nibble - (bit ? 0 : 16)`.
                (
                    vsubq_s8(lo_nibbles(q), vreinterpretq_s8_u8(vbicq_u8(sixteen, mlo))),
                    vsubq_s8(hi_nibbles(q), vreinterpretq_s8_u8(vbicq_u8(sixteen, mhi))),
                )
            } else {
                // `nibble | 16·bit`, then the offset.
                (
                    offset(vorrq_s8(
                        lo_nibbles(q),
                        vreinterpretq_s8_u8(vandq_u8(sixteen, mlo)),
                    )),
                    offset(vorrq_s8(
                        hi_nibbles(q),
                        vreinterpretq_s8_u8(vandq_u8(sixteen, mhi)),
                    )),
                )
            }
        }
    }
}

/// The quad sums of `w · a` added to `acc`, with the emulation's cheaper form where the values
/// cannot be -128.
#[inline(always)]
unsafe fn dot<B: Block32, D: Dot>(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    if B::QUANTS == Quants::Bytes {
        D::dot(acc, w, a)
    } else {
        D::dot_small(acc, w, a)
    }
}

/// The fifth bits of a Q5 block (the four `qh` bytes at `qh`), spread to bytes: for element `j`
/// of the low / high 16 elements, all ones where bit `j` / `j + 16` of `qh` is set, else zero.
///
/// # Safety
/// `qh` must be valid for reading 4 bytes.
#[inline(always)]
pub(super) unsafe fn q5_high_masks(qh: *const u8) -> (uint8x16_t, uint8x16_t) {
    const SPREAD_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const SPREAD_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // The four bytes of qh in every 32-bit lane; a table lookup copies byte k to lanes 8k..8k+8
    // (mod 16), then each lane tests its own bit.
    let bytes = vreinterpretq_u8_u32(vdupq_n_u32((qh as *const u32).read_unaligned()));
    let bits = vld1q_u8(BITS.as_ptr());
    let lo = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(SPREAD_LO.as_ptr())), bits);
    let hi = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(SPREAD_HI.as_ptr())), bits);
    (lo, hi)
}

/// [`Order::Vec`], llama.cpp's `ggml_vec_dot_*_q8_*` (eight lanes). At most four tokens per call:
/// their scales are the lanes of one vector.
pub(crate) struct Lanes8<B>(PhantomData<B>);

impl<B: Block32> Kernel for Lanes8<B> {
    const TYPE: GgmlType = B::TYPE;
    const ORDER: Order = Order::Vec;
    const QB: usize = 32;
    const XB: usize = size_of::<B>();
    const YB: usize = size_of::<B::Act>();

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        const { assert!(T <= 4) };
        let qs = B::Act::QS_AT;
        let (zf, zi) = (vdupq_n_f32(0.0), vdupq_n_s32(0));
        // Lanes 0..4 and 4..8 of each output's eight x86 lanes, and per row the tokens' Σ m·s
        // chains (lane t).
        let mut lo = [[zf; R]; T];
        let mut hi = [[zf; R]; T];
        let mut summs = [zf; R];
        for b in 0..nb {
            let mut w = [(vdupq_n_s8(0), vdupq_n_s8(0)); R];
            let mut dx = [0f32; R];
            let mut mx = [0f32; R];
            unroll4!(r in 0..R => {
                let p = x[r].add(b * Self::XB);
                w[r] = unpack::<B>(p);
                dx[r] = ld_f16(p);
                if let Some(m_at) = B::M_AT {
                    mx[r] = ld_f16(p.add(m_at));
                }
            });
            let q = at(y, b * Self::YB);
            // Lane t: token t's y.d (and y.s); then per row, lane t of d[r] = f32(x.d) * f32(y.d).
            let dy = ld_f16_rows(&q, 0);
            let mut d = [zf; R];
            unroll4!(r in 0..R => {
                d[r] = vmulq_n_f32(dy, dx[r]);
            });
            if let Some(s_at) = B::Act::S_AT {
                let sy = ld_f16_rows(&q, s_at);
                unroll4!(r in 0..R => {
                    summs[r] = vfmaq_n_f32(summs[r], sy, mx[r]);
                });
            }
            unroll4!(t in 0..T => {
                let (a0, a1) = (ld_s8(q[t].add(qs)), ld_s8(q[t].add(qs + 16)));
                unroll4!(r in 0..R => {
                    let p0 = dot::<B, D>(zi, w[r].0, a0);
                    let p1 = dot::<B, D>(zi, w[r].1, a1);
                    lo[t][r] = fma_lane(lo[t][r], vcvtq_f32_s32(p0), d[r], t);
                    hi[t][r] = fma_lane(hi[t][r], vcvtq_f32_s32(p1), d[r], t);
                });
            });
        }
        let mut out = [[0f32; R]; T];
        unroll4!(t in 0..T => {
            unroll4!(r in 0..R => {
                let s = hsum8(lo[t][r], hi[t][r]);
                out[t][r] = if has_min::<B>() {
                    s + get_lane(summs[r], t)
                } else {
                    s
                };
            });
        });
        out
    }
}

/// [`Order::Block`] (one accumulator per output, whole-block integer sums; the formats with a
/// minimum add their `fma(m, s, summs)` chain) over GGUF's rows. Outputs are lanes
/// ([`lane_vectors`]).
pub(crate) struct PerBlock<B>(PhantomData<B>);

impl<B: Block32> Kernel for PerBlock<B> {
    const TYPE: GgmlType = B::TYPE;
    const ORDER: Order = Order::Block;
    const QB: usize = 32;
    const XB: usize = size_of::<B>();
    const YB: usize = size_of::<B::Act>();

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let zi = vdupq_n_s32(0);
        let mut acc = [vdupq_n_f32(0.0); T];
        let mut summs = [vdupq_n_f32(0.0); T];
        for b in 0..nb {
            let p = at(x, b * Self::XB);
            let mut w = [(vdupq_n_s8(0), vdupq_n_s8(0)); R];
            unroll4!(r in 0..R => {
                w[r] = unpack::<B>(p[r]);
            });
            let q = at(y, b * Self::YB);
            let mut s = [[zi; R]; T];
            unroll4!(t in 0..T => {
                let qs = B::Act::QS_AT;
                let (a0, a1) = (ld_s8(q[t].add(qs)), ld_s8(q[t].add(qs + 16)));
                unroll4!(r in 0..R => {
                    s[t][r] = dot::<B, D>(dot::<B, D>(zi, w[r].0, a0), w[r].1, a1);
                });
            });
            // Lane of output (t, r): fma(f32(Σ block), f32(x_r.d) * f32(y_t.d), acc).
            let s = totals_as_lanes(&s);
            let xd: [float32x4_t; T] = row_lanes_f16(&p, 0);
            let yd = tok_lanes_f16::<R, T>(&q, 0);
            unroll4!(k in 0..lane_vectors(R, T) => {
                acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(s[k]), vmulq_f32(xd[k], yd[k]));
            });
            if let (Some(m_at), Some(s_at)) = (B::M_AT, B::Act::S_AT) {
                // Lane of output (t, r): fma(f32(x_r.m), f32(y_t.s), summs).
                let xm: [float32x4_t; T] = row_lanes_f16(&p, m_at);
                let ys = tok_lanes_f16::<R, T>(&q, s_at);
                unroll4!(k in 0..lane_vectors(R, T) => {
                    summs[k] = vfmaq_f32(summs[k], xm[k], ys[k]);
                });
            }
        }
        if has_min::<B>() {
            unroll4!(k in 0..lane_vectors(R, T) => {
                acc[k] = vaddq_f32(acc[k], summs[k]);
            });
        }
        lanes_out(&acc)
    }
}

/// [`tok_lanes`] of the f16 at `q[t] + off`.
///
/// # Safety
/// Each `q[t] + off` must be valid for reading 2 bytes.
#[inline(always)]
unsafe fn tok_lanes_f16<const R: usize, const T: usize>(
    q: &[*const u8; T],
    off: usize,
) -> [float32x4_t; T] {
    let mut v = [0f32; T];
    unroll4!(t in 0..T => {
        v[t] = ld_f16(q[t].add(off));
    });
    tok_lanes::<R, T>(&v)
}

/// Each pointer advanced by `off` bytes.
#[inline(always)]
pub(crate) unsafe fn at<const N: usize>(base: &[*const u8; N], off: usize) -> [*const u8; N] {
    let mut p = *base;
    for v in p.iter_mut() {
        *v = v.add(off);
    }
    p
}
