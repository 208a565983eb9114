//! Matrix products over threads: a quantized weight matrix times one (decode) or many (prompt)
//! activation rows, split by output rows across nib's thread pool ([`crate::pool`]). Each task
//! takes a chunk of weight rows and multiplies it with every activation row, so a loaded weight
//! block serves the whole batch while it is in cache.

use crate::dispatch::Kernels;
use crate::interleave::{self, Layout};
use crate::traits::{DotTile, Order, Tile, VecDot};
use crate::GgmlType;

/// The order of an interleaved layout, for a level without a tile for it (the rows are then put
/// back in GGUF's layout and multiplied with that order's `VecDot`): each layout is read in the
/// order its tiles sum in.
pub fn layout_order(layout: Layout) -> Order {
    match layout {
        Layout::Rows | Layout::Blocks4 => Order::Vec,
        Layout::Interleaved8 => Order::Block,
    }
}

/// A weight matrix: `rows` rows of `cols` elements of type `ty`, in `layout`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    pub layout: Layout,
}

impl<'a> MatRef<'a> {
    /// A matrix in GGUF's row-after-row layout.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> MatRef<'a> {
        MatRef {
            ty,
            rows,
            cols,
            data,
            layout: Layout::Rows,
        }
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.ty.row_size(self.cols).expect("validated matrix")
    }

    /// The bytes of row `r` (of a matrix in the `Rows` layout).
    pub fn row(&self, r: usize) -> &'a [u8] {
        debug_assert_eq!(self.layout, Layout::Rows);
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Row `r` in GGUF's layout, whatever the matrix's: borrowed where it lies as one, else put
    /// together in `buf`.
    pub fn row_bytes_in<'b>(&self, r: usize, buf: &'b mut Vec<u8>) -> &'b [u8]
    where
        'a: 'b,
    {
        if self.layout == Layout::Rows {
            return self.row(r);
        }
        buf.resize(self.row_bytes(), 0);
        interleave::read_row(self.layout, self.ty, self.data, self.cols, r, buf);
        buf
    }
}

/// A raw pointer that may be shared across the pool's threads because every task writes a
/// disjoint set of elements through it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used by `matmul_multi`, whose tasks write disjoint (row, token) elements.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// Rows per task, a multiple of 8 so multi-row kernels (and interleaved groups) can be used.
/// A batch: enough tasks to balance the threads (a few per thread), each worth its scheduling
/// cost. One token (decode, memory-bound): one task per thread, so each thread streams one long
/// run of adjacent rows with its prefetches always ahead; every task start is a cold stream.
/// Measured against four tasks per thread, alternating token by token (2 threads, AMD EPYC):
/// decode +6% on the 1b Q4_0 model, +3% on 1b Q8_0, +11% on SmolLM2 Q4_1, +8% on gemma-3;
/// letting a thread that is done steal 32-128 KiB units from the end of another's rows was no
/// better than this.
fn rows_per_task(rows: usize, cols: usize, n_tokens: usize, threads: usize) -> usize {
    let min_rows = (32_768 / (cols * n_tokens).max(1)).max(4);
    let per_thread = if n_tokens == 1 { 1 } else { 4 };
    let by_balance = rows.div_ceil(threads * per_thread);
    by_balance.max(min_rows).div_ceil(8) * 8
}

/// `out[t * w.rows + r] = w.row(r) · act.row(t)` for `t < n_tokens`, `r < w.rows`.
///
/// Each element is computed with the dot product [`crate::TypeTraits::dot_for`] picks for this
/// matrix and batch size (or its interleaved layout's order), so the result is that of llama.cpp
/// multiplying the same `n_tokens` rows in one `ggml_mul_mat`.
///
/// `act` holds `n_tokens` rows already converted to the weight type's `vec_dot_type`.
/// Panics if the kernels have no dot product for `w.ty` or if the buffers are too small.
pub fn matmul(k: &Kernels, w: MatRef<'_>, act: &[u8], n_tokens: usize, out: &mut [f32]) {
    matmul_multi(k, &mut [(w, out)], act, n_tokens);
}

/// Several matrix products of the same activations in one parallel step (Q/K/V, gate/up): the
/// tasks of all matrices are claimed from one counter, so threads synchronise once.
/// Every matrix must pair with the same activation format and have `cols` equal to the
/// activation rows' length.
pub fn matmul_multi(
    k: &Kernels,
    mats: &mut [(MatRef<'_>, &mut [f32])],
    act: &[u8],
    n_tokens: usize,
) {
    crate::pool::with_current(|pool| matmul_multi_on(pool, k, mats, act, n_tokens))
}

fn matmul_multi_on(
    pool: &crate::pool::Pool,
    k: &Kernels,
    mats: &mut [(MatRef<'_>, &mut [f32])],
    act: &[u8],
    n_tokens: usize,
) {
    /// Tokens `t0..t1` use one summation order (a batch has at most two such runs).
    #[derive(Clone, Copy)]
    struct Run {
        t0: usize,
        t1: usize,
        dot: VecDot,
        tile: Option<DotTile>,
    }
    struct Job<'a> {
        w: MatRef<'a>,
        runs: [Option<Run>; 2],
        act_row: usize,
        out: SharedOut,
        chunk: usize,
        first_task: usize,
    }
    const MAX_JOBS: usize = 4;
    assert!(
        mats.len() <= MAX_JOBS,
        "at most {MAX_JOBS} matrices per step"
    );
    let threads = pool.n_threads();
    let mut jobs: [Option<Job<'_>>; MAX_JOBS] = [None, None, None, None];
    let mut n_tasks = 0;
    for (slot, (w, out)) in jobs.iter_mut().zip(mats.iter_mut()) {
        let traits = k
            .get(w.ty)
            .unwrap_or_else(|| panic!("no kernels for {}", w.ty));
        let mut runs = [None, None];
        let mut t0 = 0;
        if w.layout != Layout::Rows {
            assert!(
                interleave::fits(w.layout, w.ty, w.rows, w.cols),
                "a {} matrix of {} x {} cannot be stored as {:?}",
                w.ty,
                w.rows,
                w.cols,
                w.layout
            );
            // One order for every token: the layout's.
            let (order, tile) = match traits.interleaved {
                Some(i) if i.layout == w.layout => (i.order, Some(i.tile)),
                _ => (layout_order(w.layout), None),
            };
            runs[0] = Some(Run {
                t0: 0,
                t1: n_tokens,
                dot: traits
                    .dot(order)
                    .expect("the order of an interleaved layout"),
                tile,
            });
            t0 = n_tokens;
        }
        for run in runs.iter_mut() {
            if t0 == n_tokens {
                break;
            }
            let order = traits
                .order_for(w.rows, n_tokens, t0)
                .unwrap_or_else(|| panic!("no dot product for {}", w.ty));
            let mut t1 = t0 + 1;
            while t1 < n_tokens && traits.order_for(w.rows, n_tokens, t1) == Some(order) {
                t1 += 1;
            }
            let dot = traits.dot(order).expect("an order has its dot product");
            *run = Some(Run {
                t0,
                t1,
                dot,
                tile: traits.tile(order),
            });
            t0 = t1;
        }
        assert_eq!(t0, n_tokens, "a batch changes summation order at most once");
        let act_row = traits
            .vec_dot_type
            .row_size(w.cols)
            .expect("activation row size");
        assert!(
            act.len() >= act_row * n_tokens,
            "activation buffer too small"
        );
        assert!(out.len() >= w.rows * n_tokens, "output buffer too small");
        assert!(
            w.data.len() >= w.row_bytes() * w.rows,
            "weight buffer too small"
        );
        let chunk = rows_per_task(w.rows, w.cols, n_tokens, threads);
        *slot = Some(Job {
            w: *w,
            runs,
            act_row,
            out: SharedOut(out.as_mut_ptr()),
            chunk,
            first_task: n_tasks,
        });
        n_tasks += w.rows.div_ceil(chunk);
    }
    let jobs = &jobs[..mats.len()];
    let run = |task: usize| {
        let j = jobs
            .iter()
            .rev()
            .flatten()
            .find(|j| j.first_task <= task)
            .expect("task belongs to a job");
        let rows = j.w.rows;
        let rb = j.w.row_bytes();
        let r0 = (task - j.first_task) * j.chunk;
        let r1 = (r0 + j.chunk).min(rows);
        for run in j.runs.iter().flatten() {
            if let Some(tile) = run.tile {
                // SAFETY: the tile writes `out[t * rows + r]` for `t` in `run.t0..run.t1` and `r`
                // in `r0..r1` only (its contract): in bounds (asserted above) and disjoint from
                // every other task's elements (other row ranges, other matrices' outputs), and
                // the outputs stay mutably borrowed until every task is done.
                unsafe {
                    tile(&Tile {
                        n: j.w.cols,
                        w: &j.w.data[r0 * rb..r1 * rb],
                        w_stride: rb,
                        rows: r1 - r0,
                        a: &act[run.t0 * j.act_row..run.t1 * j.act_row],
                        a_stride: j.act_row,
                        tokens: run.t1 - run.t0,
                        out: j.out.0.add(run.t0 * rows + r0),
                        out_stride: rows,
                    })
                };
                continue;
            }
            // Interleaved rows without an interleaved kernel: put back in GGUF's layout first.
            let mut plain = Vec::new();
            let g = j.w.layout.group_rows();
            if g > 1 {
                let nb = j.w.cols / crate::formats::QK;
                plain = vec![0u8; (r1 - r0) * rb];
                let src = j.w.data[r0 * rb..r1 * rb].chunks_exact(g * rb);
                for (s, d) in src.zip(plain.chunks_exact_mut(g * rb)) {
                    interleave::deinterleave_group(j.w.layout, j.w.ty, s, d, nb);
                }
            }
            let row = |r: usize| -> &[u8] {
                if g > 1 {
                    &plain[(r - r0) * rb..(r - r0 + 1) * rb]
                } else {
                    j.w.row(r)
                }
            };
            for t in run.t0..run.t1 {
                let a = &act[t * j.act_row..(t + 1) * j.act_row];
                for r in r0..r1 {
                    let v = (run.dot)(j.w.cols, row(r), a);
                    // SAFETY: `t * rows + r < n_tokens * rows <= out.len()` (asserted above); the
                    // row ranges of different tasks of one matrix are disjoint and different
                    // matrices have different outputs, so no element is written twice; the
                    // outputs are borrowed mutably for the whole call, which returns after every
                    // task.
                    unsafe { *j.out.0.add(t * rows + r) = v };
                }
            }
        }
    };
    pool.run(n_tasks, &run);
}

/// Convert `n_tokens` rows of `cols` f32 values into `ty` (a `vec_dot_type`), in parallel when
/// the batch is large. Returns the bytes per converted row.
pub fn quantize_rows(
    k: &Kernels,
    ty: GgmlType,
    x: &[f32],
    cols: usize,
    n_tokens: usize,
    out: &mut [u8],
) -> usize {
    let from_float = k
        .get(ty)
        .and_then(|t| t.from_float)
        .unwrap_or_else(|| panic!("no quantizer for {ty}"));
    let rb = ty.row_size(cols).expect("row size");
    assert!(x.len() >= cols * n_tokens && out.len() >= rb * n_tokens);
    if n_tokens >= 8 {
        crate::pool::with_current(|pool| {
            pool.for_each_chunk_mut(&mut out[..rb * n_tokens], rb, |t, o| {
                from_float(&x[t * cols..(t + 1) * cols], o)
            })
        });
    } else {
        for (o, xi) in out.chunks_mut(rb).zip(x.chunks(cols)).take(n_tokens) {
            from_float(xi, o);
        }
    }
    rb
}
