//! Per-ISA kernels. Each installer overwrites entries of the scalar table with faster functions.

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
