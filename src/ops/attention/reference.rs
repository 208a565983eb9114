//! The reference attention: llama.cpp's CPU flash attention (`ggml_compute_forward_flash_attn_ext_f16`,
//! x86 AVX-512 build) written plainly, one query row and one cell at a time, with the scalar
//! kernels of [`nib_simd::vec::scalar`]. This is the definition [`super::attention`] reproduces
//! (tests compare the two bit for bit), and it serves the f32 KV cache.

use super::{AttnParams, Cells, FaPath, View, FA_TILE_KV};
use crate::model::kv_cache::KvBuf;
use half::f16;
use nib_simd::vec::scalar as vec;

/// `out[t][h] = softmax(q[t][h] · K[j] * scale, j in mask(t)) · V[j]` for every query token `t`
/// and head `h`; heads share K/V in groups of `n_head / n_head_kv`.
///
/// `q` holds `n_tokens` rows of `n_head * head_dim`; the cache holds positions `0..pos0 + n_tokens`.
pub fn attention(q: &[f32], k: &KvBuf, v: &KvBuf, n_tokens: usize, p: AttnParams, out: &mut [f32]) {
    let path = p.path(n_tokens);
    let work = |(idx, o): (usize, &mut [f32])| {
        let t = idx / p.n_head;
        let h = idx % p.n_head;
        let qh = &q[(t * p.n_head + h) * p.head_dim..][..p.head_dim];
        let kv = Kv::new(k, v, h / (p.n_head / p.n_head_kv), &p);
        let view = p.view(t);
        match path {
            FaPath::Vector => {
                let n = match p.cells {
                    Cells::Positions => view.q + 1,
                    Cells::Map(m) => m.len().min(p.n_kv),
                };
                one_chunk(qh, &kv, view, 0, n, &p).finish(o);
            }
            FaPath::SplitKv => split_kv(qh, &kv, view, &p, o),
            FaPath::Tiled => tiled_row(qh, &kv, view, &p, o),
        }
    };
    let out = &mut out[..n_tokens * p.n_head * p.head_dim_v];
    let total_keys = n_tokens * (p.pos0 + n_tokens);
    if total_keys * p.n_head < 4096 {
        out.chunks_mut(p.head_dim_v).enumerate().for_each(work);
    } else {
        nib_simd::pool::with_current(|pool| {
            pool.for_each_chunk_mut(out, p.head_dim_v, |i, o| work((i, o)))
        });
    }
}

/// One KV head's rows in the cache.
struct Kv<'a> {
    k: &'a KvBuf,
    v: &'a KvBuf,
    kvh: usize,
    dk: usize,
    dv: usize,
    k_stride: usize,
    v_stride: usize,
}

impl<'a> Kv<'a> {
    fn new(k: &'a KvBuf, v: &'a KvBuf, kvh: usize, p: &AttnParams) -> Kv<'a> {
        Kv {
            k,
            v,
            kvh,
            dk: p.head_dim,
            dv: p.head_dim_v,
            k_stride: p.n_head_kv * p.head_dim,
            v_stride: p.n_head_kv * p.head_dim_v,
        }
    }

    fn k16(&self, c: usize) -> &'a [f16] {
        match self.k {
            KvBuf::F16(b) => &b[c * self.k_stride + self.kvh * self.dk..][..self.dk],
            KvBuf::F32(_) => unreachable!(),
        }
    }

    fn v16(&self, c: usize) -> &'a [f16] {
        match self.v {
            KvBuf::F16(b) => &b[c * self.v_stride + self.kvh * self.dv..][..self.dv],
            KvBuf::F32(_) => unreachable!(),
        }
    }

    fn k32(&self, c: usize) -> &'a [f32] {
        match self.k {
            KvBuf::F32(b) => &b[c * self.k_stride + self.kvh * self.dk..][..self.dk],
            KvBuf::F16(_) => unreachable!(),
        }
    }

    fn k_f32(&self, c: usize, d: usize) -> f32 {
        match self.k {
            KvBuf::F16(b) => b[c * self.k_stride + self.kvh * self.dk + d].to_f32(),
            KvBuf::F32(b) => b[c * self.k_stride + self.kvh * self.dk + d],
        }
    }

    fn v_f32(&self, c: usize, d: usize) -> f32 {
        match self.v {
            KvBuf::F16(b) => b[c * self.v_stride + self.kvh * self.dv + d].to_f32(),
            KvBuf::F32(b) => b[c * self.v_stride + self.kvh * self.dv + d],
        }
    }

    fn is_f16(&self) -> bool {
        matches!(self.k, KvBuf::F16(_))
    }
}

/// The state of llama.cpp's online softmax after some cells: running max `m`, sum `s`, and the
/// (unnormalised) output in f32.
struct Partial {
    m: f32,
    s: f32,
    vkq: [f32; MAX_DV],
    dv: usize,
}

/// Largest value head size the stack buffers hold.
const MAX_DV: usize = 512;

impl Partial {
    /// `out = vkq * (1 / s)` (`0` when nothing was visible).
    fn finish(&self, out: &mut [f32]) {
        let inv = if self.s == 0.0 { 0.0 } else { 1.0 / self.s };
        for (o, &a) in out.iter_mut().zip(&self.vkq[..self.dv]) {
            *o = a * inv;
        }
    }
}

/// The score of one cell: `dot * scale`, or with a softcap `cap * tanhf(dot * (scale / cap))`.
#[inline]
fn cap_score(dot: f32, p: &AttnParams) -> f32 {
    if p.softcap != 0.0 {
        p.softcap * (dot * (p.scale / p.softcap)).tanh()
    } else {
        dot * p.scale
    }
}

/// llama.cpp's vector path (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`) over the visible
/// cells among `c0..c1` of one query row. With an f16 cache: `q16 = f16(q)`; for each cell in order,
/// `s = cap_score(dot_f16(q16, k))`; if `s > M` then `M = s`, `ms = expf(M_old - M)`,
/// `acc = f16(acc * ms)` (`vs = 1`), else `vs = expf(s - M)` (`ms = 1`); then
/// `acc = f16(fma(v, vs, acc))` element-wise and `S = fma(S, ms, vs)`. The f16 accumulator is
/// widened to f32 at the end. `expf` is the platform's (glibc's on the goldens' machine).
fn one_chunk(q: &[f32], kv: &Kv, view: View, c0: usize, c1: usize, p: &AttnParams) -> Partial {
    let (c0, c1) = view.clamp(c0, c1);
    let dv = kv.dv;
    let mut r = Partial {
        m: f32::NEG_INFINITY,
        s: 0.0,
        vkq: [0.0; MAX_DV],
        dv,
    };
    if kv.is_f16() {
        let mut q16 = [f16::ZERO; MAX_DV];
        let q16 = &mut q16[..kv.dk];
        for (d, s) in q16.iter_mut().zip(q) {
            *d = f16::from_f32(*s);
        }
        let mut acc = [f16::ZERO; MAX_DV];
        let acc = &mut acc[..dv];
        for c in c0..c1 {
            let Some(c) = view.key(c) else { continue };
            let s = cap_score(vec::dot_f16(q16, kv.k16(c)), p) + 0.0;
            let (mut ms, mut vs) = (1f32, 1f32);
            if s > r.m {
                let old = r.m;
                r.m = s;
                ms = (old - r.m).exp();
                for a in acc.iter_mut() {
                    *a = f16::from_f32(a.to_f32() * ms);
                }
            } else {
                vs = (s - r.m).exp();
            }
            for (a, v) in acc.iter_mut().zip(kv.v16(c)) {
                *a = f16::from_f32(v.to_f32().mul_add(vs, a.to_f32()));
            }
            r.s = r.s.mul_add(ms, vs);
        }
        for (o, a) in r.vkq.iter_mut().zip(acc.iter()) {
            *o = a.to_f32();
        }
    } else {
        // f32 cache: the same recurrence with an f32 query, f32 dot and f32 accumulator.
        let acc = &mut r.vkq[..dv];
        for c in c0..c1 {
            let Some(c) = view.key(c) else { continue };
            let s = cap_score(vec::dot_f32(q, kv.k32(c)), p) + 0.0;
            let (mut ms, mut vs) = (1f32, 1f32);
            if s > r.m {
                let old = r.m;
                r.m = s;
                ms = (old - r.m).exp();
                for a in acc.iter_mut() {
                    *a *= ms;
                }
            } else {
                vs = (s - r.m).exp();
            }
            for (d, a) in acc.iter_mut().enumerate() {
                *a = kv.v_f32(c, d).mul_add(vs, *a);
            }
            r.s = r.s.mul_add(ms, vs);
        }
    }
    r
}

/// llama.cpp's split-KV decode path: cells `0..n_kv` are cut into `kv_split` chunks of
/// `ceil(n_kv / kv_split)`; each chunk runs [`one_chunk`] over its visible cells, and the
/// partials are merged in chunk order (`ggml_flash_attn_ext_reduce_partials`), skipping chunks
/// with `S == 0`: `M' = fmaxf(M, Mc)`, `a = expf(M - M')`, `b = expf(Mc - M')`,
/// `vkq = fma(vkq, a, vkq_c * b)`, `S = fma(S, a, Sc * b)`; finally `vkq * (1 / S)`.
fn split_kv(q: &[f32], kv: &Kv, view: View, p: &AttnParams, out: &mut [f32]) {
    let dv = kv.dv;
    let chunk = p.n_kv.div_ceil(p.kv_split);
    let mut m = f32::NEG_INFINITY;
    let mut s = 0f32;
    let mut vkq = [0f32; MAX_DV];
    for c in 0..p.kv_split {
        let (c0, c1) = (c * chunk, ((c + 1) * chunk).min(p.n_kv));
        let r = one_chunk(q, kv, view, c0, c1, p);
        if r.s == 0.0 {
            continue;
        }
        let m_new = m.max(r.m);
        let so = (m - m_new).exp();
        let sn = (r.m - m_new).exp();
        for (f, &x) in vkq[..dv].iter_mut().zip(&r.vkq[..dv]) {
            *f = f.mul_add(so, x * sn);
        }
        s = s.mul_add(so, r.s * sn);
        m = m_new;
    }
    let inv = if s != 0.0 { 1.0 / s } else { 1.0 };
    for (o, &a) in out.iter_mut().zip(&vkq[..dv]) {
        *o = a * inv;
    }
}

/// llama.cpp's tiled path (`ggml_compute_forward_flash_attn_ext_tiled`) for one query row. The
/// cells `0..n_kv` are visited in tiles of [`FA_TILE_KV`]; tiles with no visible cell leave the
/// state unchanged. In a tile, each score is `Σ_d fma(k_d, q_d, ·)` from 0 in `d` order (f32
/// query, keys widened from f16) times `scale` (then `cap * tanhf(·)` with a softcap), masked
/// cells and the padding past `n_kv` are `-inf`; with `t = max(scores)`, `M' = fmaxf(M, t)`; if
/// `M' > M` then `ms = expf(M - M')` scales the output and `S`; the scores become
/// `e^(score - M')` by [`vec::soft_max_exp`] and `S = f32(f64(S) + that sum)`; then each output
/// element is `fma(v_c, e_c, ·)` chained over the tile's 64 cells in order. Finally
/// `out = vkq * (1 / S)`.
fn tiled_row(q: &[f32], kv: &Kv, view: View, p: &AttnParams, out: &mut [f32]) {
    let dv = kv.dv;
    let n_kv = match p.cells {
        Cells::Positions => p.n_kv.max(view.q + 1),
        Cells::Map(m) => p.n_kv.min(m.len()),
    };
    let mut m = f32::NEG_INFINITY;
    let mut s = 0f32;
    let mut vkq = [0f32; MAX_DV];
    let vkq = &mut vkq[..dv];
    let mut kq = [0f32; FA_TILE_KV];
    for ic in (0..n_kv).step_by(FA_TILE_KV) {
        let tile = FA_TILE_KV.min(n_kv - ic);
        let (a, b) = view.clamp(ic, ic + tile);
        if a >= b {
            continue;
        }
        let mut keys = [None; FA_TILE_KV];
        for (tk, key) in keys[..tile].iter_mut().enumerate() {
            *key = view.key(ic + tk);
        }
        for (sc, key) in kq.iter_mut().zip(&keys) {
            *sc = if let Some(c) = *key {
                let mut acc = 0f32;
                for (d, &qd) in q.iter().enumerate() {
                    acc = kv.k_f32(c, d).mul_add(qd, acc);
                }
                let x = if p.softcap != 0.0 {
                    p.softcap * (acc * (p.scale / p.softcap)).tanh()
                } else {
                    acc * p.scale
                };
                x + 0.0
            } else {
                f32::NEG_INFINITY
            };
        }
        let tmax = kq.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if tmax == f32::NEG_INFINITY {
            continue;
        }
        let m_new = m.max(tmax);
        if m_new > m {
            let ms = (m - m_new).exp();
            for a in vkq.iter_mut() {
                *a *= ms;
            }
            s *= ms;
        }
        m = m_new;
        s = (s as f64 + vec::soft_max_exp(&mut kq, m_new)) as f32;
        // Masked cells have weight 0 and add nothing (llama.cpp adds `0 * v`).
        for (d, a) in vkq.iter_mut().enumerate() {
            let mut acc = *a;
            for (key, &e) in keys[..tile].iter().zip(&kq[..tile]) {
                if let Some(c) = *key {
                    acc = kv.v_f32(c, d).mul_add(e, acc);
                }
            }
            *a = acc;
        }
    }
    let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
    for (o, &a) in out.iter_mut().zip(vkq.iter()) {
        *o = a * inv;
    }
}
