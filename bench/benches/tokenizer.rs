//! Tokenizer speed: loading each model's vocabulary, and tokenizing / detokenizing 1 MB of
//! English-like text (the repository's own text files, repeated).
//!   NIB_MODELS=/path/to/models cargo bench -p nib-bench --bench tokenizer

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nib::gguf::Gguf;
use nib::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODELS: [&str; 2] = ["SmolLM2-135M-Instruct.Q4_1", "gemma-3-270m-q4_k_m"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_path(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("NIB_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"));
    let p = dir.join(format!("{name}.gguf"));
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping {name}: {} not found (run tools/fetch-models.sh)",
            p.display()
        );
        None
    }
}

/// About 1 MB of mostly English text: the README and the golden texts, repeated.
fn english_mb() -> String {
    let mut base = String::new();
    for f in [
        "README.md",
        "tests/golden/tok_public.txt",
        "tests/golden/prompts_public.txt",
    ] {
        if let Ok(s) = std::fs::read_to_string(repo().join(f)) {
            base.push_str(&s.replace('\u{1e}', ""));
            base.push('\n');
        }
    }
    let mut text = String::with_capacity(1 << 20);
    while text.len() < 1 << 20 {
        text.push_str(&base);
    }
    text.truncate(text.floor_char_boundary(1 << 20));
    text
}

fn bench(c: &mut Criterion) {
    let text = english_mb();
    for name in MODELS {
        let Some(path) = model_path(name) else {
            continue;
        };
        let g = Gguf::open(&path).unwrap();
        let mut group = c.benchmark_group(format!("tokenizer/{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10))
            .warm_up_time(Duration::from_secs(1));
        group.bench_function("load", |b| b.iter(|| Tokenizer::from_gguf(&g).unwrap()));
        let tok = Tokenizer::from_gguf(&g).unwrap();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function("tokenize_1MB", |b| {
            b.iter(|| tok.tokenize(&text, false, false))
        });
        group.bench_function("tokenize_1MB_parse_special", |b| {
            b.iter(|| tok.tokenize(&text, true, true))
        });
        let ids = tok.tokenize(&text, false, false);
        eprintln!("{name}: 1 MB -> {} tokens", ids.len());
        group.bench_function("detokenize_1MB", |b| b.iter(|| tok.detokenize(&ids)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
