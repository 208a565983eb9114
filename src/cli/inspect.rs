//! `nib inspect MODEL.gguf`: what a GGUF file holds, for people (`--json` for machines).

use crate::gguf::{file_type_name, human_params, Gguf, Value};
use anyhow::Result;
use serde_json::{json, Map};
use std::path::Path;

/// The facts `inspect` reports, gathered once for both output forms.
pub struct Summary {
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub n_params: u64,
    pub file_type: Option<u32>,
    pub file_size: usize,
    pub context_length: Option<u32>,
    pub block_count: Option<u32>,
    pub embedding_length: Option<u32>,
    pub feed_forward_length: Option<u32>,
    pub head_count: Option<u32>,
    pub head_count_kv: Option<u32>,
    pub tokenizer_model: Option<String>,
    pub vocab_size: Option<usize>,
    pub has_chat_template: bool,
}

impl Summary {
    pub fn of(g: &Gguf) -> Summary {
        let arch = g.get_str("general.architecture").ok().map(str::to_string);
        let key = |k: &str| {
            arch.as_ref()
                .and_then(|a| g.get_u32(&format!("{a}.{k}")).ok())
        };
        Summary {
            name: g.get_str("general.name").ok().map(str::to_string),
            n_params: g.n_params(),
            file_type: g.get_u32("general.file_type").ok(),
            file_size: g.file_size(),
            context_length: key("context_length"),
            block_count: key("block_count"),
            embedding_length: key("embedding_length"),
            feed_forward_length: key("feed_forward_length"),
            head_count: key("attention.head_count"),
            head_count_kv: key("attention.head_count_kv"),
            tokenizer_model: g.get_str("tokenizer.ggml.model").ok().map(str::to_string),
            vocab_size: g.get_array("tokenizer.ggml.tokens").ok().map(|a| a.len),
            has_chat_template: g.contains_key("tokenizer.chat_template"),
            architecture: arch,
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n as f64 >= 1024.0 * MIB {
        format!("{:.2} GiB", n as f64 / (1024.0 * MIB))
    } else {
        format!("{:.2} MiB", n as f64 / MIB)
    }
}

pub fn run(path: &Path, as_json: bool, show_metadata: bool) -> Result<()> {
    let g = Gguf::open(path)?;
    let s = Summary::of(&g);
    // The file is shown whatever it holds; what would stop it from loading is said on stderr.
    if let Err(e) = crate::model::Model::hparams_of(&g) {
        eprintln!("nib: warning: this model cannot be loaded: {e:#}");
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&to_json(&g, &s))?);
        return Ok(());
    }
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "file:            {} (GGUF v{}, {})",
        path.display(),
        g.version(),
        human_bytes(s.file_size as u64)
    );
    println!(
        "architecture:    {}",
        s.architecture.as_deref().unwrap_or("-")
    );
    println!("name:            {}", s.name.as_deref().unwrap_or("-"));
    println!(
        "parameters:      {} ({})",
        human_params(s.n_params),
        s.n_params
    );
    println!(
        "file type:       {}",
        s.file_type
            .map_or("-".to_string(), |f| format!("{} ({f})", file_type_name(f)))
    );
    println!("context length:  {}", opt(s.context_length));
    println!(
        "layers:          {}   embedding {}   feed-forward {}   heads {}   kv heads {}",
        opt(s.block_count),
        opt(s.embedding_length),
        opt(s.feed_forward_length),
        opt(s.head_count),
        opt(s.head_count_kv)
    );
    println!(
        "tokenizer:       {}   vocabulary {}",
        s.tokenizer_model.as_deref().unwrap_or("-"),
        s.vocab_size.map_or("-".to_string(), |v| v.to_string())
    );
    println!(
        "chat template:   {}",
        if s.has_chat_template {
            "present"
        } else {
            "absent"
        }
    );
    if show_metadata {
        println!("\nmetadata ({} keys):", g.metadata_len());
        for (k, v) in g.metadata() {
            println!("  {k:<40} {}", g.display_value(v, 8));
        }
    }
    println!("\ntensors ({}):", g.tensors().len());
    println!(
        "  {:<36} {:<8} {:<22} {:>12} {:>12}",
        "name", "type", "shape", "bytes", "offset"
    );
    for t in g.tensors() {
        let shape = t
            .dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" x ");
        println!(
            "  {:<36} {:<8} {:<22} {:>12} {:>12}",
            t.name,
            t.ty.name(),
            shape,
            t.size,
            g.data_offset() as u64 + t.offset
        );
    }
    Ok(())
}

fn value_json(g: &Gguf, v: &Value) -> serde_json::Value {
    match *v {
        Value::Array(a) if a.len > 16 => {
            json!({"type": "array", "elem": a.elem.name(), "len": a.len})
        }
        _ => meta_json(&g.to_owned_value(v)),
    }
}

fn meta_json(m: &crate::gguf::MetaValue) -> serde_json::Value {
    use crate::gguf::MetaValue as M;
    match m {
        M::U8(x) => json!(x),
        M::I8(x) => json!(x),
        M::U16(x) => json!(x),
        M::I16(x) => json!(x),
        M::U32(x) => json!(x),
        M::I32(x) => json!(x),
        M::U64(x) => json!(x),
        M::I64(x) => json!(x),
        M::F32(x) => json!(x),
        M::F64(x) => json!(x),
        M::Bool(x) => json!(x),
        M::String(s) => json!(String::from_utf8_lossy(s)),
        M::Array(_, items) => serde_json::Value::Array(items.iter().map(meta_json).collect()),
    }
}

pub fn to_json(g: &Gguf, s: &Summary) -> serde_json::Value {
    let mut meta = Map::new();
    for (k, v) in g.metadata() {
        meta.insert(k.to_string(), value_json(g, v));
    }
    let tensors: Vec<_> = g
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "bytes": t.size,
                "offset": g.data_offset() as u64 + t.offset,
            })
        })
        .collect();
    json!({
        "path": g.path().map(|p| p.display().to_string()),
        "version": g.version(),
        "alignment": g.alignment(),
        "file_size": s.file_size,
        "architecture": s.architecture,
        "name": s.name,
        "n_params": s.n_params,
        "file_type": s.file_type,
        "file_type_name": s.file_type.map(file_type_name),
        "context_length": s.context_length,
        "block_count": s.block_count,
        "embedding_length": s.embedding_length,
        "feed_forward_length": s.feed_forward_length,
        "head_count": s.head_count,
        "head_count_kv": s.head_count_kv,
        "tokenizer_model": s.tokenizer_model,
        "vocab_size": s.vocab_size,
        "has_chat_template": s.has_chat_template,
        "metadata": meta,
        "tensors": tensors,
    })
}
