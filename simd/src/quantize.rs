//! Weight quantizers: f32 rows to each weight format (scalar, level-independent; quantizing
//! weights is a one-off cost).
//!
//! * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 produce the same bytes as the Python `gguf` package
//!   (`gguf.quants.quantize`, gguf 0.19), which is what `convert_hf_to_gguf.py` writes: the block
//!   scale from the element of largest magnitude (first one on ties) or from the min/max, and each
//!   quant `trunc(x / d + offset)` with the same f32 operations in the same order.
//! * Q2_K..Q6_K follow ggml's reference quantizers (`quantize_row_q*_K_ref` in
//!   `ggml/src/ggml-quants.c`, as `llama-quantize` uses without an importance matrix): a search
//!   over candidate scales per sub-block minimising a weighted error, then 4/6/8-bit quantization of
//!   the sub-block scales and a final re-quantization against the stored scales. Float operations
//!   follow the C order (no fused multiply-adds), so the bytes match ggml's as well.
//!
//! Every function quantizes `x.len()` elements (a whole number of blocks) into `y`, which must
//! hold at least `row_size(x.len())` bytes. [`weight_quantizer`] maps a type to its function.

use crate::blocks::*;
use crate::reference::nearest_int;
use crate::traits::FromFloat;
use crate::GgmlType;
use bytemuck::{cast_slice_mut, Zeroable};
use half::f16;

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

/// Blocks of `T` covering `y`'s first `n / per` blocks.
fn out_blocks<T: bytemuck::Pod>(y: &mut [u8], n: usize, per: usize) -> &mut [T] {
    assert!(
        n.is_multiple_of(per),
        "row of {n} elements is not a whole number of {per}-element blocks"
    );
    cast_slice_mut(&mut y[..n / per * size_of::<T>()])
}

/// Packs 32 values < 16 as two nibble halves: byte `j` holds `q[j]` low and `q[j + 16]` high.
fn pack_nibbles(q: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| (q[j] & 0x0F) | (q[j + 16] << 4))
}

/// The fifth bits of 32 five-bit values, bit `j` from `q[j]`.
fn fifth_bits(q: &[u8; 32]) -> [u8; 4] {
    let bits = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (((v >> 4) as u32 & 1) << j));
    bits.to_le_bytes()
}

/// Q4_0: `d = max / −8` for the element of largest magnitude, `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize_row_q4_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ4_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = max_by_magnitude(xs) / -8.0;
        let id = inverse(d);
        let q: [u8; 32] = std::array::from_fn(|j| ((xs[j] * id + 8.5).trunc() as u8).min(15));
        b.d = f16::from_f32(d);
        b.qs = pack_nibbles(&q);
    }
}

/// Q4_1: `d = (max − min) / 15`, `m = min`, `q = min(15, trunc((x − min)/d + 0.5))`.
pub fn quantize_row_q4_1(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ4_1] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xs);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let q: [u8; 32] =
            std::array::from_fn(|j| (((xs[j] - min) * id + 0.5).trunc() as u8).min(15));
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(min);
        b.qs = pack_nibbles(&q);
    }
}

/// Q5_0: `d = max / −16` for the element of largest magnitude, `q = min(31, trunc(x/d + 16.5))`.
pub fn quantize_row_q5_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ5_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = max_by_magnitude(xs) / -16.0;
        let id = inverse(d);
        let q: [u8; 32] = std::array::from_fn(|j| ((xs[j] * id + 16.5).trunc() as u8).min(31));
        b.d = f16::from_f32(d);
        b.qh = fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}

/// Q5_1: `d = (max − min) / 31`, `m = min`, `q = min(31, trunc((x − min)/d + 0.5))`.
pub fn quantize_row_q5_1(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ5_1] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xs);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let q: [u8; 32] =
            std::array::from_fn(|j| (((xs[j] - min) * id + 0.5).trunc() as u8).min(31));
        b.d = f16::from_f32(d);
        b.m = f16::from_f32(min);
        b.qh = fifth_bits(&q);
        b.qs = pack_nibbles(&q);
    }
}

/// Q8_0: `d = max|x| / 127`, `q = round(x · (1/d))` rounding half away from zero (C's `roundf`,
/// as ggml's `quantize_row_q8_0_ref` and gguf-py). Not the activation quantizer of the kernel
/// table ([`crate::reference::quantize_row_q8_0`], which follows llama.cpp's x86 kernels: ties to
/// even, `127 / max|x|`): the two differ only in rare last-bit cases.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ8_0] = out_blocks(y, x.len(), QK);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        b.d = f16::from_f32(d);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
        }
    }
}

/// The weight quantizer for `ty`: what `convert_hf_to_gguf.py` (legacy formats, F16, BF16, F32)
/// or `llama-quantize` (K-quants) would write. For every type but Q8_0 this is also the kernel
/// table's `from_float`; Q8_0's `from_float` is the activation quantizer (see
/// [`quantize_row_q8_0`]).
pub fn weight_quantizer(ty: GgmlType) -> Option<FromFloat> {
    use crate::reference as r;
    use GgmlType::*;
    Some(match ty {
        F32 => r::quantize_row_f32,
        F16 => r::quantize_row_f16,
        BF16 => r::quantize_row_bf16,
        Q4_0 => quantize_row_q4_0,
        Q4_1 => quantize_row_q4_1,
        Q5_0 => quantize_row_q5_0,
        Q5_1 => quantize_row_q5_1,
        Q8_0 => quantize_row_q8_0,
        Q2_K => quantize_row_q2_k,
        Q3_K => quantize_row_q3_k,
        Q4_K => quantize_row_q4_k,
        Q5_K => quantize_row_q5_k,
        Q6_K => quantize_row_q6_k,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// K-quants: ggml's reference search.
// ---------------------------------------------------------------------------------------------

/// Below this a group is all zeros (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// `nearest_int` clamped to `lo..=hi`.
fn clamped(v: f32, lo: i32, hi: i32) -> i32 {
    nearest_int(v).clamp(lo, hi)
}

/// Symmetric quantization of a group to `-nmax..nmax` (stored as `0..2·nmax` in `l`), choosing the
/// scale among 19 candidates around `max / −nmax` that minimises `Σ x²·(x − d·l)²` (ggml's
/// `make_qx_quants` with `rmse_type = 1` and no importance weights). Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (max, amax) = x.iter().fold((0.0f32, 0.0f32), |(m, a), &v| {
        if v.abs() > a {
            (v, v.abs())
        } else {
            (m, a)
        }
    });
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

/// Symmetric 3-bit-style quantization to `-nmax..nmax` (stored as `0..2·nmax`), refined by
/// moving single quants while that lowers the `x²`-weighted error (ggml's `make_q3_quants` with
/// `do_rmse`). Returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (max, amax) = x.iter().fold((0.0f32, 0.0f32), |(m, a), &v| {
        if v.abs() > a {
            (v, v.abs())
        } else {
            (m, a)
        }
    });
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut li = [0i32; 16];
    let li = &mut li[..x.len()];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (q, &v) in li.iter_mut().zip(x) {
        *q = clamped(iscale * v, -nmax, nmax - 1);
        let w = v * v;
        sumlx += w * v * *q as f32;
        suml2 += w * *q as f32 * *q as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (q, &v) in li.iter_mut().zip(x) {
            let w = v * v;
            let mut slx = sumlx - w * v * *q as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * *q as f32 * *q as f32;
                let new = clamped(v * sl2 / slx, -nmax, nmax - 1);
                if new != *q {
                    slx += w * v * new as f32;
                    sl2 += w * new as f32 * new as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *q = new;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (o, &q) in l.iter_mut().zip(li.iter()) {
        *o = (q + nmax) as u8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Affine quantization of a group to `0..=nmax` with `x ≈ d·l − m`, searching `nstep + 1`
/// candidate scales from `(nmax + rmin)/(max − min)` in steps of `rdelta/(max − min)` and fitting
/// scale and minimum by weighted least squares for each (ggml's `make_qkx2_quants`). The error is
/// `Σ w·|diff|` with `use_mad`, else `Σ w·diff²`. Returns `(d, m)` with `m ≥ 0`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = if x[i] < min { x[i] } else { min };
        max = if x[i] > max { x[i] } else { max };
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let error = |scale: f32, min: f32, l: &[u8]| {
        let mut e = 0.0f32;
        for ((&q, &v), &w) in l.iter().zip(x).zip(weights) {
            let diff = scale * q as f32 + min - v;
            e += w * if use_mad { diff.abs() } else { diff * diff };
        }
        e
    };
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    for (o, &v) in l.iter_mut().zip(x) {
        *o = clamped(iscale * (v - min), 0, nmax) as u8;
    }
    let mut best_error = error(scale, min, l);
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((o, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            let q = clamped(iscale * (v - min), 0, nmax);
            *o = q as u8;
            let q = q as f32;
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, laux);
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Q2_K: 16 sub-blocks of 16 with 2-bit quants; 4-bit scales and minimums.
pub fn quantize_row_q2_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ2K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let weights: [f32; 16] = std::array::from_fn(|i| g[i].abs());
            (scales[j], mins[j]) = make_qkx2_quants(3, g, &weights, lg, -0.5, 0.1, 15, true);
        }
        let max_scale = scales
            .iter()
            .fold(0.0f32, |m, &s| if s > m { s } else { m });
        let max_min = mins.iter().fold(0.0f32, |m, &s| if s > m { s } else { m });
        *b = BlockQ2K::zeroed();
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (o, &s) in b.scales.iter_mut().zip(&scales) {
                *o = nearest_int(iscale * s) as u8;
            }
            b.d = f16::from_f32(max_scale / 15.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (o, &m) in b.scales.iter_mut().zip(&mins) {
                *o |= (nearest_int(iscale * m) as u8) << 4;
            }
            b.dmin = f16::from_f32(max_min / 15.0);
        }
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let d = b.d.to_f32() * (b.scales[j] & 0x0F) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = b.dmin.to_f32() * (b.scales[j] >> 4) as f32;
            for (o, &v) in lg.iter_mut().zip(g) {
                *o = clamped((v + dm) / d, 0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// Packs 256 2-bit values: per 128, byte `l` holds elements `l`, `l+32`, `l+64`, `l+96`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for (half, out) in l.chunks_exact(128).zip(qs.chunks_exact_mut(32)) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = half[i] | (half[i + 32] << 2) | (half[i + 64] << 4) | (half[i + 96] << 6);
        }
    }
}

/// Q3_K: 16 sub-blocks of 16 with 3-bit quants (2 low bits + a high-bit mask); signed 6-bit scales.
pub fn quantize_row_q3_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ3K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            scales[j] = make_q3_quants(4, g, lg);
        }
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for &s in &scales {
            if s.abs() > amax {
                amax = s.abs();
                max_scale = s;
            }
        }
        *b = BlockQ3K::zeroed();
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let q = (nearest_int(iscale * s).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    b.scales[j] = q & 0x0F;
                } else {
                    b.scales[j - 8] |= (q & 0x0F) << 4;
                }
                b.scales[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
            }
            b.d = f16::from_f32(1.0 / iscale);
        }
        let stored = crate::reference::q3_k_scales(&b.scales);
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let d = b.d.to_f32() * stored[j] as f32;
            if d == 0.0 {
                continue;
            }
            for (o, &v) in lg.iter_mut().zip(g) {
                *o = (clamped(v / d, -4, 3) + 4) as u8;
            }
        }
        // The high bit of element j goes to bit j / 32 of hmask[j % 32].
        for (j, q) in l.iter_mut().enumerate() {
            if *q > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
                *q -= 4;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// The 6-bit scales and minimums of the 8 sub-blocks of Q4_K / Q5_K: the per-sub-block fits,
/// their 6-bit codes packed as `get_scale_min_k4` reads them, and the super-block `d`, `dmin`.
fn pack_k4_scales(scales: &[f32; 8], mins: &[f32; 8]) -> ([u8; 12], f16, f16) {
    let max_scale = scales
        .iter()
        .fold(0.0f32, |m, &s| if s > m { s } else { m });
    let max_min = mins.iter().fold(0.0f32, |m, &s| if s > m { s } else { m });
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
        let (sc, m) = crate::reference::get_scale_min_k4(j, packed);
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

/// Q4_K: 8 sub-blocks of 32 with 4-bit quants; 6-bit scales and minimums.
pub fn quantize_row_q4_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ4K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let (scales, mins) = fit_k4_subblocks(xs, &mut l, 15, -1.0, 20);
        let (packed, d, dmin) = pack_k4_scales(&scales, &mins);
        requantize_k4(xs, &mut l, &packed, d, dmin, 15);
        b.d = d;
        b.dmin = dmin;
        b.scales = packed;
        for (q, c) in b.qs.chunks_exact_mut(32).zip(l.chunks_exact(64)) {
            for (i, o) in q.iter_mut().enumerate() {
                *o = c[i] | (c[i + 32] << 4);
            }
        }
    }
}

/// Q5_K: 8 sub-blocks of 32 with 5-bit quants; 6-bit scales and minimums.
pub fn quantize_row_q5_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ5K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let (scales, mins) = fit_k4_subblocks(xs, &mut l, 31, -0.5, 15);
        let (packed, d, dmin) = pack_k4_scales(&scales, &mins);
        requantize_k4(xs, &mut l, &packed, d, dmin, 31);
        b.d = d;
        b.dmin = dmin;
        b.scales = packed;
        b.qh = [0; QK_K / 8];
        // Per 64 elements: low nibbles of the first 32 and high nibbles of the next 32 share
        // bytes; their fifth bits are bits 2j and 2j + 1 of qh.
        for (j, (q, c)) in
            b.qs.chunks_exact_mut(32)
                .zip(l.chunks_exact(64))
                .enumerate()
        {
            for (i, o) in q.iter_mut().enumerate() {
                let (lo, hi) = (c[i], c[i + 32]);
                b.qh[i] |= ((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1));
                *o = (lo & 0x0F) | ((hi & 0x0F) << 4);
            }
        }
    }
}

/// Q6_K: 16 sub-blocks of 16 with 6-bit quants; signed 8-bit scales.
pub fn quantize_row_q6_k(x: &[f32], y: &mut [u8]) {
    let blocks: &mut [BlockQ6K] = out_blocks(y, x.len(), QK_K);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            scales[j] = make_qx_quants(32, g, lg);
        }
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for &s in &scales {
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        *b = BlockQ6K::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            continue;
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
    }
}
