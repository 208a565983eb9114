//! `nib synth`: write a random-weight model of a given architecture, shape and weight type.

use crate::gguf::Gguf;
use crate::model::Arch;
use crate::synth::{write_synthetic, Shape, SynthSpec};
use anyhow::{Context as _, Result};
use clap::Args;
use nib_simd::GgmlType;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Architecture: llama, qwen2, qwen3 or gemma3.
    #[arg(long, default_value = "llama")]
    pub arch: String,
    /// Shape: tiny, small, 1b or 7b.
    #[arg(long, default_value = "tiny")]
    pub shape: String,
    /// Number of layers, instead of the shape's (a wide model with few layers measures the
    /// speed of the shape's matrices in a fraction of the time).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Weight type of the layer matrices: q4_0, q8_0, q4_k, f16, ...
    #[arg(long = "type", default_value = "q8_0")]
    pub ty: String,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// GGUF file whose tokenizer (every `tokenizer.*` key) the model gets.
    #[arg(long = "vocab-from")]
    pub vocab_from: PathBuf,
    /// Training context length to record.
    #[arg(long = "ctx", default_value_t = 4096)]
    pub n_ctx: usize,
    /// Sliding window for gemma3 (0: none).
    #[arg(long = "sliding-window", default_value_t = 64)]
    pub sliding_window: usize,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

pub fn run(a: &SynthArgs) -> Result<()> {
    let arch = Arch::from_name(&a.arch)?;
    let mut shape = Shape::preset(&a.shape)?;
    if let Some(n) = a.layers {
        anyhow::ensure!(
            (1..=512).contains(&n),
            "--layers must be from 1 to 512, not {n}"
        );
        shape.n_layer = n;
    }
    let ty =
        GgmlType::from_name(&a.ty).with_context(|| format!("unknown weight type {:?}", a.ty))?;
    let vocab = Gguf::open(&a.vocab_from)?;
    let spec = SynthSpec {
        arch,
        shape,
        weight_type: ty,
        seed: a.seed,
        n_ctx_train: a.n_ctx,
        sliding_window: a.sliding_window,
    };
    let t0 = std::time::Instant::now();
    write_synthetic(&spec, &vocab, &a.output)?;
    eprintln!(
        "wrote {} ({} {} {}, seed {}) in {:.1} s",
        a.output.display(),
        a.arch,
        a.shape,
        ty,
        a.seed,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
