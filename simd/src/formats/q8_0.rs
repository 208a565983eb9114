//! Q8_0: 32 elements, 8-bit quants: `x = d·q`. A weight format (pairing with itself) and the
//! activation format of Q4_0, Q5_0 and Q8_0.

use super::block32::{block32, Act32, QK};
use super::common::quantize_blocks;
use crate::GgmlType;
use half::f16;

block32! {
    /// 34 bytes: the scale, 32 signed quants.
    pub struct BlockQ8_0 { d: f16, qs: [i8; 32] }
    type Q8_0; pairs with BlockQ8_0; quants Bytes; offset 0;
}

impl Act32 for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const S_AT: Option<usize> = None;
    const QS_AT: usize = core::mem::offset_of!(BlockQ8_0, qs);
}

/// One block of activations as llama.cpp's x86 kernels quantize them (`quantize_row_q8_0` /
/// `quantize_row_q8_1` with AVX2): `d = max|x| / 127`, `q = round_ties_even(x * (127 / max|x|))`.
/// Returns `d`, the quants and their sum.
pub(crate) fn activation_block(xs: &[f32]) -> (f32, [i8; QK], i32) {
    let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let q: [i8; QK] = std::array::from_fn(|j| (xs[j] * id).round_ties_even() as i8);
    (amax / 127.0, q, q.iter().map(|&v| v as i32).sum())
}

/// Activations, with [`activation_block`]: nib uses this one definition at every level and on
/// every architecture, so results agree with llama.cpp's x86 builds and are identical between
/// nib's x86 and ARM builds. (The kernel table's `from_float`; the weight quantizer is
/// [`super::block32::quantize`].)
pub fn quantize_activations(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK, |xs, b: &mut BlockQ8_0| {
        let (d, qs, _) = activation_block(xs);
        *b = BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        };
    });
}
