//! The forward pass: tokens → embeddings → N transformer blocks → final norm → logits, for a
//! batch of tokens at consecutive positions, reading and extending the KV cache. One readable
//! function (`forward`, below [`Context`]) over the small named steps of [`crate::ops`];
//! architectures differ only by the flags of their [`ArchSpec`](super::ArchSpec).
//!
//! # Parity with llama.cpp
//!
//! With the scalar reference kernels, the forward pass reproduces llama.cpp's x86-64 CPU backend
//! (the AVX-512 build that made `tests/golden/`) bit for bit, logits included, when the run is
//! set up as llama.cpp's was:
//!
//! * batches of `n_batch` tokens here are llama.cpp's ubatches (`n_ubatch`, 512 in the goldens):
//!   the matmul kernel llama.cpp picks, and so the float order, depends on the batch size
//!   ([`nib_simd::TypeTraits::dot_for`]), as do the attention path and the KV view;
//! * an f16 KV cache; flash attention on; [`Context::kv_split`] equal to llama.cpp's thread count
//!   (it only matters for decoding over 512 or more cells); `swa_full` as llama.cpp had it
//!   ([`Context::set_swa_full`]);
//! * `expf`, `tanhf`, `sinf`/`cosf` come from the platform's libm, as in llama.cpp: glibc on
//!   x86-64 for the goldens.
//!
//! Exact so far: weight types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K (every llama.cpp kernel
//! for them: `vec_dot`, tinyBLAS, the tiled K-quant matmul, the repacked Q4_0/Q4_K layouts), RMSNorm,
//! RoPE (normal and NeoX, no YaRN), SwiGLU, GeGLU, flash attention on its three paths, gemma's
//! scalings and sliding window; checked on SmolLM2 (Q4_1, Q4_0, Q8_0) and gemma-3 (Q4_K_M) for
//! prompts up to 1,127 tokens and decoding past 512 cells. Not reproduced: batches of F16/BF16/F32
//! weights (llamafile's float tinyBLAS), Q2_K/Q3_K/Q5_K (generic orders), the f32 KV cache and
//! the attention softcap (structure followed, unverified), YaRN's blend. The SIMD kernel levels
//! must return the scalar reference's bits to keep this.

use super::kv_cache::{CellMap, KvCache, KvType};
use super::{Activation, Model, RopeScaling};
use crate::ops::attention::{attention, llama_n_kv, AttnParams, Cells};
use crate::ops::rope::Rope;
use crate::ops::{self, QuantBuf};
use anyhow::{bail, Result};
use nib_simd::vec;
use std::sync::Arc;

/// Which logits a call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's (perplexity, scoring).
    All,
}

/// Activations for up to `n_batch` tokens, allocated once per context (a batch of `t` tokens
/// uses the first `t` rows of each).
struct Scratch {
    x: Vec<f32>,    // (n_batch, n_embd): the residual stream
    xn: Vec<f32>,   // (n_batch, n_embd): x normalised
    q: Vec<f32>,    // (n_batch, n_head * head_dim)
    k: Vec<f32>,    // (n_batch, n_head_kv * head_dim)
    v: Vec<f32>,    // (n_batch, n_head_kv * head_dim_v)
    att: Vec<f32>,  // (n_batch, n_head * head_dim_v): attention's output
    o: Vec<f32>,    // (n_batch, n_embd): a block's output, before the residual add
    gate: Vec<f32>, // (n_batch, n_ff), then the activation's output
    up: Vec<f32>,   // (n_batch, n_ff)
    /// RoPE angles of the batch's positions, for the main and the sliding-window base: per token,
    /// `n_rot / 2` cosines then `n_rot / 2` sines (computed once per batch, used by every layer).
    angles: [Vec<f32>; 2], // (2, n_batch, n_rot)
    /// Activations converted to a weight's `vec_dot_type` (bytes).
    qb: QuantBuf,
    /// (n_vocab); (n_tokens, n_vocab) for [`Logits::All`], (n_contexts, n_vocab) for
    /// [`Context::decode_batch`].
    logits: Vec<f32>,
}

/// A callback receiving intermediate tensors by name (see [`Context::trace`]).
pub type TraceFn = Box<dyn FnMut(&str, &[f32]) + Send>;

/// The llama.cpp thread count whose split-KV decode attention nib reproduces by default (the
/// goldens were made with 2 threads); see [`crate::ops::attention`].
pub const DEFAULT_KV_SPLIT: usize = 2;

/// An inference context: a model, its KV cache and scratch buffers. Several contexts can share
/// one model (the server gives each slot its own).
pub struct Context {
    pub model: Arc<Model>,
    /// Called with llama.cpp's tensor names (`attn_norm-0`, `Qcur-0`, `l_out-0`, ...) and the
    /// batch's values at each step, for comparing intermediate results (`None`: no cost).
    pub trace: Option<TraceFn>,
    /// Keys (n_layer, n_ctx, n_head_kv * head_dim) and values (n_layer, n_ctx,
    /// n_head_kv * head_dim_v).
    pub kv: KvCache,
    /// Decode attention over 512 or more cells is computed in this many chunks, as llama.cpp does
    /// with this many threads ([`DEFAULT_KV_SPLIT`]; 1: never split).
    pub kv_split: usize,
    /// llama.cpp's placement of positions in its sliding-window cache when that cache is a ring
    /// (see [`Context::set_swa_full`]).
    swa_cells: Option<CellMap>,
    n_past: usize,
    n_batch: usize,
    s: Scratch,
    rope: Rope,
    rope_swa: Rope,
}

impl Context {
    /// A context of `n_ctx` positions processing prompts in batches of `n_batch` tokens.
    pub fn new(
        model: Arc<Model>,
        n_ctx: usize,
        n_batch: usize,
        kv_type: KvType,
    ) -> Result<Context> {
        let hp = &model.hp;
        if n_ctx == 0 || n_batch == 0 {
            bail!("context size and batch size must be positive");
        }
        let n_batch = n_batch.min(n_ctx);
        let q_dim = hp.n_head * hp.head_dim;
        let kv_k = hp.n_head_kv * hp.head_dim;
        let kv_v = hp.n_head_kv * hp.head_dim_v;
        let att_dim = hp.n_head * hp.head_dim_v;
        let widest = hp.n_embd.max(hp.n_ff).max(att_dim);
        let s = Scratch {
            x: vec![0.0; n_batch * hp.n_embd],
            xn: vec![0.0; n_batch * hp.n_embd],
            q: vec![0.0; n_batch * q_dim],
            k: vec![0.0; n_batch * kv_k],
            v: vec![0.0; n_batch * kv_v],
            att: vec![0.0; n_batch * att_dim],
            o: vec![0.0; n_batch * hp.n_embd],
            gate: vec![0.0; n_batch * hp.n_ff],
            up: vec![0.0; n_batch * hp.n_ff],
            angles: [vec![0.0; n_batch * hp.n_rot], vec![0.0; n_batch * hp.n_rot]],
            // Q8_0 takes 34 bytes per 32 values, the widest activation format per value.
            qb: QuantBuf::with_capacity(n_batch * widest.div_ceil(32) * 36 + 1024),
            logits: vec![0.0; hp.n_vocab],
        };
        let kind = model.spec.rope;
        let rope = Rope::new(
            kind,
            hp.n_rot,
            hp.rope_base,
            hp.rope_scaling,
            model.rope_freqs.clone(),
        );
        let rope_swa = Rope::new(kind, hp.n_rot, hp.rope_base_swa, RopeScaling::None, None);
        let kv = KvCache::new(kv_type, hp.n_layer, n_ctx, kv_k, kv_v);
        Ok(Context {
            model,
            trace: None,
            kv,
            kv_split: DEFAULT_KV_SPLIT,
            swa_cells: None,
            n_past: 0,
            n_batch,
            s,
            rope,
            rope_swa,
        })
    }

    /// Whether sliding-window layers keep every position (llama.cpp's `swa_full`, true by default
    /// in `llama_context_default_params`, as in the goldens) or a ring of
    /// `pad256(min(n_ctx, n_swa + n_batch))` cells reusing the ones the window has left (its
    /// `common` tools' default). Attention visits cells in llama.cpp's order either way. Only on
    /// an empty context.
    pub fn set_swa_full(&mut self, full: bool) {
        assert_eq!(self.n_past, 0, "set_swa_full on a context in use");
        let hp = &self.model.hp;
        let has_swa = hp.n_swa > 0 && (0..hp.n_layer).any(|il| hp.is_swa(il));
        self.swa_cells = (has_swa && !full).then(|| {
            CellMap::new(
                llama_swa_cells(hp.n_swa, self.n_batch, self.kv.n_ctx),
                hp.n_swa,
            )
        });
    }

    /// Positions filled so far.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx
    }

    pub fn n_batch(&self) -> usize {
        self.n_batch
    }

    /// Forget every position (a new conversation).
    pub fn clear(&mut self) {
        self.n_past = 0;
        if let Some(c) = &mut self.swa_cells {
            c.clear();
        }
    }

    /// Forget positions from `n` on (keep a shared prefix).
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
        if let Some(c) = &mut self.swa_cells {
            c.remove_from(self.n_past);
        }
    }

    /// Feed `tokens` at the next positions, in batches of `n_batch`, and return logits: the last
    /// token's (`n_vocab` values) or every token's (`tokens.len() * n_vocab`).
    pub fn eval(&mut self, tokens: &[u32], which: Logits) -> Result<&[f32]> {
        let n_vocab = self.model.hp.n_vocab;
        if tokens.is_empty() {
            bail!("no tokens to evaluate");
        }
        if self.n_past + tokens.len() > self.kv.n_ctx {
            bail!(
                "{} tokens do not fit in the context: {} of {} positions are used (raise -c/--ctx-size)",
                tokens.len(),
                self.n_past,
                self.kv.n_ctx
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            bail!("token id {bad} is outside the vocabulary of {n_vocab}");
        }
        if which == Logits::All && self.s.logits.len() < tokens.len() * n_vocab {
            self.s.logits.resize(tokens.len() * n_vocab, 0.0);
        }
        let mut done = 0;
        for chunk in tokens.chunks(self.n_batch) {
            let last_chunk = done + chunk.len() == tokens.len();
            let out_at = match which {
                Logits::All => Some(done),
                Logits::Last if last_chunk => Some(0),
                Logits::Last => None,
            };
            let (seq, parts) = self.split(chunk.len());
            forward(parts, &mut [seq], chunk, which, out_at);
            self.n_past += chunk.len();
            done += chunk.len();
        }
        Ok(match which {
            Logits::Last => &self.s.logits[..n_vocab],
            Logits::All => &self.s.logits[..tokens.len() * n_vocab],
        })
    }

    /// This context as the sequence of a batch (its next `n` positions) and as the holder of
    /// the batch's scratch and model (disjoint borrows).
    fn split(&mut self, n: usize) -> (Seq<'_>, Parts<'_>) {
        let seq = Seq {
            kv: &mut self.kv,
            swa_cells: &mut self.swa_cells,
            pos0: self.n_past,
            n,
            off: 0,
            kv_split: self.kv_split,
        };
        let parts = Parts {
            model: &self.model,
            s: &mut self.s,
            rope: &self.rope,
            rope_swa: &self.rope_swa,
            trace: &mut self.trace,
        };
        (seq, parts)
    }

    /// One decoding step for several contexts of the same model at once: token `tokens[i]` at
    /// the next position of `ctxs[i]`, each attending to its own KV cache, while every matrix
    /// product runs once for the whole batch (the weights are read once for all of them; this
    /// is how `nib serve --parallel N` makes N generations cost little more than one). Each
    /// context's logits are then in [`Context::last_logits`]. The products run in the batch's
    /// summation orders, as llama.cpp's do for a batch of sequences, so the logits may differ
    /// in the last bits from decoding each context alone.
    pub fn decode_batch(ctxs: &mut [&mut Context], tokens: &[u32]) -> Result<()> {
        let Some((first, rest)) = ctxs.split_first_mut() else {
            bail!("no contexts to decode");
        };
        if tokens.len() != rest.len() + 1 {
            bail!("{} tokens for {} contexts", tokens.len(), rest.len() + 1);
        }
        let n_vocab = first.model.hp.n_vocab;
        if tokens.len() > first.n_batch {
            bail!(
                "{} contexts in one step exceed the batch of {}",
                tokens.len(),
                first.n_batch
            );
        }
        for (c, &t) in std::iter::once(&**first)
            .chain(rest.iter().map(|c| &**c))
            .zip(tokens)
        {
            if !Arc::ptr_eq(&c.model, &first.model) {
                bail!("contexts of different models cannot decode together");
            }
            if c.n_past >= c.kv.n_ctx {
                bail!("the context is full ({} positions)", c.kv.n_ctx);
            }
            if t as usize >= n_vocab {
                bail!("token id {t} is outside the vocabulary of {n_vocab}");
            }
        }
        let n = tokens.len();
        if first.s.logits.len() < n * n_vocab {
            first.s.logits.resize(n * n_vocab, 0.0);
        }
        let (seq, parts) = first.split(1);
        let mut seqs: Vec<Seq<'_>> = Vec::with_capacity(n);
        seqs.push(seq);
        seqs.extend(rest.iter_mut().map(|c| c.split(1).0));
        forward(parts, &mut seqs, tokens, Logits::Last, Some(0));
        drop(seqs);
        first.n_past += 1;
        for (i, c) in rest.iter_mut().enumerate() {
            let row = &first.s.logits[(i + 1) * n_vocab..(i + 2) * n_vocab];
            c.s.logits[..n_vocab].copy_from_slice(row);
            c.n_past += 1;
        }
        Ok(())
    }

    /// The logits of the last token evaluated (after [`Context::eval`] or
    /// [`Context::decode_batch`]).
    pub fn last_logits(&self) -> &[f32] {
        &self.s.logits[..self.model.hp.n_vocab]
    }
}

/// One sequence of a batch: its KV cache and where its tokens go.
struct Seq<'a> {
    kv: &'a mut KvCache,
    swa_cells: &'a mut Option<CellMap>,
    /// Position of its first token in this batch.
    pos0: usize,
    /// Its tokens in the batch (they follow the previous sequence's).
    n: usize,
    /// Its first row in the batch (set by [`forward`]).
    off: usize,
    kv_split: usize,
}

/// What the forward pass uses of the context whose scratch holds the batch.
struct Parts<'a> {
    model: &'a Arc<Model>,
    s: &'a mut Scratch,
    rope: &'a Rope,
    rope_swa: &'a Rope,
    trace: &'a mut Option<TraceFn>,
}

/// `tokens` (the sequences' tokens one after another) through the whole network, each sequence
/// attending to its own cache. `out_at`: where in the logits buffer (in rows) the logits go, if
/// any are wanted; [`Logits::Last`] means the last token of each sequence.
fn forward(
    p: Parts<'_>,
    seqs: &mut [Seq<'_>],
    tokens: &[u32],
    which: Logits,
    out_at: Option<usize>,
) {
    let model = Arc::clone(p.model);
    let (hp, spec) = (&model.hp, &model.spec);
    let k = nib_simd::kernels();
    let n_tokens = tokens.len();
    let mut t = n_tokens;
    debug_assert_eq!(seqs.iter().map(|q| q.n).sum::<usize>(), n_tokens);
    // The first row of each sequence in the batch.
    let mut at = 0;
    for q in seqs.iter_mut() {
        q.off = at;
        at += q.n;
    }
    // Row widths: the activations below are (t, width) for the batch's `t` rows.
    let d = hp.n_embd; // x, xn, o
    let q_dim = hp.n_head * hp.head_dim; // q
    let kv_k = hp.n_head_kv * hp.head_dim; // k
    let kv_v = hp.n_head_kv * hp.head_dim_v; // v
    let att_dim = hp.n_head * hp.head_dim_v; // att
    for q in seqs.iter_mut() {
        if let Some(c) = q.swa_cells.as_mut() {
            c.place(q.pos0, q.n);
        }
    }
    let s = p.s;
    let n_rot = hp.n_rot;
    let has_swa = (0..hp.n_layer).any(|il| hp.is_swa(il));
    let [main, swa_angles] = &mut s.angles;
    for (rope, angles, wanted) in [(p.rope, main, true), (p.rope_swa, swa_angles, has_swa)] {
        if wanted {
            for q in seqs.iter() {
                let off = q.off;
                let rows = angles[off * n_rot..(off + q.n) * n_rot].chunks_exact_mut(n_rot);
                for (i, a) in rows.enumerate() {
                    let (cos, sin) = a.split_at_mut(n_rot / 2);
                    rope.angles(q.pos0 + i, cos, sin);
                }
            }
        }
    }
    let trace = p.trace;
    let mut tr = |name: &str, il: usize, v: &[f32]| {
        if let Some(f) = trace.as_mut() {
            f(&format!("{name}-{il}"), v)
        }
    };

    // 1. Token embeddings (dequantized rows; put back together first where the matrix is
    // interleaved for a tied output projection), scaled for gemma.
    let embd = model.mat(&model.tok_embd);
    let to_float = k
        .get(embd.ty)
        .and_then(|tr| tr.to_float)
        .expect("embedding type readable");
    let mut row_buf = Vec::new();
    for (i, &tok) in tokens.iter().enumerate() {
        let row = &mut s.x[i * d..(i + 1) * d];
        to_float(embd.row_bytes_in(tok as usize, &mut row_buf), row);
        if spec.scale_embeddings {
            vec::scale(row, (d as f32).sqrt());
        }
    }

    for (il, layer) in model.layers.iter().enumerate() {
        // 2. Attention block: norm → Q/K/V → (q/k norm) → RoPE → cache → attention → output.
        ops::rms_norm_rows(&s.x[..t * d], &layer.attn_norm, hp.rms_eps, d, &mut s.xn);
        tr("attn_norm", il, &s.xn[..t * d]);
        ops::project(
            k,
            &s.xn[..t * d],
            d,
            t,
            &mut s.qb,
            &mut [
                (model.mat(&layer.wq), &mut s.q[..t * q_dim]),
                (model.mat(&layer.wk), &mut s.k[..t * kv_k]),
                (model.mat(&layer.wv), &mut s.v[..t * kv_v]),
            ],
        );
        if let (Some(bq), Some(bk), Some(bv)) = (&layer.bq, &layer.bk, &layer.bv) {
            ops::add_bias(&mut s.q[..t * q_dim], bq);
            ops::add_bias(&mut s.k[..t * kv_k], bk);
            ops::add_bias(&mut s.v[..t * kv_v], bv);
        }
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            ops::rms_norm_heads(&mut s.q[..t * q_dim], qn, hp.rms_eps);
            ops::rms_norm_heads(&mut s.k[..t * kv_k], kn, hp.rms_eps);
        }
        let swa = hp.is_swa(il);
        let (rope, angles) = if swa {
            (p.rope_swa, &s.angles[1])
        } else {
            (p.rope, &s.angles[0])
        };
        for (x, width) in [(&mut s.q[..t * q_dim], q_dim), (&mut s.k[..t * kv_k], kv_k)] {
            ops::for_row_groups(x, width, |r0, rows| {
                for (i, row) in rows.chunks_exact_mut(width).enumerate() {
                    let (cos, sin) = angles[(r0 + i) * n_rot..][..n_rot].split_at(n_rot / 2);
                    rope.apply(row, hp.head_dim, cos, sin);
                }
            });
        }
        tr("Qcur", il, &s.q[..t * q_dim]);
        tr("Kcur", il, &s.k[..t * kv_k]);
        tr("Vcur", il, &s.v[..t * kv_v]);
        for q in seqs.iter_mut() {
            let off = q.off;
            q.kv.k[il].write(q.pos0 * kv_k, &s.k[off * kv_k..(off + q.n) * kv_k]);
            q.kv.v[il].write(q.pos0 * kv_v, &s.v[off * kv_v..(off + q.n) * kv_v]);
        }
        if spec.scale_q_before_attention {
            vec::scale(&mut s.q[..t * q_dim], hp.attn_scale);
        }
        for q in seqs.iter() {
            let off = q.off;
            // llama.cpp's KV view: cells = positions in a whole-context cache, its own
            // placement in the ring of sliding-window layers when `swa_full` is off.
            let (n_kv, cells) = match (q.swa_cells.as_ref(), swa) {
                (Some(c), true) => (llama_n_kv(c.used_max_p1(), c.size()), Cells::Map(&c.pos)),
                _ => (
                    llama_n_kv(q.pos0 + q.n, llama_ctx_cells(q.kv.n_ctx)),
                    Cells::Positions,
                ),
            };
            let params = AttnParams {
                n_head: hp.n_head,
                n_head_kv: hp.n_head_kv,
                head_dim: hp.head_dim,
                head_dim_v: hp.head_dim_v,
                pos0: q.pos0,
                scale: if spec.scale_q_before_attention {
                    1.0
                } else {
                    hp.attn_scale
                },
                window: if swa { hp.n_swa } else { 0 },
                softcap: hp.attn_logit_softcap,
                n_kv,
                kv_split: q.kv_split,
                cells,
            };
            attention(
                &s.q[off * q_dim..(off + q.n) * q_dim],
                &q.kv.k[il],
                &q.kv.v[il],
                q.n,
                params,
                &mut s.att[off * att_dim..(off + q.n) * att_dim],
            );
        }
        tr("kqv_out", il, &s.att[..t * att_dim]);
        ops::project(
            k,
            &s.att[..t * att_dim],
            att_dim,
            t,
            &mut s.qb,
            &mut [(model.mat(&layer.wo), &mut s.o[..t * d])],
        );
        // After the last layer's attention llama.cpp keeps only the rows whose logits are
        // wanted (`inp_out_ids`); the rest of the layer runs on those rows, and its matmul
        // kernels are chosen for that row count.
        if il + 1 == model.layers.len() && which == Logits::Last && t > seqs.len() {
            for (j, q) in seqs.iter().enumerate() {
                let off = q.off;
                let last = off + q.n - 1;
                s.o.copy_within(last * d..(last + 1) * d, j * d);
                s.x.copy_within(last * d..(last + 1) * d, j * d);
            }
            t = seqs.len();
        }
        if let Some(w) = &layer.post_attn_norm {
            ops::rms_norm_heads(&mut s.o[..t * d], w, hp.rms_eps);
        }
        tr("attn_out", il, &s.o[..t * d]);
        vec::add_inplace(&mut s.x[..t * d], &s.o[..t * d]);
        tr("ffn_inp", il, &s.x[..t * d]);

        // 3. Feed-forward block: norm → gate/up → activation → down (→ post norm) → residual.
        ops::rms_norm_rows(&s.x[..t * d], &layer.ffn_norm, hp.rms_eps, d, &mut s.xn);
        tr("ffn_norm", il, &s.xn[..t * d]);
        let ff = hp.n_ff;
        ops::project(
            k,
            &s.xn[..t * d],
            d,
            t,
            &mut s.qb,
            &mut [
                (model.mat(&layer.w_gate), &mut s.gate[..t * ff]),
                (model.mat(&layer.w_up), &mut s.up[..t * ff]),
            ],
        );
        tr("ffn_gate", il, &s.gate[..t * ff]);
        tr("ffn_up", il, &s.up[..t * ff]);
        let up = &s.up[..t * ff];
        ops::for_row_groups(&mut s.gate[..t * ff], ff, |r0, gates| {
            let ups = &up[r0 * ff..][..gates.len()];
            for (g, u) in gates.chunks_exact_mut(ff).zip(ups.chunks_exact(ff)) {
                match spec.activation {
                    Activation::SwiGlu => vec::swiglu_inplace(g, u),
                    Activation::GeGlu => vec::geglu_inplace(g, u),
                }
            }
        });
        ops::project(
            k,
            &s.gate[..t * ff],
            ff,
            t,
            &mut s.qb,
            &mut [(model.mat(&layer.w_down), &mut s.o[..t * d])],
        );
        if let Some(w) = &layer.post_ffn_norm {
            ops::rms_norm_heads(&mut s.o[..t * d], w, hp.rms_eps);
        }
        tr("ffn_out", il, &s.o[..t * d]);
        vec::add_inplace(&mut s.x[..t * d], &s.o[..t * d]);
        tr("l_out", il, &s.x[..t * d]);
    }

    // 4. Final norm and the output projection, for the rows whose logits are wanted (after
    // the last layer `s.x` holds only those rows when fewer were wanted).
    let Some(at) = out_at else { return };
    // (After the last layer the first `seqs.len()` rows are each sequence's last token when
    // only those were wanted.)
    let (first, rows) = match which {
        Logits::Last => (0, seqs.len()),
        Logits::All => (0, t),
    };
    ops::rms_norm_rows(
        &s.x[first * d..(first + rows) * d],
        &model.output_norm,
        hp.rms_eps,
        d,
        &mut s.xn,
    );
    let n_vocab = hp.n_vocab;
    let out = &mut s.logits[at * n_vocab..(at + rows) * n_vocab];
    ops::project(
        k,
        &s.xn[..rows * d],
        d,
        rows,
        &mut s.qb,
        &mut [(model.mat(&model.output), out)],
    );
    if hp.final_logit_softcap > 0.0 {
        let cap = hp.final_logit_softcap;
        for l in out.iter_mut() {
            *l = cap * (*l / cap).tanh();
        }
    }
}

/// Cells of llama.cpp's sliding-window KV cache: `pad256(min(n_ctx, n_swa + n_ubatch))`
/// (`llama_kv_cache_iswa`).
fn llama_swa_cells(n_swa: usize, n_ubatch: usize, n_ctx: usize) -> usize {
    llama_ctx_cells(n_ctx).min(n_swa + n_ubatch).div_ceil(256) * 256
}

/// Cells of llama.cpp's KV cache for a context of `n_ctx`: it pads the context to 256.
fn llama_ctx_cells(n_ctx: usize) -> usize {
    n_ctx.div_ceil(256) * 256
}
