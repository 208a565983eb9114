//! aarch64 kernels: plain Advanced SIMD (`Level::Neon`) and Advanced SIMD with SDOT
//! (`Level::NeonDotprod`, e.g. Neoverse-N1 / Ampere A1).
//!
//! The quantized dot products are written once, generic over the 16-byte integer dot
//! ([`common::Dot`]), and instantiated twice: with the widening-multiply emulation for plain NEON
//! and with the SDOT instruction (inline assembly, since stable Rust lacks the intrinsic) inside
//! `#[target_feature(enable = "dotprod")]` functions. The conversions (`to_float`, `from_float`)
//! and the float dots need no dotprod and are the same at both levels.
//!
//! Files: `common` (SDOT, fp16 conversion, helpers), `legacy` (Q4_0 .. Q8_0 dots), `kquants`
//! (Q2_K .. Q6_K dots), `float` (F32 / F16), `quantize` (Q8_0 / Q8_1 / Q8_K activations),
//! `dequant` (rows to f32), `repack` (the opt-in four-row interleaved Q4_0 / Q8_0 GEMV).

mod common;
mod dequant;
mod float;
mod kquants;
mod legacy;
mod quantize;
pub mod repack;

use crate::blocks::*;
use crate::traits::{FromFloat, Kernels, ToFloat, TypeTraits, VecDot};
use crate::GgmlType;
use bytemuck::{cast_slice, Pod};

/// The blocks of a weight row and an activation row of `n` elements (`qk` per block). Panics,
/// like the scalar kernels, if a row is shorter than `n` elements or misaligned for its blocks.
#[inline(always)]
fn rows<'a, X: Pod, Y: Pod>(n: usize, qk: usize, x: &'a [u8], y: &'a [u8]) -> (&'a [X], &'a [Y]) {
    let nb = n / qk;
    (
        cast_slice(&x[..nb * size_of::<X>()]),
        cast_slice(&y[..nb * size_of::<Y>()]),
    )
}

/// Safe `VecDot` entry points for each generic kernel, once per level.
macro_rules! quant_dots {
    ($($m:ident::$name:ident: $x:ty, $y:ty, $qk:expr;)*) => {
        /// SDOT emulated with widening multiplies: plain Advanced SIMD.
        mod neon_dots {
            use super::*;
            use super::common::Emul;
            $(
                pub(super) fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
                    let (x, y) = rows::<$x, $y>(n, $qk, x, y);
                    // SAFETY: Advanced SIMD is part of the aarch64 target baseline, which is all
                    // `Emul` needs; the kernel reads only inside the two block slices.
                    unsafe { super::$m::$name::<Emul>(x, y) }
                }
            )*
        }

        /// The SDOT instruction (`FEAT_DotProd`).
        mod dotprod_dots {
            use super::*;
            use super::common::Sdot;
            $(
                pub(super) fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
                    #[target_feature(enable = "dotprod")]
                    unsafe fn imp(x: &[$x], y: &[$y]) -> f32 {
                        super::$m::$name::<Sdot>(x, y)
                    }
                    let (x, y) = rows::<$x, $y>(n, $qk, x, y);
                    // SAFETY: these functions are reachable only through the table that
                    // `install_dotprod` fills after checking that the CPU has `dotprod`; the
                    // kernel reads only inside the two block slices.
                    unsafe { imp(x, y) }
                }
            )*
        }
    };
}

quant_dots! {
    legacy::q4_0_q8_0: BlockQ4_0, BlockQ8_0, QK;
    legacy::q4_1_q8_1: BlockQ4_1, BlockQ8_1, QK;
    legacy::q5_0_q8_0: BlockQ5_0, BlockQ8_0, QK;
    legacy::q5_1_q8_1: BlockQ5_1, BlockQ8_1, QK;
    legacy::q8_0_q8_0: BlockQ8_0, BlockQ8_0, QK;
    kquants::q2_k_q8_k: BlockQ2K, BlockQ8K, QK_K;
    kquants::q3_k_q8_k: BlockQ3K, BlockQ8K, QK_K;
    kquants::q4_k_q8_k: BlockQ4K, BlockQ8K, QK_K;
    kquants::q5_k_q8_k: BlockQ5K, BlockQ8K, QK_K;
    kquants::q6_k_q8_k: BlockQ6K, BlockQ8K, QK_K;
}

/// Overwrite the given functions of `ty`'s entry (`None` keeps what is there).
fn set(
    table: &mut [TypeTraits],
    ty: GgmlType,
    to: Option<ToFloat>,
    from: Option<FromFloat>,
    dot: Option<VecDot>,
) {
    Kernels::set_in(table, ty, |t| {
        t.to_float = to.or(t.to_float);
        t.from_float = from.or(t.from_float);
        t.vec_dot = dot.or(t.vec_dot);
    });
}

/// The quantized dot products of one level, by weight type.
fn install_quant_dots(table: &mut [TypeTraits], dots: [(GgmlType, VecDot); 10]) {
    for (ty, f) in dots {
        set(table, ty, None, None, Some(f));
    }
}

pub(crate) fn install_neon(table: &mut [TypeTraits]) {
    use GgmlType::*;
    set(table, F32, None, None, Some(float::vec_dot_f32));
    set(
        table,
        F16,
        Some(float::dequantize_row_f16),
        Some(float::quantize_row_f16),
        Some(float::vec_dot_f16),
    );
    set(table, Q4_0, Some(dequant::dequantize_row_q4_0), None, None);
    set(table, Q4_1, Some(dequant::dequantize_row_q4_1), None, None);
    set(table, Q5_0, Some(dequant::dequantize_row_q5_0), None, None);
    set(table, Q5_1, Some(dequant::dequantize_row_q5_1), None, None);
    set(
        table,
        Q8_0,
        Some(dequant::dequantize_row_q8_0),
        Some(quantize::quantize_row_q8_0),
        None,
    );
    set(
        table,
        Q8_1,
        Some(dequant::dequantize_row_q8_1),
        Some(quantize::quantize_row_q8_1),
        None,
    );
    set(table, Q2_K, Some(dequant::dequantize_row_q2_k), None, None);
    set(table, Q3_K, Some(dequant::dequantize_row_q3_k), None, None);
    set(table, Q4_K, Some(dequant::dequantize_row_q4_k), None, None);
    set(table, Q5_K, Some(dequant::dequantize_row_q5_k), None, None);
    set(table, Q6_K, Some(dequant::dequantize_row_q6_k), None, None);
    set(
        table,
        Q8_K,
        Some(dequant::dequantize_row_q8_k),
        Some(quantize::quantize_row_q8_k),
        None,
    );
    use neon_dots as d;
    install_quant_dots(
        table,
        [
            (Q4_0, d::q4_0_q8_0),
            (Q4_1, d::q4_1_q8_1),
            (Q5_0, d::q5_0_q8_0),
            (Q5_1, d::q5_1_q8_1),
            (Q8_0, d::q8_0_q8_0),
            (Q2_K, d::q2_k_q8_k),
            (Q3_K, d::q3_k_q8_k),
            (Q4_K, d::q4_k_q8_k),
            (Q5_K, d::q5_k_q8_k),
            (Q6_K, d::q6_k_q8_k),
        ],
    );
}

pub(crate) fn install_dotprod(table: &mut [TypeTraits]) {
    // The dotprod entry points rely on this check for their soundness.
    assert!(
        std::arch::is_aarch64_feature_detected!("dotprod"),
        "install_dotprod: this CPU has no dotprod"
    );
    install_neon(table);
    use dotprod_dots as d;
    use GgmlType::*;
    install_quant_dots(
        table,
        [
            (Q4_0, d::q4_0_q8_0),
            (Q4_1, d::q4_1_q8_1),
            (Q5_0, d::q5_0_q8_0),
            (Q5_1, d::q5_1_q8_1),
            (Q8_0, d::q8_0_q8_0),
            (Q2_K, d::q2_k_q8_k),
            (Q3_K, d::q3_k_q8_k),
            (Q4_K, d::q4_k_q8_k),
            (Q5_K, d::q5_k_q8_k),
            (Q6_K, d::q6_k_q8_k),
        ],
    );
}
