//! Q4_K: 256 elements in 8 sub-blocks of 32, 4-bit quants, 6-bit scales and minimums packed in 12
//! bytes: `x = d·sc·q − dmin·m`. Pairs with Q8_K.
//!
//! llama.cpp's x86 backend multiplies Q4_K in four summation orders, and nib reproduces each:
//! [`vec_dot`] (`ggml_vec_dot_q4_K_q8_K`, decode), [`vec_dot_tiled`] (the tiled K-quant matmul,
//! batches of 8 tokens or more), and on matrices of a multiple of 8 rows, which it repacks,
//! [`vec_dot_block`] (its gemv) and [`vec_dot_gemm`] (its gemm, tokens in groups of four).

use super::common::{
    clamped, fma_lanes, hsum4, hsum8, make_qkx2_quants, max_of, nearest_int, quad_sums,
    quantize_blocks,
};
use super::q8_k::{operands, BlockQ8K};
use super::QK_K;
use bytemuck::{cast_slice, Pod, Zeroable};
use half::f16;

/// 144 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

/// Scale and min `j` (0..8) of the packed 6-bit scales of Q4_K / Q5_K.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// A row of super-blocks with Q4_K's scales and minimums (Q4_K, Q5_K) to f32: element `l` of the
/// 64 elements `j` is `d·sc·q − dmin·m`, with `(q of sub-block 2j, q of 2j + 1) = quants(b, j, l)`.
pub(crate) fn dequantize_k4<B: Pod>(
    x: &[u8],
    y: &mut [f32],
    header: impl Fn(&B) -> (f16, f16, &[u8; 12]),
    quants: impl Fn(&B, usize, usize) -> (u8, u8),
) {
    let blocks: &[B] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let (d, min, scales) = header(b);
        let (d, min) = (d.to_f32(), min.to_f32());
        for j in 0..QK_K / 64 {
            let (sc1, m1) = get_scale_min_k4(2 * j, scales);
            let (sc2, m2) = get_scale_min_k4(2 * j + 1, scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let o = &mut out[j * 64..j * 64 + 64];
            for l in 0..32 {
                let (q1, q2) = quants(b, j, l);
                o[l] = d1 * q1 as f32 - m1;
                o[l + 32] = d2 * q2 as f32 - m2;
            }
        }
    }
}

/// `x = d·sc·q − dmin·m`.
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    dequantize_k4::<BlockQ4K>(
        x,
        y,
        |b| (b.d, b.dmin, &b.scales),
        |b, j, l| (b.qs[32 * j + l] & 0x0F, b.qs[32 * j + l] >> 4),
    );
}

/// The 6-bit scales and minimums of the 8 sub-blocks of Q4_K / Q5_K: the per-sub-block fits,
/// their 6-bit codes packed as `get_scale_min_k4` reads them, and the super-block `d`, `dmin`.
fn pack_k4_scales(scales: &[f32; 8], mins: &[f32; 8]) -> ([u8; 12], f16, f16) {
    let (max_scale, max_min) = (max_of(scales), max_of(mins));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    (
        packed,
        f16::from_f32(max_scale / 63.0),
        f16::from_f32(max_min / 63.0),
    )
}

/// Per-sub-block fits for Q4_K / Q5_K: weights `rms(x) + |x|`, `make_qkx2_quants` with `nmax`.
fn fit_k4_subblocks(
    xs: &[f32],
    l: &mut [u8; QK_K],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> ([f32; 8], [f32; 8]) {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for (j, (g, lg)) in xs.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let sum_x2 = g.iter().fold(0.0f32, |s, &v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + g[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(nmax, g, &weights, lg, rmin, 0.1, nstep, false);
    }
    (scales, mins)
}

/// Re-quantizes each sub-block of 32 against its stored 6-bit scale and minimum.
fn requantize_k4(xs: &[f32], l: &mut [u8; QK_K], packed: &[u8; 12], d: f16, dmin: f16, nmax: i32) {
    for (j, (g, lg)) in xs.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = d.to_f32() * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (o, &v) in lg.iter_mut().zip(g) {
            *o = clamped((v + dm) / d, 0, nmax) as u8;
        }
    }
}

/// As ggml's `quantize_row_q4_K_ref`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK_K, |xs, b: &mut BlockQ4K| {
        let l = quantize_k4(xs, 15, -1.0, 20, (&mut b.d, &mut b.dmin, &mut b.scales));
        for (q, c) in b.qs.chunks_exact_mut(32).zip(l.chunks_exact(64)) {
            for (i, o) in q.iter_mut().enumerate() {
                *o = c[i] | (c[i + 32] << 4);
            }
        }
    });
}

/// The part of ggml's quantizer that Q4_K and Q5_K share: the per-sub-block fits, the 6-bit scales
/// and minimums packed into `header` (`d`, `dmin`, `scales`), and the quants (`0..=nmax`)
/// re-fitted against them.
pub(crate) fn quantize_k4(
    xs: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    header: (&mut f16, &mut f16, &mut [u8; 12]),
) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let (scales, mins) = fit_k4_subblocks(xs, &mut l, nmax, rmin, nstep);
    let (packed, d, dmin) = pack_k4_scales(&scales, &mins);
    requantize_k4(xs, &mut l, &packed, d, dmin, nmax);
    (*header.0, *header.1, *header.2) = (d, dmin, packed);
    l
}

/// The 8 (scale, min) pairs of a Q4_K / Q5_K block.
#[inline]
pub(crate) fn scales_mins(scales: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
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
fn values(a: &BlockQ4K) -> [i8; QK_K] {
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
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ4K>(n, x, y);
    let mut acc = [0f32; 8];
    let mut accm = [0f32; 4];
    for (a, b) in x.iter().zip(y) {
        let d = b.d * a.d.to_f32();
        let dmin = -b.d * a.dmin.to_f32();
        let (sc, mn) = scales_mins(&a.scales);
        let s32 = bsums32(b);
        for (i, m) in accm.iter_mut().enumerate() {
            let p = mn[2 * i] * s32[2 * i] + mn[2 * i + 1] * s32[2 * i + 1];
            *m = dmin.mul_add(p as f32, *m);
        }
        let v = values(a);
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
fn block_ints(a: &BlockQ4K, b: &BlockQ8K) -> (i32, i32) {
    let (sc, mn) = scales_mins(&a.scales);
    let s32 = bsums32(b);
    let v = values(a);
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
/// tokens [`vec_dot_gemm`] covers. Two accumulators per output: for each
/// super-block,
/// `acc = fma(f32(isum), f32(x.d) * y.d, acc)` and `accm = fma(f32(imin), f32(x.dmin) * y.d, accm)`
/// with `isum = Σ_j sc[j]·Σ q4·q8` and `imin = Σ_j mn[j]·(per-32 sum of y.qs)` exact; the result
/// is `acc - accm`.
pub fn vec_dot_block(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ4K>(n, x, y);
    let mut acc = 0f32;
    let mut accm = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (isum, imin) = block_ints(a, b);
        acc = (isum as f32).mul_add(a.d.to_f32() * b.d, acc);
        accm = (imin as f32).mul_add(a.dmin.to_f32() * b.d, accm);
    }
    acc - accm
}

/// Q4_K · Q8_K in llama.cpp's x86 repacked layout for the tokens that `ggml_gemm_q4_K_8x8_q8_K`
/// handles (the first `n - n % 4` of a batch of `n`; activations from `ggml_quantize_mat_q8_K_4x8`,
/// which gives the same values as `quantize_row_q8_K`). Like [`vec_dot_block`] but
/// the accumulators are updated once per 64-element pair of sub-blocks `p = 0..4` of each
/// super-block: `acc = fma(f32(sc[2p]·Σ₂ₚ + sc[2p+1]·Σ₂ₚ₊₁), f32(x.d) * y.d, acc)` and
/// `accm = fma(f32(mn[2p]·s[2p] + mn[2p+1]·s[2p+1]), f32(x.dmin) * y.d, accm)`; result `acc - accm`.
pub fn vec_dot_gemm(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ4K>(n, x, y);
    let mut acc = 0f32;
    let mut accm = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (sc, mn) = scales_mins(&a.scales);
        let s32 = bsums32(b);
        let v = values(a);
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
pub fn vec_dot_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ4K>(n, x, y);
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let (isum, imin) = block_ints(a, b);
        let r = (-a.dmin.to_f32()).mul_add(imin as f32, isum as f32 * a.d.to_f32());
        acc = r.mul_add(b.d, acc);
    }
    acc
}
