//! Q5_0: 32 elements, 5-bit quants (nibbles plus a bit in `qh`) with an offset of 16:
//! `x = d·(q − 16)`. Pairs with Q8_0.

use super::block32::{
    inverse, max_by_magnitude, pack_fifth_bits, pack_nibbles, Block32, Quants, QK,
};
use super::common::out_blocks;
use super::q8_0::BlockQ8_0;
use crate::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// 22 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

impl Block32 for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    type Act = BlockQ8_0;
    const QUANTS: Quants = Quants::FiveBits;
    const OFFSET: i8 = 16;
    const M_AT: Option<usize> = None;
    const QH_AT: usize = 2;
    const QS_AT: usize = 6;
}

/// As gguf-py: `d = max / −16` for the element of largest magnitude,
/// `q = min(31, trunc(x/d + 16.5))`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ5_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = max_by_magnitude(xs) / -16.0;
        let id = inverse(d);
        let q: [u8; 32] = std::array::from_fn(|j| ((xs[j] * id + 16.5).trunc() as u8).min(31));
        b.d = f16::from_f32(d);
        b.qh = pack_fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}
