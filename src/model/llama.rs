//! `llama`: the plain block (Llama 2/3, SmolLM, TinyLlama, Mistral). RMSNorm → Q/K/V →
//! RoPE on adjacent pairs → grouped-query attention → output projection → residual; RMSNorm →
//! SwiGLU feed-forward → residual. Llama 3's `rope_freqs` and linear/YaRN scaling are honoured.

use super::{Activation, ArchSpec, RopeKind};

pub const SPEC: ArchSpec = ArchSpec {
    rope: RopeKind::Normal,
    activation: Activation::SwiGlu,
    scale_embeddings: false,
    qk_norm: false,
    post_norms: false,
    qkv_bias: false,
    default_rope_base: 10_000.0,
    scale_q_before_attention: false,
};
