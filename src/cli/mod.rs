//! The `nib` command line: one file per subcommand.

pub mod batch;
pub mod bench;
pub mod chat;
pub mod common;
pub mod inspect;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod serve;
pub mod synth;
pub mod tokenize;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "nib", version = crate::version_string(), about = "Native LLM inference on the CPU: GGUF models, quantized NEON/AVX2 kernels, OpenAI-compatible server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate text from a prompt (streams to stdout; stats on stderr).
    Run(run::RunArgs),
    /// Chat with a model in the terminal (multi-turn; one message per line from a pipe).
    Chat(chat::ChatArgs),
    /// Run the prompts of a JSON Lines file, one result line each; resumes where it stopped.
    Batch(batch::BatchArgs),
    /// Measure perplexity on a text file (llama-perplexity's method).
    Perplexity(perplexity::PerplexityArgs),
    /// Measure prompt processing and generation speed (llama-bench's tests and table).
    Bench(bench::BenchArgs),
    /// Write a random-weight model of a given architecture, shape and type (for tests and speed work).
    Synth(synth::SynthArgs),
    /// Serve the model over HTTP with an OpenAI-compatible API (chat, completions, streaming).
    Serve(serve::ServeArgs),
    /// Re-quantize a model as llama-quantize does (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16, F32).
    Quantize(quantize::QuantizeArgs),
    /// Show what a GGUF file holds: architecture, shapes, tokenizer, tensors.
    Inspect {
        /// The GGUF file.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also list every metadata key (long arrays summarised).
        #[arg(long)]
        metadata: bool,
    },
    /// Show the kernel level chosen for this CPU and the features detected.
    Info,
    /// Tokenize a text with a model's tokenizer, like llama.cpp's llama-tokenize.
    Tokenize(tokenize::Options),
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Chat(a) => chat::run(&a),
        Command::Batch(a) => batch::run(&a),
        Command::Perplexity(a) => perplexity::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Synth(a) => synth::run(&a),
        Command::Quantize(a) => quantize::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Tokenize(o) => tokenize::run(&o),
        Command::Inspect {
            model,
            json,
            metadata,
        } => inspect::run(&model, json, metadata),
        Command::Info => {
            let level = nib_simd::dispatch::requested_level()?;
            println!("nib {}", env!("CARGO_PKG_VERSION"));
            println!("kernels: {level} (detected: {})", nib_simd::Level::detect());
            println!("threads: {} (default)", crate::default_threads());
            Ok(())
        }
    }
}
