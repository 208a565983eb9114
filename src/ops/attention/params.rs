//! What an attention call is: its shape, which cells each query sees, and which of llama.cpp's
//! paths it takes.

use crate::model::kv_cache::CellMap;

/// llama.cpp's flash-attention query tile (`GGML_FA_TILE_Q`): batches of at least this many
/// queries take the tiled path.
pub const FA_TILE_Q: usize = 64;
/// llama.cpp's flash-attention KV tile (`GGML_FA_TILE_KV`).
pub const FA_TILE_KV: usize = 64;
/// A single query over at least this many KV cells takes llama.cpp's split-KV path.
pub const FA_SPLIT_MIN_KV: usize = 512;
/// llama.cpp pads its KV view to a multiple of this many cells (`llama_kv_cache::get_n_kv`).
pub const KV_PAD: usize = 256;

/// llama.cpp's KV view length for a batch whose last position is `end - 1`, in a cache of `size`
/// cells filled in position order: `min(size, max(256, pad256(end)))`.
pub fn llama_n_kv(end: usize, size: usize) -> usize {
    size.min(KV_PAD.max(end.div_ceil(KV_PAD) * KV_PAD))
}

/// Which position each cell of llama.cpp's KV view holds.
#[derive(Clone, Copy, Debug)]
pub enum Cells<'a> {
    /// Cell `c` holds position `c` (a cache filled in order).
    Positions,
    /// Cell `c` holds position `map[c]` ([`CellMap::EMPTY`]: none).
    Map(&'a [u32]),
}

/// Shape and masking of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnParams<'a> {
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
    /// llama.cpp's KV view length for this batch ([`llama_n_kv`]): where its KV tiles and split
    /// chunks fall.
    pub n_kv: usize,
    /// The llama.cpp thread count reproduced by the split-KV path (chunks of `ceil(n_kv / kv_split)`
    /// cells). 0 or 1: never split.
    pub kv_split: usize,
    /// Which position each cell holds.
    pub cells: Cells<'a>,
}

/// Which of llama.cpp's paths a batch of `n_tokens` queries takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaPath {
    Vector,
    Tiled,
    SplitKv,
}

impl AttnParams<'_> {
    pub fn path(&self, n_tokens: usize) -> FaPath {
        if n_tokens == 1 && self.n_kv >= FA_SPLIT_MIN_KV && self.kv_split > 1 {
            FaPath::SplitKv
        } else if n_tokens >= FA_TILE_Q {
            FaPath::Tiled
        } else {
            FaPath::Vector
        }
    }

    /// What query `t` sees.
    pub(super) fn view(&self, t: usize) -> View<'_> {
        View {
            cells: self.cells,
            q: self.pos0 + t,
            window: self.window,
        }
    }
}

/// The keys one query sees: cells holding a position `p <= q` and, with a window, `q - p < window`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) cells: Cells<'a>,
    /// The query's position.
    pub(super) q: usize,
    pub(super) window: usize,
}

impl View<'_> {
    /// The cells worth visiting within `c0..c1`.
    pub(super) fn clamp(&self, c0: usize, c1: usize) -> (usize, usize) {
        match self.cells {
            Cells::Positions => {
                let first = if self.window > 0 {
                    (self.q + 1).saturating_sub(self.window)
                } else {
                    0
                };
                (c0.max(first), c1.min(self.q + 1))
            }
            Cells::Map(m) => (c0, c1.min(m.len())),
        }
    }

    /// The position cell `c` holds, if this query sees it.
    #[inline]
    pub(super) fn key(&self, c: usize) -> Option<usize> {
        let p = match self.cells {
            Cells::Positions => c,
            Cells::Map(m) => match m.get(c) {
                Some(&p) if p != CellMap::EMPTY => p as usize,
                _ => return None,
            },
        };
        (p <= self.q && (self.window == 0 || self.q - p < self.window)).then_some(p)
    }
}
