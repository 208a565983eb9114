//! The K-quants (Q2_K..Q6_K) times Q8_K activations with AVX2, one kernel per summation order of
//! their scalar references ([`crate::formats`]), and the Q4_K / Q6_K tiles.
//!
//! A super-block's integers are exact: the quants are expanded to unsigned bytes, multiplied with
//! the activations by `maddubs` (never saturating for these ranges) and weighted by their
//! sub-block scales with `madd`; offsets (Q6_K's -32, Q3_K's -4) go through Q8_K's per-16 sums
//! `bsums`, and so do the Q4_K/Q5_K minimums. Which integers are formed, and the f32 arithmetic
//! that follows, is each reference function's: Q4_K and Q6_K have several (one per [`Order`]
//! llama.cpp uses), computed from the same integer lanes by `*_add` / `*_finish` below.
//!
//! The tiles take one weight row and up to [`TILE_TOKENS`] tokens: each super-block is unpacked
//! once (quants to bytes, scales to `i16` multipliers) and used for every token.

use super::kernel::Kernel;
use super::kquants::*;
use super::simd::*;
use super::tile::{by_element_kernel, drive, row, typed};
use crate::formats::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use crate::traits::{Order, Tile};
use crate::GgmlType;
use std::arch::x86_64::*;
use std::marker::PhantomData;

/// Q2_K · Q8_K in the order of [`crate::formats::q2_k::vec_dot`]: per super-block the
/// exact integers, then `sumf += dall·isum - dmin·summs` in scalar f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&PAIR_MASKS);
    let m3 = _mm256_set1_epi8(3);
    let mut sumf = 0f32;
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
        let (isum, summs) = (hsum_i32x8(sumi), hsum_i32x8(mins));
        let dall = b.d * f16_to_f32(a.d);
        let dmin = b.d * f16_to_f32(a.dmin);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Q3_K · Q8_K in the order of [`crate::formats::q3_k::vec_dot`]: per super-block the
/// exact integer, then `sumf += (x.d·y.d)·isum` in scalar f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&PAIR_MASKS);
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let mut sumf = 0f32;
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
        sumf += f16_to_f32(a.d) * b.d * hsum_i32x8(sumi) as f32;
    }
    sumf
}

/// Q5_K · Q8_K in the order of [`crate::formats::q5_k::vec_dot`]: per super-block the
/// exact integers, then `sumf += (x.d·y.d)·sum_q - (x.dmin·y.d)·sum_m` in scalar f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let masks = opaque(&LANE_MASKS);
    let mut sumf = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let mins = k4_min_sums(&mn, &b.bsums);
        let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(load_64(&sc)));
        let mut sumi = _mm256_setzero_si256();
        let mut qh = load_256(&a.qh);
        let (q5, _) = a.qs.as_chunks::<32>();
        let (q8, _) = b.qs.as_chunks::<64>();
        for (j, (q5, q8)) in q5.iter().zip(q8).enumerate() {
            let (ulo, uhi) = q5k_values(q5, &mut qh);
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
        let (sum_q, sum_m) = (hsum_i32x8(sumi), hsum_i32x4(mins));
        let (xd, xmin) = (f16_to_f32(a.d), f16_to_f32(a.dmin));
        sumf += xd * b.d * sum_q as f32 - xmin * b.d * sum_m as f32;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Q4_K and Q6_K: every summation order llama.cpp uses, and tiles.
// ---------------------------------------------------------------------------------------------

/// The summation orders of Q4_K / Q6_K, as const parameters (`Order as u8`).
pub(super) const VEC: u8 = Order::Vec as u8;
pub(super) const TILED: u8 = Order::Tiled as u8;
pub(super) const BLOCK: u8 = Order::Block as u8;
pub(super) const GEMM: u8 = Order::Gemm as u8;

/// Tokens per tile.
const TILE_TOKENS: usize = 4;

/// The float state of one output element: the eight (and four) lanes of the plain order, or the
/// one or two scalar accumulators of the others.
#[derive(Clone, Copy)]
struct State {
    v8: __m256,
    v4: __m128,
    s: f32,
    m: f32,
}

impl State {
    #[inline(always)]
    unsafe fn new() -> State {
        State {
            v8: _mm256_setzero_ps(),
            v4: _mm_setzero_ps(),
            s: 0.0,
            m: 0.0,
        }
    }
}

/// One row of a tiled K-quant times `C` tokens in the order of `KIND`: each super-block is
/// unpacked once ([`Tiled::unpack`]) and added for every token ([`Tiled::add`]); four tokens in
/// an order other than `VEC` go through [`Tiled::tile4`].
///
/// # Safety
/// AVX2, FMA and F16C.
#[inline(always)]
unsafe fn kquant_tile<W: Tiled, const KIND: u8, const C: usize>(
    w: &[W],
    a: [&[BlockQ8K]; C],
) -> [f32; C] {
    if C == 4 && KIND != VEC {
        let v = W::tile4::<KIND>(w, [a[0], a[1 % C], a[2 % C], a[3 % C]]);
        let mut out = [0f32; C];
        out.copy_from_slice(&v[..C]);
        return out;
    }
    let nb = w.len();
    let a: [&[BlockQ8K]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let mut st = [State::new(); C];
    for (b, blk) in w.iter().enumerate() {
        let r = blk.unpack();
        for c in 0..C {
            W::add::<KIND>(&mut st[c], &r, &a[c][b]);
        }
    }
    let mut out = [0f32; C];
    for c in 0..C {
        out[c] = W::finish::<KIND>(&st[c]);
    }
    out
}

/// A K-quant with tiles (Q4_K, Q6_K): how [`kquant_tile`] treats its super-blocks.
trait Tiled: bytemuck::Pod {
    const TYPE: GgmlType;
    /// A super-block ready for several tokens.
    type Row;
    /// The super-block unpacked.
    unsafe fn unpack(&self) -> Self::Row;
    /// Adds the super-block times one Q8_K block to `st` in the order of `KIND`.
    unsafe fn add<const KIND: u8>(st: &mut State, r: &Self::Row, t: &BlockQ8K);
    /// An element's value from its state.
    unsafe fn finish<const KIND: u8>(st: &State) -> f32;
    /// One row times four tokens in `KIND`, an order other than `VEC`.
    unsafe fn tile4<const KIND: u8>(w: &[Self], a: [&[BlockQ8K]; 4]) -> [f32; 4];
}

/// A Q4_K super-block ready for several tokens: its 256 nibbles as eight 32-byte vectors (vector
/// `j` = sub-block `j`), each sub-block's scale as `i16` in every lane, the mins as 8 × `i16`.
struct Q4kRow {
    w: [__m256i; 8],
    sc: [__m256i; 8],
    mn: __m128i,
    d: f32,
    dmin: f32,
}

/// The integers of one Q4_K super-block times one Q8_K block: per pair `p` of sub-blocks the
/// eight lanes `Σ_{j ∈ {2p, 2p+1}} sc[j]·(quad l of sub-block j)`, and the four min lanes
/// `mn[2p]·s[2p] + mn[2p+1]·s[2p+1]` (`s` = per-32 sums of the activations).
#[inline(always)]
unsafe fn q4k_ints(r: &Q4kRow, t: &BlockQ8K) -> ([__m256i; 4], __m128i) {
    let (q, _) = t.qs.as_chunks::<32>();
    let mut pairs = [_mm256_setzero_si256(); 4];
    for p in 0..4 {
        let mut v = _mm256_setzero_si256();
        for j in [2 * p, 2 * p + 1] {
            let m = _mm256_maddubs_epi16(r.w[j], load_256_i8(&q[j]));
            v = _mm256_add_epi32(v, _mm256_madd_epi16(m, r.sc[j]));
        }
        pairs[p] = v;
    }
    let bs = load_256_i16(&t.bsums);
    let s32 = _mm_hadd_epi16(
        _mm256_castsi256_si128(bs),
        _mm256_extracti128_si256::<1>(bs),
    );
    (pairs, _mm_madd_epi16(s32, r.mn))
}

impl Tiled for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    type Row = Q4kRow;

    #[inline(always)]
    unsafe fn unpack(&self) -> Q4kRow {
        let (sc, mn) = k4_scales_mins(&self.scales);
        let (q, _) = self.qs.as_chunks::<32>();
        let m4 = _mm256_set1_epi8(0x0F);
        // Plain loops, not `array::from_fn`: its closures would not get the target features and
        // would not be inlined.
        let mut w = [_mm256_setzero_si256(); 8];
        let mut scv = [_mm256_setzero_si256(); 8];
        for p in 0..4 {
            let v = load_256(&q[p]);
            w[2 * p] = _mm256_and_si256(v, m4);
            w[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4);
        }
        for j in 0..8 {
            scv[j] = _mm256_set1_epi16(sc[j] as i16);
        }
        Q4kRow {
            w,
            sc: scv,
            mn: _mm_cvtepu8_epi16(load_64(&mn)),
            d: f16_to_f32(self.d),
            dmin: f16_to_f32(self.dmin),
        }
    }

    /// Adds one Q4_K super-block times one Q8_K block to `st` in the order of `KIND`:
    /// * `VEC` ([`crate::formats::q4_k::vec_dot`]): lane `l` of the integer vector is
    ///   `Σ_j sc[j]·(quad l of sub-block j)`; `v8 = fma(y.d·x.d, lanes, v8)`, and the four min
    ///   lanes `mn[2i]·s[2i] + mn[2i+1]·s[2i+1]` go to `v4 = fma((-y.d)·x.dmin, mins, v4)`;
    /// * `TILED` (`..._tiled`): `s = fma(fma(-x.dmin, imin, isum·x.d), y.d, s)`;
    /// * `BLOCK` (`..._block`): `s = fma(isum, x.d·y.d, s)`, `m = fma(imin, x.dmin·y.d, m)`;
    /// * `GEMM` (`..._gemm`): the same per pair of sub-blocks.
    #[inline(always)]
    unsafe fn add<const KIND: u8>(st: &mut State, r: &Q4kRow, t: &BlockQ8K) {
        let (pairs, mins) = q4k_ints(r, t);
        let yd = t.d;
        match KIND {
            VEC => {
                let lanes = _mm256_add_epi32(
                    _mm256_add_epi32(pairs[0], pairs[1]),
                    _mm256_add_epi32(pairs[2], pairs[3]),
                );
                st.v8 = _mm256_fmadd_ps(_mm256_set1_ps(yd * r.d), _mm256_cvtepi32_ps(lanes), st.v8);
                st.v4 = _mm_fmadd_ps(_mm_set1_ps(-yd * r.dmin), _mm_cvtepi32_ps(mins), st.v4);
            }
            GEMM => {
                let mut m = [0i32; 4];
                store_128(bytemuck::cast_mut(&mut m), mins);
                let (d, dmin) = (r.d * yd, r.dmin * yd);
                for p in 0..4 {
                    st.s = (hsum_i32x8(pairs[p]) as f32).mul_add(d, st.s);
                    st.m = (m[p] as f32).mul_add(dmin, st.m);
                }
            }
            _ => {
                let lanes = _mm256_add_epi32(
                    _mm256_add_epi32(pairs[0], pairs[1]),
                    _mm256_add_epi32(pairs[2], pairs[3]),
                );
                let (isum, imin) = (hsum_i32x8(lanes) as f32, hsum_i32x4(mins) as f32);
                if KIND == TILED {
                    let v = (-r.dmin).mul_add(imin, isum * r.d);
                    st.s = v.mul_add(yd, st.s);
                } else {
                    st.s = isum.mul_add(r.d * yd, st.s);
                    st.m = imin.mul_add(r.dmin * yd, st.m);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn finish<const KIND: u8>(st: &State) -> f32 {
        match KIND {
            VEC => hsum_f32x8(st.v8) + hsum_f32x4(st.v4),
            TILED => st.s,
            _ => st.s - st.m,
        }
    }

    #[inline(always)]
    unsafe fn tile4<const KIND: u8>(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        q4k_tile4::<KIND>(w, a)
    }
}

/// A Q6_K super-block ready for several tokens: its 256 unsigned 6-bit values as eight 32-byte
/// vectors (vector `g` = elements `32g..32g+32`), the multipliers `[sc[2g] ×8 | sc[2g+1] ×8]`, and
/// the 16 scales as `i16` for the `-32` correction.
struct Q6kRow {
    u: [__m256i; 8],
    sp: [__m256i; 8],
    sc16: __m256i,
    d: f32,
}

/// The eight integer lanes of one Q6_K super-block times one Q8_K block (see [`Tiled::add`]).
#[inline(always)]
unsafe fn q6k_lanes(r: &Q6kRow, t: &BlockQ8K) -> __m256i {
    let (q, _) = t.qs.as_chunks::<32>();
    let mut lanes = _mm256_madd_epi16(r.sc16, load_256_i16(&t.bsums));
    lanes = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(lanes));
    for g in 0..8 {
        let p = _mm256_maddubs_epi16(r.u[g], load_256_i8(&q[g]));
        lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(p, r.sp[g]));
    }
    lanes
}

impl Tiled for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    type Row = Q6kRow;

    #[inline(always)]
    unsafe fn unpack(&self) -> Q6kRow {
        let (ql, _) = self.ql.as_chunks::<64>();
        let (qh, _) = self.qh.as_chunks::<32>();
        let h0 = q6_k_quarter_values(&ql[0], &qh[0]);
        let h1 = q6_k_quarter_values(&ql[1], &qh[1]);
        let sc = &self.scales;
        let mut sp = [_mm256_setzero_si256(); 8];
        for g in 0..8 {
            sp[g] = _mm256_setr_m128i(
                _mm_set1_epi16(sc[2 * g] as i16),
                _mm_set1_epi16(sc[2 * g + 1] as i16),
            );
        }
        Q6kRow {
            u: [h0[0], h0[1], h0[2], h0[3], h1[0], h1[1], h1[2], h1[3]],
            sp,
            sc16: _mm256_cvtepi8_epi16(load_128(bytemuck::cast_ref(sc))),
            d: f16_to_f32(self.d),
        }
    }

    /// Adds one Q6_K super-block times one Q8_K block to `st` in the order of `KIND`:
    /// * `VEC` ([`crate::formats::q6_k::vec_dot`]): lane `l` is
    ///   `Σ_g Σ_{e ∈ quad l of group g} sc·u·q8 - 32·(bsums[2l]·sc[2l] + bsums[2l+1]·sc[2l+1])`,
    ///   `v8 = fma(y.d·x.d, lanes, v8)`;
    /// * `TILED` (`..._tiled`): `s = fma(isum·x.d, y.d, s)`, `isum` the sum of those lanes (the
    ///   exact `Σ sc·(u - 32)·q8`).
    #[inline(always)]
    unsafe fn add<const KIND: u8>(st: &mut State, r: &Q6kRow, t: &BlockQ8K) {
        let lanes = q6k_lanes(r, t);
        if KIND == VEC {
            st.v8 = _mm256_fmadd_ps(_mm256_set1_ps(t.d * r.d), _mm256_cvtepi32_ps(lanes), st.v8);
        } else {
            st.s = (hsum_i32x8(lanes) as f32 * r.d).mul_add(t.d, st.s);
        }
    }

    #[inline(always)]
    unsafe fn finish<const KIND: u8>(st: &State) -> f32 {
        if KIND == VEC {
            hsum_f32x8(st.v8)
        } else {
            st.s
        }
    }

    /// `TILED`, the one order of Q6_K besides `VEC`.
    #[inline(always)]
    unsafe fn tile4<const KIND: u8>(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
        q6k_tiled4(w, a)
    }
}

// ---------------------------------------------------------------------------------------------
// Four tokens at once for the orders with scalar accumulators: the per-token integers are reduced
// together (lane `c` = token `c`) and the f32 updates of the four tokens, which are independent,
// run as one vector operation each, every lane doing exactly its token's scalar arithmetic.
// ---------------------------------------------------------------------------------------------

/// Lane `c`: the sum of the eight lanes of `v[c]`.
#[inline(always)]
unsafe fn reduce4(v: [__m256i; 4]) -> __m128i {
    let h01 = _mm256_hadd_epi32(v[0], v[1]);
    let h23 = _mm256_hadd_epi32(v[2], v[3]);
    let h = _mm256_hadd_epi32(h01, h23);
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// Lane `c`: the sum of the four lanes of `v[c]`.
#[inline(always)]
unsafe fn reduce4x4(v: [__m128i; 4]) -> __m128i {
    _mm_hadd_epi32(_mm_hadd_epi32(v[0], v[1]), _mm_hadd_epi32(v[2], v[3]))
}

/// The 4 × 4 transpose: lane `c` of result `p` is lane `p` of `v[c]`.
#[inline(always)]
unsafe fn transpose4(v: [__m128i; 4]) -> [__m128i; 4] {
    let t0 = _mm_unpacklo_epi32(v[0], v[1]);
    let t1 = _mm_unpackhi_epi32(v[0], v[1]);
    let t2 = _mm_unpacklo_epi32(v[2], v[3]);
    let t3 = _mm_unpackhi_epi32(v[2], v[3]);
    [
        _mm_unpacklo_epi64(t0, t2),
        _mm_unpackhi_epi64(t0, t2),
        _mm_unpacklo_epi64(t1, t3),
        _mm_unpackhi_epi64(t1, t3),
    ]
}

/// `[a[0][b].d, .., a[3][b].d]`.
#[inline(always)]
unsafe fn token_scales(a: &[&[BlockQ8K]; 4], b: usize) -> __m128 {
    _mm_setr_ps(a[0][b].d, a[1][b].d, a[2][b].d, a[3][b].d)
}

/// [`kquant_tile`] of Q4_K for four tokens and the orders other than `VEC`.
#[inline(always)]
unsafe fn q4k_tile4<const KIND: u8>(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let nb = w.len();
    let a = [&a[0][..nb], &a[1][..nb], &a[2][..nb], &a[3][..nb]];
    let mut acc = _mm_setzero_ps();
    let mut accm = _mm_setzero_ps();
    for (b, blk) in w.iter().enumerate() {
        let r = blk.unpack();
        let mut pairs = [[_mm256_setzero_si256(); 4]; 4];
        let mut mins = [_mm_setzero_si128(); 4];
        for c in 0..4 {
            (pairs[c], mins[c]) = q4k_ints(&r, &a[c][b]);
        }
        let yd = token_scales(&a, b);
        if KIND == GEMM {
            let d = _mm_mul_ps(_mm_set1_ps(r.d), yd);
            let dmin = _mm_mul_ps(_mm_set1_ps(r.dmin), yd);
            let m = transpose4(mins);
            for p in 0..4 {
                let isum = reduce4([pairs[0][p], pairs[1][p], pairs[2][p], pairs[3][p]]);
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), d, acc);
                accm = _mm_fmadd_ps(_mm_cvtepi32_ps(m[p]), dmin, accm);
            }
        } else {
            let mut lanes = [_mm256_setzero_si256(); 4];
            for c in 0..4 {
                let p = &pairs[c];
                lanes[c] =
                    _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
            }
            let isum = _mm_cvtepi32_ps(reduce4(lanes));
            let imin = _mm_cvtepi32_ps(reduce4x4(mins));
            if KIND == TILED {
                let v = _mm_fmadd_ps(
                    _mm_set1_ps(-r.dmin),
                    imin,
                    _mm_mul_ps(isum, _mm_set1_ps(r.d)),
                );
                acc = _mm_fmadd_ps(v, yd, acc);
            } else {
                acc = _mm_fmadd_ps(isum, _mm_mul_ps(_mm_set1_ps(r.d), yd), acc);
                accm = _mm_fmadd_ps(imin, _mm_mul_ps(_mm_set1_ps(r.dmin), yd), accm);
            }
        }
    }
    let v = if KIND == TILED {
        acc
    } else {
        _mm_sub_ps(acc, accm)
    };
    let mut out = [0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), v);
    out
}

/// [`kquant_tile`] of Q6_K for four tokens in the `TILED` order.
#[inline(always)]
unsafe fn q6k_tiled4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let nb = w.len();
    let a = [&a[0][..nb], &a[1][..nb], &a[2][..nb], &a[3][..nb]];
    let mut acc = _mm_setzero_ps();
    for (b, blk) in w.iter().enumerate() {
        let r = blk.unpack();
        let mut lanes = [_mm256_setzero_si256(); 4];
        for c in 0..4 {
            lanes[c] = q6k_lanes(&r, &a[c][b]);
        }
        let isum = _mm_cvtepi32_ps(reduce4(lanes));
        acc = _mm_fmadd_ps(_mm_mul_ps(isum, _mm_set1_ps(r.d)), token_scales(&a, b), acc);
    }
    let mut out = [0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), acc);
    out
}

/// A tile of Q4_K or Q6_K in the order `KIND`: one row × [`TILE_TOKENS`] tokens per register
/// tile, and one row × one token for the tokens left over ([`kquant_tile`] both).
///
/// # Safety
/// AVX2, FMA, F16C; `t.out` as for [`crate::traits::DotTile`].
#[inline(always)]
unsafe fn kquant_run<W: Tiled, const KIND: u8>(t: &Tile<'_>) -> bool {
    let nb = t.n / QK_K;
    if !typed::<W, BlockQ8K>(t, nb) {
        return false;
    }
    let wr = |r: usize| row::<W>(t.w, t.w_stride, r, nb);
    let ar = |c: usize| row::<BlockQ8K>(t.a, t.a_stride, c, nb);
    // SAFETY: the caller's contract.
    unsafe {
        drive::<1, TILE_TOKENS, 1>(
            t.rows,
            t.tokens,
            t.out,
            t.out_stride,
            |rows, toks| {
                let a = std::array::from_fn(|j| ar(toks[j]));
                [kquant_tile::<W, KIND, TILE_TOKENS>(wr(rows[0]), a)]
            },
            |rows, c| [kquant_tile::<W, KIND, 1>(wr(rows[0]), [ar(c)])[0]],
        )
    };
    true
}

/// The kernel of a tiled K-quant `W` in the order `ORDER` (an `Order as u8`: any for Q4_K,
/// [`VEC`] or [`TILED`] for Q6_K).
pub(super) struct TiledK<W, const ORDER: u8>(PhantomData<W>);

/// The Q4_K kernels.
pub(super) type Q4K<const ORDER: u8> = TiledK<BlockQ4K, ORDER>;

/// The Q6_K kernels.
pub(super) type Q6K<const ORDER: u8> = TiledK<BlockQ6K, ORDER>;

impl<W: Tiled, const ORDER: u8> Kernel for TiledK<W, ORDER> {
    const TYPE: GgmlType = W::TYPE;
    const ORDER: Order = Order::ALL[ORDER as usize];

    #[inline(always)]
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool {
        // SAFETY: the caller's contract (`I` implies AVX2, FMA and F16C).
        unsafe { kquant_run::<W, ORDER>(t) }
    }
}

// The K-quants with one order and no tile: one row by one token.
by_element_kernel!(Q2K: Q2_K, BlockQ2K, BlockQ8K, QK_K, dot_q2_k_q8_k);
by_element_kernel!(Q3K: Q3_K, BlockQ3K, BlockQ8K, QK_K, dot_q3_k_q8_k);
by_element_kernel!(Q5K: Q5_K, BlockQ5K, BlockQ8K, QK_K, dot_q5_k_q8_k);
