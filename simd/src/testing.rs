//! Deterministic randomness for the tests and benchmarks of every crate in the workspace (one
//! generator, so no test file carries its own copy). Not used by the kernels.

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
