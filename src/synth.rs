//! Synthetic models: random-weight GGUF files of any supported architecture and shape, with a
//! real tokenizer copied from another GGUF, written deterministically from a seed (the same seed,
//! shape and type give the same bytes on every machine and thread count). They let speed work use
//! realistic shapes (1B, 7B) without downloads, and let correctness tests cover architectures
//! whose real files cannot be fetched here (qwen2, qwen3): llama.cpp loads them too.

use crate::gguf::{file_type_of, Gguf, GgufWriter, MetaValue};
use crate::model::Arch;
use anyhow::{bail, Context as _, Result};
use nib_simd::GgmlType;
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The shape of a synthetic model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
}

impl Shape {
    /// Named shapes: `tiny` (tests), `small`, `1b` and `7b` (llama-like speed work).
    pub fn preset(name: &str) -> Result<Shape> {
        let s = |n_embd, n_layer, n_head, n_head_kv, n_ff| Shape {
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim: n_embd / n_head,
            n_ff,
        };
        Ok(match name {
            "tiny" => s(256, 2, 4, 2, 512),
            "small" => s(512, 4, 8, 2, 1408),
            "1b" => s(2048, 16, 32, 8, 8192),
            "7b" => s(4096, 32, 32, 32, 11008),
            other => bail!("unknown shape {other:?} (tiny, small, 1b, 7b)"),
        })
    }
}

/// Everything that decides a synthetic file's bytes.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub arch: Arch,
    pub shape: Shape,
    /// Type of the layer matrices and the output projection.
    pub weight_type: GgmlType,
    pub seed: u64,
    pub n_ctx_train: usize,
    /// Sliding window for gemma3 (0: none).
    pub sliding_window: usize,
}

/// SplitMix64: a small, well-mixed generator; one stream per (tensor, chunk).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Two independent standard normals (Box-Muller).
    fn normal2(&mut self) -> (f32, f32) {
        let (u, v) = (self.unit(), self.unit());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        ((r * t.cos()) as f32, (r * t.sin()) as f32)
    }
}

/// FNV-1a of a name, to derive per-tensor seeds.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `rows` rows of `cols` normal values with mean `mean` and deviation `std`, generated in
/// fixed chunks so the result does not depend on the thread count.
fn random_rows(seed: u64, name: &str, rows: usize, cols: usize, mean: f32, std: f32) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    let base = seed ^ fnv1a(name);
    out.par_chunks_mut(cols * 16)
        .enumerate()
        .for_each(|(chunk, xs)| {
            let mut rng = SplitMix(base ^ (chunk as u64).wrapping_mul(0xA24B_AED4_963E_E407));
            for pair in xs.chunks_mut(2) {
                let (a, b) = rng.normal2();
                pair[0] = mean + std * a;
                if pair.len() > 1 {
                    pair[1] = mean + std * b;
                }
            }
        });
    out
}

/// Convert f32 rows (each `cols` long) into `ty`'s bytes.
pub fn quantize_weights(ty: GgmlType, x: &[f32], cols: usize) -> Result<Vec<u8>> {
    let f = nib_simd::formats::weight_quantizer(ty)
        .ok_or_else(|| anyhow::anyhow!("nib cannot quantize weights to {ty}"))?;
    let rb = ty
        .row_size(cols)
        .ok_or_else(|| anyhow::anyhow!("{cols} columns do not fit {ty} blocks"))?;
    let rows = x.len() / cols;
    let mut out = vec![0u8; rb * rows];
    out.par_chunks_mut(rb)
        .zip(x.par_chunks(cols))
        .for_each(|(o, xi)| f(xi, o));
    Ok(out)
}

/// One tensor to write: its name, GGUF dims, type and how to make its values.
struct Plan {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    mean: f32,
    std: f32,
}

/// Write a synthetic model to `out`, copying every `tokenizer.*` key from `vocab_from`.
pub fn write_synthetic(spec: &SynthSpec, vocab_from: &Gguf, out: &Path) -> Result<()> {
    let sh = spec.shape;
    let arch = spec.arch;
    let a = arch.name();
    if !sh.n_head.is_multiple_of(sh.n_head_kv) || !sh.head_dim.is_multiple_of(2) {
        bail!("inconsistent shape {sh:?}");
    }
    let n_vocab = vocab_from.get_array("tokenizer.ggml.tokens")?.len;
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::str(a))?;
    w.set(
        "general.name",
        MetaValue::str(&format!("nib synthetic {a} seed {}", spec.seed)),
    )?;
    w.set(
        "general.file_type",
        MetaValue::U32(file_type_of(spec.weight_type).unwrap_or(0)),
    )?;
    w.set("general.quantization_version", MetaValue::U32(2))?;
    let key = |k: &str| format!("{a}.{k}");
    let u32_of = |v: usize| MetaValue::U32(v as u32);
    for (k, v) in [
        ("context_length", spec.n_ctx_train),
        ("embedding_length", sh.n_embd),
        ("block_count", sh.n_layer),
        ("feed_forward_length", sh.n_ff),
        ("attention.head_count", sh.n_head),
        ("attention.head_count_kv", sh.n_head_kv),
    ] {
        w.set(&key(k), u32_of(v))?;
    }
    w.set(
        &key("attention.layer_norm_rms_epsilon"),
        MetaValue::F32(1e-6),
    )?;
    w.set(&key("rope.dimension_count"), u32_of(sh.head_dim))?;
    let rope_base = match arch {
        Arch::Llama => 10_000.0,
        Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 => 1_000_000.0,
    };
    w.set(&key("rope.freq_base"), MetaValue::F32(rope_base))?;
    if sh.head_dim != sh.n_embd / sh.n_head || matches!(arch, Arch::Gemma3 | Arch::Qwen3) {
        w.set(&key("attention.key_length"), u32_of(sh.head_dim))?;
        w.set(&key("attention.value_length"), u32_of(sh.head_dim))?;
    }
    if arch == Arch::Gemma3 && spec.sliding_window > 0 {
        w.set(
            &key("attention.sliding_window"),
            u32_of(spec.sliding_window),
        )?;
    }
    for (k, v) in vocab_from.metadata() {
        if k.starts_with("tokenizer.") {
            w.set(k, vocab_from.to_owned_value(v))?;
        }
    }

    // Deviations that keep activations of order one through the layers and give logits a
    // spread of a few units, so top-1 choices are clear.
    let d = sh.n_embd as u64;
    let (q_dim, kv_dim) = (
        (sh.n_head * sh.head_dim) as u64,
        (sh.n_head_kv * sh.head_dim) as u64,
    );
    let inv = |n: u64| 1.0 / (n as f32).sqrt();
    let wt = spec.weight_type;
    // The embedding table is read row by row; Q8_0 keeps it accurate whatever the layer type.
    let embd_ty = if wt == GgmlType::F32 || wt == GgmlType::F16 {
        wt
    } else {
        GgmlType::Q8_0
    };
    let mut plans = vec![
        Plan {
            name: "token_embd.weight".into(),
            dims: vec![d, n_vocab as u64],
            ty: embd_ty,
            mean: 0.0,
            std: 1.0,
        },
        Plan {
            name: "output_norm.weight".into(),
            dims: vec![d],
            ty: GgmlType::F32,
            mean: 1.0,
            std: 0.1,
        },
        Plan {
            name: "output.weight".into(),
            dims: vec![d, n_vocab as u64],
            ty: wt,
            mean: 0.0,
            std: 3.0 * inv(d),
        },
    ];
    for i in 0..sh.n_layer {
        let t = |s: &str| format!("blk.{i}.{s}");
        let mut add = |name: String, dims: Vec<u64>, ty: GgmlType, mean: f32, std: f32| {
            plans.push(Plan {
                name,
                dims,
                ty,
                mean,
                std,
            })
        };
        add(t("attn_norm.weight"), vec![d], GgmlType::F32, 1.0, 0.1);
        add(t("attn_q.weight"), vec![d, q_dim], wt, 0.0, inv(d));
        add(t("attn_k.weight"), vec![d, kv_dim], wt, 0.0, inv(d));
        add(t("attn_v.weight"), vec![d, kv_dim], wt, 0.0, inv(d));
        if arch == Arch::Qwen2 {
            add(t("attn_q.bias"), vec![q_dim], GgmlType::F32, 0.0, 0.2);
            add(t("attn_k.bias"), vec![kv_dim], GgmlType::F32, 0.0, 0.2);
            add(t("attn_v.bias"), vec![kv_dim], GgmlType::F32, 0.0, 0.2);
        }
        if matches!(arch, Arch::Qwen3 | Arch::Gemma3) {
            add(
                t("attn_q_norm.weight"),
                vec![sh.head_dim as u64],
                GgmlType::F32,
                1.0,
                0.1,
            );
            add(
                t("attn_k_norm.weight"),
                vec![sh.head_dim as u64],
                GgmlType::F32,
                1.0,
                0.1,
            );
        }
        add(t("attn_output.weight"), vec![q_dim, d], wt, 0.0, inv(q_dim));
        if arch == Arch::Gemma3 {
            add(
                t("post_attention_norm.weight"),
                vec![d],
                GgmlType::F32,
                1.0,
                0.1,
            );
        }
        add(t("ffn_norm.weight"), vec![d], GgmlType::F32, 1.0, 0.1);
        add(
            t("ffn_gate.weight"),
            vec![d, sh.n_ff as u64],
            wt,
            0.0,
            inv(d),
        );
        add(t("ffn_up.weight"), vec![d, sh.n_ff as u64], wt, 0.0, inv(d));
        add(
            t("ffn_down.weight"),
            vec![sh.n_ff as u64, d],
            wt,
            0.0,
            inv(sh.n_ff as u64),
        );
        if arch == Arch::Gemma3 {
            add(t("post_ffw_norm.weight"), vec![d], GgmlType::F32, 1.0, 0.1);
        }
    }
    for p in &plans {
        w.add_tensor_info(&p.name, p.ty, &p.dims)?;
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut f = BufWriter::with_capacity(1 << 22, file);
    w.write_header(&mut f)?;
    for (i, p) in plans.iter().enumerate() {
        let cols = p.dims[0] as usize;
        let rows = p.dims[1..].iter().product::<u64>() as usize;
        let x = random_rows(spec.seed, &p.name, rows, cols, p.mean, p.std);
        let bytes = quantize_weights(p.ty, &x, cols)?;
        w.write_tensor_data(&mut f, i, &bytes)?;
    }
    f.flush()?;
    Ok(())
}
