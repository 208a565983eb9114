//! nib's kernel crate: GGML block formats, quantization and dequantization, dot products per
//! instruction set with run-time dispatch, matrix products over threads, and the elementwise
//! kernels of a transformer. It knows nothing about models.

// Kernels index blocks, lanes and elements by position on purpose: the loops spell out the
// arithmetic order that every instruction set must reproduce.
#![allow(clippy::needless_range_loop)]

pub mod arch;
pub mod attn;
pub mod blocks;
pub mod dot;
pub mod ggml_type;
pub mod interleave;
pub mod quantize;
pub mod reference;
pub mod testing;
pub mod traits;

pub use ggml_type::{GgmlType, ALL_TYPES, QK_K};
pub use traits::{kernels, DotKind, DotTile, Kernels, Level, TypeTraits};
pub mod matmul;
pub mod pool;
pub mod vec;

pub use matmul::{matmul, matmul_multi, quantize_rows, Layout, MatRef};
