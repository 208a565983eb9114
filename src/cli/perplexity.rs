//! `nib perplexity`: llama-perplexity's measurement of a model on a text file.

use super::common::ModelArgs;
use crate::perplexity::perplexity;
use anyhow::{Context as _, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to score.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Score at most this many chunks.
    #[arg(long = "chunks")]
    pub chunks: Option<usize>,
}

pub fn run(args: &PerplexityArgs) -> Result<()> {
    let text = super::common::utf8_text(
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?,
        &args.file.display().to_string(),
    )?;
    let mut margs = args.model.clone();
    let n_chunk_ctx = margs.ctx_size.unwrap_or(512);
    margs.ctx_size = Some(n_chunk_ctx);
    let loaded = margs.load()?;
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let mut ctx = margs.context(model)?;
    let t0 = Instant::now();
    let tokens = tok.tokenize(&text, true, false);
    eprintln!(
        "perplexity: {} tokens from {} in {:.2} s; chunks of {n_chunk_ctx}, scoring the second half of each",
        tokens.len(),
        args.file.display(),
        t0.elapsed().as_secs_f64()
    );
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let t1 = Instant::now();
    let mut out = std::io::stdout().lock();
    let st = perplexity(&mut ctx, &tokens, n_chunk_ctx, bos, args.chunks, &mut |s| {
        let _ = write!(out, "[{}]{:.4},", s.chunks, s.ppl());
        let _ = out.flush();
    })?;
    writeln!(out)?;
    writeln!(
        out,
        "Final estimate: PPL = {:.4} +/- {:.5}",
        st.ppl(),
        st.ppl_error()
    )?;
    eprintln!(
        "perplexity: {} chunks, {} scored tokens, {:.2} s ({:.1} tokens/s)",
        st.chunks,
        st.count,
        t1.elapsed().as_secs_f64(),
        (st.chunks * n_chunk_ctx) as f64 / t1.elapsed().as_secs_f64()
    );
    Ok(())
}
