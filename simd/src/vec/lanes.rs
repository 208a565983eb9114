//! The elementwise kernels written once over [`Lanes`] (a vector instruction set seen as `W` f32
//! lanes) and instantiated per instruction set in `x86.rs` and `aarch64.rs`, inside functions
//! compiled for that set's features.
//!
//! Each function returns the bits of its scalar reference in [`super::scalar`]: lane-wise
//! operations are the same IEEE operations (a fused multiply-add stays fused, a product followed
//! by an add stays two roundings), fixed reduction trees are followed operand for operand, and
//! sequential sums stay sequential. Only NaN payloads may differ (a NaN input gives a NaN).
//!
//! Every helper is `#[inline(always)]`: the code is only ever compiled as part of an
//! instruction-set entry point, where the intrinsics behind [`Lanes`] can inline.

use super::scalar;
use half::f16;

/// A vector instruction set as `W` lanes of f32. Implementors are zero-sized tokens that can only
/// be created (by `unsafe` constructors) where the CPU is known to have the instruction set, so
/// holding one proves the intrinsics behind these methods may run.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector: 4, 8 or 16 (a divisor of 16).
    const W: usize;
    /// `W` f32.
    type F: Copy;
    /// A lane mask.
    type M: Copy;

    fn zero(self) -> Self::F;
    fn splat(self, x: f32) -> Self::F;
    /// `s[..W]` (panics if `s` is shorter).
    fn load(self, s: &[f32]) -> Self::F;
    /// Into `s[..W]` (panics if `s` is shorter).
    fn store(self, s: &mut [f32], v: Self::F);
    /// `s[..W]` widened to f32 (exact).
    fn load_h(self, s: &[f16]) -> Self::F;
    /// `v` rounded to f16 (to nearest, ties to even, as `f16::from_f32`) into `s[..W]`.
    fn store_h(self, s: &mut [f16], v: Self::F);
    /// `f32(f16(v))`.
    fn round_h(self, v: Self::F) -> Self::F;
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    fn div(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, rounded once.
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `c - a * b`, rounded once (`fma(-a, b, c)`).
    fn fnma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `-a` (the sign bit flipped).
    fn neg(self, a: Self::F) -> Self::F;
    fn abs(self, a: Self::F) -> Self::F;
    /// Lane-wise maximum; `acc` where `x` is NaN (so a running maximum skips NaNs, as
    /// `f32::max` does). Only used where neither operand is a signed zero of the other sign.
    fn max(self, x: Self::F, acc: Self::F) -> Self::F;
    /// `a > b` (ordered).
    fn gt(self, a: Self::F, b: Self::F) -> Self::M;
    /// `a <= b` (ordered).
    fn le(self, a: Self::F, b: Self::F) -> Self::M;
    /// `a >= b` (ordered).
    fn ge(self, a: Self::F, b: Self::F) -> Self::M;
    /// `m ? a : b` lane-wise.
    fn select(self, m: Self::M, a: Self::F, b: Self::F) -> Self::F;
    /// `j * 2^n` rounded once, for lanes where `n` is an integer in `[-192, 192]` and
    /// `j` in `[0.5, 2)` (AVX-512 `vscalefps`); anything elsewhere.
    fn scalef(self, j: Self::F, n: Self::F) -> Self::F;
    /// [`scalar::reduce16`] of the 16 lanes `v[..16 / W]` (lane `i` of `v[k]` is element
    /// `k * W + i`).
    fn reduce16(self, v: &[Self::F]) -> f32;
}

/// Vectors per 16 lanes.
#[inline(always)]
pub(crate) const fn per16<L: Lanes>() -> usize {
    16 / L::W
}

/// [`scalar::expf_poly`] lane-wise.
#[inline(always)]
pub(crate) fn expf_poly<L: Lanes>(l: L, x: L::F) -> L::F {
    let r = l.splat(f32::from_bits(0x4b40_0000));
    let z = l.fma(x, l.splat(f32::from_bits(0x3fb8_aa3b)), r);
    let n = l.sub(z, r);
    let b = l.fnma(
        n,
        l.splat(f32::from_bits(0x35bf_be8e)),
        l.fnma(n, l.splat(f32::from_bits(0x3f31_7200)), x),
    );
    let u = l.mul(b, b);
    let j = l.fma(
        l.fma(
            l.splat(f32::from_bits(0x3c07_2010)),
            b,
            l.splat(f32::from_bits(0x3d2b_9f17)),
        ),
        u,
        l.fma(
            l.splat(f32::from_bits(0x3e2a_af33)),
            b,
            l.splat(f32::from_bits(0x3eff_fedb)),
        ),
    );
    let j = l.fma(
        j,
        u,
        l.fma(l.splat(f32::from_bits(0x3f7f_fff6)), b, l.splat(1.0)),
    );
    let big = l.gt(l.abs(n), l.splat(192.0));
    let far = l.select(l.le(n, l.zero()), l.zero(), l.splat(f32::INFINITY));
    l.select(big, far, l.scalef(j, n))
}

/// [`scalar::silu_poly`] lane-wise.
#[inline(always)]
pub(crate) fn silu_poly<L: Lanes>(l: L, x: L::F) -> L::F {
    l.div(x, l.add(l.splat(1.0), expf_poly(l, l.sub(l.zero(), x))))
}

/// [`scalar::swiglu_inplace`].
#[inline(always)]
pub(crate) fn swiglu_inplace<L: Lanes>(l: L, gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let nv = n - n % 16;
    // Sixteen elements a step, all loaded before any is stored: the vectors' long dependency
    // chains (exp, division) overlap instead of each waiting for the store before it.
    for (g, u) in gate[..nv]
        .chunks_exact_mut(16)
        .zip(up[..nv].chunks_exact(16))
    {
        let mut v = [l.zero(); 16];
        for (k, v) in v[..per16::<L>()].iter_mut().enumerate() {
            *v = l.load(&g[k * L::W..]);
        }
        for (k, v) in v[..per16::<L>()].iter_mut().enumerate() {
            *v = l.mul(silu_poly(l, *v), l.load(&u[k * L::W..]));
        }
        for (k, v) in v[..per16::<L>()].iter().enumerate() {
            l.store(&mut g[k * L::W..], *v);
        }
    }
    for (g, &u) in gate[nv..n].iter_mut().zip(&up[nv..n]) {
        *g = scalar::silu(*g) * u;
    }
}

/// [`scalar::geglu_inplace`]: the f16 rounding and the selections in vectors, the table
/// lookups one lane at a time.
#[inline(always)]
pub(crate) fn geglu_inplace<L: Lanes>(l: L, gate: &mut [f32], up: &[f32]) {
    let table = scalar::gelu_table();
    let n = gate.len().min(up.len());
    let nv = n - n % L::W;
    let (lo, hi) = (l.splat(-10.0), l.splat(10.0));
    let mut h = [f16::ZERO; 16];
    let mut t = [f16::ZERO; 16];
    for (g, u) in gate[..nv]
        .chunks_exact_mut(L::W)
        .zip(up[..nv].chunks_exact(L::W))
    {
        let (x, u) = (l.load(g), l.load(u));
        l.store_h(&mut h, x);
        for (ti, hb) in t[..L::W].iter_mut().zip(&h[..L::W]) {
            *ti = table[hb.to_bits() as usize];
        }
        let y = l.select(
            l.le(x, lo),
            l.zero(),
            l.select(l.ge(x, hi), l.mul(x, u), l.mul(l.load_h(&t), u)),
        );
        l.store(g, y);
    }
    scalar::geglu_inplace(&mut gate[nv..n], &up[nv..n]);
}

/// [`scalar::soft_max_exp`].
#[inline(always)]
pub(crate) fn soft_max_exp<L: Lanes>(l: L, x: &mut [f32], max: f32) -> f64 {
    let n = x.len();
    let nv = n - n % 16;
    let m = l.splat(max);
    let mut sum = 0f64;
    for c in x[..nv].chunks_exact_mut(16) {
        let mut v = [l.zero(); 4];
        for (k, part) in c.chunks_exact_mut(L::W).enumerate() {
            let e = expf_poly(l, l.sub(l.load(part), m));
            l.store(part, e);
            v[k] = e;
        }
        sum += l.reduce16(&v[..per16::<L>()]) as f64;
    }
    for xi in x[nv..].iter_mut() {
        *xi = (*xi - max).exp();
        sum += *xi as f64;
    }
    sum
}

/// `out = (x * scale) * w`.
#[inline(always)]
fn scale_mul<L: Lanes>(l: L, x: &[f32], scale: f32, w: &[f32], out: &mut [f32]) {
    let n = x.len().min(w.len()).min(out.len());
    let nv = n - n % L::W;
    let s = l.splat(scale);
    for ((xi, wi), oi) in x[..nv]
        .chunks_exact(L::W)
        .zip(w[..nv].chunks_exact(L::W))
        .zip(out[..nv].chunks_exact_mut(L::W))
    {
        l.store(oi, l.mul(l.mul(l.load(xi), s), l.load(wi)));
    }
    for i in nv..n {
        out[i] = x[i] * scale * w[i];
    }
}

/// `x = (x * scale) * w`.
#[inline(always)]
fn scale_mul_inplace<L: Lanes>(l: L, x: &mut [f32], scale: f32, w: &[f32]) {
    let n = x.len().min(w.len());
    let nv = n - n % L::W;
    let s = l.splat(scale);
    for (xi, wi) in x[..nv]
        .chunks_exact_mut(L::W)
        .zip(w[..nv].chunks_exact(L::W))
    {
        let y = l.mul(l.mul(l.load(xi), s), l.load(wi));
        l.store(xi, y);
    }
    for i in nv..n {
        x[i] = x[i] * scale * w[i];
    }
}

/// `1 / sqrt(mean + eps)` from the f64 sum of squares of `n` values, as [`scalar::rms_scale`].
#[inline(always)]
fn rms_finish(sum: f64, n: usize, eps: f32) -> f32 {
    let mean = (sum / n as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// The f64 sum of squares, in order (a dependent chain: this is what bounds RMSNorm).
#[inline(always)]
fn sum_sq(x: &[f32]) -> f64 {
    let mut s = 0f64;
    for &v in x {
        s += (v * v) as f64;
    }
    s
}

/// [`scalar::rms_norm`].
#[inline(always)]
pub(crate) fn rms_norm<L: Lanes>(l: L, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_finish(sum_sq(x), x.len(), eps);
    scale_mul(l, x, scale, w, out);
}

/// [`scalar::rms_norm_inplace`].
#[inline(always)]
pub(crate) fn rms_norm_inplace<L: Lanes>(l: L, x: &mut [f32], w: &[f32], eps: f32) {
    let scale = rms_finish(sum_sq(x), x.len(), eps);
    scale_mul_inplace(l, x, scale, w);
}

/// [`scalar::rms_norm_rows`]. Each row's sum stays one sequential chain; four rows' chains are
/// interleaved so that they overlap in the pipeline.
#[inline(always)]
pub(crate) fn rms_norm_rows<L: Lanes>(
    l: L,
    x: &[f32],
    w: &[f32],
    eps: f32,
    cols: usize,
    out: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let rows = (x.len() / cols).min(out.len() / cols);
    let mut r = 0;
    while r + 4 <= rows {
        let xs = &x[r * cols..(r + 4) * cols];
        let (a, rest) = xs.split_at(cols);
        let (b, rest) = rest.split_at(cols);
        let (c, d) = rest.split_at(cols);
        let mut s = [0f64; 4];
        for (((&va, &vb), &vc), &vd) in a.iter().zip(b).zip(c).zip(d) {
            s[0] += (va * va) as f64;
            s[1] += (vb * vb) as f64;
            s[2] += (vc * vc) as f64;
            s[3] += (vd * vd) as f64;
        }
        for (k, row) in [a, b, c, d].into_iter().enumerate() {
            let o = &mut out[(r + k) * cols..(r + k + 1) * cols];
            scale_mul(l, row, rms_finish(s[k], cols, eps), w, o);
        }
        r += 4;
    }
    for r in r..rows {
        rms_norm(
            l,
            &x[r * cols..(r + 1) * cols],
            w,
            eps,
            &mut out[r * cols..(r + 1) * cols],
        );
    }
}

/// [`scalar::rope_pairs`] (the two fused multiply-adds per pair inline as instructions).
#[inline(always)]
pub(crate) fn rope_pairs<L: Lanes>(_l: L, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let n = cos.len().min(sin.len()).min(x.len() / 2);
    for ((p, &c), &s) in x[..2 * n].chunks_exact_mut(2).zip(cos).zip(sin) {
        let (a, b) = (p[0], p[1]);
        p[0] = a.mul_add(c, -(b * s));
        p[1] = a.mul_add(s, b * c);
    }
}

/// [`scalar::rope_halves`].
#[inline(always)]
pub(crate) fn rope_halves<L: Lanes>(l: L, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    assert!(sin.len() >= half && x.len() >= 2 * half);
    let (lo, hi) = x[..2 * half].split_at_mut(half);
    let nv = half - half % L::W;
    for i in (0..nv).step_by(L::W) {
        let (a, b) = (l.load(&lo[i..]), l.load(&hi[i..]));
        let (c, s) = (l.load(&cos[i..]), l.load(&sin[i..]));
        l.store(&mut lo[i..], l.fma(a, c, l.neg(l.mul(b, s))));
        l.store(&mut hi[i..], l.fma(a, s, l.mul(b, c)));
    }
    for i in nv..half {
        let (a, b) = (lo[i], hi[i]);
        lo[i] = a.mul_add(cos[i], -(b * sin[i]));
        hi[i] = a.mul_add(sin[i], b * cos[i]);
    }
}

/// [`scalar::to_f16`].
#[inline(always)]
pub(crate) fn to_f16<L: Lanes>(l: L, x: &[f32], out: &mut [f16]) {
    let n = x.len().min(out.len());
    let nv = n - n % L::W;
    for (xi, oi) in x[..nv]
        .chunks_exact(L::W)
        .zip(out[..nv].chunks_exact_mut(L::W))
    {
        l.store_h(oi, l.load(xi));
    }
    scalar::to_f16(&x[nv..n], &mut out[nv..n]);
}

/// [`scalar::from_f16`].
#[inline(always)]
pub(crate) fn from_f16<L: Lanes>(l: L, x: &[f16], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let nv = n - n % L::W;
    for (xi, oi) in x[..nv]
        .chunks_exact(L::W)
        .zip(out[..nv].chunks_exact_mut(L::W))
    {
        l.store(oi, l.load_h(xi));
    }
    scalar::from_f16(&x[nv..n], &mut out[nv..n]);
}

/// `out = f32(f16(x))`.
#[inline(always)]
pub(crate) fn round_f16<L: Lanes>(l: L, x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let nv = n - n % L::W;
    for (xi, oi) in x[..nv]
        .chunks_exact(L::W)
        .zip(out[..nv].chunks_exact_mut(L::W))
    {
        l.store(oi, l.round_h(l.load(xi)));
    }
    for i in nv..n {
        out[i] = f16::from_f32(x[i]).to_f32();
    }
}

/// [`scalar::add_inplace`].
#[inline(always)]
pub(crate) fn add_inplace<L: Lanes>(l: L, y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let nv = n - n % L::W;
    for (yi, xi) in y[..nv]
        .chunks_exact_mut(L::W)
        .zip(x[..nv].chunks_exact(L::W))
    {
        let s = l.add(l.load(yi), l.load(xi));
        l.store(yi, s);
    }
    for i in nv..n {
        y[i] += x[i];
    }
}

/// [`scalar::scale`].
#[inline(always)]
pub(crate) fn scale<L: Lanes>(l: L, x: &mut [f32], a: f32) {
    let nv = x.len() - x.len() % L::W;
    let s = l.splat(a);
    for xi in x[..nv].chunks_exact_mut(L::W) {
        let y = l.mul(l.load(xi), s);
        l.store(xi, y);
    }
    for v in &mut x[nv..] {
        *v *= a;
    }
}

/// [`scalar::scale_into`].
#[inline(always)]
pub(crate) fn scale_into<L: Lanes>(l: L, x: &[f32], a: f32, out: &mut [f32]) {
    let n = x.len().min(out.len());
    let nv = n - n % L::W;
    let s = l.splat(a);
    for (xi, oi) in x[..nv]
        .chunks_exact(L::W)
        .zip(out[..nv].chunks_exact_mut(L::W))
    {
        l.store(oi, l.mul(l.load(xi), s));
    }
    for i in nv..n {
        out[i] = x[i] * a;
    }
}

/// [`scalar::merge_scaled`].
#[inline(always)]
pub(crate) fn merge_scaled<L: Lanes>(l: L, acc: &mut [f32], a: f32, x: &[f32], b: f32) {
    let n = acc.len().min(x.len());
    let nv = n - n % L::W;
    let (va, vb) = (l.splat(a), l.splat(b));
    for (yi, xi) in acc[..nv]
        .chunks_exact_mut(L::W)
        .zip(x[..nv].chunks_exact(L::W))
    {
        let y = l.fma(l.load(yi), va, l.mul(l.load(xi), vb));
        l.store(yi, y);
    }
    for i in nv..n {
        acc[i] = acc[i].mul_add(a, x[i] * b);
    }
}

/// One operand of [`dot64`]: f32 values, or f16 values widened on load.
pub(crate) trait DotRow: Copy {
    fn vec<L: Lanes>(self, l: L, i: usize) -> L::F;
    fn at(self, i: usize) -> f32;
}

impl DotRow for &[f32] {
    #[inline(always)]
    fn vec<L: Lanes>(self, l: L, i: usize) -> L::F {
        l.load(&self[i..])
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self[i]
    }
}

impl DotRow for &[f16] {
    #[inline(always)]
    fn vec<L: Lanes>(self, l: L, i: usize) -> L::F {
        l.load_h(&self[i..])
    }
    #[inline(always)]
    fn at(self, i: usize) -> f32 {
        self[i].to_f32()
    }
}

/// [`scalar::dot_f16`] over the first `n` elements, `x` given as f16 or as f16 values held in
/// f32: 64 lanes of `fma(x, y, lane)`, the lanes folded as the reference folds them, the tail
/// in f64.
#[inline(always)]
pub(crate) fn dot64<L: Lanes, X: DotRow>(l: L, n: usize, x: X, y: &[f16]) -> f32 {
    let y = &y[..n];
    let np = n - n % 64;
    let nw = 64 / L::W;
    let q = per16::<L>();
    let mut acc = [l.zero(); 16];
    let mut c = 0;
    while c < np {
        for k in 0..nw {
            let i = c + k * L::W;
            acc[k] = l.fma(x.vec(l, i), l.load_h(&y[i..]), acc[k]);
        }
        c += 64;
    }
    let mut v = [l.zero(); 4];
    for k in 0..q {
        v[k] = l.add(
            l.add(acc[k], acc[k + 2 * q]),
            l.add(acc[k + q], acc[k + 3 * q]),
        );
    }
    let mut sum = l.reduce16(&v[..q]) as f64;
    for i in np..n {
        sum += (x.at(i) * y[i].to_f32()) as f64;
    }
    sum as f32
}

/// [`scalar::dot_f16`].
#[inline(always)]
pub(crate) fn dot_f16<L: Lanes>(l: L, x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    dot64(l, n, &x[..n], y)
}
