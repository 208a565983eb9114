//! `nib serve`: the OpenAI-compatible HTTP server (see [`crate::serve`]). The options are
//! always parsed; a build without the `server` feature says so when asked to serve.

use super::common::{ModelArgs, SamplerArgs};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (0.0.0.0 exposes the server to the network: set an API key).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests generated at the same time, each in its own slot with its own KV cache of
    /// -c/--ctx-size tokens (memory grows with N).
    #[arg(long = "parallel", default_value_t = 1)]
    pub parallel: usize,
    /// Give each slot its own pool of N compute threads instead of sharing the process-wide pool
    /// (whose parallel steps the slots take in turns). For throughput experiments with
    /// --parallel > 1; N x --parallel should not exceed the cores.
    #[arg(long = "slot-threads")]
    pub slot_threads: Option<usize>,
    /// Requests that may wait for a free slot; more get 503.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health [env: NIB_API_KEY].
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// Chat template: a built-in name (chatml, gemma, llama3, llama2), a Jinja file or Jinja text
    /// [default: the model's].
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
    /// Model name reported by /v1/models and in responses [default: the file name].
    #[arg(long)]
    pub alias: Option<String>,
    /// On SIGINT/SIGTERM, seconds in-flight generations may run on before they are cancelled.
    #[arg(long = "shutdown-grace", default_value_t = 5.0)]
    pub shutdown_grace: f64,
    /// Default sampling settings; each request may override them.
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    #[cfg(feature = "server")]
    {
        crate::serve::run(args)
    }
    #[cfg(not(feature = "server"))]
    {
        let _ = args;
        anyhow::bail!("this nib was built without the server (cargo feature `server`); rebuild with default features")
    }
}
