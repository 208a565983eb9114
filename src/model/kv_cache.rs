//! The KV cache: for every layer, the keys and values of every position so far, stored as f16
//! (the default, as llama.cpp) or f32. Layout per layer: `[position][kv_head][head_dim]`.

use half::f16;

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

impl KvType {
    pub fn from_name(s: &str) -> Option<KvType> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "f32" => Some(KvType::F32),
            _ => None,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

/// One layer's keys or values: (n_ctx, n_head_kv * head_dim), or `head_dim_v` for values.
#[derive(Debug)]
pub enum KvBuf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl KvBuf {
    fn new(ty: KvType, n: usize) -> KvBuf {
        match ty {
            KvType::F16 => KvBuf::F16(vec![f16::ZERO; n]),
            KvType::F32 => KvBuf::F32(vec![0.0; n]),
        }
    }

    /// Store `src` at element offset `at`.
    pub fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvBuf::F16(v) => nib_simd::vec::to_f16(src, &mut v[at..at + src.len()]),
            KvBuf::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }
}

/// Keys and values for all layers, for up to `n_ctx` positions.
#[derive(Debug)]
pub struct KvCache {
    pub ty: KvType,
    pub n_ctx: usize,
    /// Elements per position of K (`n_head_kv * head_dim`) and of V (`n_head_kv * head_dim_v`).
    pub k_stride: usize,
    pub v_stride: usize,
    pub k: Vec<KvBuf>, // (n_layer, n_ctx, n_head_kv * head_dim)
    pub v: Vec<KvBuf>, // (n_layer, n_ctx, n_head_kv * head_dim_v)
}

impl KvCache {
    pub fn new(
        ty: KvType,
        n_layer: usize,
        n_ctx: usize,
        k_stride: usize,
        v_stride: usize,
    ) -> KvCache {
        KvCache {
            ty,
            n_ctx,
            k_stride,
            v_stride,
            k: (0..n_layer)
                .map(|_| KvBuf::new(ty, n_ctx * k_stride))
                .collect(),
            v: (0..n_layer)
                .map(|_| KvBuf::new(ty, n_ctx * v_stride))
                .collect(),
        }
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        self.k.len() * self.n_ctx * (self.k_stride + self.v_stride) * self.ty.bytes()
    }
}

/// Which position each cell of a llama.cpp KV cache holds, tracked by repeating llama.cpp's cell
/// placement (`llama_kv_cache::find_slot` and `apply_ubatch` for one sequence). nib stores keys
/// and values by position, but llama.cpp's attention visits cells in cell order, and that order
/// fixes the float arithmetic; for a sliding-window cache, which is a ring of
/// `pad256(min(n_ctx, n_swa + n_ubatch))` cells reusing cells that the window has left behind,
/// cell order departs from position order once the ring wraps.
#[derive(Clone, Debug)]
pub struct CellMap {
    /// The position in each cell, [`CellMap::EMPTY`] for a free one: (size).
    pub pos: Vec<u32>,
    /// llama.cpp's `head`: where the next search for free cells starts.
    head: usize,
    /// Sliding window (0: none; cells are then only reused once freed).
    n_swa: usize,
}

impl CellMap {
    pub const EMPTY: u32 = u32::MAX;

    pub fn new(size: usize, n_swa: usize) -> CellMap {
        CellMap {
            pos: vec![Self::EMPTY; size],
            head: 0,
            n_swa,
        }
    }

    pub fn size(&self) -> usize {
        self.pos.len()
    }

    fn used(&self) -> usize {
        self.pos.iter().filter(|&&p| p != Self::EMPTY).count()
    }

    fn pos_max(&self) -> Option<u32> {
        self.pos.iter().copied().filter(|&p| p != Self::EMPTY).max()
    }

    /// One past the highest occupied cell (`used_max_p1`).
    pub fn used_max_p1(&self) -> usize {
        self.pos
            .iter()
            .rposition(|&p| p != Self::EMPTY)
            .map_or(0, |i| i + 1)
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.pos.fill(Self::EMPTY);
        self.head = 0;
    }

    /// Free the cells holding positions `>= p` (`seq_rm(seq, p, -1)`).
    pub fn remove_from(&mut self, p: usize) {
        self.remove_range(p as u32, u32::MAX);
    }

    fn remove_range(&mut self, p0: u32, p1: u32) {
        let mut new_head = None;
        for (i, c) in self.pos.iter_mut().enumerate() {
            if *c != Self::EMPTY && *c >= p0 && *c < p1 {
                *c = Self::EMPTY;
                new_head.get_or_insert(i);
            }
        }
        if let Some(h) = new_head {
            self.head = self.head.min(h);
        }
    }

    /// Place positions `pos0..pos0 + n` of one ubatch as llama.cpp does. Panics if they do not
    /// fit (llama.cpp's decode would fail).
    pub fn place(&mut self, pos0: usize, n: usize) {
        let size = self.size();
        let pos_max = self.pos_max();
        let mut head = self.head;
        if head > self.used() + 2 * n {
            head = 0;
        }
        let mut idxs = Vec::with_capacity(n);
        let mut tested = 0;
        while idxs.len() < n {
            assert!(
                tested < size,
                "{n} tokens do not fit in a KV cache of {size} cells"
            );
            if head >= size {
                head = 0;
            }
            let idx = head;
            head += 1;
            tested += 1;
            let p = self.pos[idx];
            let usable = p == Self::EMPTY
                || (self.n_swa > 0
                    && pos_max.is_some_and(|m| {
                        (m as usize + 1).saturating_sub(p as usize) >= self.n_swa
                    }));
            if usable {
                idxs.push(idx);
            }
        }
        // Apply: overwrite, then purge every position up to the highest one overwritten, as
        // `apply_ubatch` keeps each sequence's positions contiguous.
        let mut max_rm = None;
        for (i, &idx) in idxs.iter().enumerate() {
            if self.pos[idx] != Self::EMPTY {
                max_rm = max_rm.max(Some(self.pos[idx]));
            }
            self.pos[idx] = (pos0 + i) as u32;
        }
        if let Some(m) = max_rm {
            let min = self
                .pos
                .iter()
                .copied()
                .filter(|&p| p != Self::EMPTY)
                .min()
                .unwrap_or(0);
            if min <= m {
                self.remove_range(min, m + 1);
            }
        }
        self.head = idxs[n - 1] + 1;
    }
}
