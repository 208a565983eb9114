//! Transformer operations over batches of token rows, built on the `nib_simd` kernels:
//! projections with activation quantization shared across matrices, RoPE, attention over the KV
//! cache. The model's forward pass is written in terms of these.

pub mod attention;
pub mod rope;

use nib_simd::{GgmlType, Kernels, MatRef};

/// Buffers for activations converted to a weight's `vec_dot_type`, reused across calls.
#[derive(Default)]
pub struct QuantBuf {
    buf: Vec<u8>,
}

impl QuantBuf {
    pub fn with_capacity(bytes: usize) -> QuantBuf {
        QuantBuf {
            buf: vec![0; bytes],
        }
    }
}

/// Multiply the rows `x` (`n_tokens` rows of `cols` f32) by each matrix, writing
/// `out[t * rows + r]`. The input is converted once per distinct activation format and shared by
/// every matrix that pairs with it (Q/K/V, gate/up).
pub fn project(
    k: &Kernels,
    x: &[f32],
    cols: usize,
    n_tokens: usize,
    qb: &mut QuantBuf,
    mats: &mut [(MatRef<'_>, &mut [f32])],
) {
    let act_type =
        |w: &MatRef<'_>| -> GgmlType { k.get(w.ty).expect("kernels for weight type").vec_dot_type };
    let mut done = 0;
    while done < mats.len() {
        // The matrices at `done..` that pair with the same activation format go together.
        let at = act_type(&mats[done].0);
        let mut end = done + 1;
        for j in done + 1..mats.len() {
            if act_type(&mats[j].0) == at {
                mats.swap(end, j);
                end += 1;
            }
        }
        let need = at.row_size(cols).expect("row size") * n_tokens;
        if qb.buf.len() < need {
            qb.buf.resize(need, 0);
        }
        nib_simd::quantize_rows(k, at, x, cols, n_tokens, &mut qb.buf);
        nib_simd::matmul_multi(k, &mut mats[done..end], &qb.buf, n_tokens);
        done = end;
    }
}

/// Add a bias vector to every row.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        nib_simd::vec::add_inplace(row, bias);
    }
}

/// Below this many rows, row-wise elementwise work stays on the calling thread (a parallel step
/// costs a few microseconds; a row of a small model's width takes well under one).
const PAR_MIN_ROWS: usize = 16;

/// Call `f(first_row, rows)` over groups of whole `cols`-wide rows of `x` that together cover it:
/// one group on the calling thread for few rows, else groups spread over the pool.
pub fn for_row_groups(x: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = x.len() / cols.max(1);
    if rows < PAR_MIN_ROWS {
        f(0, x);
        return;
    }
    nib_simd::pool::with_current(|pool| {
        // Some groups per thread, so a thread slowed by others sharing the CPU evens out.
        let per = rows.div_ceil(4 * pool.n_threads()).max(4);
        pool.for_each_chunk_mut(x, per * cols, |i, chunk| f(i * per, chunk))
    });
}

/// RMSNorm each row of `x` (`cols` wide) into `out`.
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, cols: usize, out: &mut [f32]) {
    let n = x.len() / cols * cols;
    for_row_groups(&mut out[..n], cols, |r0, o| {
        nib_simd::vec::rms_norm_rows(&x[r0 * cols..][..o.len()], w, eps, cols, o)
    });
}

/// RMSNorm each row of `x` (`w.len()` wide, a row or a head) in place.
pub fn rms_norm_heads(x: &mut [f32], w: &[f32], eps: f32) {
    for_row_groups(x, w.len(), |_, g| {
        for head in g.chunks_exact_mut(w.len()) {
            nib_simd::vec::rms_norm_inplace(head, w, eps);
        }
    });
}
