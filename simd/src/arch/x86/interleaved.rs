//! Q4_0 · Q8_0 in the [`Order::Block`] order (llama.cpp's repacked Q4_0 layout,
//! [`crate::formats::block32::vec_dot_block`]): per element one f32 accumulator,
//! `acc = fma(f32(isum), f32(x.d) * f32(y.d), acc)` block by block, `isum` the block's exact
//! integer dot product, with eight weight rows in the eight lanes of a vector as llama.cpp's
//! kernel keeps them. Two kernels:
//!
//! * [`Transposed`] reads GGUF's rows: per block it transposes the eight rows' 16 quant bytes
//!   (4 × 4-byte groups per row) into vectors whose lane `r` holds row `r`'s group, splits the
//!   nibbles, and feeds `vpdpbusd` (or `vpmaddubsw` + `vpmaddwd`) with each 4-byte group of the
//!   activations broadcast: lane `r` then accumulates exactly row `r`'s block sum, and one FMA
//!   updates eight rows. The activations' `-8·Σy` term is computed once per token and block.
//! * [`Groups8`] reads the same arithmetic from rows stored interleaved
//!   ([`crate::interleave::Layout::Interleaved8`]): scales and quant groups load as they lie.

use super::kernel::Kernel;
use super::legacy::nibbles;
use super::simd::*;
use super::tile::{all_rows_typed, row};
use crate::formats::{BlockQ4_0, BlockQ8_0, QK};
use crate::interleave::{GROUP_BLOCK, ROWS as GROUP_ROWS};
use crate::traits::{Order, Tile};
use crate::GgmlType;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Longest row (in blocks) the tiles keep per-token tables for; longer rows go row by row.
const MAX_BLOCKS: usize = crate::interleave::MAX_BLOCKS;

/// `-8 · Σ y.qs` of an activation block: the offset of the nibbles, applied on the activation side.
#[inline(always)]
unsafe fn offset_term<I: Isa>(a: &BlockQ8_0) -> i32 {
    let s = I::dot_u8_i8(
        _mm256_setzero_si256(),
        _mm256_set1_epi8(8),
        load_256_i8(&a.qs),
    );
    -hsum_i32x8(s)
}

/// One row, the order of the module doc.
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`.
#[inline(always)]
unsafe fn dot<I: Isa>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let av = load_256_i8(&b.qs);
        let corr = I::dot_u8_i8(_mm256_setzero_si256(), _mm256_set1_epi8(8), av);
        let q = I::dot_u8_i8(
            _mm256_sub_epi32(_mm256_setzero_si256(), corr),
            nibbles(&a.qs),
            av,
        );
        let isum = hsum_i32x8(q);
        acc = (isum as f32).mul_add(f16_to_f32(a.d) * f16_to_f32(b.d), acc);
    }
    acc
}

/// One token's step of a tile: its block `blk` (offset term `off`) times the unpacked
/// nibbles `v` of eight rows (lane `r` = row `r`; `v[g]` the low and `v[g + 4]` the high
/// nibbles of quant group `g`) with the rows' scales `xd`: `acc` updated in the order of the
/// module doc.
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`.
#[inline(always)]
unsafe fn token_step<I: Isa>(
    v: &[__m256i; 8],
    xd: __m256,
    blk: &BlockQ8_0,
    off: i32,
    acc: __m256,
) -> __m256 {
    let q = &blk.qs;
    let group = |k: usize| {
        _mm256_set1_epi32(i32::from_le_bytes([
            q[4 * k] as u8,
            q[4 * k + 1] as u8,
            q[4 * k + 2] as u8,
            q[4 * k + 3] as u8,
        ]))
    };
    let mut s0 = _mm256_set1_epi32(off);
    let mut s1 = _mm256_setzero_si256();
    for k in (0..8).step_by(2) {
        s0 = I::dot_u8_i8(s0, v[k], group(k));
        s1 = I::dot_u8_i8(s1, v[k + 1], group(k + 1));
    }
    let isum = _mm256_add_epi32(s0, s1);
    let d = _mm256_mul_ps(xd, f16_splat(blk.d));
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc)
}

/// [`token_step`] for sixteen rows on 512-bit vectors (one instruction where the 256-bit step
/// needs two: the activation groups broadcast to sixteen lanes).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI besides AVX2, FMA, F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn token_step16(
    v: &[__m512i; 8],
    xd: __m512,
    blk: &BlockQ8_0,
    off: i32,
    acc: __m512,
) -> __m512 {
    let q = &blk.qs;
    let group = |k: usize| {
        _mm512_set1_epi32(i32::from_le_bytes([
            q[4 * k] as u8,
            q[4 * k + 1] as u8,
            q[4 * k + 2] as u8,
            q[4 * k + 3] as u8,
        ]))
    };
    let mut s0 = _mm512_set1_epi32(off);
    let mut s1 = _mm512_setzero_si512();
    for k in (0..8).step_by(2) {
        s0 = _mm512_dpbusd_epi32(s0, v[k], group(k));
        s1 = _mm512_dpbusd_epi32(s1, v[k + 1], group(k + 1));
    }
    let isum = _mm512_add_epi32(s0, s1);
    let d = _mm512_mul_ps(xd, _mm512_set1_ps(f16_to_f32(blk.d)));
    _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), d, acc)
}

/// Rows `w` (eight, of `nb` blocks) times tokens `a`, with `offs[c][b]` = `offset_term(a[c][b])`
/// (initialised for `b < nb`): `out[c]` lane `r` = row `r` · token `c`.
///
/// `ahead[r]` is where a row further down starts (the caller takes the tile after next): for
/// one token, its block `b` is prefetched while block `b` is used (eight short interleaved
/// streams are more than the hardware prefetchers keep ahead of; see `legacy::tile`). It is
/// never dereferenced, so it may point anywhere.
#[inline(always)]
unsafe fn tile<I: Isa, const C: usize>(
    w: [&[BlockQ4_0]; 8],
    a: [&[BlockQ8_0]; C],
    offs: [&[MaybeUninit<i32>]; C],
    ahead: [*const u8; 8],
) -> [__m256; C] {
    let nb = w[0].len();
    let w: [&[BlockQ4_0]; 8] = std::array::from_fn(|r| &w[r][..nb]);
    let a: [&[BlockQ8_0]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let offs: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|c| &offs[c][..nb]);
    let mut acc = [_mm256_setzero_ps(); C];
    let m4 = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        // Only for one token: a batch reuses the rows from cache, so its prefetches are waste.
        for p in ahead.into_iter().filter(|_| C == 1) {
            // A prefetch is a hint: it never faults, whatever the address, and the pointer is
            // only formed with wrapping arithmetic.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(b * size_of::<BlockQ4_0>()) as *const i8);
        }
        // y[j] = [row j | row j+4] as 4 × u32 each; a 4×4 transpose per 128-bit half leaves
        // group g of every row in g4[g], lane r = row r.
        let mut y = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            y[j] = _mm256_set_m128i(load_128(&w[j + 4][b].qs), load_128(&w[j][b].qs));
        }
        let t0 = _mm256_unpacklo_epi32(y[0], y[1]);
        let t1 = _mm256_unpackhi_epi32(y[0], y[1]);
        let t2 = _mm256_unpacklo_epi32(y[2], y[3]);
        let t3 = _mm256_unpackhi_epi32(y[2], y[3]);
        let g4 = [
            _mm256_unpacklo_epi64(t0, t2),
            _mm256_unpackhi_epi64(t0, t2),
            _mm256_unpacklo_epi64(t1, t3),
            _mm256_unpackhi_epi64(t1, t3),
        ];
        // Elements 4g..4g+4 are the low nibbles of group g, elements 16+4g.. its high nibbles.
        // (Plain loops, not closures: closures here would not get the target features and
        // would not be inlined.)
        let mut v = [_mm256_setzero_si256(); 8];
        for g in 0..4 {
            v[g] = _mm256_and_si256(g4[g], m4);
            v[g + 4] = _mm256_and_si256(_mm256_srli_epi32::<4>(g4[g]), m4);
        }
        let xd = _mm256_cvtph_ps(_mm_setr_epi16(
            w[0][b].d.to_bits() as i16,
            w[1][b].d.to_bits() as i16,
            w[2][b].d.to_bits() as i16,
            w[3][b].d.to_bits() as i16,
            w[4][b].d.to_bits() as i16,
            w[5][b].d.to_bits() as i16,
            w[6][b].d.to_bits() as i16,
            w[7][b].d.to_bits() as i16,
        ));
        for c in 0..C {
            // SAFETY: the caller initialised `offs[c][..nb]`.
            let off = unsafe { offs[c][b].assume_init() };
            acc[c] = token_step::<I>(&v, xd, &a[c][b], off, acc[c]);
        }
    }
    acc
}

/// [`tile`] for sixteen rows, on 512-bit vectors (lane `r` = row `r`): the same arithmetic per
/// element, with one instruction where the 256-bit tile needs two for a token's products (the
/// activation groups broadcast to sixteen lanes straight from memory), so a batch runs on fewer
/// instructions (with 8 tokens per tile, +30% prompt speed on the 1b Q4_0 model, Zen 4).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI besides AVX2, FMA, F16C; `offs` as for [`tile`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile16<const C: usize>(
    w: [&[BlockQ4_0]; 16],
    a: [&[BlockQ8_0]; C],
    offs: [&[MaybeUninit<i32>]; C],
) -> [__m512; C] {
    let nb = w[0].len();
    let w: [&[BlockQ4_0]; 16] = std::array::from_fn(|r| &w[r][..nb]);
    let a: [&[BlockQ8_0]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let offs: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|c| &offs[c][..nb]);
    let mut acc = [_mm512_setzero_ps(); C];
    let m4 = _mm512_set1_epi8(0x0F);
    for b in 0..nb {
        // y[j] = [row j | row j+4 | row j+8 | row j+12]; the 4×4 transpose per 128-bit lane
        // leaves group g of row r in dword r of g4[g].
        let mut y = [_mm512_setzero_si512(); 4];
        for j in 0..4 {
            let lo = _mm256_set_m128i(load_128(&w[j + 4][b].qs), load_128(&w[j][b].qs));
            let hi = _mm256_set_m128i(load_128(&w[j + 12][b].qs), load_128(&w[j + 8][b].qs));
            y[j] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
        }
        let t0 = _mm512_unpacklo_epi32(y[0], y[1]);
        let t1 = _mm512_unpackhi_epi32(y[0], y[1]);
        let t2 = _mm512_unpacklo_epi32(y[2], y[3]);
        let t3 = _mm512_unpackhi_epi32(y[2], y[3]);
        let g4 = [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ];
        let mut v = [_mm512_setzero_si512(); 8];
        for g in 0..4 {
            v[g] = _mm512_and_si512(g4[g], m4);
            v[g + 4] = _mm512_and_si512(_mm512_srli_epi32::<4>(g4[g]), m4);
        }
        let mut d16 = [0i16; 16];
        for (r, d) in d16.iter_mut().enumerate() {
            *d = w[r][b].d.to_bits() as i16;
        }
        // SAFETY: `d16` is 32 readable bytes; `loadu` has no alignment requirement.
        let xd = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(d16.as_ptr().cast()) });
        for c in 0..C {
            // SAFETY: the caller initialised `offs[c][..nb]`.
            let off = unsafe { offs[c][b].assume_init() };
            // SAFETY: this function's features.
            acc[c] = unsafe { token_step16(&v, xd, &a[c][b], off, acc[c]) };
        }
    }
    acc
}

/// Tokens per tile of the 512-bit batch tile.
const CZ: usize = 8;

/// Tokens per tile of a batch (8 measured slower than 4 on Zen 4 with AVX-512 VNNI: the
/// per-token work dominates, not the weights' transposition).
const C: usize = 4;

/// [`Order::Block`] over GGUF's rows, in tiles of 8 rows × [`C`] tokens (16 rows × [`CZ`] tokens
/// on 512-bit vectors). Declines (writes nothing) rows that are misaligned or longer than
/// [`MAX_BLOCKS`] blocks; they then go element by element.
pub(super) struct Transposed;

impl Kernel for Transposed {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ORDER: Order = Order::Block;

    #[inline(always)]
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool {
        // SAFETY: the caller's contract.
        unsafe { run::<I>(t) }
    }
}

/// [`Transposed`]'s tile.
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`; `t.out` as for `DotTile`.
#[inline(always)]
unsafe fn run<I: Isa>(t: &Tile<'_>) -> bool {
    let (n, w, w_stride, nr) = (t.n, t.w, t.w_stride, t.rows);
    let (a, a_stride, nc, out, out_stride) = (t.a, t.a_stride, t.tokens, t.out, t.out_stride);
    let nb = n / QK;
    if nb > MAX_BLOCKS
        || !all_rows_typed::<BlockQ4_0>(w, w_stride, nr, nb)
        || !all_rows_typed::<BlockQ8_0>(a, a_stride, nc, nb)
    {
        return false;
    }
    if nr == 0 || nc == 0 {
        return true;
    }
    if nr == 1 && nc == 1 {
        // One element (the table's `VecDot`): row by row, not a padded eight-row tile.
        let (x, y) = (row(w, w_stride, 0, nb), row(a, a_stride, 0, nb));
        // SAFETY: `I`'s features; element (0, 0) is writable (the caller's contract).
        unsafe { *out = dot::<I>(x, y) };
        return true;
    }
    let wrow = |r: usize| row::<BlockQ4_0>(w, w_stride, r.min(nr - 1), nb);
    let arow = |c: usize| row::<BlockQ8_0>(a, a_stride, c.min(nc - 1), nb);
    // The offset terms of the current tokens; only `..nb` is written and read.
    let mut offs = [[MaybeUninit::<i32>::uninit(); MAX_BLOCKS]; CZ];
    // Tokens per group: the 512-bit tile takes `CZ` at once.
    let group = if I::ZMM { CZ } else { C };
    let mut c0 = 0;
    while c0 < nc {
        let cn = (nc - c0).min(group);
        for (j, o) in offs.iter_mut().enumerate().take(cn) {
            for (b, blk) in arow(c0 + j).iter().enumerate() {
                o[b].write(offset_term::<I>(blk));
            }
        }
        let mut r0 = 0;
        while r0 < nr {
            let rows: [&[BlockQ4_0]; 8] = std::array::from_fn(|i| wrow(r0 + i));
            // The rows of the tile after next (past the matrix for the last tiles: only ever
            // prefetched).
            let ahead: [*const u8; 8] =
                std::array::from_fn(|i| w.as_ptr().wrapping_add((r0 + 16 + i) * w_stride));
            if I::ZMM && cn == CZ && nr - r0 >= 16 {
                let rows: [&[BlockQ4_0]; 16] = std::array::from_fn(|i| wrow(r0 + i));
                let toks: [&[BlockQ8_0]; CZ] = std::array::from_fn(|j| arow(c0 + j));
                let o: [&[MaybeUninit<i32>]; CZ] = std::array::from_fn(|j| &offs[j][..nb]);
                // SAFETY: `ZMM` is only true for the AVX-512 VNNI level, whose entry points
                // carry (and whose table is only installed after checking) tile16's features.
                let v = unsafe { tile16::<CZ>(rows, toks, o) };
                for (j, v) in v.into_iter().enumerate() {
                    let mut l = [0f32; 16];
                    // SAFETY: `l` is 64 writable bytes; `storeu` has no alignment requirement.
                    unsafe { _mm512_storeu_ps(l.as_mut_ptr(), v) };
                    for (i, &x) in l.iter().enumerate() {
                        // SAFETY: row `r0 + i < nr` and token `c0 + j < nc`, which the
                        // caller's `DotTile` contract makes writable.
                        unsafe { *out.add((c0 + j) * out_stride + r0 + i) = x };
                    }
                }
                r0 += 16;
                continue;
            }
            // Eight rows: the group's tokens `C` at a time, the rest one by one.
            let mut lanes = [[0f32; 8]; CZ];
            let mut j0 = 0;
            while j0 < cn {
                if cn - j0 >= C {
                    let toks: [&[BlockQ8_0]; C] = std::array::from_fn(|j| arow(c0 + j0 + j));
                    let o: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|j| &offs[j0 + j][..nb]);
                    let v = tile::<I, C>(rows, toks, o, ahead);
                    for (l, v) in lanes[j0..].iter_mut().zip(v) {
                        store_f32x8(l, v);
                    }
                    j0 += C;
                } else {
                    let v = tile::<I, 1>(rows, [arow(c0 + j0)], [&offs[j0][..nb]], ahead);
                    store_f32x8(&mut lanes[j0], v[0]);
                    j0 += 1;
                }
            }
            for (j, l) in lanes.iter().enumerate().take(cn) {
                for (i, &v) in l.iter().enumerate().take(nr - r0) {
                    // SAFETY: row `r0 + i < nr` and token `c0 + j < nc`, which the caller's
                    // `DotTile` contract makes writable.
                    unsafe { *out.add((c0 + j) * out_stride + r0 + i) = v };
                }
            }
            r0 += 8;
        }
        c0 += cn;
    }
    true
}

/// Prefetch the three cache lines `dist` bytes past the start of block `b` of group `g` (every
/// line of a stream of 144-byte blocks gets one). A decode tile streams its group once; the
/// hardware prefetchers do not cross the 4 KiB pages of the interleaved weights, and with one
/// token per pass memory latency is exposed at every page without this. The callers prefetch
/// the group two groups ahead (as the row-major tiles prefetch the rows two tiles ahead):
/// decode of the 1b Q4_0 model +28% on one thread and +30% on two over the row-major tiles,
/// 7b +45%, SmolLM2 Q4_0 +30% (AMD EPYC; one group ahead did as well on the 1b and 7b models and
/// 5% worse on SmolLM2's short rows; 16-row tiles on 512-bit vectors, 10% worse than 8 rows).
#[inline(always)]
fn prefetch_ahead(g: *const u8, b: usize, dist: usize) {
    let p = g.wrapping_add(b * GROUP_BLOCK + dist);
    for off in [0, 64, 128] {
        // SAFETY: a prefetch is a hint that never faults, whatever the address; the pointer is
        // only formed with wrapping arithmetic.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8) };
    }
}

/// [`tile`] over one group of eight rows stored interleaved ([`crate::interleave`]), starting at
/// `g`: the same arithmetic per lane, with the scales and quant groups loaded as they lie (no
/// transposition, no gathering of scales), so a block costs a few loads instead of two dozen
/// shuffles and inserts (twice the speed from cache). For one token and `dist > 0`, the bytes
/// `dist` ahead are prefetched ([`prefetch_ahead`]).
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`; `g` points to `nb` readable interleaved blocks;
/// `a` and `offs` hold at least `nb` blocks and initialised terms.
#[inline(always)]
unsafe fn itile<I: Isa, const C: usize>(
    g: *const u8,
    nb: usize,
    dist: usize,
    a: [&[BlockQ8_0]; C],
    offs: [&[MaybeUninit<i32>]; C],
) -> [__m256; C] {
    let a: [&[BlockQ8_0]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let offs: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|c| &offs[c][..nb]);
    let mut acc = [_mm256_setzero_ps(); C];
    let m4 = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        if C == 1 && dist > 0 {
            prefetch_ahead(g, b, dist);
        }
        // SAFETY: block `b < nb` of the group: `GROUP_BLOCK` readable bytes (the caller's
        // contract); unaligned loads.
        let (xd, v) = unsafe {
            let p = g.add(b * GROUP_BLOCK);
            let xd = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
            let mut v = [_mm256_setzero_si256(); 8];
            for k in 0..4 {
                let q = _mm256_loadu_si256(p.add(16 + 32 * k).cast());
                v[k] = _mm256_and_si256(q, m4);
                v[k + 4] = _mm256_and_si256(_mm256_srli_epi32::<4>(q), m4);
            }
            (xd, v)
        };
        for c in 0..C {
            // SAFETY: the caller initialised `offs[c][..nb]`.
            let off = unsafe { offs[c][b].assume_init() };
            acc[c] = token_step::<I>(&v, xd, &a[c][b], off, acc[c]);
        }
    }
    acc
}

/// [`itile`] for two groups (sixteen rows) on 512-bit vectors, lane `r` = row `r`: the
/// arithmetic of [`tile16`]. For batches (no prefetching).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI besides AVX2, FMA, F16C; `g0` and `g1` as `g` for [`itile`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn itile16<const C: usize>(
    g0: *const u8,
    g1: *const u8,
    nb: usize,
    a: [&[BlockQ8_0]; C],
    offs: [&[MaybeUninit<i32>]; C],
) -> [__m512; C] {
    let a: [&[BlockQ8_0]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let offs: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|c| &offs[c][..nb]);
    let mut acc = [_mm512_setzero_ps(); C];
    let m4 = _mm512_set1_epi8(0x0F);
    for b in 0..nb {
        // SAFETY: block `b < nb` of both groups (the caller's contract); unaligned loads.
        let (xd, v) = unsafe {
            let (p0, p1) = (g0.add(b * GROUP_BLOCK), g1.add(b * GROUP_BLOCK));
            let d = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadu_si128(p0.cast())),
                _mm_loadu_si128(p1.cast()),
            );
            let xd = _mm512_cvtph_ps(d);
            let mut v = [_mm512_setzero_si512(); 8];
            for k in 0..4 {
                let q = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(16 + 32 * k).cast())),
                    _mm256_loadu_si256(p1.add(16 + 32 * k).cast()),
                );
                v[k] = _mm512_and_si512(q, m4);
                v[k + 4] = _mm512_and_si512(_mm512_srli_epi32::<4>(q), m4);
            }
            (xd, v)
        };
        for c in 0..C {
            // SAFETY: the caller initialised `offs[c][..nb]`.
            let off = unsafe { offs[c][b].assume_init() };
            // SAFETY: this function's features.
            acc[c] = unsafe { token_step16(&v, xd, &a[c][b], off, acc[c]) };
        }
    }
    acc
}

/// [`Order::Block`] over rows interleaved eight at a time
/// ([`crate::interleave::Layout::Interleaved8`]): `t.rows` a multiple of 8, rows of at most
/// [`MAX_BLOCKS`] blocks, `t.w` the groups of those rows, readable activation blocks; else it
/// declines (writes nothing).
pub(super) struct Groups8;

impl Kernel for Groups8 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ORDER: Order = Order::Block;

    #[inline(always)]
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool {
        // SAFETY: the caller's contract.
        unsafe { irun::<I>(t) }
    }
}

/// [`Groups8`]'s tile.
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`; `t.out` as for `DotTile`.
#[inline(always)]
unsafe fn irun<I: Isa>(t: &Tile<'_>) -> bool {
    let (n, w, nr) = (t.n, t.w, t.rows);
    let (a, a_stride, nc, out, out_stride) = (t.a, t.a_stride, t.tokens, t.out, t.out_stride);
    let nb = n / QK;
    if nb > MAX_BLOCKS
        || !nr.is_multiple_of(GROUP_ROWS)
        || w.len() < nr * nb * size_of::<BlockQ4_0>()
        || !all_rows_typed::<BlockQ8_0>(a, a_stride, nc, nb)
    {
        return false;
    }
    if nr == 0 || nc == 0 {
        return true;
    }
    let group = |r: usize| w[r / GROUP_ROWS * nb * GROUP_BLOCK..].as_ptr();
    let arow = |c: usize| row::<BlockQ8_0>(a, a_stride, c.min(nc - 1), nb);
    let mut offs = [[MaybeUninit::<i32>::uninit(); MAX_BLOCKS]; CZ];
    let tokens = if I::ZMM { CZ } else { C };
    // Decode prefetches two groups ahead (`prefetch_ahead`); batches reuse each group from
    // cache for all their tokens.
    let dist = 2 * nb * GROUP_BLOCK;
    let mut c0 = 0;
    while c0 < nc {
        let cn = (nc - c0).min(tokens);
        for (j, o) in offs.iter_mut().enumerate().take(cn) {
            for (b, blk) in arow(c0 + j).iter().enumerate() {
                o[b].write(offset_term::<I>(blk));
            }
        }
        let mut r0 = 0;
        while r0 < nr {
            // Sixteen rows on 512-bit vectors for full batch groups (decode stays on eight rows
            // and 256-bit vectors: faster, see `prefetch_ahead`).
            if I::ZMM && cn == CZ && nr - r0 >= 16 {
                let put = |j: usize, v: __m512| {
                    let mut l = [0f32; 16];
                    // SAFETY: `l` is 64 writable bytes; `storeu` has no alignment requirement.
                    unsafe { _mm512_storeu_ps(l.as_mut_ptr(), v) };
                    for (i, &x) in l.iter().enumerate() {
                        // SAFETY: row `r0 + i < nr` and token `c0 + j < nc`, which the
                        // caller's `DotTile` contract makes writable.
                        unsafe { *out.add((c0 + j) * out_stride + r0 + i) = x };
                    }
                };
                let (g0, g1) = (group(r0), group(r0 + 8));
                let toks: [&[BlockQ8_0]; CZ] = std::array::from_fn(|j| arow(c0 + j));
                let o: [&[MaybeUninit<i32>]; CZ] = std::array::from_fn(|j| &offs[j][..nb]);
                // SAFETY: `ZMM` is only true for the AVX-512 VNNI level, whose entry points
                // carry (and whose table is only installed after checking) itile16's
                // features; both groups lie in `w` (its length was checked).
                let v = unsafe { itile16::<CZ>(g0, g1, nb, toks, o) };
                for (j, v) in v.into_iter().enumerate() {
                    put(j, v);
                }
                r0 += 16;
                continue;
            }
            let g = group(r0);
            let mut lanes = [[0f32; 8]; CZ];
            let mut j0 = 0;
            while j0 < cn {
                // SAFETY: the group lies in `w`; `offs[..cn]` initialised above.
                if cn - j0 >= C {
                    let toks: [&[BlockQ8_0]; C] = std::array::from_fn(|j| arow(c0 + j0 + j));
                    let o: [&[MaybeUninit<i32>]; C] = std::array::from_fn(|j| &offs[j0 + j][..nb]);
                    let v = unsafe { itile::<I, C>(g, nb, 0, toks, o) };
                    for (l, v) in lanes[j0..].iter_mut().zip(v) {
                        store_f32x8(l, v);
                    }
                    j0 += C;
                } else {
                    let v = unsafe {
                        itile::<I, 1>(
                            g,
                            nb,
                            if cn == 1 { dist } else { 0 },
                            [arow(c0 + j0)],
                            [&offs[j0][..nb]],
                        )
                    };
                    store_f32x8(&mut lanes[j0], v[0]);
                    j0 += 1;
                }
            }
            for (j, l) in lanes.iter().enumerate().take(cn) {
                for (i, &v) in l.iter().enumerate() {
                    // SAFETY: row `r0 + i < nr` (`nr` is a multiple of 8) and token
                    // `c0 + j < nc`, which the caller's `DotTile` contract makes writable.
                    unsafe { *out.add((c0 + j) * out_stride + r0 + i) = v };
                }
            }
            r0 += 8;
        }
        c0 += cn;
    }
    true
}
