//! Hyperparameters: the shape of a model and the constants of its arithmetic, read from the
//! `{arch}.*` metadata keys.

use super::arch::{Arch, ArchSpec};
use crate::gguf::Gguf;
use anyhow::{bail, Context as _, Result};

/// RoPE frequency scaling, from `rope.scaling.*`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (`freq_scale = 1/factor`).
    Linear {
        factor: f32,
    },
    /// YaRN: interpolation blended with extrapolation by dimension.
    Yarn {
        factor: f32,
        orig_ctx: u32,
        beta_fast: f32,
        beta_slow: f32,
    },
}

/// Hyperparameters of a loaded model.
#[derive(Clone, Debug)]
pub struct Hparams {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    pub n_ff: usize,
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Rope base of sliding-window layers (gemma3: 10,000).
    pub rope_base_swa: f32,
    pub rope_scaling: RopeScaling,
    /// Multiply attention scores by this (1/√head_dim unless the architecture says otherwise).
    pub attn_scale: f32,
    /// Sliding window size (0: none).
    pub n_swa: usize,
    /// Which layers use the sliding window.
    pub swa_layers: Vec<bool>,
    /// `final_logit_softcapping` (0: none).
    pub final_logit_softcap: f32,
    /// `attn_logit_softcapping` (0: none).
    pub attn_logit_softcap: f32,
}

impl Hparams {
    pub fn is_swa(&self, layer: usize) -> bool {
        self.n_swa > 0 && self.swa_layers.get(layer).copied().unwrap_or(false)
    }
}

/// Bounds every hyperparameter must fall in, checked before anything is sized from it: a
/// corrupt or hostile file gets an error naming the key and its value, not an allocation of
/// terabytes. They are generous: the largest public models are far inside them.
pub mod limits {
    /// Layers (llama.cpp's `LLAMA_MAX_LAYERS`).
    pub const MAX_LAYERS: usize = 512;
    /// Embedding width.
    pub const MAX_EMBD: usize = 1 << 16;
    /// Feed-forward width.
    pub const MAX_FF: usize = 1 << 20;
    /// Attention heads (query heads; KV heads are at most this many and divide it).
    pub const MAX_HEADS: usize = 1024;
    /// Key and value width of one head.
    pub const MAX_HEAD_DIM: usize = 4096;
    /// Vocabulary.
    pub const MAX_VOCAB: usize = 1 << 24;
    /// Training context (and sliding window, and YaRN's original context).
    pub const MAX_CTX: usize = 1 << 24;
    /// Experts of a mixture-of-experts model (llama.cpp's `LLAMA_MAX_EXPERTS`).
    pub const MAX_EXPERTS: usize = 512;
}

/// `value` read from `key` when it lies in `lo..=hi`; otherwise an error naming both.
fn bounded(key: &str, value: usize, lo: usize, hi: usize) -> Result<usize> {
    if value < lo || value > hi {
        bail!("hyperparameter {key} = {value} is out of range (expected {lo} to {hi})");
    }
    Ok(value)
}

/// A float from `key` that must be finite and satisfy `ok` (described by `want`).
fn checked_f32(key: &str, value: f32, ok: impl Fn(f32) -> bool, want: &str) -> Result<f32> {
    if !value.is_finite() || !ok(value) {
        bail!("hyperparameter {key} = {value} is out of range (expected {want})");
    }
    Ok(value)
}

/// Read the hyperparameters of an `arch` model from its file (the architecture's own
/// adjustments are made by the loader). Every value is checked against [`limits`] and against the
/// others (KV heads divide heads, the rotated dimensions fit a head) before anything is sized
/// from it.
pub fn read_hparams(g: &Gguf, arch: Arch, spec: &ArchSpec) -> Result<Hparams> {
    use limits::*;
    let a = arch.name();
    let key = |k: &str| format!("{a}.{k}");
    // A required `u32` key within bounds.
    let req = |k: &str, lo: usize, hi: usize| -> Result<usize> {
        let k = key(k);
        bounded(&k, g.get_u32(&k)? as usize, lo, hi)
    };
    // An optional `u32` key within bounds.
    let opt = |k: &str, lo: usize, hi: usize| -> Result<Option<usize>> {
        let k = key(k);
        g.opt_u32(&k)?
            .map(|v| bounded(&k, v as usize, lo, hi))
            .transpose()
    };
    let n_layer = req("block_count", 1, MAX_LAYERS)?;
    let n_embd = req("embedding_length", 1, MAX_EMBD)?;
    let n_head = req("attention.head_count", 1, MAX_HEADS)?;
    let n_head_kv = opt("attention.head_count_kv", 1, n_head)?.unwrap_or(n_head);
    if !n_head.is_multiple_of(n_head_kv) {
        bail!(
            "hyperparameter {} = {n_head_kv} does not divide {} = {n_head}",
            key("attention.head_count_kv"),
            key("attention.head_count")
        );
    }
    let n_ff = req("feed_forward_length", 1, MAX_FF)?;
    let n_ctx_train = req("context_length", 1, MAX_CTX)?;
    let eps_key = key("attention.layer_norm_rms_epsilon");
    let rms_eps = checked_f32(
        &eps_key,
        g.get_f32(&eps_key)?,
        |e| e > 0.0 && e < 1.0,
        "a number between 0 and 1",
    )?;
    // Without explicit head widths, the embedding splits evenly across the heads.
    let default_head_dim = n_embd / n_head;
    let head_dim = opt("attention.key_length", 1, MAX_HEAD_DIM)?.unwrap_or(default_head_dim);
    let head_dim_v = opt("attention.value_length", 1, MAX_HEAD_DIM)?.unwrap_or(default_head_dim);
    if head_dim == 0 || head_dim_v == 0 {
        bail!(
            "hyperparameter {} = {n_embd} is smaller than {} = {n_head} (a head would be empty)",
            key("embedding_length"),
            key("attention.head_count")
        );
    }
    let n_rot = opt("rope.dimension_count", 0, usize::MAX)?.unwrap_or(head_dim);
    if n_rot == 0 || n_rot > head_dim || n_rot % 2 != 0 {
        bail!(
            "hyperparameter {} = {n_rot} does not fit head size {head_dim} (expected an even number from 2 to {head_dim})",
            key("rope.dimension_count")
        );
    }
    let n_vocab = match g.opt_u32(&key("vocab_size"))? {
        Some(v) => bounded(&key("vocab_size"), v as usize, 1, MAX_VOCAB)?,
        None => bounded(
            "the length of tokenizer.ggml.tokens",
            g.get_array("tokenizer.ggml.tokens")
                .context("no vocabulary size")?
                .len,
            1,
            MAX_VOCAB,
        )?,
    };
    // nib runs dense models only; the counts are still checked so the message is about the
    // model, not about a missing tensor.
    if let Some(n_expert) = opt("expert_count", 0, MAX_EXPERTS)? {
        let used = opt("expert_used_count", 0, n_expert)?.unwrap_or(0);
        if n_expert > 0 {
            bail!(
                "{} = {n_expert} ({used} used per token): mixture-of-experts models are not supported by nib",
                key("expert_count")
            );
        }
    }
    let positive = |k: &str, default: f32| -> Result<f32> {
        let k = key(k);
        match g.opt_f32(&k)? {
            Some(v) => checked_f32(&k, v, |v| v > 0.0, "a positive number"),
            None => Ok(default),
        }
    };
    let rope_base = positive("rope.freq_base", spec.default_rope_base)?;
    let scaling_type = g
        .opt_str(&key("rope.scaling.type"))?
        .unwrap_or("linear")
        .to_string();
    let factor = match g.opt_f32(&key("rope.scaling.factor"))? {
        Some(f) => checked_f32(&key("rope.scaling.factor"), f, |f| f >= 0.0, "0 or more")?,
        None => match g.opt_f32(&key("rope.scale_linear"))? {
            Some(f) => checked_f32(&key("rope.scale_linear"), f, |f| f >= 0.0, "0 or more")?,
            None => 0.0,
        },
    };
    let rope_scaling = match (scaling_type.as_str(), factor) {
        (_, f) if f == 0.0 || f == 1.0 => RopeScaling::None,
        ("none", _) => RopeScaling::None,
        ("linear", f) => RopeScaling::Linear { factor: f },
        ("yarn", f) => RopeScaling::Yarn {
            factor: f,
            orig_ctx: opt("rope.scaling.original_context_length", 1, MAX_CTX)?
                .unwrap_or(n_ctx_train) as u32,
            beta_fast: positive("rope.scaling.yarn_beta_fast", 32.0)?,
            beta_slow: positive("rope.scaling.yarn_beta_slow", 1.0)?,
        },
        (other, _) => bail!("rope scaling type {other:?} is not supported (none, linear, yarn)"),
    };
    // 0: no softcap.
    let softcap = |k: &str| -> Result<f32> {
        let k = key(k);
        match g.opt_f32(&k)? {
            Some(v) => checked_f32(&k, v, |v| v >= 0.0, "0 or more"),
            None => Ok(0.0),
        }
    };
    Ok(Hparams {
        arch,
        n_vocab,
        n_ctx_train,
        n_embd,
        n_layer,
        n_head,
        n_head_kv,
        head_dim,
        head_dim_v,
        n_ff,
        n_rot,
        rms_eps,
        rope_base,
        rope_base_swa: rope_base,
        rope_scaling,
        attn_scale: 1.0 / (head_dim as f32).sqrt(),
        n_swa: 0,
        swa_layers: vec![false; n_layer],
        final_logit_softcap: softcap("final_logit_softcapping")?,
        attn_logit_softcap: softcap("attn_logit_softcapping")?,
    })
}
