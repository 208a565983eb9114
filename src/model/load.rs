//! Loading: a model's weights found and shape-checked in its GGUF file, its hyperparameters
//! read, and the matrices the kernels read faster interleaved, rearranged in place (bytes read
//! into memory) or copied into one anonymous map (huge pages where the kernel allows) whose
//! file pages are released.

use super::hparams::read_hparams;
use super::{gemma3, llama, qwen2, qwen3};
use super::{Arch, ArchSpec, Layer, LoadOptions, Model, Weight};
use crate::gguf::{Gguf, TensorInfo};
use anyhow::{anyhow, bail, Context as _, Result};
use nib_simd::{interleave, Layout};
use std::ops::Range;
use std::path::Path;

impl Arch {
    /// How this architecture shapes the shared transformer (its file's `SPEC`).
    pub fn spec(self) -> ArchSpec {
        match self {
            Arch::Llama => llama::SPEC,
            Arch::Gemma3 => gemma3::SPEC,
            Arch::Qwen2 => qwen2::SPEC,
            Arch::Qwen3 => qwen3::SPEC,
        }
    }
}

impl Model {
    /// Open a GGUF file and load the model it holds.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let g = if opts.no_mmap {
            Gguf::read(path)?
        } else {
            Gguf::open(path)?
        };
        let model = Model::from_gguf_with(g, !opts.no_interleave)
            .with_context(|| format!("loading {}", path.display()))?;
        if opts.mlock {
            // The file's pages, except those of weights copied out (released at load).
            model.gguf.mlock_except(&model.released)?;
            if let Some(r) = &model.interleaved {
                r.lock().map_err(|e| {
                    anyhow!(
                        "mlock of the interleaved weights ({} bytes) failed: {e}",
                        r.len()
                    )
                })?;
            }
        }
        Ok(model)
    }

    /// The architecture's shape and the hyperparameters of a file, every one checked against its
    /// bounds (nothing is sized from them before): what loading starts with, and what `nib
    /// inspect` checks.
    pub fn hparams_of(g: &Gguf) -> Result<(ArchSpec, super::Hparams)> {
        let arch = Arch::from_name(g.get_str("general.architecture")?)?;
        let spec = arch.spec();
        let mut hp = read_hparams(g, arch, &spec)?;
        match arch {
            Arch::Gemma3 => gemma3::adjust_hparams(g, &mut hp)?,
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => {}
        }
        Ok((spec, hp))
    }

    /// Build the model from an open GGUF file, interleaving where it pays
    /// ([`Model::from_gguf_with`]).
    pub fn from_gguf(g: Gguf) -> Result<Model> {
        Model::from_gguf_with(g, true)
    }

    /// Build the model from an open GGUF file. With `interleave`, every Q4_0 matrix the kernels
    /// have an interleaved tile for is interleaved eight rows at a time
    /// ([`nib_simd::interleave`]), as llama.cpp repacks Q4_0 for its x86 kernels: the same
    /// products to the bit, with fewer instructions per weight; the other 32-element formats
    /// (Q4_1, Q5_0, Q5_1, Q8_0) get their rows interleaved block by block in fours where the
    /// kernels have a tile for that, so a decode tile reads one stream instead of four (the
    /// same arithmetic, from other addresses). Bytes read into memory are
    /// rearranged in place; from a mapped file, the matrices are copied into one anonymous
    /// buffer (huge pages where the kernel allows) and their file pages released, so memory
    /// holds one copy of each weight either way.
    pub fn from_gguf_with(g: Gguf, interleave: bool) -> Result<Model> {
        let (spec, hp) = Model::hparams_of(&g)?;
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
            interleaved: None,
            released: Vec::new(),
        };
        if interleave {
            model.interleave_weights()?;
        }
        Ok(model)
    }

    /// Interleave the matrices that can be (see [`Model::from_gguf_with`]). The token embedding
    /// is read row by row, so it keeps the file's layout, unless the output projection is tied
    /// to it: then the one matrix is interleaved for the projection (one of the largest of the
    /// model) and the embedding puts its rows back together as it reads them.
    fn interleave_weights(&mut self) -> Result<()> {
        let tied = self.output.range == self.tok_embd.range;
        self.interleave_matrices()?;
        if tied {
            self.output = self.tok_embd.clone();
        }
        Ok(())
    }

    /// The work of [`Model::interleave_weights`]: each matrix a kernel reads faster interleaved
    /// gets that layout; a tied pair is interleaved once, through the token embedding.
    fn interleave_matrices(&mut self) -> Result<()> {
        let k = nib_simd::kernels();
        let Model {
            gguf,
            tok_embd,
            output,
            layers,
            interleaved,
            released,
            ..
        } = self;
        let tied = output.range == tok_embd.range;
        let mut weights: Vec<&mut Weight> = Vec::new();
        if tied {
            weights.push(tok_embd);
        } else {
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
        let layout_for = |w: &Weight| k.best_layout(w.ty, w.rows, w.cols);
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
            .map_err(|e| anyhow!("cannot allocate {at} bytes for the interleaved weights: {e}"))?;
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
        *interleaved = Some(buf);
        Ok(())
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
        if traits.dot(nib_simd::Order::Vec).is_none()
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
