//! Every kernel level this CPU supports against the scalar reference, for every format, on rows
//! of several lengths (one block, odd block counts, many blocks) and edge values.
//! Under qemu these run once per emulated CPU (`QEMU_CPU=neoverse-n1`, `cortex-a72`).

use half::f16;
use nib_simd::traits::{Kernels, Level};
use nib_simd::GgmlType;

/// xorshift64*: deterministic, dependency-free randomness for tests.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// Byte offsets of the f16 scale fields inside one block of `ty`, which must hold finite values.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
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

/// A random weight row of `n` elements in `ty`: random quants, small finite scales.
fn random_row(ty: GgmlType, n: usize, rng: &mut Rng, scale: f32) -> Vec<u8> {
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| (rng.f32() * scale).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32() * scale).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.f32() * scale).to_le_bytes())
            .collect(),
        _ => {
            let bs = ty.type_size();
            let mut v: Vec<u8> = (0..ty.row_size(n).unwrap()).map(|_| rng.byte()).collect();
            for b in v.chunks_exact_mut(bs) {
                for &off in f16_fields(ty) {
                    let d = f16::from_f32(rng.f32().abs() * scale * 0.05 + 1e-4);
                    b[off..off + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            v
        }
    }
}

fn levels() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
}

const WEIGHT_TYPES: [GgmlType; 13] = {
    use GgmlType::*;
    [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ]
};

fn block_counts() -> [usize; 6] {
    [1, 2, 3, 7, 8, 17]
}

#[test]
fn the_expected_level_is_selected() {
    // NIB_EXPECT_LEVEL is set by the cross-test script to the level each emulated CPU must get.
    if let Ok(want) = std::env::var("NIB_EXPECT_LEVEL") {
        assert_eq!(Level::detect().name(), want, "detected level");
    }
    assert!(Level::Scalar.is_supported());
}

#[test]
fn dequantize_matches_scalar_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for level in levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES {
            for nb in block_counts() {
                let n = nb * ty.block_size().max(32);
                let row = random_row(ty, n, &mut rng, 4.0);
                let mut want = vec![0f32; n];
                let mut got = vec![0f32; n];
                (scalar.get(ty).unwrap().to_float.unwrap())(&row, &mut want);
                (k.get(ty).unwrap().to_float.unwrap())(&row, &mut got);
                assert_eq!(want, got, "{level} {ty} n={n}");
            }
        }
    }
}

/// Dot of the dequantized rows in f64: the exact value the integer kernels approximate.
fn dequantized_dot(scalar: &Kernels, ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> (f64, f64) {
    let at = scalar.get(ty).unwrap().vec_dot_type;
    let mut wf = vec![0f32; n];
    let mut af = vec![0f32; n];
    (scalar.get(ty).unwrap().to_float.unwrap())(w, &mut wf);
    (scalar.get(at).unwrap().to_float.unwrap())(a, &mut af);
    let dot = wf.iter().zip(&af).map(|(&x, &y)| x as f64 * y as f64).sum();
    let mag = wf
        .iter()
        .zip(&af)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum();
    (dot, mag)
}

#[test]
fn vec_dot_matches_scalar_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    for level in levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES {
            let traits = k.get(ty).unwrap();
            let at = traits.vec_dot_type;
            for nb in block_counts() {
                let n = nb * ty.block_size().max(32);
                for scale in [1.0f32, 1e-3, 100.0] {
                    let w = random_row(ty, n, &mut rng, scale);
                    let x: Vec<f32> = (0..n).map(|_| rng.f32() * scale).collect();
                    let mut a = vec![0u8; at.row_size(n).unwrap()];
                    (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut a);
                    let want = (scalar.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                    let got = (traits.vec_dot.unwrap())(n, &w, &a) as f64;
                    let (exact, mag) = dequantized_dot(&scalar, ty, &w, &a, n);
                    // f16 products in the legacy formats round once per block; the rest is f32.
                    let tol = 2e-3 * mag + 1e-6;
                    assert!(
                        (want - exact).abs() <= tol,
                        "scalar {ty} n={n} s={scale}: {want} vs exact {exact}"
                    );
                    assert!(
                        (got - want).abs() <= tol,
                        "{level} {ty} n={n} s={scale}: {got} vs scalar {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn activation_quantizers_match_scalar_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(42);
    for level in levels() {
        let k = Kernels::for_level(level);
        for at in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
            GgmlType::BF16,
        ] {
            let bs = at.block_size().max(32);
            for nb in block_counts() {
                let n = nb * bs.max(if at == GgmlType::Q8_K { 256 } else { 32 });
                let mut inputs: Vec<Vec<f32>> = vec![
                    (0..n).map(|_| rng.f32()).collect(),
                    vec![0.0; n],
                    vec![0.75; n],
                    (0..n)
                        .map(|i| if i % 5 == 0 { 1e6 } else { rng.f32() * 1e-6 })
                        .collect(),
                    (0..n).map(|_| rng.f32() * 1e-30).collect(),
                ];
                inputs.push((0..n).map(|i| -(i as f32)).collect());
                for x in inputs {
                    let size = at.row_size(n).unwrap();
                    let (mut want, mut got) = (vec![0u8; size], vec![0u8; size]);
                    (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut want);
                    (k.get(at).unwrap().from_float.unwrap())(&x, &mut got);
                    if at == GgmlType::F16 || at == GgmlType::BF16 {
                        assert_eq!(want, got, "{level} {at} n={n}");
                        continue;
                    }
                    let (mut wf, mut gf) = (vec![0f32; n], vec![0f32; n]);
                    (scalar.get(at).unwrap().to_float.unwrap())(&want, &mut wf);
                    (scalar.get(at).unwrap().to_float.unwrap())(&got, &mut gf);
                    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for i in 0..n {
                        // Rounding of exact halves may differ by one step between levels.
                        let step = amax / 127.0 * 1.01 + f32::MIN_POSITIVE;
                        assert!(
                            (wf[i] - gf[i]).abs() <= step,
                            "{level} {at} n={n} i={i}: {} vs {}",
                            gf[i],
                            wf[i]
                        );
                    }
                }
            }
        }
    }
}
