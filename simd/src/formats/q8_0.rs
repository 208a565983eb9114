//! Q8_0: 32 elements, 8-bit quants: `x = d·q`. A weight format (pairing with itself) and the
//! activation format of Q4_0, Q5_0 and Q8_0.

use super::block32::{inverse, Act32, Block32, Quants, QK};
use super::common::out_blocks;
use crate::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// 34 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

impl Block32 for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    type Act = BlockQ8_0;
    const QUANTS: Quants = Quants::Bytes;
    const OFFSET: i8 = 0;
    const M_AT: Option<usize> = None;
    const QH_AT: usize = 0;
    const QS_AT: usize = 2;
}

impl Act32 for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const S_AT: Option<usize> = None;
    const QS_AT: usize = 2;
}

/// Activations as llama.cpp's x86 kernels quantize them (`quantize_row_q8_0` with AVX2): per
/// block `d = max|x| / 127`, `q = round_ties_even(x * (127 / max|x|))`. nib uses this one
/// definition at every level and on every architecture, so results agree with llama.cpp's x86
/// builds and are identical between nib's x86 and ARM builds. (The kernel table's `from_float`.)
pub fn quantize_activations(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16::from_f32(d);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

/// Weights as gguf-py and ggml's `quantize_row_q8_0_ref` write them: `d = max|x| / 127`,
/// `q = round(x · (1/d))` rounding half away from zero (C's `roundf`). Differs from
/// [`quantize_activations`] only in rare last-bit cases.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
        }
    }
}
