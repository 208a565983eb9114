//! The x86 building blocks every kernel shares: the few integer primitives in which the AVX2
//! and the AVX-512 VNNI kernels differ ([`Isa`]), bounds-checked loads and stores, f16
//! conversions and horizontal sums.
//!
//! Every x86 dot product is written once, generic over an [`Isa`], and instantiated for both
//! levels inside a `#[target_feature]` entry point (see `mod.rs`), into which everything here is
//! inlined. The primitives return exact integers either way, so both levels give the same bits;
//! VNNI only needs fewer instructions (`vpdpbusd` sums four byte products straight into a 32-bit
//! lane, where AVX2 needs `vpmaddubsw` + `vpmaddwd` + `vpaddd`).
//!
//! The loads take references to fixed-size arrays, so every load is in bounds by its type.

use half::f16;
use std::arch::x86_64::*;

/// An instruction set the generic kernels can be instantiated for.
///
/// # Safety
/// The methods may only be called on a CPU with the implementation's target features (all of
/// them imply AVX2, FMA and F16C).
pub(crate) trait Isa {
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
pub(crate) struct Avx2;

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
pub(crate) struct Vnni;

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

/// 16 bytes as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// 32 bytes as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_256(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// 32 signed bytes as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_256_i8(b: &[i8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// 16 `i16` as a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_256_i16(b: &[i16; 16]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// 8 bytes into the low half of a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_64(b: &[u8; 8]) -> __m128i {
    _mm_set_epi64x(0, i64::from_le_bytes(*b))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load_f32x8(v: &[f32; 8]) -> __m256 {
    // SAFETY: `v` is 8 readable floats; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn store_f32x8(o: &mut [f32; 8], v: __m256) {
    // SAFETY: `o` is 8 writable floats; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn store_256(o: &mut [u8; 32], v: __m256i) {
    // SAFETY: `o` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn store_128(o: &mut [u8; 16], v: __m128i) {
    // SAFETY: `o` is 16 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), v) }
}

// f16 scales are converted as broadcasts with every lane used, or (for a scalar) from a vector
// whose other lanes are defined zeros. Converting one value into lane 0 of an otherwise "don't
// care" vector lets LLVM pick any live register for the other lanes, and it picked the
// accumulator: each block's scale then waited for the previous block's FMA, which serialised the
// dot-product loops (half the speed).

/// An f16 as f32 (exact), converted from a vector whose other lanes are zero.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_to_f32(h: f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32)))
}

/// An f16 in all 8 lanes, as f32 (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_splat(h: f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(h.to_bits() as i16))
}

/// Two f16 as f32 in alternating lanes: `[a, b, a, b, a, b, a, b]` (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_pair(a: f16, b: f16) -> __m256 {
    let bits = a.to_bits() as u32 | ((b.to_bits() as u32) << 16);
    _mm256_cvtph_ps(_mm_set1_epi32(bits as i32))
}

/// Lane 0 of each pair of `[a, b, a, b, ...]` in all lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn even_lanes(v: __m256) -> __m256 {
    _mm256_permute_ps::<0b00_00_00_00>(v)
}

/// Lane 1 of each pair of `[a, b, a, b, ...]` in all lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn odd_lanes(v: __m256) -> __m256 {
    _mm256_permute_ps::<0b01_01_01_01>(v)
}

/// Lane `i` of `v` in all lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn lane(v: __m256, i: usize) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i as i32))
}

/// 8 bytes (unsigned) to 8 f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn u8x8_to_f32(b: &[u8; 8]) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(load_64(b)))
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32x8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// Sum of the 4 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32x4(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Sum of the 4 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_i32x4(v: __m128i) -> i32 {
    let s = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_i32x8(v: __m256i) -> i32 {
    hsum_i32x4(_mm_add_epi32(
        _mm256_castsi256_si128(v),
        _mm256_extracti128_si256::<1>(v),
    ))
}

/// The 32 nibbles of 16 packed bytes, in ggml's element order: the low nibbles (elements 0..16)
/// in the low lane, the high nibbles (elements 16..32) in the high lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn nibbles_32(qs: &[u8; 16]) -> __m256i {
    let q = load_128(qs);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// 32 bits to 32 bytes: byte `i` is 0xFF if bit `i` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn bits_to_bytes(bits: u32) -> __m256i {
    // Byte i takes source byte i / 8 of the broadcast word, then tests its bit i % 8.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
}
