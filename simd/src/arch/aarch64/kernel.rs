//! The shape shared by every quantized dot-product kernel: a function of `R` weight rows and `T`
//! activation rows that returns their `R × T` dot products, looping over the blocks once (each
//! weight block unpacked once for the `T` tokens, each activation block loaded once for the `R`
//! rows). The table's `VecDot` is that function at `R = T = 1`, its `DotTile` the same function
//! at a larger shape, so the two run the same arithmetic per element and agree bit for bit.
//!
//! Kernels read blocks through raw byte pointers (any alignment) after one length check per call;
//! the inner loops have no bounds checks and no calls.

use super::common::Dot;

/// A dot-product kernel over blocks of `QB` elements: `XB` bytes per weight block, `YB` per
/// activation block.
pub(crate) trait Kernel {
    const QB: usize;
    const XB: usize;
    const YB: usize;

    /// `out[t][r]` = weight row `x[r]` · activation row `y[t]` over `nb` blocks, in the
    /// summation order of the kernel's [`crate::DotKind`].
    ///
    /// # Safety
    /// Every `x[r]` must be valid for reading `nb * XB` bytes and every `y[t]` `nb * YB` bytes;
    /// the CPU must support `D`'s instructions.
    unsafe fn run<D: Dot, const R: usize, const T: usize>(
        nb: usize,
        x: &[*const u8; R],
        y: &[*const u8; T],
    ) -> [[f32; R]; T];
}

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
/// The CPU must support `D`'s instructions, and `out` must satisfy `DotTile`'s contract. Panics
/// if `w` or `a` is shorter than the rows it must hold.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<K: Kernel, D: Dot, const R: usize, const T: usize>(
    n: usize,
    w: &[u8],
    w_stride: usize,
    nr: usize,
    a: &[u8],
    a_stride: usize,
    nc: usize,
    out: *mut f32,
    out_stride: usize,
) {
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

/// Declares, for each `name: Kernel type, R × T;`, the safe `VecDot` entry point `name::dot` and
/// the `DotTile` entry point `name::tile` (tiles of `R` rows × `T` tokens), once in module `neon`
/// (SDOT emulated) and once in module `dotprod` (SDOT inside `dotprod` functions).
macro_rules! entries {
    ($($name:ident: $k:ty, $r:literal x $t:literal;)*) => {
        /// Plain Advanced SIMD (the SDOT emulation).
        pub(crate) mod neon {
            use super::*;
            use crate::arch::aarch64::common::Emul;
            use crate::arch::aarch64::kernel;
            $(
                pub(crate) mod $name {
                    use super::*;
                    pub(crate) fn dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
                        // SAFETY: Advanced SIMD is part of the aarch64 baseline, which is all
                        // `Emul` needs.
                        unsafe { kernel::vec_dot::<$k, Emul>(n, x, y) }
                    }
                    /// # Safety
                    /// `DotTile`'s contract.
                    #[allow(clippy::too_many_arguments)]
                    pub(crate) unsafe fn tile(
                        n: usize, w: &[u8], ws: usize, nr: usize,
                        a: &[u8], as_: usize, nc: usize, out: *mut f32, os: usize,
                    ) {
                        // SAFETY: baseline instructions; the caller upholds `DotTile`'s contract.
                        unsafe { kernel::tile::<$k, Emul, $r, $t>(n, w, ws, nr, a, as_, nc, out, os) }
                    }
                }
            )*
        }

        /// SDOT (`FEAT_DotProd`): reachable only through tables that `install_dotprod` fills
        /// after checking the CPU feature.
        pub(crate) mod dotprod {
            use super::*;
            use crate::arch::aarch64::common::Sdot;
            use crate::arch::aarch64::kernel;
            $(
                pub(crate) mod $name {
                    use super::*;
                    #[target_feature(enable = "dotprod")]
                    unsafe fn dot_imp(n: usize, x: &[u8], y: &[u8]) -> f32 {
                        // SAFETY: this function is compiled with `dotprod`, and only called
                        // when the CPU has it (see `dot`).
                        unsafe { kernel::vec_dot::<$k, Sdot>(n, x, y) }
                    }
                    pub(crate) fn dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
                        // SAFETY: only installed by `install_dotprod`, which checked `dotprod`.
                        unsafe { dot_imp(n, x, y) }
                    }
                    /// # Safety
                    /// `DotTile`'s contract; the CPU must have `dotprod` (checked by
                    /// `install_dotprod`, the only place this is installed).
                    #[target_feature(enable = "dotprod")]
                    #[allow(clippy::too_many_arguments)]
                    pub(crate) unsafe fn tile(
                        n: usize, w: &[u8], ws: usize, nr: usize,
                        a: &[u8], as_: usize, nc: usize, out: *mut f32, os: usize,
                    ) {
                        // SAFETY: compiled with `dotprod`, which the caller's table guarantees;
                        // the caller upholds `DotTile`'s contract.
                        unsafe { kernel::tile::<$k, Sdot, $r, $t>(n, w, ws, nr, a, as_, nc, out, os) }
                    }
                }
            )*
        }
    };
}
pub(crate) use entries;
