//! The kernels of each instruction-set family, one folder per architecture with the same files
//! for the same roles. Each installs its levels' kernels over the reference table
//! ([`crate::formats::reference`]) when [`crate::dispatch`] asks for a level this CPU supports.

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
