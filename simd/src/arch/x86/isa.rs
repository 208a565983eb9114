//! The few integer primitives in which the AVX2 and the AVX-512 VNNI kernels differ.
//!
//! Every x86 dot product is written once, generic over an [`Isa`], and instantiated for both
//! levels inside a `#[target_feature]` entry point (see `mod.rs`), into which everything here is
//! inlined. The primitives return exact integers either way, so both levels give the same bits;
//! VNNI only needs fewer instructions (`vpdpbusd` sums four byte products straight into a 32-bit
//! lane, where AVX2 needs `vpmaddubsw` + `vpmaddwd` + `vpaddd`).

use super::util::bits_to_bytes;
use std::arch::x86_64::*;

/// An instruction set the generic kernels can be instantiated for.
///
/// # Safety
/// The methods may only be called on a CPU with the implementation's target features (all of
/// them imply AVX2, FMA and F16C).
pub(super) trait Isa {
    /// Whether the 512-bit kernels (AVX-512 F/BW/VNNI on `zmm`) may be used.
    const ZMM: bool;
    /// `acc + Σ u·s` over each group of four bytes (32-bit lane `l` gets bytes `4l..4l+4`), for
    /// unsigned bytes `u` and signed bytes `s` with every adjacent pair `u₀s₀ + u₁s₁` within
    /// `i16` (true for `u ≤ 31`, or `u ≤ 128` with `s ≠ -128`): then the result is exact.
    unsafe fn dot_u8_i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
    /// The weight operand of [`Isa::i8_dot`] for 32 signed weight bytes.
    unsafe fn i8_weights(w: __m256i) -> __m256i;
    /// The activation-side term of [`Isa::i8_dot`] for 32 signed activation bytes (shared by
    /// every weight row the activation block meets).
    unsafe fn i8_corr(a: __m256i) -> __m256i;
    /// The exact quad sums `Σ w·a` of signed weights `w` (given as [`Isa::i8_weights`]) and
    /// signed activations `a` (never -128), with `corr = i8_corr(a)`.
    unsafe fn i8_dot(corr: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// Byte `i` is `v` where bit `i` of `bits` is set, else 0.
    unsafe fn bit_bytes(bits: u32, v: i8) -> __m256i;
}

/// AVX2 + FMA + F16C.
pub(super) struct Avx2;

impl Isa for Avx2 {
    const ZMM: bool = false;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_u8_i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(u, s);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn i8_weights(w: __m256i) -> __m256i {
        w
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn i8_corr(_a: __m256i) -> __m256i {
        _mm256_setzero_si256()
    }

    /// `|w|` goes to the unsigned side and `w`'s sign onto `a`, so the `maddubs` pairs stay
    /// within `2·128·127` (`|-128|` is 128 as an unsigned byte).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn i8_dot(_corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn bit_bytes(bits: u32, v: i8) -> __m256i {
        _mm256_and_si256(bits_to_bytes(bits), _mm256_set1_epi8(v))
    }
}

/// AVX2 plus AVX-512 F/BW/VL and AVX-512 VNNI, on 256-bit vectors (on Zen 4 a 512-bit operation
/// costs two 256-bit ones, and the 32 vector registers of AVX-512 come with VL at any width).
pub(super) struct Vnni;

impl Isa for Vnni {
    const ZMM: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot_u8_i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }

    /// `w + 128` as an unsigned byte.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn i8_weights(w: __m256i) -> __m256i {
        _mm256_xor_si256(w, _mm256_set1_epi8(-128))
    }

    /// `-128·Σa` per quad.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn i8_corr(a: __m256i) -> __m256i {
        let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), a);
        _mm256_sub_epi32(_mm256_setzero_si256(), s)
    }

    /// `Σ (w + 128)·a - 128·Σa`: every term within `i32`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn i8_dot(corr: __m256i, w: __m256i, a: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(corr, w, a)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn bit_bytes(bits: u32, v: i8) -> __m256i {
        _mm256_maskz_mov_epi8(bits, _mm256_set1_epi8(v))
    }
}
