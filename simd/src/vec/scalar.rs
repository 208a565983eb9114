//! The scalar reference of every elementwise kernel: the definitions the SIMD versions in
//! [`super`] must reproduce bit for bit (and the code that runs where no SIMD level applies).
//!
//! Where llama.cpp's x86 CPU backend (AVX-512 build) has a specific float order or
//! approximation (RMSNorm's f64 sum, the vector `expf` polynomial behind SiLU and softmax, the
//! f16 GELU table, the f16 dot product of flash attention), the function here reproduces it bit
//! for bit and says so; each is lane-wise or has a fixed reduction tree, so SIMD versions on any
//! instruction set can match it.

use half::f16;

/// `Σ x²` as llama.cpp's `ggml_compute_forward_rms_norm_f32` sums it: each square rounded to
/// f32, then added in order into an f64.
#[inline]
fn sum_sq_f64(x: &[f32]) -> f64 {
    let mut s = 0f64;
    for &v in x {
        s += (v * v) as f64;
    }
    s
}

/// The RMSNorm scale `1 / sqrt(mean + eps)` exactly as llama.cpp computes it: the f64 sum of
/// squares divided by `n` in f64, rounded to f32, then `1.0f32 / sqrtf(mean + eps)`.
#[inline]
pub fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let mean = (sum_sq_f64(x) / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = (x * scale) * w` with [`rms_scale`] (llama.cpp's `rms_norm` then `mul`, fused or not:
/// both round `x * scale` before multiplying by `w`).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = xi * scale * wi;
    }
}

/// [`rms_norm`] of each `cols`-wide row of `x` into the same row of `out`.
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, cols: usize, out: &mut [f32]) {
    for (xi, oi) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        rms_norm(xi, w, eps, oi);
    }
}

/// In-place [`rms_norm`].
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (xi, &wi) in x.iter_mut().zip(w) {
        *xi = *xi * scale * wi;
    }
}

/// Sixteen lanes reduced as GCC's `_mm512_reduce_add_ps`: `t[i] = v[i] + v[i+8]`,
/// `u[i] = t[i] + t[i+4]`, then `(u0 + u2) + (u1 + u3)`.
#[inline]
pub fn reduce16(v: &[f32; 16]) -> f32 {
    let mut t = [0f32; 8];
    for i in 0..8 {
        t[i] = v[i + 8] + v[i];
    }
    let u = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    (u[0] + u[2]) + (u[1] + u[3])
}

/// f16 · f16 as llama.cpp's `ggml_vec_dot_f16` on AVX-512 (the flash-attention `K·Q` product):
/// 64 f32 lanes, element `i < n - n % 64` accumulated into lane `i % 64` with
/// `fma(x_i, y_i, lane)` (the product of two f16 values is exact in f32); lanes `l` and `l + 32`
/// are added, then lanes `l` and `l + 16`, and the remaining sixteen reduced with [`reduce16`];
/// the tail `i >= n - n % 64` is added in f64 (`sum += x_i * y_i`), and the f64 is rounded to f32.
pub fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    let np = n - n % 64;
    let mut sum = lanes64(np, |i| (x[i].to_f32(), y[i].to_f32())) as f64;
    for i in np..n {
        sum += (x[i].to_f32() * y[i].to_f32()) as f64;
    }
    sum as f32
}

/// The 64 lanes of [`dot_f16`] over the first `np` (a multiple of 64) products `xy(i)`, reduced.
#[inline]
fn lanes64(np: usize, xy: impl Fn(usize) -> (f32, f32)) -> f32 {
    let mut lanes = [0f32; 64];
    for c in (0..np).step_by(64) {
        for (l, acc) in lanes.iter_mut().enumerate() {
            let (a, b) = xy(c + l);
            *acc = a.mul_add(b, *acc);
        }
    }
    let mut v = [0f32; 16];
    for i in 0..16 {
        v[i] = (lanes[i] + lanes[i + 32]) + (lanes[i + 16] + lanes[i + 48]);
    }
    reduce16(&v)
}

/// f32 · f32 as llama.cpp's `ggml_vec_dot_f32` on AVX-512: 64 lanes as in [`dot_f16`]
/// (`fma(x_i, y_i, lane)`), the same reduction, then the tail with `fma(x_i, y_i, sum)` in f32.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let np = n - n % 64;
    let mut sum = lanes64(np, |i| (a[i], b[i]));
    for i in np..n {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

/// Dot product of f32 `a` with f16 `b`.
#[inline]
pub fn dot_f32_f16(a: &[f32], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0f32; 8];
    let mut ca = a[..n].chunks_exact(8);
    let mut cb = b[..n].chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i].to_f32();
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y.to_f32();
    }
    s
}

/// `y += a * x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `y += a * x` with f16 `x`.
#[inline]
pub fn axpy_f16(a: f32, x: &[f16], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi.to_f32();
    }
}

/// `x *= a`.
#[inline]
pub fn scale(x: &mut [f32], a: f32) {
    for v in x {
        *v *= a;
    }
}

/// `y += x`.
#[inline]
pub fn add_inplace(y: &mut [f32], x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// In-place softmax; returns the sum of exponentials before normalisation.
pub fn softmax_inplace(x: &mut [f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return 0.0;
    }
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
    sum as f32
}

/// SiLU: `x / (1 + expf(-x))` with the platform's `expf` (llama.cpp's scalar `ggml_silu_f32`).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `e^x` as llama.cpp's AVX-512 `ggml_v_expf` computes it, lane by lane (so any vector width
/// reproduces it): `z = fma(x, 0x1.715476p+0, 0x1.8p23)`, `n = z - 0x1.8p23`,
/// `b = fma(-n, 0x1.7f7d1cp-20, fma(-n, 0x1.62e4p-1, x))`, `u = b*b`,
/// `j = fma(fma(fma(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u,
/// fma(0x1.ffffecp-1, b, 1))`, result `j * 2^n` rounded once (`vscalefps`); when `|n| > 192`
/// the result is `+inf` for `n > 0` and `0` otherwise.
#[inline]
pub fn expf_poly(x: f32) -> f32 {
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),
        (-n).mul_add(f32::from_bits(0x3f31_7200), x),
    );
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010)
        .mul_add(b, f32::from_bits(0x3d2b_9f17))
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)),
        );
    let j = j.mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    scalef(j, n)
}

/// `j * 2^n` for integral `n` in `[-192, 192]`, rounded once to nearest (AVX-512 `vscalefps`).
#[inline]
fn scalef(j: f32, n: f32) -> f32 {
    if n.is_nan() || j.is_nan() {
        return f32::NAN;
    }
    // Exact in f64 (a power of two within range), then one rounding to f32.
    (j as f64 * (2f64).powi(n as i32)) as f32
}

/// SiLU as llama.cpp's AVX-512 `ggml_v_silu`: `x / (1 + expf_poly(0 - x))`.
#[inline]
pub fn silu_poly(x: f32) -> f32 {
    x / (1.0 + expf_poly(0.0 - x))
}

/// GELU, tanh approximation, as llama.cpp's `ggml_gelu_f32` computes it (GCC contracts
/// `1 + a·x·x` into `fma(a·x, x, 1)`): `0.5·x·(1 + tanhf(√(2/π)·x·fma(0.044715·x, x, 1)))`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (COEF_A * x).mul_add(x, 1.0)).tanh())
}

/// llama.cpp's GELU table: `f16(gelu(x))` for every f16 `x` (`ggml_table_gelu_f16`).
pub(crate) fn gelu_table() -> &'static [f16] {
    static TABLE: std::sync::OnceLock<Vec<f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|i| f16::from_f32(gelu(f16::from_bits(i).to_f32())))
            .collect()
    })
}

/// `gate = silu(gate) * up` for one row, as llama.cpp's `ggml_vec_swiglu_f32` on AVX-512: the
/// first `n - n % 16` elements with [`silu_poly`], the rest with [`silu`].
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let nv = n - n % 16;
    for (g, &u) in gate[..nv].iter_mut().zip(&up[..nv]) {
        *g = silu_poly(*g) * u;
    }
    for (g, &u) in gate[nv..n].iter_mut().zip(&up[nv..n]) {
        *g = silu(*g) * u;
    }
}

/// `gate = gelu(gate) * up`, as llama.cpp's `ggml_vec_geglu_f32` (built with `GGML_GELU_FP16`):
/// `0` for `x <= -10`, `x * up` for `x >= 10`, else `f32(table[f16(x)]) * up`.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            table[f16::from_f32(x).to_bits() as usize].to_f32() * u
        };
    }
}

/// llama.cpp's `ggml_vec_soft_max_f32` on AVX-512: `y[i] = e^(x[i] - max)` with [`expf_poly`]
/// for the first `n - n % 16` elements (each group of 16 summed with [`reduce16`] and added to
/// an f64), the platform's `expf` for the rest (each added to the f64); returns the f64 sum.
pub fn soft_max_exp(x: &mut [f32], max: f32) -> f64 {
    let n = x.len();
    let nv = n - n % 16;
    let mut sum = 0f64;
    for c in x[..nv].chunks_exact_mut(16) {
        let mut v = [0f32; 16];
        for (o, xi) in v.iter_mut().zip(c.iter_mut()) {
            *xi = expf_poly(*xi - max);
            *o = *xi;
        }
        sum += reduce16(&v) as f64;
    }
    for xi in x[nv..].iter_mut() {
        *xi = (*xi - max).exp();
        sum += *xi as f64;
    }
    sum
}

/// Rotate adjacent pairs `(x[2i], x[2i+1])` by `(cos[i], sin[i])` (RoPE "normal", llama), as
/// llama.cpp's `rotate_pairs` compiles (GCC contracts both lines):
/// `x0' = fma(x0, cos, -(x1*sin))`, `x1' = fma(x0, sin, x1*cos)`.
pub fn rope_pairs(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (i, (&c, &s)) in cos.iter().zip(sin).enumerate() {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        x[2 * i] = a.mul_add(c, -(b * s));
        x[2 * i + 1] = a.mul_add(s, b * c);
    }
}

/// Rotate `(x[i], x[i + n/2])` pairs over the first `2 * cos.len()` values (RoPE "NeoX"), with
/// the arithmetic of [`rope_pairs`].
pub fn rope_halves(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for i in 0..half {
        let (a, b) = (x[i], x[i + half]);
        x[i] = a.mul_add(cos[i], -(b * sin[i]));
        x[i + half] = a.mul_add(sin[i], b * cos[i]);
    }
}

/// f32 → f16, rounding to nearest.
pub fn to_f16(x: &[f32], out: &mut [f16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
}

/// f16 → f32.
pub fn from_f16(x: &[f16], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = v.to_f32();
    }
}

/// `out = x * a`.
pub fn scale_into(x: &[f32], a: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * a;
    }
}

/// `acc = fma(acc, a, x * b)` element-wise (the merge of two online-softmax partials).
pub fn merge_scaled(acc: &mut [f32], a: f32, x: &[f32], b: f32) {
    for (y, &v) in acc.iter_mut().zip(x) {
        *y = y.mul_add(a, v * b);
    }
}
