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
//!   `Authorization: Bearer KEY`; an empty key is refused at startup.
//! - Connections are bounded ([`conn`]): `--timeout` on reading request heads and bodies, on idle
//!   kept-alive connections and on writes; `--max-connections` at once (503 beyond); requests
//!   hyper cannot parse get a JSON error too.
//! - SIGINT/SIGTERM: stop accepting, let in-flight generations run for `--shutdown-grace`
//!   seconds, cancel the rest, exit 0. A second signal exits at once (status 130).

mod batcher;
mod conn;
pub mod error;
pub mod metrics;
pub mod request;
mod routes;
mod server;
pub mod slots;

pub use server::run;

use crate::chat::ChatTemplate;
use crate::model::{LoadOptions, Model};
use crate::runtime::ContextOptions;
use crate::sample::{SamplerOverrides, SamplerParams};
use crate::tokenizer::Tokenizer;
use metrics::Metrics;
use slots::Slots;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What [`run`] serves and how (`nib serve`'s options, checked).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The model file (it exists).
    pub model_path: PathBuf,
    /// Compute threads (`None`: one per CPU).
    pub threads: Option<usize>,
    pub load: LoadOptions,
    /// How each slot's context is made.
    pub context: ContextOptions,
    /// Address and port to listen on (port 0: any free one).
    pub host: String,
    pub port: u16,
    /// Requests generated at the same time, each in its own slot (at least 1).
    pub parallel: usize,
    /// A pool of this many threads for each slot instead of the process-wide pool (at least 1).
    pub slot_threads: Option<usize>,
    /// Requests that may wait for a free slot.
    pub queue: usize,
    /// The key every endpoint but `/health` requires (`None`: none).
    pub api_key: Option<String>,
    /// Chat template: a built-in name, a Jinja file or Jinja text (`None`: the model's).
    pub chat_template: Option<String>,
    /// Model name reported (`None`: the file name).
    pub alias: Option<String>,
    /// Seconds in-flight generations may run on after SIGINT/SIGTERM (finite, at least 0).
    pub shutdown_grace: f64,
    /// Default sampling settings over the model's; each request may override them.
    pub sampling: SamplerOverrides,
    /// Read and write timeout of a connection (`--timeout`, at least 1 s): request heads,
    /// each chunk of a body, the wait between kept-alive requests, each write of a response.
    pub timeout: std::time::Duration,
    /// Connections served at once (`--max-connections`, at least 1); more get 503.
    pub max_connections: usize,
}

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
    /// How long a request body may pause between chunks (`--timeout`).
    pub body_timeout: std::time::Duration,
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
