//! Which kernels run: the CPU's features (detected once, for the matrix kernels' [`Level`] and the
//! elementwise kernels' [`crate::vec::Isa`] alike), the level `NIB_KERNELS` asks for, and the
//! kernel table of a level ([`Kernels`]): the reference table of [`crate::formats`] with the
//! level's kernels installed over it by `crate::arch`.

use crate::interleave::{self, Layout};
use crate::traits::{Level, Table, TypeTraits};
use crate::{GgmlType, ALL_TYPES};
use std::fmt;
use std::sync::OnceLock;

/// The instruction-set features nib's kernels use, as this CPU reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// x86-64 AVX2 with FMA and F16C.
    pub avx2: bool,
    /// x86-64 AVX-512 F, BW and VL.
    pub avx512: bool,
    /// x86-64 AVX-512 VNNI.
    pub avx512vnni: bool,
    /// aarch64 Advanced SIMD.
    pub neon: bool,
    /// aarch64 SDOT (`FEAT_DotProd`).
    pub dotprod: bool,
}

/// This CPU's features (detected on first use).
pub fn cpu() -> Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    *CPU.get_or_init(|| {
        #[allow(unused_mut)]
        let mut c = Cpu::default();
        #[cfg(target_arch = "x86_64")]
        {
            c.avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            c.avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl");
            c.avx512vnni = is_x86_feature_detected!("avx512vnni");
        }
        #[cfg(target_arch = "aarch64")]
        {
            c.neon = std::arch::is_aarch64_feature_detected!("neon");
            c.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        }
        c
    })
}

impl Level {
    /// Whether this CPU can run the level's kernels.
    pub fn is_supported(self) -> bool {
        let c = cpu();
        match self {
            Level::Scalar => true,
            Level::Avx2 => c.avx2,
            Level::Avx512Vnni => c.avx2 && c.avx512 && c.avx512vnni,
            Level::Neon => c.neon,
            Level::NeonDotprod => c.neon && c.dotprod,
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

/// The kernel table of one level.
#[derive(Debug)]
pub struct Kernels {
    level: Level,
    table: Table,
}

impl Kernels {
    /// The table for `level`. Panics if the CPU does not support it (check
    /// [`Level::is_supported`]).
    pub fn for_level(level: Level) -> Kernels {
        assert!(
            level.is_supported(),
            "kernel level {level} is not supported by this CPU"
        );
        #[allow(unused_mut)]
        let mut table =
            Table::from_rows(ALL_TYPES.into_iter().filter_map(crate::formats::reference));
        match level {
            Level::Scalar => {}
            // SAFETY (both): the CPU supports `level`, asserted above.
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 | Level::Avx512Vnni => unsafe {
                crate::arch::x86::install(level, &mut table)
            },
            #[cfg(target_arch = "aarch64")]
            Level::Neon | Level::NeonDotprod => unsafe {
                crate::arch::aarch64::install(level, &mut table)
            },
            #[allow(unreachable_patterns)]
            _ => unreachable!("{level} is not a level of this architecture"),
        }
        Kernels { level, table }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// This level with llama.cpp's x86 summation order for every type (the level's own orders,
    /// [`TypeTraits::order`], dropped): slower where the level chose otherwise, and bit for bit
    /// llama.cpp's x86 results. `NIB_ORDERS=llama` makes [`kernels`] return this.
    pub fn with_llama_orders(mut self) -> Kernels {
        for ty in ALL_TYPES {
            if self.table.get(ty).is_none() {
                continue;
            }
            let row = self.table.row(ty);
            row.order = None;
            // An interleaved layout is only kept where its order is llama.cpp's for the matrices
            // that fit it (all of a multiple of 8 rows).
            let llama = row.order_for(crate::traits::LLAMA_REPACK_ROWS, 1, 0);
            if row.interleaved.is_some_and(|i| Some(i.order) != llama) {
                row.interleaved = None;
            }
        }
        self
    }

    /// The scalar reference kernels with this level's summation orders: what every product of
    /// this level must equal, bit for bit (the tests' expected results).
    pub fn reference(&self) -> Kernels {
        let mut r = Kernels::for_level(Level::Scalar);
        for ty in ALL_TYPES {
            if let (Some(mine), Some(_)) = (self.get(ty), r.table.get(ty)) {
                r.table.row(ty).order = mine.order;
            }
        }
        r
    }

    /// The traits of `ty`, or `None` if nib has no kernels for it at all.
    pub fn get(&self, ty: GgmlType) -> Option<&TypeTraits> {
        self.table.get(ty)
    }

    /// Every type with kernels.
    pub fn types(&self) -> impl Iterator<Item = GgmlType> + '_ {
        self.table.rows().map(|t| t.ty)
    }

    /// The layout this level's kernels read fastest for a matrix of `ty`: interleaved where the
    /// level has a tile for that and the shape fits, else GGUF's rows.
    pub fn best_layout(&self, ty: GgmlType, rows: usize, cols: usize) -> Layout {
        match self.get(ty).and_then(|t| t.interleaved) {
            Some(i) if interleave::fits(i.layout, ty, rows, cols) => i.layout,
            _ => Layout::Rows,
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

/// The process-wide kernel table: `NIB_KERNELS` if set and valid, else the best level detected;
/// with `NIB_ORDERS=llama`, llama.cpp's x86 summation orders throughout
/// ([`Kernels::with_llama_orders`]). An invalid `NIB_KERNELS` falls back to detection with a
/// warning on stderr; call [`requested_level`] first to turn it into an error instead.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        let level = requested_level().unwrap_or_else(|e| {
            eprintln!("warning: {e}; using detected kernels");
            Level::detect()
        });
        let k = Kernels::for_level(level);
        match std::env::var("NIB_ORDERS") {
            Ok(v) if v.trim().eq_ignore_ascii_case("llama") => k.with_llama_orders(),
            Ok(v) if !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("native") => {
                eprintln!("warning: NIB_ORDERS={v:?} is neither llama nor native; using native");
                k
            }
            _ => k,
        }
    })
}
