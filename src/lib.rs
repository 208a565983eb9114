//! nib: a native LLM inference runtime.
//!
//! The pipeline, by module: [`gguf`] (the file) → [`tokenizer`] (text → tokens) → [`model`]
//! (embeddings → layers → logits, built from [`ops`] and the `nib_simd` kernels) → [`sample`]
//! (logits → token) → [`generate`] (the loop, streaming text back). [`chat`] renders
//! conversations into prompts. [`serve`] (feature `server`, on by default) is the
//! OpenAI-compatible HTTP server.

pub mod batch;
pub mod bench;
pub mod chat;
pub mod cli;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod ops;
pub mod perplexity;
pub mod quantize;
pub mod request;
pub mod runtime;
pub mod sample;
#[cfg(feature = "server")]
pub mod serve;
pub mod synth;
pub mod tokenizer;

/// The version line: crate version and the kernel level this CPU gets.
pub fn version_string() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        format!(
            "{} (kernels: {})",
            env!("CARGO_PKG_VERSION"),
            nib_simd::Level::detect()
        )
    })
}

/// Default thread count: the number of CPUs available to the process (on a cloud VM, the vCPUs).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
