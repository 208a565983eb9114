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

/// Read the hyperparameters of an `arch` model from its file (the architecture's own
/// adjustments are made by the loader).
pub fn read_hparams(g: &Gguf, arch: Arch, spec: &ArchSpec) -> Result<Hparams> {
    let a = arch.name();
    let key = |k: &str| format!("{a}.{k}");
    let n_embd = g.get_u32(&key("embedding_length"))? as usize;
    let n_layer = g.get_u32(&key("block_count"))? as usize;
    let n_head = g.get_u32(&key("attention.head_count"))? as usize;
    let n_head_kv = g
        .opt_u32(&key("attention.head_count_kv"))?
        .map_or(n_head, |v| v as usize);
    let n_ff = g.get_u32(&key("feed_forward_length"))? as usize;
    let n_ctx_train = g.get_u32(&key("context_length"))? as usize;
    let rms_eps = g.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
    if n_head == 0
        || n_head_kv == 0
        || !n_head.is_multiple_of(n_head_kv)
        || n_layer == 0
        || n_embd == 0
    {
        bail!("inconsistent shape: {n_head} heads, {n_head_kv} kv heads, {n_layer} layers, embedding {n_embd}");
    }
    let head_dim = g
        .opt_u32(&key("attention.key_length"))?
        .map_or(n_embd / n_head, |v| v as usize);
    let head_dim_v = g
        .opt_u32(&key("attention.value_length"))?
        .map_or(n_embd / n_head, |v| v as usize);
    let n_rot = g
        .opt_u32(&key("rope.dimension_count"))?
        .map_or(head_dim, |v| v as usize);
    if n_rot > head_dim || n_rot % 2 != 0 {
        bail!("rope.dimension_count {n_rot} does not fit head size {head_dim}");
    }
    let n_vocab = match g.opt_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => {
            g.get_array("tokenizer.ggml.tokens")
                .context("no vocabulary size")?
                .len
        }
    };
    let rope_base = g
        .opt_f32(&key("rope.freq_base"))?
        .unwrap_or(spec.default_rope_base);
    let scaling_type = g
        .opt_str(&key("rope.scaling.type"))?
        .unwrap_or("linear")
        .to_string();
    let factor = match g.opt_f32(&key("rope.scaling.factor"))? {
        Some(f) => f,
        None => g.opt_f32(&key("rope.scale_linear"))?.unwrap_or(0.0),
    };
    let rope_scaling = match (scaling_type.as_str(), factor) {
        (_, f) if f == 0.0 || f == 1.0 => RopeScaling::None,
        ("none", _) => RopeScaling::None,
        ("linear", f) => RopeScaling::Linear { factor: f },
        ("yarn", f) => RopeScaling::Yarn {
            factor: f,
            orig_ctx: g
                .opt_u32(&key("rope.scaling.original_context_length"))?
                .unwrap_or(n_ctx_train as u32),
            beta_fast: g
                .opt_f32(&key("rope.scaling.yarn_beta_fast"))?
                .unwrap_or(32.0),
            beta_slow: g
                .opt_f32(&key("rope.scaling.yarn_beta_slow"))?
                .unwrap_or(1.0),
        },
        (other, _) => bail!("rope scaling type {other:?} is not supported (none, linear, yarn)"),
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
        final_logit_softcap: g.opt_f32(&key("final_logit_softcapping"))?.unwrap_or(0.0),
        attn_logit_softcap: g.opt_f32(&key("attn_logit_softcapping"))?.unwrap_or(0.0),
    })
}
