//! Q5_1: 32 elements, 5-bit quants with a minimum: `x = d·q + m`. Pairs with Q8_1.

use super::block32::{inverse, min_max, pack_fifth_bits, pack_nibbles, Block32, Quants, QK};
use super::common::out_blocks;
use super::q8_1::BlockQ8_1;
use crate::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

impl Block32 for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    type Act = BlockQ8_1;
    const QUANTS: Quants = Quants::FiveBits;
    const OFFSET: i8 = 0;
    const M_AT: Option<usize> = Some(2);
    const QH_AT: usize = 4;
    const QS_AT: usize = 8;
}

/// As gguf-py: `d = (max − min) / 31`, `m = min`, `q = min(31, trunc((x − min)/d + 0.5))`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ5_1] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xs);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let q: [u8; 32] =
            std::array::from_fn(|j| (((xs[j] - min) * id + 0.5).trunc() as u8).min(31));
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(min);
        b.qh = pack_fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}
