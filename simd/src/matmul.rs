//! Matrix products over threads: a quantized weight matrix times one (decode) or many (prompt)
//! activation rows, split by output rows across the rayon pool. Each task takes a chunk of weight
//! rows and multiplies it with every activation row, so a loaded weight block serves the whole
//! batch while it is in cache.

use crate::traits::{Kernels, VecDot};
use crate::GgmlType;
use rayon::prelude::*;

/// A weight matrix in a GGUF layout: `rows` rows of `cols` elements of type `ty`, row-major.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> MatRef<'a> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.ty.row_size(self.cols).expect("validated matrix")
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// A raw pointer that may be shared across the pool's threads because every task writes a
/// disjoint set of elements through it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used by `matmul`, whose tasks write disjoint (row, token) elements; see there.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

/// Rows per task: enough tasks to balance the threads, few enough that each is worth its
/// scheduling cost, and a multiple of 4 so multi-row kernels can be used.
fn rows_per_task(rows: usize, cols: usize, n_tokens: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    // Aim for ~8 tasks per thread, each of at least ~16K multiply-adds.
    let min_rows = (16_384 / (cols * n_tokens).max(1)).max(4);
    let by_balance = rows.div_ceil(threads * 8);
    by_balance.max(min_rows).div_ceil(4) * 4
}

/// `out[t * w.rows + r] = w.row(r) · act.row(t)` for `t < n_tokens`, `r < w.rows`.
///
/// Each element is computed with the dot product [`crate::TypeTraits::dot_for`] picks for this
/// matrix and batch size, so the result is that of llama.cpp multiplying the same `n_tokens`
/// rows in one `ggml_mul_mat`.
///
/// `act` holds `n_tokens` rows already converted to the weight type's `vec_dot_type`.
/// Panics if the kernels have no dot product for `w.ty` or if the buffers are too small.
pub fn matmul(k: &Kernels, w: MatRef<'_>, act: &[u8], n_tokens: usize, out: &mut [f32]) {
    let traits = k
        .get(w.ty)
        .unwrap_or_else(|| panic!("no kernels for {}", w.ty));
    // The kernel llama.cpp would use for each token of this shape: float orders differ between kernels.
    let dots: Vec<VecDot> = (0..n_tokens)
        .map(|t| {
            traits
                .dot_for(w.rows, n_tokens, t)
                .unwrap_or_else(|| panic!("no dot product for {}", w.ty))
        })
        .collect();
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

    let rows = w.rows;
    let chunk = rows_per_task(rows, w.cols, n_tokens);
    let n_chunks = rows.div_ceil(chunk);
    let dst = SharedOut(out.as_mut_ptr());
    let run = |c: usize| {
        let r0 = c * chunk;
        let r1 = (r0 + chunk).min(rows);
        for t in 0..n_tokens {
            let a = &act[t * act_row..(t + 1) * act_row];
            let vec_dot = dots[t];
            for r in r0..r1 {
                let v = vec_dot(w.cols, w.row(r), a);
                // SAFETY: `t * rows + r < n_tokens * rows <= out.len()` (asserted above), and
                // the row ranges `r0..r1` of different tasks are disjoint, so no element is
                // written by two threads; `out` outlives the parallel loop, which joins before
                // this function returns.
                unsafe { *dst.ptr().add(t * rows + r) = v };
            }
        }
    };
    if n_chunks == 1 {
        run(0);
    } else {
        (0..n_chunks).into_par_iter().for_each(run);
    }
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
        out[..rb * n_tokens]
            .par_chunks_mut(rb)
            .zip(x[..cols * n_tokens].par_chunks(cols))
            .for_each(|(o, xi)| from_float(xi, o));
    } else {
        for (o, xi) in out.chunks_mut(rb).zip(x.chunks(cols)).take(n_tokens) {
            from_float(xi, o);
        }
    }
    rb
}
