//! Models: hyperparameters and weights read from a GGUF file, one file per architecture
//! describing how it differs from the shared transformer in [`forward`].
//!
//! Supported: `llama` (Llama 2/3, SmolLM, TinyLlama, Mistral), `gemma3`, `qwen2`, `qwen3`.
//!
//! This file holds what a loaded [`Model`] is: its weights ([`Weight`], [`Layer`]) and how to
//! load one ([`LoadOptions`]). The rest, by file: `arch.rs` ([`Arch`], [`ArchSpec`]: the
//! architectures and the ways each departs from the plain llama block), one file per
//! architecture (its `SPEC`), `hparams.rs` ([`Hparams`]), `load.rs` ([`Model::load`]: finding
//! and checking the weights, interleaving them), [`forward`] (the forward pass and its
//! [`Context`]) and [`kv_cache`].

mod arch;
pub mod forward;
pub mod gemma3;
mod hparams;
pub mod kv_cache;
pub mod llama;
mod load;
pub mod qwen2;
pub mod qwen3;

use crate::gguf::Gguf;
use nib_simd::{GgmlType, Layout, MatRef};
use std::ops::Range;

pub use arch::{Activation, Arch, ArchSpec, RopeKind};
pub use forward::{Context, Logits};
pub use hparams::{Hparams, RopeScaling};
pub use kv_cache::{KvCache, KvType};

/// A weight matrix inside the mapped file: `rows` rows of `cols` elements, each row one output
/// (GGUF dims `[cols, rows]`). The shapes in the comments below are `(rows, cols)`; vectors are
/// `(len)`.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// How its rows lie: as in the file, or interleaved at load for faster kernels
    /// ([`Model::from_gguf_with`]).
    pub layout: Layout,
    range: Range<usize>,
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,              // (n_embd)
    pub wq: Weight,                       // (n_head * head_dim, n_embd)
    pub wk: Weight,                       // (n_head_kv * head_dim, n_embd)
    pub wv: Weight,                       // (n_head_kv * head_dim_v, n_embd)
    pub wo: Weight,                       // (n_embd, n_head * head_dim_v)
    pub bq: Option<Vec<f32>>,             // (n_head * head_dim)
    pub bk: Option<Vec<f32>>,             // (n_head_kv * head_dim)
    pub bv: Option<Vec<f32>>,             // (n_head_kv * head_dim_v)
    pub q_norm: Option<Vec<f32>>,         // (head_dim), shared by the heads
    pub k_norm: Option<Vec<f32>>,         // (head_dim)
    pub post_attn_norm: Option<Vec<f32>>, // (n_embd)
    pub ffn_norm: Vec<f32>,               // (n_embd)
    pub w_gate: Weight,                   // (n_ff, n_embd)
    pub w_up: Weight,                     // (n_ff, n_embd)
    pub w_down: Weight,                   // (n_embd, n_ff)
    pub post_ffn_norm: Option<Vec<f32>>,  // (n_embd)
}

/// A loaded model: the mapped file, its hyperparameters and where every weight lies.
pub struct Model {
    pub gguf: Gguf,
    pub hp: Hparams,
    pub spec: ArchSpec,
    pub tok_embd: Weight,      // (n_vocab, n_embd)
    pub layers: Vec<Layer>,    // (n_layer)
    pub output_norm: Vec<f32>, // (n_embd)
    /// The output projection (`output.weight`, or `token_embd.weight` when tied):
    /// (n_vocab, n_embd).
    pub output: Weight,
    /// Llama 3 `rope_freqs.weight`: per-dimension frequency divisors, (n_rot / 2).
    pub rope_freqs: Option<Vec<f32>>,
    /// Weights interleaved at load from a mapped file (their file pages are released): every
    /// weight whose layout is not `Rows` lies here when this is `Some`.
    interleaved: Option<memmap2::MmapMut>,
    /// The file ranges of the weights copied into `interleaved`.
    released: Vec<Range<usize>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("hp", &self.hp).finish()
    }
}

/// Options for loading.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Read the file into memory instead of mapping it.
    pub no_mmap: bool,
    /// Lock the mapped pages in memory.
    pub mlock: bool,
    /// Keep every weight in the file's layout (`--no-interleave`, llama.cpp's `--no-repack`); by
    /// default the rows of the 32-element formats are interleaved where the kernels read that
    /// faster ([`Model::from_gguf_with`]).
    pub no_interleave: bool,
}

impl Model {
    /// A weight as a kernel matrix view.
    pub fn mat(&self, w: &Weight) -> MatRef<'_> {
        MatRef {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            // Interleaved weights of a mapped file are in the interleaved buffer (read into memory,
            // they were rearranged where they lie).
            data: match &self.interleaved {
                Some(buf) if w.layout != Layout::Rows => &buf[w.range.clone()],
                _ => &self.gguf.bytes()[w.range.clone()],
            },
            layout: w.layout,
        }
    }

    /// Bytes of all weights (the file's data section).
    pub fn weight_bytes(&self) -> u64 {
        self.gguf.tensors().iter().map(|t| t.size).sum()
    }

    /// Total parameters.
    pub fn n_params(&self) -> u64 {
        self.gguf.n_params()
    }

    /// A short description like llama-bench's "llama ?B Q4_1".
    pub fn describe(&self) -> String {
        let ft = self
            .gguf
            .get_u32("general.file_type")
            .map(crate::gguf::file_type_name)
            .unwrap_or("unknown");
        format!(
            "{} {} {}",
            self.hp.arch.name(),
            crate::gguf::human_params(self.n_params()).replace(' ', ""),
            ft
        )
    }
}
