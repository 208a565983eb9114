//! How an aarch64 kernel ([`Kernel`]: `R` weight rows × `T` activation rows per call, looping over
//! the blocks once) covers a row by a row (the table's `VecDot`, the kernel at `R = T = 1`) and a
//! [`Tile`] (its `DotTile`, the kernel at a larger shape): the two run the same arithmetic per
//! element and agree bit for bit.
//!
//! Kernels read blocks through raw byte pointers (any alignment) after one length check per call;
//! the inner loops have no bounds checks and no calls.

use super::kernel::Kernel;
use super::simd::Dot;
use crate::traits::Tile;

/// The table's `VecDot`: one row by one row. Panics, like the scalar kernels, if a row is shorter
/// than `n` elements.
///
/// # Safety
/// The CPU must support `D`'s instructions.
#[inline(always)]
pub(crate) unsafe fn vec_dot<K: Kernel, D: Dot>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / K::QB;
    assert!(
        x.len() >= nb * K::XB && y.len() >= nb * K::YB,
        "row shorter than {n} elements"
    );
    K::run::<D, 1, 1>(nb, &[x.as_ptr()], &[y.as_ptr()])[0][0]
}

/// The table's `DotTile` (see its contract): tokens in blocks that fit L1, and for each block the
/// rows in groups of `R` against the tokens in groups of `T`; leftover rows one at a time,
/// leftover tokens one at a time.
///
/// # Safety
/// The CPU must support `D`'s instructions, and `t.out` must satisfy `DotTile`'s contract. Panics
/// if `t.w` or `t.a` is shorter than the rows it must hold.
#[inline(always)]
pub(crate) unsafe fn tile<K: Kernel, D: Dot, const R: usize, const T: usize>(t: &Tile<'_>) {
    let (n, w, w_stride, nr) = (t.n, t.w, t.w_stride, t.rows);
    let (a, a_stride, nc, out, out_stride) = (t.a, t.a_stride, t.tokens, t.out, t.out_stride);
    if nr == 0 || nc == 0 {
        return;
    }
    let nb = n / K::QB;
    assert!(
        w.len() >= (nr - 1) * w_stride + nb * K::XB,
        "weight rows shorter than the tile"
    );
    assert!(
        a.len() >= (nc - 1) * a_stride + nb * K::YB,
        "activation rows shorter than the tile"
    );
    let wp = w.as_ptr();
    // Tokens in blocks whose activations stay in L1 while every row group passes over them.
    let block = (TOKEN_BLOCK_BYTES / a_stride.max(1) / T).max(1) * T;
    let mut c0 = 0;
    while c0 < nc {
        let cn = block.min(nc - c0);
        let (ap, out) = (a.as_ptr().add(c0 * a_stride), out.add(c0 * out_stride));
        let mut r = 0;
        while r + R <= nr {
            let x: [*const u8; R] = core::array::from_fn(|i| wp.add((r + i) * w_stride));
            tokens::<K, D, R, T>(nb, &x, ap, a_stride, cn, out.add(r), out_stride);
            r += R;
        }
        while r < nr {
            let x = [wp.add(r * w_stride)];
            tokens::<K, D, 1, T>(nb, &x, ap, a_stride, cn, out.add(r), out_stride);
            r += 1;
        }
        c0 += cn;
    }
}

/// Activation bytes per token block of [`tile`]: half of a Neoverse-N1 core's 64 KiB L1D.
const TOKEN_BLOCK_BYTES: usize = 32 * 1024;

/// `R` rows against every token, `T` tokens at a time.
#[inline(always)]
unsafe fn tokens<K: Kernel, D: Dot, const R: usize, const T: usize>(
    nb: usize,
    x: &[*const u8; R],
    ap: *const u8,
    a_stride: usize,
    nc: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let mut c = 0;
    while c + T <= nc {
        let y: [*const u8; T] = core::array::from_fn(|i| ap.add((c + i) * a_stride));
        store(
            &K::run::<D, R, T>(nb, x, &y),
            out.add(c * out_stride),
            out_stride,
        );
        c += T;
    }
    while c < nc {
        let y = [ap.add(c * a_stride)];
        store(
            &K::run::<D, R, 1>(nb, x, &y),
            out.add(c * out_stride),
            out_stride,
        );
        c += 1;
    }
}

#[inline(always)]
unsafe fn store<const R: usize, const T: usize>(v: &[[f32; R]; T], out: *mut f32, stride: usize) {
    for (t, row) in v.iter().enumerate() {
        for (r, &x) in row.iter().enumerate() {
            *out.add(t * stride + r) = x;
        }
    }
}
