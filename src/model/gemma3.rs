//! `gemma3`: embeddings scaled by √n_embd; RMSNorm before and after both attention and the FFN
//! (the file's norm weights already include gemma's +1); per-head RMSNorm on Q and K; GELU-gated
//! FFN; NeoX RoPE; sliding-window attention on 5 of every 6 layers with rope base 10,000 there and
//! `rope.freq_base` on the global layers; queries scaled by 1/√head_dim; optional final softcap.

use super::hparams::limits;
use super::{Activation, ArchSpec, Hparams, RopeKind};
use crate::gguf::Gguf;
use anyhow::{bail, Result};

pub const SPEC: ArchSpec = ArchSpec {
    rope: RopeKind::Neox,
    activation: Activation::GeGlu,
    scale_embeddings: true,
    qk_norm: true,
    post_norms: true,
    qkv_bias: false,
    default_rope_base: 10_000.0,
    scale_q_before_attention: true,
};

/// Sliding-window layout and per-layer rope bases.
/// The window and the pattern are bounded ([`limits`]) like every other hyperparameter; the
/// per-layer flags are sized from the (already checked) layer count.
pub fn adjust_hparams(g: &Gguf, hp: &mut Hparams) -> Result<()> {
    let bounded = |key: &str, default: usize, hi: usize| -> Result<usize> {
        match g.opt_u32(key)? {
            Some(v) if v as usize > hi => {
                bail!("hyperparameter {key} = {v} is out of range (expected 0 to {hi})")
            }
            Some(v) => Ok(v as usize),
            None => Ok(default),
        }
    };
    let n_swa = bounded("gemma3.attention.sliding_window", 0, limits::MAX_CTX)?;
    if n_swa > 0 {
        hp.n_swa = n_swa;
        // Every `pattern`-th layer (the last of each group) is global; the rest slide.
        let pattern = bounded(
            "gemma3.attention.sliding_window_pattern",
            6,
            limits::MAX_LAYERS,
        )?;
        hp.swa_layers = (0..hp.n_layer)
            .map(|il| pattern == 0 || il % pattern < pattern - 1)
            .collect();
        hp.rope_base_swa = match g.opt_f32("gemma3.rope.freq_base_swa")? {
            Some(b) if !(b.is_finite() && b > 0.0) => bail!(
                "hyperparameter gemma3.rope.freq_base_swa = {b} is out of range (expected a positive number)"
            ),
            Some(b) => b,
            None => 10_000.0,
        };
    }
    // gemma-3 27B scales queries by 1/sqrt(n_embd / n_head); the others by 1/sqrt(head_dim).
    hp.attn_scale = if hp.n_layer == 62 {
        1.0 / ((hp.n_embd / hp.n_head) as f32).sqrt()
    } else {
        1.0 / (hp.head_dim as f32).sqrt()
    };
    Ok(())
}
