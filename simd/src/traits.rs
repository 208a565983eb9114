//! The vocabulary of the kernel crate: the kinds of function a type's kernels are, the summation
//! orders they follow, the call of a tile kernel, one type's row of the kernel table
//! ([`TypeTraits`]), the table itself and the instruction-set levels. Definitions only: the
//! reference row of each type is in [`crate::formats`], each level's kernels in `crate::arch`,
//! the choice of level in [`crate::dispatch`].

use crate::interleave::Layout;
use crate::GgmlType;
use std::fmt;

/// Dequantize a row: weight bytes → f32 (the output length is the number of elements).
pub type ToFloat = fn(&[u8], &mut [f32]);
/// Quantize a row: f32 → bytes of this type (the input length is the number of elements).
pub type FromFloat = fn(&[f32], &mut [u8]);
/// Dot product of `n` elements: weight row bytes · activation row bytes (in `vec_dot_type`).
pub type VecDot = fn(usize, &[u8], &[u8]) -> f32;

/// One block of a matrix product for a tile kernel: `rows` weight rows times `tokens` activation
/// rows, each of `n` elements, writing `out[c * out_stride + r]` for row `r` and token `c`.
///
/// Weight row `r` is at byte `r * w_stride` of `w` (GGUF's layout), or, for a kernel of an
/// interleaved layout, `w` holds the groups of those rows and `w_stride` is unused. Activation row
/// `c` is at byte `c * a_stride` of `a`.
#[derive(Clone, Copy, Debug)]
pub struct Tile<'a> {
    pub n: usize,
    pub w: &'a [u8],
    pub w_stride: usize,
    pub rows: usize,
    pub a: &'a [u8],
    pub a_stride: usize,
    pub tokens: usize,
    pub out: *mut f32,
    pub out_stride: usize,
}

/// A tile kernel: computes a [`Tile`]. Every element must equal, bit for bit, the [`VecDot`] of
/// the same [`Order`]; a tile only saves work (a weight block unpacked once serves several tokens,
/// an activation block several rows).
///
/// # Safety
/// `out` must be valid for writes at `c * out_stride + r` for every `c < tokens`, `r < rows`, and
/// no other thread may access those elements during the call.
pub type DotTile = unsafe fn(&Tile<'_>);

/// A summation order: how a dot product arranges its float arithmetic (integer partial sums are
/// exact in any grouping, so the order is what decides the bits). llama.cpp's x86 backend uses
/// up to four for one type, depending on the batch and on whether it repacked the matrix, and nib
/// reproduces each ([`crate::formats`] defines them per type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// ggml's `vec_dot` for the type (llamafile's tinyBLAS sums the 32-element formats the same
    /// way): for most formats, eight f32 lanes of quad sums reduced by `hsum_float_8`.
    Vec = 0,
    /// llama.cpp's tiled K-quant matmul: one accumulator per output, one update per super-block.
    Tiled = 1,
    /// One f32 accumulator per output, updated once per block (super-block for the K-quants) with
    /// the block's exact integer sum: the gemv of llama.cpp's x86 repacked layouts.
    Block = 2,
    /// The gemm of llama.cpp's x86 repacked Q4_K layout: one update per 64 elements.
    Gemm = 3,
}

impl Order {
    pub const COUNT: usize = 4;
    pub const ALL: [Order; Order::COUNT] = [Order::Vec, Order::Tiled, Order::Block, Order::Gemm];
}

/// Batches of at least this many tokens take llama.cpp's tiled K-quant matmul ([`Order::Tiled`])
/// instead of `vec_dot` (`ggml_tiled_min_batch`).
pub const TILED_MIN_TOKENS: usize = 8;

/// Matrices whose row count is a multiple of this are repacked by llama.cpp's x86 backend when
/// their type has a repacked layout (`ggml_repack_get_optimal_repack_type`).
pub const LLAMA_REPACK_ROWS: usize = 8;

/// A tile kernel over weights stored in an interleaved layout, in one order for every batch size.
#[derive(Clone, Copy, Debug)]
pub struct Interleaved {
    pub layout: Layout,
    pub order: Order,
    pub tile: DotTile,
}

/// What the kernels of one level know about one tensor type: a row of the kernel table.
#[derive(Clone, Copy, Debug)]
pub struct TypeTraits {
    pub ty: GgmlType,
    /// The format activations are quantized to before a dot product.
    pub vec_dot_type: GgmlType,
    pub to_float: Option<ToFloat>,
    /// f32 → this type, as the kernels need it (the activation quantizer of Q8_0, Q8_1, Q8_K).
    pub from_float: Option<FromFloat>,
    /// The weight quantizer: what `convert_hf_to_gguf.py` (legacy formats, floats) or
    /// `llama-quantize` (K-quants) writes. The same as `from_float` for every weight type but
    /// Q8_0; level-independent.
    pub quantize: Option<FromFloat>,
    /// The dot product in each order the type has, indexed by `Order as usize`.
    pub dots: [Option<VecDot>; Order::COUNT],
    /// Tile kernels over GGUF's row layout, per order; where absent, matrix products loop over
    /// the order's `VecDot`.
    pub tiles: [Option<DotTile>; Order::COUNT],
    /// A tile kernel over an interleaved layout, where the level has one: matrices of this type
    /// are then stored that way at load ([`crate::dispatch::Kernels::best_layout`]).
    pub interleaved: Option<Interleaved>,
    /// llama.cpp's x86 backend repacks this type's matrices of a multiple of
    /// [`LLAMA_REPACK_ROWS`] rows, and then sums them in [`Order::Block`] (and [`Order::Gemm`] for
    /// the tokens its gemm takes, where the type has that order).
    pub llama_repacks: bool,
    /// The one order this level uses for the type at every batch size, where it chooses its own
    /// (the aarch64 levels: the orders cheapest on Neoverse-N1); `None` follows llama.cpp's x86
    /// backend ([`TypeTraits::order_for`]).
    pub order: Option<Order>,
}

impl TypeTraits {
    /// A row with conversions and no dot product yet.
    pub fn new(ty: GgmlType, vec_dot_type: GgmlType, to: ToFloat, from: FromFloat) -> TypeTraits {
        TypeTraits {
            ty,
            vec_dot_type,
            to_float: Some(to),
            from_float: Some(from),
            quantize: None,
            dots: [None; Order::COUNT],
            tiles: [None; Order::COUNT],
            interleaved: None,
            llama_repacks: false,
            order: None,
        }
    }

    /// With `dot` as its order `order` (building the reference table).
    pub fn with_dot(mut self, order: Order, dot: VecDot) -> TypeTraits {
        self.dots[order as usize] = Some(dot);
        self
    }

    /// With a weight quantizer.
    pub fn with_quantize(mut self, f: FromFloat) -> TypeTraits {
        self.quantize = Some(f);
        self
    }

    /// Marked as repacked by llama.cpp's x86 backend.
    pub fn repacked_by_llama(mut self) -> TypeTraits {
        self.llama_repacks = true;
        self
    }

    /// The summation order for token `token` of a batch of `n_tokens` activation rows multiplied
    /// by a matrix of `rows` rows: the level's own [`TypeTraits::order`] where it has one, else
    /// the order llama.cpp's x86 backend effectively uses; `None` if the type has no dot product.
    /// For a given matrix and batch the order changes at most once along the tokens (repacked:
    /// [`Order::Gemm`] for the first `n - n % 4`, then [`Order::Block`]).
    pub fn order_for(&self, rows: usize, n_tokens: usize, token: usize) -> Option<Order> {
        if let Some(o) = self.order {
            return self.dot(o).map(|_| o);
        }
        if self.llama_repacks && rows.is_multiple_of(LLAMA_REPACK_ROWS) {
            if self.dot(Order::Gemm).is_some() && token < n_tokens - n_tokens % 4 {
                return Some(Order::Gemm);
            }
            return Some(Order::Block);
        }
        if self.dot(Order::Tiled).is_some() && n_tokens >= TILED_MIN_TOKENS {
            return Some(Order::Tiled);
        }
        self.dot(Order::Vec).map(|_| Order::Vec)
    }

    /// The dot product of an order.
    pub fn dot(&self, order: Order) -> Option<VecDot> {
        self.dots[order as usize]
    }

    /// The tile kernel of an order, if this level has one.
    pub fn tile(&self, order: Order) -> Option<DotTile> {
        self.tiles[order as usize]
    }

    /// The dot product [`TypeTraits::order_for`] picks.
    pub fn dot_for(&self, rows: usize, n_tokens: usize, token: usize) -> Option<VecDot> {
        self.order_for(rows, n_tokens, token)
            .and_then(|o| self.dot(o))
    }
}

/// The kernel table of one level: a [`TypeTraits`] per type nib has kernels for, indexed by
/// ggml type id.
#[derive(Clone, Debug)]
pub struct Table([Option<TypeTraits>; Table::SIZE]);

impl Table {
    /// One slot per ggml type id (the largest is 39).
    const SIZE: usize = 40;

    /// A table of the given rows.
    pub fn from_rows(rows: impl IntoIterator<Item = TypeTraits>) -> Table {
        let mut t = Table([None; Table::SIZE]);
        for row in rows {
            t.0[row.ty.id() as usize] = Some(row);
        }
        t
    }

    pub fn get(&self, ty: GgmlType) -> Option<&TypeTraits> {
        self.0.get(ty.id() as usize)?.as_ref()
    }

    /// The row of `ty`, which must be in the table (the per-level installers only refine rows
    /// of the reference table).
    pub fn row(&mut self, ty: GgmlType) -> &mut TypeTraits {
        self.0[ty.id() as usize]
            .as_mut()
            .unwrap_or_else(|| panic!("no reference row for {ty}"))
    }

    /// Every row, in type-id order.
    pub fn rows(&self) -> impl Iterator<Item = &TypeTraits> {
        self.0.iter().flatten()
    }
}

/// An instruction-set level of the matrix kernels, from the plain reference up. Which levels this
/// CPU supports is decided in [`crate::dispatch`].
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
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
