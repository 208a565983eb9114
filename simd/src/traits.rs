//! The type-traits table: for each weight type, how to turn a row into f32 (`to_float`), how to
//! quantize f32 into it (`from_float`), which activation format its dot product pairs with
//! (`vec_dot_type`) and the dot product itself (`vec_dot`), chosen for the CPU at run time.
//!
//! The level is detected once (`is_x86_feature_detected!` / `is_aarch64_feature_detected!`);
//! `NIB_KERNELS=scalar` (or any other level's name) forces a level for tests and debugging.

use crate::dot::scalar;
use crate::quantize as q;
use crate::reference as r;
use crate::GgmlType;
use std::fmt;
use std::sync::OnceLock;

/// Dequantize a row: weight bytes → f32 (the output length is the number of elements).
pub type ToFloat = fn(&[u8], &mut [f32]);
/// Quantize a row: f32 → bytes of this type (the input length is the number of elements).
pub type FromFloat = fn(&[f32], &mut [u8]);
/// Dot product of `n` elements: weight row bytes · activation row bytes (in `vec_dot_type`).
pub type VecDot = fn(usize, &[u8], &[u8]) -> f32;

/// An instruction-set level, from the plain reference up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Plain Rust: the truth every other level is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX2 plus AVX-512 F/BW/VL and AVX-512 VNNI (Zen 4/5, Ice Lake and later).
    Avx512Vnni,
    /// aarch64 Advanced SIMD without the dot-product extension.
    Neon,
    /// aarch64 Advanced SIMD with SDOT (`dotprod`), as on Neoverse-N1.
    NeonDotprod,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Scalar,
        Level::Avx2,
        Level::Avx512Vnni,
        Level::Neon,
        Level::NeonDotprod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx512vnni",
            Level::Neon => "neon",
            Level::NeonDotprod => "neon-dotprod",
        }
    }

    pub fn from_name(s: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run the level's kernels.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => {
                Level::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Level::NeonDotprod => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best level this CPU supports.
    pub fn detect() -> Level {
        [
            Level::NeonDotprod,
            Level::Neon,
            Level::Avx512Vnni,
            Level::Avx2,
        ]
        .into_iter()
        .find(|l| l.is_supported())
        .unwrap_or(Level::Scalar)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Batches of at least this many tokens take llama.cpp's tiled K-quant matmul (`tiled/`) instead
/// of `ggml_vec_dot_*` (`ggml_tiled_min_batch`).
pub const TILED_MIN_TOKENS: usize = 8;

/// Matrices whose row count is a multiple of this are repacked by llama.cpp's x86 backend when
/// their type has a repacked layout (`ggml_repack_get_optimal_repack_type`).
pub const REPACK_ROWS: usize = 8;

/// Which of llama.cpp's summation orders a dot product follows (see [`TypeTraits::kind_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DotKind {
    /// `ggml_vec_dot_*` (and llamafile's tinyBLAS for the 32-element formats).
    Plain = 0,
    /// The tiled K-quant matmul.
    Tiled = 1,
    /// The x86 repacked layout's `gemv`.
    Repacked = 2,
    /// The x86 repacked layout's `gemm` (tokens in groups of four).
    RepackedGemm = 3,
}

/// A block of a matrix product: `nr` weight rows (row `r` at byte `r * w_stride` of `w`) times
/// `nc` activation rows (row `c` at byte `c * a_stride` of `a`), each of `n` elements, writing
/// `out[c * out_stride + r]`. Every element must equal, bit for bit, the [`VecDot`] of the same
/// [`DotKind`]; a tile only saves work (a weight block unpacked once serves several tokens, an
/// activation block several rows).
///
/// # Safety
/// `out` must be valid for writes at `c * out_stride + r` for every `c < nc`, `r < nr`, and no
/// other thread may access those elements during the call.
pub type DotTile = unsafe fn(
    n: usize,
    w: &[u8],
    w_stride: usize,
    nr: usize,
    a: &[u8],
    a_stride: usize,
    nc: usize,
    out: *mut f32,
    out_stride: usize,
);

/// What the kernels know about one tensor type.
///
/// llama.cpp's x86 backend multiplies a matrix with one of up to three kernels whose float
/// arithmetic differs; nib reproduces each (see [`crate::dot::scalar`]) and [`TypeTraits::dot_for`]
/// picks the one llama.cpp would.
#[derive(Clone, Copy)]
pub struct TypeTraits {
    pub ty: GgmlType,
    /// The format activations are quantized to before `vec_dot`.
    pub vec_dot_type: GgmlType,
    pub to_float: Option<ToFloat>,
    pub from_float: Option<FromFloat>,
    /// The row-by-row dot product (`ggml_vec_dot_*`; for the 32-element formats also llamafile's
    /// `tinyBLAS_Q0_AVX`, which sums in the same order).
    pub vec_dot: Option<VecDot>,
    /// The order of llama.cpp's tiled K-quant matmul, used for batches of at least
    /// [`TILED_MIN_TOKENS`] tokens on matrices that are not repacked.
    pub vec_dot_tiled: Option<VecDot>,
    /// The order of llama.cpp's x86 repacked layout (its `gemv` kernel), used at every batch size
    /// for matrices with a multiple of [`REPACK_ROWS`] rows.
    pub vec_dot_repacked: Option<VecDot>,
    /// Where the repacked layout's `gemm` kernel sums differently from its `gemv`: used instead of
    /// `vec_dot_repacked` for the first `n - n % 4` tokens of a batch of `n` (llama.cpp runs those
    /// through `gemm` in groups of four and the rest through `gemv`).
    pub vec_dot_repacked_gemm: Option<VecDot>,
    /// Optional multi-row, multi-token kernels per [`DotKind`] (indexed by `kind as usize`);
    /// where absent, matrix products loop over the `VecDot` of that kind.
    pub tiles: [Option<DotTile>; 4],
    /// The `Repacked` kind over weights stored eight rows interleaved
    /// ([`crate::matmul::Layout::Interleaved8`], [`crate::interleave`]), for every batch size;
    /// levels without it never get such weights.
    pub tile_interleaved: Option<DotTile>,
    /// The `Plain` kind over weights whose rows are interleaved block by block in groups of four
    /// ([`crate::matmul::Layout::Blocks4`]), for every batch size.
    pub tile_blocks4: Option<DotTile>,
}

impl TypeTraits {
    /// The summation order llama.cpp's x86 backend effectively uses for token `token` of a batch
    /// of `n_tokens` activation rows multiplied by a matrix of `rows` rows; `None` if the type
    /// has no dot product. For a given matrix and batch the kind changes at most once along the
    /// tokens (repacked: `RepackedGemm` for the first `n - n % 4`, then `Repacked`).
    pub fn kind_for(&self, rows: usize, n_tokens: usize, token: usize) -> Option<DotKind> {
        if self.vec_dot_repacked.is_some() && rows.is_multiple_of(REPACK_ROWS) {
            if self.vec_dot_repacked_gemm.is_some() && token < n_tokens - n_tokens % 4 {
                return Some(DotKind::RepackedGemm);
            }
            return Some(DotKind::Repacked);
        }
        if self.vec_dot_tiled.is_some() && n_tokens >= TILED_MIN_TOKENS {
            return Some(DotKind::Tiled);
        }
        self.vec_dot.map(|_| DotKind::Plain)
    }

    /// The dot product of a kind.
    pub fn dot(&self, kind: DotKind) -> Option<VecDot> {
        match kind {
            DotKind::Plain => self.vec_dot,
            DotKind::Tiled => self.vec_dot_tiled,
            DotKind::Repacked => self.vec_dot_repacked,
            DotKind::RepackedGemm => self.vec_dot_repacked_gemm,
        }
    }

    /// The tile kernel of a kind, if this level has one.
    pub fn tile(&self, kind: DotKind) -> Option<DotTile> {
        self.tiles[kind as usize]
    }

    /// The dot product llama.cpp's x86 backend effectively uses for token `token` of a batch of
    /// `n_tokens` activation rows multiplied by a matrix of `rows` rows. `None` if the type has no
    /// dot product.
    pub fn dot_for(&self, rows: usize, n_tokens: usize, token: usize) -> Option<VecDot> {
        self.kind_for(rows, n_tokens, token)
            .and_then(|k| self.dot(k))
    }
}

impl fmt::Debug for TypeTraits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeTraits")
            .field("ty", &self.ty)
            .field("vec_dot_type", &self.vec_dot_type)
            .field("to_float", &self.to_float.is_some())
            .field("from_float", &self.from_float.is_some())
            .field("vec_dot", &self.vec_dot.is_some())
            .field("vec_dot_tiled", &self.vec_dot_tiled.is_some())
            .field("vec_dot_repacked", &self.vec_dot_repacked.is_some())
            .field(
                "vec_dot_repacked_gemm",
                &self.vec_dot_repacked_gemm.is_some(),
            )
            .field("tiles", &self.tiles.map(|t| t.is_some()))
            .finish()
    }
}

/// The kernel table for one level.
#[derive(Debug)]
pub struct Kernels {
    level: Level,
    table: Vec<TypeTraits>,
}

impl Kernels {
    /// The table for `level`. Panics if the CPU does not support it (check [`Level::is_supported`]).
    pub fn for_level(level: Level) -> Kernels {
        assert!(
            level.is_supported(),
            "kernel level {level} is not supported by this CPU"
        );
        let mut table = scalar_table();
        match level {
            Level::Scalar => {}
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => crate::arch::x86::install_avx2(&mut table),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => crate::arch::x86::install_avx512vnni(&mut table),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => crate::arch::aarch64::install_neon(&mut table),
            #[cfg(target_arch = "aarch64")]
            Level::NeonDotprod => crate::arch::aarch64::install_dotprod(&mut table),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
        // A level that replaced a type's `vec_dot` but not its tiled/repacked variants uses its
        // own `vec_dot` for every batch: the scalar variants are exact but slow, and mixing them
        // with an inexact `vec_dot` would not make the level exact anyway.
        let same =
            |a: Option<VecDot>, b: Option<VecDot>| a.map(|f| f as usize) == b.map(|f| f as usize);
        for (t, s) in table.iter_mut().zip(scalar_table()) {
            if !same(t.vec_dot, s.vec_dot) {
                if same(t.vec_dot_tiled, s.vec_dot_tiled) {
                    t.vec_dot_tiled = None;
                }
                if same(t.vec_dot_repacked, s.vec_dot_repacked) {
                    t.vec_dot_repacked = None;
                }
                if same(t.vec_dot_repacked_gemm, s.vec_dot_repacked_gemm) {
                    t.vec_dot_repacked_gemm = None;
                }
            }
        }
        Kernels { level, table }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// The traits of `ty`, or `None` if nib has no kernels for it at all.
    pub fn get(&self, ty: GgmlType) -> Option<&TypeTraits> {
        self.table.iter().find(|t| t.ty == ty)
    }

    /// Replace the entry for `t.ty` (used by the per-ISA installers).
    #[allow(dead_code)]
    pub(crate) fn set_in(table: &mut [TypeTraits], ty: GgmlType, f: impl FnOnce(&mut TypeTraits)) {
        if let Some(t) = table.iter_mut().find(|t| t.ty == ty) {
            f(t)
        }
    }
}

/// Error for `NIB_KERNELS` naming an unknown or unsupported level.
#[derive(Debug, Clone)]
pub struct LevelError(pub String);

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LevelError {}

/// The level named by `NIB_KERNELS`, or the detected one when it is unset.
pub fn requested_level() -> Result<Level, LevelError> {
    match std::env::var("NIB_KERNELS") {
        Ok(s) if !s.trim().is_empty() => {
            let names: Vec<_> = Level::ALL.iter().map(|l| l.name()).collect();
            let level = Level::from_name(&s).ok_or_else(|| {
                LevelError(format!(
                    "NIB_KERNELS={s}: unknown level (known: {})",
                    names.join(", ")
                ))
            })?;
            if !level.is_supported() {
                return Err(LevelError(format!(
                    "NIB_KERNELS={s}: this CPU does not support the {level} kernels"
                )));
            }
            Ok(level)
        }
        _ => Ok(Level::detect()),
    }
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// The process-wide kernel table: `NIB_KERNELS` if set and valid, else the best level detected.
/// An invalid `NIB_KERNELS` falls back to detection with a warning on stderr; call
/// [`requested_level`] first to turn it into an error instead.
pub fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(|| {
        let level = requested_level().unwrap_or_else(|e| {
            eprintln!("warning: {e}; using detected kernels");
            Level::detect()
        });
        Kernels::for_level(level)
    })
}

fn entry(
    ty: GgmlType,
    vec_dot_type: GgmlType,
    to_float: Option<ToFloat>,
    from_float: Option<FromFloat>,
    vec_dot: Option<VecDot>,
) -> TypeTraits {
    TypeTraits {
        ty,
        vec_dot_type,
        to_float,
        from_float,
        vec_dot,
        vec_dot_tiled: None,
        vec_dot_repacked: None,
        vec_dot_repacked_gemm: None,
        tiles: [None; 4],
        tile_interleaved: None,
        tile_blocks4: None,
    }
}

fn scalar_table() -> Vec<TypeTraits> {
    use GgmlType::*;
    let mut table = vec![
        entry(
            F32,
            F32,
            Some(r::dequantize_row_f32),
            Some(r::quantize_row_f32),
            Some(scalar::vec_dot_f32),
        ),
        entry(
            F16,
            F16,
            Some(r::dequantize_row_f16),
            Some(r::quantize_row_f16),
            Some(scalar::vec_dot_f16),
        ),
        entry(
            BF16,
            BF16,
            Some(r::dequantize_row_bf16),
            Some(r::quantize_row_bf16),
            Some(scalar::vec_dot_bf16),
        ),
        entry(
            Q4_0,
            Q8_0,
            Some(r::dequantize_row_q4_0),
            Some(q::quantize_row_q4_0),
            Some(scalar::vec_dot_q4_0_q8_0),
        ),
        entry(
            Q4_1,
            Q8_1,
            Some(r::dequantize_row_q4_1),
            Some(q::quantize_row_q4_1),
            Some(scalar::vec_dot_q4_1_q8_1),
        ),
        entry(
            Q5_0,
            Q8_0,
            Some(r::dequantize_row_q5_0),
            Some(q::quantize_row_q5_0),
            Some(scalar::vec_dot_q5_0_q8_0),
        ),
        entry(
            Q5_1,
            Q8_1,
            Some(r::dequantize_row_q5_1),
            Some(q::quantize_row_q5_1),
            Some(scalar::vec_dot_q5_1_q8_1),
        ),
        entry(
            Q8_0,
            Q8_0,
            Some(r::dequantize_row_q8_0),
            Some(r::quantize_row_q8_0),
            Some(scalar::vec_dot_q8_0_q8_0),
        ),
        entry(
            Q8_1,
            Q8_1,
            Some(r::dequantize_row_q8_1),
            Some(r::quantize_row_q8_1),
            None,
        ),
        entry(
            Q2_K,
            Q8_K,
            Some(r::dequantize_row_q2_k),
            Some(q::quantize_row_q2_k),
            Some(scalar::vec_dot_q2_k_q8_k),
        ),
        entry(
            Q3_K,
            Q8_K,
            Some(r::dequantize_row_q3_k),
            Some(q::quantize_row_q3_k),
            Some(scalar::vec_dot_q3_k_q8_k),
        ),
        entry(
            Q4_K,
            Q8_K,
            Some(r::dequantize_row_q4_k),
            Some(q::quantize_row_q4_k),
            Some(scalar::vec_dot_q4_k_q8_k),
        ),
        entry(
            Q5_K,
            Q8_K,
            Some(r::dequantize_row_q5_k),
            Some(q::quantize_row_q5_k),
            Some(scalar::vec_dot_q5_k_q8_k),
        ),
        entry(
            Q6_K,
            Q8_K,
            Some(r::dequantize_row_q6_k),
            Some(q::quantize_row_q6_k),
            Some(scalar::vec_dot_q6_k_q8_k),
        ),
        entry(
            Q8_K,
            Q8_K,
            Some(r::dequantize_row_q8_k),
            Some(r::quantize_row_q8_k),
            None,
        ),
    ];
    // llama.cpp's other kernels for the same types (see `TypeTraits::dot_for`).
    for t in table.iter_mut() {
        match t.ty {
            Q4_0 => t.vec_dot_repacked = Some(scalar::vec_dot_q4_0_q8_0_repacked),
            Q4_K => {
                t.vec_dot_tiled = Some(scalar::vec_dot_q4_k_q8_k_tiled);
                t.vec_dot_repacked = Some(scalar::vec_dot_q4_k_q8_k_repacked);
                t.vec_dot_repacked_gemm = Some(scalar::vec_dot_q4_k_q8_k_repacked_gemm);
            }
            Q6_K => t.vec_dot_tiled = Some(scalar::vec_dot_q6_k_q8_k_tiled),
            _ => {}
        }
    }
    table
}
