//! nib's kernel crate: GGML block formats, quantization and dequantization, dot products per
//! instruction set with run-time dispatch, matrix products over threads, and the elementwise and
//! attention kernels of a transformer. It knows nothing about models.
//!
//! Its modules build on each other in one direction (no module uses one below it in this list):
//!
//! 1. [`ggml_type`] (type ids and block geometry), [`pool`] (threads), [`testing`];
//! 2. [`interleave`]: the layouts weights can be stored in, and their rearrangement;
//! 3. [`traits`]: the vocabulary (function types, summation orders, the tile call, a type's row of
//!    the kernel table, levels);
//! 4. [`formats`]: one file per block type, its scalar reference and its reference row; and
//!    [`vec::scalar`], the elementwise references;
//! 5. [`arch`]: the kernels of each instruction set;
//! 6. [`dispatch`]: CPU detection, the level, each level's table;
//! 7. [`vec`], [`attn`]: the elementwise and attention kernels, dispatched;
//! 8. [`matmul`]: matrix products over the thread pool.

// Kernels index blocks, lanes and elements by position on purpose: the loops spell out the
// arithmetic order that every instruction set must reproduce.
#![allow(clippy::needless_range_loop)]

pub mod arch;
pub mod attn;
pub mod dispatch;
pub mod formats;
pub mod ggml_type;
pub mod interleave;
pub mod matmul;
pub mod pool;
pub mod testing;
pub mod traits;
pub mod vec;

pub use dispatch::{kernels, Kernels};
pub use ggml_type::{GgmlType, ALL_TYPES, QK_K};
pub use interleave::Layout;
pub use matmul::{matmul, matmul_multi, quantize_rows, MatRef};
pub use traits::{DotTile, Level, Order, Tile, TypeTraits};
