//! `nib serve`: the OpenAI-compatible HTTP server (see [`crate::serve`]). The options are
//! always parsed; a build without the `server` feature says so when asked to serve.

#[cfg(feature = "server")]
use super::common::model_path;
use super::common::{ModelArgs, SamplerArgs};
#[cfg(feature = "server")]
use anyhow::bail;
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
    /// Read/write timeout of a connection in seconds (llama-server's --timeout): for a request's
    /// head and each chunk of its body, between requests on a kept-alive connection, and for each
    /// write of a response. A long generation is not cut by it.
    #[arg(long = "timeout", default_value_t = 600)]
    pub timeout: u64,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long = "max-connections", default_value_t = 256)]
    pub max_connections: usize,
    /// On SIGINT/SIGTERM, seconds in-flight generations may run on before they are cancelled.
    #[arg(long = "shutdown-grace", default_value_t = 5.0)]
    pub shutdown_grace: f64,
    /// Default sampling settings; each request may override them.
    #[command(flatten)]
    pub sampling: SamplerArgs,
}

#[cfg(feature = "server")]
impl ServeArgs {
    /// The server's configuration: the options checked, the model file found (before anything
    /// listens, so a wrong -m fails at once), the API key taken from NIB_API_KEY when not given.
    pub fn config(&self) -> anyhow::Result<crate::serve::ServeConfig> {
        if self.parallel == 0 {
            bail!("--parallel must be at least 1");
        }
        if self.slot_threads == Some(0) {
            bail!("--slot-threads must be at least 1");
        }
        if !(self.shutdown_grace >= 0.0 && self.shutdown_grace.is_finite()) {
            bail!("--shutdown-grace must be a number of seconds >= 0");
        }
        if self.timeout == 0 {
            bail!("--timeout must be at least 1 second");
        }
        if self.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        // An empty key would turn authentication off without a word: refuse it.
        let api_key = match (&self.api_key, std::env::var("NIB_API_KEY")) {
            (Some(k), _) if k.trim().is_empty() => {
                bail!(
                    "--api-key is empty; give a key, or leave the option out to serve without one"
                )
            }
            (Some(k), _) => Some(k.clone()),
            (None, Ok(k)) if k.trim().is_empty() => {
                bail!("NIB_API_KEY is set but empty; give a key, or unset it to serve without one")
            }
            (None, Ok(k)) => Some(k),
            (None, Err(_)) => None,
        };
        let model_path = model_path(self.model.model.as_deref())?;
        Ok(crate::serve::ServeConfig {
            model_path,
            threads: self.model.threads,
            load: self.model.load.options(),
            context: self.model.context_options(),
            host: self.host.clone(),
            port: self.port,
            parallel: self.parallel,
            slot_threads: self.slot_threads,
            queue: self.queue,
            api_key,
            chat_template: self.chat_template.clone(),
            alias: self.alias.clone(),
            shutdown_grace: self.shutdown_grace,
            sampling: self.sampling.overrides(),
            timeout: std::time::Duration::from_secs(self.timeout),
            max_connections: self.max_connections,
        })
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    #[cfg(feature = "server")]
    {
        crate::serve::run(&args.config()?)
    }
    #[cfg(not(feature = "server"))]
    {
        let _ = args;
        anyhow::bail!("this nib was built without the server (cargo feature `server`); rebuild with default features")
    }
}
