//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) times their 8-bit activation blocks,
//! in the order of [`crate::dot::scalar::vec_dot_q4_0_q8_0`] and its siblings, for AVX2 and
//! AVX-512 VNNI (generic over [`Isa`]).
//!
//! Per element of the product: eight f32 lanes from 0; for each block in order, the exact quad
//! sums `q_l` (lane `l`: elements `4l..4l+4`, as `vpdpbusd` / `vpmaddubsw`+`vpmaddwd` leave
//! them), `d = f32(x.d) * f32(y.d)`, `acc = fma(d, q, acc)`; the lanes are reduced with `hsum8`.
//! The formats with a minimum add `summs = fma(f32(x.m), f32(y.s), summs)` (block by block),
//! after the reduction. Only one accumulator chain per element can give those bits, so speed
//! comes from tiles: `R` rows × `C` tokens at once, each weight block unpacked once per tile and
//! each activation block loaded once per tile, with `R·C` independent chains.

use super::isa::Isa;
use super::util::*;
use crate::blocks::*;
use bytemuck::Pod;
use half::f16;
use std::arch::x86_64::*;

/// An 8-bit activation block (`Q8_0` or `Q8_1`).
pub(super) trait Act: Pod {
    fn qs(&self) -> &[i8; 32];
    fn d(&self) -> f16;
    /// `d · Σq` (Q8_1 only).
    fn s(&self) -> f16;
}

impl Act for BlockQ8_0 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn d(&self) -> f16 {
        self.d
    }
    #[inline(always)]
    fn s(&self) -> f16 {
        f16::ZERO
    }
}

impl Act for BlockQ8_1 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn d(&self) -> f16 {
        self.d
    }
    #[inline(always)]
    fn s(&self) -> f16 {
        self.s
    }
}

/// A 32-element weight format.
///
/// # Safety
/// The `unsafe` methods need AVX2, FMA, F16C and the features of `I`.
pub(super) trait Legacy: Pod {
    type Act: Act;
    /// Whether the format has a minimum (`x = d·q + m`), summed through the activations' `s`.
    const MIN: bool;
    /// The block's weight operand for [`Legacy::dot`].
    unsafe fn weights<I: Isa>(&self) -> __m256i;
    /// The activation-side term of [`Legacy::dot`], shared by every row.
    unsafe fn corr<I: Isa>(a: __m256i) -> __m256i;
    /// The exact quad sums of weights and activations (`w = weights()`, `corr = corr(a)`).
    unsafe fn dot<I: Isa>(corr: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// `f32(d)` in every lane, and `f32(m)` for formats with a minimum (else anything).
    unsafe fn scales(&self) -> (__m256, __m256);
}

/// The 32 nibbles of 16 bytes in element order (low nibbles, then high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn nibbles(qs: &[u8; 16]) -> __m256i {
    let v = _mm256_broadcastsi128_si256(load_128(qs));
    let v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
}

/// The 32 unsigned 5-bit values of a Q5 block.
#[inline(always)]
unsafe fn five_bits<I: Isa>(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    _mm256_or_si256(nibbles(qs), I::bit_bytes(u32::from_le_bytes(qh), 0x10))
}

/// `Σ (u - off)·a` per quad, as `corr + Σ u·a` with `corr = -off·Σa`.
#[inline(always)]
unsafe fn offset_corr<I: Isa>(off: i8, a: __m256i) -> __m256i {
    let s = I::dot_u8_i8(_mm256_setzero_si256(), _mm256_set1_epi8(off), a);
    _mm256_sub_epi32(_mm256_setzero_si256(), s)
}

impl Legacy for BlockQ4_0 {
    type Act = BlockQ8_0;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn weights<I: Isa>(&self) -> __m256i {
        nibbles(&self.qs)
    }
    #[inline(always)]
    unsafe fn corr<I: Isa>(a: __m256i) -> __m256i {
        offset_corr::<I>(8, a)
    }
    #[inline(always)]
    unsafe fn dot<I: Isa>(corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        I::dot_u8_i8(corr, w, a)
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        let d = f16_splat(self.d);
        (d, d)
    }
}

impl Legacy for BlockQ5_0 {
    type Act = BlockQ8_0;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn weights<I: Isa>(&self) -> __m256i {
        five_bits::<I>(&self.qs, self.qh)
    }
    #[inline(always)]
    unsafe fn corr<I: Isa>(a: __m256i) -> __m256i {
        offset_corr::<I>(16, a)
    }
    #[inline(always)]
    unsafe fn dot<I: Isa>(corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        I::dot_u8_i8(corr, w, a)
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        let d = f16_splat(self.d);
        (d, d)
    }
}

impl Legacy for BlockQ8_0 {
    type Act = BlockQ8_0;
    const MIN: bool = false;
    #[inline(always)]
    unsafe fn weights<I: Isa>(&self) -> __m256i {
        I::i8_weights(load_256_i8(&self.qs))
    }
    #[inline(always)]
    unsafe fn corr<I: Isa>(a: __m256i) -> __m256i {
        I::i8_corr(a)
    }
    #[inline(always)]
    unsafe fn dot<I: Isa>(corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        I::i8_dot(corr, w, a)
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        let d = f16_splat(self.d);
        (d, d)
    }
}

/// `[f32(d) ×8]` and `[f32(m) ×8]` from one conversion.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn d_and_m(d: f16, m: f16) -> (__m256, __m256) {
    let p = f16_pair(d, m);
    (even_lanes(p), odd_lanes(p))
}

impl Legacy for BlockQ4_1 {
    type Act = BlockQ8_1;
    const MIN: bool = true;
    #[inline(always)]
    unsafe fn weights<I: Isa>(&self) -> __m256i {
        nibbles(&self.qs)
    }
    #[inline(always)]
    unsafe fn corr<I: Isa>(_a: __m256i) -> __m256i {
        _mm256_setzero_si256()
    }
    #[inline(always)]
    unsafe fn dot<I: Isa>(_corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        I::dot_u8_i8(_mm256_setzero_si256(), w, a)
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        d_and_m(self.d, self.m)
    }
}

impl Legacy for BlockQ5_1 {
    type Act = BlockQ8_1;
    const MIN: bool = true;
    #[inline(always)]
    unsafe fn weights<I: Isa>(&self) -> __m256i {
        five_bits::<I>(&self.qs, self.qh)
    }
    #[inline(always)]
    unsafe fn corr<I: Isa>(_a: __m256i) -> __m256i {
        _mm256_setzero_si256()
    }
    #[inline(always)]
    unsafe fn dot<I: Isa>(_corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        I::dot_u8_i8(_mm256_setzero_si256(), w, a)
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        d_and_m(self.d, self.m)
    }
}

/// One weight row's blocks: `nb` blocks of `W`, `step` blocks apart in `blocks` from index
/// `first` (step 1: GGUF's row after row; step 4: rows interleaved block by block in groups of
/// four, [`crate::matmul::Layout::Blocks4`]).
#[derive(Clone, Copy)]
pub(super) struct RowRef<'a, W> {
    blocks: &'a [W],
    first: usize,
    step: usize,
    nb: usize,
}

impl<'a, W> RowRef<'a, W> {
    /// A row stored contiguously.
    #[inline(always)]
    pub(super) fn plain(row: &'a [W]) -> Self {
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
    pub(super) fn grouped(group: &'a [W], r: usize, g: usize, nb: usize) -> Self {
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
pub(super) unsafe fn f16_lanes<const C: usize>(f: impl Fn(usize) -> f16) -> __m256 {
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
pub(super) unsafe fn tile<I: Isa, W: Legacy, const R: usize, const C: usize>(
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
            av[c] = load_256_i8(blk.qs());
            corr[c] = W::corr::<I>(av[c]);
            yd[c] = f16_splat(blk.d());
        }
        let ys = if W::MIN {
            f16_lanes::<C>(|c| a[c][b].s())
        } else {
            _mm256_setzero_ps()
        };
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
            let wv = blk.weights::<I>();
            let (xd, xm) = blk.scales();
            for c in 0..C {
                let q = W::dot::<I>(corr[c], wv, av[c]);
                let d = _mm256_mul_ps(xd, yd[c]);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q), acc[r][c]);
            }
            if W::MIN {
                summs[r] = _mm256_fmadd_ps(xm, ys, summs[r]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        let mut s = [0f32; 8];
        store_f32x8(&mut s, summs[r]);
        for c in 0..C {
            out[r][c] = hsum_f32x8(acc[r][c]);
            if W::MIN {
                out[r][c] += s[c];
            }
        }
    }
    out
}

/// [`tile`] on 512-bit vectors, for the AVX-512 VNNI level: tokens in pairs, token `2p` in the low
/// half of a vector and token `2p + 1` in the high half, so each product instruction serves two
/// tokens (the weights broadcast to both halves). Every lane computes what the same lane of
/// [`tile`]'s vector does (at VNNI every format's [`Legacy::dot`] is one `vpdpbusd` from its
/// `corr`, and the tests hold the two tiles to the same bits), and each half is reduced as
/// [`tile`] reduces its vector. `C` must be even; no prefetching (batches only).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI besides AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile_zmm<W: Legacy, const R: usize, const C: usize>(
    w: [RowRef<'_, W>; R],
    a: [&[W::Act]; C],
) -> [[f32; C]; R] {
    const { assert!(C <= 8 && C.is_multiple_of(2)) };
    use super::isa::Vnni;
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
            let (a0, a1) = (load_256_i8(b0.qs()), load_256_i8(b1.qs()));
            av[p] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a0), a1);
            corr[p] = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(W::corr::<Vnni>(a0)),
                W::corr::<Vnni>(a1),
            );
            yd[p] = both(f16_splat(b0.d()), f16_splat(b1.d()));
        }
        let ys = if W::MIN {
            f16_lanes::<C>(|c| a[c][b].s())
        } else {
            _mm256_setzero_ps()
        };
        for r in 0..R {
            // SAFETY: `b < nb`, the fewest blocks of any row.
            let blk = unsafe { w[r].blk(b) };
            let wv = _mm512_broadcast_i64x4(blk.weights::<Vnni>());
            let (xd, xm) = blk.scales();
            let xd = both(xd, xd);
            for p in 0..C / 2 {
                let q = _mm512_dpbusd_epi32(corr[p], wv, av[p]);
                let d = _mm512_mul_ps(xd, yd[p]);
                acc[r][p] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(q), acc[r][p]);
            }
            if W::MIN {
                summs[r] = _mm256_fmadd_ps(xm, ys, summs[r]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        let mut s = [0f32; 8];
        store_f32x8(&mut s, summs[r]);
        for p in 0..C / 2 {
            let v = _mm512_castps_pd(acc[r][p]);
            let halves = [
                _mm256_castpd_ps(_mm512_castpd512_pd256(v)),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(v)),
            ];
            for (h, half) in halves.into_iter().enumerate() {
                let c = 2 * p + h;
                out[r][c] = hsum_f32x8(half);
                if W::MIN {
                    out[r][c] += s[c];
                }
            }
        }
    }
    out
}
