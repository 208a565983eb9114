//! x86-64 [`Lanes`]: AVX2 + FMA + F16C (8 lanes) and AVX-512 F/BW/VL (16 lanes), the vectors the
//! elementwise and attention kernels ([`crate::vec`]) are written over.
//!
//! `vscalefps` (AVX-512) is what llama.cpp's vector `expf` ends with; on AVX2 the same single
//! rounding of `j * 2^n` is made of two exact-or-once-rounded multiplications (see
//! [`Avx2::scalef`](Lanes::scalef)).

use crate::vec::lanes::Lanes;
use half::f16;
use std::arch::x86_64::*;

/// Round to nearest, ties to even (the rounding-control immediate of `vcvtps2ph`).
const RNE: i32 = _MM_FROUND_TO_NEAREST_INT;

/// Proof that the CPU has AVX2, FMA and F16C.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Avx2 {
        Avx2(())
    }
}

/// Proof that the CPU has AVX-512 F/BW/VL, AVX2, FMA and F16C.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VL, AVX2, FMA and F16C.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Avx512 {
        Avx512(())
    }
}

/// `(int32(n) + 127) << 23` as a float: `2^n` for integral `n` in `[-126, 127]`.
#[inline(always)]
fn pow2_256(n: __m256) -> __m256 {
    // SAFETY: only reached from `Avx2`'s methods, whose token proves AVX2.
    unsafe {
        let e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
    }
}

// SAFETY (every `unsafe` block in this impl): a value of `Avx2` exists only where the CPU has
// AVX2, FMA and F16C (see `Avx2::new`), which is all these intrinsics need; the loads and stores
// touch `W` elements of slices first checked (by slicing) to hold them.
impl Lanes for Avx2 {
    const W: usize = 8;
    type F = __m256;
    type M = __m256;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        let s = &s[..8];
        // SAFETY: see the impl; `s` holds 8 floats.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        let s = &mut s[..8];
        // SAFETY: see the impl; `s` holds 8 floats.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_h(self, s: &[f16]) -> __m256 {
        let s = &s[..8];
        // SAFETY: see the impl; `s` holds 8 halves (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast())) }
    }
    #[inline(always)]
    fn store_h(self, s: &mut [f16], v: __m256) {
        let s = &mut s[..8];
        // SAFETY: see the impl; `s` holds 8 halves (16 bytes).
        unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), _mm256_cvtps_ph::<RNE>(v)) }
    }
    #[inline(always)]
    fn round_h(self, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cvtph_ps(_mm256_cvtps_ph::<RNE>(v)) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fnma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg(self, a: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_xor_ps(a, _mm256_set1_ps(-0.0)) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn max(self, x: __m256, acc: __m256) -> __m256 {
        // `vmaxps` returns its second operand when either is NaN.
        // SAFETY: see the impl.
        unsafe { _mm256_max_ps(x, acc) }
    }
    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    /// `(j * 2^n1) * 2^(n - n1)` with `n1 = clamp(n, -100, 100)`: for `|n| <= 100` the second
    /// factor is 1 and the first product exact (`j` in `[0.5, 2)` keeps it normal); beyond, the
    /// first product is exact and normal and the second rounds once, to a subnormal, zero or
    /// infinity as `vscalefps` does.
    #[inline(always)]
    fn scalef(self, j: __m256, n: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let n1 = _mm256_min_ps(
                _mm256_max_ps(n, _mm256_set1_ps(-100.0)),
                _mm256_set1_ps(100.0),
            );
            let n2 = _mm256_sub_ps(n, n1);
            _mm256_mul_ps(_mm256_mul_ps(j, pow2_256(n1)), pow2_256(n2))
        }
    }
    #[inline(always)]
    fn reduce16(self, v: &[__m256]) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let t = _mm256_add_ps(v[1], v[0]);
            let u = _mm_add_ps(_mm256_extractf128_ps::<1>(t), _mm256_castps256_ps128(t));
            let p = _mm_add_ps(_mm_movehl_ps(u, u), u);
            _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<0b01>(p, p)))
        }
    }
}

// SAFETY (every `unsafe` block in this impl): a value of `Avx512` exists only where the CPU has
// AVX-512 F/BW/VL, AVX2, FMA and F16C (see `Avx512::new`), which is all these intrinsics need;
// the loads and stores touch `W` elements of slices first checked (by slicing) to hold them.
impl Lanes for Avx512 {
    const W: usize = 16;
    type F = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: see the impl; `s` holds 16 floats.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        let s = &mut s[..16];
        // SAFETY: see the impl; `s` holds 16 floats.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn load_h(self, s: &[f16]) -> __m512 {
        let s = &s[..16];
        // SAFETY: see the impl; `s` holds 16 halves (32 bytes).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast())) }
    }
    #[inline(always)]
    fn store_h(self, s: &mut [f16], v: __m512) {
        let s = &mut s[..16];
        // SAFETY: see the impl; `s` holds 16 halves (32 bytes).
        unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), _mm512_cvtps_ph::<RNE>(v)) }
    }
    #[inline(always)]
    fn round_h(self, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_cvtph_ps(_mm512_cvtps_ph::<RNE>(v)) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn fnma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg(self, a: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(a),
                _mm512_set1_epi32(i32::MIN),
            ))
        }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn max(self, x: __m512, acc: __m512) -> __m512 {
        // `vmaxps` returns its second operand when either is NaN.
        // SAFETY: see the impl.
        unsafe { _mm512_max_ps(x, acc) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mask_blend_ps(m, b, a) }
    }
    #[inline(always)]
    fn scalef(self, j: __m512, n: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_scalef_ps(j, n) }
    }
    /// GCC's `_mm512_reduce_add_ps`: upper 256 + lower 256, upper 128 + lower 128, then
    /// `(u0 + u2) + (u1 + u3)`.
    #[inline(always)]
    fn reduce16(self, v: &[__m512]) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let x = v[0];
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)));
            let t = _mm256_add_ps(hi, _mm512_castps512_ps256(x));
            let u = _mm_add_ps(_mm256_extractf128_ps::<1>(t), _mm256_castps256_ps128(t));
            let p = _mm_add_ps(_mm_movehl_ps(u, u), u);
            _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps::<0b01>(p, p)))
        }
    }
}
