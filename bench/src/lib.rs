//! Benchmarks live in `benches/`; this crate exists to hold them.
