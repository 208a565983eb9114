//! What an aarch64 kernel is: one summation order of one weight format, generic over the 16-byte
//! integer dot (`mod.rs` instantiates each per level), over GGUF's rows ([`Kernel`]) or an
//! interleaved layout ([`GroupKernel`]).

use super::simd::Dot;
use crate::traits::{Order, Tile};
use crate::GgmlType;

/// An aarch64 kernel: one summation order of one weight format over blocks of `QB` elements
/// (`XB` bytes per weight block, `YB` per activation block).
pub(super) trait Kernel {
    const TYPE: GgmlType;
    const ORDER: Order;
    const QB: usize;
    const XB: usize;
    const YB: usize;

    /// `out[t][r]` = weight row `x[r]` · activation row `y[t]` over `nb` blocks, in the kernel's
    /// order.
    ///
    /// # Safety
    /// Every `x[r]` must be valid for reading `nb * XB` bytes and every `y[t]` `nb * YB` bytes;
    /// the CPU must support `D`'s instructions.
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T];
}

/// An aarch64 kernel over an interleaved layout: one summation order of one weight format,
/// generic over the integer dot.
pub(super) trait GroupKernel {
    const TYPE: GgmlType;
    const ORDER: Order;

    /// Computes `t`, whose weights are the interleaved groups of `t.rows` rows. Returns `false`,
    /// having written nothing, if the shape or the buffers do not fit the kernel.
    ///
    /// # Safety
    /// The CPU must support `D`'s instructions; `t.out` as for [`crate::traits::DotTile`].
    unsafe fn tile<D: Dot>(t: &Tile<'_>) -> bool;
}
