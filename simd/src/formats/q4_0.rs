//! Q4_0: 32 elements, 4-bit quants with an offset of 8: `x = d·(q − 8)`. Pairs with Q8_0.
//!
//! Weights interleaved at load: eight rows at a time ([`crate::interleave::Layout::Interleaved8`]),
//! multiplied in the [`crate::traits::Order::Block`] order that llama.cpp's x86 backend uses for
//! this type on matrices of a multiple of 8 rows.

use super::block32::{inverse, max_by_magnitude, pack_nibbles, Block32, Quants, QK};
use super::common::out_blocks;
use super::q8_0::BlockQ8_0;
use crate::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// 18 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

impl Block32 for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    type Act = BlockQ8_0;
    const QUANTS: Quants = Quants::Nibbles;
    const OFFSET: i8 = 8;
    const M_AT: Option<usize> = None;
    const QH_AT: usize = 0;
    const QS_AT: usize = 2;
}

/// As gguf-py: `d = max / −8` for the element of largest magnitude,
/// `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ4_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = max_by_magnitude(xs) / -8.0;
        let id = inverse(d);
        let q: [u8; 32] = std::array::from_fn(|j| ((xs[j] * id + 8.5).trunc() as u8).min(15));
        b.d = f16::from_f32(d);
        b.qs = pack_nibbles(&q);
    }
}
