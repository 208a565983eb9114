//! Deterministic randomness for the tests and benchmarks of every crate in the workspace (one
//! generator, so no test file carries its own copy), and random weight rows with sane scales. Not
//! used by the kernels.

use crate::GgmlType;
use half::{bf16, f16};

/// xorshift64* (Vigna): small, fast and reproducible on every platform. The seed must not be 0
/// (the generator would stay at 0).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[-1, 1)`, on a grid of 2⁻²³.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// Fill `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.byte();
        }
    }
}

/// Byte offsets of the f16 scale fields inside one block of `ty` (which must hold finite values
/// for a row to be a sane test input).
pub fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q8_1 => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q4_K | Q5_K => &[0, 2],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A random row of `n` elements of `ty`: floats in `[-scale, scale)`, or random quant bytes with
/// every f16 scale set to a small finite value (about `scale · 0.05`).
pub fn random_row(ty: GgmlType, n: usize, rng: &mut Rng, scale: f32) -> Vec<u8> {
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| (rng.f32() * scale).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32() * scale).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.f32() * scale).to_le_bytes())
            .collect(),
        _ => {
            let mut v = vec![0u8; ty.row_size(n).expect("whole blocks")];
            rng.fill(&mut v);
            for b in v.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let d = f16::from_f32(rng.f32().abs() * scale * 0.05 + 1e-4);
                    b[off..off + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn ranges_and_reproducibility() {
        let (mut a, mut b) = (Rng(42), Rng(42));
        for _ in 0..10_000 {
            let x = a.f32();
            assert!((-1.0..1.0).contains(&x));
            assert_eq!(x.to_bits(), b.f32().to_bits());
            assert!(a.below(7) < 7);
            b.below(7);
        }
        assert_ne!(Rng(1).next_u64(), Rng(2).next_u64());
    }
}
