//! What an x86 kernel is: one summation order of one weight format over a tile, generic over the
//! instruction set (`mod.rs` instantiates each per level), and the row conversions.

use super::simd::Isa;
use crate::traits::{Order, Tile};
use crate::GgmlType;
use bytemuck::Pod;

/// An x86 kernel: one summation order of one weight format, over a tile, generic over the
/// instruction set.
pub(super) trait Kernel {
    const TYPE: GgmlType;
    const ORDER: Order;

    /// Computes `t`. Returns `false`, having written nothing, if its rows are not what the kernel
    /// reads (misaligned blocks, a layout's shape); the caller then takes the reference.
    ///
    /// # Safety
    /// `I`'s features; `t.out` as for [`crate::traits::DotTile`].
    unsafe fn tile<I: Isa>(t: &Tile<'_>) -> bool;
}

/// An AVX2 conversion of a row of blocks `Self` to f32.
pub(super) trait Dequant: Pod {
    const TYPE: GgmlType;
    /// # Safety
    /// AVX2, FMA and F16C.
    unsafe fn dequant(x: &[Self], y: &mut [f32]);
}

/// An AVX2 conversion of f32 to blocks `Self` of `PER` elements.
pub(super) trait Quantize: Pod {
    const TYPE: GgmlType;
    const PER: usize;
    /// # Safety
    /// AVX2, FMA and F16C.
    unsafe fn quantize(x: &[f32], y: &mut [Self]);
}
