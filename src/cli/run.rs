//! `nib run`: generate text from a prompt, streamed to stdout, stats on stderr.

use super::common::{read_prompt, ModelArgs, SamplerArgs};
use crate::chat::{ChatTemplate, Message};
use crate::generate::{generate, CachedTokens, GenerateParams};
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
    /// Tokens to generate (-1: until the end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    /// Stop when this text appears (repeatable); it is cut from the output.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long = "system", visible_alias = "sys")]
    pub system: Option<String>,
    /// Chat template: a built-in name (chatml, gemma, llama3, llama2) or a Jinja file.
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
    /// Print the prompt before the generated text.
    #[arg(long)]
    pub echo: bool,
    /// Print one JSON object (text, tokens, timings, stop reason) instead of streaming.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

/// The prompt `nib run` evaluates: its text (the chat template's rendering with `--chat`) and
/// tokens. Chat prompts carry special tokens as text and are tokenized with special-token
/// parsing; plain prompts are tokenized as text.
pub fn build_prompt(
    args: &RunArgs,
    text: &str,
    gguf: &Gguf,
    tok: &Tokenizer,
) -> Result<(String, Vec<u32>)> {
    let prompt_text = if args.chat {
        let tmpl = ChatTemplate::from_gguf(gguf, args.chat_template.as_deref())?;
        let mut msgs = Vec::new();
        if let Some(s) = &args.system {
            msgs.push(Message::system(s.as_str()));
        }
        msgs.push(Message::user(text));
        tmpl.render(&msgs, true)?
    } else {
        text.to_string()
    };
    let tokens = tok.tokenize(&prompt_text, true, args.chat);
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
    let gen = GenerateParams {
        n_predict: (args.n_predict >= 0).then_some(args.n_predict as usize),
        stop: args.stop.clone(),
    };
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
        &mut |s| {
            if json_mode {
                return true;
            }
            match stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => true,
                Err(e) => {
                    write_err = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if json_mode {
        let v = json!({
            "text": out.text,
            "tokens": out.tokens,
            "prompt_tokens": prompt.len(),
            "stop_reason": out.stop.name(),
            "stop_string": match &out.stop { crate::generate::StopReason::StopString(s) => Some(s.clone()), _ => None },
            "seed": sampler.seed(),
            "timings": {
                "load_ms": loaded.load_seconds * 1e3,
                "prompt_n": out.n_prompt,
                "prompt_ms": out.prompt_seconds * 1e3,
                "prompt_per_second": out.prompt_tps(),
                "predicted_n": out.tokens.len(),
                "predicted_ms": out.gen_seconds * 1e3,
                "predicted_per_second": out.gen_tps(),
            }
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
