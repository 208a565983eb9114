//! The float formats F32, F16 and BF16: conversions and dot products of whole rows (element
//! blocks of one).

use bytemuck::cast_slice;
use half::{bf16, f16};

pub fn dequantize_f32(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

pub fn dequantize_f16(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(2)) {
        *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

pub fn dequantize_bf16(x: &[u8], y: &mut [f32]) {
    for (o, c) in y.iter_mut().zip(x.chunks_exact(2)) {
        *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

pub fn quantize_f32(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(4)) {
        o.copy_from_slice(&v.to_le_bytes());
    }
}

/// Round to nearest even, as `half::f16::from_f32` and the F16C / `fcvt` instructions.
pub fn quantize_f16(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(2)) {
        o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
    }
}

pub fn quantize_bf16(x: &[f32], y: &mut [u8]) {
    for (v, o) in x.iter().zip(y.chunks_exact_mut(2)) {
        o.copy_from_slice(&bf16::from_f32(*v).to_le_bytes());
    }
}

/// `Σ x·y` of f32 rows: each product rounded to f32, summed in order in f64 (not a llama.cpp path
/// nib uses for the goldens).
pub fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f32] = cast_slice(&x[..n * 4]);
    let y: &[f32] = cast_slice(&y[..n * 4]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i] * y[i]) as f64;
    }
    s as f32
}

/// f16 · f16 as llama.cpp's `ggml_vec_dot_f16` on AVX-512: see [`crate::vec::scalar::dot_f16`].
pub fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f16] = cast_slice(&x[..n * 2]);
    let y: &[f16] = cast_slice(&y[..n * 2]);
    crate::vec::scalar::dot_f16(x, y)
}

/// `Σ x·y` of bf16 rows, as [`vec_dot_f32`] (not a llama.cpp-exact path).
pub fn vec_dot_bf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[bf16] = cast_slice(&x[..n * 2]);
    let y: &[bf16] = cast_slice(&y[..n * 2]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    s as f32
}
