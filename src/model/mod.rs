//! Models: hyperparameters and weights read from a GGUF file, one file per architecture
//! describing how it differs from the shared transformer in [`forward`].
//!
//! Supported: `llama` (Llama 2/3, SmolLM, TinyLlama, Mistral), `gemma3`, `qwen2`, `qwen3`.

pub mod forward;
pub mod gemma3;
pub mod kv_cache;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

use crate::gguf::{Gguf, TensorInfo};
use anyhow::{anyhow, bail, Context as _, Result};
use nib_simd::{interleave, GgmlType, Layout, MatRef};
use std::ops::Range;
use std::path::Path;

pub use forward::{Context, Logits};
pub use kv_cache::{KvCache, KvType};

/// The architectures nib runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Gemma3,
    Qwen2,
    Qwen3,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Gemma3, Arch::Qwen2, Arch::Qwen3];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }

    pub fn from_name(s: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
                anyhow!(
                    "architecture {s:?} is not supported by nib (supported: {})",
                    names.join(", ")
                )
            })
    }

    /// How this architecture shapes the shared transformer.
    pub fn spec(self) -> ArchSpec {
        match self {
            Arch::Llama => llama::SPEC,
            Arch::Gemma3 => gemma3::SPEC,
            Arch::Qwen2 => qwen2::SPEC,
            Arch::Qwen3 => qwen3::SPEC,
        }
    }
}

/// How RoPE pairs up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeKind {
    /// Adjacent pairs `(2i, 2i+1)` (llama.cpp's `LLAMA_ROPE_TYPE_NORM`).
    Normal,
    /// The two halves of the head `(i, i + d/2)` (`LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// The gated feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up`.
    SwiGlu,
    /// `gelu_tanh(gate) * up`.
    GeGlu,
}

/// The ways an architecture departs from the plain llama block. Each architecture file fills
/// one of these in; the forward pass reads only these flags and the hyperparameters.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    pub rope: RopeKind,
    pub activation: Activation,
    /// Multiply token embeddings by √n_embd (gemma).
    pub scale_embeddings: bool,
    /// Per-head RMSNorm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMSNorm after attention and after the FFN, before the residual add (gemma 2/3).
    pub post_norms: bool,
    /// Q/K/V projections carry biases (qwen2).
    pub qkv_bias: bool,
    /// Default rope base when the file sets none.
    pub default_rope_base: f32,
    /// Multiply Q by `attn_scale` in f32 before attention, which then scales by 1 (gemma, as in
    /// llama.cpp's graph); otherwise attention scales each score by `attn_scale`.
    pub scale_q_before_attention: bool,
}

/// RoPE frequency scaling, from `rope.scaling.*`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (`freq_scale = 1/factor`).
    Linear {
        factor: f32,
    },
    /// YaRN: interpolation blended with extrapolation by dimension.
    Yarn {
        factor: f32,
        orig_ctx: u32,
        beta_fast: f32,
        beta_slow: f32,
    },
}

/// Hyperparameters of a loaded model.
#[derive(Clone, Debug)]
pub struct Hparams {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    pub n_ff: usize,
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Rope base of sliding-window layers (gemma3: 10,000).
    pub rope_base_swa: f32,
    pub rope_scaling: RopeScaling,
    /// Multiply attention scores by this (1/√head_dim unless the architecture says otherwise).
    pub attn_scale: f32,
    /// Sliding window size (0: none).
    pub n_swa: usize,
    /// Which layers use the sliding window.
    pub swa_layers: Vec<bool>,
    /// `final_logit_softcapping` (0: none).
    pub final_logit_softcap: f32,
    /// `attn_logit_softcapping` (0: none).
    pub attn_logit_softcap: f32,
}

impl Hparams {
    pub fn is_swa(&self, layer: usize) -> bool {
        self.n_swa > 0 && self.swa_layers.get(layer).copied().unwrap_or(false)
    }
}

/// A weight matrix inside the mapped file.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// How its rows lie: as in the file, or interleaved at load for faster kernels
    /// ([`Model::from_gguf_with`]).
    pub layout: Layout,
    range: Range<usize>,
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Weight,
    pub wk: Weight,
    pub wv: Weight,
    pub wo: Weight,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Weight,
    pub w_up: Weight,
    pub w_down: Weight,
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// A loaded model: the mapped file, its hyperparameters and where every weight lies.
pub struct Model {
    pub gguf: Gguf,
    pub hp: Hparams,
    pub spec: ArchSpec,
    pub tok_embd: Weight,
    pub output_norm: Vec<f32>,
    /// The output projection (`output.weight`, or `token_embd.weight` when tied).
    pub output: Weight,
    pub layers: Vec<Layer>,
    /// Llama 3 `rope_freqs.weight`: per-dimension frequency divisors.
    pub rope_freqs: Option<Vec<f32>>,
    /// Weights interleaved at load from a mapped file (their file pages are released): every
    /// weight whose layout is not `Rows` lies here when this is `Some`.
    repacked: Option<memmap2::MmapMut>,
    /// The file ranges of the weights copied into `repacked`.
    released: Vec<Range<usize>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("hp", &self.hp).finish()
    }
}

/// Options for loading.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Read the file into memory instead of mapping it.
    pub no_mmap: bool,
    /// Lock the mapped pages in memory.
    pub mlock: bool,
    /// Keep every weight in the file's layout (llama.cpp's `--no-repack`); by default the rows
    /// of the 32-element formats are interleaved where the kernels read that faster
    /// ([`Model::from_gguf_with`]).
    pub no_repack: bool,
}

impl Model {
    /// Open a GGUF file and load the model it holds.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let g = if opts.no_mmap {
            Gguf::read(path)?
        } else {
            Gguf::open(path)?
        };
        let model = Model::from_gguf_with(g, !opts.no_repack)
            .with_context(|| format!("loading {}", path.display()))?;
        if opts.mlock {
            // The file's pages, except those of weights copied out (released at load).
            model.gguf.mlock_except(&model.released)?;
            if let Some(r) = &model.repacked {
                r.lock().map_err(|e| {
                    anyhow!(
                        "mlock of the repacked weights ({} bytes) failed: {e}",
                        r.len()
                    )
                })?;
            }
        }
        Ok(model)
    }

    /// Build the model from an open GGUF file, repacking where it pays
    /// ([`Model::from_gguf_with`]).
    pub fn from_gguf(g: Gguf) -> Result<Model> {
        Model::from_gguf_with(g, true)
    }

    /// Build the model from an open GGUF file. With `repack`, every Q4_0 matrix the kernels
    /// have an interleaved tile for is interleaved eight rows at a time
    /// ([`nib_simd::interleave`]), as llama.cpp repacks Q4_0 for its x86 kernels: the same
    /// products to the bit, with fewer instructions per weight; the other 32-element formats
    /// (Q4_1, Q5_0, Q5_1, Q8_0) get their rows interleaved block by block in fours where the
    /// kernels have a tile for that, so a decode tile reads one stream instead of four (the
    /// same arithmetic, from other addresses). Bytes read into memory are
    /// rearranged in place; from a mapped file, the matrices are copied into one anonymous
    /// buffer (huge pages where the kernel allows) and their file pages released, so memory
    /// holds one copy of each weight either way.
    pub fn from_gguf_with(g: Gguf, repack: bool) -> Result<Model> {
        let arch_name = g.get_str("general.architecture")?.to_string();
        let arch = Arch::from_name(&arch_name)?;
        let spec = arch.spec();
        let hp = read_hparams(&g, arch, &spec)?;
        let loader = Loader { g: &g };

        let tok_embd = loader.matrix("token_embd.weight", hp.n_embd, hp.n_vocab)?;
        let output = match g.tensor_info("output.weight") {
            Some(_) => loader.matrix("output.weight", hp.n_embd, hp.n_vocab)?,
            None => tok_embd.clone(),
        };
        let output_norm = loader.vector("output_norm.weight", hp.n_embd)?;
        let rope_freqs = match g.tensor_info("rope_freqs.weight") {
            Some(_) => Some(loader.vector("rope_freqs.weight", hp.n_rot / 2)?),
            None => None,
        };

        let q_dim = hp.n_head * hp.head_dim;
        let k_dim = hp.n_head_kv * hp.head_dim;
        let v_dim = hp.n_head_kv * hp.head_dim_v;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let opt_vec = |name: &str, len: usize, present: bool| -> Result<Option<Vec<f32>>> {
                if present {
                    loader.vector(&n(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: loader.vector(&n("attn_norm.weight"), hp.n_embd)?,
                wq: loader.matrix(&n("attn_q.weight"), hp.n_embd, q_dim)?,
                wk: loader.matrix(&n("attn_k.weight"), hp.n_embd, k_dim)?,
                wv: loader.matrix(&n("attn_v.weight"), hp.n_embd, v_dim)?,
                wo: loader.matrix(
                    &n("attn_output.weight"),
                    hp.n_head * hp.head_dim_v,
                    hp.n_embd,
                )?,
                bq: opt_vec("attn_q.bias", q_dim, spec.qkv_bias)?,
                bk: opt_vec("attn_k.bias", k_dim, spec.qkv_bias)?,
                bv: opt_vec("attn_v.bias", v_dim, spec.qkv_bias)?,
                q_norm: opt_vec("attn_q_norm.weight", hp.head_dim, spec.qk_norm)?,
                k_norm: opt_vec("attn_k_norm.weight", hp.head_dim, spec.qk_norm)?,
                post_attn_norm: opt_vec("post_attention_norm.weight", hp.n_embd, spec.post_norms)?,
                ffn_norm: loader.vector(&n("ffn_norm.weight"), hp.n_embd)?,
                w_gate: loader.matrix(&n("ffn_gate.weight"), hp.n_embd, hp.n_ff)?,
                w_up: loader.matrix(&n("ffn_up.weight"), hp.n_embd, hp.n_ff)?,
                w_down: loader.matrix(&n("ffn_down.weight"), hp.n_ff, hp.n_embd)?,
                post_ffn_norm: opt_vec("post_ffw_norm.weight", hp.n_embd, spec.post_norms)?,
            });
        }
        let mut model = Model {
            gguf: g,
            hp,
            spec,
            tok_embd,
            output_norm,
            output,
            layers,
            rope_freqs,
            repacked: None,
            released: Vec::new(),
        };
        if repack {
            model.interleave_weights()?;
        }
        Ok(model)
    }

    /// Interleave the matrices that can be (see [`Model::from_gguf_with`]). The token embedding
    /// is read row by row, so it (and an output projection tied to it) keeps the file's layout.
    fn interleave_weights(&mut self) -> Result<()> {
        let k = nib_simd::kernels();
        let Model {
            gguf,
            tok_embd,
            output,
            layers,
            repacked,
            released,
            ..
        } = self;
        let mut weights: Vec<&mut Weight> = Vec::new();
        if output.range != tok_embd.range {
            weights.push(output);
        }
        for l in layers.iter_mut() {
            weights.extend([
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        // Each matrix's layout where a kernel reads an interleaved one faster.
        let layout_for = |w: &Weight| {
            k.get(w.ty)
                .map_or(Layout::Rows, |t| interleave::best_layout(t, w.rows, w.cols))
        };
        weights.retain(|w| layout_for(w) != Layout::Rows);
        if weights.is_empty() {
            return Ok(());
        }
        if let Some(bytes) = gguf.bytes_mut() {
            for w in weights {
                w.layout = layout_for(w);
                let m = &mut bytes[w.range.clone()];
                interleave::interleave_in_place(w.layout, w.ty, m, w.rows, w.cols);
            }
            return Ok(());
        }
        // Mapped: one buffer for all, each matrix at a 64-byte boundary.
        let mut at = 0;
        let places: Vec<Range<usize>> = weights
            .iter()
            .map(|w| {
                let r = at..at + w.range.len();
                at = r.end.div_ceil(64) * 64;
                r
            })
            .collect();
        let mut buf = memmap2::MmapMut::map_anon(at)
            .map_err(|e| anyhow!("cannot allocate {at} bytes for the repacked weights: {e}"))?;
        // Fewer, cheaper page faults (a hint; the buffer works without).
        #[cfg(target_os = "linux")]
        let _ = buf.advise(memmap2::Advice::HugePage);
        for (w, place) in weights.into_iter().zip(places) {
            let src = &gguf.bytes()[w.range.clone()];
            w.layout = layout_for(w);
            let dst = &mut buf[place.clone()];
            interleave::interleave_into(w.layout, w.ty, src, dst, w.rows, w.cols);
            gguf.release_pages(w.range.clone());
            released.push(w.range.clone());
            w.range = place;
        }
        *repacked = Some(buf);
        Ok(())
    }

    /// A weight as a kernel matrix view.
    pub fn mat(&self, w: &Weight) -> MatRef<'_> {
        MatRef {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            // Interleaved weights of a mapped file are in the repacked buffer (read into memory,
            // they were rearranged where they lie).
            data: match &self.repacked {
                Some(buf) if w.layout != Layout::Rows => &buf[w.range.clone()],
                _ => &self.gguf.bytes()[w.range.clone()],
            },
            layout: w.layout,
        }
    }

    /// Bytes of all weights (the file's data section).
    pub fn weight_bytes(&self) -> u64 {
        self.gguf.tensors().iter().map(|t| t.size).sum()
    }

    /// Total parameters.
    pub fn n_params(&self) -> u64 {
        self.gguf.n_params()
    }

    /// A short description like llama-bench's "llama ?B Q4_1".
    pub fn describe(&self) -> String {
        let ft = self
            .gguf
            .get_u32("general.file_type")
            .map(crate::gguf::file_type_name)
            .unwrap_or("unknown");
        format!(
            "{} {} {}",
            self.hp.arch.name(),
            crate::gguf::human_params(self.n_params()).replace(' ', ""),
            ft
        )
    }
}

/// Reads and shape-checks tensors.
struct Loader<'a> {
    g: &'a Gguf,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.g
            .tensor_info(name)
            .ok_or_else(|| anyhow!("tensor {name:?} is missing"))
    }

    /// A matrix of `rows` rows of `cols` elements (GGUF dims `[cols, rows]`).
    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Weight> {
        let t = self.info(name)?;
        if t.dims.len() != 2 || t.dims[0] != cols as u64 || t.dims[1] != rows as u64 {
            bail!(
                "tensor {name:?} has shape {:?}, expected [{cols}, {rows}]",
                t.dims
            );
        }
        let k = nib_simd::kernels();
        let traits = k.get(t.ty).ok_or_else(|| {
            anyhow!(
                "tensor {name:?} has type {}, which nib cannot compute with",
                t.ty
            )
        })?;
        if traits.vec_dot.is_none()
            || k.get(traits.vec_dot_type)
                .and_then(|a| a.from_float)
                .is_none()
        {
            bail!(
                "tensor {name:?} has type {}, which nib cannot multiply",
                t.ty
            );
        }
        let start = self.g.data_offset() + t.offset as usize;
        Ok(Weight {
            name: name.to_string(),
            ty: t.ty,
            rows,
            cols,
            layout: Layout::Rows,
            range: start..start + t.size as usize,
        })
    }

    /// A vector of `len` values, converted to f32.
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.info(name)?;
        if t.n_elements() != len as u64 || t.dims.len() != 1 {
            bail!("tensor {name:?} has shape {:?}, expected [{len}]", t.dims);
        }
        let to_float = nib_simd::kernels()
            .get(t.ty)
            .and_then(|tr| tr.to_float)
            .ok_or_else(|| anyhow!("tensor {name:?} has type {}, which nib cannot read", t.ty))?;
        let mut out = vec![0f32; len];
        to_float(self.g.tensor_data(t), &mut out);
        Ok(out)
    }
}

fn read_hparams(g: &Gguf, arch: Arch, spec: &ArchSpec) -> Result<Hparams> {
    let a = arch.name();
    let key = |k: &str| format!("{a}.{k}");
    let n_embd = g.get_u32(&key("embedding_length"))? as usize;
    let n_layer = g.get_u32(&key("block_count"))? as usize;
    let n_head = g.get_u32(&key("attention.head_count"))? as usize;
    let n_head_kv = g
        .opt_u32(&key("attention.head_count_kv"))?
        .map_or(n_head, |v| v as usize);
    let n_ff = g.get_u32(&key("feed_forward_length"))? as usize;
    let n_ctx_train = g.get_u32(&key("context_length"))? as usize;
    let rms_eps = g.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
    if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 || n_layer == 0 || n_embd == 0 {
        bail!("inconsistent shape: {n_head} heads, {n_head_kv} kv heads, {n_layer} layers, embedding {n_embd}");
    }
    let head_dim = g
        .opt_u32(&key("attention.key_length"))?
        .map_or(n_embd / n_head, |v| v as usize);
    let head_dim_v = g
        .opt_u32(&key("attention.value_length"))?
        .map_or(n_embd / n_head, |v| v as usize);
    let n_rot = g
        .opt_u32(&key("rope.dimension_count"))?
        .map_or(head_dim, |v| v as usize);
    if n_rot > head_dim || n_rot % 2 != 0 {
        bail!("rope.dimension_count {n_rot} does not fit head size {head_dim}");
    }
    let n_vocab = match g.opt_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => {
            g.get_array("tokenizer.ggml.tokens")
                .context("no vocabulary size")?
                .len
        }
    };
    let rope_base = g
        .opt_f32(&key("rope.freq_base"))?
        .unwrap_or(spec.default_rope_base);
    let scaling_type = g
        .opt_str(&key("rope.scaling.type"))?
        .unwrap_or("linear")
        .to_string();
    let factor = match g.opt_f32(&key("rope.scaling.factor"))? {
        Some(f) => f,
        None => g.opt_f32(&key("rope.scale_linear"))?.unwrap_or(0.0),
    };
    let rope_scaling = match (scaling_type.as_str(), factor) {
        (_, f) if f == 0.0 || f == 1.0 => RopeScaling::None,
        ("none", _) => RopeScaling::None,
        ("linear", f) => RopeScaling::Linear { factor: f },
        ("yarn", f) => RopeScaling::Yarn {
            factor: f,
            orig_ctx: g
                .opt_u32(&key("rope.scaling.original_context_length"))?
                .unwrap_or(n_ctx_train as u32),
            beta_fast: g
                .opt_f32(&key("rope.scaling.yarn_beta_fast"))?
                .unwrap_or(32.0),
            beta_slow: g
                .opt_f32(&key("rope.scaling.yarn_beta_slow"))?
                .unwrap_or(1.0),
        },
        (other, _) => bail!("rope scaling type {other:?} is not supported (none, linear, yarn)"),
    };
    let mut hp = Hparams {
        arch,
        n_vocab,
        n_ctx_train,
        n_embd,
        n_layer,
        n_head,
        n_head_kv,
        head_dim,
        head_dim_v,
        n_ff,
        n_rot,
        rms_eps,
        rope_base,
        rope_base_swa: rope_base,
        rope_scaling,
        attn_scale: 1.0 / (head_dim as f32).sqrt(),
        n_swa: 0,
        swa_layers: vec![false; n_layer],
        final_logit_softcap: g.opt_f32(&key("final_logit_softcapping"))?.unwrap_or(0.0),
        attn_logit_softcap: g.opt_f32(&key("attn_logit_softcapping"))?.unwrap_or(0.0),
    };
    match arch {
        Arch::Gemma3 => gemma3::adjust_hparams(g, &mut hp)?,
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => {}
    }
    Ok(hp)
}
