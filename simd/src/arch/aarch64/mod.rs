//! aarch64 kernels for two levels: plain Advanced SIMD (`Level::Neon`) and Advanced SIMD with SDOT
//! (`Level::NeonDotprod`, e.g. Neoverse-N1 / Ampere A1).
//!
//! Every kernel returns, bit for bit, what the scalar reference ([`crate::formats`]) returns:
//! nib's numerics are llama.cpp's x86 CPU backend's on every architecture. An 8-lane x86
//! accumulator is two 4-lane NEON accumulators, each element feeds the lane it feeds on x86,
//! `vfmaq` stands where x86 fuses, and reductions follow the x86 trees.
//!
//! A quantized kernel ([`Kernel`], `kernel.rs`) is one summation order of one weight format: a function of `R`
//! weight rows × `T` tokens, generic over the 16-byte integer dot ([`simd::Dot`], lane-exact quad
//! sums), instantiated twice: with the widening-multiply emulation for plain NEON and with the
//! SDOT instruction (inline assembly, since stable Rust lacks the intrinsic) inside
//! `#[target_feature(enable = "dotprod")]` entry points ([`Entry`]). The table ([`install`]) lists
//! every kernel with its register tile and every conversion, one line each; each kernel becomes
//! the table's `VecDot` at 1 × 1 and its `DotTile` at the tile. The conversions (`to_float`,
//! `from_float`) and the float dots need no dotprod and are the same at both levels.
//!
//! Files (the same roles as in `arch/x86/`): `kernel` (what a kernel is), `simd` (SDOT, fp16
//! conversion, reductions, helpers),
//! `tile` (how a kernel covers a row and a tile), `legacy` (the 32-element formats), `kquants`
//! and `kquant_orders` (Q2_K .. Q6_K: unpacking and passes; one kernel per order), `float` (F32,
//! F16, BF16), `convert` (to and from f32) and `lanes` (the vectors of the elementwise kernels,
//! [`crate::vec`]).

mod convert;
mod float;
mod interleaved;
mod kernel;
mod kquant_orders;
mod kquants;
pub(crate) mod lanes;
mod legacy;
mod simd;
mod tile;

use crate::formats::*;
use crate::interleave::Layout;
use crate::traits::{Interleaved, Level, Order, Table, Tile};
use crate::GgmlType;
use kernel::{GroupKernel, Kernel};
use simd::{Emul, Sdot};

/// The entry points of one level: every kernel is inlined into them with the level's integer dot.
trait Entry {
    /// # Safety
    /// The level's features.
    unsafe fn dot<K: Kernel>(n: usize, x: &[u8], y: &[u8]) -> f32;
    /// # Safety
    /// The level's features; `t.out` as for [`crate::traits::DotTile`].
    unsafe fn tile<K: Kernel, const R: usize, const T: usize>(t: &Tile<'_>);
    /// # Safety
    /// As for [`Entry::tile`].
    unsafe fn group_tile<K: GroupKernel>(t: &Tile<'_>) -> bool;
}

/// Plain Advanced SIMD (SDOT emulated), part of the aarch64 baseline.
struct Neon;

impl Entry for Neon {
    unsafe fn dot<K: Kernel>(n: usize, x: &[u8], y: &[u8]) -> f32 {
        // SAFETY: `Emul` needs only the baseline.
        unsafe { tile::vec_dot::<K, Emul>(n, x, y) }
    }
    unsafe fn tile<K: Kernel, const R: usize, const T: usize>(t: &Tile<'_>) {
        // SAFETY: as in `dot`; `t.out` is the caller's contract.
        unsafe { tile::tile::<K, Emul, R, T>(t) }
    }
    unsafe fn group_tile<K: GroupKernel>(t: &Tile<'_>) -> bool {
        // SAFETY: as in `dot`; `t.out` is the caller's contract.
        unsafe { K::tile::<Emul>(t) }
    }
}

/// SDOT (`FEAT_DotProd`).
struct Dotprod;

impl Entry for Dotprod {
    #[target_feature(enable = "dotprod")]
    unsafe fn dot<K: Kernel>(n: usize, x: &[u8], y: &[u8]) -> f32 {
        // SAFETY: this function's feature, which `Sdot` needs.
        unsafe { tile::vec_dot::<K, Sdot>(n, x, y) }
    }
    #[target_feature(enable = "dotprod")]
    unsafe fn tile<K: Kernel, const R: usize, const T: usize>(t: &Tile<'_>) {
        // SAFETY: as in `dot`; `t.out` is the caller's contract.
        unsafe { tile::tile::<K, Sdot, R, T>(t) }
    }
    #[target_feature(enable = "dotprod")]
    unsafe fn group_tile<K: GroupKernel>(t: &Tile<'_>) -> bool {
        // SAFETY: as in `dot`; `t.out` is the caller's contract.
        unsafe { K::tile::<Sdot>(t) }
    }
}

// The table's functions. Each is installed only by `install` for its own level `E`, whose
// features `install`'s caller checked: the `SAFETY` comments below rely on that.

/// `K`'s `VecDot` at level `E`.
fn dot<E: Entry, K: Kernel>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    // SAFETY: `E`'s features (see above).
    unsafe { E::dot::<K>(n, x, y) }
}

/// `K`'s `DotTile` at level `E` with register tiles of `R` rows × `T` tokens.
///
/// # Safety
/// As for [`crate::traits::DotTile`].
unsafe fn tile<E: Entry, K: Kernel, const R: usize, const T: usize>(t: &Tile<'_>) {
    // SAFETY: `E`'s features (see above); `t.out` is the caller's contract.
    unsafe { E::tile::<K, R, T>(t) }
}

/// `K`'s `DotTile` at level `E` over its interleaved layout (no element-by-element path: the rows
/// are not GGUF's). Panics if the kernel declines the tile.
///
/// # Safety
/// As for [`crate::traits::DotTile`].
unsafe fn interleaved_tile<E: Entry, K: GroupKernel>(t: &Tile<'_>) {
    // SAFETY: `E`'s features (see above); `t.out` is the caller's contract.
    let done = unsafe { E::group_tile::<K>(t) };
    assert!(
        done,
        "interleaved {} product of {} rows x {} columns: not a whole number of groups or short \
         buffers",
        K::TYPE,
        t.rows,
        t.n
    );
}

/// The table of level `E`: one line per kernel (type, order: kernel, register tile), per
/// interleaved layout and per conversion, and the order the level uses for each type where it
/// chooses its own.
///
/// Register tiles (rows × tokens): the eight-lane orders keep two f32 accumulators per output and
/// take a few rows and tokens; the orders with one accumulator per output keep the outputs in the
/// lanes of a vector: four rows for the decode orders, four tokens for the orders only prompts
/// take (Gemm, Tiled), so a weight block is unpacked once for four tokens.
fn install_level<E: Entry>(t: &mut Table) {
    use kquant_orders::*;
    use kquants::{Q2K, Q3K, Q5K};
    use GgmlType::*;
    use Order::*;
    macro_rules! kernels {
        ($($ty:ident $order:ident: $k:ty, $r:literal x $c:literal;)*) => {$({
            const { assert!(<$k>::TYPE as u32 == $ty as u32 && <$k>::ORDER as usize == $order as usize) };
            let row = t.row($ty);
            row.dots[$order as usize] = Some(dot::<E, $k>);
            row.tiles[$order as usize] = Some(tile::<E, $k, $r, $c>);
        })*};
    }
    kernels! {
        Q4_0 Vec: legacy::Lanes8<BlockQ4_0>, 2 x 4;
        Q4_0 Block: legacy::PerBlock<BlockQ4_0>, 4 x 2;
        Q4_1 Vec: legacy::Lanes8<BlockQ4_1>, 2 x 4;
        Q4_1 Block: legacy::PerBlock<BlockQ4_1>, 4 x 2;
        Q5_0 Vec: legacy::Lanes8<BlockQ5_0>, 2 x 4;
        Q5_0 Block: legacy::PerBlock<BlockQ5_0>, 4 x 2;
        Q5_1 Vec: legacy::Lanes8<BlockQ5_1>, 2 x 4;
        Q5_1 Block: legacy::PerBlock<BlockQ5_1>, 4 x 2;
        Q8_0 Vec: legacy::Lanes8<BlockQ8_0>, 2 x 4;
        Q8_0 Block: legacy::PerBlock<BlockQ8_0>, 4 x 2;
        Q2_K Vec: Sumf<Q2K>, 2 x 2;
        Q3_K Vec: Sumf<Q3K>, 2 x 2;
        Q4_K Vec: Q4KLanes, 1 x 2;
        Q4_K Block: Q4KBlock, 4 x 1;
        Q4_K Gemm: Q4KGemm, 1 x 4;
        Q4_K Tiled: Q4KTiled, 1 x 4;
        Q5_K Vec: Sumf<Q5K>, 2 x 2;
        Q6_K Vec: Q6KLanes, 1 x 2;
        Q6_K Tiled: Q6KTiled, 1 x 4;
    }
    // Interleaved layouts: (type, layout: kernel with its batch tokens per tile).
    macro_rules! interleaved {
        ($($ty:ident $layout:ident: $k:ty;)*) => {$(
            t.row($ty).interleaved = Some(Interleaved {
                layout: Layout::$layout,
                order: <$k>::ORDER,
                tile: interleaved_tile::<E, $k>,
            });
        )*};
    }
    interleaved! {
        Q4_0 Interleaved8: interleaved::Groups8<BlockQ4_0, 8>;
        Q4_1 Interleaved8: interleaved::Groups8<BlockQ4_1, 8>;
        Q5_0 Interleaved8: interleaved::Groups8<BlockQ5_0, 8>;
        Q5_1 Interleaved8: interleaved::Groups8<BlockQ5_1, 8>;
        Q8_0 Interleaved8: interleaved::Groups8<BlockQ8_0, 8>;
    }
    // The orders cheapest on Neoverse-N1 where they differ from llama.cpp's x86 choice: one
    // accumulator per output, updated once per block (no horizontal sums).
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0] {
        t.row(ty).order = Some(Block);
    }
    // The float dots: plain functions, no tiles.
    t.row(F32).dots[Vec as usize] = Some(float::vec_dot_f32);
    t.row(F16).dots[Vec as usize] = Some(float::vec_dot_f16);
    t.row(BF16).dots[Vec as usize] = Some(float::vec_dot_bf16);
    macro_rules! conversions {
        ($($ty:ident: $($to:expr)?, $($from:expr)?;)*) => {$(
            $(t.row($ty).to_float = Some($to);)?
            $(t.row($ty).from_float = Some($from);)?
        )*};
    }
    // Type: to_float, from_float.
    conversions! {
        F16: float::dequantize_row_f16, float::quantize_row_f16;
        BF16: float::dequantize_row_bf16, float::quantize_row_bf16;
        Q4_0: convert::dequantize::<BlockQ4_0>,;
        Q4_1: convert::dequantize::<BlockQ4_1>,;
        Q5_0: convert::dequantize::<BlockQ5_0>,;
        Q5_1: convert::dequantize::<BlockQ5_1>,;
        Q8_0: convert::dequantize::<BlockQ8_0>, convert::quantize_row_q8_0;
        Q8_1: convert::dequantize_row_q8_1, convert::quantize_row_q8_1;
        Q2_K: convert::dequantize_row_q2_k,;
        Q3_K: convert::dequantize_row_q3_k,;
        Q4_K: convert::dequantize_row_q4_k,;
        Q5_K: convert::dequantize_row_q5_k,;
        Q6_K: convert::dequantize_row_q6_k,;
        Q8_K: convert::dequantize_row_q8_k, convert::quantize_row_q8_k;
    }
}

/// Installs `level`'s kernels over the reference rows of `table`.
///
/// # Safety
/// The CPU must support `level` (the dotprod entry points rely on it).
pub(crate) unsafe fn install(level: Level, table: &mut Table) {
    match level {
        Level::Neon => install_level::<Neon>(table),
        Level::NeonDotprod => install_level::<Dotprod>(table),
        _ => unreachable!("{level} is not an aarch64 level"),
    }
}
