//! The architectures nib runs and the ways each departs from the plain llama block: each
//! architecture's file fills in an [`ArchSpec`] (its `SPEC`, which [`Arch::spec`] returns).

use anyhow::{anyhow, Result};

/// The architectures nib runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
    Qwen2,
    Qwen3,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Gemma3, Arch::Qwen2, Arch::Qwen3];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }

    pub fn from_name(s: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
                anyhow!(
                    "architecture {s:?} is not supported by nib (supported: {})",
                    names.join(", ")
                )
            })
    }
}

/// How RoPE pairs up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeKind {
    /// Adjacent pairs `(2i, 2i+1)` (llama.cpp's `LLAMA_ROPE_TYPE_NORM`).
    Normal,
    /// The two halves of the head `(i, i + d/2)` (`LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// The gated feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up`.
    SwiGlu,
    /// `gelu_tanh(gate) * up`.
    GeGlu,
}

/// The ways an architecture departs from the plain llama block. Each architecture file fills
/// one of these in; the forward pass reads only these flags and the hyperparameters.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    pub rope: RopeKind,
    pub activation: Activation,
    /// Multiply token embeddings by √n_embd (gemma).
    pub scale_embeddings: bool,
    /// Per-head RMSNorm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMSNorm after attention and after the FFN, before the residual add (gemma 2/3).
    pub post_norms: bool,
    /// Q/K/V projections carry biases (qwen2).
    pub qkv_bias: bool,
    /// Default rope base when the file sets none.
    pub default_rope_base: f32,
    /// Multiply Q by `attn_scale` in f32 before attention, which then scales by 1 (gemma, as in
    /// llama.cpp's graph); otherwise attention scales each score by `attn_scale`.
    pub scale_q_before_attention: bool,
}
