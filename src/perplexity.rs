//! Perplexity as llama-perplexity computes it: the text is tokenized once (BOS as the model
//! asks), cut into chunks of `n_ctx` tokens, each chunk evaluated from an empty cache with its
//! first token replaced by BOS when the model adds one, and only the second half of each chunk
//! scored (so every scored token has at least `n_ctx / 2` tokens of context).

use crate::model::{Context, Logits};
use anyhow::{bail, Result};

/// Running totals, as llama-perplexity keeps them.
#[derive(Clone, Debug, Default)]
pub struct PplState {
    pub nll: f64,
    pub nll2: f64,
    pub count: usize,
    pub chunks: usize,
}

impl PplState {
    /// Perplexity so far.
    pub fn ppl(&self) -> f64 {
        (self.nll / self.count as f64).exp()
    }

    /// llama-perplexity's ± estimate of the final perplexity.
    pub fn ppl_error(&self) -> f64 {
        let n = self.count as f64;
        let nll = self.nll / n;
        let var = self.nll2 / n - nll * nll;
        if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * self.ppl()
        } else {
            0.0
        }
    }
}

/// `-log softmax(logits)[tok]`, with the sum of exponentials in f64 as llama-perplexity.
pub fn neg_log_prob(logits: &[f32], tok: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    (max as f64) + sum.ln() - logits[tok as usize] as f64
}

/// Score `tokens` chunk by chunk; `on_chunk` sees the state after each chunk.
pub fn perplexity(
    ctx: &mut Context,
    tokens: &[u32],
    n_chunk_ctx: usize,
    bos: Option<u32>,
    max_chunks: Option<usize>,
    on_chunk: &mut dyn FnMut(&PplState),
) -> Result<PplState> {
    if n_chunk_ctx < 4 {
        bail!("the perplexity context must be at least 4 tokens");
    }
    if n_chunk_ctx > ctx.n_ctx() {
        bail!(
            "the chunk size {n_chunk_ctx} exceeds the context size {}",
            ctx.n_ctx()
        );
    }
    if tokens.len() < 2 * n_chunk_ctx {
        bail!(
            "you need at least {} tokens to evaluate perplexity with a context of {n_chunk_ctx}; the text has {}",
            2 * n_chunk_ctx,
            tokens.len()
        );
    }
    let n_vocab = ctx.model.hp.n_vocab;
    let mut n_chunks = tokens.len() / n_chunk_ctx;
    if let Some(m) = max_chunks {
        n_chunks = n_chunks.min(m.max(1));
    }
    let first = n_chunk_ctx / 2;
    let mut st = PplState::default();
    let mut chunk = vec![0u32; n_chunk_ctx];
    for i in 0..n_chunks {
        chunk.copy_from_slice(&tokens[i * n_chunk_ctx..(i + 1) * n_chunk_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        ctx.clear();
        let logits = ctx.eval(&chunk, Logits::All)?;
        for j in first..n_chunk_ctx - 1 {
            // Logits at position j predict the original token at j + 1.
            let target = tokens[i * n_chunk_ctx + j + 1];
            let v = neg_log_prob(&logits[j * n_vocab..(j + 1) * n_vocab], target);
            st.nll += v;
            st.nll2 += v * v;
        }
        st.count += n_chunk_ctx - first - 1;
        st.chunks += 1;
        on_chunk(&st);
    }
    Ok(st)
}
