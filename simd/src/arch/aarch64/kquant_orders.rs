//! The K-quants with Q8_K activations, one kernel per summation order llama.cpp uses for each,
//! bit-identical to their references in [`crate::formats`]:
//!
//! * Q4_K: [`Q4KLanes`] ([`Order::Vec`]: llama.cpp's eight f32 lanes plus four min lanes),
//!   [`Q4KBlock`], [`Q4KGemm`] and [`Q4KTiled`] (one or two f32 accumulators per output);
//! * Q6_K: [`Q6KLanes`] (eight lanes, offset through `bsums`) and [`Q6KTiled`];
//! * Q2_K, Q3_K, Q5_K: [`Sumf`] ([`Order::Vec`]), one f32 sum per output updated once per
//!   super-block.
//!
//! The integer part is `kquants`'s passes.

use super::kernel::Kernel;
use super::kquants::*;
use super::simd::*;
use crate::traits::Order;
use crate::GgmlType;
use core::arch::aarch64::*;

/// Q4_K · Q8_K in llama.cpp's `ggml_vec_dot_q4_K_q8_K` order ([`crate::formats::q4_k::vec_dot`]):
/// eight lanes `fma(y.d * x.d, Σ_j sc_j·quads, acc)` and four min lanes
/// `fma(-y.d * x.dmin, mn·s pairs, accm)`; `hsum8(acc) + hsum4(accm)`.
pub(crate) struct Q4KLanes;

impl Kernel for Q4KLanes {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ORDER: Order = Order::Vec;
    const QB: usize = 256;
    const XB: usize = 144;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let zf = vdupq_n_f32(0.0);
        let mut lo = [[zf; R]; T];
        let mut hi = [[zf; R]; T];
        let mut accm = [[zf; R]; T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q4K, R>(&p);
            let isum = block_lanes::<Q4K, D, R, T>(&p, &q, &sc);
            unroll4!(t in 0..T => {
                let yd = ld_f32(q[t]);
                let s = bsums32(q[t]);
                unroll4!(r in 0..R => {
                    let mn = k4_header(p[r]).1;
                    let dmin = -yd * ld_f16(p[r].add(2));
                    let m = vcvtq_f32_s32(k4_min_pairs(&mn, &s));
                    accm[t][r] = vfmaq_n_f32(accm[t][r], m, dmin);
                    let d = yd * ld_f16(p[r]);
                    lo[t][r] = vfmaq_n_f32(lo[t][r], vcvtq_f32_s32(isum[t][r][0]), d);
                    hi[t][r] = vfmaq_n_f32(hi[t][r], vcvtq_f32_s32(isum[t][r][1]), d);
                });
            });
        }
        let mut out = [[0f32; R]; T];
        unroll4!(t in 0..T => {
            unroll4!(r in 0..R => {
                out[t][r] = hsum8(lo[t][r], hi[t][r]) + hsum4(accm[t][r]);
            });
        });
        out
    }
}

/// Each output's `mn·s` pair vector (lane `P` = pair `P`'s mins integer, see [`k4_min_pairs`]),
/// from each row's mins and each token's per-32 sums.
#[inline(always)]
unsafe fn k4_mins<const R: usize, const T: usize>(
    p: &[*const u8; R],
    q: &[*const u8; T],
) -> [[int32x4_t; R]; T] {
    let mut mn = [[vdupq_n_s32(0); 2]; R];
    unroll4!(r in 0..R => {
        mn[r] = k4_header(p[r]).1;
    });
    let mut m = [[vdupq_n_s32(0); R]; T];
    unroll4!(t in 0..T => {
        let s = bsums32(q[t]);
        unroll4!(r in 0..R => {
            m[t][r] = k4_min_pairs(&mn[r], &s);
        });
    });
    m
}

/// The f32 `d` of each token's Q8_K block.
#[inline(always)]
unsafe fn tok_d<const T: usize>(q: &[*const u8; T]) -> [f32; T] {
    let mut d = [0f32; T];
    unroll4!(t in 0..T => {
        d[t] = ld_f32(q[t]);
    });
    d
}

/// Q4_K · Q8_K in the x86 repacked layout's `gemv` order
/// ([`crate::formats::q4_k::vec_dot_block`]): per super-block
/// `acc = fma(f32(isum), f32(x.d) * y.d, acc)`, `accm = fma(f32(imin), f32(x.dmin) * y.d, accm)`;
/// `acc - accm`. Outputs are lanes ([`lane_vectors`]).
pub(crate) struct Q4KBlock;

impl Kernel for Q4KBlock {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ORDER: Order = Order::Block;
    const QB: usize = 256;
    const XB: usize = 144;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let zf = vdupq_n_f32(0.0);
        let mut acc = [zf; T];
        let mut accm = [zf; T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q4K, R>(&p);
            let isum = totals_as_lanes(&block_total::<Q4K, D, R, T>(&p, &q, &sc));
            let imin = totals_as_lanes(&k4_mins(&p, &q));
            let xd: [float32x4_t; T] = row_lanes_f16(&p, 0);
            let xdmin: [float32x4_t; T] = row_lanes_f16(&p, 2);
            let yd: [float32x4_t; T] = tok_lanes::<R, T>(&tok_d(&q));
            unroll4!(k in 0..lane_vectors(R, T) => {
                let d = vmulq_f32(xd[k], yd[k]);
                let dmin = vmulq_f32(xdmin[k], yd[k]);
                acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(isum[k]), d);
                accm[k] = vfmaq_f32(accm[k], vcvtq_f32_s32(imin[k]), dmin);
            });
        }
        unroll4!(k in 0..lane_vectors(R, T) => {
            acc[k] = vsubq_f32(acc[k], accm[k]);
        });
        lanes_out(&acc)
    }
}

/// Q4_K · Q8_K in the x86 repacked layout's `gemm` order
/// ([`crate::formats::q4_k::vec_dot_gemm`]): as [`Q4KBlock`], with the two
/// accumulators updated once per pass (64 elements, sub-blocks `2P` and `2P + 1`).
pub(crate) struct Q4KGemm;

impl Q4KGemm {
    /// Pass `P`'s integers into the accumulators: `imin[k][P]` holds pass `P`'s mins integer of
    /// the outputs of lane vector `k`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass<D: Dot, const P: usize, const R: usize, const T: usize>(
        acc: &mut [float32x4_t; T],
        accm: &mut [float32x4_t; T],
        p: &[*const u8; R],
        q: &[*const u8; T],
        sc: &[[int32x4_t; 4]; R],
        d: &[float32x4_t; T],
        dmin: &[float32x4_t; T],
        imin: &[[int32x4_t; 4]; T],
    ) {
        let mut isum = [[vdupq_n_s32(0); R]; T];
        pass_total::<Q4K, D, P, R, T>(&mut isum, p, q, sc);
        let isum = totals_as_lanes(&isum);
        unroll4!(k in 0..lane_vectors(R, T) => {
            acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(isum[k]), d[k]);
            accm[k] = vfmaq_f32(accm[k], vcvtq_f32_s32(imin[k][P]), dmin[k]);
        });
    }
}

impl Kernel for Q4KGemm {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ORDER: Order = Order::Gemm;
    const QB: usize = 256;
    const XB: usize = 144;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let zf = vdupq_n_f32(0.0);
        let zi = vdupq_n_s32(0);
        let mut acc = [zf; T];
        let mut accm = [zf; T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q4K, R>(&p);
            let xd: [float32x4_t; T] = row_lanes_f16(&p, 0);
            let xdmin: [float32x4_t; T] = row_lanes_f16(&p, 2);
            let yd: [float32x4_t; T] = tok_lanes::<R, T>(&tok_d(&q));
            let mut d = [zf; T];
            let mut dmin = [zf; T];
            unroll4!(k in 0..lane_vectors(R, T) => {
                d[k] = vmulq_f32(xd[k], yd[k]);
                dmin[k] = vmulq_f32(xdmin[k], yd[k]);
            });
            // Each output's pair vector, four outputs at a time transposed: imin[k][P] lane j
            // is pass P's mins integer of output 4k + j.
            let m = k4_mins(&p, &q);
            let get = |l: usize| if l < R * T { m[l / R][l % R] } else { zi };
            let mut imin = [[zi; 4]; T];
            unroll4!(k in 0..lane_vectors(R, T) => {
                imin[k] = transpose4([get(4 * k), get(4 * k + 1), get(4 * k + 2), get(4 * k + 3)]);
            });
            let (a, am) = (&mut acc, &mut accm);
            Self::pass::<D, 0, R, T>(a, am, &p, &q, &sc, &d, &dmin, &imin);
            Self::pass::<D, 1, R, T>(a, am, &p, &q, &sc, &d, &dmin, &imin);
            Self::pass::<D, 2, R, T>(a, am, &p, &q, &sc, &d, &dmin, &imin);
            Self::pass::<D, 3, R, T>(a, am, &p, &q, &sc, &d, &dmin, &imin);
        }
        unroll4!(k in 0..lane_vectors(R, T) => {
            acc[k] = vsubq_f32(acc[k], accm[k]);
        });
        lanes_out(&acc)
    }
}

/// Q4_K · Q8_K in the tiled K-quant matmul's order
/// ([`crate::formats::q4_k::vec_dot_tiled`]): per super-block
/// `r = fma(-f32(x.dmin), f32(imin), f32(isum) * f32(x.d))`, `acc = fma(r, y.d, acc)`. Outputs
/// are lanes.
pub(crate) struct Q4KTiled;

impl Kernel for Q4KTiled {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ORDER: Order = Order::Tiled;
    const QB: usize = 256;
    const XB: usize = 144;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let mut acc = [vdupq_n_f32(0.0); T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q4K, R>(&p);
            let isum = totals_as_lanes(&block_total::<Q4K, D, R, T>(&p, &q, &sc));
            let imin = totals_as_lanes(&k4_mins(&p, &q));
            let xd: [float32x4_t; T] = row_lanes_f16(&p, 0);
            let xdmin: [float32x4_t; T] = row_lanes_f16(&p, 2);
            let yd: [float32x4_t; T] = tok_lanes::<R, T>(&tok_d(&q));
            unroll4!(k in 0..lane_vectors(R, T) => {
                let s = vmulq_f32(vcvtq_f32_s32(isum[k]), xd[k]);
                let r = vfmaq_f32(s, vnegq_f32(xdmin[k]), vcvtq_f32_s32(imin[k]));
                acc[k] = vfmaq_f32(acc[k], r, yd[k]);
            });
        }
        lanes_out(&acc)
    }
}

/// Q6_K · Q8_K in llama.cpp's `ggml_vec_dot_q6_K_q8_K` order
/// ([`crate::formats::q6_k::vec_dot`]): eight integer lanes of unsigned 6-bit quants
/// times scales, minus `32·(bsums[2l]·sc[2l] + bsums[2l+1]·sc[2l+1])`, then
/// `fma(y.d * x.d, lane, acc)`; `hsum8(acc)`.
pub(crate) struct Q6KLanes;

impl Kernel for Q6KLanes {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ORDER: Order = Order::Vec;
    const QB: usize = 256;
    const XB: usize = 210;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let zf = vdupq_n_f32(0.0);
        let mut lo = [[zf; R]; T];
        let mut hi = [[zf; R]; T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q6K<false>, R>(&p);
            let isum = block_lanes::<Q6K<false>, D, R, T>(&p, &q, &sc);
            unroll4!(t in 0..T => {
                let yd = ld_f32(q[t]);
                let bs = bsums(q[t]);
                unroll4!(r in 0..R => {
                    let s = widen16(ld_s8(p[r].add(192)));
                    // corr lanes 0..4 from bsums/scales 0..8, lanes 4..8 from 8..16.
                    let c0 = vpaddq_s32(
                        vmull_s16(vget_low_s16(bs[0]), vget_low_s16(s[0])),
                        vmull_high_s16(bs[0], s[0]),
                    );
                    let c1 = vpaddq_s32(
                        vmull_s16(vget_low_s16(bs[1]), vget_low_s16(s[1])),
                        vmull_high_s16(bs[1], s[1]),
                    );
                    let l0 = vsubq_s32(isum[t][r][0], vshlq_n_s32::<5>(c0));
                    let l1 = vsubq_s32(isum[t][r][1], vshlq_n_s32::<5>(c1));
                    let d = yd * ld_f16(p[r].add(208));
                    lo[t][r] = vfmaq_n_f32(lo[t][r], vcvtq_f32_s32(l0), d);
                    hi[t][r] = vfmaq_n_f32(hi[t][r], vcvtq_f32_s32(l1), d);
                });
            });
        }
        let mut out = [[0f32; R]; T];
        unroll4!(t in 0..T => {
            unroll4!(r in 0..R => {
                out[t][r] = hsum8(lo[t][r], hi[t][r]);
            });
        });
        out
    }
}

/// Q6_K · Q8_K in the tiled K-quant matmul's order
/// ([`crate::formats::q6_k::vec_dot_tiled`]): per super-block
/// `acc = fma(f32(isum) * f32(x.d), y.d, acc)` with the signed quants. Outputs are lanes.
pub(crate) struct Q6KTiled;

impl Kernel for Q6KTiled {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ORDER: Order = Order::Tiled;
    const QB: usize = 256;
    const XB: usize = 210;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let mut acc = [vdupq_n_f32(0.0); T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<Q6K<true>, R>(&p);
            let isum = totals_as_lanes(&block_total::<Q6K<true>, D, R, T>(&p, &q, &sc));
            let xd: [float32x4_t; T] = row_lanes_f16(&p, 208);
            let yd: [float32x4_t; T] = tok_lanes::<R, T>(&tok_d(&q));
            unroll4!(k in 0..lane_vectors(R, T) => {
                let s = vmulq_f32(vcvtq_f32_s32(isum[k]), xd[k]);
                acc[k] = vfmaq_f32(acc[k], s, yd[k]);
            });
        }
        lanes_out(&acc)
    }
}

/// Q2_K, Q3_K and Q5_K: one f32 sum per output, `sumf += ...` once per super-block, as their
/// scalar definitions ([`SumfFormat::update`]). Outputs are lanes.
pub(crate) struct Sumf<F>(core::marker::PhantomData<F>);

/// The float step of a [`Sumf`] format.
trait SumfFormat: KFormat {
    const TYPE: GgmlType;
    /// Byte offsets of the block's f16 `d` and `dmin` (`dmin` unused where there is none).
    const D: usize;
    const DMIN: usize;

    /// The mins integer of one output (only the total of the lanes is meaningful).
    ///
    /// # Safety
    /// `p` and `q` point at whole blocks.
    unsafe fn mins(p: *const u8, q: *const u8) -> int32x4_t;

    /// `sumf` after one super-block, lane by lane: `isum` is the exact `Σ scale·quants·q8`,
    /// `imin` the mins integer, `xd`, `xdmin`, `yd` the scales.
    unsafe fn update(
        sumf: float32x4_t,
        isum: int32x4_t,
        imin: int32x4_t,
        xd: float32x4_t,
        xdmin: float32x4_t,
        yd: float32x4_t,
    ) -> float32x4_t;
}

impl SumfFormat for Q2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const D: usize = 80;
    const DMIN: usize = 82;

    /// `Σ bsums[j]·(scales[j] >> 4)`.
    #[inline(always)]
    unsafe fn mins(p: *const u8, q: *const u8) -> int32x4_t {
        dot16_i16(&bsums(q), &widen16(s8(vshrq_n_u8::<4>(vld1q_u8(p)))))
    }

    /// `sumf += dall * f32(isum) - dmin * f32(summs)`, `dall = y.d * f32(x.d)`,
    /// `dmin = y.d * f32(x.dmin)`.
    #[inline(always)]
    unsafe fn update(
        sumf: float32x4_t,
        isum: int32x4_t,
        imin: int32x4_t,
        xd: float32x4_t,
        xdmin: float32x4_t,
        yd: float32x4_t,
    ) -> float32x4_t {
        let t = vsubq_f32(
            vmulq_f32(vmulq_f32(yd, xd), vcvtq_f32_s32(isum)),
            vmulq_f32(vmulq_f32(yd, xdmin), vcvtq_f32_s32(imin)),
        );
        vaddq_f32(sumf, t)
    }
}

impl SumfFormat for Q3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const D: usize = 108;
    const DMIN: usize = 108;

    #[inline(always)]
    unsafe fn mins(_: *const u8, _: *const u8) -> int32x4_t {
        vdupq_n_s32(0)
    }

    /// `sumf += f32(x.d) * y.d * f32(isum)`.
    #[inline(always)]
    unsafe fn update(
        sumf: float32x4_t,
        isum: int32x4_t,
        _: int32x4_t,
        xd: float32x4_t,
        _: float32x4_t,
        yd: float32x4_t,
    ) -> float32x4_t {
        vaddq_f32(sumf, vmulq_f32(vmulq_f32(xd, yd), vcvtq_f32_s32(isum)))
    }
}

impl SumfFormat for Q5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const D: usize = 0;
    const DMIN: usize = 2;

    /// `Σ mn_j·s_j` over the eight sub-blocks.
    #[inline(always)]
    unsafe fn mins(p: *const u8, q: *const u8) -> int32x4_t {
        k4_min_pairs(&k4_header(p).1, &bsums32(q))
    }

    /// `sumf += f32(x.d) * y.d * f32(sum_q) - f32(x.dmin) * y.d * f32(sum_m)`.
    #[inline(always)]
    unsafe fn update(
        sumf: float32x4_t,
        isum: int32x4_t,
        imin: int32x4_t,
        xd: float32x4_t,
        xdmin: float32x4_t,
        yd: float32x4_t,
    ) -> float32x4_t {
        let a = vmulq_f32(vmulq_f32(xd, yd), vcvtq_f32_s32(isum));
        let b = vmulq_f32(vmulq_f32(xdmin, yd), vcvtq_f32_s32(imin));
        vaddq_f32(sumf, vsubq_f32(a, b))
    }
}

impl<F: SumfFormat> Kernel for Sumf<F> {
    const TYPE: GgmlType = F::TYPE;
    const ORDER: Order = Order::Vec;
    const QB: usize = 256;
    const XB: usize = F::XB;
    const YB: usize = Q8K;

    #[inline(always)]
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T] {
        let mut sumf = [vdupq_n_f32(0.0); T];
        for b in 0..nb {
            let (p, q) = (at(x, b, Self::XB), at(y, b, Self::YB));
            let sc = scales_of::<F, R>(&p);
            let isum = totals_as_lanes(&block_total::<F, D, R, T>(&p, &q, &sc));
            let mut m = [[vdupq_n_s32(0); R]; T];
            unroll4!(t in 0..T => {
                unroll4!(r in 0..R => {
                    m[t][r] = F::mins(p[r], q[t]);
                });
            });
            let imin = totals_as_lanes(&m);
            let xd: [float32x4_t; T] = row_lanes_f16(&p, F::D);
            let xdmin: [float32x4_t; T] = row_lanes_f16(&p, F::DMIN);
            let yd: [float32x4_t; T] = tok_lanes::<R, T>(&tok_d(&q));
            unroll4!(k in 0..lane_vectors(R, T) => {
                sumf[k] = F::update(sumf[k], isum[k], imin[k], xd[k], xdmin[k], yd[k]);
            });
        }
        lanes_out(&sumf)
    }
}
