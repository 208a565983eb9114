//! Grouped-query attention of a batch of queries over the KV cache, with the causal mask and an
//! optional sliding window.
//!
//! The arithmetic reproduces llama.cpp's CPU flash attention (`ggml_compute_forward_flash_attn_ext_f16`
//! in `ggml-cpu/ops.cpp`, x86 AVX-512 build) bit for bit. llama.cpp takes one of three paths,
//! decided by the batch and by its KV view length `n_kv` (see [`llama_n_kv`]):
//!
//! * **vector** (`..._one_chunk`): batches of fewer than [`FA_TILE_Q`] queries. Per query row, the
//!   query is rounded to f16, each visible cell's score is the 64-lane f16 dot times the scale,
//!   and the output is accumulated in f16 with an online softmax.
//! * **tiled** (`..._tiled`): batches of at least [`FA_TILE_Q`] queries. f32 query, keys and values
//!   in tiles of [`FA_TILE_KV`] cells, f32 accumulator, the vector `expf` polynomial.
//! * **split-KV** (a single query when `n_kv >= `[`FA_SPLIT_MIN_KV`]): the cells are cut into as
//!   many chunks as llama.cpp has threads, each chunk runs the vector path, and the partial
//!   results are merged. The split depends on llama.cpp's thread count, which nib cannot know;
//!   nib reproduces a run with [`AttnParams::kv_split`] threads (the goldens use 2).
//!
//! The cells a query attends are visited in ascending cell order, and cells masked for it are
//! skipped as llama.cpp skips `-inf` mask entries, so only the visible ones matter. A cell holds
//! the position of the same index unless [`AttnParams::cells`] maps them otherwise (llama.cpp's
//! sliding-window cache is a ring; see [`crate::model::kv_cache::CellMap`]).
//!
//! [`attention`] computes these bits for an f16 cache with the kernels of [`nib_simd::attn`]
//! (SIMD for the CPU, chosen as [`nib_simd::vec`] chooses; their scalar reference,
//! [`nib_simd::attn::scalar`], is the definition, written plainly one query and one cell at a
//! time, and [`attention_with`] with [`VecOps::scalar`] runs it): the vector and split-KV paths
//! run one query row per task, the split-KV chunks as separate tasks merged afterwards, and the
//! tiled path runs blocks of queries per task, every KV head's K/V tiles widened once per block
//! and shared by the heads of its group. Small work runs on the calling thread (decoding at short
//! contexts); nothing is allocated per call once the thread-local buffers have grown. An f32
//! cache takes the same paths one query row at a time in f32 ([`f32_kv`]).

pub mod f32_kv;
mod params;

pub use params::{
    llama_n_kv, AttnParams, Cells, FaPath, FA_SPLIT_MIN_KV, FA_TILE_KV, FA_TILE_Q, KV_PAD,
};

use crate::model::kv_cache::{CellMap, KvBuf};
use half::f16;
use nib_simd::attn::{HeadRows, Score, TiledHead, TiledRow, VecState, MAX_HEAD_DIM};
use nib_simd::vec::{self, VecOps};
use std::cell::Cell;

const _: () = assert!(CellMap::EMPTY == nib_simd::attn::EMPTY_CELL);

/// Queries per task of the tiled path.
const TILED_BLOCK: usize = 16;

/// Below this much work (visible cells × rows × `(head_dim + head_dim_v)`, an upper bound) the
/// vector and split-KV paths run on the calling thread: a parallel step costs a few
/// microseconds, about this much arithmetic.
const PAR_MIN_WORK: usize = 1 << 16;

/// `out[t][h] = softmax(q[t][h] · K[j] * scale, j in mask(t)) · V[j]` for every query token `t`
/// and head `h`; heads share K/V in groups of `n_head / n_head_kv`.
///
/// `q` holds `n_tokens` rows of `n_head * head_dim`; the cache holds positions `0..pos0 + n_tokens`.
pub fn attention(q: &[f32], k: &KvBuf, v: &KvBuf, n_tokens: usize, p: AttnParams, out: &mut [f32]) {
    attention_with(vec::ops(), q, k, v, n_tokens, p, out)
}

/// [`attention`] with the kernels of `ops`.
pub fn attention_with(
    ops: VecOps,
    q: &[f32],
    k: &KvBuf,
    v: &KvBuf,
    n_tokens: usize,
    p: AttnParams,
    out: &mut [f32],
) {
    let (kb, vb) = match (k, v) {
        (KvBuf::F16(kb), KvBuf::F16(vb)) => (kb, vb),
        (KvBuf::F32(kb), KvBuf::F32(vb)) => return f32_kv::attention(q, kb, vb, n_tokens, p, out),
        _ => panic!("keys and values of different types"),
    };
    assert!(p.head_dim <= MAX_HEAD_DIM && p.head_dim_v <= MAX_HEAD_DIM);
    assert!(p.n_head_kv > 0 && p.n_head.is_multiple_of(p.n_head_kv));
    let f = Fast {
        ops,
        q,
        k: kb,
        v: vb,
        p,
    };
    let out = &mut out[..n_tokens * p.n_head * p.head_dim_v];
    match p.path(n_tokens) {
        FaPath::Vector => f.vector(n_tokens, out),
        FaPath::SplitKv => f.split_kv(out),
        FaPath::Tiled => f.tiled(n_tokens, out),
    }
}

/// One attention call over an f16 cache.
struct Fast<'a> {
    ops: VecOps,
    q: &'a [f32],
    k: &'a [f16],
    v: &'a [f16],
    p: AttnParams<'a>,
}

impl Fast<'_> {
    /// KV head `kvh`'s keys and values.
    fn rows(&self, kvh: usize) -> (HeadRows<'_>, HeadRows<'_>) {
        let (dk, dv, hkv) = (self.p.head_dim, self.p.head_dim_v, self.p.n_head_kv);
        (
            HeadRows {
                data: &self.k[kvh * dk..],
                stride: hkv * dk,
                dim: dk,
            },
            HeadRows {
                data: &self.v[kvh * dv..],
                stride: hkv * dv,
                dim: dv,
            },
        )
    }

    fn score(&self) -> Score {
        Score {
            scale: self.p.scale,
            softcap: self.p.softcap,
        }
    }

    fn query(&self, t: usize, h: usize) -> &[f32] {
        let dk = self.p.head_dim;
        &self.q[(t * self.p.n_head + h) * dk..][..dk]
    }

    /// The vector path over the cells of `c0..c1` that query `t` sees, continuing `st`.
    fn chunk(&self, t: usize, h: usize, c0: usize, c1: usize, st: &mut VecState) {
        let view = self.p.view(t);
        let (k, v) = self.rows(h / (self.p.n_head / self.p.n_head_kv));
        let q = self.query(t, h);
        let (a, b) = view.clamp(c0, c1);
        match self.p.cells {
            // Cell `c` holds position `c`, which is also its row.
            Cells::Positions => self.ops.fa_vec(q, k, v, a..b, self.score(), st),
            // The rows of the cells it sees, in cell order.
            Cells::Map(_) => self.ops.fa_vec(
                q,
                k,
                v,
                (a..b).filter_map(|c| view.key(c)),
                self.score(),
                st,
            ),
        }
    }

    /// Cells the vector path of query `t` may visit (`0..n`).
    fn vector_cells(&self, t: usize) -> usize {
        match self.p.cells {
            Cells::Positions => self.p.pos0 + t + 1,
            Cells::Map(m) => m.len().min(self.p.n_kv),
        }
    }

    /// Run `f(i, chunk)` over the `len`-long chunks of `data`, on the pool if `work` is large.
    fn each<F: Fn(usize, &mut [f32]) + Sync>(data: &mut [f32], len: usize, work: usize, f: F) {
        if work < PAR_MIN_WORK {
            data.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
        } else {
            nib_simd::pool::with_current(|pool| pool.for_each_chunk_mut(data, len, f));
        }
    }

    fn vector(&self, n_tokens: usize, out: &mut [f32]) {
        let (nh, dk, dv) = (self.p.n_head, self.p.head_dim, self.p.head_dim_v);
        let work = n_tokens * nh * self.vector_cells(n_tokens - 1) * (dk + dv);
        Self::each(out, dv, work, |i, o| {
            let (t, h) = (i / nh, i % nh);
            let mut acc = [0f32; MAX_HEAD_DIM];
            let mut st = VecState {
                m: f32::NEG_INFINITY,
                s: 0.0,
                acc: &mut acc[..dv],
            };
            self.chunk(t, h, 0, self.vector_cells(t), &mut st);
            let inv = if st.s == 0.0 { 0.0 } else { 1.0 / st.s };
            self.ops.scale_into(st.acc, inv, o);
        });
    }

    /// One query over `n_kv` cells in `kv_split` chunks, each chunk a task; the partial results
    /// (`[M, S, acc...]` per head and chunk) are merged in chunk order as
    /// `ggml_flash_attn_ext_reduce_partials` does: chunks with `S == 0` are skipped,
    /// `M' = max(M, Mc)`, `a = expf(M - M')`, `b = expf(Mc - M')`, `vkq = fma(vkq, a, vkq_c * b)`,
    /// `S = fma(S, a, Sc * b)`; finally `vkq * (1 / S)`.
    fn split_kv(&self, out: &mut [f32]) {
        let (nh, dk, dv) = (self.p.n_head, self.p.head_dim, self.p.head_dim_v);
        let (n_kv, nc) = (self.p.n_kv, self.p.kv_split);
        let chunk = n_kv.div_ceil(nc);
        let rec = dv + 2;
        thread_local! {
            static PARTIALS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
        }
        let mut parts = PARTIALS.with(|c| c.take());
        parts.clear();
        parts.resize(nh * nc * rec, 0.0);
        Self::each(&mut parts, rec, nh * n_kv * (dk + dv), |i, r| {
            let (h, c) = (i / nc, i % nc);
            let (head, acc) = r.split_at_mut(2);
            acc.fill(0.0);
            let mut st = VecState {
                m: f32::NEG_INFINITY,
                s: 0.0,
                acc,
            };
            self.chunk(0, h, c * chunk, ((c + 1) * chunk).min(n_kv), &mut st);
            head[0] = st.m;
            head[1] = st.s;
        });
        for (h, o) in out.chunks_exact_mut(dv).enumerate().take(nh) {
            let mut m = f32::NEG_INFINITY;
            let mut s = 0f32;
            let mut vkq = [0f32; MAX_HEAD_DIM];
            let vkq = &mut vkq[..dv];
            for r in parts[h * nc * rec..(h + 1) * nc * rec].chunks_exact(rec) {
                let (rm, rs) = (r[0], r[1]);
                if rs == 0.0 {
                    continue;
                }
                let m_new = m.max(rm);
                let so = (m - m_new).exp();
                let sn = (rm - m_new).exp();
                self.ops.merge_scaled(vkq, so, &r[2..], sn);
                s = s.mul_add(so, rs * sn);
                m = m_new;
            }
            let inv = if s != 0.0 { 1.0 / s } else { 1.0 };
            self.ops.scale_into(vkq, inv, o);
        }
        PARTIALS.with(|c| c.set(parts));
    }

    /// Blocks of [`TILED_BLOCK`] queries, one task each (the latest, which see the most cells,
    /// first); in a task, each KV head's rows (its heads × the block's queries) go through
    /// [`VecOps::fa_tiled`] together.
    fn tiled(&self, n_tokens: usize, out: &mut [f32]) {
        let (nh, hkv, dv) = (self.p.n_head, self.p.n_head_kv, self.p.head_dim_v);
        let group = nh / hkv;
        let n_blocks = n_tokens.div_ceil(TILED_BLOCK);
        let block_len = TILED_BLOCK * nh * dv;
        thread_local! {
            static ROWS: Cell<Vec<TiledRow>> = const { Cell::new(Vec::new()) };
        }
        let run = |b: usize, o: &mut [f32]| {
            let t0 = b * TILED_BLOCK;
            let t1 = (t0 + TILED_BLOCK).min(n_tokens);
            let mut rows = ROWS.with(|c| c.take());
            for kvh in 0..hkv {
                rows.clear();
                for h in kvh * group..(kvh + 1) * group {
                    for t in t0..t1 {
                        rows.push(TiledRow {
                            q: (t * nh + h) * self.p.head_dim,
                            pos: self.p.pos0 + t,
                            out: ((t - t0) * nh + h) * dv,
                        });
                    }
                }
                let (k, v) = self.rows(kvh);
                let n_kv = match self.p.cells {
                    Cells::Positions => self.p.n_kv.max(self.p.pos0 + t1),
                    Cells::Map(m) => self.p.n_kv.min(m.len()),
                };
                let head = TiledHead {
                    k,
                    v,
                    score: self.score(),
                    n_kv,
                    window: self.p.window,
                    cells: match self.p.cells {
                        Cells::Positions => None,
                        Cells::Map(m) => Some(m),
                    },
                };
                self.ops.fa_tiled(&head, self.q, &rows, o);
            }
            ROWS.with(|c| c.set(rows));
        };
        let ptr = OutPtr(out.as_mut_ptr());
        let len = out.len();
        let ptr = &ptr;
        nib_simd::pool::with_current(|pool| {
            pool.run(n_blocks, &|i| {
                let b = n_blocks - 1 - i;
                let start = b * block_len;
                let end = (start + block_len).min(len);
                // SAFETY: block `b` owns `out[b * block_len..min(len, (b + 1) * block_len)]`;
                // these ranges are disjoint for distinct `b`, each task runs one distinct `b`,
                // and `out` stays mutably borrowed until `run` returns after every task.
                let o = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(start), end - start) };
                run(b, o)
            })
        });
    }
}

/// The output of [`Fast::tiled`], shared by tasks that write disjoint blocks of it.
struct OutPtr(*mut f32);
// SAFETY: only used by `Fast::tiled`, whose tasks write disjoint ranges.
unsafe impl Sync for OutPtr {}
