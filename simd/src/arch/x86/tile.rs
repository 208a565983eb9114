//! How an x86 kernel covers a [`Tile`]: the register-tile driver, the checks that make typed
//! views of a tile's rows, and the element-by-element paths.
//!
//! A tile kernel computes an `R × C` block of outputs (`R` weight rows times `C` tokens) in one
//! pass over the blocks of a row, every element with exactly the arithmetic of its `VecDot`. The
//! driver walks an `nr × nc` block with such tiles. Where rows or tokens run out, a tile is filled
//! up with copies of the last row or token and only the real elements are stored, so one kernel
//! shape serves every size (the elements are independent, so this changes no bits).

use crate::traits::{Tile, VecDot};
use bytemuck::Pod;

/// Rows (or tokens) `i..i + N`, clamped to the last one, `n`.
#[inline(always)]
fn indices<const N: usize>(i: usize, n: usize) -> [usize; N] {
    std::array::from_fn(|k| (i + k).min(n - 1))
}

/// Runs `pp` (`R` rows × `C` tokens) and `one` (`RD` rows × 1 token) over `nr` rows × `nc`
/// tokens, storing element `(r, c)` at `out[c * out_stride + r]`: batches in `pp` tiles, with
/// `one` for the tokens left over (or all of them when there is one); each kernel gets the row
/// and token indices of its tile.
///
/// # Safety
/// `out` must be valid for writes at `c * out_stride + r` for all `r < nr`, `c < nc`.
#[inline(always)]
pub(super) unsafe fn drive<const R: usize, const C: usize, const RD: usize>(
    nr: usize,
    nc: usize,
    out: *mut f32,
    out_stride: usize,
    mut pp: impl FnMut([usize; R], [usize; C]) -> [[f32; C]; R],
    mut one: impl FnMut([usize; RD], usize) -> [f32; RD],
) {
    if nr == 0 || nc == 0 {
        return;
    }
    let store = |r: usize, c: usize, v: f32| {
        if r < nr && c < nc {
            // SAFETY: `r < nr` and `c < nc`, for which the caller guarantees `out` is writable.
            unsafe { *out.add(c * out_stride + r) = v };
        }
    };
    let mut c0 = 0;
    // Whole tiles, and a last partial one if it is at least three quarters full (else token by
    // token: a padded tile computes all `C` tokens, and at 4 of 8 tokens that cost more than the
    // one-token kernel over rows already in cache).
    while C > 1 && (nc - c0 >= C || 4 * (nc - c0) >= 3 * C && nc - c0 > 1) {
        let toks = indices::<C>(c0, nc);
        let mut r0 = 0;
        while r0 < nr {
            let v = pp(indices::<R>(r0, nr), toks);
            for (i, row) in v.iter().enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    store(r0 + i, c0 + j, x);
                }
            }
            r0 += R;
        }
        c0 += C;
        if c0 >= nc {
            return;
        }
    }
    // The tokens left, one at a time, each `RD` rows passing over all of them while in cache (a
    // few tokens of a batch, as when a server decodes several sequences, read the weights once).
    let mut r0 = 0;
    while r0 < nr {
        let rows = indices::<RD>(r0, nr);
        for c in c0..nc {
            let v = one(rows, c);
            for (i, &x) in v.iter().enumerate() {
                store(r0 + i, c, x);
            }
        }
        r0 += RD;
    }
}

/// `count` blocks of `T` at byte `offset` of `bytes`, or `None` if they are out of bounds or
/// misaligned.
#[inline(always)]
pub(super) fn blocks_at<T: Pod>(bytes: &[u8], offset: usize, count: usize) -> Option<&[T]> {
    let b = bytes.get(offset..offset + count * size_of::<T>())?;
    bytemuck::try_cast_slice(b).ok()
}

/// Whether every row `r < n` of `stride` bytes at `bytes` holds `count` aligned blocks of `T`.
pub(super) fn all_rows_typed<T: Pod>(bytes: &[u8], stride: usize, n: usize, count: usize) -> bool {
    n == 0
        || ((bytes.as_ptr() as usize).is_multiple_of(align_of::<T>())
            && (n == 1 || stride.is_multiple_of(align_of::<T>()))
            && blocks_at::<T>(bytes, (n - 1) * stride, count).is_some())
}

/// Whether every weight row of a tile holds `nb` aligned blocks of `W` and every activation row
/// `nb` aligned blocks of `A` (GGUF's row layout).
pub(super) fn typed<W: Pod, A: Pod>(t: &Tile<'_>, nb: usize) -> bool {
    all_rows_typed::<W>(t.w, t.w_stride, t.rows, nb)
        && all_rows_typed::<A>(t.a, t.a_stride, t.tokens, nb)
}

/// Row `r` of a matrix already checked with [`all_rows_typed`].
#[inline(always)]
pub(super) fn row<T: Pod>(bytes: &[u8], stride: usize, r: usize, count: usize) -> &[T] {
    bytemuck::cast_slice(&bytes[r * stride..r * stride + count * size_of::<T>()])
}

/// Every element of a tile with a `VecDot` (the path for misaligned rows).
///
/// # Safety
/// `t.out` as for [`crate::traits::DotTile`].
pub(super) unsafe fn elementwise(dot: VecDot, t: &Tile<'_>) {
    for c in 0..t.tokens {
        for r in 0..t.rows {
            let v = dot(t.n, &t.w[r * t.w_stride..], &t.a[c * t.a_stride..]);
            // SAFETY: `r < rows`, `c < tokens`: writable by the caller's `DotTile` contract.
            unsafe { *t.out.add(c * t.out_stride + r) = v };
        }
    }
}

/// A tile of a kernel that computes one row by one token (`f` of the rows' `W` and `A` blocks,
/// `qb` elements per block); `false` (nothing written) if the rows are misaligned.
///
/// # Safety
/// `t.out` as for [`crate::traits::DotTile`]; `f` may need the caller's target features.
#[inline(always)]
pub(super) unsafe fn by_element<W: Pod, A: Pod>(
    t: &Tile<'_>,
    qb: usize,
    f: impl Fn(&[W], &[A]) -> f32,
) -> bool {
    let nb = t.n / qb;
    if !typed::<W, A>(t, nb) {
        return false;
    }
    for c in 0..t.tokens {
        let a = row::<A>(t.a, t.a_stride, c, nb);
        for r in 0..t.rows {
            let v = f(row::<W>(t.w, t.w_stride, r, nb), a);
            // SAFETY: `r < rows`, `c < tokens`: writable by the caller's `DotTile` contract.
            unsafe { *t.out.add(c * t.out_stride + r) = v };
        }
    }
    true
}

/// Declares the kernel `$name` ([`crate::traits::Order::Vec`] of `$ty`) that computes each element
/// of a tile, one row by one token, with the AVX2 function `$dot` over the rows' `$w` and `$a`
/// blocks of `$qb` elements (the formats whose order leaves nothing to share between elements).
macro_rules! by_element_kernel {
    ($name:ident: $ty:ident, $w:ty, $a:ty, $qb:expr, $dot:ident) => {
        pub(super) struct $name;

        impl super::kernel::Kernel for $name {
            const TYPE: $crate::GgmlType = $crate::GgmlType::$ty;
            const ORDER: $crate::traits::Order = $crate::traits::Order::Vec;

            #[inline(always)]
            unsafe fn tile<I: super::simd::Isa>(t: &$crate::traits::Tile<'_>) -> bool {
                // SAFETY: `I` implies the AVX2, FMA and F16C that `$dot` is compiled for; `t.out`
                // is the caller's contract.
                unsafe { super::tile::by_element::<$w, $a>(t, $qb, |x, y| $dot(x, y)) }
            }
        }
    };
}
pub(super) use by_element_kernel;
