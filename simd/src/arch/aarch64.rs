//! aarch64 kernels (NEON, NEON + dotprod).

use crate::traits::TypeTraits;

pub(crate) fn install_neon(_table: &mut [TypeTraits]) {}

pub(crate) fn install_dotprod(table: &mut [TypeTraits]) {
    install_neon(table);
}
