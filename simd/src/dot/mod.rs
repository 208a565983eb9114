//! Dot products of a weight row with an activation row, per instruction-set level.

pub mod scalar;
