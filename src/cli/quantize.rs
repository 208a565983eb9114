//! `nib quantize`: re-quantize a model as llama-quantize does (whole-tensor formats).

use anyhow::{Context as _, Result};
use clap::Args;
use nib_simd::GgmlType;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Input GGUF file.
    pub input: PathBuf,
    /// Output GGUF file.
    pub output: PathBuf,
    /// Target type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16 or F32.
    pub target: String,
    /// Convert tensors that are already quantized (quality drops with each requantization).
    #[arg(long)]
    pub allow_requantize: bool,
}

pub fn run(a: &QuantizeArgs) -> Result<()> {
    let ty =
        GgmlType::from_name(&a.target).with_context(|| format!("unknown type {:?}", a.target))?;
    let t0 = std::time::Instant::now();
    crate::quantize::quantize_file(&a.input, &a.output, ty, a.allow_requantize)?;
    eprintln!(
        "wrote {} ({ty}) in {:.1} s",
        a.output.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
