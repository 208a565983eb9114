//! x86-64 kernels for two levels, AVX2 (+ FMA + F16C) and AVX-512 VNNI, that return exactly the
//! scalar reference's bits ([`crate::formats`]): every dot product mirrors its reference's float
//! operations (which lanes, which FMAs, which reduction tree) and computes the integer parts
//! exactly, so only the speed differs between levels.
//!
//! A kernel ([`Kernel`], `kernel.rs`) is one summation order of one weight format over a [`Tile`], written
//! once, generic over an [`Isa`] (the few integer primitives where the levels differ), and
//! instantiated per level inside the `#[target_feature]` entry points of [`Entry`]. The table
//! ([`install`]) lists every kernel and conversion in one line each; the functions it installs
//! check alignment (the scalar reference takes misaligned input) and call an entry. They are
//! installed only by [`install`], whose caller has checked the CPU features: that is what makes
//! the calls sound.
//!
//! Files (the same roles as in `arch/aarch64/`): `kernel` (what a kernel is), `simd` (the [`Isa`]
//! primitives and small helpers), `tile` (how kernels cover a tile), `legacy` (the 32-element formats), `interleaved`
//! (Q4_0 in [`Order::Block`] with eight rows in eight lanes, from GGUF's rows or interleaved
//! ones), `kquants` and `kquant_orders` (Q2_K .. Q6_K: unpacking; one kernel per order), `float`
//! (F32, F16, BF16), `convert` (to and from f32) and `lanes` (the vectors of the elementwise
//! kernels, [`crate::vec`]).

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
use crate::traits::{Interleaved, Level, Order, Table, Tile, VecDot};
use crate::GgmlType;
use bytemuck::{try_cast_slice, try_cast_slice_mut};
use half::{bf16, f16};
use kernel::{Dequant, Kernel, Quantize};
use simd::{Avx2, Isa, Vnni};

/// The `#[target_feature]` entry point of one level: every kernel is inlined into it.
trait Entry: Isa {
    /// # Safety
    /// The level's features; `t.out` as for [`crate::traits::DotTile`].
    unsafe fn tile<K: Kernel>(t: &Tile<'_>) -> bool;
}

impl Entry for Avx2 {
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile<K: Kernel>(t: &Tile<'_>) -> bool {
        // SAFETY: this function's features; `t.out` is the caller's contract.
        unsafe { K::tile::<Self>(t) }
    }
}

impl Entry for Vnni {
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile<K: Kernel>(t: &Tile<'_>) -> bool {
        // SAFETY: this function's features; `t.out` is the caller's contract.
        unsafe { K::tile::<Self>(t) }
    }
}

// ---------------------------------------------------------------------------------------------
// The table's functions. Each is installed only by `install` for its own level `L`, whose
// features `install`'s caller checked: the `SAFETY` comments below rely on that.
// ---------------------------------------------------------------------------------------------

/// The reference row of `ty` (the path for misaligned input).
fn reference(ty: GgmlType) -> crate::traits::TypeTraits {
    crate::formats::reference(ty).expect("an x86 kernel's type has a reference row")
}

/// The reference of `K`'s order.
fn reference_dot<K: Kernel>() -> VecDot {
    reference(K::TYPE)
        .dot(K::ORDER)
        .expect("an x86 kernel's order has a reference")
}

/// `K`'s `VecDot` at level `L`: a one-element tile.
fn dot<L: Entry, K: Kernel>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let mut v = 0f32;
    let t = Tile {
        n,
        w: x,
        w_stride: x.len(),
        rows: 1,
        a: y,
        a_stride: y.len(),
        tokens: 1,
        out: &mut v,
        out_stride: 1,
    };
    // SAFETY: `L`'s features (see above); the tile writes element (0, 0), `v`.
    if unsafe { L::tile::<K>(&t) } {
        v
    } else {
        reference_dot::<K>()(n, x, y)
    }
}

/// `K`'s `DotTile` at level `L`.
///
/// # Safety
/// As for [`crate::traits::DotTile`].
unsafe fn tile<L: Entry, K: Kernel>(t: &Tile<'_>) {
    // SAFETY: `L`'s features (see above); `t.out` is the caller's contract.
    if !unsafe { L::tile::<K>(t) } {
        // SAFETY: the caller's contract.
        unsafe { tile::elementwise(reference_dot::<K>(), t) }
    }
}

/// `K`'s `DotTile` at level `L` over an interleaved layout (no element-by-element path: the rows
/// are not GGUF's). Panics if the kernel declines the tile.
///
/// # Safety
/// As for [`crate::traits::DotTile`].
unsafe fn interleaved_tile<L: Entry, K: Kernel>(t: &Tile<'_>) {
    // SAFETY: `L`'s features (see above); `t.out` is the caller's contract.
    let done = unsafe { L::tile::<K>(t) };
    assert!(
        done,
        "interleaved {} product of {} rows x {} columns: not a whole number of groups or a \
         misaligned buffer",
        K::TYPE,
        t.rows,
        t.n
    );
}

/// `D`'s `ToFloat`.
fn to_float<D: Dequant>(x: &[u8], y: &mut [f32]) {
    match try_cast_slice::<u8, D>(x) {
        // SAFETY: AVX2, FMA and F16C, which every x86 level has (see above).
        Ok(blocks) => unsafe { D::dequant(blocks, y) },
        Err(_) => (reference(D::TYPE).to_float.unwrap())(x, y),
    }
}

/// `Q`'s `FromFloat`.
fn from_float<Q: Quantize>(x: &[f32], y: &mut [u8]) {
    let count = x.len() / Q::PER;
    match try_cast_slice_mut::<u8, Q>(&mut y[..count * size_of::<Q>()]) {
        // SAFETY: as in `to_float`.
        Ok(out) => unsafe { Q::quantize(x, out) },
        Err(_) => (reference(Q::TYPE).from_float.unwrap())(x, y),
    }
}

/// The table of level `L`: one line per kernel (type, order, kernel), then per interleaved
/// layout, then per conversion.
fn install_level<L: Entry>(t: &mut Table) {
    use GgmlType::*;
    use Order::*;
    macro_rules! kernels {
        ($($ty:ident $order:ident: $k:ty;)*) => {$({
            const { assert!(<$k>::TYPE as u32 == $ty as u32 && <$k>::ORDER as usize == $order as usize) };
            let row = t.row($ty);
            row.dots[$order as usize] = Some(dot::<L, $k>);
            row.tiles[$order as usize] = Some(tile::<L, $k>);
        })*};
    }
    macro_rules! interleaved {
        ($($ty:ident $layout:ident: $k:ty;)*) => {$(
            t.row($ty).interleaved = Some(Interleaved {
                layout: Layout::$layout,
                order: <$k>::ORDER,
                tile: interleaved_tile::<L, $k>,
            });
        )*};
    }
    macro_rules! conversions {
        ($($ty:ident: $($to:ty)?, $($from:ty)?;)*) => {$(
            $(t.row($ty).to_float = Some(to_float::<$to>);)?
            $(t.row($ty).from_float = Some(from_float::<$from>);)?
        )*};
    }
    kernels! {
        F32 Vec: float::F32;
        F16 Vec: float::F16;
        BF16 Vec: float::BF16;
        Q4_0 Vec: legacy::Rows<BlockQ4_0>;
        Q4_0 Block: interleaved::Transposed;
        Q4_1 Vec: legacy::Rows<BlockQ4_1>;
        Q5_0 Vec: legacy::Rows<BlockQ5_0>;
        Q5_1 Vec: legacy::Rows<BlockQ5_1>;
        Q8_0 Vec: legacy::Rows<BlockQ8_0>;
        Q2_K Vec: kquant_orders::Q2K;
        Q3_K Vec: kquant_orders::Q3K;
        Q4_K Vec: kquant_orders::Q4K<{ kquant_orders::VEC }>;
        Q4_K Tiled: kquant_orders::Q4K<{ kquant_orders::TILED }>;
        Q4_K Block: kquant_orders::Q4K<{ kquant_orders::BLOCK }>;
        Q4_K Gemm: kquant_orders::Q4K<{ kquant_orders::GEMM }>;
        Q5_K Vec: kquant_orders::Q5K;
        Q6_K Vec: kquant_orders::Q6K<{ kquant_orders::VEC }>;
        Q6_K Tiled: kquant_orders::Q6K<{ kquant_orders::TILED }>;
    }
    interleaved! {
        Q4_0 Interleaved8: interleaved::Groups8;
        Q4_1 Blocks4: legacy::Blocks4<BlockQ4_1>;
        Q5_0 Blocks4: legacy::Blocks4<BlockQ5_0>;
        Q5_1 Blocks4: legacy::Blocks4<BlockQ5_1>;
        Q8_0 Blocks4: legacy::Blocks4<BlockQ8_0>;
    }
    // Type: to_float over, from_float over.
    conversions! {
        F16: f16, f16;
        BF16: bf16, bf16;
        Q4_0: BlockQ4_0,;
        Q4_1: BlockQ4_1,;
        Q5_0: BlockQ5_0,;
        Q5_1: BlockQ5_1,;
        Q8_0: BlockQ8_0, BlockQ8_0;
        Q8_1: , BlockQ8_1;
        Q2_K: BlockQ2K,;
        Q3_K: BlockQ3K,;
        Q4_K: BlockQ4K,;
        Q5_K: BlockQ5K,;
        Q6_K: BlockQ6K,;
        Q8_K: , BlockQ8K;
    }
}

/// Installs `level`'s kernels over the reference rows of `table`.
///
/// # Safety
/// The CPU must support `level` (every function installed relies on its features).
pub(crate) unsafe fn install(level: Level, table: &mut Table) {
    match level {
        Level::Avx2 => install_level::<Avx2>(table),
        Level::Avx512Vnni => install_level::<Vnni>(table),
        _ => unreachable!("{level} is not an x86 level"),
    }
}
