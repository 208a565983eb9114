//! What the block formats share: the reduction trees of llama.cpp's x86 kernels (every
//! instruction set reproduces them), the quad sums the integer kernels leave in their lanes, and
//! small helpers of the quantizers.

use bytemuck::{cast_slice_mut, Pod};

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

/// The eight quad sums of a 32-element block: lane `l` = `Σ w[e]·a[e]`, `e = 4l..4l+3` (what
/// `vpdpbusd` or `maddubs`+`madd` leave in 32-bit lane `l`, and NEON's `sdot` in lane `l % 4` of
/// the register covering that half of the block).
#[inline]
pub fn quad_sums(w: &[i8; 32], a: &[i8; 32]) -> [i32; 8] {
    let mut q = [0i32; 8];
    for (l, s) in q.iter_mut().enumerate() {
        for e in 4 * l..4 * l + 4 {
            *s += w[e] as i32 * a[e] as i32;
        }
    }
    q
}

/// One block's contribution to eight f32 lanes: `acc[l] = fma(d, q_l, acc[l])`.
#[inline]
pub fn fma_lanes(acc: &mut [f32; 8], d: f32, q: &[i32; 8]) {
    for (a, &s) in acc.iter_mut().zip(q) {
        *a = d.mul_add(s as f32, *a);
    }
}

/// The exact integer `Σ w·a` of two equally long rows of small integers.
#[inline]
pub fn int_dot(w: &[i8], a: &[i8]) -> i32 {
    w.iter().zip(a).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Round to nearest, ties to even, as ggml's `nearest_int`.
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// `nearest_int` clamped to `lo..=hi`.
pub(crate) fn clamped(v: f32, lo: i32, hi: i32) -> i32 {
    nearest_int(v).clamp(lo, hi)
}

/// The blocks of `T` covering the first `n / per` blocks of `y` (a quantizer's output row).
/// Panics unless `n` is a whole number of `per`-element blocks and `y` holds them.
pub(crate) fn out_blocks<T: Pod>(y: &mut [u8], n: usize, per: usize) -> &mut [T] {
    assert!(
        n.is_multiple_of(per),
        "row of {n} elements is not a whole number of {per}-element blocks"
    );
    cast_slice_mut(&mut y[..n / per * size_of::<T>()])
}

/// The value of largest magnitude (the first one on ties; 0 for none above 0) and that
/// magnitude, compared as ggml's quantizers compare them (`|v| > amax`, so NaN never wins).
pub(crate) fn signed_max(xs: &[f32]) -> (f32, f32) {
    xs.iter().fold((0.0f32, 0.0f32), |(m, a), &v| {
        if v.abs() > a {
            (v, v.abs())
        } else {
            (m, a)
        }
    })
}

/// The largest value of a list of non-negative candidates (0 for none above 0), compared as the C
/// quantizers compare them (`s > m`, so NaN never wins).
pub(crate) fn max_of(xs: &[f32]) -> f32 {
    xs.iter().fold(0.0f32, |m, &s| if s > m { s } else { m })
}
/// Below this a group is all zeros (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Affine quantization of a group to `0..=nmax` with `x ≈ d·l − m`, searching `nstep + 1`
/// candidate scales from `(nmax + rmin)/(max − min)` in steps of `rdelta/(max − min)` and fitting
/// scale and minimum by weighted least squares for each (ggml's `make_qkx2_quants`). The error is
/// `Σ w·|diff|` with `use_mad`, else `Σ w·diff²`. Returns `(d, m)` with `m ≥ 0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants(
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

/// Quantizes `x` block by block into `y` (a whole number of blocks of `T`, `per` elements each):
/// `quantize(xs, block)` for each block's elements. Panics unless `y` holds them.
pub(crate) fn quantize_blocks<T: Pod>(
    x: &[f32],
    y: &mut [u8],
    per: usize,
    mut quantize: impl FnMut(&[f32], &mut T),
) {
    let blocks: &mut [T] = out_blocks(y, x.len(), per);
    for (b, xs) in blocks.iter_mut().zip(x.chunks_exact(per)) {
        quantize(xs, b);
    }
}

/// The scales of the sixteen 16-element sub-blocks of a K-quant super-block, each fitted by
/// `fit(group, its quants)` (Q3_K, Q6_K).
pub(crate) fn fit_sixteens(
    xs: &[f32],
    l: &mut [u8; 256],
    fit: impl Fn(&[f32], &mut [u8]) -> f32,
) -> [f32; 16] {
    let mut scales = [0f32; 16];
    for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[j] = fit(g, lg);
    }
    scales
}
