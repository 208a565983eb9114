//! `nib chat`: a multi-turn conversation in the terminal.
//!
//! Each turn re-renders the whole conversation with the chat template and hands it to
//! [`generate`] with the same [`CachedTokens`], so the KV cache keeps the common prefix and only
//! the new turn is evaluated. When the conversation no longer fits the context, the oldest
//! exchanges (a user message and its reply) are dropped; the system message stays.
//!
//! On a terminal: a `> ` prompt, replies streamed, per-turn stats on stderr, `/help` for the
//! commands, Ctrl-C stops a reply (at the prompt, or twice, it exits). With standard input not a
//! terminal: one message per line, each reply printed followed by a newline, nothing else on
//! stdout.

use super::common::{write_streamed, GenArgs, ModelArgs, SamplerArgs, TemplateArgs};
use crate::chat::Message;
use crate::generate::{generate, CachedTokens, Direct, StopReason};
use crate::sample::Sampler;
use anyhow::{anyhow, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args, Debug)]
#[command(
    mut_arg("system", |a| a.help("System message for the conversation (kept when old turns are dropped)")),
    mut_arg("n_predict", |a| a.help("Most tokens per reply (-1: until the model ends its turn or the context is full)")),
    mut_arg("stop", |a| a.help("Stop a reply when this text appears (repeatable); it is cut from the reply")),
)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub gen: GenArgs,
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

const HELP: &str = "\
commands:
  /help    this list
  /reset   start a new conversation (the system message stays)
  /exit    leave (also /quit, Ctrl-D, or Ctrl-C at the prompt)
Ctrl-C while a reply streams stops the reply. End a line with \\ to continue the message on the next line.";

/// The conversation: an optional system message and the turns after it, alternating user and
/// assistant, starting with a user message.
#[derive(Clone, Debug, Default)]
pub struct Conversation {
    pub system: Option<Message>,
    pub turns: Vec<Message>,
}

impl Conversation {
    /// Every message, the system message first.
    pub fn messages(&self) -> Vec<Message> {
        self.system.iter().chain(&self.turns).cloned().collect()
    }

    /// Drop the oldest exchanges until `count(messages)` (the prompt's length in tokens) plus
    /// `reserve` fits in `n_ctx`; the system message and the last user message always stay.
    /// Returns the prompt length and how many exchanges were dropped. Fails when the system
    /// message and the last message alone leave no room for a reply (the last message is then
    /// removed, so the conversation is as it was before it).
    pub fn fit(
        &mut self,
        n_ctx: usize,
        reserve: usize,
        count: &mut dyn FnMut(&[Message]) -> Result<usize>,
    ) -> Result<(usize, usize)> {
        let mut removed: Vec<Message> = Vec::new();
        // On failure: put the dropped exchanges back and take the new message out.
        let fail = |c: &mut Conversation, removed: Vec<Message>, e: anyhow::Error| {
            c.turns.splice(..0, removed);
            c.turns.pop();
            Err(e)
        };
        loop {
            let n = match count(&self.messages()) {
                Ok(n) => n,
                Err(e) => return fail(self, removed, e),
            };
            if n + reserve <= n_ctx || (self.turns.len() < 3 && n < n_ctx) {
                return Ok((n, removed.len() / 2));
            }
            if self.turns.len() < 3 {
                let e = anyhow!(
                    "the message is too long: the prompt would be {n} tokens and the context holds {n_ctx} (raise -c/--ctx-size)"
                );
                return fail(self, removed, e);
            }
            // The oldest user message and the reply to it.
            removed.extend(self.turns.drain(..2));
        }
    }
}

/// Room kept free for a reply when deciding whether old turns must go: `-n` if given, else a
/// quarter of the context; never more than half of it.
pub fn reply_reserve(n_predict: Option<usize>, n_ctx: usize) -> usize {
    n_predict.unwrap_or(n_ctx / 4).min(n_ctx / 2)
}

/// What a line of input asks for.
#[derive(Debug, PartialEq, Eq)]
enum Input<'a> {
    Message(&'a str),
    Exit,
    Reset,
    Help,
    Unknown(&'a str),
    Empty,
}

/// A line is a command when it is one word starting with `/`; anything else is a message.
fn parse_input(line: &str) -> Input<'_> {
    let t = line.trim();
    if t.is_empty() {
        return Input::Empty;
    }
    if !t.starts_with('/') || t.contains(char::is_whitespace) {
        return Input::Message(t);
    }
    match t {
        "/exit" | "/quit" | "/bye" => Input::Exit,
        "/reset" | "/clear" => Input::Reset,
        "/help" | "/?" => Input::Help,
        _ => Input::Unknown(t),
    }
}

/// Ctrl-C handling: while a reply streams, the first Ctrl-C sets `cancel`; at the prompt, or a
/// second time while a reply is being stopped, it exits with status 130.
struct Interrupt {
    cancel: Arc<AtomicBool>,
    at_prompt: Arc<AtomicBool>,
}

impl Interrupt {
    fn install() -> Result<Interrupt> {
        let cancel = Arc::new(AtomicBool::new(false));
        let at_prompt = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        {
            use signal_hook::consts::SIGINT;
            use signal_hook::iterator::Signals;
            let mut signals = Signals::new([SIGINT])?;
            let (c, p) = (Arc::clone(&cancel), Arc::clone(&at_prompt));
            std::thread::Builder::new()
                .name("nib-sigint".into())
                .spawn(move || {
                    for _ in signals.forever() {
                        if p.load(Ordering::SeqCst) || c.swap(true, Ordering::SeqCst) {
                            eprintln!();
                            std::process::exit(130);
                        }
                    }
                })?;
        }
        Ok(Interrupt { cancel, at_prompt })
    }
}

/// Read one message: a line, or on a terminal (`interactive`: a prompt is shown), lines ending
/// in `\` joined with newlines. `at_prompt` is set while waiting for input, so that Ctrl-C
/// exits there. `None` at the end of input.
fn read_message(
    input: &mut impl BufRead,
    at_prompt: Option<&AtomicBool>,
    interactive: bool,
) -> Result<Option<String>> {
    let set_at_prompt = |v: bool| {
        if let Some(f) = at_prompt {
            f.store(v, Ordering::SeqCst);
        }
    };
    let mut msg = String::new();
    let mut first = true;
    loop {
        if interactive {
            let mut out = std::io::stdout().lock();
            write!(out, "{}", if first { "> " } else { ". " })?;
            out.flush()?;
        }
        let mut raw = Vec::new();
        set_at_prompt(true);
        let n = input.read_until(b'\n', &mut raw);
        set_at_prompt(false);
        if n? == 0 {
            if interactive {
                println!();
            }
            return Ok((!first).then_some(msg));
        }
        // Refused as every text nib reads is, with the offset of the bad byte in the line.
        let line = super::common::utf8_text(raw, "the message")?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match line.strip_suffix('\\') {
            Some(head) if interactive => {
                msg.push_str(head);
                msg.push('\n');
                first = false;
            }
            _ => {
                msg.push_str(line);
                return Ok(Some(msg));
            }
        }
    }
}

pub fn run(args: &ChatArgs) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let dim = std::io::stderr().is_terminal();
    let loaded = args.model.load()?;
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let tmpl = args.template.template(&model.gguf)?;
    let mut ctx = args.model.context(model)?;
    let n_ctx = ctx.n_ctx();
    let params = args.sampling.params(model)?;
    let base_seed = Sampler::new(params.clone(), model.hp.n_vocab).seed();
    if args.sampling.seed == Some(-1) {
        eprintln!("seed: {base_seed}");
    }
    let gen = args.gen.params();
    let reserve = reply_reserve(gen.n_predict, n_ctx);
    eprintln!("nib: {}", loaded.summary(n_ctx));
    let intr = Interrupt::install()?;
    if interactive {
        let which = match tmpl.name() {
            "gguf" => "the model's chat template".to_string(),
            name => format!("chat template {name}"),
        };
        eprintln!("nib: chatting with {which}. /help for commands, /exit or Ctrl-D to leave, Ctrl-C stops a reply.");
    }
    let note = |s: &str| {
        if dim {
            eprintln!("\x1b[2mnib: {s}\x1b[0m");
        } else {
            eprintln!("nib: {s}");
        }
    };

    let mut conv = Conversation {
        system: args.template.system.as_deref().map(Message::system),
        turns: Vec::new(),
    };
    let mut cache = CachedTokens::default();
    let mut stdin = std::io::stdin().lock();
    let mut n_turn: u64 = 0;
    loop {
        let Some(line) = read_message(&mut stdin, Some(&intr.at_prompt), interactive)? else {
            break;
        };
        let text = match parse_input(&line) {
            Input::Empty => continue,
            Input::Exit => break,
            Input::Help => {
                eprintln!("{HELP}");
                continue;
            }
            Input::Reset => {
                conv.turns.clear();
                note("new conversation");
                continue;
            }
            Input::Unknown(c) => {
                eprintln!("nib: unknown command {c} (/help lists the commands)");
                continue;
            }
            Input::Message(_) => line.trim(),
        };
        conv.turns.push(Message::user(text));
        let mut prompt = Vec::new();
        let fitted = conv.fit(n_ctx, reserve, &mut |msgs| {
            prompt = tok.tokenize(&tmpl.render(msgs, true)?, true, true);
            Ok(prompt.len())
        });
        match fitted {
            Ok((_, 0)) => {}
            Ok((_, dropped)) => note(&format!(
                "the conversation no longer fits the context of {n_ctx} tokens: dropped the oldest {dropped} exchange{}",
                if dropped == 1 { "" } else { "s" }
            )),
            Err(e) => {
                eprintln!("error: {e:#}");
                continue;
            }
        }
        let mut p = params.clone();
        p.seed = Some(base_seed.wrapping_add(n_turn));
        n_turn += 1;
        let mut sampler = Sampler::new(p, model.hp.n_vocab);
        intr.cancel.store(false, Ordering::SeqCst);
        let mut stdout = std::io::stdout().lock();
        let mut write_err = None;
        let result = generate(
            &mut ctx,
            &mut cache,
            tok,
            &mut sampler,
            &prompt,
            &gen,
            &mut |s| {
                !intr.cancel.load(Ordering::SeqCst)
                    && write_streamed(&mut stdout, s, &mut write_err)
            },
            &mut Direct,
        );
        if let Some(e) = write_err {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                conv.turns.pop();
                drop(stdout);
                eprintln!("error: {e:#}");
                continue;
            }
        };
        match writeln!(stdout).and_then(|_| stdout.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r?,
        }
        drop(stdout);
        conv.turns.push(Message::assistant(out.text.as_str()));
        match out.stop {
            StopReason::Cancelled => note("reply stopped"),
            StopReason::ContextFull => note(&format!(
                "the reply filled the context of {n_ctx} tokens; older turns will be dropped"
            )),
            _ => {}
        }
        note(&format!(
            "{} | cached: {} | context: {}/{n_ctx}",
            out.stats_line(),
            prompt.len() - out.n_prompt,
            ctx.n_past()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompt's "tokens": one per character of every message.
    fn chars(msgs: &[Message]) -> Result<usize> {
        Ok(msgs.iter().map(|m| m.content.len()).sum())
    }

    fn conv(system: Option<&str>, turns: &[&str]) -> Conversation {
        Conversation {
            system: system.map(Message::system),
            turns: turns
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if i % 2 == 0 {
                        Message::user(*t)
                    } else {
                        Message::assistant(*t)
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn fit_keeps_a_conversation_that_fits() {
        let mut c = conv(Some("sys"), &["aaaa", "bbbb", "cc"]);
        assert_eq!(c.fit(20, 5, &mut chars).unwrap(), (13, 0));
        assert_eq!(c.turns.len(), 3);
    }

    #[test]
    fn fit_drops_oldest_exchanges_and_keeps_the_system_message() {
        let mut c = conv(Some("sys"), &["aaaa", "bbbb", "cccc", "dddd", "ee"]);
        // 3 + 18 = 21 tokens; with 5 reserved, 16 must hold them: drop one exchange (8) → 13.
        assert_eq!(c.fit(18, 5, &mut chars).unwrap(), (13, 1));
        assert_eq!(c.system, Some(Message::system("sys")));
        let contents: Vec<_> = c.turns.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["cccc", "dddd", "ee"]);
        assert_eq!(c.turns[0].role, "user");
        // Tighter: everything but the last message goes.
        assert_eq!(c.fit(10, 5, &mut chars).unwrap(), (5, 1));
        assert_eq!(c.turns, vec![Message::user("ee")]);
    }

    #[test]
    fn fit_lets_a_lone_message_use_the_reserve() {
        let mut c = conv(None, &["aaaaaaaa"]);
        assert_eq!(c.fit(10, 5, &mut chars).unwrap(), (8, 0));
    }

    #[test]
    fn fit_refuses_a_message_that_leaves_no_room_and_restores_the_conversation() {
        let mut c = conv(Some("sys"), &["aa", "bb", "cccccccccc"]);
        let e = c.fit(12, 2, &mut chars).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        let contents: Vec<_> = c.turns.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["aa", "bb"], "as before the message");
        let mut c = conv(None, &["aa", "bb"]);
        c.turns.push(Message::user("x".repeat(20)));
        assert!(c.fit(12, 2, &mut chars).is_err());
    }

    #[test]
    fn reserve_is_bounded() {
        assert_eq!(reply_reserve(None, 4096), 1024);
        assert_eq!(reply_reserve(Some(8), 4096), 8);
        assert_eq!(reply_reserve(Some(100_000), 4096), 2048);
    }

    #[test]
    fn commands_are_single_slash_words() {
        assert_eq!(parse_input("  /exit \n"), Input::Exit);
        assert_eq!(parse_input("/quit"), Input::Exit);
        assert_eq!(parse_input("/reset"), Input::Reset);
        assert_eq!(parse_input("/help"), Input::Help);
        assert_eq!(parse_input("/nope"), Input::Unknown("/nope"));
        assert_eq!(
            parse_input("/usr/bin is a directory?"),
            Input::Message("/usr/bin is a directory?")
        );
        assert_eq!(parse_input(" hi "), Input::Message("hi"));
        assert_eq!(parse_input(" \t"), Input::Empty);
    }

    #[test]
    fn pipe_input_is_one_message_per_line() {
        let mut r = std::io::Cursor::new("one\\\ntwo\r\n\nthree");
        for want in ["one\\", "two", "", "three"] {
            let got = read_message(&mut r, None, false).unwrap();
            assert_eq!(got.as_deref(), Some(want));
        }
        assert_eq!(read_message(&mut r, None, false).unwrap(), None);
    }

    #[test]
    fn invalid_utf8_in_a_message_is_refused_with_its_offset() {
        let mut r = std::io::Cursor::new(&b"ok\nab\xffc\n"[..]);
        assert_eq!(
            read_message(&mut r, None, false).unwrap().as_deref(),
            Some("ok")
        );
        let e = read_message(&mut r, None, false).unwrap_err().to_string();
        assert!(e.contains("not valid UTF-8: byte 0xff at offset 2"), "{e}");
    }
}
