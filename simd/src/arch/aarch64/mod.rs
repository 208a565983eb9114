//! aarch64 kernels: plain Advanced SIMD (`Level::Neon`) and Advanced SIMD with SDOT
//! (`Level::NeonDotprod`, e.g. Neoverse-N1 / Ampere A1).
//!
//! Every kernel returns, bit for bit, what the scalar reference ([`crate::dot::scalar`],
//! [`crate::reference`]) returns: nib's numerics are llama.cpp's x86 CPU backend's on every
//! architecture. An 8-lane x86 accumulator is two 4-lane NEON accumulators, each element feeds
//! the lane it feeds on x86, `vfmaq` stands where x86 fuses, and reductions follow the x86 trees.
//!
//! The quantized dot products are written once, generic over the 16-byte integer dot
//! ([`common::Dot`], lane-exact quad sums), and instantiated twice: with the widening-multiply
//! emulation for plain NEON and with the SDOT instruction (inline assembly, since stable Rust
//! lacks the intrinsic) inside `#[target_feature(enable = "dotprod")]` functions. Each is one
//! function of `R` rows × `T` tokens ([`kernel::Kernel`]), installed as the table's `VecDot` at
//! 1 × 1 and as its `DotTile` at a register tile, for every [`crate::DotKind`] the scalar table
//! has. The conversions (`to_float`, `from_float`) and the float dots need no dotprod and are the
//! same at both levels.
//!
//! Files: `common` (SDOT, fp16 conversion, reductions, helpers), `kernel` (the row × token
//! driver and the entry points), `legacy` (Q4_0 .. Q8_0), `kquants` (Q2_K .. Q6_K), `float`
//! (F32 / F16 / BF16), `quantize` (Q8_0 / Q8_1 / Q8_K activations), `dequant` (rows to f32),
//! `repack` (the opt-in four-row interleaved Q4_0 / Q8_0 GEMV).

mod common;
mod dequant;
mod float;
mod kernel;
mod kquants;
mod legacy;
mod quantize;
pub mod repack;

use crate::traits::{DotKind, DotTile, FromFloat, Kernels, ToFloat, TypeTraits, VecDot};
use crate::GgmlType;
use kquants::{Q4KPlain, Q4KRepacked, Q4KRepackedGemm, Q4KTiled, Q6KPlain, Q6KTiled, Sumf};
use legacy::{Plain, Repacked};

// Each kernel with the register tile its `DotTile` uses (rows x tokens). The eight-lane orders
// keep two f32 accumulators per output and take a few rows and tokens; the orders with one
// accumulator per output keep the outputs in the lanes of a vector: four rows for the decode
// kinds, four tokens for the kinds that only prompts take (RepackedGemm, Tiled), so a weight
// block is unpacked once for four tokens.
kernel::entries! {
    q4_0: Plain<legacy::Q4_0>, 2 x 4;
    q4_0_repacked: Repacked<legacy::Q4_0>, 4 x 2;
    q4_1: Plain<legacy::Q4_1>, 2 x 4;
    q5_0: Plain<legacy::Q5_0>, 2 x 4;
    q5_1: Plain<legacy::Q5_1>, 2 x 4;
    q8_0: Plain<legacy::Q8_0>, 2 x 4;
    q2_k: Sumf<kquants::Q2K>, 2 x 2;
    q3_k: Sumf<kquants::Q3K>, 2 x 2;
    q4_k: Q4KPlain, 1 x 2;
    q4_k_repacked: Q4KRepacked, 4 x 1;
    q4_k_repacked_gemm: Q4KRepackedGemm, 1 x 4;
    q4_k_tiled: Q4KTiled, 1 x 4;
    q5_k: Sumf<kquants::Q5K>, 2 x 2;
    q6_k: Q6KPlain, 1 x 2;
    q6_k_tiled: Q6KTiled, 1 x 4;
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

/// One kind's dot product and tile for `ty`.
fn set_kind(table: &mut [TypeTraits], ty: GgmlType, kind: DotKind, dot: VecDot, tile: DotTile) {
    Kernels::set_in(table, ty, |t| {
        match kind {
            DotKind::Plain => t.vec_dot = Some(dot),
            DotKind::Tiled => t.vec_dot_tiled = Some(dot),
            DotKind::Repacked => t.vec_dot_repacked = Some(dot),
            DotKind::RepackedGemm => t.vec_dot_repacked_gemm = Some(dot),
        }
        t.tiles[kind as usize] = Some(tile);
    });
}

/// Installs every quantized kind of one level: `$m` is `neon` or `dotprod`.
macro_rules! install_quant {
    ($table:expr, $m:ident) => {{
        use DotKind::*;
        use GgmlType::*;
        let t = $table;
        set_kind(t, Q4_0, Plain, $m::q4_0::dot, $m::q4_0::tile);
        set_kind(
            t,
            Q4_0,
            Repacked,
            $m::q4_0_repacked::dot,
            $m::q4_0_repacked::tile,
        );
        set_kind(t, Q4_1, Plain, $m::q4_1::dot, $m::q4_1::tile);
        set_kind(t, Q5_0, Plain, $m::q5_0::dot, $m::q5_0::tile);
        set_kind(t, Q5_1, Plain, $m::q5_1::dot, $m::q5_1::tile);
        set_kind(t, Q8_0, Plain, $m::q8_0::dot, $m::q8_0::tile);
        set_kind(t, Q2_K, Plain, $m::q2_k::dot, $m::q2_k::tile);
        set_kind(t, Q3_K, Plain, $m::q3_k::dot, $m::q3_k::tile);
        set_kind(t, Q4_K, Plain, $m::q4_k::dot, $m::q4_k::tile);
        set_kind(t, Q4_K, Tiled, $m::q4_k_tiled::dot, $m::q4_k_tiled::tile);
        set_kind(
            t,
            Q4_K,
            Repacked,
            $m::q4_k_repacked::dot,
            $m::q4_k_repacked::tile,
        );
        set_kind(
            t,
            Q4_K,
            RepackedGemm,
            $m::q4_k_repacked_gemm::dot,
            $m::q4_k_repacked_gemm::tile,
        );
        set_kind(t, Q5_K, Plain, $m::q5_k::dot, $m::q5_k::tile);
        set_kind(t, Q6_K, Plain, $m::q6_k::dot, $m::q6_k::tile);
        set_kind(t, Q6_K, Tiled, $m::q6_k_tiled::dot, $m::q6_k_tiled::tile);
    }};
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
    set(
        table,
        BF16,
        Some(float::dequantize_row_bf16),
        Some(float::quantize_row_bf16),
        Some(float::vec_dot_bf16),
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
    install_quant!(table, neon);
}

pub(crate) fn install_dotprod(table: &mut [TypeTraits]) {
    // The dotprod entry points rely on this check for their soundness.
    assert!(
        std::arch::is_aarch64_feature_detected!("dotprod"),
        "install_dotprod: this CPU has no dotprod"
    );
    install_neon(table);
    install_quant!(table, dotprod);
}
