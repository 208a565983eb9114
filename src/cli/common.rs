//! What the subcommands share: their options for the model, its loading, sampling, generation and
//! chat template, finding the model file, reading the prompt, streaming text out. Loading itself
//! is [`crate::runtime`]'s.

use crate::chat::ChatTemplate;
use crate::generate::GenerateParams;
use crate::gguf::Gguf;
use crate::model::{Context, KvType, LoadOptions, Model};
use crate::runtime::{init_threads, ContextOptions, Loaded};
use crate::sample::{SamplerOverrides, SamplerParams};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The model nib uses when `-m` is not given.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where a model comes from and how it is run.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file [default: SmolLM2-135M-Instruct.Q4_1.gguf under $NIB_MODELS or ./models].
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Threads for matrix products and attention [default: number of CPUs].
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Context size in tokens [default: 4096, at most the model's training context].
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Tokens per batch when processing a prompt.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// KV cache element type: f16 or f32.
    #[arg(long = "kv-type", default_value = "f16", value_parser = parse_kv_type)]
    pub kv_type: KvType,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How a model file is loaded.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Read the model into memory instead of mapping it.
    #[arg(long)]
    pub no_mmap: bool,
    /// Lock the model's pages in memory (needs a high enough `ulimit -l`).
    #[arg(long)]
    pub mlock: bool,
    /// Keep the weights in the file's layout (by default the rows of Q4_0, Q4_1, Q5_0, Q5_1 and
    /// Q8_0 matrices are interleaved at load where the CPU's kernels read that faster; the
    /// results are the same). --no-repack is llama.cpp's name for this switch.
    #[arg(long, visible_alias = "no-repack")]
    pub no_interleave: bool,
}

impl LoadArgs {
    /// The loader's options.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            no_mmap: self.no_mmap,
            mlock: self.mlock,
            no_interleave: self.no_interleave,
        }
    }
}

fn parse_kv_type(s: &str) -> Result<KvType, String> {
    KvType::from_name(s).ok_or_else(|| format!("unknown KV cache type {s:?} (f16 or f32)"))
}

/// Sampling options, as llama.cpp names them. Unset options keep the model's recommendation
/// (`general.sampling.*`) or llama.cpp's default.
#[derive(Args, Debug, Clone, Default)]
pub struct SamplerArgs {
    /// Temperature (0: greedy) [default: 0.8].
    #[arg(long)]
    pub temp: Option<f32>,
    /// Top-k (0: off) [default: 40].
    #[arg(long = "top-k")]
    pub top_k: Option<usize>,
    /// Top-p (1.0: off) [default: 0.95].
    #[arg(long = "top-p")]
    pub top_p: Option<f32>,
    /// Min-p (0.0: off) [default: 0.05].
    #[arg(long = "min-p")]
    pub min_p: Option<f32>,
    /// Repetition penalty (1.0: off) [default: 1.0].
    #[arg(long = "repeat-penalty")]
    pub repeat_penalty: Option<f32>,
    /// Tokens the penalties look back over (-1: all) [default: 64].
    #[arg(long = "repeat-last-n", allow_hyphen_values = true)]
    pub repeat_last_n: Option<i64>,
    /// Frequency penalty [default: 0.0].
    #[arg(long = "frequency-penalty")]
    pub frequency_penalty: Option<f32>,
    /// Presence penalty [default: 0.0].
    #[arg(long = "presence-penalty")]
    pub presence_penalty: Option<f32>,
    /// Random seed (-1: pick one and print it) [default: random].
    #[arg(long, allow_hyphen_values = true)]
    pub seed: Option<i64>,
}

impl SamplerArgs {
    /// The user's settings as overrides.
    pub fn overrides(&self) -> SamplerOverrides {
        SamplerOverrides {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self
                .repeat_last_n
                .map(|n| if n < 0 { usize::MAX } else { n as usize }),
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed: self.seed.filter(|&s| s >= 0).map(|s| s as u64),
            logit_bias: Vec::new(),
        }
    }

    /// Defaults, then the model's `general.sampling.*`, then the user's settings.
    pub fn params(&self, model: &Model) -> Result<SamplerParams> {
        SamplerParams::for_model(&model.gguf, model.hp.n_vocab, &self.overrides())
    }
}

/// How much to generate and where to stop (`nib run`, `nib chat`, `nib batch`).
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Tokens to generate (-1: until the end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    /// Stop when this text appears (repeatable); it is cut from the output.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl GenArgs {
    /// `-n` as a limit (`None`: none).
    pub fn limit(&self) -> Option<usize> {
        (self.n_predict >= 0).then_some(self.n_predict as usize)
    }

    /// The limits of a generation.
    pub fn params(&self) -> GenerateParams {
        GenerateParams {
            n_predict: self.limit(),
            stop: self.stop.clone(),
        }
    }
}

/// The system message and the chat template (`nib run --chat`, `nib chat`, `nib batch`).
#[derive(Args, Debug, Clone)]
pub struct TemplateArgs {
    /// System message (with --chat).
    #[arg(long = "system", visible_alias = "sys")]
    pub system: Option<String>,
    /// Chat template: a built-in name (chatml, gemma, llama3, llama2) or a Jinja file.
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
}

impl TemplateArgs {
    /// `--chat-template`, else the model's template.
    pub fn template(&self, gguf: &Gguf) -> Result<ChatTemplate> {
        ChatTemplate::from_gguf(gguf, self.chat_template.as_deref())
    }
}

/// Resolve `-m`, or find the default model.
pub fn model_path(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        if !p.exists() {
            bail!("model file {} does not exist", p.display());
        }
        return Ok(p.to_path_buf());
    }
    // $NIB_MODELS, when set, is the only place looked in; else ./models, then the repository's
    // models/ next to the binary (target/release/nib → <repo>/models).
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("NIB_MODELS") {
        candidates.push(PathBuf::from(dir).join(DEFAULT_MODEL));
    } else {
        candidates.push(PathBuf::from("models").join(DEFAULT_MODEL));
        if let Ok(exe) = std::env::current_exe() {
            if let Some(repo) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
                candidates.push(repo.join("models").join(DEFAULT_MODEL));
            }
        }
    }
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        anyhow!(
            "no model given (-m) and the default model {DEFAULT_MODEL} was not found (looked in {}); fetch it with tools/fetch-models.sh",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

impl ModelArgs {
    /// Size the thread pool, load the model and build the tokenizer.
    pub fn load(&self) -> Result<Loaded> {
        let threads = init_threads(self.threads)?;
        let path = model_path(self.model.as_deref())?;
        Loaded::load(&path, &self.load.options(), threads)
    }

    /// How contexts are made.
    pub fn context_options(&self) -> ContextOptions {
        ContextOptions {
            ctx_size: self.ctx_size,
            batch_size: self.batch_size,
            kv_type: self.kv_type,
        }
    }

    /// A fresh context for `model`.
    pub fn context(&self, model: &Arc<Model>) -> Result<Context> {
        self.context_options().context(model)
    }
}

/// Write a piece of streamed text and flush it: whether that worked (on an error, which is kept
/// in `err`, generation should stop).
pub fn write_streamed(out: &mut impl Write, text: &str, err: &mut Option<std::io::Error>) -> bool {
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            *err = Some(e);
            false
        }
    }
}

/// Input text as UTF-8, or an error naming `what` and the byte offset of the first invalid
/// byte. Every text nib reads from a file or a pipe (`-f`, `nib batch`'s input, `nib tokenize
/// -f`/`--stdin`, `nib perplexity -f`) goes through this: invalid UTF-8 is refused the same way
/// everywhere, never replaced silently.
pub fn utf8_text(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let byte = e.as_bytes()[at];
        anyhow!("{what} is not valid UTF-8: byte 0x{byte:02x} at offset {at} (bytes from 0)")
    })
}

/// Read the prompt from `-p` or `-f` (exactly one).
pub fn read_prompt(prompt: Option<&str>, file: Option<&Path>) -> Result<String> {
    match (prompt, file) {
        (Some(p), None) => Ok(p.to_string()),
        (None, Some(f)) => utf8_text(
            std::fs::read(f).with_context(|| format!("reading prompt file {}", f.display()))?,
            &format!("prompt file {}", f.display()),
        ),
        (Some(_), Some(_)) => bail!("give the prompt with -p or -f, not both"),
        (None, None) => bail!("no prompt: give one with -p TEXT or -f FILE"),
    }
}
