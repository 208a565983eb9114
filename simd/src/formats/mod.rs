//! The block formats, one file per type: its block struct (laid out byte for byte as ggml stores
//! it, `ggml/src/ggml-common.h`), its scalar reference (dequantization, quantization, and its dot
//! product in each summation order llama.cpp uses for it), and its row of the reference table
//! ([`reference`]). These definitions are the truth every instruction set is tested against, bit
//! for bit; each reproduces llama.cpp's x86-64 CPU backend (built with AVX2, FMA, F16C and
//! AVX-512) on the paths that backend takes, and each doc comment spells out its float order so
//! that SIMD kernels can follow it.
//!
//! The 32-element formats are one family ([`block32`]): a format's file describes its block, and
//! the family's dequantization and orders are written once. The K-quants each have their own.
//!
//! Vocabulary of the doc comments:
//! * **quad sum `q_l`** of a 32-element block: the exact integer `Σ w[e]·a[e]` over the four
//!   elements `e = 4l .. 4l+3` (`l = 0..8`); what `_mm256_dpbusd_epi32` or `maddubs`+`madd` leave
//!   in 32-bit lane `l`, and NEON's `sdot` in lane `l % 4` of the register covering that half.
//! * **hsum8** of eight lanes: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))` (`hsum_float_8`).
//! * **hsum4** of four lanes: `(l0+l2) + (l1+l3)`.
//! * `fma(a, b, c)` = `a*b + c` rounded once.

pub mod block32;
pub mod common;
pub mod float;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

pub use crate::ggml_type::QK_K;
pub use block32::{Act32, Block32, QK};
pub use q2_k::BlockQ2K;
pub use q3_k::BlockQ3K;
pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4_k::BlockQ4K;
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_1::BlockQ8_1;
pub use q8_k::BlockQ8K;

use crate::traits::{FromFloat, Order, TypeTraits};
use crate::GgmlType;

/// The reference row of `ty` (the scalar level's kernels), or `None` if nib has no kernels for
/// the type. One line per type: a new type adds its file above and a line here.
pub fn reference(ty: GgmlType) -> Option<TypeTraits> {
    use GgmlType::*;
    use Order::*;
    let t = TypeTraits::new;
    Some(match ty {
        F32 => t(F32, F32, float::dequantize_f32, float::quantize_f32)
            .with_quantize(float::quantize_f32)
            .with_dot(Vec, float::vec_dot_f32),
        F16 => t(F16, F16, float::dequantize_f16, float::quantize_f16)
            .with_quantize(float::quantize_f16)
            .with_dot(Vec, float::vec_dot_f16),
        BF16 => t(BF16, BF16, float::dequantize_bf16, float::quantize_bf16)
            .with_quantize(float::quantize_bf16)
            .with_dot(Vec, float::vec_dot_bf16),
        Q4_0 => legacy::<BlockQ4_0>().repacked_by_llama(),
        Q4_1 => legacy::<BlockQ4_1>(),
        Q5_0 => legacy::<BlockQ5_0>(),
        Q5_1 => legacy::<BlockQ5_1>(),
        Q8_0 => TypeTraits {
            from_float: Some(q8_0::quantize_activations),
            ..legacy::<BlockQ8_0>()
        },
        Q8_1 => t(Q8_1, Q8_1, q8_1::dequantize, q8_1::quantize_activations),
        Q2_K => kquant(Q2_K, q2_k::dequantize, q2_k::quantize).with_dot(Vec, q2_k::vec_dot),
        Q3_K => kquant(Q3_K, q3_k::dequantize, q3_k::quantize).with_dot(Vec, q3_k::vec_dot),
        Q4_K => kquant(Q4_K, q4_k::dequantize, q4_k::quantize)
            .with_dot(Vec, q4_k::vec_dot)
            .with_dot(Tiled, q4_k::vec_dot_tiled)
            .with_dot(Block, q4_k::vec_dot_block)
            .with_dot(Gemm, q4_k::vec_dot_gemm)
            .repacked_by_llama(),
        Q5_K => kquant(Q5_K, q5_k::dequantize, q5_k::quantize).with_dot(Vec, q5_k::vec_dot),
        Q6_K => kquant(Q6_K, q6_k::dequantize, q6_k::quantize)
            .with_dot(Vec, q6_k::vec_dot)
            .with_dot(Tiled, q6_k::vec_dot_tiled),
        Q8_K => t(Q8_K, Q8_K, q8_k::dequantize, q8_k::quantize_activations),
        _ => return None,
    })
}

/// A 32-element format's row: the family's dequantization, quantizer (gguf-py's) and orders
/// ([`Order::Vec`], llama.cpp's; [`Order::Block`], which llama.cpp's x86 backend takes for
/// repacked Q4_0 and nib's aarch64 levels for every format of the family).
fn legacy<B: Block32>() -> TypeTraits {
    let quantize = block32::quantize::<B>;
    TypeTraits::new(B::TYPE, B::Act::TYPE, block32::dequantize::<B>, quantize)
        .with_quantize(quantize)
        .with_dot(Order::Vec, block32::vec_dot::<B>)
        .with_dot(Order::Block, block32::vec_dot_block::<B>)
}

/// A K-quant's row: Q8_K activations, its quantizer as both `from_float` and weight quantizer.
fn kquant(ty: GgmlType, to: crate::traits::ToFloat, quantize: FromFloat) -> TypeTraits {
    TypeTraits::new(ty, GgmlType::Q8_K, to, quantize).with_quantize(quantize)
}

/// The weight quantizer of `ty` ([`TypeTraits::quantize`]), if nib can write the type.
pub fn weight_quantizer(ty: GgmlType) -> Option<FromFloat> {
    reference(ty)?.quantize
}

/// Every block struct has the size ggml gives its type.
macro_rules! assert_sizes {
    ($($block:ty: $t:ident),*) => {
        $(const _: () = assert!(size_of::<$block>() == GgmlType::$t.type_size());)*
    };
}
assert_sizes!(
    BlockQ4_0: Q4_0, BlockQ4_1: Q4_1, BlockQ5_0: Q5_0, BlockQ5_1: Q5_1, BlockQ8_0: Q8_0,
    BlockQ8_1: Q8_1, BlockQ2K: Q2_K, BlockQ3K: Q3_K, BlockQ4K: Q4_K, BlockQ5K: Q5_K,
    BlockQ6K: Q6_K, BlockQ8K: Q8_K
);
