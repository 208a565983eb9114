//! x86-64 kernels: AVX2 + FMA + F16C (`legacy`, `kquants`, `float`, `quant`), and AVX-512 +
//! VNNI (`avx512`) for the dot products where 512-bit vectors pay.
//!
//! The kernels are safe `#[target_feature]` functions over typed block slices; this module wraps
//! each in a plain `fn` with the table's signature, which checks lengths and alignment (falling
//! back to the scalar reference for misaligned input) and then calls the kernel. The wrappers are
//! private and installed only by [`install_avx2`] and [`install_avx512vnni`], which assert the
//! CPU features first: that is what makes the calls sound.

mod avx512;
mod float;
mod kquants;
mod legacy;
mod quant;
mod util;

use crate::blocks::*;
use crate::dot::scalar;
use crate::reference as r;
use crate::traits::{Kernels, Level, TypeTraits};
use crate::GgmlType;
use bytemuck::{try_cast_slice, try_cast_slice_mut, Pod};
use half::{bf16, f16};

/// Views `bytes[..count * size_of::<T>()]` as `&[T]`, or `None` if misaligned.
/// Panics (like the scalar kernels) if `bytes` is shorter than that.
#[inline]
fn typed<T: Pod>(bytes: &[u8], count: usize) -> Option<&[T]> {
    try_cast_slice(&bytes[..count * size_of::<T>()]).ok()
}

/// Declares a safe `VecDot` wrapper around a kernel `$imp(&[$x], &[$y]) -> f32` taking
/// `n / $per` elements of each type, falling back to `$fallback` for misaligned rows.
macro_rules! vec_dot {
    ($name:ident, $imp:path, $x:ty, $y:ty, $per:expr, $fallback:path) => {
        fn $name(n: usize, x: &[u8], y: &[u8]) -> f32 {
            let count = n / $per;
            match (typed::<$x>(x, count), typed::<$y>(y, count)) {
                // SAFETY: this private wrapper is only reachable through a table built by
                // `install_avx2` or `install_avx512vnni`, which first assert that the CPU has every
                // feature the kernels they install are compiled for (AVX2, FMA, F16C; plus
                // AVX-512 F/BW/VL/VNNI for the `avx512` ones, installed only by the latter).
                (Some(x), Some(y)) => unsafe { $imp(x, y) },
                _ => $fallback(n, x, y),
            }
        }
    };
}

/// Declares a safe `ToFloat` wrapper around `$imp(&[$x], &mut [f32])`.
macro_rules! to_float {
    ($name:ident, $imp:path, $x:ty, $fallback:path) => {
        fn $name(x: &[u8], y: &mut [f32]) {
            match try_cast_slice::<u8, $x>(x) {
                // SAFETY: as in `vec_dot!`: only installed after the feature check.
                Ok(blocks) => unsafe { $imp(blocks, y) },
                Err(_) => $fallback(x, y),
            }
        }
    };
}

/// Declares a safe `FromFloat` wrapper around `$imp(&[f32], &mut [$y])` for `x.len() / $per`
/// outputs.
macro_rules! from_float {
    ($name:ident, $imp:path, $y:ty, $per:expr, $fallback:path) => {
        fn $name(x: &[f32], y: &mut [u8]) {
            let count = x.len() / $per;
            match try_cast_slice_mut::<u8, $y>(&mut y[..count * size_of::<$y>()]) {
                // SAFETY: as in `vec_dot!`: only installed after the feature check.
                Ok(out) => unsafe { $imp(x, out) },
                Err(_) => $fallback(x, y),
            }
        }
    };
}

vec_dot!(dot_f32, float::dot_f32, f32, f32, 1, scalar::vec_dot_f32);
vec_dot!(dot_f16, float::dot_f16, f16, f16, 1, scalar::vec_dot_f16);
vec_dot!(
    dot_bf16,
    float::dot_bf16,
    bf16,
    bf16,
    1,
    scalar::vec_dot_bf16
);
vec_dot!(
    dot_q4_0,
    legacy::dot_q4_0_q8_0,
    BlockQ4_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q4_0_q8_0
);
vec_dot!(
    dot_q4_1,
    legacy::dot_q4_1_q8_1,
    BlockQ4_1,
    BlockQ8_1,
    QK,
    scalar::vec_dot_q4_1_q8_1
);
vec_dot!(
    dot_q5_0,
    legacy::dot_q5_0_q8_0,
    BlockQ5_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q5_0_q8_0
);
vec_dot!(
    dot_q5_1,
    legacy::dot_q5_1_q8_1,
    BlockQ5_1,
    BlockQ8_1,
    QK,
    scalar::vec_dot_q5_1_q8_1
);
vec_dot!(
    dot_q8_0,
    legacy::dot_q8_0_q8_0,
    BlockQ8_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q8_0_q8_0
);
vec_dot!(
    dot_q2_k,
    kquants::dot_q2_k_q8_k,
    BlockQ2K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q2_k_q8_k
);
vec_dot!(
    dot_q3_k,
    kquants::dot_q3_k_q8_k,
    BlockQ3K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q3_k_q8_k
);
vec_dot!(
    dot_q4_k,
    kquants::dot_q4_k_q8_k,
    BlockQ4K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q4_k_q8_k
);
vec_dot!(
    dot_q5_k,
    kquants::dot_q5_k_q8_k,
    BlockQ5K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q5_k_q8_k
);
vec_dot!(
    dot_q6_k,
    kquants::dot_q6_k_q8_k,
    BlockQ6K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q6_k_q8_k
);

to_float!(deq_f16, float::f16_to_f32_row, f16, r::dequantize_row_f16);
to_float!(
    deq_bf16,
    float::bf16_to_f32_row,
    bf16,
    r::dequantize_row_bf16
);
to_float!(
    deq_q4_0,
    legacy::dequant_q4_0,
    BlockQ4_0,
    r::dequantize_row_q4_0
);
to_float!(
    deq_q4_1,
    legacy::dequant_q4_1,
    BlockQ4_1,
    r::dequantize_row_q4_1
);
to_float!(
    deq_q5_0,
    legacy::dequant_q5_0,
    BlockQ5_0,
    r::dequantize_row_q5_0
);
to_float!(
    deq_q5_1,
    legacy::dequant_q5_1,
    BlockQ5_1,
    r::dequantize_row_q5_1
);
to_float!(
    deq_q8_0,
    legacy::dequant_q8_0,
    BlockQ8_0,
    r::dequantize_row_q8_0
);
to_float!(
    deq_q2_k,
    kquants::dequant_q2_k,
    BlockQ2K,
    r::dequantize_row_q2_k
);
to_float!(
    deq_q3_k,
    kquants::dequant_q3_k,
    BlockQ3K,
    r::dequantize_row_q3_k
);
to_float!(
    deq_q4_k,
    kquants::dequant_q4_k,
    BlockQ4K,
    r::dequantize_row_q4_k
);
to_float!(
    deq_q5_k,
    kquants::dequant_q5_k,
    BlockQ5K,
    r::dequantize_row_q5_k
);
to_float!(
    deq_q6_k,
    kquants::dequant_q6_k,
    BlockQ6K,
    r::dequantize_row_q6_k
);

from_float!(
    quant_q8_0,
    quant::quantize_q8_0,
    BlockQ8_0,
    QK,
    r::quantize_row_q8_0
);
from_float!(
    quant_q8_1,
    quant::quantize_q8_1,
    BlockQ8_1,
    QK,
    r::quantize_row_q8_1
);
from_float!(
    quant_q8_k,
    quant::quantize_q8_k,
    BlockQ8K,
    QK_K,
    r::quantize_row_q8_k
);
from_float!(quant_f16, quant::quantize_f16, f16, 1, r::quantize_row_f16);
from_float!(
    quant_bf16,
    quant::quantize_bf16,
    bf16,
    1,
    r::quantize_row_bf16
);

vec_dot!(
    dot512_f32,
    avx512::dot_f32,
    f32,
    f32,
    1,
    scalar::vec_dot_f32
);
vec_dot!(
    dot512_f16,
    avx512::dot_f16,
    f16,
    f16,
    1,
    scalar::vec_dot_f16
);
vec_dot!(
    dot512_bf16,
    avx512::dot_bf16,
    bf16,
    bf16,
    1,
    scalar::vec_dot_bf16
);
vec_dot!(
    dot512_q4_0,
    avx512::dot_q4_0_q8_0,
    BlockQ4_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q4_0_q8_0
);
vec_dot!(
    dot512_q4_1,
    avx512::dot_q4_1_q8_1,
    BlockQ4_1,
    BlockQ8_1,
    QK,
    scalar::vec_dot_q4_1_q8_1
);
vec_dot!(
    dot512_q5_0,
    avx512::dot_q5_0_q8_0,
    BlockQ5_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q5_0_q8_0
);
vec_dot!(
    dot512_q5_1,
    avx512::dot_q5_1_q8_1,
    BlockQ5_1,
    BlockQ8_1,
    QK,
    scalar::vec_dot_q5_1_q8_1
);
vec_dot!(
    dot512_q8_0,
    avx512::dot_q8_0_q8_0,
    BlockQ8_0,
    BlockQ8_0,
    QK,
    scalar::vec_dot_q8_0_q8_0
);
vec_dot!(
    dot512_q2_k,
    avx512::dot_q2_k_q8_k,
    BlockQ2K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q2_k_q8_k
);
vec_dot!(
    dot512_q3_k,
    avx512::dot_q3_k_q8_k,
    BlockQ3K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q3_k_q8_k
);
vec_dot!(
    dot512_q4_k,
    avx512::dot_q4_k_q8_k,
    BlockQ4K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q4_k_q8_k
);
vec_dot!(
    dot512_q5_k,
    avx512::dot_q5_k_q8_k,
    BlockQ5K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q5_k_q8_k
);
vec_dot!(
    dot512_q6_k,
    avx512::dot_q6_k_q8_k,
    BlockQ6K,
    BlockQ8K,
    QK_K,
    scalar::vec_dot_q6_k_q8_k
);

/// Overwrites the scalar table's entries with the AVX2 kernels.
///
/// Panics if the CPU lacks AVX2, FMA or F16C: every function installed here relies on them.
pub(crate) fn install_avx2(table: &mut [TypeTraits]) {
    assert!(
        Level::Avx2.is_supported(),
        "install_avx2 on a CPU without AVX2 + FMA + F16C"
    );
    use GgmlType::*;
    let set = |table: &mut [TypeTraits], ty, to_float: Option<crate::traits::ToFloat>, vec_dot| {
        Kernels::set_in(table, ty, |t| {
            if let Some(f) = to_float {
                t.to_float = Some(f);
            }
            t.vec_dot = Some(vec_dot);
        })
    };
    set(table, F32, None, dot_f32);
    set(table, F16, Some(deq_f16), dot_f16);
    set(table, BF16, Some(deq_bf16), dot_bf16);
    set(table, Q4_0, Some(deq_q4_0), dot_q4_0);
    set(table, Q4_1, Some(deq_q4_1), dot_q4_1);
    set(table, Q5_0, Some(deq_q5_0), dot_q5_0);
    set(table, Q5_1, Some(deq_q5_1), dot_q5_1);
    set(table, Q8_0, Some(deq_q8_0), dot_q8_0);
    set(table, Q2_K, Some(deq_q2_k), dot_q2_k);
    set(table, Q3_K, Some(deq_q3_k), dot_q3_k);
    set(table, Q4_K, Some(deq_q4_k), dot_q4_k);
    set(table, Q5_K, Some(deq_q5_k), dot_q5_k);
    set(table, Q6_K, Some(deq_q6_k), dot_q6_k);
    let from = |table: &mut [TypeTraits], ty, f: crate::traits::FromFloat| {
        Kernels::set_in(table, ty, |t| t.from_float = Some(f))
    };
    from(table, Q8_0, quant_q8_0);
    from(table, Q8_1, quant_q8_1);
    from(table, Q8_K, quant_q8_k);
    from(table, F16, quant_f16);
    from(table, BF16, quant_bf16);
}

/// The AVX2 table with the kernels that AVX-512 + VNNI make faster swapped in.
///
/// Panics if the CPU lacks any of AVX2, FMA, F16C, AVX-512 F/BW/VL or AVX-512 VNNI.
pub(crate) fn install_avx512vnni(table: &mut [TypeTraits]) {
    assert!(
        Level::Avx512Vnni.is_supported(),
        "install_avx512vnni on a CPU without AVX-512 VNNI"
    );
    install_avx2(table);
    use GgmlType::*;
    for (ty, f) in [
        (F32, dot512_f32 as crate::traits::VecDot),
        (F16, dot512_f16),
        (BF16, dot512_bf16),
        (Q4_0, dot512_q4_0),
        (Q4_1, dot512_q4_1),
        (Q5_0, dot512_q5_0),
        (Q5_1, dot512_q5_1),
        (Q8_0, dot512_q8_0),
        (Q2_K, dot512_q2_k),
        (Q3_K, dot512_q3_k),
        (Q4_K, dot512_q4_k),
        (Q5_K, dot512_q5_k),
        (Q6_K, dot512_q6_k),
    ] {
        Kernels::set_in(table, ty, |t| t.vec_dot = Some(f));
    }
    if is_x86_feature_detected!("avx512bf16") {
        Kernels::set_in(table, BF16, |t| t.vec_dot = Some(dot512_bf16_dpbf16));
    }
}

/// BF16 · BF16 with `vdpbf16ps`; installed by [`install_avx512vnni`] only where the CPU also has
/// AVX-512 BF16.
fn dot512_bf16_dpbf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    match (typed::<bf16>(x, n), typed::<bf16>(y, n)) {
        // SAFETY: this private function is installed only by `install_avx512vnni`, after it has
        // asserted AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI and detected AVX-512 BF16: every
        // feature the kernel is compiled for.
        (Some(x), Some(y)) => unsafe { avx512::dot_bf16_dpbf16(x, y) },
        _ => scalar::vec_dot_bf16(n, x, y),
    }
}
