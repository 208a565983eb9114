//! The 32-element block formats (ggml's "legacy" quants: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), as one
//! family. Each format's file describes its block with [`Block32`] (where the fields lie, how the
//! quants are stored, the offset subtracted from them, whether it has a minimum); the
//! dequantization and the summation orders below, and the SIMD kernels of every instruction set
//! (`arch/*/legacy.rs`), are written once for the family from that description.
//!
//! The activations a 32-element format pairs with are [`Act32`] blocks: Q8_0, or Q8_1 (whose `s`
//! carries the sum the minimum needs).

use super::common::{fma_lanes, hsum8, int_dot, out_blocks, quad_sums};
use crate::GgmlType;
use bytemuck::{bytes_of, cast_slice, Pod};
use half::f16;

/// Elements per block.
pub const QK: usize = 32;

/// How a 32-element format stores its quants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quants {
    /// 16 bytes: element `j < 16` is the low nibble of byte `j`, element `16 + j` its high nibble.
    Nibbles,
    /// Those nibbles plus a fifth bit per element: bit `j` of the little-endian `u32` `qh` is bit 4
    /// of element `j`.
    FiveBits,
    /// 32 signed bytes, one per element.
    Bytes,
}

/// A 32-element block format, described for the family's generic code. Every format has its f16
/// scale `d` first.
pub trait Block32: Pod {
    /// Its ggml type.
    const TYPE: GgmlType;
    /// The activation block it pairs with.
    type Act: Act32;
    /// How its quants are stored.
    const QUANTS: Quants;
    /// Subtracted from the stored (unsigned) quants: `x = d·(q − OFFSET)`. 0 for [`Quants::Bytes`]
    /// (already signed) and for the formats with a minimum.
    const OFFSET: i8;
    /// Byte offset of the f16 minimum `m` of the formats that have one (`x = d·q + m`).
    const M_AT: Option<usize>;
    /// Byte offset of `qh` ([`Quants::FiveBits`] only).
    const QH_AT: usize;
    /// Byte offset of the quants.
    const QS_AT: usize;
}

/// An 8-bit activation block of the 32-element formats: `d` first, then (Q8_1) `s = d·Σq`, then
/// the 32 signed quants.
pub trait Act32: Pod {
    /// Its ggml type.
    const TYPE: GgmlType;
    /// Byte offset of the f16 `s`, for Q8_1.
    const S_AT: Option<usize>;
    /// Byte offset of the quants.
    const QS_AT: usize;
}

/// Declares a 32-element format: its `#[repr(C)]` block struct (`d` first, the quants in `qs`),
/// and its [`Block32`] description, with the field offsets taken from the struct. The optional
/// clauses name the minimum (`min m;`) and the fifth bits (`high bits qh;`).
macro_rules! block32 {
    (@some $e:expr) => { Some($e) };
    (@some) => { None };
    (
        $(#[$doc:meta])*
        pub struct $name:ident { d: f16, $($field:ident: $fty:ty),* $(,)? }
        type $ty:ident; pairs with $act:ty; quants $quants:ident; offset $off:literal;
        $(min $m:ident;)? $(high bits $qh:ident;)?
    ) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            pub d: half::f16,
            $(pub $field: $fty,)*
        }

        impl $crate::formats::block32::Block32 for $name {
            const TYPE: $crate::GgmlType = $crate::GgmlType::$ty;
            type Act = $act;
            const QUANTS: $crate::formats::block32::Quants =
                $crate::formats::block32::Quants::$quants;
            const OFFSET: i8 = $off;
            const M_AT: Option<usize> = block32!(@some $(core::mem::offset_of!($name, $m))?);
            const QH_AT: usize = match block32!(@some $(core::mem::offset_of!($name, $qh))?) {
                Some(at) => at,
                None => 0,
            };
            const QS_AT: usize = core::mem::offset_of!($name, qs);
        }
    };
}
pub(crate) use block32;

/// Whether the format has a minimum (and so pairs with Q8_1).
pub const fn has_min<B: Block32>() -> bool {
    B::M_AT.is_some()
}

#[inline(always)]
fn f16_at(bytes: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// The scale of a weight or activation block (its first field).
#[inline(always)]
pub fn d<T: Pod>(b: &T) -> f16 {
    f16_at(bytes_of(b), 0)
}

/// The block's minimum (0 for the formats without one).
#[inline(always)]
pub fn m<B: Block32>(b: &B) -> f16 {
    B::M_AT.map_or(f16::ZERO, |at| f16_at(bytes_of(b), at))
}

/// The 16 nibble bytes of a [`Quants::Nibbles`] or [`Quants::FiveBits`] block.
#[inline(always)]
pub fn nibble_bytes<B: Block32>(b: &B) -> &[u8; 16] {
    bytes_of(b)[B::QS_AT..B::QS_AT + 16].try_into().unwrap()
}

/// The 32 signed bytes of a [`Quants::Bytes`] block.
#[inline(always)]
pub fn byte_quants<B: Block32>(b: &B) -> &[i8; 32] {
    cast_slice::<u8, i8>(&bytes_of(b)[B::QS_AT..B::QS_AT + 32])
        .try_into()
        .unwrap()
}

/// The fifth bits of a [`Quants::FiveBits`] block, bit `j` for element `j`.
#[inline(always)]
pub fn fifth_bits<B: Block32>(b: &B) -> u32 {
    let q = &bytes_of(b)[B::QH_AT..B::QH_AT + 4];
    u32::from_le_bytes([q[0], q[1], q[2], q[3]])
}

/// The 32 quants minus the format's offset, in element order.
#[inline]
pub fn values<B: Block32>(b: &B) -> [i8; 32] {
    let mut v = [0i8; 32];
    match B::QUANTS {
        Quants::Bytes => v = *byte_quants(b),
        Quants::Nibbles | Quants::FiveBits => {
            let qs = nibble_bytes(b);
            let qh = if B::QUANTS == Quants::FiveBits {
                fifth_bits(b)
            } else {
                0
            };
            for j in 0..16 {
                let lo = (qs[j] & 0x0F) as u32 | (((qh >> j) & 1) << 4);
                let hi = (qs[j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
                v[j] = lo as i8 - B::OFFSET;
                v[j + 16] = hi as i8 - B::OFFSET;
            }
        }
    }
    v
}

/// Q8_1's `s` (0 for Q8_0).
#[inline(always)]
pub fn act_s<A: Act32>(a: &A) -> f16 {
    A::S_AT.map_or(f16::ZERO, |at| f16_at(bytes_of(a), at))
}

/// The activation block's 32 quants.
#[inline(always)]
pub fn act_qs<A: Act32>(a: &A) -> &[i8; 32] {
    cast_slice::<u8, i8>(&bytes_of(a)[A::QS_AT..A::QS_AT + 32])
        .try_into()
        .unwrap()
}

/// `n / 32` blocks of weights and activations from the front of two rows. Panics if a row is
/// shorter.
#[inline]
fn rows<'a, B: Block32>(n: usize, x: &'a [u8], y: &'a [u8]) -> (&'a [B], &'a [B::Act]) {
    let nb = n / QK;
    (
        cast_slice(&x[..nb * size_of::<B>()]),
        cast_slice(&y[..nb * size_of::<B::Act>()]),
    )
}

/// A row of blocks to f32, as ggml's `dequantize_row_*`: `x = (q − offset) · d`, or `q · d + m`
/// for the formats with a minimum (a multiply, then an add: two roundings).
pub fn dequantize<B: Block32>(x: &[u8], y: &mut [f32]) {
    let blocks: &[B] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let (dv, mv) = (d(b).to_f32(), m(b).to_f32());
        for (o, &v) in out.iter_mut().zip(&values(b)) {
            *o = if has_min::<B>() {
                v as f32 * dv + mv
            } else {
                v as f32 * dv
            };
        }
    }
}

/// The [`crate::traits::Order::Vec`] order, as llama.cpp's x86 `ggml_vec_dot_q4_0_q8_0` and its
/// siblings (and llamafile's `tinyBLAS_Q0_AVX`, which sums the same way): eight f32 lanes from 0;
/// for each block in order, `d = f32(x.d) * f32(y.d)` and `acc[l] = fma(d, q_l, acc[l])` with `q_l`
/// the quad sums of the values ([`values`]) times `y.qs`; the result is `hsum8(acc)`. The formats
/// with a minimum also keep `summs = fma(f32(x.m), f32(y.s), summs)` over the blocks in order (GCC
/// contracts that scalar line to an FMA) and return `hsum8(acc) + summs`.
pub fn vec_dot<B: Block32>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    dot::<B, false>(n, x, y)
}

/// The [`crate::traits::Order::Block`] order: one f32 accumulator per output,
/// `acc = fma(f32(isum), f32(x.d) * f32(y.d), acc)` block by block, `isum` the block's exact
/// integer `Σ values·y.qs`; the formats with a minimum add `summs` as in [`vec_dot`]. For Q4_0 this
/// is llama.cpp's x86 repacked layout (`block_q4_0x8`: `ggml_gemv_q4_0_8x8_q8_0` and
/// `ggml_gemm_q4_0_8x8_q8_0`, which agree), which it takes for matrices of a multiple of 8 rows.
pub fn vec_dot_block<B: Block32>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    dot::<B, true>(n, x, y)
}

/// [`vec_dot`] (`BLOCK` false) or [`vec_dot_block`].
fn dot<B: Block32, const BLOCK: bool>(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = rows::<B>(n, x, y);
    let (mut lanes, mut acc, mut summs) = ([0f32; 8], 0f32, 0f32);
    for (a, b) in x.iter().zip(y) {
        if has_min::<B>() {
            summs = m(a).to_f32().mul_add(act_s(b).to_f32(), summs);
        }
        let dv = d(a).to_f32() * d(b).to_f32();
        if BLOCK {
            acc = (int_dot(&values(a), act_qs(b)) as f32).mul_add(dv, acc);
        } else {
            fma_lanes(&mut lanes, dv, &quad_sums(&values(a), act_qs(b)));
        }
    }
    let total = if BLOCK { acc } else { hsum8(&lanes) };
    if has_min::<B>() {
        total + summs
    } else {
        total
    }
}

/// Weights as gguf-py quantizes them (`gguf.quants.quantize`, gguf 0.19, which is what
/// `convert_hf_to_gguf.py` writes), with the same f32 operations in the same order:
/// * formats with an offset: `d = max / −offset` for the element of largest magnitude (the first
///   one on ties), `q = min(2·offset − 1, trunc(x/d + offset + 0.5))` (Q4_0, Q5_0);
/// * formats with a minimum: `d = (max − min) / qmax`, `m = min`,
///   `q = min(qmax, trunc((x − min)/d + 0.5))`, `qmax` 15 or 31 (Q4_1, Q5_1);
/// * bytes: `d = max|x| / 127`, `q = round(x · (1/d))` rounding half away from zero (C's
///   `roundf`, as ggml's `quantize_row_q8_0_ref`; Q8_0).
pub fn quantize<B: Block32>(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [B] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let bytes = bytemuck::bytes_of_mut(b);
        let qmax = if B::QUANTS == Quants::FiveBits {
            31.0
        } else {
            15.0
        };
        let (d, q): (f32, [u8; 32]) = if B::QUANTS == Quants::Bytes {
            let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (d, id) = (amax / 127.0, inverse(amax / 127.0));
            (d, std::array::from_fn(|j| (xs[j] * id).round() as i8 as u8))
        } else if let Some(m_at) = B::M_AT {
            let (min, max) = min_max(xs);
            let d = (max - min) / qmax;
            let id = inverse(d);
            bytes[m_at..m_at + 2].copy_from_slice(&f16::from_f32(min).to_le_bytes());
            let q = |v: f32| (((v - min) * id + 0.5).trunc() as u8).min(qmax as u8);
            (d, std::array::from_fn(|j| q(xs[j])))
        } else {
            let d = max_by_magnitude(xs) / -(B::OFFSET as f32);
            let id = inverse(d);
            let add = B::OFFSET as f32 + 0.5;
            let q = |v: f32| ((v * id + add).trunc() as u8).min(2 * B::OFFSET as u8 - 1);
            (d, std::array::from_fn(|j| q(xs[j])))
        };
        bytes[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        let qs = B::QS_AT;
        match B::QUANTS {
            Quants::Bytes => bytes[qs..qs + 32].copy_from_slice(&q),
            Quants::Nibbles | Quants::FiveBits => {
                bytes[qs..qs + 16].copy_from_slice(&pack_nibbles(&q));
                if B::QUANTS == Quants::FiveBits {
                    bytes[B::QH_AT..B::QH_AT + 4].copy_from_slice(&pack_fifth_bits(&q));
                }
            }
        }
    }
}

// The quantizer's helpers.

/// The element of largest magnitude, the first one when several tie (NumPy's `argmax` of `|x|`).
fn max_by_magnitude(xs: &[f32]) -> f32 {
    let mut max = xs[0];
    for &v in &xs[1..] {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    max
}

/// The smallest and largest element.
fn min_max(xs: &[f32]) -> (f32, f32) {
    xs.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// `1 / d`, or 0 for a zero scale.
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Packs 32 values < 16 as two nibble halves: byte `j` holds `q[j]` low and `q[j + 16]` high.
fn pack_nibbles(q: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| (q[j] & 0x0F) | (q[j + 16] << 4))
}

/// The fifth bits of 32 five-bit values, bit `j` from `q[j]`.
fn pack_fifth_bits(q: &[u8; 32]) -> [u8; 4] {
    let bits = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (((v >> 4) as u32 & 1) << j));
    bits.to_le_bytes()
}
