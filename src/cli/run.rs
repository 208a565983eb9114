//! `nib run`: generate text from a prompt, streamed to stdout, stats on stderr.

use super::common::{read_prompt, write_streamed, GenArgs, ModelArgs, SamplerArgs, TemplateArgs};
use crate::chat::Message;
use crate::generate::{generate, CachedTokens, Direct};
use crate::gguf::Gguf;
use crate::sample::Sampler;
use crate::tokenizer::Tokenizer;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub gen: GenArgs,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Print the prompt before the generated text.
    #[arg(long)]
    pub echo: bool,
    /// Print one JSON object (text, tokens, timings, stop reason) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Tokenize special-token text in the prompt (`<|im_start|>`) as plain text. By default it
    /// becomes the special token, as llama-cli and llama-simple do with an operator's prompt
    /// (a --chat prompt's template text is always parsed).
    #[arg(long)]
    pub no_parse_special: bool,
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

/// The prompt `nib run` evaluates: its text (the chat template's rendering with `--chat`) and
/// tokens. The prompt is written by the operator, so special-token text in it (`<|im_start|>`)
/// is parsed into the special tokens, as llama-cli and llama-simple do, unless
/// `--no-parse-special`; chat prompts carry the template's special tokens as text and are always
/// parsed.
pub fn build_prompt(
    args: &RunArgs,
    text: &str,
    gguf: &Gguf,
    tok: &Tokenizer,
) -> Result<(String, Vec<u32>)> {
    let prompt_text = if args.chat {
        let tmpl = args.template.template(gguf)?;
        let mut msgs = Vec::new();
        if let Some(s) = &args.template.system {
            msgs.push(Message::system(s.as_str()));
        }
        msgs.push(Message::user(text));
        tmpl.render(&msgs, true)?
    } else {
        text.to_string()
    };
    let tokens = tok.tokenize(&prompt_text, true, args.chat || !args.no_parse_special);
    Ok((prompt_text, tokens))
}

pub fn run(args: &RunArgs) -> Result<()> {
    let text = read_prompt(args.prompt.as_deref(), args.file.as_deref())?;
    let loaded = args.model.load()?;
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let (prompt_text, prompt) = build_prompt(args, &text, &model.gguf, tok)?;
    let mut ctx = args.model.context(model)?;
    let params = args.sampling.params(model)?;
    let mut sampler = Sampler::new(params, model.hp.n_vocab);
    if args.sampling.seed == Some(-1) {
        eprintln!("seed: {}", sampler.seed());
    }
    let gen = args.gen.params();
    eprintln!("nib: {}", loaded.summary(ctx.n_ctx()));
    let mut stdout = std::io::stdout().lock();
    if args.echo && !args.json {
        write!(stdout, "{prompt_text}")?;
        stdout.flush()?;
    }
    let json_mode = args.json;
    let mut write_err = None;
    let out = generate(
        &mut ctx,
        &mut CachedTokens::default(),
        tok,
        &mut sampler,
        &prompt,
        &gen,
        &mut |s| json_mode || write_streamed(&mut stdout, s, &mut write_err),
        &mut Direct,
    )?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if json_mode {
        let mut timings = out.timings();
        timings.insert("load_ms".into(), json!(loaded.load_seconds * 1e3));
        let v = json!({
            "text": out.text,
            "tokens": out.tokens,
            "prompt_tokens": prompt.len(),
            "stop_reason": out.stop.name(),
            "stop_string": match &out.stop { crate::generate::StopReason::StopString(s) => Some(s.clone()), _ => None },
            "seed": sampler.seed(),
            "timings": timings,
        });
        writeln!(stdout, "{v}")?;
    } else {
        writeln!(stdout)?;
        if out.stop == crate::generate::StopReason::ContextFull {
            eprintln!(
                "nib: stopped: the context of {} tokens is full (raise -c/--ctx-size)",
                ctx.n_ctx()
            );
        }
        eprintln!("nib: {}", out.stats_line());
    }
    Ok(())
}
