//! `nib serve`: an OpenAI-compatible HTTP server, shaped like llama.cpp's llama-server.
//!
//! - HTTP is axum on a small tokio runtime (two worker threads: they only parse, route and
//!   stream). Prompt rendering and tokenization run on tokio's blocking pool; inference runs on
//!   the slot threads of [`slots`], never on the runtime.
//! - The listener is up before the model loads: `/health` answers 503 `{"status": "loading"}`
//!   until it has, then 200 `{"status": "ok"}`; the other model endpoints answer 503 meanwhile.
//! - Every error is OpenAI's `{"error": {"message", "type", "param", "code"}}` ([`error`]);
//!   request bodies are checked field by field ([`request`]).
//! - `--api-key` (or `NIB_API_KEY`) makes every endpoint but `/health` require
//!   `Authorization: Bearer KEY`.
//! - SIGINT/SIGTERM: stop accepting, let in-flight generations run for `--shutdown-grace`
//!   seconds, cancel the rest, exit 0. A second signal exits at once (status 130).

mod batcher;
pub mod error;
pub mod metrics;
pub mod request;
mod routes;
pub mod slots;

use crate::chat::ChatTemplate;
use crate::cli::common::model_path;
use crate::cli::serve::ServeArgs;
use crate::model::Model;
use crate::sample::SamplerParams;
use crate::tokenizer::Tokenizer;
use anyhow::{bail, Context as _, Result};
use metrics::Metrics;
use slots::Slots;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The loaded model and what serves it.
pub struct Engine {
    pub model: Arc<Model>,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    /// Built-in defaults, then the model's `general.sampling.*`, then the command line's.
    pub defaults: SamplerParams,
    pub slots: Slots,
}

/// What the handlers share.
pub struct State {
    engine: OnceLock<Arc<Engine>>,
    pub metrics: Arc<Metrics>,
    api_key: Option<String>,
    /// The name responses and `/v1/models` report.
    pub model_name: String,
    pub model_path: String,
    /// Unix seconds the server started.
    pub created: u64,
    /// SIGINT/SIGTERM came: new generations are refused.
    stopping: AtomicBool,
    /// Cancel every generation now (the grace period is over).
    cancel: Arc<AtomicBool>,
}

impl State {
    /// The engine, or 503 while the model loads.
    pub fn engine(&self) -> Result<Arc<Engine>, error::ApiError> {
        self.engine.get().cloned().ok_or_else(|| {
            error::ApiError::unavailable(
                "model_loading",
                "the model is still loading; retry shortly",
            )
        })
    }

    pub fn is_loaded(&self) -> bool {
        self.engine.get().is_some()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(SeqCst)
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Run the server until SIGINT/SIGTERM (Ok) or until the model fails to load (Err).
pub fn run(args: &ServeArgs) -> Result<()> {
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    if args.slot_threads == Some(0) {
        bail!("--slot-threads must be at least 1");
    }
    if !(args.shutdown_grace >= 0.0 && args.shutdown_grace.is_finite()) {
        bail!("--shutdown-grace must be a number of seconds >= 0");
    }
    // Resolve the model before listening, so a wrong -m fails at once.
    let path = model_path(args.model.model.as_deref())?;
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("NIB_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let model_name = args.alias.clone().unwrap_or_else(|| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    let state = Arc::new(State {
        engine: OnceLock::new(),
        metrics: Arc::new(Metrics::default()),
        api_key,
        model_name,
        model_path: path.display().to_string(),
        created: unix_now(),
        stopping: AtomicBool::new(false),
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nib-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut args = args.clone();
    args.model.model = Some(path);
    let result = rt.block_on(serve(args.clone(), Arc::clone(&state)));
    // Whatever is still generating stops now; the slot threads end once the queue drains.
    state.cancel.store(true, SeqCst);
    if let Some(engine) = state.engine.get() {
        engine.slots.close_and_join();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(args: ServeArgs, state: Arc<State>) -> Result<()> {
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    eprintln!(
        "nib serve: listening on http://{local} (loading {})",
        state.model_path
    );
    if state.api_key.is_none() && !local.ip().is_loopback() {
        eprintln!("nib serve: warning: listening beyond loopback without an API key (--api-key or NIB_API_KEY)");
    }

    let grace = Duration::from_secs_f64(args.shutdown_grace);
    // Load on a plain thread: it is slow, blocking work, and /health answers meanwhile.
    let (load_tx, load_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    {
        let state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("nib-load".into())
            .spawn(move || {
                let r = load(&args, &state).map(|engine| {
                    let _ = state.engine.set(Arc::new(engine));
                });
                let _ = load_tx.send(r);
            })?;
    }

    // Shutdown starts on a signal or a failed load; the grace period then runs.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_failure = Arc::new(std::sync::Mutex::new(None::<anyhow::Error>));
    {
        let state = Arc::clone(&state);
        let load_failure = Arc::clone(&load_failure);
        tokio::spawn(async move {
            let mut load_rx = load_rx;
            let mut loaded = false;
            loop {
                tokio::select! {
                    r = &mut load_rx, if !loaded => {
                        loaded = true;
                        match r {
                            Ok(Ok(())) => continue,
                            Ok(Err(e)) => *load_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e),
                            Err(_) => *load_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(anyhow::anyhow!("the loading thread died")),
                        }
                        break;
                    }
                    name = shutdown_signal() => {
                        eprintln!("nib serve: {name}: stopping (in-flight generations get {:.1} s)", grace.as_secs_f64());
                        break;
                    }
                }
            }
            state.stopping.store(true, SeqCst);
            let _ = stop_tx.send(true);
            // A second signal does not wait for anything.
            tokio::spawn(async {
                let name = shutdown_signal().await;
                eprintln!("nib serve: {name} again: exiting now");
                std::process::exit(130);
            });
            tokio::time::sleep(grace).await;
            state.cancel.store(true, SeqCst);
        });
    }

    let app = routes::router(Arc::clone(&state));
    let mut stop_wait = stop_rx.clone();
    let graceful = async move {
        let _ = stop_wait.wait_for(|s| *s).await;
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
    // Connections that still hang on well after the grace period (a client that never reads)
    // do not keep the process alive.
    let mut deadline_wait = stop_rx;
    let deadline = async move {
        let _ = deadline_wait.wait_for(|s| *s).await;
        tokio::time::sleep(grace + Duration::from_secs(5)).await;
    };
    tokio::select! {
        r = server => r.context("serving HTTP")?,
        () = deadline => eprintln!("nib serve: connections still open after the grace period; closing them"),
    }
    if let Some(e) = load_failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e.context(format!("loading {}", state.model_path)));
    }
    eprintln!("nib serve: stopped");
    Ok(())
}

/// Wait for SIGINT or SIGTERM; their name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Load the model, its tokenizer and template, and start the slots.
fn load(args: &ServeArgs, state: &State) -> Result<Engine> {
    // The tests hold the server in its loading state with this (a small model loads at once).
    if let Some(ms) = std::env::var("NIB_SERVE_TEST_LOAD_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let loaded = args.model.load()?;
    let model = loaded.model;
    let template = ChatTemplate::from_gguf(&model.gguf, args.chat_template.as_deref())?;
    let defaults = args.sampling.params(&model)?;
    let contexts = (0..args.parallel)
        .map(|_| args.model.context(&model))
        .collect::<Result<Vec<_>>>()?;
    let n_ctx = contexts[0].n_ctx();
    let slots = Slots::start(
        contexts,
        Arc::clone(&loaded.tokenizer),
        args.queue,
        Arc::clone(&state.metrics),
        Arc::clone(&state.cancel),
        args.slot_threads,
    )
    .context("starting the slot threads")?;
    eprintln!(
        "nib serve: loaded {} in {:.2} s ({}, {} threads, kernels {}, {} slot(s) of {} tokens, queue {}, chat template {})",
        state.model_name,
        loaded.load_seconds,
        model.describe(),
        loaded.threads,
        nib_simd::kernels().level(),
        args.parallel,
        n_ctx,
        args.queue,
        template.name(),
    );
    Ok(Engine {
        model,
        tokenizer: loaded.tokenizer,
        template,
        defaults,
        slots,
    })
}
