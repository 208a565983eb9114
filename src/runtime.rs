//! Getting a model running, for every front end (the subcommands of [`crate::cli`] and the
//! server): sizing the thread pools, loading a model and its tokenizer, making contexts.

use crate::model::{Context, KvType, LoadOptions, Model};
use crate::tokenizer::Tokenizer;
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Check the kernel level asked for (`NIB_KERNELS`) and size the thread pools (once per
/// process); the thread count.
pub fn init_threads(threads: Option<usize>) -> Result<usize> {
    nib_simd::dispatch::requested_level()?;
    let n = threads.unwrap_or_else(crate::default_threads);
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // nib_simd's pool runs the hot loops (matrix products, attention); rayon serves coarse work
    // (model synthesis). A second call (tests) keeps the first sizes.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(nib_simd::pool::set_threads(n))
}

/// A model and its tokenizer, loaded.
pub struct Loaded {
    pub model: Arc<Model>,
    pub tokenizer: Arc<Tokenizer>,
    pub path: PathBuf,
    pub load_seconds: f64,
    pub threads: usize,
}

impl Loaded {
    /// Load the model at `path` and build its tokenizer (after [`init_threads`], whose count
    /// `threads` is).
    pub fn load(path: &Path, opts: &LoadOptions, threads: usize) -> Result<Loaded> {
        let t0 = Instant::now();
        let model = Model::load(path, opts)?;
        let tokenizer = Tokenizer::from_gguf(&model.gguf)
            .with_context(|| format!("tokenizer of {}", path.display()))?;
        let load_seconds = t0.elapsed().as_secs_f64();
        Ok(Loaded {
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            path: path.to_path_buf(),
            load_seconds,
            threads,
        })
    }

    /// The line subcommands print on stderr once the model is loaded.
    pub fn summary(&self, n_ctx: usize) -> String {
        format!(
            "loaded {} in {:.2} s ({}, {} threads, kernels {}, context {n_ctx})",
            self.path.display(),
            self.load_seconds,
            self.model.describe(),
            self.threads,
            nib_simd::kernels().level(),
        )
    }
}

/// How contexts are made: `-c`, `-b` and `--kv-type`.
#[derive(Clone, Copy, Debug)]
pub struct ContextOptions {
    /// Context size in tokens (`None` or 0: 4096, at most the model's training context).
    pub ctx_size: Option<usize>,
    /// Tokens per batch when processing a prompt.
    pub batch_size: usize,
    pub kv_type: KvType,
}

impl ContextOptions {
    /// The context size to use: `ctx_size`, else 4096, never more than the model was trained
    /// for unless asked (then with a warning).
    pub fn n_ctx(&self, model: &Model) -> Result<usize> {
        let train = model.hp.n_ctx_train.max(1);
        match self.ctx_size {
            Some(0) | None => Ok(4096.min(train)),
            Some(c) if c > train => {
                eprintln!(
                    "warning: context size {c} is larger than the model's training context {train}"
                );
                Ok(c)
            }
            Some(c) => Ok(c),
        }
    }

    /// A fresh context for `model`.
    pub fn context(&self, model: &Arc<Model>) -> Result<Context> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        Context::new(
            Arc::clone(model),
            self.n_ctx(model)?,
            self.batch_size,
            self.kv_type,
        )
    }
}
