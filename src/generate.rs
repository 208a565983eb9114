//! The generation loop: prompt tokens through the model, then sample → stream → feed back, until
//! an end-of-generation token, the token limit, a full context, a stop string or the caller says
//! stop. Shared by `nib run`, `nib chat`, `nib batch` and the server.

use crate::model::{Context, Logits};
use crate::sample::{Sampler, StopMatcher};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use anyhow::Result;
use std::time::Instant;

/// Why generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `n_predict` tokens were generated.
    Length,
    /// The context window is full.
    ContextFull,
    /// A user stop string appeared (it is cut from the text).
    StopString(String),
    /// The caller asked to stop (Ctrl-C, a client gone).
    Cancelled,
}

impl StopReason {
    /// The name used in `--json` output and OpenAI's `finish_reason` mapping.
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::EndOfGeneration => "eog",
            StopReason::Length => "length",
            StopReason::ContextFull => "context_full",
            StopReason::StopString(_) => "stop_string",
            StopReason::Cancelled => "cancelled",
        }
    }

    /// OpenAI's `finish_reason`: `stop` for a natural end, `length` for a limit.
    pub fn finish_reason(&self) -> &'static str {
        match self {
            StopReason::EndOfGeneration | StopReason::StopString(_) | StopReason::Cancelled => {
                "stop"
            }
            StopReason::Length | StopReason::ContextFull => "length",
        }
    }
}

/// Limits of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenerateParams {
    /// Most tokens to generate; `None`: until the context is full.
    pub n_predict: Option<usize>,
    /// Stop strings, cut from the output.
    pub stop: Vec<String>,
}

/// What a generation did, with timings.
#[derive(Clone, Debug)]
pub struct GenerateOutput {
    pub text: String,
    /// Tokens generated (the end-of-generation token included when there was one).
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    /// Prompt tokens evaluated by this call (those already in the cache are not counted).
    pub n_prompt: usize,
    pub prompt_seconds: f64,
    pub gen_seconds: f64,
}

impl GenerateOutput {
    pub fn prompt_tps(&self) -> f64 {
        rate(self.n_prompt, self.prompt_seconds)
    }

    pub fn gen_tps(&self) -> f64 {
        rate(self.tokens.len(), self.gen_seconds)
    }

    /// The counts and timings of llama-server's `timings` object (`nib run --json` and
    /// `nib batch` add their own).
    pub fn timings(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("prompt_n".into(), self.n_prompt.into());
        m.insert("prompt_ms".into(), (self.prompt_seconds * 1e3).into());
        m.insert("prompt_per_second".into(), self.prompt_tps().into());
        m.insert("predicted_n".into(), self.tokens.len().into());
        m.insert("predicted_ms".into(), (self.gen_seconds * 1e3).into());
        m.insert("predicted_per_second".into(), self.gen_tps().into());
        m
    }

    /// Two lines of stats for stderr, like llama.cpp's timings.
    pub fn stats_line(&self) -> String {
        format!(
            "prompt: {} tokens in {:.2} s ({:.1} t/s) | generation: {} tokens in {:.2} s ({:.1} t/s) | stop: {}",
            self.n_prompt,
            self.prompt_seconds,
            self.prompt_tps(),
            self.tokens.len(),
            self.gen_seconds,
            self.gen_tps(),
            self.stop.name()
        )
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// A conversation's state in a context: the tokens the KV cache holds, so a new prompt that
/// extends them only evaluates what is new (chat turns, server prompt caching).
#[derive(Default, Clone, Debug)]
pub struct CachedTokens {
    pub tokens: Vec<u32>,
}

impl CachedTokens {
    /// Make `ctx` hold a prefix of `prompt`, returning the part still to evaluate. At least one
    /// token is always left to evaluate, so there are fresh logits to sample from.
    pub fn reuse<'p>(&mut self, ctx: &mut Context, prompt: &'p [u32]) -> &'p [u32] {
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common.min(prompt.len().saturating_sub(1)).min(ctx.n_past());
        ctx.truncate(keep);
        self.tokens.truncate(keep);
        &prompt[keep..]
    }
}

/// How a generation evaluates tokens on its context: each call leaves the logits of the last
/// token in [`Context::last_logits`].
pub trait Evaluator {
    /// The prompt's tokens (not yet in the context) at the next positions.
    fn prompt(&mut self, ctx: &mut Context, tokens: &[u32]) -> Result<()>;
    /// One generated token at the next position.
    fn decode(&mut self, ctx: &mut Context, token: u32) -> Result<()>;
}

/// Evaluation on the context alone (what all but the server's batched slots use).
pub struct Direct;

impl Evaluator for Direct {
    fn prompt(&mut self, ctx: &mut Context, tokens: &[u32]) -> Result<()> {
        ctx.eval(tokens, Logits::Last).map(|_| ())
    }
    fn decode(&mut self, ctx: &mut Context, token: u32) -> Result<()> {
        ctx.eval(&[token], Logits::Last).map(|_| ())
    }
}

/// Generate from `prompt` (appended after whatever `cache` says the context already holds),
/// evaluating through `eval` ([`Direct`], or the server's batcher). `on_text` receives text as
/// it becomes final (valid UTF-8, stop strings held back and cut); returning `false` cancels.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    ctx: &mut Context,
    cache: &mut CachedTokens,
    tok: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    params: &GenerateParams,
    on_text: &mut dyn FnMut(&str) -> bool,
    eval: &mut dyn Evaluator,
) -> Result<GenerateOutput> {
    if prompt.is_empty() {
        anyhow::bail!("the prompt is empty (no tokens to start from)");
    }
    if prompt.len() > ctx.n_ctx() {
        anyhow::bail!(
            "the prompt is {} tokens but the context holds {} (raise -c/--ctx-size or shorten the prompt)",
            prompt.len(),
            ctx.n_ctx()
        );
    }
    let new = cache.reuse(ctx, prompt);
    for &t in prompt {
        sampler.accept(t);
    }

    let t0 = Instant::now();
    eval.prompt(ctx, new)?;
    let mut logits = ctx.last_logits().to_vec();
    cache.tokens.extend_from_slice(new);
    let prompt_seconds = t0.elapsed().as_secs_f64();

    let mut out = GenerateOutput {
        text: String::new(),
        tokens: Vec::new(),
        stop: StopReason::Length,
        n_prompt: new.len(),
        prompt_seconds,
        gen_seconds: 0.0,
    };
    let mut decoder = StreamDecoder::skipping_special();
    let mut stops = StopMatcher::new(params.stop.iter());
    let t1 = Instant::now();
    let mut emit = |s: &str, out: &mut GenerateOutput| -> bool {
        if s.is_empty() {
            return true;
        }
        out.text.push_str(s);
        on_text(s)
    };
    let stop = loop {
        if params.n_predict.is_some_and(|n| out.tokens.len() >= n) {
            break StopReason::Length;
        }
        let id = sampler.sample(&logits);
        sampler.accept(id);
        out.tokens.push(id);
        if tok.is_eog(id) {
            break StopReason::EndOfGeneration;
        }
        let piece = decoder.push(tok, id);
        let step = stops.push(&piece);
        if !emit(&step.text, &mut out) {
            break StopReason::Cancelled;
        }
        if let Some(s) = step.stop {
            break StopReason::StopString(s);
        }
        if ctx.n_past() >= ctx.n_ctx() {
            break StopReason::ContextFull;
        }
        if params.n_predict.is_some_and(|n| out.tokens.len() >= n) {
            break StopReason::Length;
        }
        eval.decode(ctx, id)?;
        logits.copy_from_slice(ctx.last_logits());
        cache.tokens.push(id);
    };
    if !matches!(stop, StopReason::StopString(_) | StopReason::Cancelled) {
        let rest = decoder.finish();
        let step = stops.push(&rest);
        emit(&step.text, &mut out);
        let tail = stops.finish();
        emit(&tail, &mut out);
    }
    out.stop = stop;
    out.gen_seconds = t1.elapsed().as_secs_f64();
    Ok(out)
}
