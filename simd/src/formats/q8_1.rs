//! Q8_1: 32 elements, 8-bit quants with `s = d·Σq`: the activations of Q4_1 and Q5_1, whose
//! minimum needs the sum. Not a weight format.

use super::block32::{Act32, QK};
use super::common::quantize_blocks;
use super::q8_0::activation_block;
use crate::GgmlType;
use bytemuck::{cast_slice, Pod, Zeroable};
use half::f16;

/// 36 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

impl Act32 for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const S_AT: Option<usize> = Some(core::mem::offset_of!(BlockQ8_1, s));
    const QS_AT: usize = core::mem::offset_of!(BlockQ8_1, qs);
}

/// `x = d·q` (`s` is not needed).
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ8_1] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// As Q8_0's [`super::q8_0::quantize_activations`] plus `s = d * Σq` (llama.cpp's x86
/// `quantize_row_q8_1`).
pub fn quantize_activations(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK, |xs, b: &mut BlockQ8_1| {
        let (d, qs, sum) = activation_block(xs);
        let s = f16::from_f32(d * sum as f32);
        *b = BlockQ8_1 {
            d: f16::from_f32(d),
            s,
            qs,
        };
    });
}
