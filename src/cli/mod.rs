//! The `nib` command line: one file per subcommand.

pub mod inspect;

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
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect {
            model,
            json,
            metadata,
        } => inspect::run(&model, json, metadata),
        Command::Info => {
            let level = nib_simd::traits::requested_level()?;
            println!("nib {}", env!("CARGO_PKG_VERSION"));
            println!("kernels: {level} (detected: {})", nib_simd::Level::detect());
            println!("threads: {} (default)", crate::default_threads());
            Ok(())
        }
    }
}
