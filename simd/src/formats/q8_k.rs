//! Q8_K: 256 elements, 8-bit quants with an f32 scale and per-16 sums `bsums`: the activations
//! of the K-quants. Not a weight format.

use super::common::{nearest_int, signed_max};
use super::QK_K;
use bytemuck::{cast_slice, Pod, Zeroable};

/// 292 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

/// `x = d·q`.
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ8K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = b.d * q as f32;
        }
    }
}

/// ggml's `quantize_row_q8_K_ref` (the kernel table's `from_float`): the value of largest magnitude maps to -127, with per-16 sums.
pub fn quantize_activations(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8K] = bytemuck::cast_slice_mut(y);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (max, amax) = signed_max(xs);
        if amax == 0.0 {
            *b = BlockQ8K::zeroed();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            b.bsums[j] = b.qs[j * 16..j * 16 + 16].iter().map(|&q| q as i16).sum();
        }
        b.d = 1.0 / iscale;
    }
}

/// The operands of a K-quant dot product: `n / 256` weight blocks and Q8_K blocks from the front of
/// two rows. Panics if a row is shorter.
pub(crate) fn operands<'a, B: Pod>(
    n: usize,
    x: &'a [u8],
    y: &'a [u8],
) -> (&'a [B], &'a [BlockQ8K]) {
    let nb = n / QK_K;
    (
        cast_slice(&x[..nb * size_of::<B>()]),
        cast_slice(&y[..nb * size_of::<BlockQ8K>()]),
    )
}
