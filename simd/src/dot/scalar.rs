//! Scalar dot products of a weight row with an activation row in its paired 8-bit format.
//!
//! These are nib's reference definitions, and they reproduce **bit for bit** the float arithmetic
//! of llama.cpp's x86-64 CPU backend (built with AVX2, FMA, F16C and AVX-512) on the paths that
//! backend takes. Integer partial sums are exact whatever their grouping, so what each function
//! pins down is the float part: which integer sums are converted to f32, how they are scaled,
//! in which lanes they accumulate (with fused multiply-adds, written `fma(a, b, c)` = `a*b + c`
//! rounded once), and how the lanes are reduced. Optimised kernels for any instruction set must
//! return identical bits; each doc comment spells out the order so they can.
//!
//! Vocabulary used below:
//! * **quad sum `q_l`** of a 32-element block: the exact integer `Σ w[e]·a[e]` over the four
//!   elements `e = 4l .. 4l+3` (`l = 0..8`); it is what `_mm256_dpbusd_epi32` or
//!   `maddubs`+`madd` leave in 32-bit lane `l`, and what NEON's `sdot` leaves in lane `l % 4` of
//!   the register covering that half of the block.
//! * **hsum8** of eight lanes: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))` (llama.cpp's
//!   `hsum_float_8`).
//! * **hsum4** of four lanes: `(l0+l2) + (l1+l3)`.
//!
//! llama.cpp picks different kernels for the same weight type depending on the batch size and
//! on whether a matrix was repacked at load time, and their float orders differ; those variants
//! live here too (`*_tiled`, `*_repacked`) and [`crate::TypeTraits::dot_for`] chooses among them
//! the way llama.cpp does.
//!
//! Every function takes `n` (elements), the weight row's bytes `x` and the activation row's bytes `y`.

use crate::blocks::*;
use crate::reference::{get_scale_min_k4, q3_k_scales, q6_k_values};
use bytemuck::cast_slice;
use half::{bf16, f16};

/// llama.cpp's x86 `hsum_float_8`: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))`.
#[inline]
pub fn hsum8(l: &[f32; 8]) -> f32 {
    let s = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// Four lanes reduced as llama.cpp's x86 `hsum(__m128)`: `(l0+l2) + (l1+l3)`.
#[inline]
pub fn hsum4(l: &[f32; 4]) -> f32 {
    (l[0] + l[2]) + (l[1] + l[3])
}

/// The eight quad sums of a 32-element block: lane `l` = `Σ w[e]·a[e]`, `e = 4l..4l+3`.
#[inline]
fn quad_sums(w: &[i8; 32], a: &[i8; 32]) -> [i32; 8] {
    let mut q = [0i32; 8];
    for (l, s) in q.iter_mut().enumerate() {
        for e in 4 * l..4 * l + 4 {
            *s += w[e] as i32 * a[e] as i32;
        }
    }
    q
}

/// One 32-element block's contribution to the eight f32 lanes: `acc[l] = fma(d, q_l, acc[l])`.
#[inline]
fn fma_lanes(acc: &mut [f32; 8], d: f32, q: &[i32; 8]) {
    for (a, &s) in acc.iter_mut().zip(q) {
        *a = d.mul_add(s as f32, *a);
    }
}

/// The 32 values of a 4-bit block in element order (`qs[j] & 15` then `qs[j] >> 4`), minus `off`.
#[inline]
fn nibbles(qs: &[u8; 16], off: i8) -> [i8; 32] {
    let mut v = [0i8; 32];
    for j in 0..16 {
        v[j] = (qs[j] & 0x0F) as i8 - off;
        v[j + 16] = (qs[j] >> 4) as i8 - off;
    }
    v
}

/// The 32 values of a 5-bit block in element order, minus `off`.
#[inline]
fn five_bits(qs: &[u8; 16], qh: [u8; 4], off: i8) -> [i8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut v = [0i8; 32];
    for j in 0..16 {
        v[j] = ((qs[j] & 0x0F) as u32 | (((qh >> j) & 1) << 4)) as i8 - off;
        v[j + 16] = ((qs[j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4)) as i8 - off;
    }
    v
}

/// `Σ x·y` of f32 rows, summed in f64 (not a llama.cpp path nib uses for the goldens).
pub fn vec_dot_f32(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f32] = cast_slice(&x[..n * 4]);
    let y: &[f32] = cast_slice(&y[..n * 4]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i] * y[i]) as f64;
    }
    s as f32
}

/// f16 · f16 as llama.cpp's `ggml_vec_dot_f16` on AVX-512: see [`crate::vec::dot_f16`].
pub fn vec_dot_f16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[f16] = cast_slice(&x[..n * 2]);
    let y: &[f16] = cast_slice(&y[..n * 2]);
    crate::vec::dot_f16(x, y)
}

/// `Σ x·y` of bf16 rows, summed in f64 (not a llama.cpp-exact path).
pub fn vec_dot_bf16(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let x: &[bf16] = cast_slice(&x[..n * 2]);
    let y: &[bf16] = cast_slice(&y[..n * 2]);
    let mut s = 0.0f64;
    for i in 0..n {
        s += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    s as f32
}

/// Q4_0 · Q8_0, as llama.cpp's x86 `ggml_vec_dot_q4_0_q8_0` and llamafile's `tinyBLAS_Q0_AVX`
/// (which sum in the same order): eight f32 lanes start at 0; for each block in order,
/// `d = f32(x.d) * f32(y.d)` and `acc[l] = fma(d, q_l, acc[l])` with `q_l` the quad sums of
/// `(nibble - 8) · y.qs`; the result is `hsum8(acc)`.
pub fn vec_dot_q4_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ4_0] = cast_slice(&x[..nb * 18]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d.to_f32();
        fma_lanes(&mut acc, d, &quad_sums(&nibbles(&a.qs, 8), &b.qs));
    }
    hsum8(&acc)
}

/// Q4_1 · Q8_1, as llama.cpp's x86 `ggml_vec_dot_q4_1_q8_1` (used at every batch size): eight
/// lanes `acc[l] = fma(f32(x.d) * f32(y.d), q_l, acc[l])` over the blocks, with `q_l` the quad
/// sums of the unsigned nibbles times `y.qs`; separately `summs = fma(f32(x.m), f32(y.s), summs)`
/// over the blocks in order (GCC contracts that scalar line to an FMA); the result is
/// `hsum8(acc) + summs`.
pub fn vec_dot_q4_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ4_1] = cast_slice(&x[..nb * 20]);
    let y: &[BlockQ8_1] = cast_slice(&y[..nb * 36]);
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (a, b) in x.iter().zip(y) {
        summs = a.m.to_f32().mul_add(b.s.to_f32(), summs);
        let d = a.d.to_f32() * b.d.to_f32();
        fma_lanes(&mut acc, d, &quad_sums(&nibbles(&a.qs, 0), &b.qs));
    }
    hsum8(&acc) + summs
}

/// Q5_0 · Q8_0, as llama.cpp's x86 `ggml_vec_dot_q5_0_q8_0` and `tinyBLAS_Q0_AVX`: the order of
/// [`vec_dot_q4_0_q8_0`] with the 5-bit values minus 16.
pub fn vec_dot_q5_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ5_0] = cast_slice(&x[..nb * 22]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d.to_f32();
        fma_lanes(&mut acc, d, &quad_sums(&five_bits(&a.qs, a.qh, 16), &b.qs));
    }
    hsum8(&acc)
}

/// Q5_1 · Q8_1, as llama.cpp's x86 `ggml_vec_dot_q5_1_q8_1`: the order of
/// [`vec_dot_q4_1_q8_1`] with the unsigned 5-bit values.
pub fn vec_dot_q5_1_q8_1(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ5_1] = cast_slice(&x[..nb * 24]);
    let y: &[BlockQ8_1] = cast_slice(&y[..nb * 36]);
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (a, b) in x.iter().zip(y) {
        summs = a.m.to_f32().mul_add(b.s.to_f32(), summs);
        let d = a.d.to_f32() * b.d.to_f32();
        fma_lanes(&mut acc, d, &quad_sums(&five_bits(&a.qs, a.qh, 0), &b.qs));
    }
    hsum8(&acc) + summs
}

/// Q8_0 · Q8_0, as llama.cpp's x86 `ggml_vec_dot_q8_0_q8_0` and `tinyBLAS_Q0_AVX`: the order of
/// [`vec_dot_q4_0_q8_0`] with the 8-bit weights.
pub fn vec_dot_q8_0_q8_0(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ8_0] = cast_slice(&x[..nb * 34]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d.to_f32();
        fma_lanes(&mut acc, d, &quad_sums(&a.qs, &b.qs));
    }
    hsum8(&acc)
}

/// Q4_0 · Q8_0 in llama.cpp's x86 repacked layout (`block_q4_0x8`, `ggml_gemv_q4_0_8x8_q8_0` and
/// `ggml_gemm_q4_0_8x8_q8_0`, which agree), taken for matrices whose row count is a multiple of 8: one f32
/// accumulator per output, `acc = fma(Σ_b-integer, f32(x.d) * f32(y.d), acc)` block by block,
/// where the integer is the whole block's exact `Σ (nibble - 8)·y.qs`.
pub fn vec_dot_q4_0_q8_0_repacked(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK;
    let x: &[BlockQ4_0] = cast_slice(&x[..nb * 18]);
    let y: &[BlockQ8_0] = cast_slice(&y[..nb * 34]);
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let w = nibbles(&a.qs, 8);
        let isum: i32 = (0..QK).map(|e| w[e] as i32 * b.qs[e] as i32).sum();
        acc = (isum as f32).mul_add(a.d.to_f32() * b.d.to_f32(), acc);
    }
    acc
}

pub fn vec_dot_q2_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ2K] = cast_slice(&x[..nb * 84]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let summs: i32 = (0..16)
            .map(|j| b.bsums[j] as i32 * (a.scales[j] >> 4) as i32)
            .sum();
        let dall = b.d * a.d.to_f32();
        let dmin = b.d * a.dmin.to_f32();
        let mut isum = 0i32;
        let mut is = 0;
        for k in 0..QK_K / 128 {
            let q2 = &a.qs[k * 32..k * 32 + 32];
            for (s, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &b.qs[k * 128 + s * 32..k * 128 + s * 32 + 32];
                for half in 0..2 {
                    let d = (a.scales[is] & 0x0F) as i32;
                    is += 1;
                    let mut isuml = 0i32;
                    for l in 0..16 {
                        isuml +=
                            q8[l + 16 * half] as i32 * ((q2[l + 16 * half] >> shift) & 3) as i32;
                    }
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

pub fn vec_dot_q3_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ3K] = cast_slice(&x[..nb * 110]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let scales = q3_k_scales(&a.scales);
        let mut m: u8 = 1;
        let mut is = 0;
        let mut isum = 0i32;
        for k in 0..QK_K / 128 {
            let q = &a.qs[k * 32..k * 32 + 32];
            for (s, shift) in [0, 2, 4, 6].into_iter().enumerate() {
                let q8 = &b.qs[k * 128 + s * 32..k * 128 + s * 32 + 32];
                for half in 0..2 {
                    let mut isuml = 0i32;
                    for l in 0..16 {
                        let idx = l + 16 * half;
                        let low = ((q[idx] >> shift) & 3) as i32;
                        let hi = if a.hmask[idx] & m != 0 { 0 } else { 4 };
                        isuml += (low - hi) * q8[idx] as i32;
                    }
                    isum += scales[is] as i32 * isuml;
                    is += 1;
                }
                m <<= 1;
            }
        }
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}

/// The 8 (scale, min) pairs of a Q4_K / Q5_K block.
#[inline]
fn k4_scales_mins(scales: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
    let (mut sc, mut mn) = ([0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, scales);
        sc[j] = s as i32;
        mn[j] = m as i32;
    }
    (sc, mn)
}

/// The 256 unsigned 4-bit values of a Q4_K block in element order.
#[inline]
fn q4_k_values(a: &BlockQ4K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    for j in 0..QK_K / 64 {
        for l in 0..32 {
            v[64 * j + l] = (a.qs[32 * j + l] & 0x0F) as i8;
            v[64 * j + 32 + l] = (a.qs[32 * j + l] >> 4) as i8;
        }
    }
    v
}

/// Per-32 sums of a Q8_K block's quants (pairs of its per-16 `bsums`).
#[inline]
fn bsums32(b: &BlockQ8K) -> [i32; 8] {
    let mut s = [0i32; 8];
    for (j, v) in s.iter_mut().enumerate() {
        *v = b.bsums[2 * j] as i32 + b.bsums[2 * j + 1] as i32;
    }
    s
}

/// Q4_K · Q8_K, as llama.cpp's x86 `ggml_vec_dot_q4_K_q8_K` (batches of fewer than 8 tokens on
/// matrices that were not repacked). Per super-block, `d = y.d * f32(x.d)` and
/// `dmin = (-y.d) * f32(x.dmin)`. Eight lanes: lane `l` gets the integer
/// `Σ_j sc[j] · Σ_{e=4l..4l+3} q4[32j+e]·q8[32j+e]` over the eight 32-element sub-blocks `j`,
/// then `acc[l] = fma(d, that, acc[l])`. Four min lanes: lane `i` gets
/// `mn[2i]·s[2i] + mn[2i+1]·s[2i+1]` (`s` = per-32 sums of `y.qs`), then
/// `accm[i] = fma(dmin, that, accm[i])`. Result: `hsum8(acc) + hsum4(accm)`.
pub fn vec_dot_q4_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ4K] = cast_slice(&x[..nb * 144]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = [0f32; 8];
    let mut accm = [0f32; 4];
    for (a, b) in x.iter().zip(y) {
        let d = b.d * a.d.to_f32();
        let dmin = -b.d * a.dmin.to_f32();
        let (sc, mn) = k4_scales_mins(&a.scales);
        let s32 = bsums32(b);
        for (i, m) in accm.iter_mut().enumerate() {
            let p = mn[2 * i] * s32[2 * i] + mn[2 * i + 1] * s32[2 * i + 1];
            *m = dmin.mul_add(p as f32, *m);
        }
        let v = q4_k_values(a);
        let mut lanes = [0i32; 8];
        for j in 0..8 {
            let w: &[i8; 32] = v[32 * j..32 * j + 32].try_into().unwrap();
            let q: &[i8; 32] = b.qs[32 * j..32 * j + 32].try_into().unwrap();
            for (lane, s) in lanes.iter_mut().zip(quad_sums(w, q)) {
                *lane += sc[j] * s;
            }
        }
        fma_lanes(&mut acc, d, &lanes);
    }
    hsum8(&acc) + hsum4(&accm)
}

/// The exact per-super-block integers of Q4_K · Q8_K: `Σ_j sc[j]·Σ q4·q8` and `Σ_j mn[j]·s[j]`.
#[inline]
fn q4_k_block_ints(a: &BlockQ4K, b: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = k4_scales_mins(&a.scales);
    let s32 = bsums32(b);
    let v = q4_k_values(a);
    let mut isum = 0i32;
    let mut imin = 0i32;
    for j in 0..8 {
        let s: i32 = (32 * j..32 * j + 32)
            .map(|e| v[e] as i32 * b.qs[e] as i32)
            .sum();
        isum += sc[j] * s;
        imin += mn[j] * s32[j];
    }
    (isum, imin)
}

/// Q4_K · Q8_K in llama.cpp's x86 repacked layout (`block_q4_Kx8`, `ggml_gemv_q4_K_8x8_q8_K`),
/// taken for matrices whose row count is a multiple of 8 at every batch size, except for the
/// tokens [`vec_dot_q4_k_q8_k_repacked_gemm`] covers. Two accumulators per output: for each
/// super-block,
/// `acc = fma(f32(isum), f32(x.d) * y.d, acc)` and `accm = fma(f32(imin), f32(x.dmin) * y.d, accm)`
/// with `isum = Σ_j sc[j]·Σ q4·q8` and `imin = Σ_j mn[j]·(per-32 sum of y.qs)` exact; the result
/// is `acc - accm`.
pub fn vec_dot_q4_k_q8_k_repacked(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ4K] = cast_slice(&x[..nb * 144]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = 0f32;
    let mut accm = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (isum, imin) = q4_k_block_ints(a, b);
        acc = (isum as f32).mul_add(a.d.to_f32() * b.d, acc);
        accm = (imin as f32).mul_add(a.dmin.to_f32() * b.d, accm);
    }
    acc - accm
}

/// Q4_K · Q8_K in llama.cpp's x86 repacked layout for the tokens that `ggml_gemm_q4_K_8x8_q8_K`
/// handles (the first `n - n % 4` of a batch of `n`; activations from `ggml_quantize_mat_q8_K_4x8`,
/// which gives the same values as `quantize_row_q8_K`). Like [`vec_dot_q4_k_q8_k_repacked`] but
/// the accumulators are updated once per 64-element pair of sub-blocks `p = 0..4` of each
/// super-block: `acc = fma(f32(sc[2p]·Σ₂ₚ + sc[2p+1]·Σ₂ₚ₊₁), f32(x.d) * y.d, acc)` and
/// `accm = fma(f32(mn[2p]·s[2p] + mn[2p+1]·s[2p+1]), f32(x.dmin) * y.d, accm)`; result `acc - accm`.
pub fn vec_dot_q4_k_q8_k_repacked_gemm(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ4K] = cast_slice(&x[..nb * 144]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = 0f32;
    let mut accm = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = k4_scales_mins(&a.scales);
        let s32 = bsums32(b);
        let v = q4_k_values(a);
        let (d, dmin) = (a.d.to_f32() * b.d, a.dmin.to_f32() * b.d);
        for p in 0..4 {
            let mut isum = 0i32;
            let mut imin = 0i32;
            for j in [2 * p, 2 * p + 1] {
                let s: i32 = (32 * j..32 * j + 32)
                    .map(|e| v[e] as i32 * b.qs[e] as i32)
                    .sum();
                isum += sc[j] * s;
                imin += mn[j] * s32[j];
            }
            acc = (isum as f32).mul_add(d, acc);
            accm = (imin as f32).mul_add(dmin, accm);
        }
    }
    acc - accm
}

/// Q4_K · Q8_K as llama.cpp's tiled K-quant matmul (`tiled/`, AVX-512 VNNI microkernel), taken for
/// batches of at least [`crate::traits::TILED_MIN_TOKENS`] tokens on matrices that were not
/// repacked. One accumulator from 0; per super-block,
/// `r = fma(-f32(x.dmin), f32(imin), f32(isum) * f32(x.d))` and `acc = fma(r, y.d, acc)` (GCC
/// contracts the kernel's `acc + r * d`).
pub fn vec_dot_q4_k_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ4K] = cast_slice(&x[..nb * 144]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (isum, imin) = q4_k_block_ints(a, b);
        let r = (-a.dmin.to_f32()).mul_add(imin as f32, isum as f32 * a.d.to_f32());
        acc = r.mul_add(b.d, acc);
    }
    acc
}

pub fn vec_dot_q5_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ5K] = cast_slice(&x[..nb * 176]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sum_q = 0i32;
        let mut sum_m = 0i32;
        for j in 0..QK_K / 64 {
            let ql = &a.qs[j * 32..j * 32 + 32];
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let (sc1, m1) = get_scale_min_k4(2 * j, &a.scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, &a.scales);
            let q8 = &b.qs[j * 64..j * 64 + 64];
            let mut s1 = 0i32;
            let mut s2 = 0i32;
            for l in 0..32 {
                let h1 = if a.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if a.qh[l] & u2 != 0 { 16 } else { 0 };
                s1 += ((ql[l] & 0x0F) as i32 + h1) * q8[l] as i32;
                s2 += ((ql[l] >> 4) as i32 + h2) * q8[l + 32] as i32;
            }
            sum_q += sc1 as i32 * s1 + sc2 as i32 * s2;
            let bs1 = b.bsums[4 * j] as i32 + b.bsums[4 * j + 1] as i32;
            let bs2 = b.bsums[4 * j + 2] as i32 + b.bsums[4 * j + 3] as i32;
            sum_m += m1 as i32 * bs1 + m2 as i32 * bs2;
        }
        sumf += a.d.to_f32() * b.d * sum_q as f32 - a.dmin.to_f32() * b.d * sum_m as f32;
    }
    sumf
}

/// The 256 unsigned 6-bit values (0..63) of a Q6_K block in element order.
#[inline]
fn q6_k_unsigned(a: &BlockQ6K) -> [i32; QK_K] {
    let v = q6_k_values(a);
    let mut u = [0i32; QK_K];
    for (o, &s) in u.iter_mut().zip(&v) {
        *o = s as i32 + 32;
    }
    u
}

/// Q6_K · Q8_K, as llama.cpp's x86 `ggml_vec_dot_q6_K_q8_K` (batches of fewer than
/// [`crate::traits::TILED_MIN_TOKENS`] tokens). Per super-block `d = y.d * f32(x.d)`, and eight
/// integer lanes: lane `l` is
/// `Σ_g Σ_{e=4l..4l+3} sc[(32g+e)/16]·u[32g+e]·q8[32g+e]` over the eight 32-element groups `g`,
/// with `u` the *unsigned* 6-bit values (0..63), minus
/// `32·(bsums[2l]·sc[2l] + bsums[2l+1]·sc[2l+1])` — note this correction covers elements
/// `32l..32l+31`, not the lane's own elements; only the total is the exact dot product. Then
/// `acc[l] = fma(d, f32(lane), acc[l])`; the result is `hsum8(acc)`.
pub fn vec_dot_q6_k_q8_k(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ6K] = cast_slice(&x[..nb * 210]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = b.d * a.d.to_f32();
        let u = q6_k_unsigned(a);
        let mut lanes = [0i32; 8];
        for (l, lane) in lanes.iter_mut().enumerate() {
            let mut s = 0i32;
            for g in 0..8 {
                for e in 32 * g + 4 * l..32 * g + 4 * l + 4 {
                    s += a.scales[e / 16] as i32 * u[e] * b.qs[e] as i32;
                }
            }
            let corr = b.bsums[2 * l] as i32 * a.scales[2 * l] as i32
                + b.bsums[2 * l + 1] as i32 * a.scales[2 * l + 1] as i32;
            *lane = s - 32 * corr;
        }
        fma_lanes(&mut acc, d, &lanes);
    }
    hsum8(&acc)
}

/// Q6_K · Q8_K as llama.cpp's tiled K-quant matmul (AVX-512 VNNI microkernel), taken for batches
/// of at least [`crate::traits::TILED_MIN_TOKENS`] tokens: one accumulator from 0; per
/// super-block, the exact `isum = Σ_j sc[j]·Σ (u-32)·q8` over the 16 sub-blocks, then
/// `acc = fma(f32(isum) * f32(x.d), y.d, acc)` (GCC contracts the kernel's `acc + r * d` into an
/// FMA).
pub fn vec_dot_q6_k_q8_k_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let nb = n / QK_K;
    let x: &[BlockQ6K] = cast_slice(&x[..nb * 210]);
    let y: &[BlockQ8K] = cast_slice(&y[..nb * 292]);
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let v = q6_k_values(a);
        let mut isum = 0i32;
        for j in 0..QK_K / 16 {
            let s: i32 = (0..16)
                .map(|l| v[j * 16 + l] as i32 * b.qs[j * 16 + l] as i32)
                .sum();
            isum += a.scales[j] as i32 * s;
        }
        acc = (isum as f32 * a.d.to_f32()).mul_add(b.d, acc);
    }
    acc
}
