//! Building blocks shared by the aarch64 kernels: the 16-byte integer dot product (SDOT, or its
//! emulation with widening multiplies), fp16 conversions through the base-ISA `fcvt` family, and
//! small vector helpers.
//!
//! Stable Rust has no SDOT intrinsic (`vdotq_s32` is unstable) and no fp16 vector types, so those
//! instructions are written as inline assembly. All of them operate on registers only.

use core::arch::aarch64::*;
use core::arch::asm;

/// A 16-byte signed integer dot product accumulated into four i32 lanes, **lane by lane**: lane
/// `l` gains exactly `Σ_{k<4} a[4l+k]·b[4l+k]` (the quad sums of [`crate::formats`]), which
/// is what SDOT does and what llama.cpp's x86 kernels leave in their 32-bit lanes. The exact
/// kernels depend on it: they convert these per-lane integers to f32 one lane at a time.
pub(crate) trait Dot {
    /// `acc` plus the quad sums of `a·b`, for any bytes.
    ///
    /// # Safety
    /// The CPU must support the instructions of the implementation (see each type).
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;

    /// As [`Dot::dot`], for `a` in `-127..=127` (the weight quants of every format but Q8_0),
    /// which lets the emulation add product pairs in 16 bits.
    ///
    /// # Safety
    /// As [`Dot::dot`].
    #[inline(always)]
    unsafe fn dot_small(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        Self::dot(acc, a, b)
    }

    /// `acc` plus the quad sums of `a` times the four bytes of 32-bit lane `L` of `b` (repeated):
    /// the by-element SDOT, where the four lanes of `a` are four weight rows. `SMALL`: `a` is in
    /// `-127..=127` (as [`Dot::dot_small`]).
    ///
    /// # Safety
    /// As [`Dot::dot`].
    #[inline(always)]
    unsafe fn dot_lane<const L: i32, const SMALL: bool>(
        acc: int32x4_t,
        a: int8x16_t,
        b: int8x16_t,
    ) -> int32x4_t {
        let b = vreinterpretq_s8_s32(vdupq_laneq_s32::<L>(vreinterpretq_s32_s8(b)));
        if SMALL {
            Self::dot_small(acc, a, b)
        } else {
            Self::dot(acc, a, b)
        }
    }
}

/// [`Dot::dot_lane`] with the lane as a value (it folds to a constant once the caller's loops are
/// unrolled).
#[inline(always)]
pub(crate) unsafe fn dot_lane<D: Dot, const SMALL: bool>(
    acc: int32x4_t,
    a: int8x16_t,
    b: int8x16_t,
    lane: usize,
) -> int32x4_t {
    match lane & 3 {
        0 => D::dot_lane::<0, SMALL>(acc, a, b),
        1 => D::dot_lane::<1, SMALL>(acc, a, b),
        2 => D::dot_lane::<2, SMALL>(acc, a, b),
        _ => D::dot_lane::<3, SMALL>(acc, a, b),
    }
}

/// `for $i in 0..$n { $body }` for a constant `$n <= 4`, unrolled in the source: every copy of
/// the body sees `$i` as a literal, so arrays indexed by it live in registers and lane-indexed
/// instructions get constant lanes, whatever LLVM's unroller decides for larger bodies.
macro_rules! unroll4 {
    ($i:ident in 0..$n:expr => $body:block) => {{
        const { assert!($n <= 4) };
        if 0 < $n {
            let $i: usize = 0;
            $body
        }
        if 1 < $n {
            let $i: usize = 1;
            $body
        }
        if 2 < $n {
            let $i: usize = 2;
            $body
        }
        if 3 < $n {
            let $i: usize = 3;
            $body
        }
    }};
}
pub(crate) use unroll4;

/// [`unroll4`] for a constant `$n <= 8`.
macro_rules! unroll8 {
    ($i:ident in 0..$n:expr => $body:block) => {{
        const { assert!($n <= 8) };
        $crate::arch::aarch64::simd::unroll4!(k in 0..4 => {
            if k < $n {
                let $i: usize = k;
                $body
            }
        });
        $crate::arch::aarch64::simd::unroll4!(k in 0..4 => {
            if k + 4 < $n {
                let $i: usize = k + 4;
                $body
            }
        });
    }};
}
pub(crate) use unroll8;

/// SDOT (`FEAT_DotProd`). Only valid where `is_aarch64_feature_detected!("dotprod")`.
pub(crate) struct Sdot;

/// Plain Advanced SIMD: widening multiplies into i16, then pairwise additions into the quads.
pub(crate) struct Emul;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        sdot(acc, a, b)
    }

    #[inline(always)]
    unsafe fn dot_lane<const L: i32, const SMALL: bool>(
        acc: int32x4_t,
        a: int8x16_t,
        b: int8x16_t,
    ) -> int32x4_t {
        sdot_lane::<L>(acc, a, b)
    }
}

impl Dot for Emul {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // Products p0..p15 (each fits i16); pairs widened to i32 before any sum, since two
        // products of -128·-128 overflow an i16; then adjacent pairs make the quads.
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
    }

    #[inline(always)]
    unsafe fn dot_small(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // With |a| <= 127 and |b| <= 128 a pair of products is at most 32512 in magnitude: the
        // pairs fit i16, and the pairwise accumulate widens them into the quads.
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpadalq_s16(acc, vpaddq_s16(lo, hi))
    }
}

/// `acc + sdot(a, b)`: lane `l` gains `sum(a[4l + k] * b[4l + k], k = 0..4)`.
///
/// # Safety
/// The CPU must implement `FEAT_DotProd`; call it only from code chosen after
/// `is_aarch64_feature_detected!("dotprod")`.
#[inline(always)]
pub(crate) unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// By-element SDOT: lane `l` of `acc` gains `sum(a[4l + k] * b[4L + k], k = 0..4)`, i.e. the
/// four bytes of 32-bit lane `L` of `b` are broadcast against every lane of `a`.
///
/// # Safety
/// As [`sdot`]: the CPU must implement `FEAT_DotProd`.
#[inline(always)]
pub(crate) unsafe fn sdot_lane<const L: i32>(
    mut acc: int32x4_t,
    a: int8x16_t,
    b: int8x16_t,
) -> int32x4_t {
    const { assert!(L >= 0 && L < 4) };
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[{l}]",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        l = const L,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// One IEEE half (as its bits) to f32 with the scalar `fcvt` of the base FP ISA (no `fp16`
/// extension needed). Exact, like every f16 → f32 conversion.
#[inline(always)]
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let out: f32;
    // SAFETY: `fcvt s, h` is in the aarch64 base ISA (FP is mandatory on the targets Rust supports
    // for aarch64 Linux); it touches only the two registers named.
    unsafe {
        asm!(
            "fcvt {o:s}, {i:h}",
            o = lateout(vreg) out,
            i = in(vreg) bits,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// One f32 to IEEE half bits with the scalar `fcvt`, rounding to nearest even (FPCR's default
/// mode, which Rust code never changes), as `half::f16::from_f32` does.
#[inline(always)]
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let out: u16;
    // SAFETY: `fcvt h, s` is in the aarch64 base ISA; it touches only the two registers named.
    unsafe {
        asm!(
            "fcvt {o:h}, {i:s}",
            o = lateout(vreg) out,
            i = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Four halves to four f32 (`fcvtl`), exact.
#[inline(always)]
pub(crate) fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` is base Advanced SIMD; registers only.
    unsafe {
        asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The upper four halves of eight to f32 (`fcvtl2`), exact.
#[inline(always)]
pub(crate) fn f16x8_high_to_f32(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl2` is base Advanced SIMD; registers only.
    unsafe {
        asm!(
            "fcvtl2 {o:v}.4s, {i:v}.8h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Four f32 to four halves (`fcvtn`), rounding to nearest even (FPCR's default mode, which Rust
/// code never changes; the same rounding as `half::f16::from_f32`).
#[inline(always)]
pub(crate) fn f32x4_to_f16(v: float32x4_t) -> uint16x4_t {
    let out: uint16x4_t;
    // SAFETY: `fcvtn` is base Advanced SIMD; registers only.
    unsafe {
        asm!(
            "fcvtn {o:v}.4h, {i:v}.4s",
            o = lateout(vreg) out,
            i = in(vreg) v,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Eight f32 to eight halves (`fcvtn` + `fcvtn2`), rounding to nearest even as FPCR's default
/// mode does (and as `half::f16::from_f32` does).
#[inline(always)]
pub(crate) fn f32x8_to_f16(lo: float32x4_t, hi: float32x4_t) -> uint16x8_t {
    let out: uint16x8_t;
    // SAFETY: `fcvtn`/`fcvtn2` are base Advanced SIMD; registers only. `fcvtn` writes the low half
    // and zeroes the high half, `fcvtn2` then writes the high half keeping the low one.
    unsafe {
        asm!(
            "fcvtn {o:v}.4h, {lo:v}.4s",
            "fcvtn2 {o:v}.8h, {hi:v}.4s",
            o = out(vreg) out,
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// The horizontal sum of each of four vectors, as the four lanes of one vector (exact).
#[inline(always)]
pub(crate) unsafe fn rowsum4(a: int32x4_t, b: int32x4_t, c: int32x4_t, d: int32x4_t) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d))
}

/// Where the kernels that keep one accumulator per output put the outputs of an `R × T` tile:
/// output `(t, r)` is lane `(t·R + r) % 4` of vector `(t·R + r) / 4`, so `R·T` outputs fill
/// `ceil(R·T / 4)` vectors (at most `T`, as `R <= 4`).
#[inline(always)]
pub(crate) const fn lane_vectors(r: usize, t: usize) -> usize {
    (r * t).div_ceil(4)
}

/// `v` with lane `lane` set to `x` (`lane` folds to a constant once loops are unrolled).
#[inline(always)]
pub(crate) unsafe fn set_lane(v: float32x4_t, x: f32, lane: usize) -> float32x4_t {
    match lane & 3 {
        0 => vsetq_lane_f32::<0>(x, v),
        1 => vsetq_lane_f32::<1>(x, v),
        2 => vsetq_lane_f32::<2>(x, v),
        _ => vsetq_lane_f32::<3>(x, v),
    }
}

/// Each output's integer vector (only the total of its lanes is meaningful) reduced to one lane,
/// in the output layout of [`lane_vectors`].
#[inline(always)]
pub(crate) unsafe fn totals_as_lanes<const R: usize, const T: usize>(
    v: &[[int32x4_t; R]; T],
) -> [int32x4_t; T] {
    let z = vdupq_n_s32(0);
    let get = |l: usize| if l < R * T { v[l / R][l % R] } else { z };
    let mut out = [z; T];
    unroll4!(k in 0..lane_vectors(R, T) => {
        out[k] = rowsum4(get(4 * k), get(4 * k + 1), get(4 * k + 2), get(4 * k + 3));
    });
    out
}

/// A value per row, broadcast to the lanes of that row's outputs.
#[inline(always)]
pub(crate) unsafe fn row_lanes<const R: usize, const T: usize>(x: &[f32; R]) -> [float32x4_t; T] {
    let mut out = [vdupq_n_f32(0.0); T];
    if R == 1 {
        out = [vdupq_n_f32(x[0]); T];
    } else {
        for l in 0..R * T {
            out[l / 4] = set_lane(out[l / 4], x[l % R], l % 4);
        }
    }
    out
}

/// [`row_lanes`] of the f16 at `p[r] + off`.
///
/// # Safety
/// Each `p[r] + off` must be valid for reading 2 bytes.
#[inline(always)]
pub(crate) unsafe fn row_lanes_f16<const R: usize, const T: usize>(
    p: &[*const u8; R],
    off: usize,
) -> [float32x4_t; T] {
    if R == 4 {
        // Four rows fill a vector: one gather and one conversion serve every token.
        [ld_f16_rows(p, off); T]
    } else {
        let mut x = [0f32; R];
        unroll4!(r in 0..R => {
            x[r] = ld_f16(p[r].add(off));
        });
        row_lanes(&x)
    }
}

/// A value per token, broadcast to the lanes of that token's outputs.
#[inline(always)]
pub(crate) unsafe fn tok_lanes<const R: usize, const T: usize>(y: &[f32; T]) -> [float32x4_t; T] {
    let mut out = [vdupq_n_f32(0.0); T];
    if R == 4 {
        unroll4!(t in 0..T => {
            out[t] = vdupq_n_f32(y[t]);
        });
    } else {
        for l in 0..R * T {
            out[l / 4] = set_lane(out[l / 4], y[l / R], l % 4);
        }
    }
    out
}

/// The outputs of an `R × T` tile from the lanes of [`lane_vectors`].
#[inline(always)]
pub(crate) unsafe fn lanes_out<const R: usize, const T: usize>(
    v: &[float32x4_t; T],
) -> [[f32; R]; T] {
    let mut all = [[0f32; 4]; T];
    unroll4!(k in 0..lane_vectors(R, T) => {
        vst1q_f32(all[k].as_mut_ptr(), v[k]);
    });
    let mut out = [[0f32; R]; T];
    unroll4!(t in 0..T => {
        unroll4!(r in 0..R => {
            let l = t * R + r;
            out[t][r] = all[l / 4][l % 4];
        });
    });
    out
}

/// Eight f32 lanes (`lo` = lanes 0..4, `hi` = lanes 4..8) reduced as llama.cpp's x86
/// `hsum_float_8`: `((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7))` ([`crate::formats::common::hsum8`]).
#[inline(always)]
pub(crate) unsafe fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    hsum4(vaddq_f32(lo, hi))
}

/// Four f32 lanes reduced as `(l0+l2) + (l1+l3)` ([`crate::formats::common::hsum4`]).
#[inline(always)]
pub(crate) unsafe fn hsum4(v: float32x4_t) -> f32 {
    let t = vaddq_f32(v, vextq_f32::<2>(v, v));
    vpadds_f32(vget_low_f32(t))
}

/// `acc + p · s[lane]` (lane-indexed multiply-accumulate; `lane` folds to a constant once the
/// caller's loops are unrolled).
#[inline(always)]
pub(crate) unsafe fn mla_lane(
    acc: int32x4_t,
    p: int32x4_t,
    s: int32x4_t,
    lane: usize,
) -> int32x4_t {
    match lane & 3 {
        0 => vmlaq_laneq_s32::<0>(acc, p, s),
        1 => vmlaq_laneq_s32::<1>(acc, p, s),
        2 => vmlaq_laneq_s32::<2>(acc, p, s),
        _ => vmlaq_laneq_s32::<3>(acc, p, s),
    }
}

/// `v`, unchanged, but opaque to the optimiser (an empty `asm!`, no instruction). Used on scale
/// vectors that feed lane-indexed `mla`: seeing that they are zero-extended bytes, LLVM would
/// otherwise rewrite each `mla v, p, s[i]` as a 16-bit `dup`, a widening and a full-vector `mla`.
#[inline(always)]
pub(crate) fn opaque(mut v: int32x4_t) -> int32x4_t {
    // SAFETY: the template is empty; the register is only named, never changed.
    unsafe {
        asm!("/* {v:v} */", v = inout(vreg) v, options(pure, nomem, nostack, preserves_flags));
    }
    v
}

/// Loads of 16 bytes that stay one `ldur` each. Neoverse-N1 dispatches four operations a cycle,
/// and as its scheduling model counts them, `ldur q` (unscaled offset) is one where `ldr q`
/// (scaled offset) is two and `ldp q` three; LLVM picks the latter two whenever an offset is a
/// multiple of 16. So the 16-byte pieces at `p + 16i` are loaded from a base of `p + 8`, opaque
/// to the optimiser, at offsets `16i - 8` (`i` from 0 to 16).
#[derive(Clone, Copy)]
pub(crate) struct Unscaled(*const u8);

impl Unscaled {
    /// Loads from `p`.
    #[inline(always)]
    pub(crate) fn new(p: *const u8) -> Unscaled {
        let mut b = p.wrapping_add(8);
        // SAFETY: the template is empty; the register is only named, never changed.
        unsafe {
            asm!("/* {b} */", b = inout(reg) b, options(pure, nomem, nostack, preserves_flags));
        }
        Unscaled(b)
    }

    /// The 16 bytes at `p + 16i`.
    ///
    /// # Safety
    /// They are readable.
    #[inline(always)]
    pub(crate) unsafe fn get(self, i: usize) -> uint8x16_t {
        vld1q_u8(self.0.wrapping_add(16 * i).wrapping_sub(8))
    }
}

/// `acc + v · d[lane]`, fused (lane-indexed `fmla`; `lane` folds to a constant once loops are
/// unrolled).
#[inline(always)]
pub(crate) unsafe fn fma_lane(
    acc: float32x4_t,
    v: float32x4_t,
    d: float32x4_t,
    lane: usize,
) -> float32x4_t {
    match lane & 3 {
        0 => vfmaq_laneq_f32::<0>(acc, v, d),
        1 => vfmaq_laneq_f32::<1>(acc, v, d),
        2 => vfmaq_laneq_f32::<2>(acc, v, d),
        _ => vfmaq_laneq_f32::<3>(acc, v, d),
    }
}

/// Lane `lane` of `v`.
#[inline(always)]
pub(crate) unsafe fn get_lane(v: float32x4_t, lane: usize) -> f32 {
    match lane & 3 {
        0 => vgetq_lane_f32::<0>(v),
        1 => vgetq_lane_f32::<1>(v),
        2 => vgetq_lane_f32::<2>(v),
        _ => vgetq_lane_f32::<3>(v),
    }
}

/// The f16 at byte pointer `p` (any alignment) as f32, exactly.
///
/// # Safety
/// `p` must be valid for reading 2 bytes.
#[inline(always)]
pub(crate) unsafe fn ld_f16(p: *const u8) -> f32 {
    f16_to_f32(u16::from_le((p as *const u16).read_unaligned()))
}

/// The f32 at byte pointer `p` (any alignment).
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[inline(always)]
pub(crate) unsafe fn ld_f32(p: *const u8) -> f32 {
    f32::from_bits(u32::from_le((p as *const u32).read_unaligned()))
}

/// The f16 at `p[r] + off` for `r < R` as the lanes of an f32 vector, zero in lanes `R..4`.
///
/// # Safety
/// Each `p[r] + off` must be valid for reading 2 bytes.
#[inline(always)]
pub(crate) unsafe fn ld_f16_rows<const R: usize>(p: &[*const u8; R], off: usize) -> float32x4_t {
    const { assert!(R >= 1 && R <= 4) };
    let mut h = [0u16; 4];
    unroll4!(r in 0..R => {
        h[r] = u16::from_le((p[r].add(off) as *const u16).read_unaligned());
    });
    f16x4_to_f32(vld1_u16(h.as_ptr()))
}

/// Sixteen signed bytes at byte pointer `p`.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[inline(always)]
pub(crate) unsafe fn ld_s8(p: *const u8) -> int8x16_t {
    vld1q_s8(p as *const i8)
}

/// Low nibbles of 16 bytes, as i8 (0..15).
#[inline(always)]
pub(crate) unsafe fn lo_nibbles(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)))
}

/// High nibbles of 16 bytes, as i8 (0..15).
#[inline(always)]
pub(crate) unsafe fn hi_nibbles(v: uint8x16_t) -> int8x16_t {
    vreinterpretq_s8_u8(vshrq_n_u8::<4>(v))
}

/// Sixteen i8 scaled to f32 (`q * d`, one rounding, as the scalar code) stored at `out`.
///
/// # Safety
/// `out` must be valid for writing 16 f32.
#[inline(always)]
pub(crate) unsafe fn store_i8_scaled(out: *mut f32, q: int8x16_t, d: f32) {
    let w0 = vmovl_s8(vget_low_s8(q));
    let w1 = vmovl_high_s8(q);
    let parts = [
        vmovl_s16(vget_low_s16(w0)),
        vmovl_high_s16(w0),
        vmovl_s16(vget_low_s16(w1)),
        vmovl_high_s16(w1),
    ];
    for (k, p) in parts.into_iter().enumerate() {
        vst1q_f32(out.add(4 * k), vmulq_n_f32(vcvtq_f32_s32(p), d));
    }
}

/// Sixteen u8 mapped to `q * d + m` (multiply, then add: two roundings, as the scalar code) at `out`.
///
/// # Safety
/// `out` must be valid for writing 16 f32.
#[inline(always)]
pub(crate) unsafe fn store_u8_affine(out: *mut f32, q: uint8x16_t, d: f32, m: f32) {
    let w0 = vmovl_u8(vget_low_u8(q));
    let w1 = vmovl_high_u8(q);
    let parts = [
        vmovl_u16(vget_low_u16(w0)),
        vmovl_high_u16(w0),
        vmovl_u16(vget_low_u16(w1)),
        vmovl_high_u16(w1),
    ];
    let m = vdupq_n_f32(m);
    for (k, p) in parts.into_iter().enumerate() {
        vst1q_f32(
            out.add(4 * k),
            vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(p), d), m),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bytes = [i8; 16];

    fn dot_ref(a: &Bytes, b: &Bytes) -> i32 {
        a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
    }

    /// `D::dot` from an accumulator of 7s: the lane sum minus the 28 it started with.
    #[inline(always)]
    unsafe fn lane_sum<D: Dot>(a: &Bytes, b: &Bytes) -> i32 {
        let acc = D::dot(vdupq_n_s32(7), vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr()));
        vaddvq_s32(acc) - 4 * 7
    }

    /// The emulation's lane sum, SDOT's lane sum, SDOT's four lanes and lane 3 of the by-element
    /// SDOT with lane 2 of `b`.
    #[target_feature(enable = "dotprod")]
    unsafe fn with_sdot(a: &Bytes, b: &Bytes) -> (i32, [i32; 4], i32) {
        let sum = lane_sum::<Sdot>(a, b);
        let (va, vb) = (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr()));
        let mut lanes = [0i32; 4];
        vst1q_s32(lanes.as_mut_ptr(), sdot(vdupq_n_s32(0), va, vb));
        let by_lane = vgetq_lane_s32::<3>(sdot_lane::<2>(vdupq_n_s32(0), va, vb));
        (sum, lanes, by_lane)
    }

    #[test]
    fn emulated_and_real_sdot_agree_on_extremes() {
        let cases: [(Bytes, Bytes); 4] = [
            ([-128; 16], [-128; 16]),
            ([127; 16], [-128; 16]),
            (
                core::array::from_fn(|i| (i as i8) * 9 - 70),
                core::array::from_fn(|i| 100 - (i as i8) * 13),
            ),
            ([0; 16], [5; 16]),
        ];
        for (a, b) in cases {
            // SAFETY: the loads read whole 16-byte arrays; Emul is baseline Advanced SIMD.
            assert_eq!(unsafe { lane_sum::<Emul>(&a, &b) }, dot_ref(&a, &b));
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                // SAFETY: dotprod was just detected; the loads read whole 16-byte arrays.
                let (sum, lanes, by_lane) = unsafe { with_sdot(&a, &b) };
                assert_eq!(sum, dot_ref(&a, &b));
                for (l, &got) in lanes.iter().enumerate() {
                    let want: i32 = (0..4)
                        .map(|k| a[4 * l + k] as i32 * b[4 * l + k] as i32)
                        .sum();
                    assert_eq!(got, want, "lane {l}");
                }
                let want: i32 = (0..4).map(|k| a[12 + k] as i32 * b[8 + k] as i32).sum();
                assert_eq!(by_lane, want);
            }
        }
    }

    #[test]
    fn fp16_conversions_are_exact() {
        for bits in [
            0u16, 0x3C00, 0xBC00, 0x0001, 0x03FF, 0x7BFF, 0xFBFF, 0x7C00, 0x8000, 0x3555,
        ] {
            let want = half::f16::from_bits(bits).to_f32();
            assert_eq!(f16_to_f32(bits).to_bits(), want.to_bits(), "{bits:#06x}");
            // SAFETY: register-only Advanced SIMD, part of the aarch64 baseline.
            let (v4, v8) = unsafe {
                (
                    vgetq_lane_f32::<1>(f16x4_to_f32(vdup_n_u16(bits))),
                    vgetq_lane_f32::<3>(f16x8_high_to_f32(vdupq_n_u16(bits))),
                )
            };
            assert_eq!(v4.to_bits(), want.to_bits());
            assert_eq!(v8.to_bits(), want.to_bits());
        }
        for x in [
            0.0f32, -0.0, 1.0, 65504.0, 65520.0, 1e-7, 3e-5, -2.5e-8, 0.1, 1e9,
        ] {
            // SAFETY: as above.
            let (lo, hi) = unsafe {
                let h = f32x8_to_f16(vdupq_n_f32(x), vdupq_n_f32(-x));
                (vgetq_lane_u16::<0>(h), vgetq_lane_u16::<7>(h))
            };
            assert_eq!(lo, half::f16::from_f32(x).to_bits(), "{x}");
            assert_eq!(hi, half::f16::from_f32(-x).to_bits(), "{x}");
            assert_eq!(f32_to_f16(x), half::f16::from_f32(x).to_bits(), "{x}");
        }
    }
}
