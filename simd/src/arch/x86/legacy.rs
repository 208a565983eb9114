//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and any format [`Block32`] describes)
//! times their 8-bit activation blocks, in the [`Order::Vec`] order
//! ([`crate::formats::block32::vec_dot`]), for AVX2 and AVX-512 VNNI (generic over [`Isa`]).
//!
//! Per element of the product: eight f32 lanes from 0; for each block in order, the exact quad
//! sums `q_l` (lane `l`: elements `4l..4l+4`, as `vpdpbusd` / `vpmaddubsw`+`vpmaddwd` leave
//! them), `d = f32(x.d) * f32(y.d)`, `acc = fma(d, q, acc)`; the lanes are reduced with `hsum8`.
//! The formats with a minimum add `summs = fma(f32(x.m), f32(y.s), summs)` (block by block),
//! after the reduction. Only one accumulator chain per element can give those bits, so speed
//! comes from tiles: `R` rows × `C` tokens at once, each weight block unpacked once per tile and
//! each activation block loaded once per tile, with `R·C` independent chains.
//!
//! Two kernels: [`Rows`] over GGUF's rows, [`Blocks4`] over rows interleaved block by block in
//! fours ([`crate::interleave::Layout::Blocks4`]).

use super::kernel::Kernel;
use super::simd::*;
use super::tile::{all_rows_typed, blocks_at, drive, row, typed};
use crate::formats::block32::{self as b32, has_min, Block32, Quants, QK};
use crate::traits::{Order, Tile};
use crate::GgmlType;
use half::f16;
use std::arch::x86_64::*;
use std::marker::PhantomData;

/// The block's weights as the integer dot takes them: unsigned values (nibbles, five bits) or,
/// for [`Quants::Bytes`], [`Isa::i8_weights`].
#[inline(always)]
unsafe fn weights<I: Isa, B: Block32>(blk: &B) -> __m256i {
    match B::QUANTS {
        Quants::Nibbles => nibbles(b32::nibble_bytes(blk)),
        Quants::FiveBits => _mm256_or_si256(
            nibbles(b32::nibble_bytes(blk)),
            I::bit_bytes(b32::fifth_bits(blk), 0x10),
        ),
        Quants::Bytes => I::i8_weights(load_256_i8(b32::byte_quants(blk))),
    }
}

/// The activation-side term of [`dot`], shared by every row: `-offset·Σa` per quad for the
/// formats with an offset, [`Isa::i8_corr`] for signed weights.
#[inline(always)]
unsafe fn act_corr<I: Isa, B: Block32>(a: __m256i) -> __m256i {
    const { assert!(B::QUANTS as u8 != Quants::Bytes as u8 || B::OFFSET == 0) };
    if B::QUANTS == Quants::Bytes {
        I::i8_corr(a)
    } else if B::OFFSET != 0 {
        let s = I::dot_u8_i8(_mm256_setzero_si256(), _mm256_set1_epi8(B::OFFSET), a);
        _mm256_sub_epi32(_mm256_setzero_si256(), s)
    } else {
        _mm256_setzero_si256()
    }
}

/// The exact quad sums of the values times the activations (`w = weights()`,
/// `corr = act_corr(a)`).
#[inline(always)]
unsafe fn dot<I: Isa, B: Block32>(corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
    if B::QUANTS == Quants::Bytes {
        I::i8_dot(corr, w, a)
    } else {
        I::dot_u8_i8(corr, w, a)
    }
}

/// `f32(d)` in every lane, and `f32(m)` for the formats with a minimum (else anything).
#[inline(always)]
unsafe fn scales<B: Block32>(blk: &B) -> (__m256, __m256) {
    if has_min::<B>() {
        let p = f16_pair(b32::d(blk), b32::m(blk));
        (even_lanes(p), odd_lanes(p))
    } else {
        let d = f16_splat(b32::d(blk));
        (d, d)
    }
}

/// The 32 nibbles of 16 bytes in element order (low nibbles, then high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn nibbles(qs: &[u8; 16]) -> __m256i {
    let v = _mm256_broadcastsi128_si256(load_128(qs));
    let v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
}

/// One weight row's blocks: `nb` blocks of `W`, `step` blocks apart in `blocks` from index
/// `first` (step 1: GGUF's row after row; step 4: rows interleaved block by block in groups of
/// four, [`crate::matmul::Layout::Blocks4`]).
#[derive(Clone, Copy)]
struct RowRef<'a, W> {
    blocks: &'a [W],
    first: usize,
    step: usize,
    nb: usize,
}

impl<'a, W> RowRef<'a, W> {
    /// A row stored contiguously.
    #[inline(always)]
    fn plain(row: &'a [W]) -> Self {
        RowRef {
            blocks: row,
            first: 0,
            step: 1,
            nb: row.len(),
        }
    }

    /// Row `r` of a group of `g` rows of `nb` blocks interleaved block by block (`group`: the
    /// group's blocks). Panics if `group` is too short.
    #[inline(always)]
    fn grouped(group: &'a [W], r: usize, g: usize, nb: usize) -> Self {
        assert!(r < g && (nb == 0 || group.len() >= nb * g));
        RowRef {
            blocks: group,
            first: r,
            step: g,
            nb,
        }
    }

    /// Block `b`.
    ///
    /// # Safety
    /// `b < nb`.
    #[inline(always)]
    unsafe fn blk(&self, b: usize) -> &'a W {
        debug_assert!(b < self.nb);
        // SAFETY: `b < nb` (the caller's contract), and both constructors make
        // `first + (nb - 1) * step` an index of `blocks`.
        unsafe { self.blocks.get_unchecked(self.first + b * self.step) }
    }

    /// Bytes from one block of the row to the next.
    #[inline(always)]
    fn step_bytes(&self) -> usize {
        self.step * size_of::<W>()
    }
}

/// Up to eight f16 values as f32 lanes `0..C` (the rest 0).
#[inline(always)]
unsafe fn f16_lanes<const C: usize>(f: impl Fn(usize) -> f16) -> __m256 {
    let mut v = _mm_setzero_si128();
    for c in 0..C {
        let h = f(c).to_bits() as i32;
        v = match c {
            0 => _mm_insert_epi16::<0>(v, h),
            1 => _mm_insert_epi16::<1>(v, h),
            2 => _mm_insert_epi16::<2>(v, h),
            3 => _mm_insert_epi16::<3>(v, h),
            4 => _mm_insert_epi16::<4>(v, h),
            5 => _mm_insert_epi16::<5>(v, h),
            6 => _mm_insert_epi16::<6>(v, h),
            _ => _mm_insert_epi16::<7>(v, h),
        };
    }
    _mm256_cvtph_ps(v)
}

/// Lanes `0..C`: `f32(s)` of the tokens' blocks `b`, for the formats with a minimum (else 0).
#[inline(always)]
unsafe fn act_sums<W: Block32, const C: usize>(a: &[&[W::Act]; C], b: usize) -> __m256 {
    if has_min::<W>() {
        f16_lanes::<C>(|c| b32::act_s(&a[c][b]))
    } else {
        _mm256_setzero_ps()
    }
}

/// The tiles' last step: element `(r, c)` is `hsum8(acc[r][c])`, plus lane `c` of `summs[r]` for
/// the formats with a minimum.
#[inline(always)]
unsafe fn finish<W: Block32, const R: usize, const C: usize>(
    acc: [[__m256; C]; R],
    summs: [__m256; R],
) -> [[f32; C]; R] {
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        let mut s = [0f32; 8];
        store_f32x8(&mut s, summs[r]);
        for c in 0..C {
            out[r][c] = hsum_f32x8(acc[r][c]);
            if has_min::<W>() {
                out[r][c] += s[c];
            }
        }
    }
    out
}

/// The products of `R` weight rows with `C` activation rows, `out[r][c]`, all of the same number
/// of blocks, each in the order of the module doc.
///
/// `ahead[r]` (null for none) is where a row further down starts (the caller takes the tile
/// after next), its blocks as far apart as row `r`'s: for one token, while block `b` is used,
/// the same block of that row is prefetched. A tile of the file's layout streams `R` rows at
/// once, and short interleaved streams are where the hardware prefetchers fall behind (a row of
/// a 4096-wide Q8_0 matrix is 68 cache lines); with the rows ahead already on their way, a
/// matrix × vector product runs at memory speed. (Two tiles ahead rather than one: +15% decode
/// speed on SmolLM2's 576-wide rows; four: no better.) Rows interleaved block by block
/// ([`RowRef::grouped`]) make one stream of a tile, which the same prefetches keep ahead.
///
/// # Safety
/// AVX2, FMA, F16C and the features of `I`. `ahead` is never dereferenced, only prefetched, so
/// it may point anywhere.
#[inline(always)]
unsafe fn tile<I: Isa, W: Block32, const R: usize, const C: usize>(
    w: [RowRef<'_, W>; R],
    a: [&[W::Act]; C],
    ahead: [*const u8; R],
) -> [[f32; C]; R] {
    const { assert!(C <= 8) };
    let nb = w.iter().map(|r| r.nb).min().unwrap_or(0);
    let a: [&[W::Act]; C] = std::array::from_fn(|c| &a[c][..nb]);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    // Lanes `0..C`: `summs` of row `r` with each token.
    let mut summs = [_mm256_setzero_ps(); R];
    for b in 0..nb {
        let mut av = [_mm256_setzero_si256(); C];
        let mut corr = [_mm256_setzero_si256(); C];
        let mut yd = [_mm256_setzero_ps(); C];
        for c in 0..C {
            let blk = &a[c][b];
            av[c] = load_256_i8(b32::act_qs(blk));
            corr[c] = act_corr::<I, W>(av[c]);
            yd[c] = f16_splat(b32::d(blk));
        }
        let ys = act_sums::<W, C>(&a, b);
        for r in 0..R {
            // Only for one token: a batch reuses the rows from cache, so its prefetches are waste.
            if C == 1 && !ahead[r].is_null() {
                // A prefetch is a hint: it never faults, whatever the address, and the pointer
                // is only formed with wrapping arithmetic.
                let p = ahead[r].wrapping_add(b * w[r].step_bytes());
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            }
            // SAFETY: `b < nb`, the fewest blocks of any row.
            let blk = unsafe { w[r].blk(b) };
            let wv = weights::<I, W>(blk);
            let (xd, xm) = scales(blk);
            for c in 0..C {
                let q = dot::<I, W>(corr[c], wv, av[c]);
                let d = _mm256_mul_ps(xd, yd[c]);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q), acc[r][c]);
            }
            if has_min::<W>() {
                summs[r] = _mm256_fmadd_ps(xm, ys, summs[r]);
            }
        }
    }
    finish::<W, R, C>(acc, summs)
}

/// [`tile`] on 512-bit vectors, for the AVX-512 VNNI level: tokens in pairs, token `2p` in the low
/// half of a vector and token `2p + 1` in the high half, so each product instruction serves two
/// tokens (the weights broadcast to both halves). Every lane computes what the same lane of
/// [`tile`]'s vector does (at VNNI every format's [`dot`] is one `vpdpbusd` from its
/// `corr`, and the tests hold the two tiles to the same bits), and each half is reduced as
/// [`tile`] reduces its vector. `C` must be even; no prefetching (batches only).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI besides AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_zmm<W: Block32, const R: usize, const C: usize>(
    w: [RowRef<'_, W>; R],
    a: [&[W::Act]; C],
) -> [[f32; C]; R] {
    const { assert!(C <= 8 && C.is_multiple_of(2)) };
    use super::simd::Vnni;
    let nb = w.iter().map(|r| r.nb).min().unwrap_or(0);
    let a: [&[W::Act]; C] = std::array::from_fn(|c| &a[c][..nb]);
    // Only the first `C / 2` entries of the per-pair arrays are used.
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let mut summs = [_mm256_setzero_ps(); R];
    let both = |lo: __m256, hi: __m256| {
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
            _mm256_castps_pd(hi),
        ))
    };
    for b in 0..nb {
        let mut av = [_mm512_setzero_si512(); C];
        let mut corr = [_mm512_setzero_si512(); C];
        let mut yd = [_mm512_setzero_ps(); C];
        for p in 0..C / 2 {
            let (b0, b1) = (&a[2 * p][b], &a[2 * p + 1][b]);
            let (a0, a1) = (load_256_i8(b32::act_qs(b0)), load_256_i8(b32::act_qs(b1)));
            av[p] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a0), a1);
            corr[p] = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(act_corr::<Vnni, W>(a0)),
                act_corr::<Vnni, W>(a1),
            );
            yd[p] = both(f16_splat(b32::d(b0)), f16_splat(b32::d(b1)));
        }
        let ys = act_sums::<W, C>(&a, b);
        for r in 0..R {
            // SAFETY: `b < nb`, the fewest blocks of any row.
            let blk = unsafe { w[r].blk(b) };
            let wv = _mm512_broadcast_i64x4(weights::<Vnni, W>(blk));
            let (xd, xm) = scales(blk);
            let xd = both(xd, xd);
            for p in 0..C / 2 {
                let q = _mm512_dpbusd_epi32(corr[p], wv, av[p]);
                let d = _mm512_mul_ps(xd, yd[p]);
                acc[r][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(q), acc[r][p]);
            }
            if has_min::<W>() {
                summs[r] = _mm256_fmadd_ps(xm, ys, summs[r]);
            }
        }
    }
    // Token `2p` is the low half of pair `p`, token `2p + 1` the high half.
    let mut halves = [[_mm256_setzero_ps(); C]; R];
    for r in 0..R {
        for p in 0..C / 2 {
            let v = _mm512_castps_pd(acc[r][p]);
            halves[r][2 * p] = _mm256_castpd_ps(_mm512_castpd512_pd256(v));
            halves[r][2 * p + 1] = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(v));
        }
    }
    finish::<W, R, C>(halves, summs)
}

/// [`Order::Vec`] over GGUF's rows.
pub(super) struct Rows<B>(PhantomData<B>);

impl<B: Block32> Kernel for Rows<B> {
    const TYPE: GgmlType = B::TYPE;
    const ORDER: Order = Order::Vec;

    #[inline(always)]
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool {
        let nb = t.n / QK;
        if !typed::<B, B::Act>(t, nb) {
            return false;
        }
        let wr = |r: usize| RowRef::plain(row::<B>(t.w, t.w_stride, r, nb));
        let ar = |c: usize| row::<B::Act>(t.a, t.a_stride, c, nb);
        if t.rows == 1 && t.tokens == 1 {
            // One element (the table's `VecDot`): no padded tile.
            // SAFETY: the caller's contract; element (0, 0) is writable.
            unsafe { *t.out = tile::<I, B, 1, 1>([wr(0)], [ar(0)], [std::ptr::null()])[0][0] };
            return true;
        }
        // Where row `r` starts (past the matrix for the last tiles: only ever prefetched).
        let ahead = |r: usize| t.w.as_ptr().wrapping_add(r * t.w_stride);
        // SAFETY: the caller's contract.
        unsafe { drive_rows::<I, B>(t, wr, ar, ahead) };
        true
    }
}

/// [`Order::Vec`] over rows interleaved block by block in groups of four
/// ([`crate::interleave::Layout::Blocks4`]): `t.rows` a multiple of 4, `t.w` the groups of those
/// rows.
pub(super) struct Blocks4<B>(PhantomData<B>);

impl<B: Block32> Kernel for Blocks4<B> {
    const TYPE: GgmlType = B::TYPE;
    const ORDER: Order = Order::Vec;

    #[inline(always)]
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool {
        const G: usize = crate::interleave::BLOCK_ROWS;
        let nb = t.n / QK;
        let Some(all) = blocks_at::<B>(t.w, 0, t.rows * nb) else {
            return false;
        };
        if !t.rows.is_multiple_of(G) || !all_rows_typed::<B::Act>(t.a, t.a_stride, t.tokens, nb) {
            return false;
        }
        let wr =
            |r: usize| RowRef::grouped(&all[r / G * G * nb..(r / G + 1) * G * nb], r % G, G, nb);
        let ar = |c: usize| row::<B::Act>(t.a, t.a_stride, c, nb);
        // Where row `r`'s first block lies (past the matrix for the last tiles: only ever
        // prefetched).
        let ahead = |r: usize| {
            all.as_ptr()
                .cast::<u8>()
                .wrapping_add((r / G * G * nb + r % G) * size_of::<B>())
        };
        // SAFETY: the caller's contract.
        unsafe { drive_rows::<I, B>(t, wr, ar, ahead) };
        true
    }
}

/// The tiles of a kernel over rows `wr(r)` and tokens `ar(c)`, prefetching from `ahead(r)`:
/// batches in `R × C` tiles, decode in `RD`-row tiles. Shapes measured on Zen 4 with 2 threads:
/// AVX-512's 32 registers hold a 4 × 8 batch tile on 512-bit vectors (pp512 of gemma-3 +13% and
/// of a Q4_1 model +30% over 3 × 4; 5 rows spill); AVX2's 16 registers, 2 × 2.
///
/// # Safety
/// `I`'s features; `t.out` as for [`crate::traits::DotTile`]; every row has the blocks of every
/// token.
#[inline(always)]
unsafe fn drive_rows<'a, I: Isa, B: Block32 + 'a>(
    t: &Tile<'_>,
    wr: impl Fn(usize) -> RowRef<'a, B>,
    ar: impl Fn(usize) -> &'a [B::Act],
    ahead: impl Fn(usize) -> *const u8,
) {
    // SAFETY (both): the caller's contract.
    if I::ZMM {
        unsafe { drive_shape::<I, B, 4, 8, 4>(t, wr, ar, ahead) }
    } else {
        unsafe { drive_shape::<I, B, 2, 2, 4>(t, wr, ar, ahead) }
    }
}

/// [`drive_rows`] with tiles of `R` rows × `C` tokens and `RD` decode rows.
///
/// # Safety
/// As for [`drive_rows`].
#[inline(always)]
unsafe fn drive_shape<
    'a,
    I: Isa,
    B: Block32 + 'a,
    const R: usize,
    const C: usize,
    const RD: usize,
>(
    t: &Tile<'_>,
    wr: impl Fn(usize) -> RowRef<'a, B>,
    ar: impl Fn(usize) -> &'a [B::Act],
    ahead: impl Fn(usize) -> *const u8,
) {
    // SAFETY: the caller's contract.
    unsafe {
        drive::<R, C, RD>(
            t.rows,
            t.tokens,
            t.out,
            t.out_stride,
            |rows, toks| {
                let (w, a) = (
                    std::array::from_fn(|i| wr(rows[i])),
                    std::array::from_fn(|j| ar(toks[j])),
                );
                if I::ZMM && C.is_multiple_of(2) {
                    // (Sound: `ZMM` is only true for the AVX-512 VNNI level, whose entry points
                    // carry, and whose table is only installed after checking, these features.)
                    tile_zmm::<B, R, C>(w, a)
                } else {
                    tile::<I, B, R, C>(w, a, std::array::from_fn(|i| ahead(rows[i] + R)))
                }
            },
            |rows, c| {
                let v = tile::<I, B, RD, 1>(
                    std::array::from_fn(|i| wr(rows[i])),
                    [ar(c)],
                    std::array::from_fn(|i| ahead(rows[i] + 2 * RD)),
                );
                std::array::from_fn(|i| v[i][0])
            },
        )
    };
}
