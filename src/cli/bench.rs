//! `nib bench`: llama-bench's tests and table, for nib.

use crate::bench::{peak_rss_bytes, run_test_at, Samples, Test};
use crate::cli::common::{model_path, LoadArgs};
use crate::cli::inspect::human_bytes;
use crate::gguf::human_params;
use crate::model::{Context, KvType, Model};
use crate::tokenizer::Tokenizer;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
#[command(
    mut_arg("no_mmap", |a| a.help("Read models into memory instead of mapping them")),
    mut_arg("mlock", |a| a.help("Lock model pages in memory")),
    mut_arg("no_interleave", |a| a.help("Keep the weights in the file's layout (no interleaving of rows at load). --no-repack is llama.cpp's name for this switch")),
)]
pub struct BenchArgs {
    /// GGUF model file(s) (repeatable) [default: the default model].
    #[arg(short = 'm', long = "model")]
    pub models: Vec<PathBuf>,
    /// Prompt sizes to test, comma-separated (0 to skip).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test, comma-separated (0 to skip).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Tokens already in the cache when each test starts (untimed), comma-separated.
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    pub n_depth: Vec<usize>,
    /// Thread counts to test, comma-separated [default: number of CPUs].
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub reps: usize,
    /// Output format: md, json, jsonl or csv.
    #[arg(short = 'o', long = "output", default_value = "md")]
    pub output: String,
    /// Tokens per batch for prompt processing.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// KV cache type: f16 or f32.
    #[arg(long = "kv-type", default_value = "f16")]
    pub kv_type: String,
    /// Skip the warm-up run of each test.
    #[arg(long)]
    pub no_warmup: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// One result row.
struct Row {
    path: PathBuf,
    desc: String,
    file_type: String,
    size: u64,
    params: u64,
    threads: usize,
    samples: Samples,
    load_ms: f64,
    peak_rss: Option<u64>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.reps == 0 {
        bail!("--repetitions must be at least 1");
    }
    let fmt = args.output.as_str();
    if !matches!(fmt, "md" | "json" | "jsonl" | "csv") {
        bail!("unknown output format {fmt:?} (md, json, jsonl, csv)");
    }
    let kv_type = KvType::from_name(&args.kv_type)
        .with_context(|| format!("unknown KV type {:?}", args.kv_type))?;
    nib_simd::dispatch::requested_level()?;
    let models = if args.models.is_empty() {
        vec![model_path(None)?]
    } else {
        args.models.clone()
    };
    let threads = if args.threads.is_empty() {
        vec![crate::default_threads()]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("thread counts must be at least 1");
    }
    let mut tests: Vec<Test> = args
        .n_prompt
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| Test::Prompt(n))
        .collect();
    tests.extend(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| Test::Gen(n)));
    if tests.is_empty() {
        bail!("nothing to test: give -p or -n greater than zero");
    }

    let mut rows = Vec::new();
    if fmt == "md" {
        print_md_header();
    }
    // One pool per thread count, made once. The load (which interleaves weights on the current
    // pool) runs on the largest, so `-t 1` loads on one thread rather than on every CPU: no
    // thread of the load is left over to spin beside the measured repetitions (and the ARM
    // proxy's block counters, which assume one thread, count it exactly).
    let pools: Vec<nib_simd::pool::Pool> = threads
        .iter()
        .map(|&nt| nib_simd::pool::Pool::new(nt))
        .collect();
    let load_pool = threads
        .iter()
        .zip(&pools)
        .max_by_key(|(nt, _)| **nt)
        .map(|(_, p)| p)
        .expect("at least one thread count");
    for path in &models {
        reset_peak_rss();
        let t0 = Instant::now();
        let model =
            nib_simd::pool::with_pool(load_pool, || Model::load(path, &args.load.options()))?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let tok = Tokenizer::from_gguf(&model.gguf)?;
        let bos = if tok.add_bos() { tok.bos() } else { None };
        let model = Arc::new(model);
        let file_type = model
            .describe()
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .to_string();
        for (&nt, pool) in threads.iter().zip(&pools) {
            for (&test, &depth) in tests
                .iter()
                .flat_map(|t| args.n_depth.iter().map(move |d| (t, d)))
            {
                let n_ctx = (depth + test.n_tokens()).max(1);
                let samples = nib_simd::pool::with_pool(pool, || -> Result<Samples> {
                    let mut ctx =
                        Context::new(Arc::clone(&model), n_ctx, args.batch_size, kv_type)?;
                    run_test_at(&mut ctx, test, depth, args.reps, bos, !args.no_warmup)
                })?;
                let row = Row {
                    path: path.clone(),
                    desc: model.describe(),
                    file_type: file_type.clone(),
                    size: model.weight_bytes(),
                    params: model.n_params(),
                    threads: nt,
                    samples,
                    load_ms,
                    peak_rss: peak_rss_bytes(),
                };
                match fmt {
                    "md" => print_md_row(&row),
                    "jsonl" => println!("{}", row_json(&row)),
                    _ => {}
                }
                rows.push(row);
            }
        }
        if fmt == "md" {
            eprintln!(
                "{}: kernels {}, load {:.0} ms, peak RSS {}",
                path.display(),
                nib_simd::kernels().level(),
                load_ms,
                peak_rss_bytes().map_or("?".into(), human_bytes)
            );
        }
    }
    match fmt {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&rows.iter().map(row_json).collect::<Vec<_>>())?
        ),
        "csv" => {
            println!("model_filename,model_type,model_size,model_n_params,n_threads,n_prompt,n_gen,avg_ns,stddev_ns,avg_ts,stddev_ts,load_ms,peak_rss_bytes");
            for r in &rows {
                println!(
                    "\"{}\",\"{}\",{},{},{},{},{},{:.0},{:.0},{:.6},{:.6},{:.1},{}",
                    r.path.display(),
                    r.desc,
                    r.size,
                    r.params,
                    r.threads,
                    r.samples.test.n_prompt(),
                    r.samples.test.n_gen(),
                    r.samples.avg_ns(),
                    r.samples.stddev_ns(),
                    r.samples.avg_ts(),
                    r.samples.stddev_ts(),
                    r.load_ms,
                    r.peak_rss.unwrap_or(0)
                );
            }
        }
        _ => {}
    }
    Ok(())
}

fn print_md_header() {
    println!(
        "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |",
        "model", "size", "params", "backend", "threads", "test", "t/s"
    );
    println!(
        "| {:-<30} | {:->9}: | {:->9}: | {:-<10} | {:->6}: | {:->14}: | {:->19}: |",
        "", "", "", "", "", "", ""
    );
}

fn print_md_row(r: &Row) {
    println!(
        "| {:<30} | {:>10} | {:>10} | {:<10} | {:>7} | {:>15} | {:>20} |",
        r.desc,
        human_bytes(r.size),
        human_params(r.params),
        "CPU",
        r.threads,
        r.samples.name(),
        format!("{:.2} ± {:.2}", r.samples.avg_ts(), r.samples.stddev_ts())
    );
}

fn row_json(r: &Row) -> serde_json::Value {
    json!({
        "model_filename": r.path.display().to_string(),
        "model_type": r.desc,
        "file_type": r.file_type,
        "model_size": r.size,
        "model_n_params": r.params,
        "backend": "CPU",
        "kernels": nib_simd::kernels().level().name(),
        "n_threads": r.threads,
        "n_prompt": r.samples.test.n_prompt(),
        "n_gen": r.samples.test.n_gen(),
        "n_depth": r.samples.depth,
        "test": r.samples.name(),
        "avg_ns": r.samples.avg_ns().round() as u64,
        "stddev_ns": r.samples.stddev_ns().round() as u64,
        "avg_ts": r.samples.avg_ts(),
        "stddev_ts": r.samples.stddev_ts(),
        "samples_ns": r.samples.ns,
        "samples_ts": r.samples.ts(),
        "load_ms": r.load_ms,
        "peak_rss_bytes": r.peak_rss,
    })
}

/// Reset the kernel's peak-RSS counter, so each model's peak is its own (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
