//! Helpers shared by the integration tests: where the models and goldens are, loading, running
//! the `nib` binary. Each test uses some of them.
#![allow(dead_code, unused_imports)]

pub mod golden;

pub use golden::{token_ids, top_logits};

use nib::model::{LoadOptions, Model};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// The models directory: `$NIB_MODELS`, default `<repo>/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("NIB_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// Path of a real model under `$NIB_MODELS` (default `<repo>/models`). Panics with the command
/// that fetches it when it is missing: these tests must not pass by skipping.
pub fn model_path(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.exists(),
        "model {} is missing: run tools/fetch-models.sh (or set NIB_MODELS)",
        p.display()
    );
    p
}

/// The model at `path`, loaded with the default options.
pub fn load_model(path: &Path) -> Arc<Model> {
    Arc::new(Model::load(path, &LoadOptions::default()).unwrap())
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
/// A file under `tests/golden/`.
pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

pub fn read_json(name: &str) -> serde_json::Value {
    let p = golden_path(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The Python interpreter with the `gguf` package (`NIB_PYTHON`, default `python3`), checked to
/// import it; panics with how to get one.
pub fn python_with_gguf() -> String {
    let py = std::env::var("NIB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import gguf, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "NIB_PYTHON={py} cannot import the gguf package: create a venv with \
         `python3 -m venv .venv && .venv/bin/pip install gguf==0.19.0` and set NIB_PYTHON=.venv/bin/python \
         (tools/test.sh does both)"
    );
    py
}

/// A scratch directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nib-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `nib` binary of this build.
pub fn nib() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nib"))
}

/// Panic with its standard error unless the process (`what`) succeeded.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sha256 of a file, in hex (`sha256sum`).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Whether the kernels sum every type in llama.cpp's x86 orders: then nib's logits are llama.cpp's
/// bits (on x86 always; on aarch64 with `NIB_ORDERS=llama`).
pub fn llama_orders() -> bool {
    let k = nib_simd::kernels();
    nib_simd::ALL_TYPES
        .into_iter()
        .all(|ty| k.get(ty).is_none_or(|t| t.order.is_none()))
}

/// The index of the largest value (the last of equal ones; 0 for an empty slice).
pub fn argmax(v: &[f32]) -> u32 {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0) as u32
}
