//! Block formats as `#[repr(C)]` structs, laid out byte for byte as ggml stores them
//! (`ggml/src/ggml-common.h`). Each size is checked at compile time against [`GgmlType::type_size`],
//! and every struct is `Pod`, so a row of mapped GGUF bytes is viewed as `&[Block]` without a copy.

use crate::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per block of the legacy (32-element) formats.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub use crate::ggml_type::QK_K;
/// Bytes of packed 6-bit scales/mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// 4-bit, symmetric: `x = d * (q - 8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// 4-bit with minimum: `x = d * q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// 5-bit, symmetric: `x = d * (q - 16)`, the fifth bits packed in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 5-bit with minimum: `x = d * q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// 8-bit, symmetric: `x = d * q`. Also the activation format paired with Q4_0, Q5_0 and Q8_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// 8-bit activations with `s = d * sum(q)`, paired with Q4_1 and Q5_1 (whose minimum needs the sum).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

/// 2-bit K-quant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

/// 3-bit K-quant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

/// 4-bit K-quant: 8 sub-blocks of 32 with 6-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// 5-bit K-quant.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// 6-bit K-quant: 16 sub-blocks of 16 with 8-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// 8-bit activations for the K-quants, with per-16 sums of the quants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

macro_rules! assert_size {
    ($block:ty, $t:expr) => {
        const _: () = assert!(std::mem::size_of::<$block>() == $t.type_size_const());
    };
}

impl GgmlType {
    /// [`GgmlType::type_size`] usable in constant expressions (for the layout checks below).
    pub const fn type_size_const(self) -> usize {
        match self {
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q8_1 => 36,
            GgmlType::Q2_K => 84,
            GgmlType::Q3_K => 110,
            GgmlType::Q4_K => 144,
            GgmlType::Q5_K => 176,
            GgmlType::Q6_K => 210,
            GgmlType::Q8_K => 292,
            _ => 0,
        }
    }
}

assert_size!(BlockQ4_0, GgmlType::Q4_0);
assert_size!(BlockQ4_1, GgmlType::Q4_1);
assert_size!(BlockQ5_0, GgmlType::Q5_0);
assert_size!(BlockQ5_1, GgmlType::Q5_1);
assert_size!(BlockQ8_0, GgmlType::Q8_0);
assert_size!(BlockQ8_1, GgmlType::Q8_1);
assert_size!(BlockQ2K, GgmlType::Q2_K);
assert_size!(BlockQ3K, GgmlType::Q3_K);
assert_size!(BlockQ4K, GgmlType::Q4_K);
assert_size!(BlockQ5K, GgmlType::Q5_K);
assert_size!(BlockQ6K, GgmlType::Q6_K);
assert_size!(BlockQ8K, GgmlType::Q8_K);

#[cfg(test)]
mod tests {
    #[test]
    fn const_sizes_agree_with_the_type_table() {
        for t in crate::ALL_TYPES {
            let c = t.type_size_const();
            if c != 0 {
                assert_eq!(c, t.type_size(), "{t}");
            }
        }
    }
}
