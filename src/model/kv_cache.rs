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

/// One layer's keys or values.
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
    /// Elements per position of K (`n_head_kv * head_dim`) and of V.
    pub k_stride: usize,
    pub v_stride: usize,
    pub k: Vec<KvBuf>,
    pub v: Vec<KvBuf>,
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
