//! `qwen2` (Qwen 2 / 2.5): the llama block with biases on Q, K and V and RoPE over the two
//! halves of each head (NeoX style); rope base 1e6 in the released models (read from the file).

use super::{Activation, ArchSpec, RopeKind};

pub const SPEC: ArchSpec = ArchSpec {
    rope: RopeKind::Neox,
    activation: Activation::SwiGlu,
    scale_embeddings: false,
    qk_norm: false,
    post_norms: false,
    qkv_bias: true,
    default_rope_base: 10_000.0,
    scale_q_before_attention: false,
};
