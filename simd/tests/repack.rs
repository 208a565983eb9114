//! The four-row interleaved Q4_0 / Q8_0 GEMV (aarch64 only): the plain-Rust version over the
//! packed layout must equal the scalar per-row `vec_dot` on the unpacked rows bit for bit (which
//! pins the layout down), and the SDOT version must agree with it to float rounding.
#![cfg(target_arch = "aarch64")]

use half::f16;
use nib_simd::arch::aarch64::repack::*;
use nib_simd::traits::{Kernels, Level};
use nib_simd::GgmlType;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// `rows` random rows of `n` elements in `ty` (Q4_0 or Q8_0): quant bytes all `fill`, or random
/// when `fill` is `None`; small positive scales.
fn matrix(ty: GgmlType, n: usize, rows: usize, fill: Option<u8>, rng: &mut Rng) -> Vec<u8> {
    let bs = ty.type_size();
    let mut v = vec![0u8; rows * ty.row_size(n).unwrap()];
    for b in v.chunks_exact_mut(bs) {
        let d = f16::from_f32(rng.f32().abs() * 0.05 + 1e-3);
        b[..2].copy_from_slice(&d.to_le_bytes());
        for q in &mut b[2..] {
            *q = fill.unwrap_or(rng.next() as u8);
        }
    }
    v
}

type Gemv = fn(usize, &[u8], &[u8], &mut [f32]);

fn check(ty: GgmlType, repack: fn(usize, &[u8]) -> Vec<u8>, fast: Gemv, plain: Gemv) {
    let scalar = Kernels::for_level(Level::Scalar);
    let dot = scalar.get(ty).unwrap().vec_dot.unwrap();
    let quantize = scalar.get(GgmlType::Q8_0).unwrap().from_float.unwrap();
    let mut rng = Rng(0x0ddba11);
    for nb in [1, 2, 3, 5, 17] {
        let n = nb * 32;
        for rows in [4, 8, 12] {
            for fill in [None, None, Some(0x00), Some(0xFF), Some(0x80), Some(0x7F)] {
                let w = matrix(ty, n, rows, fill, &mut rng);
                let packed = repack(n, &w);
                assert_eq!(packed.len(), w.len(), "{ty}: packed size");
                let x: Vec<f32> = match fill {
                    None => (0..n).map(|_| rng.f32()).collect(),
                    // ±127 activations against extreme quants.
                    Some(_) => (0..n)
                        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                        .collect(),
                };
                let mut a = vec![0u8; GgmlType::Q8_0.row_size(n).unwrap()];
                quantize(&x, &mut a);

                let row = ty.row_size(n).unwrap();
                let want: Vec<f32> = w.chunks_exact(row).map(|r| dot(n, r, &a)).collect();
                let mut got_plain = vec![0f32; rows];
                plain(n, &packed, &a, &mut got_plain);
                assert_eq!(
                    got_plain, want,
                    "{ty} plain x4 vs per-row scalar, n={n} rows={rows} fill={fill:?}"
                );

                let mut got = vec![f32::NAN; rows];
                fast(n, &packed, &a, &mut got);
                for r in 0..rows {
                    let mag: f32 = {
                        let mut wf = vec![0f32; n];
                        let mut af = vec![0f32; n];
                        (scalar.get(ty).unwrap().to_float.unwrap())(
                            &w[r * row..(r + 1) * row],
                            &mut wf,
                        );
                        (scalar.get(GgmlType::Q8_0).unwrap().to_float.unwrap())(&a, &mut af);
                        wf.iter().zip(&af).map(|(p, q)| (p * q).abs()).sum()
                    };
                    let tol = 1e-5 * mag + 1e-6;
                    assert!(
                        (got[r] - want[r]).abs() <= tol,
                        "{ty} x4 row {r}, n={n} rows={rows} fill={fill:?}: {} vs {}",
                        got[r],
                        want[r]
                    );
                }
            }
        }
    }
}

#[test]
fn q4_0x4_gemv_matches_per_row_dots() {
    check(
        GgmlType::Q4_0,
        repack_q4_0x4,
        gemv_q4_0x4_q8_0,
        gemv_q4_0x4_q8_0_scalar,
    );
}

#[test]
fn q8_0x4_gemv_matches_per_row_dots() {
    check(
        GgmlType::Q8_0,
        repack_q8_0x4,
        gemv_q8_0x4_q8_0,
        gemv_q8_0x4_q8_0_scalar,
    );
}

#[test]
#[should_panic(expected = "multiple of 4")]
fn x4_layouts_reject_row_counts_not_divisible_by_4() {
    repack_q4_0x4(32, &[0u8; 3 * 18]);
}
