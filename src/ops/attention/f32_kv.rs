//! Attention over an f32 KV cache (`--kv-type f32`): llama.cpp's three paths (see
//! [`super`]) with f32 keys and values, one query row and one cell at a time, on the scalar
//! kernels of [`nib_simd::vec::scalar`]. The vector path keeps an f32 query and accumulator
//! where the f16 cache's rounds them to f16; the tiled path is the f16 cache's with the keys and
//! values read as they are. llama.cpp's f32-cache arithmetic is followed in structure, not
//! checked bit for bit.

use super::params::{AttnParams, Cells, FaPath, View, FA_TILE_KV};
use nib_simd::attn::scalar::tiled_softmax;
use nib_simd::attn::Score;
use nib_simd::vec::scalar as vec;

/// `out[t][h] = softmax(q[t][h] · K[j] * scale, j in mask(t)) · V[j]` for every query token `t`
/// and head `h`; heads share K/V in groups of `n_head / n_head_kv`.
///
/// `q` holds `n_tokens` rows of `n_head * head_dim`, `k` and `v` a row of
/// `n_head_kv * head_dim` (`head_dim_v`) per cell; the cache holds positions
/// `0..pos0 + n_tokens`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], n_tokens: usize, p: AttnParams, out: &mut [f32]) {
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
    k: &'a [f32],
    v: &'a [f32],
    kvh: usize,
    dk: usize,
    dv: usize,
    k_stride: usize,
    v_stride: usize,
}

impl<'a> Kv<'a> {
    fn new(k: &'a [f32], v: &'a [f32], kvh: usize, p: &AttnParams) -> Kv<'a> {
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

    /// Cell `c`'s key.
    fn k(&self, c: usize) -> &'a [f32] {
        &self.k[c * self.k_stride + self.kvh * self.dk..][..self.dk]
    }

    /// Element `d` of cell `c`'s value.
    fn v(&self, c: usize, d: usize) -> f32 {
        self.v[c * self.v_stride + self.kvh * self.dv + d]
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
        vec::scale_into(&self.vkq[..self.dv], inv, out);
    }
}

fn score(p: &AttnParams) -> Score {
    Score {
        scale: p.scale,
        softcap: p.softcap,
    }
}

/// llama.cpp's vector path (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`) over the visible
/// cells among `c0..c1` of one query row, in f32: for each cell in order,
/// `s = score(dot_f32(q, k))`; if `s > M` then `M = s`, `ms = expf(M_old - M)`, `acc *= ms`
/// (`vs = 1`), else `vs = expf(s - M)` (`ms = 1`); then `acc = fma(v, vs, acc)` element-wise and
/// `S = fma(S, ms, vs)`. `expf` is the platform's.
fn one_chunk(q: &[f32], kv: &Kv, view: View, c0: usize, c1: usize, p: &AttnParams) -> Partial {
    let (c0, c1) = view.clamp(c0, c1);
    let dv = kv.dv;
    let score = score(p);
    let mut r = Partial {
        m: f32::NEG_INFINITY,
        s: 0.0,
        vkq: [0.0; MAX_DV],
        dv,
    };
    let acc = &mut r.vkq[..dv];
    for c in c0..c1 {
        let Some(c) = view.key(c) else { continue };
        let s = score.apply(vec::dot_f32(q, kv.k(c)));
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
            *a = kv.v(c, d).mul_add(vs, *a);
        }
        r.s = r.s.mul_add(ms, vs);
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
        vec::merge_scaled(&mut vkq[..dv], so, &r.vkq[..dv], sn);
        s = s.mul_add(so, r.s * sn);
        m = m_new;
    }
    let inv = if s != 0.0 { 1.0 / s } else { 1.0 };
    vec::scale_into(&vkq[..dv], inv, out);
}

/// llama.cpp's tiled path (`ggml_compute_forward_flash_attn_ext_tiled`) for one query row, as
/// [`nib_simd::attn::scalar::fa_tiled`] computes it for an f16 cache: the cells `0..n_kv` in
/// tiles of [`FA_TILE_KV`]; in a tile, each visible cell's score is `Σ_d fma(k_d, q_d, ·)` from 0
/// in `d` order made a score by [`Score::apply`], the others `-inf`; then the tile's online
/// softmax ([`tiled_softmax`]). Finally `out = vkq * (1 / S)`.
fn tiled_row(q: &[f32], kv: &Kv, view: View, p: &AttnParams, out: &mut [f32]) {
    let dv = kv.dv;
    let score = score(p);
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
            *sc = match *key {
                Some(c) => {
                    let mut acc = 0f32;
                    for (&kd, &qd) in kv.k(c).iter().zip(q) {
                        acc = kd.mul_add(qd, acc);
                    }
                    score.apply(acc)
                }
                None => f32::NEG_INFINITY,
            };
        }
        tiled_softmax(&mut kq, tile, &mut m, &mut s, vkq, |i, d| {
            keys[i].map(|c| kv.v(c, d))
        });
    }
    let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
    vec::scale_into(vkq, inv, out);
}
