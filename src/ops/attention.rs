//! Grouped-query attention of a batch of queries over the KV cache, with the causal mask and an
//! optional sliding window, parallel over (token, head) pairs.

use crate::model::kv_cache::KvBuf;
use half::f16;
use rayon::prelude::*;
use std::cell::RefCell;

/// Shape and masking of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub head_dim_v: usize,
    /// Position of the first query token; query `t` sits at `pos0 + t`.
    pub pos0: usize,
    /// Multiply scores by this.
    pub scale: f32,
    /// Keys more than `window - 1` positions back are masked (0: no window).
    pub window: usize,
    /// `cap * tanh(score / cap)` before the softmax (0: none).
    pub softcap: f32,
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[t][h] = softmax(q[t][h] · K[j] * scale, j in mask(t)) · V[j]` for every query token `t`
/// and head `h`; heads share K/V in groups of `n_head / n_head_kv`.
///
/// `q` holds `n_tokens` rows of `n_head * head_dim`; the cache holds positions `0..pos0 + n_tokens`.
pub fn attention(q: &[f32], k: &KvBuf, v: &KvBuf, n_tokens: usize, p: AttnParams, out: &mut [f32]) {
    let group = p.n_head / p.n_head_kv;
    let k_stride = p.n_head_kv * p.head_dim;
    let v_stride = p.n_head_kv * p.head_dim_v;
    let work = |(idx, o): (usize, &mut [f32])| {
        let t = idx / p.n_head;
        let h = idx % p.n_head;
        let kvh = h / group;
        let pos = p.pos0 + t;
        let first = if p.window > 0 {
            (pos + 1).saturating_sub(p.window)
        } else {
            0
        };
        let n = pos + 1 - first;
        let qh = &q[(t * p.n_head + h) * p.head_dim..][..p.head_dim];
        SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            if scores.len() < n + p.head_dim {
                scores.resize(n + p.head_dim, 0.0);
            }
            let (scores, qbuf) = scores.split_at_mut(n);
            let qbuf = &mut qbuf[..p.head_dim];
            match (k, v) {
                (KvBuf::F16(kc), KvBuf::F16(vc)) if n_tokens < F16_ACCUM_BELOW => {
                    // llama.cpp's vector path (decode and small batches): the query meets the
                    // f16 keys as f16, and the weighted sum of values is accumulated in f16 with
                    // an online softmax. Reproduced so that logits agree closely.
                    for (d, s) in qbuf.iter_mut().zip(qh) {
                        *d = f16::from_f32(*s).to_f32();
                    }
                    online_softmax_f16(qbuf, kc, vc, first, n, k_stride, v_stride, kvh, p, o);
                }
                (KvBuf::F16(kc), KvBuf::F16(vc)) => {
                    for (i, s) in scores.iter_mut().enumerate() {
                        let kr = &kc[(first + i) * k_stride + kvh * p.head_dim..][..p.head_dim];
                        *s = nib_simd::vec::dot_f32_f16(qh, kr);
                    }
                    finish_scores(scores, p);
                    o.fill(0.0);
                    for (i, &w) in scores.iter().enumerate() {
                        let vr = &vc[(first + i) * v_stride + kvh * p.head_dim_v..][..p.head_dim_v];
                        nib_simd::vec::axpy_f16(w, vr, o);
                    }
                }
                (KvBuf::F32(kc), KvBuf::F32(vc)) => {
                    for (i, s) in scores.iter_mut().enumerate() {
                        let kr = &kc[(first + i) * k_stride + kvh * p.head_dim..][..p.head_dim];
                        *s = nib_simd::vec::dot_f32(qh, kr);
                    }
                    finish_scores(scores, p);
                    o.fill(0.0);
                    for (i, &w) in scores.iter().enumerate() {
                        let vr = &vc[(first + i) * v_stride + kvh * p.head_dim_v..][..p.head_dim_v];
                        nib_simd::vec::axpy(w, vr, o);
                    }
                }
                _ => unreachable!("K and V caches share a type"),
            }
        });
    };
    let out = &mut out[..n_tokens * p.n_head * p.head_dim_v];
    let total_keys = n_tokens * (p.pos0 + n_tokens);
    if total_keys * p.n_head < 4096 {
        out.chunks_mut(p.head_dim_v).enumerate().for_each(work);
    } else {
        out.par_chunks_mut(p.head_dim_v).enumerate().for_each(work);
    }
}

/// Batches of at least this many queries take llama.cpp's tiled path (f32 throughout); smaller
/// ones its vector path (f16 query and f16 value accumulator).
const F16_ACCUM_BELOW: usize = 64;

/// One query over keys `first..first + n` with an online softmax and an f16 accumulator.
#[allow(clippy::too_many_arguments)]
fn online_softmax_f16(
    q: &[f32],
    kc: &[f16],
    vc: &[f16],
    first: usize,
    n: usize,
    k_stride: usize,
    v_stride: usize,
    kvh: usize,
    p: AttnParams,
    out: &mut [f32],
) {
    let dv = p.head_dim_v;
    let mut acc = [f16::ZERO; 512];
    let acc = &mut acc[..dv];
    let mut sum = 0f32;
    let mut max = f32::NEG_INFINITY;
    for j in first..first + n {
        let kr = &kc[j * k_stride + kvh * p.head_dim..][..p.head_dim];
        let mut s = nib_simd::vec::dot_f32_f16(q, kr);
        if p.softcap > 0.0 {
            s = p.softcap * (s * p.scale / p.softcap).tanh();
        } else {
            s *= p.scale;
        }
        let (mut ms, mut vs) = (1f32, 1f32);
        if s > max {
            let old = max;
            max = s;
            ms = (old - max).exp();
            for a in acc.iter_mut() {
                *a = f16::from_f32(a.to_f32() * ms);
            }
        } else {
            vs = (s - max).exp();
        }
        let vr = &vc[j * v_stride + kvh * dv..][..dv];
        for (a, v) in acc.iter_mut().zip(vr) {
            *a = f16::from_f32(v.to_f32().mul_add(vs, a.to_f32()));
        }
        sum = sum * ms + vs;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o = a.to_f32() * inv;
    }
}

/// Scale, cap and softmax the raw scores in place.
fn finish_scores(scores: &mut [f32], p: AttnParams) {
    if p.softcap > 0.0 {
        for s in scores.iter_mut() {
            *s = p.softcap * (*s * p.scale / p.softcap).tanh();
        }
    } else {
        nib_simd::vec::scale(scores, p.scale);
    }
    nib_simd::vec::softmax_inplace(scores);
}
