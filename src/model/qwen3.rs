//! `qwen3`: the llama block with a per-head RMSNorm on Q and K before RoPE, no biases, and NeoX
//! RoPE.

use super::{Activation, ArchSpec, RopeKind};

pub const SPEC: ArchSpec = ArchSpec {
    rope: RopeKind::Neox,
    activation: Activation::SwiGlu,
    scale_embeddings: false,
    qk_norm: true,
    post_norms: false,
    qkv_bias: false,
    default_rope_base: 10_000.0,
    scale_q_before_attention: false,
};
