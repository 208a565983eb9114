//! Elementwise kernels of a transformer on f32 slices (RMSNorm, SwiGLU/GeGLU, softmax
//! exponentials, RoPE rotations, residual adds, f16 conversion for the KV cache, the f16 dot of
//! flash attention) and, in [`crate::attn`], the flash-attention kernels.
//!
//! Each kernel's definition is its scalar reference in [`scalar`], which reproduces llama.cpp's
//! x86 CPU backend (AVX-512 build) bit for bit. The SIMD versions (AVX2 + FMA + F16C,
//! AVX-512, Advanced SIMD) are written once over [`lanes::Lanes`] and return the reference's
//! bits on every input (NaN payloads aside), so the instruction set is chosen by the CPU's
//! features alone, independently of the matmul kernel level (`NIB_KERNELS`): forcing the scalar
//! matmuls still runs these kernels vectorised. `NIB_VEC=scalar|avx2|avx512|neon` forces one (for
//! tests, benchmarks and debugging); [`VecOps::new`] gives any supported one explicitly.
//!
//! The module-level functions use [`ops()`]; the same functions exist as methods of a
//! [`VecOps`] for a chosen instruction set.

pub(crate) mod lanes;
pub mod scalar;

pub use scalar::{
    axpy, axpy_f16, dot_f32, dot_f32_f16, expf_poly, gelu, reduce16, rms_scale, silu, silu_poly,
    softmax_inplace,
};

use crate::attn::generic as attn_generic;
use crate::attn::scalar as attn_scalar;
use crate::attn::{HeadRows, Score, TiledHead, TiledRow, VecState};
use half::f16;
use std::fmt;
use std::sync::OnceLock;

/// An instruction set the elementwise and attention kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The scalar reference.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C, 8 lanes.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (with AVX2, FMA, F16C), 16 lanes.
    Avx512,
    /// aarch64 Advanced SIMD, 4 lanes.
    Neon,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the kernels compiled for it.
    pub fn is_supported(self) -> bool {
        let c = crate::dispatch::cpu();
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => c.avx2,
            Isa::Avx512 => c.avx2 && c.avx512,
            Isa::Neon => c.neon,
        }
    }

    /// The widest supported instruction set.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Scalar)
    }

    /// Every instruction set this CPU supports, the scalar reference first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernels of one supported instruction set (a handle that can only be made for an
/// instruction set the CPU has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VecOps {
    isa: Isa,
}

/// The instruction set the process uses: `NIB_VEC` if it names a supported one (a warning is
/// printed otherwise), else [`Isa::detect`].
pub fn ops() -> VecOps {
    static OPS: OnceLock<VecOps> = OnceLock::new();
    *OPS.get_or_init(|| {
        let detected = Isa::detect();
        let isa = match std::env::var("NIB_VEC") {
            Ok(s) if !s.trim().is_empty() => match Isa::from_name(&s) {
                Some(i) if i.is_supported() => i,
                _ => {
                    eprintln!("warning: NIB_VEC={s:?} is not a supported instruction set; using {detected}");
                    detected
                }
            },
            _ => detected,
        };
        VecOps { isa }
    })
}

/// Calls `$name` of the instruction set a [`VecOps`] holds: the entry point of the module
/// `avx512`, `avx2` or `neon` that [`entry_points!`] declared, else `$scalar::$name` (the
/// reference).
macro_rules! dispatch {
    ($ops:expr, $scalar:ident::$name:ident($($a:expr),* $(,)?)) => {
        match $ops.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: a `VecOps` holds `Avx512` only if `Isa::Avx512.is_supported()` found
                // AVX-512 F/BW/VL, AVX2, FMA and F16C: every feature the entry point is compiled
                // for.
                unsafe { avx512::$name($($a),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: a `VecOps` holds `Avx2` only if `Isa::Avx2.is_supported()` found AVX2,
                // FMA and F16C: every feature the entry point is compiled for.
                unsafe { avx2::$name($($a),*) }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::$name($($a),*),
            _ => $scalar::$name($($a),*),
        }
    };
}

/// Declares the modules `avx2` and `avx512` (x86-64) or `neon` (aarch64), each with one entry
/// point per listed kernel: a function compiled with the instruction set's target features that
/// runs the generic kernel `$path` with the instruction set's [`lanes::Lanes`] token, so the whole
/// kernel is inlined under those features.
macro_rules! entry_points {
    ($(fn $name:ident $(<$g:ident: $b:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $path:path;)*) => {
        #[cfg(target_arch = "x86_64")]
        mod avx2 {
            use super::*;
            use crate::arch::x86::lanes::Avx2;
            $(
                #[target_feature(enable = "avx2,fma,f16c")]
                pub(super) fn $name $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: `VecOps` calls this only after `Isa::Avx2.is_supported()` found
                    // AVX2, FMA and F16C.
                    $path(unsafe { Avx2::new() }, $($arg),*)
                }
            )*
        }
        #[cfg(target_arch = "x86_64")]
        mod avx512 {
            use super::*;
            use crate::arch::x86::lanes::Avx512;
            $(
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
                pub(super) fn $name $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: `VecOps` calls this only after `Isa::Avx512.is_supported()` found
                    // AVX-512 F/BW/VL, AVX2, FMA and F16C.
                    $path(unsafe { Avx512::new() }, $($arg),*)
                }
            )*
        }
        #[cfg(target_arch = "aarch64")]
        mod neon {
            use super::*;
            use crate::arch::aarch64::lanes::Neon;
            $(
                pub(super) fn $name $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
                    $path(Neon::new(), $($arg),*)
                }
            )*
        }
    };
}

entry_points! {
    fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) = lanes::rms_norm;
    fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) = lanes::rms_norm_inplace;
    fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, cols: usize, out: &mut [f32]) = lanes::rms_norm_rows;
    fn swiglu_inplace(gate: &mut [f32], up: &[f32]) = lanes::swiglu_inplace;
    fn geglu_inplace(gate: &mut [f32], up: &[f32]) = lanes::geglu_inplace;
    fn soft_max_exp(x: &mut [f32], max: f32) -> f64 = lanes::soft_max_exp;
    fn rope_pairs(x: &mut [f32], cos: &[f32], sin: &[f32]) = lanes::rope_pairs;
    fn rope_halves(x: &mut [f32], cos: &[f32], sin: &[f32]) = lanes::rope_halves;
    fn to_f16(x: &[f32], out: &mut [f16]) = lanes::to_f16;
    fn from_f16(x: &[f16], out: &mut [f32]) = lanes::from_f16;
    fn dot_f16(x: &[f16], y: &[f16]) -> f32 = lanes::dot_f16;
    fn add_inplace(y: &mut [f32], x: &[f32]) = lanes::add_inplace;
    fn scale(x: &mut [f32], a: f32) = lanes::scale;
    fn scale_into(x: &[f32], a: f32, out: &mut [f32]) = lanes::scale_into;
    fn merge_scaled(acc: &mut [f32], a: f32, x: &[f32], b: f32) = lanes::merge_scaled;
    fn fa_vec<I: Iterator<Item = usize>>(
        q: &[f32], k: HeadRows, v: HeadRows, cells: I, score: Score, st: &mut VecState,
    ) = attn_generic::fa_vec;
    fn fa_tiled(h: &TiledHead, q: &[f32], rows: &[TiledRow], out: &mut [f32]) = attn_generic::fa_tiled;
}

impl VecOps {
    /// The kernels of `isa`, if this CPU supports it.
    pub fn new(isa: Isa) -> Option<VecOps> {
        isa.is_supported().then_some(VecOps { isa })
    }

    /// The scalar reference.
    pub fn scalar() -> VecOps {
        VecOps { isa: Isa::Scalar }
    }

    pub fn isa(self) -> Isa {
        self.isa
    }

    /// [`scalar::rms_norm`]: `out = (x * rms_scale(x)) * w`.
    pub fn rms_norm(self, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        dispatch!(self, scalar::rms_norm(x, w, eps, out))
    }
    /// [`scalar::rms_norm_inplace`].
    pub fn rms_norm_inplace(self, x: &mut [f32], w: &[f32], eps: f32) {
        dispatch!(self, scalar::rms_norm_inplace(x, w, eps))
    }
    /// [`scalar::rms_norm_rows`]: each `cols`-wide row.
    pub fn rms_norm_rows(self, x: &[f32], w: &[f32], eps: f32, cols: usize, out: &mut [f32]) {
        dispatch!(self, scalar::rms_norm_rows(x, w, eps, cols, out))
    }
    /// [`scalar::swiglu_inplace`].
    pub fn swiglu_inplace(self, gate: &mut [f32], up: &[f32]) {
        dispatch!(self, scalar::swiglu_inplace(gate, up))
    }
    /// [`scalar::geglu_inplace`].
    pub fn geglu_inplace(self, gate: &mut [f32], up: &[f32]) {
        dispatch!(self, scalar::geglu_inplace(gate, up))
    }
    /// [`scalar::soft_max_exp`].
    pub fn soft_max_exp(self, x: &mut [f32], max: f32) -> f64 {
        dispatch!(self, scalar::soft_max_exp(x, max))
    }
    /// [`scalar::rope_pairs`].
    pub fn rope_pairs(self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        dispatch!(self, scalar::rope_pairs(x, cos, sin))
    }
    /// [`scalar::rope_halves`].
    pub fn rope_halves(self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        dispatch!(self, scalar::rope_halves(x, cos, sin))
    }
    /// [`scalar::to_f16`].
    pub fn to_f16(self, x: &[f32], out: &mut [f16]) {
        dispatch!(self, scalar::to_f16(x, out))
    }
    /// [`scalar::from_f16`].
    pub fn from_f16(self, x: &[f16], out: &mut [f32]) {
        dispatch!(self, scalar::from_f16(x, out))
    }
    /// [`scalar::dot_f16`].
    pub fn dot_f16(self, x: &[f16], y: &[f16]) -> f32 {
        dispatch!(self, scalar::dot_f16(x, y))
    }
    /// [`scalar::add_inplace`].
    pub fn add_inplace(self, y: &mut [f32], x: &[f32]) {
        dispatch!(self, scalar::add_inplace(y, x))
    }
    /// [`scalar::scale`].
    pub fn scale(self, x: &mut [f32], a: f32) {
        dispatch!(self, scalar::scale(x, a))
    }
    /// [`scalar::scale_into`].
    pub fn scale_into(self, x: &[f32], a: f32, out: &mut [f32]) {
        dispatch!(self, scalar::scale_into(x, a, out))
    }
    /// [`scalar::merge_scaled`].
    pub fn merge_scaled(self, acc: &mut [f32], a: f32, x: &[f32], b: f32) {
        dispatch!(self, scalar::merge_scaled(acc, a, x, b))
    }

    /// The vector path of flash attention for one query row `q` (`k.dim` values) over `rows`
    /// (the K/V rows of the visible cells, in llama.cpp's visiting order), continuing `st`. See
    /// [`crate::attn::scalar::fa_vec`].
    pub fn fa_vec<I: Iterator<Item = usize>>(
        self,
        q: &[f32],
        k: HeadRows,
        v: HeadRows,
        rows: I,
        score: Score,
        st: &mut VecState,
    ) {
        dispatch!(self, attn_scalar::fa_vec(q, k, v, rows, score, st))
    }

    /// The tiled path of flash attention for `rows` (queries of heads sharing the KV head `h`),
    /// writing each row's normalised output. See [`crate::attn::scalar::fa_tiled`].
    pub fn fa_tiled(self, h: &TiledHead, q: &[f32], rows: &[TiledRow], out: &mut [f32]) {
        dispatch!(self, attn_scalar::fa_tiled(h, q, rows, out))
    }
}

/// [`scalar::rms_norm`] with [`ops()`].
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    ops().rms_norm(x, w, eps, out)
}
/// [`scalar::rms_norm_inplace`] with [`ops()`].
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    ops().rms_norm_inplace(x, w, eps)
}
/// [`scalar::rms_norm_rows`] with [`ops()`].
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, cols: usize, out: &mut [f32]) {
    ops().rms_norm_rows(x, w, eps, cols, out)
}
/// [`scalar::swiglu_inplace`] with [`ops()`].
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) {
    ops().swiglu_inplace(gate, up)
}
/// [`scalar::geglu_inplace`] with [`ops()`].
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
    ops().geglu_inplace(gate, up)
}
/// [`scalar::soft_max_exp`] with [`ops()`].
pub fn soft_max_exp(x: &mut [f32], max: f32) -> f64 {
    ops().soft_max_exp(x, max)
}
/// [`scalar::rope_pairs`] with [`ops()`].
pub fn rope_pairs(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    ops().rope_pairs(x, cos, sin)
}
/// [`scalar::rope_halves`] with [`ops()`].
pub fn rope_halves(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    ops().rope_halves(x, cos, sin)
}
/// [`scalar::to_f16`] with [`ops()`].
pub fn to_f16(x: &[f32], out: &mut [f16]) {
    ops().to_f16(x, out)
}
/// [`scalar::from_f16`] with [`ops()`].
pub fn from_f16(x: &[f16], out: &mut [f32]) {
    ops().from_f16(x, out)
}
/// [`scalar::dot_f16`] (llama.cpp's 64-lane `ggml_vec_dot_f16`) with [`ops()`].
pub fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
    ops().dot_f16(x, y)
}
/// [`scalar::add_inplace`] with [`ops()`].
pub fn add_inplace(y: &mut [f32], x: &[f32]) {
    ops().add_inplace(y, x)
}
/// [`scalar::scale`] with [`ops()`].
pub fn scale(x: &mut [f32], a: f32) {
    ops().scale(x, a)
}
/// [`scalar::scale_into`] with [`ops()`].
pub fn scale_into(x: &[f32], a: f32, out: &mut [f32]) {
    ops().scale_into(x, a, out)
}
/// [`scalar::merge_scaled`] with [`ops()`].
pub fn merge_scaled(acc: &mut [f32], a: f32, x: &[f32], b: f32) {
    ops().merge_scaled(acc, a, x, b)
}
