//! Flash-attention kernels over an f16 KV cache, reproducing the arithmetic of llama.cpp's CPU
//! flash attention (`ggml_compute_forward_flash_attn_ext_f16`, x86 AVX-512 build) bit for bit.
//! nib's `ops::attention` decides which of llama.cpp's paths a batch takes and which cells each
//! query sees; these kernels do the arithmetic:
//!
//! * [`crate::vec::VecOps::fa_vec`]: the **vector path** for one query row over a list of visible cells: the
//!   query rounded to f16, each score the 64-lane f16 dot ([`crate::vec::dot_f16`]) times the
//!   scale (or the softcap), an online softmax with libm's `expf`, and an f16 accumulator
//!   updated as `ggml_vec_scale_f16` / `ggml_vec_mad_f16` do (see [`scalar::fa_vec`]).
//! * [`crate::vec::VecOps::fa_tiled`]: the **tiled path** for a block of query rows sharing one KV head, in
//!   tiles of [`TILE_KV`] cells: f32 scores summed over the head dimension in order, the vector
//!   `expf` polynomial, the tile sums in f64, the output accumulated cell by cell
//!   (see [`scalar::fa_tiled`]).
//!
//! Each kernel has a scalar reference in [`scalar`]; the SIMD versions (chosen with the rest of
//! [`crate::vec`]) return its bits. The SIMD tiled kernel shares the conversion of each K/V tile
//! to f32 among all rows of the block and computes the scores as a small matrix product with the
//! rows in vector lanes, every score still one sequential chain over the head dimension.

pub(crate) mod generic;
pub mod scalar;

use half::f16;

/// Cells per KV tile of the tiled path (llama.cpp's `GGML_FA_TILE_KV`).
pub const TILE_KV: usize = 64;

/// Largest head size the kernels' stack buffers hold.
pub const MAX_HEAD_DIM: usize = 512;

/// A cell holding no position (see [`TiledHead::cells`]).
pub const EMPTY_CELL: u32 = u32::MAX;

/// One KV head's keys or values in an f16 cache: row `r` is `data[r * stride..][..dim]`. Rows are
/// indexed by the position they hold (nib stores its cache by position); which cells hold which
/// positions, and so the visiting order, is the caller's (see [`TiledHead::cells`]).
#[derive(Clone, Copy, Debug)]
pub struct HeadRows<'a> {
    pub data: &'a [f16],
    pub stride: usize,
    pub dim: usize,
}

impl<'a> HeadRows<'a> {
    /// Row `r`.
    #[inline(always)]
    pub fn row(&self, r: usize) -> &'a [f16] {
        &self.data[r * self.stride..][..self.dim]
    }
}

/// How a dot product becomes a score: `dot * scale`, or with a softcap
/// `softcap * tanhf(dot * (scale / softcap))` (libm's `tanhf`); then `+ 0.0` (which turns `-0`
/// into `+0`), as llama.cpp adds its (zero) mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    pub scale: f32,
    /// 0: none.
    pub softcap: f32,
}

impl Score {
    #[inline(always)]
    pub fn apply(self, dot: f32) -> f32 {
        let x = if self.softcap != 0.0 {
            self.softcap * (dot * (self.scale / self.softcap)).tanh()
        } else {
            dot * self.scale
        };
        x + 0.0
    }
}

/// The vector path's online-softmax state for one query row: running maximum `m`, sum `s`, and
/// the f16 accumulator, held as f32 values that are all exactly representable in f16.
/// Start with `m = -inf`, `s = 0`, `acc` zero.
#[derive(Debug)]
pub struct VecState<'a> {
    pub m: f32,
    pub s: f32,
    pub acc: &'a mut [f32],
}

/// One KV head for the tiled path, and which cells each query sees.
#[derive(Clone, Copy, Debug)]
pub struct TiledHead<'a> {
    pub k: HeadRows<'a>,
    pub v: HeadRows<'a>,
    pub score: Score,
    /// Cells `0..n_kv` are visited, in tiles of [`TILE_KV`] (the last may be shorter; llama.cpp
    /// pads it with masked cells).
    pub n_kv: usize,
    /// A query at position `q` sees a cell holding position `p` if `p <= q` and, with a window
    /// (`> 0`), `q - p < window`.
    pub window: usize,
    /// The position each cell holds ([`EMPTY_CELL`]: none; cells past the end hold none), which
    /// is also the row of `k` and `v` holding its key and value; `None`: cell `c` holds
    /// position `c`.
    pub cells: Option<&'a [u32]>,
}

impl TiledHead<'_> {
    /// The position cell `c` holds (its row in `k` and `v`), if any.
    #[inline(always)]
    pub fn position(&self, c: usize) -> Option<usize> {
        match self.cells {
            None => Some(c),
            Some(m) => match m.get(c) {
                Some(&p) if p != EMPTY_CELL => Some(p as usize),
                _ => None,
            },
        }
    }

    /// Whether a query at position `q` sees cell `c`.
    #[inline(always)]
    pub fn sees(&self, q: usize, c: usize) -> bool {
        match self.position(c) {
            Some(p) => p <= q && (self.window == 0 || q - p < self.window),
            None => false,
        }
    }

    /// Bit `i` set: a query at position `q` sees cell `c0 + i`, for `i < n <= 64`.
    #[inline(always)]
    pub fn mask(&self, q: usize, c0: usize, n: usize) -> u64 {
        match self.cells {
            None => {
                // Visible cells: `lo..=q`.
                let lo = if self.window > 0 {
                    (q + 1).saturating_sub(self.window)
                } else {
                    0
                };
                let a = lo.max(c0);
                let b = (q + 1).min(c0 + n);
                if a >= b {
                    0
                } else {
                    let len = b - a;
                    let bits = if len == 64 {
                        u64::MAX
                    } else {
                        (1u64 << len) - 1
                    };
                    bits << (a - c0)
                }
            }
            Some(_) => {
                let mut m = 0u64;
                for i in 0..n {
                    if self.sees(q, c0 + i) {
                        m |= 1 << i;
                    }
                }
                m
            }
        }
    }
}

/// One query row of a tiled block: its query at `q[q..][..dk]`, its position, and where its
/// output goes (`out[out..][..dv]`).
#[derive(Clone, Copy, Debug)]
pub struct TiledRow {
    pub q: usize,
    pub pos: usize,
    pub out: usize,
}
