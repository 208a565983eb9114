//! x86-64 kernels for two levels, AVX2 (+ FMA + F16C) and AVX-512 VNNI, that return exactly the
//! scalar reference's bits (`crate::dot::scalar`, `crate::reference`): every dot product mirrors
//! its reference's float operations (which lanes, which FMAs, which reduction tree) and computes
//! the integer parts exactly, so only the speed differs between levels.
//!
//! The dot products are written once, generic over an [`isa::Isa`] (the few integer primitives
//! where the levels differ), and instantiated per level inside `#[target_feature]` entry points
//! ([`Entry`]). The table's functions are private wrappers that check lengths and alignment (the
//! scalar reference takes misaligned input) and call an entry; they are installed only by
//! [`install_avx2`] and [`install_avx512vnni`], which assert the CPU features first: that is what
//! makes the calls sound.
//!
//! Besides `vec_dot` and its variants (`vec_dot_tiled`, `vec_dot_repacked`,
//! `vec_dot_repacked_gemm`), each level installs tile kernels ([`crate::traits::DotTile`]) for the
//! formats that matter for speed: several rows × several tokens per pass, each element computed
//! exactly as its `VecDot`.

mod dequant;
mod drive;
mod float;
mod isa;
mod kquants;
mod legacy;
mod quant;
mod repacked;
mod util;

use crate::blocks::*;
use crate::dot::scalar;
use crate::reference as r;
use crate::traits::{DotKind, DotTile, FromFloat, Level, ToFloat, TypeTraits, VecDot};
use crate::GgmlType;
use bytemuck::{try_cast_slice, try_cast_slice_mut, Pod};
use drive::{all_rows_typed, blocks_at, drive, row};
use half::{bf16, f16};
use isa::{Avx2, Isa, Vnni};
use kquants::{GEMM, PLAIN, REPACKED, TILED, TILE_TOKENS};
use legacy::{Legacy, RowRef};

/// Views `bytes[..count * size_of::<T>()]` as `&[T]`, or `None` if misaligned.
/// Panics (like the scalar kernels) if `bytes` is shorter than that.
#[inline]
fn typed<T: Pod>(bytes: &[u8], count: usize) -> Option<&[T]> {
    try_cast_slice(&bytes[..count * size_of::<T>()]).ok()
}

/// The scalar reference of a 32-element format's dot product (for misaligned input).
trait Scalar: Legacy {
    const SCALAR: VecDot;
}

impl Scalar for BlockQ4_0 {
    const SCALAR: VecDot = scalar::vec_dot_q4_0_q8_0;
}
impl Scalar for BlockQ4_1 {
    const SCALAR: VecDot = scalar::vec_dot_q4_1_q8_1;
}
impl Scalar for BlockQ5_0 {
    const SCALAR: VecDot = scalar::vec_dot_q5_0_q8_0;
}
impl Scalar for BlockQ5_1 {
    const SCALAR: VecDot = scalar::vec_dot_q5_1_q8_1;
}
impl Scalar for BlockQ8_0 {
    const SCALAR: VecDot = scalar::vec_dot_q8_0_q8_0;
}

/// The scalar reference of a Q4_K order.
fn q4k_scalar(kind: u8) -> VecDot {
    match kind {
        PLAIN => scalar::vec_dot_q4_k_q8_k,
        TILED => scalar::vec_dot_q4_k_q8_k_tiled,
        REPACKED => scalar::vec_dot_q4_k_q8_k_repacked,
        _ => scalar::vec_dot_q4_k_q8_k_repacked_gemm,
    }
}

/// The scalar reference of a Q6_K order.
fn q6k_scalar(kind: u8) -> VecDot {
    match kind {
        PLAIN => scalar::vec_dot_q6_k_q8_k,
        _ => scalar::vec_dot_q6_k_q8_k_tiled,
    }
}

/// Every element of a matrix block with a `VecDot` (the path for misaligned input).
///
/// # Safety
/// `out` as for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn elementwise(
    dot: VecDot,
    n: usize,
    w: &[u8],
    w_stride: usize,
    nr: usize,
    a: &[u8],
    a_stride: usize,
    nc: usize,
    out: *mut f32,
    out_stride: usize,
) {
    for c in 0..nc {
        for r in 0..nr {
            let v = dot(n, &w[r * w_stride..], &a[c * a_stride..]);
            // SAFETY: `r < nr`, `c < nc`: writable by the caller's `DotTile` contract.
            unsafe { *out.add(c * out_stride + r) = v };
        }
    }
}

/// The `#[target_feature]` entry points of one level: the generic kernels instantiated for its
/// [`Isa`], with its tile shapes.
///
/// # Safety
/// Only callable on a CPU with the level's features; the tile runs also need `out` as for
/// [`DotTile`].
trait Entry {
    unsafe fn legacy_dot<W: Legacy>(x: &[W], y: &[W::Act]) -> f32;
    #[allow(clippy::too_many_arguments)]
    unsafe fn legacy_run<W: Legacy>(
        n: usize,
        w: &[u8],
        ws: usize,
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
    unsafe fn rep_dot(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32;
    #[allow(clippy::too_many_arguments)]
    unsafe fn rep_run(
        n: usize,
        w: &[u8],
        ws: usize,
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
    /// [`legacy_brun`]: rows interleaved block by block in groups of four.
    #[allow(clippy::too_many_arguments)]
    unsafe fn legacy_brun<W: Legacy>(
        n: usize,
        w: &[u8],
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
    /// [`repacked::irun`]: interleaved Q4_0 weights.
    #[allow(clippy::too_many_arguments)]
    unsafe fn irep_run(
        n: usize,
        w: &[u8],
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
    unsafe fn q4k_dot<const KIND: u8>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32;
    #[allow(clippy::too_many_arguments)]
    unsafe fn q4k_run<const KIND: u8>(
        n: usize,
        w: &[u8],
        ws: usize,
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
    unsafe fn q6k_dot<const KIND: u8>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32;
    #[allow(clippy::too_many_arguments)]
    unsafe fn q6k_run<const KIND: u8>(
        n: usize,
        w: &[u8],
        ws: usize,
        nr: usize,
        a: &[u8],
        as_: usize,
        nc: usize,
        out: *mut f32,
        os: usize,
    ) -> bool;
}

/// A tile run of the 32-element formats with `R × C` batch tiles and `RD`-row decode tiles;
/// `false` if the rows are misaligned.
///
/// # Safety
/// AVX2, FMA, F16C and `I`'s features; `out` as for [`DotTile`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn legacy_run<I: Isa, W: Legacy, const R: usize, const C: usize, const RD: usize>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) -> bool {
    let nb = n / QK;
    if !all_rows_typed::<W>(w, ws, nr, nb) || !all_rows_typed::<W::Act>(a, as_, nc, nb) {
        return false;
    }
    let wr = |r: usize| RowRef::plain(row::<W>(w, ws, r, nb));
    let ar = |c: usize| row::<W::Act>(a, as_, c, nb);
    // Where row `r` starts (past the matrix for the last tiles: only ever prefetched).
    let ahead = |r: usize| w.as_ptr().wrapping_add(r * ws);
    // SAFETY: the caller's contract.
    unsafe { legacy_drive::<I, W, R, C, RD>(nr, nc, out, os, wr, ar, ahead) };
    true
}

/// [`legacy_run`] over rows interleaved block by block in groups of four
/// ([`crate::matmul::Layout::Blocks4`]): `nr` a multiple of 4, `w` the groups of those rows.
/// `false` (nothing written) if the shapes or alignments do not fit.
///
/// # Safety
/// As for [`legacy_run`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn legacy_brun<I: Isa, W: Legacy, const R: usize, const C: usize, const RD: usize>(
    n: usize,
    w: &[u8],
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) -> bool {
    const G: usize = crate::interleave::BLOCK_ROWS;
    let nb = n / QK;
    let Some(all) = blocks_at::<W>(w, 0, nr * nb) else {
        return false;
    };
    if !nr.is_multiple_of(G) || !all_rows_typed::<W::Act>(a, as_, nc, nb) {
        return false;
    }
    let wr = |r: usize| RowRef::grouped(&all[r / G * G * nb..(r / G + 1) * G * nb], r % G, G, nb);
    let ar = |c: usize| row::<W::Act>(a, as_, c, nb);
    // Where row `r`'s first block lies (past the matrix for the last tiles: only ever
    // prefetched).
    let ahead = |r: usize| {
        all.as_ptr()
            .cast::<u8>()
            .wrapping_add((r / G * G * nb + r % G) * size_of::<W>())
    };
    // SAFETY: the caller's contract.
    unsafe { legacy_drive::<I, W, R, C, RD>(nr, nc, out, os, wr, ar, ahead) };
    true
}

/// The tiles of [`legacy_run`] over rows `wr(r)`, tokens `ar(c)`, prefetching from `ahead(r)`.
///
/// # Safety
/// As for [`legacy_run`]; every row has the blocks of every token.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn legacy_drive<
    'a,
    I: Isa,
    W: Legacy + 'a,
    const R: usize,
    const C: usize,
    const RD: usize,
>(
    nr: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
    wr: impl Fn(usize) -> RowRef<'a, W>,
    ar: impl Fn(usize) -> &'a [W::Act],
    ahead: impl Fn(usize) -> *const u8,
) {
    // SAFETY: the caller's contract.
    unsafe {
        drive::<R, C, RD>(
            nr,
            nc,
            out,
            os,
            |rows, toks| {
                let (w, a) = (
                    std::array::from_fn(|i| wr(rows[i])),
                    std::array::from_fn(|j| ar(toks[j])),
                );
                if I::ZMM && C.is_multiple_of(2) {
                    // (Sound: `ZMM` is only true for the AVX-512 VNNI level, whose entry points
                    // carry, and whose table is only installed after checking, these features.)
                    legacy::tile_zmm::<W, R, C>(w, a)
                } else {
                    legacy::tile::<I, W, R, C>(w, a, std::array::from_fn(|i| ahead(rows[i] + R)))
                }
            },
            |rows, c| {
                let v = legacy::tile::<I, W, RD, 1>(
                    std::array::from_fn(|i| wr(rows[i])),
                    [ar(c)],
                    std::array::from_fn(|i| ahead(rows[i] + 2 * RD)),
                );
                std::array::from_fn(|i| v[i][0])
            },
        )
    };
}

/// A tile run of Q4_K or Q6_K: one row × [`TILE_TOKENS`] tokens per tile, `tile(row, tokens)`.
///
/// # Safety
/// AVX2, FMA, F16C; `out` as for [`DotTile`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn kquant_run<W: Pod>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
    tile: impl Fn(&[W], [&[BlockQ8K]; TILE_TOKENS]) -> [f32; TILE_TOKENS],
    one: impl Fn(&[W], &[BlockQ8K]) -> f32,
) -> bool {
    let nb = n / QK_K;
    if !all_rows_typed::<W>(w, ws, nr, nb) || !all_rows_typed::<BlockQ8K>(a, as_, nc, nb) {
        return false;
    }
    let wr = |r: usize| row::<W>(w, ws, r, nb);
    let ar = |c: usize| row::<BlockQ8K>(a, as_, c, nb);
    // SAFETY: the caller's contract.
    unsafe {
        drive::<1, TILE_TOKENS, 1>(
            nr,
            nc,
            out,
            os,
            |rows, toks| [tile(wr(rows[0]), std::array::from_fn(|j| ar(toks[j])))],
            |rows, c| [one(wr(rows[0]), ar(c))],
        )
    };
    true
}

macro_rules! entries {
    ($isa:ident, $feat:literal, $r:literal, $c:literal, $rd:literal) => {
        impl Entry for $isa {
            #[target_feature(enable = $feat)]
            unsafe fn legacy_dot<W: Legacy>(x: &[W], y: &[W::Act]) -> f32 {
                // SAFETY: this function's features.
                unsafe {
                    legacy::tile::<$isa, W, 1, 1>([RowRef::plain(x)], [y], [std::ptr::null()])[0][0]
                }
            }
            #[target_feature(enable = $feat)]
            unsafe fn legacy_run<W: Legacy>(
                n: usize,
                w: &[u8],
                ws: usize,
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe { legacy_run::<$isa, W, $r, $c, $rd>(n, w, ws, nr, a, as_, nc, out, os) }
            }
            #[target_feature(enable = $feat)]
            unsafe fn rep_dot(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
                // SAFETY: this function's features.
                unsafe { repacked::dot::<$isa>(x, y) }
            }
            #[target_feature(enable = $feat)]
            unsafe fn rep_run(
                n: usize,
                w: &[u8],
                ws: usize,
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe { repacked::run::<$isa>(n, w, ws, nr, a, as_, nc, out, os) }
            }
            #[target_feature(enable = $feat)]
            unsafe fn legacy_brun<W: Legacy>(
                n: usize,
                w: &[u8],
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe { legacy_brun::<$isa, W, $r, $c, $rd>(n, w, nr, a, as_, nc, out, os) }
            }
            #[target_feature(enable = $feat)]
            unsafe fn irep_run(
                n: usize,
                w: &[u8],
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe { repacked::irun::<$isa>(n, w, nr, a, as_, nc, out, os) }
            }
            #[target_feature(enable = $feat)]
            unsafe fn q4k_dot<const KIND: u8>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
                // SAFETY: this function's features.
                unsafe { kquants::q4k_tile::<KIND, 1>(x, [y])[0] }
            }
            #[target_feature(enable = $feat)]
            unsafe fn q4k_run<const KIND: u8>(
                n: usize,
                w: &[u8],
                ws: usize,
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe {
                    kquant_run::<BlockQ4K>(
                        n,
                        w,
                        ws,
                        nr,
                        a,
                        as_,
                        nc,
                        out,
                        os,
                        |w, a| kquants::q4k_tile::<KIND, TILE_TOKENS>(w, a),
                        |w, a| kquants::q4k_tile::<KIND, 1>(w, [a])[0],
                    )
                }
            }
            #[target_feature(enable = $feat)]
            unsafe fn q6k_dot<const KIND: u8>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
                // SAFETY: this function's features.
                unsafe { kquants::q6k_tile::<KIND, 1>(x, [y])[0] }
            }
            #[target_feature(enable = $feat)]
            unsafe fn q6k_run<const KIND: u8>(
                n: usize,
                w: &[u8],
                ws: usize,
                nr: usize,
                a: &[u8],
                as_: usize,
                nc: usize,
                out: *mut f32,
                os: usize,
            ) -> bool {
                // SAFETY: this function's features; `out` is the caller's contract.
                unsafe {
                    kquant_run::<BlockQ6K>(
                        n,
                        w,
                        ws,
                        nr,
                        a,
                        as_,
                        nc,
                        out,
                        os,
                        |w, a| kquants::q6k_tile::<KIND, TILE_TOKENS>(w, a),
                        |w, a| kquants::q6k_tile::<KIND, 1>(w, [a])[0],
                    )
                }
            }
        }
    };
}

// Tile shapes (batch rows × tokens, decode rows), measured on Zen 4 with 2 threads: AVX-512's 32
// registers hold a 4 × 8 batch tile on 512-bit vectors (pp512 of gemma-3 +13% and of a Q4_1
// model +30% over 3 × 4; 5 rows spill); AVX2's 16 registers, 2 × 2.
entries!(Avx2, "avx2,fma,f16c", 2, 2, 4);
entries!(
    Vnni,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    4,
    8,
    4
);

// ---------------------------------------------------------------------------------------------
// The table's functions. Each is private and installed only after the feature check of its level
// (`L`), which is what the `SAFETY` comments below rely on.
// ---------------------------------------------------------------------------------------------

fn vd_legacy<L: Entry, W: Scalar>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    match (typed::<W>(x, nb), typed::<W::Act>(y, nb)) {
        // SAFETY: installed only by `install_avx2` / `install_avx512vnni` for their own level
        // `L`, after asserting that the CPU has its features.
        (Some(x), Some(y)) => unsafe { L::legacy_dot(x, y) },
        _ => W::SCALAR(n, x, y),
    }
}

/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_legacy<L: Entry, W: Scalar>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: installed only for a supported level `L` (see `vd_legacy`); `out` is the
    // caller's `DotTile` contract.
    unsafe {
        if !L::legacy_run::<W>(n, w, ws, nr, a, as_, nc, out, os) {
            elementwise(W::SCALAR, n, w, ws, nr, a, as_, nc, out, os);
        }
    }
}

fn vd_rep<L: Entry>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    match (typed::<BlockQ4_0>(x, nb), typed::<BlockQ8_0>(y, nb)) {
        // SAFETY: as in `vd_legacy`.
        (Some(x), Some(y)) => unsafe { L::rep_dot(x, y) },
        _ => scalar::vec_dot_q4_0_q8_0_repacked(n, x, y),
    }
}

/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_rep<L: Entry>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: as in `dt_legacy`.
    unsafe {
        if !L::rep_run(n, w, ws, nr, a, as_, nc, out, os) {
            elementwise(vd_rep::<L>, n, w, ws, nr, a, as_, nc, out, os);
        }
    }
}

/// The plain order over rows interleaved block by block in fours (`Layout::Blocks4`): `nr` a
/// multiple of 4, `w` the groups of those rows.
///
/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_legacy_b4<L: Entry, W: Legacy>(
    n: usize,
    w: &[u8],
    _ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: as in `dt_legacy`.
    let done = unsafe { L::legacy_brun::<W>(n, w, nr, a, as_, nc, out, os) };
    assert!(
        done,
        "block-interleaved product of {nr} rows x {n} columns: not a whole number of groups \
         or a misaligned buffer"
    );
}

/// The repacked order over interleaved weights (`Layout::Interleaved8`): `nr` a multiple of 8,
/// `w` the groups of those rows.
///
/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_irep<L: Entry>(
    n: usize,
    w: &[u8],
    _ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: as in `dt_legacy`.
    let done = unsafe { L::irep_run(n, w, nr, a, as_, nc, out, os) };
    assert!(
        done,
        "interleaved Q4_0 product of {nr} rows x {n} columns: not a whole number of groups \
         or a misaligned activation buffer"
    );
}

fn vd_q4k<L: Entry, const KIND: u8>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    match (typed::<BlockQ4K>(x, nb), typed::<BlockQ8K>(y, nb)) {
        // SAFETY: as in `vd_legacy`.
        (Some(x), Some(y)) => unsafe { L::q4k_dot::<KIND>(x, y) },
        _ => q4k_scalar(KIND)(n, x, y),
    }
}

/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_q4k<L: Entry, const KIND: u8>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: as in `dt_legacy`.
    unsafe {
        if !L::q4k_run::<KIND>(n, w, ws, nr, a, as_, nc, out, os) {
            elementwise(q4k_scalar(KIND), n, w, ws, nr, a, as_, nc, out, os);
        }
    }
}

fn vd_q6k<L: Entry, const KIND: u8>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    match (typed::<BlockQ6K>(x, nb), typed::<BlockQ8K>(y, nb)) {
        // SAFETY: as in `vd_legacy`.
        (Some(x), Some(y)) => unsafe { L::q6k_dot::<KIND>(x, y) },
        _ => q6k_scalar(KIND)(n, x, y),
    }
}

/// # Safety
/// As for [`DotTile`].
#[allow(clippy::too_many_arguments)]
unsafe fn dt_q6k<L: Entry, const KIND: u8>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    a: &[u8],
    as_: usize,
    nc: usize,
    out: *mut f32,
    os: usize,
) {
    // SAFETY: as in `dt_legacy`.
    unsafe {
        if !L::q6k_run::<KIND>(n, w, ws, nr, a, as_, nc, out, os) {
            elementwise(q6k_scalar(KIND), n, w, ws, nr, a, as_, nc, out, os);
        }
    }
}

/// Declares a safe `VecDot` wrapper around an AVX2 kernel `$imp(&[$x], &[$y]) -> f32` taking
/// `n / $per` elements of each type, falling back to `$fallback` for misaligned rows.
macro_rules! vec_dot {
    ($name:ident, $imp:path, $x:ty, $y:ty, $per:expr, $fallback:path) => {
        fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let count = n / $per;
            match (typed::<$x>(x, count), typed::<$y>(y, count)) {
                // SAFETY: this private wrapper is only reachable through a table built by
                // `install_avx2` or `install_avx512vnni`, which first assert that the CPU has
                // AVX2, FMA and F16C, the features the kernel is compiled for.
                (Some(x), Some(y)) => unsafe { $imp(x, y) },
                _ => $fallback(n, x, y),
            }
        }
    };
}

/// Declares a safe `ToFloat` wrapper around `$imp(&[$x], &mut [f32])`.
macro_rules! to_float {
    ($name:ident, $imp:path, $x:ty, $fallback:path) => {
        fn $name(x: &[u8], y: &mut [f32]) {
            match try_cast_slice::<u8, $x>(x) {
                // SAFETY: as in `vec_dot!`: only installed after the feature check.
                Ok(blocks) => unsafe { $imp(blocks, y) },
                Err(_) => $fallback(x, y),
            }
        }
    };
}

/// Declares a safe `FromFloat` wrapper around `$imp(&[f32], &mut [$y])` for `x.len() / $per`
/// outputs.
macro_rules! from_float {
    ($name:ident, $imp:path, $y:ty, $per:expr, $fallback:path) => {
        fn $name(x: &[f32], y: &mut [u8]) {
            let count = x.len() / $per;
            match try_cast_slice_mut::<u8, $y>(&mut y[..count * size_of::<$y>()]) {
                // SAFETY: as in `vec_dot!`: only installed after the feature check.
                Ok(out) => unsafe { $imp(x, out) },
                Err(_) => $fallback(x, y),
            }
        }
    };
}

vec_dot!(dot_f32, float::dot_f32, f32, f32, 1, scalar::vec_dot_f32);
vec_dot!(dot_f16, float::dot_f16, f16, f16, 1, scalar::vec_dot_f16);
vec_dot!(
    dot_bf16,
    float::dot_bf16,
    bf16,
    bf16,
    1,
    scalar::vec_dot_bf16
);
vec_dot!(
    dot_q2_k,
    kquants::dot_q2_k_q8_k,
    BlockQ2K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q2_k_q8_k
);
vec_dot!(
    dot_q3_k,
    kquants::dot_q3_k_q8_k,
    BlockQ3K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q3_k_q8_k
);
vec_dot!(
    dot_q5_k,
    kquants::dot_q5_k_q8_k,
    BlockQ5K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q5_k_q8_k
);

to_float!(deq_f16, float::f16_to_f32_row, f16, r::dequantize_row_f16);
to_float!(
    deq_bf16,
    float::bf16_to_f32_row,
    bf16,
    r::dequantize_row_bf16
);
to_float!(
    deq_q4_0,
    dequant::dequant_q4_0,
    BlockQ4_0,
    r::dequantize_row_q4_0
);
to_float!(
    deq_q4_1,
    dequant::dequant_q4_1,
    BlockQ4_1,
    r::dequantize_row_q4_1
);
to_float!(
    deq_q5_0,
    dequant::dequant_q5_0,
    BlockQ5_0,
    r::dequantize_row_q5_0
);
to_float!(
    deq_q5_1,
    dequant::dequant_q5_1,
    BlockQ5_1,
    r::dequantize_row_q5_1
);
to_float!(
    deq_q8_0,
    dequant::dequant_q8_0,
    BlockQ8_0,
    r::dequantize_row_q8_0
);
to_float!(
    deq_q2_k,
    dequant::dequant_q2_k,
    BlockQ2K,
    r::dequantize_row_q2_k
);
to_float!(
    deq_q3_k,
    dequant::dequant_q3_k,
    BlockQ3K,
    r::dequantize_row_q3_k
);
to_float!(
    deq_q4_k,
    dequant::dequant_q4_k,
    BlockQ4K,
    r::dequantize_row_q4_k
);
to_float!(
    deq_q5_k,
    dequant::dequant_q5_k,
    BlockQ5K,
    r::dequantize_row_q5_k
);
to_float!(
    deq_q6_k,
    dequant::dequant_q6_k,
    BlockQ6K,
    r::dequantize_row_q6_k
);

from_float!(
    quant_q8_0,
    quant::quantize_q8_0,
    BlockQ8_0,
    QK,
    r::quantize_row_q8_0
);
from_float!(
    quant_q8_1,
    quant::quantize_q8_1,
    BlockQ8_1,
    QK,
    r::quantize_row_q8_1
);
from_float!(
    quant_q8_k,
    quant::quantize_q8_k,
    BlockQ8K,
    QK_K,
    r::quantize_row_q8_k
);
from_float!(quant_f16, quant::quantize_f16, f16, 1, r::quantize_row_f16);
from_float!(
    quant_bf16,
    quant::quantize_bf16,
    bf16,
    1,
    r::quantize_row_bf16
);

/// Every function of level `L`: all the variants (`vec_dot`, tiled, repacked, repacked gemm) the
/// scalar table has, and tiles where they pay. `L`'s features must have been checked.
fn install<L: Entry>(table: &mut [TypeTraits]) {
    use GgmlType::*;
    let tiles = |plain: Option<DotTile>, tiled, repacked, gemm| {
        let mut t = [None; 4];
        t[DotKind::Plain as usize] = plain;
        t[DotKind::Tiled as usize] = tiled;
        t[DotKind::Repacked as usize] = repacked;
        t[DotKind::RepackedGemm as usize] = gemm;
        t
    };
    for t in table.iter_mut() {
        let to_float: Option<ToFloat> = match t.ty {
            F16 => Some(deq_f16),
            BF16 => Some(deq_bf16),
            Q4_0 => Some(deq_q4_0),
            Q4_1 => Some(deq_q4_1),
            Q5_0 => Some(deq_q5_0),
            Q5_1 => Some(deq_q5_1),
            Q8_0 => Some(deq_q8_0),
            Q2_K => Some(deq_q2_k),
            Q3_K => Some(deq_q3_k),
            Q4_K => Some(deq_q4_k),
            Q5_K => Some(deq_q5_k),
            Q6_K => Some(deq_q6_k),
            _ => None,
        };
        if let Some(f) = to_float {
            t.to_float = Some(f);
        }
        let from_float: Option<FromFloat> = match t.ty {
            Q8_0 => Some(quant_q8_0),
            Q8_1 => Some(quant_q8_1),
            Q8_K => Some(quant_q8_k),
            F16 => Some(quant_f16),
            BF16 => Some(quant_bf16),
            _ => None,
        };
        if let Some(f) = from_float {
            t.from_float = Some(f);
        }
        match t.ty {
            F32 => t.vec_dot = Some(dot_f32),
            F16 => t.vec_dot = Some(dot_f16),
            BF16 => t.vec_dot = Some(dot_bf16),
            Q4_0 => {
                t.vec_dot = Some(vd_legacy::<L, BlockQ4_0>);
                t.vec_dot_repacked = Some(vd_rep::<L>);
                t.tiles = tiles(
                    Some(dt_legacy::<L, BlockQ4_0>),
                    None,
                    Some(dt_rep::<L>),
                    None,
                );
                t.tile_interleaved = Some(dt_irep::<L>);
            }
            Q4_1 => {
                t.vec_dot = Some(vd_legacy::<L, BlockQ4_1>);
                t.tiles = tiles(Some(dt_legacy::<L, BlockQ4_1>), None, None, None);
                t.tile_blocks4 = Some(dt_legacy_b4::<L, BlockQ4_1>);
            }
            Q5_0 => {
                t.vec_dot = Some(vd_legacy::<L, BlockQ5_0>);
                t.tiles = tiles(Some(dt_legacy::<L, BlockQ5_0>), None, None, None);
                t.tile_blocks4 = Some(dt_legacy_b4::<L, BlockQ5_0>);
            }
            Q5_1 => {
                t.vec_dot = Some(vd_legacy::<L, BlockQ5_1>);
                t.tiles = tiles(Some(dt_legacy::<L, BlockQ5_1>), None, None, None);
                t.tile_blocks4 = Some(dt_legacy_b4::<L, BlockQ5_1>);
            }
            Q8_0 => {
                t.vec_dot = Some(vd_legacy::<L, BlockQ8_0>);
                t.tiles = tiles(Some(dt_legacy::<L, BlockQ8_0>), None, None, None);
                t.tile_blocks4 = Some(dt_legacy_b4::<L, BlockQ8_0>);
            }
            Q2_K => t.vec_dot = Some(dot_q2_k),
            Q3_K => t.vec_dot = Some(dot_q3_k),
            Q5_K => t.vec_dot = Some(dot_q5_k),
            Q4_K => {
                t.vec_dot = Some(vd_q4k::<L, PLAIN>);
                t.vec_dot_tiled = Some(vd_q4k::<L, TILED>);
                t.vec_dot_repacked = Some(vd_q4k::<L, REPACKED>);
                t.vec_dot_repacked_gemm = Some(vd_q4k::<L, GEMM>);
                t.tiles = tiles(
                    Some(dt_q4k::<L, PLAIN>),
                    Some(dt_q4k::<L, TILED>),
                    Some(dt_q4k::<L, REPACKED>),
                    Some(dt_q4k::<L, GEMM>),
                );
            }
            Q6_K => {
                t.vec_dot = Some(vd_q6k::<L, PLAIN>);
                t.vec_dot_tiled = Some(vd_q6k::<L, TILED>);
                t.tiles = tiles(
                    Some(dt_q6k::<L, PLAIN>),
                    Some(dt_q6k::<L, TILED>),
                    None,
                    None,
                );
            }
            _ => {}
        }
    }
}

/// Overwrites the scalar table's entries with the AVX2 kernels.
///
/// Panics if the CPU lacks AVX2, FMA or F16C: every function installed here relies on them.
pub(crate) fn install_avx2(table: &mut [TypeTraits]) {
    assert!(
        Level::Avx2.is_supported(),
        "install_avx2 on a CPU without AVX2 + FMA + F16C"
    );
    install::<Avx2>(table);
}

/// The AVX-512 VNNI kernels (the AVX2 ones where VNNI does not help).
///
/// Panics if the CPU lacks any of AVX2, FMA, F16C, AVX-512 F/BW/VL or AVX-512 VNNI.
pub(crate) fn install_avx512vnni(table: &mut [TypeTraits]) {
    assert!(
        Level::Avx512Vnni.is_supported(),
        "install_avx512vnni on a CPU without AVX-512 VNNI"
    );
    install::<Vnni>(table);
}
