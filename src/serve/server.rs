//! Starting and stopping the server: the listener, the model loaded on its own thread, the
//! slots, and the shutdown on SIGINT/SIGTERM.

use super::conn::{self, ConnLimits};
use super::metrics::Metrics;
use super::routes;
use super::slots::Slots;
use super::{unix_now, Engine, ServeConfig, State};
use crate::chat::ChatTemplate;
use crate::runtime::{init_threads, Loaded};
use crate::sample::SamplerParams;
use anyhow::{Context as _, Result};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Run the server until SIGINT/SIGTERM (Ok) or until the model fails to load (Err).
pub fn run(config: &ServeConfig) -> Result<()> {
    let path = &config.model_path;
    let model_name = config.alias.clone().unwrap_or_else(|| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    let state = Arc::new(State {
        engine: OnceLock::new(),
        metrics: Arc::new(Metrics::default()),
        api_key: config.api_key.clone(),
        model_name,
        model_path: path.display().to_string(),
        created: unix_now(),
        stopping: AtomicBool::new(false),
        cancel: Arc::new(AtomicBool::new(false)),
        body_timeout: config.timeout,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("nib-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(serve(config.clone(), Arc::clone(&state)));
    // Whatever is still generating stops now; the slot threads end once the queue drains.
    state.cancel.store(true, SeqCst);
    if let Some(engine) = state.engine.get() {
        engine.slots.close_and_join();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(config: ServeConfig, state: Arc<State>) -> Result<()> {
    let addr = format!("{}:{}", config.host, config.port);
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

    let grace = Duration::from_secs_f64(config.shutdown_grace);
    let (config_timeout, max_connections) = (config.timeout, config.max_connections);
    // Load on a plain thread: it is slow, blocking work, and /health answers meanwhile.
    let (load_tx, load_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    {
        let state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("nib-load".into())
            .spawn(move || {
                let r = load(&config, &state).map(|engine| {
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
    let limits = ConnLimits {
        timeout: config_timeout,
        max_connections,
    };
    let server = conn::serve(listener, app, limits, stop_rx.clone());
    // Connections that still hang on well after the grace period (a client that never reads)
    // do not keep the process alive.
    let mut deadline_wait = stop_rx;
    let deadline = async move {
        let _ = deadline_wait.wait_for(|s| *s).await;
        tokio::time::sleep(grace + Duration::from_secs(5)).await;
    };
    tokio::select! {
        () = server => {}
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
fn load(config: &ServeConfig, state: &State) -> Result<Engine> {
    // The tests hold the server in its loading state with this (a small model loads at once).
    if let Some(ms) = std::env::var("NIB_SERVE_TEST_LOAD_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let threads = init_threads(config.threads)?;
    let loaded = Loaded::load(&config.model_path, &config.load, threads)?;
    let model = loaded.model;
    let template = ChatTemplate::from_gguf(&model.gguf, config.chat_template.as_deref())?;
    let defaults = SamplerParams::for_model(&model.gguf, model.hp.n_vocab, &config.sampling)?;
    let contexts = (0..config.parallel)
        .map(|_| config.context.context(&model))
        .collect::<Result<Vec<_>>>()?;
    let n_ctx = contexts[0].n_ctx();
    let slots = Slots::start(
        contexts,
        Arc::clone(&loaded.tokenizer),
        config.queue,
        Arc::clone(&state.metrics),
        Arc::clone(&state.cancel),
        config.slot_threads,
    )
    .context("starting the slot threads")?;
    eprintln!(
        "nib serve: loaded {} in {:.2} s ({}, {} threads, kernels {}, {} slot(s) of {} tokens, queue {}, chat template {})",
        state.model_name,
        loaded.load_seconds,
        model.describe(),
        loaded.threads,
        nib_simd::kernels().level(),
        config.parallel,
        n_ctx,
        config.queue,
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
