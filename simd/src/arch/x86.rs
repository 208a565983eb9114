//! x86-64 kernels (AVX2 + FMA + F16C).

use crate::traits::TypeTraits;

pub(crate) fn install_avx2(_table: &mut [TypeTraits]) {}
