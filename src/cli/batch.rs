//! `nib batch`: run the requests of a JSON Lines file and append one result line each to the
//! output, resuming where an earlier run stopped. The formats and rules are in [`crate::batch`].

use super::common::{utf8_text, GenArgs, ModelArgs, SamplerArgs, TemplateArgs};
use crate::batch::{error_value, parse_line, result_value, scan_results, Input, Request};
use crate::chat::{ChatTemplate, Message};
use crate::generate::{generate, CachedTokens, Direct, GenerateParams};
use crate::sample::Sampler;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(
    mut_arg("n_predict", |a| a.help("Tokens to generate per request unless it gives \"max_tokens\" (-1: until the end of generation or a full context)")),
    mut_arg("stop", |a| a.help("Stop strings for requests that give no \"stop\" (repeatable)")),
    mut_arg("system", |a| a.help("System message for requests rendered with the chat template (--chat, or \"messages\" without one of their own)")),
)]
pub struct BatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Requests, one JSON object per line ("-": standard input):
    /// {"id", "prompt" | "messages", and the settings of `nib serve`'s requests: "max_tokens",
    /// "temperature", "top_k", "top_p", "min_p", "seed", "stop", "logit_bias", ...}.
    #[arg(short = 'i', long = "input")]
    pub input: PathBuf,
    /// Results, one JSON object per line, appended as each request finishes; ids already in the
    /// file are skipped, so rerunning after an interruption picks up where it stopped.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    #[command(flatten)]
    pub gen: GenArgs,
    /// Treat each "prompt" as a user message in the chat template.
    #[arg(long)]
    pub chat: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

/// A line of input that is a request (or a request that is refused).
struct Pending {
    line: usize,
    id: Value,
    request: std::result::Result<Request, String>,
}

fn read_input(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading requests from standard input")?;
        utf8_text(bytes, "the requests on standard input")
    } else {
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("reading requests from {}", path.display()))?;
        utf8_text(bytes, &format!("the requests in {}", path.display()))
    }
}

/// Result lines written between two `fsync`s of the output (and one at the end): a crash of the
/// machine loses at most these; a killed process loses nothing written.
const SYNC_EVERY: usize = 16;

/// The output file, locked for this run, and how many lines were written since the last sync.
struct Output {
    file: File,
    unsynced: usize,
}

impl Output {
    /// Append one result line (one write, so a kill leaves at most one incomplete line, which
    /// a rerun cuts), and sync every [`SYNC_EVERY`] lines.
    fn write_line(&mut self, v: &Value) -> Result<()> {
        let mut line = crate::batch::to_line(v);
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Put every line written so far on disk.
    fn sync(&mut self) -> Result<()> {
        if self.unsynced > 0 {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

/// Take an exclusive lock on the output (`flock`), without waiting: a second `nib batch` on the
/// same file fails at once instead of running every request again next to the first. The lock
/// goes with the file descriptor, so it is released however the process ends.
#[cfg(unix)]
fn lock_output(f: &File, path: &Path) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this `File` owns and keeps open for the call; it touches no
    // memory.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!(
                "{} is in use by another nib batch (it holds the file's lock); wait for it to finish or choose another --output",
                path.display()
            );
        }
        return Err(e).with_context(|| format!("locking {}", path.display()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn lock_output(_f: &File, _path: &Path) -> Result<()> {
    Ok(())
}

/// Open and lock the output, cut an incomplete last line, and position for appending; the ids
/// done. The file is read through the locked descriptor, so what is scanned is what this run
/// appends to.
fn open_output(path: &Path) -> Result<(Output, crate::batch::Resume)> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    lock_output(&f, path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let resume = scan_results(&bytes);
    for l in &resume.bad_lines {
        eprintln!(
            "nib: warning: {}:{l} is not a result line; ignored",
            path.display()
        );
    }
    if resume.keep < bytes.len() {
        eprintln!(
            "nib: {}: cut an incomplete last line ({} bytes, from an interrupted run); its request runs again",
            path.display(),
            bytes.len() - resume.keep
        );
        f.set_len(resume.keep as u64)
            .with_context(|| format!("truncating {}", path.display()))?;
        f.sync_data()
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    if resume.needs_newline {
        f.write_all(b"\n")?;
    }
    Ok((
        Output {
            file: f,
            unsynced: 0,
        },
        resume,
    ))
}

pub fn run(args: &BatchArgs) -> Result<()> {
    let text = read_input(&args.input)?;
    let (mut out_file, resume) = open_output(&args.output)?;

    // Parse everything first: malformed lines are reported before any work.
    let mut malformed = 0usize;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut pending = Vec::new();
    let mut n_requests = 0usize;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (id, request) = match parse_line(line) {
            Ok((r, unknown)) => {
                for f in unknown {
                    eprintln!("nib: warning: line {lineno}: unknown field {f:?} ignored");
                }
                (r.id.clone(), Ok(r))
            }
            Err(e) => match e.id {
                Some(id) => (id, Err(e.message)),
                None => {
                    eprintln!("nib: line {lineno}: {}; skipped", e.message);
                    malformed += 1;
                    continue;
                }
            },
        };
        let key = crate::batch::id_key(&id);
        if let Some(first) = seen.insert(key.clone(), lineno) {
            eprintln!("nib: line {lineno}: id {key} repeats line {first}'s; skipped");
            seen.insert(key, first);
            malformed += 1;
            continue;
        }
        n_requests += 1;
        if !resume.done.contains(&key) {
            pending.push(Pending {
                line: lineno,
                id,
                request,
            });
        }
    }
    eprintln!(
        "nib: {n_requests} requests in {}, {} already in {}, {} to run",
        args.input.display(),
        n_requests - pending.len(),
        args.output.display(),
        pending.len()
    );
    let mut failed = 0usize;
    if !pending.is_empty() {
        let r = run_pending(args, &pending, &mut out_file);
        // What was written is synced however the run ended.
        let synced = out_file
            .sync()
            .with_context(|| format!("syncing {}", args.output.display()));
        failed = r?;
        synced?;
    }
    if malformed + failed > 0 {
        bail!(
            "{malformed} malformed line{} skipped, {failed} request{} failed (see above and the error lines in {})",
            if malformed == 1 { "" } else { "s" },
            if failed == 1 { "" } else { "s" },
            args.output.display()
        );
    }
    Ok(())
}

/// Run the requests, writing a line each; the number that failed.
fn run_pending(args: &BatchArgs, pending: &[Pending], out_file: &mut Output) -> Result<usize> {
    let loaded = args.model.load()?;
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let mut ctx = args.model.context(model)?;
    eprintln!("nib: {}", loaded.summary(ctx.n_ctx()));
    let base = args.sampling.params(model)?;
    let mut template: Option<ChatTemplate> = None;
    let mut cache = CachedTokens::default();

    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(pending.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    } else {
        ProgressBar::hidden()
    };
    let log = |s: String| {
        if bar.is_hidden() {
            eprintln!("{s}");
        } else {
            bar.println(s);
        }
    };
    let (mut failed, mut n_gen, mut gen_seconds) = (0usize, 0usize, 0f64);
    let (t0, mut last_report) = (Instant::now(), Instant::now());
    for (done, p) in pending.iter().enumerate() {
        let outcome = p.request.clone().map_err(anyhow::Error::msg).and_then(|r| {
            let mut params = base.clone();
            r.overrides.apply(&mut params);
            params.validate(model.hp.n_vocab)?;
            let mut chat = |msgs: Vec<Message>| -> Result<Vec<u32>> {
                if template.is_none() {
                    template = Some(args.template.template(&model.gguf)?);
                }
                let tmpl = template.as_ref().expect("just set");
                let mut all = Vec::new();
                if let Some(s) = &args.template.system {
                    if msgs.first().is_none_or(|m| m.role != "system") {
                        all.push(Message::system(s.as_str()));
                    }
                }
                all.extend(msgs);
                Ok(tok.tokenize(&tmpl.render(&all, true)?, true, true))
            };
            let prompt = match r.input {
                Input::Prompt(text) if args.chat => chat(vec![Message::user(text)])?,
                // As `/v1/completions`: special-token text in the prompt is parsed.
                Input::Prompt(text) => tok.tokenize(&text, true, true),
                Input::Tokens(ids) => ids,
                Input::Messages(msgs) => chat(msgs)?,
            };
            let gen = GenerateParams {
                n_predict: r.max_tokens.or(args.gen.limit()),
                stop: r.stop.clone().unwrap_or_else(|| args.gen.stop.clone()),
            };
            let mut sampler = Sampler::new(params, model.hp.n_vocab);
            let out = generate(
                &mut ctx,
                &mut cache,
                tok,
                &mut sampler,
                &prompt,
                &gen,
                &mut |_| true,
                &mut Direct,
            )?;
            Ok((out, prompt.len(), sampler.seed()))
        });
        let line = match outcome {
            Ok((out, n_prompt, seed)) => {
                n_gen += out.tokens.len();
                gen_seconds += out.gen_seconds;
                result_value(&p.id, &out, n_prompt, seed)
            }
            Err(e) => {
                failed += 1;
                log(format!("nib: line {} (id {}): {e:#}", p.line, p.id));
                error_value(&p.id, &format!("{e:#}"))
            }
        };
        out_file
            .write_line(&line)
            .with_context(|| format!("writing {}", args.output.display()))?;
        bar.inc(1);
        if gen_seconds > 0.0 {
            bar.set_message(format!("{:.1} t/s", n_gen as f64 / gen_seconds));
        }
        if bar.is_hidden() && last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let (n, total) = (done + 1, pending.len());
            let eta = t0.elapsed().as_secs_f64() / n as f64 * (total - n) as f64;
            eprintln!("nib: {n}/{total} done, about {eta:.0} s left");
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "nib: {} requests in {:.1} s ({} failed), {n_gen} tokens generated ({:.1} t/s)",
        pending.len(),
        t0.elapsed().as_secs_f64(),
        failed,
        if gen_seconds > 0.0 {
            n_gen as f64 / gen_seconds
        } else {
            0.0
        }
    );
    Ok(failed)
}
