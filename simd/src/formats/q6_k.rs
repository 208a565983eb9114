//! Q6_K: 256 elements in 16 sub-blocks of 16, 6-bit quants (4 low bits in `ql`, 2 high bits in
//! `qh`) with an offset of 32, signed 8-bit scales: `x = d·sc·(q − 32)`. Pairs with Q8_K.
//!
//! llama.cpp's x86 backend multiplies Q6_K in two summation orders: [`vec_dot`] (decode) and
//! [`vec_dot_tiled`] (the tiled K-quant matmul, batches of 8 tokens or more).

use super::common::{
    clamped, fit_sixteens, fma_lanes, hsum8, nearest_int, quantize_blocks, signed_max,
    GROUP_MAX_EPS,
};
use super::q8_k::operands;
use super::QK_K;
use bytemuck::{cast_slice, Pod, Zeroable};
use half::f16;

/// 210 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// The 256 signed 6-bit values (-32..31) of a Q6_K block, in element order.
#[inline]
pub fn values(b: &BlockQ6K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    for n in 0..QK_K / 128 {
        let ql = &b.ql[n * 64..n * 64 + 64];
        let qh = &b.qh[n * 32..n * 32 + 32];
        let o = &mut v[n * 128..n * 128 + 128];
        for l in 0..32 {
            o[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
            o[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    v
}

pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ6K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let v = values(b);
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * v[i] as f32;
        }
    }
}

/// Symmetric quantization of a group to `-nmax..nmax` (stored as `0..2·nmax` in `l`), choosing the
/// scale among 19 candidates around `max / −nmax` that minimises `Σ x²·(x − d·l)²` (ggml's
/// `make_qx_quants` with `rmse_type = 1` and no importance weights). Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let q = clamped(iscale * v, -nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, l: &mut [u8]| {
        for (o, &v) in l.iter_mut().zip(x) {
            *o = (nmax + clamped(iscale * v, -nmax, nmax - 1)) as u8;
        }
    };
    let iscale = -nmaxf / max;
    store(iscale, l);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmaxf + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// As ggml's `quantize_row_q6_K_ref`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK_K, |xs, b: &mut BlockQ6K| {
        let mut l = [0u8; QK_K];
        let scales = fit_sixteens(xs, &mut l, |g, lg| make_qx_quants(32, g, lg));
        let (max_scale, max_abs_scale) = signed_max(&scales);
        *b = BlockQ6K::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            return;
        }
        let iscale = -128.0 / max_scale;
        b.d = f16::from_f32(1.0 / iscale);
        for (o, &s) in b.scales.iter_mut().zip(&scales) {
            *o = nearest_int(iscale * s).min(127) as i8;
        }
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let d = b.d.to_f32() * b.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for (o, &v) in lg.iter_mut().zip(g) {
                *o = (clamped(v / d, -32, 31) + 32) as u8;
            }
        }
        for (n, c) in l.chunks_exact(128).enumerate() {
            let ql = &mut b.ql[64 * n..64 * n + 64];
            let qh = &mut b.qh[32 * n..32 * n + 32];
            for i in 0..32 {
                let (q1, q2, q3, q4) = (c[i], c[i + 32], c[i + 64], c[i + 96]);
                ql[i] = (q1 & 0x0F) | ((q3 & 0x0F) << 4);
                ql[i + 32] = (q2 & 0x0F) | ((q4 & 0x0F) << 4);
                qh[i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    });
}

/// The 256 unsigned 6-bit values (0..63) of a Q6_K block in element order.
#[inline]
fn unsigned(a: &BlockQ6K) -> [i32; QK_K] {
    let v = values(a);
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
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ6K>(n, x, y);
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = b.d * a.d.to_f32();
        let u = unsigned(a);
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
pub fn vec_dot_tiled(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ6K>(n, x, y);
    let mut acc = 0f32;
    for (a, b) in x.iter().zip(y) {
        let v = values(a);
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
