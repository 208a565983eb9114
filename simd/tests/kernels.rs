//! Every kernel level this CPU supports against the scalar reference, for every format, on rows
//! of several lengths (one block, odd block counts, many blocks) and edge values.
//! Under qemu these run once per emulated CPU (`QEMU_CPU=neoverse-n1`, `cortex-a72`).

use half::f16;
use nib_simd::traits::{DotKind, Kernels, Level};
use nib_simd::GgmlType;

/// Bitwise equality of two results (two NaNs count as equal: payloads are not part of the
/// contract).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

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

fn block_counts() -> [usize; 8] {
    // Odd and even counts around the SIMD kernels' unrolling (2 blocks) and a longer row.
    [1, 2, 3, 4, 5, 7, 8, 17]
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
                        same(got as f32, want as f32),
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
                    assert_eq!(want, got, "{level} {at} n={n}");
                }
            }
        }
    }
}

/// Quantized weight rows built from one repeated byte (all quants at an extreme or a pattern),
/// against activations at ±127: every integer path at its largest magnitudes.
#[test]
fn vec_dot_on_extreme_quants_matches_scalar() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(7);
    let n_of = |ty: GgmlType, nb: usize| nb * ty.block_size();
    let inputs: [fn(usize) -> f32; 4] = [
        |_| 1.0,
        |_| -1.0,
        |i| if i % 2 == 0 { 1.0 } else { -1.0 },
        |i| {
            if i % 3 == 0 {
                -2.0
            } else {
                1.0 + (i % 7) as f32 * 0.25
            }
        },
    ];
    for level in levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_size() > 1) {
            let at = k.get(ty).unwrap().vec_dot_type;
            for nb in [1, 3] {
                let n = n_of(ty, nb);
                for fill in [0x00u8, 0xFF, 0x80, 0x7F, 0x55, 0xAA] {
                    let mut w = random_row(ty, n, &mut rng, 1.0);
                    let fields = f16_fields(ty);
                    for b in w.chunks_exact_mut(ty.type_size()) {
                        for (i, byte) in b.iter_mut().enumerate() {
                            if !fields.iter().any(|&o| i == o || i == o + 1) {
                                *byte = fill;
                            }
                        }
                    }
                    for input in inputs {
                        let x: Vec<f32> = (0..n).map(input).collect();
                        let mut a = vec![0u8; at.row_size(n).unwrap()];
                        (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut a);
                        let want = (scalar.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                        let got = (k.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                        assert!(
                            same(got as f32, want as f32),
                            "{level} {ty} fill={fill:#04x} n={n}: {got} vs scalar {want}"
                        );
                    }
                }
            }
        }
    }
}

/// F32 and F16 rows of every small length and a few odd longer ones: the vector loops' tails.
#[test]
fn float_kernels_handle_every_tail_length() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(99);
    let lengths: Vec<usize> = (1..=40).chain([63, 64, 65, 100, 257]).collect();
    for level in levels() {
        let k = Kernels::for_level(level);
        for ty in [GgmlType::F32, GgmlType::F16] {
            let t = k.get(ty).unwrap();
            let st = scalar.get(ty).unwrap();
            for &n in &lengths {
                let w = random_row(ty, n, &mut rng, 2.0);
                let a = random_row(ty, n, &mut rng, 2.0);
                let want = (st.vec_dot.unwrap())(n, &w, &a) as f64;
                let got = (t.vec_dot.unwrap())(n, &w, &a) as f64;
                assert!(
                    same(got as f32, want as f32),
                    "{level} {ty} n={n}: {got} vs {want}"
                );

                let (mut wf, mut gf) = (vec![0f32; n], vec![0f32; n]);
                (st.to_float.unwrap())(&w, &mut wf);
                (t.to_float.unwrap())(&w, &mut gf);
                assert_eq!(wf, gf, "{level} {ty} to_float n={n}");

                let x: Vec<f32> = (0..n).map(|_| rng.f32() * 70000.0).collect();
                let size = ty.row_size(n).unwrap();
                let (mut wq, mut gq) = (vec![0u8; size], vec![0u8; size]);
                (st.from_float.unwrap())(&x, &mut wq);
                (t.from_float.unwrap())(&x, &mut gq);
                assert_eq!(wq, gq, "{level} {ty} from_float n={n}");
            }
        }
    }
}

/// On aarch64 the levels must really install their own kernels (a level that silently kept the
/// scalar entries would pass every comparison above): every kind of every quantized format, with a
/// tile, and dotprod's differ from plain NEON's.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_levels_install_their_own_kernels() {
    use GgmlType::*;
    let scalar = Kernels::for_level(Level::Scalar);
    let neon = Kernels::for_level(Level::Neon);
    let addr = |k: &Kernels, ty: GgmlType| {
        let t = k.get(ty).unwrap();
        (
            t.to_float.map(|f| f as usize),
            t.from_float.map(|f| f as usize),
            t.vec_dot.map(|f| f as usize),
        )
    };
    let kind = |k: &Kernels, ty: GgmlType, kind: DotKind| {
        let t = k.get(ty).unwrap();
        (
            t.dot(kind).map(|f| f as usize),
            t.tile(kind).map(|f| f as usize),
        )
    };
    let quant_dots = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K];
    for ty in quant_dots.into_iter().chain([F32, F16, BF16]) {
        assert_ne!(addr(&neon, ty).2, addr(&scalar, ty).2, "neon vec_dot {ty}");
    }
    for ty in [
        F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
    ] {
        assert_ne!(addr(&neon, ty).0, addr(&scalar, ty).0, "neon to_float {ty}");
    }
    for ty in [F16, BF16, Q8_0, Q8_1, Q8_K] {
        assert_ne!(
            addr(&neon, ty).1,
            addr(&scalar, ty).1,
            "neon from_float {ty}"
        );
    }
    let dp = Level::NeonDotprod
        .is_supported()
        .then(|| Kernels::for_level(Level::NeonDotprod));
    for ty in quant_dots {
        for kd in KINDS {
            let s = kind(&scalar, ty, kd);
            if s.0.is_none() {
                continue;
            }
            let n = kind(&neon, ty, kd);
            assert!(n.0.is_some() && n.0 != s.0, "neon {ty} {kd:?} dot");
            assert!(n.1.is_some(), "neon {ty} {kd:?} tile");
            if let Some(dp) = &dp {
                let d = kind(dp, ty, kd);
                assert!(
                    d.0.is_some() && d.0 != s.0 && d.0 != n.0,
                    "dotprod {ty} {kd:?}"
                );
                assert!(d.1.is_some() && d.1 != n.1, "dotprod {ty} {kd:?} tile");
            }
        }
    }
}

/// The aarch64 activation quantizers compute exactly what the scalar ones do (same scale, same
/// rounding, same sums), so they are held to byte equality, including Q8_1's `s` and Q8_K's
/// `bsums` and sign choice, which the dequantizing comparison above cannot see.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_activation_quantizers_are_bit_exact() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x5eed);
    for level in levels() {
        let k = Kernels::for_level(level);
        for at in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            for nb in [1, 2, 5] {
                let n = nb * at.block_size();
                let mut inputs: Vec<Vec<f32>> = vec![
                    (0..n).map(|_| rng.f32() * 3.0).collect(),
                    vec![0.0; n],
                    vec![-0.75; n],
                    // Exact halves after scaling: amax 127 makes id 1, so k + 0.5 hits the ties.
                    (0..n)
                        .map(|i| {
                            if i % 32 == 0 {
                                127.0
                            } else {
                                (i % 50) as f32 - 24.5
                            }
                        })
                        .collect(),
                    // +amax and -amax both present, the negative one first.
                    (0..n)
                        .map(|i| {
                            if i % 9 == 4 {
                                -2.0
                            } else if i % 9 == 7 {
                                2.0
                            } else {
                                rng.f32()
                            }
                        })
                        .collect(),
                    (0..n)
                        .map(|i| if i % 5 == 0 { 1e6 } else { rng.f32() * 1e-6 })
                        .collect(),
                ];
                inputs.push((0..n).map(|i| (i as f32 * 0.37).sin() * 1e-30).collect());
                for x in inputs {
                    let size = at.row_size(n).unwrap();
                    let (mut want, mut got) = (vec![0u8; size], vec![0u8; size]);
                    (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut want);
                    (k.get(at).unwrap().from_float.unwrap())(&x, &mut got);
                    assert_eq!(want, got, "{level} {at} n={n}");
                }
            }
        }
    }
}

/// Levels other than the scalar reference.
fn optimised_levels() -> Vec<Level> {
    levels()
        .into_iter()
        .filter(|&l| l != Level::Scalar)
        .collect()
}

/// Activation rows that probe rounding: exact ties at the quantization step, zeros, equal values,
/// huge and tiny magnitudes, subnormals, a lone outlier.
fn probe_rows(n: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    vec![
        // With 127 in every block, Q8_0's step is exactly 1: every other value is a tie.
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 255) as f32 - 127.5
                }
            })
            .collect(),
        // Q8_K: the largest magnitude is -127, so its step is exactly 1 too (ties round to even).
        (0..n)
            .map(|i| {
                if i % 256 == 3 {
                    -127.0
                } else {
                    (i % 253) as f32 * 0.5 - 63.0
                }
            })
            .collect(),
        vec![0.0; n],
        vec![-3.25; n],
        (0..n).map(|_| rng.f32() * 3e7).collect(),
        (0..n).map(|_| rng.f32() * 1e-41).collect(),
        (0..n)
            .map(|i| if i == n / 2 { 1e5 } else { rng.f32() })
            .collect(),
        // Both signs of the largest magnitude: the first one found sets Q8_K's sign.
        (0..n)
            .map(|i| match i % 64 {
                5 => -2.0,
                9 => 2.0,
                _ => rng.f32(),
            })
            .collect(),
    ]
}

#[test]
fn activation_quantizers_give_the_reference_bytes() {
    // Every level replicates the reference's arithmetic exactly.
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(7);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for at in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
            GgmlType::BF16,
        ] {
            for nb in block_counts() {
                let n = nb * if at == GgmlType::Q8_K { 256 } else { 32 };
                for (r, x) in probe_rows(n, &mut rng).into_iter().enumerate() {
                    let size = at.row_size(n).unwrap();
                    let (mut want, mut got) = (vec![0u8; size], vec![0u8; size]);
                    (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut want);
                    (k.get(at).unwrap().from_float.unwrap())(&x, &mut got);
                    assert!(
                        want == got,
                        "{level} {at} n={n} probe row {r}: bytes differ from the reference"
                    );
                }
            }
        }
        // Float formats at lengths that are not a multiple of the vector width.
        for n in [1, 7, 9, 15, 17, 100] {
            let x: Vec<f32> = (0..n).map(|_| rng.f32() * 70000.0).collect();
            for at in [GgmlType::F16, GgmlType::BF16] {
                let (mut want, mut got) = (vec![0u8; 2 * n], vec![0u8; 2 * n]);
                (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut want);
                (k.get(at).unwrap().from_float.unwrap())(&x, &mut got);
                assert_eq!(want, got, "{level} {at} n={n}");
            }
        }
    }
}

/// A weight row whose quant bytes are all `byte`, with every f16 scale set to `d`.
fn constant_row(ty: GgmlType, n: usize, byte: u8, d: f32) -> Vec<u8> {
    let bs = ty.type_size();
    let mut v = vec![byte; ty.row_size(n).unwrap()];
    for b in v.chunks_exact_mut(bs) {
        for &off in f16_fields(ty) {
            b[off..off + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        }
    }
    v
}

#[test]
fn vec_dot_is_exact_at_the_extremes_of_the_integer_ranges() {
    // All quants at their extremes (0x00, 0xFF, 0x80, 0x7F) against activations of ±127:
    // the largest integer partial sums, where a saturating multiply-add would show.
    let scalar = Kernels::for_level(Level::Scalar);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_size() > 1) {
            let at = scalar.get(ty).unwrap().vec_dot_type;
            for nb in [1, 3, 8] {
                let n = nb * ty.block_size();
                for byte in [0x00u8, 0xFF, 0x80, 0x7F, 0x55] {
                    let w = constant_row(ty, n, byte, 1.0);
                    for pattern in [1.0f32, -1.0, 0.0] {
                        let x: Vec<f32> = (0..n)
                            .map(|i| {
                                if pattern == 0.0 {
                                    if i % 2 == 0 {
                                        1.0
                                    } else {
                                        -1.0
                                    }
                                } else {
                                    pattern
                                }
                            })
                            .collect();
                        let mut a = vec![0u8; at.row_size(n).unwrap()];
                        (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut a);
                        let want = (scalar.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a);
                        let got = (k.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a);
                        let (exact, mag) = dequantized_dot(&scalar, ty, &w, &a, n);
                        // Against the exact value: the f16 rounding of Q8_1's `s` (Q4_1, Q5_1).
                        assert!(
                            (want as f64 - exact).abs() <= 2e-3 * mag,
                            "scalar {ty} {byte:#x} {pattern}: {want} vs {exact}"
                        );
                        assert!(
                            same(got, want),
                            "{level} {ty} n={n} {byte:#x} {pattern}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn vec_dot_handles_tiny_subnormal_and_huge_scales() {
    // f16 scales from the smallest subnormal to near the f16 maximum, activations from 1e-30 to
    // 1e6: results must stay within float rounding of the scalar kernel (no flush-to-zero, no
    // spurious overflow).
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x5eed);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_size() > 1) {
            let at = scalar.get(ty).unwrap().vec_dot_type;
            let n = 3 * ty.block_size();
            for d in [6e-8f32, 3e-6, 0.5, 3e4] {
                for xs in [1e-30f32, 1.0, 1e6] {
                    let mut w: Vec<u8> = (0..ty.row_size(n).unwrap()).map(|_| rng.byte()).collect();
                    for b in w.chunks_exact_mut(ty.type_size()) {
                        for &off in f16_fields(ty) {
                            b[off..off + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                        }
                    }
                    let x: Vec<f32> = (0..n).map(|_| rng.f32() * xs).collect();
                    let mut a = vec![0u8; at.row_size(n).unwrap()];
                    (scalar.get(at).unwrap().from_float.unwrap())(&x, &mut a);
                    let want = (scalar.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                    let got = (k.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                    assert!(
                        same(got as f32, want as f32),
                        "{level} {ty} d={d} xs={xs}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn float_formats_at_lengths_that_are_not_a_multiple_of_the_vector_width() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(99);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            for n in [1, 5, 8, 13, 31, 33, 100, 257] {
                let w = random_row(ty, n, &mut rng, 2.0);
                let a = random_row(ty, n, &mut rng, 2.0);
                let want = (scalar.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                let got = (k.get(ty).unwrap().vec_dot.unwrap())(n, &w, &a) as f64;
                assert!(
                    same(got as f32, want as f32),
                    "{level} {ty} n={n}: {got} vs {want}"
                );
                let (mut fw, mut fg) = (vec![0f32; n], vec![0f32; n]);
                (scalar.get(ty).unwrap().to_float.unwrap())(&w, &mut fw);
                (k.get(ty).unwrap().to_float.unwrap())(&w, &mut fg);
                assert_eq!(fw, fg, "{level} {ty} n={n} to_float");
                // Rows that start at an odd address (an f16 tensor inside a byte buffer).
                let mut shifted = vec![0u8; w.len() + 1];
                shifted[1..].copy_from_slice(&w);
                (k.get(ty).unwrap().to_float.unwrap())(&shifted[1..], &mut fg);
                assert_eq!(fw, fg, "{level} {ty} n={n} to_float, unaligned");
            }
        }
    }
}

#[test]
fn dequantize_is_exact_for_extreme_scales() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xd00d);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES.into_iter().filter(|t| t.block_size() > 1) {
            let n = 2 * ty.block_size();
            for d in [0.0f32, 6e-8, 1e-5, 65504.0, -2.5] {
                let mut w: Vec<u8> = (0..ty.row_size(n).unwrap()).map(|_| rng.byte()).collect();
                for b in w.chunks_exact_mut(ty.type_size()) {
                    for &off in f16_fields(ty) {
                        b[off..off + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    }
                }
                let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
                (scalar.get(ty).unwrap().to_float.unwrap())(&w, &mut want);
                (k.get(ty).unwrap().to_float.unwrap())(&w, &mut got);
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                assert!(same, "{level} {ty} d={d}");
            }
        }
    }
}

const KINDS: [DotKind; 4] = [
    DotKind::Plain,
    DotKind::Tiled,
    DotKind::Repacked,
    DotKind::RepackedGemm,
];

/// `nc` activation rows of `n` elements converted to `at` with the scalar quantizer.
fn activations(scalar: &Kernels, at: GgmlType, n: usize, nc: usize, rng: &mut Rng) -> Vec<u8> {
    let ab = at.row_size(n).unwrap();
    let mut a = vec![0u8; ab * nc];
    for o in a.chunks_exact_mut(ab) {
        let x: Vec<f32> = (0..n)
            .map(|i| rng.f32() * if i % 17 == 3 { 8.0 } else { 1.0 })
            .collect();
        (scalar.get(at).unwrap().from_float.unwrap())(&x, o);
    }
    a
}

/// Every kind's dot product, and its tile where the level has one, against the scalar kind,
/// element by element: row and token counts around the tiles' shapes, several row lengths, tiles
/// at offsets inside larger matrices, writing exactly their elements of a strided output.
#[test]
fn every_kind_and_tile_is_bit_exact_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x7113_5eed);
    let (nr, nc) = (9, 9);
    // (first row, rows, first token, tokens) of each tile call.
    let tiles = [
        (0, 9, 0, 9),
        (0, 1, 0, 1),
        (1, 4, 2, 3),
        (3, 5, 1, 7),
        (0, 8, 0, 8),
        (2, 7, 0, 2),
        (5, 2, 4, 5),
    ];
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES {
            let (st, lt) = (scalar.get(ty).unwrap(), k.get(ty).unwrap());
            let at = st.vec_dot_type;
            assert_eq!(lt.vec_dot_type, at, "{level} {ty}");
            for nb in [1, 3, 8] {
                let n = nb * ty.block_size().max(32);
                let (rb, ab) = (ty.row_size(n).unwrap(), at.row_size(n).unwrap());
                let w: Vec<u8> = (0..nr)
                    .flat_map(|_| random_row(ty, n, &mut rng, 1.0))
                    .collect();
                let a = activations(&scalar, at, n, nc, &mut rng);
                let (wr, ar) = (|r: usize| &w[r * rb..][..rb], |t: usize| &a[t * ab..][..ab]);
                for kind in KINDS {
                    let Some(want_dot) = st.dot(kind) else {
                        assert!(lt.dot(kind).is_none() && lt.tile(kind).is_none());
                        continue;
                    };
                    let got_dot = lt
                        .dot(kind)
                        .unwrap_or_else(|| panic!("{level} {ty} has no {kind:?} dot"));
                    let mut want = vec![0f32; nr * nc];
                    for t in 0..nc {
                        for r in 0..nr {
                            want[t * nr + r] = want_dot(n, wr(r), ar(t));
                            let got = got_dot(n, wr(r), ar(t));
                            assert!(
                                same(got, want[t * nr + r]),
                                "{level} {ty} {kind:?} n={n} row {r} token {t}: {got} vs {}",
                                want[t * nr + r]
                            );
                        }
                    }
                    let Some(tile) = lt.tile(kind) else { continue };
                    for (r0, tr, t0, tc) in tiles {
                        let stride = tr + 3;
                        let sentinel = -12345.0f32;
                        let mut out = vec![sentinel; stride * tc + 2];
                        // SAFETY: `out` holds `c * stride + r` for every `c < tc`, `r < tr`.
                        unsafe {
                            tile(
                                n,
                                &w[r0 * rb..(r0 + tr) * rb],
                                rb,
                                tr,
                                &a[t0 * ab..(t0 + tc) * ab],
                                ab,
                                tc,
                                out.as_mut_ptr(),
                                stride,
                            )
                        };
                        for (i, &got) in out.iter().enumerate() {
                            let (c, r) = (i / stride, i % stride);
                            if c < tc && r < tr {
                                let e = want[(t0 + c) * nr + r0 + r];
                                assert!(
                                    same(got, e),
                                    "{level} {ty} {kind:?} tile {tr}x{tc} at ({r0}, {t0}) n={n} \
                                     row {r} token {c}: {got} vs {e}"
                                );
                            } else {
                                assert_eq!(got, sentinel, "{level} {ty} {kind:?}: wrote [{i}]");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whole matrix products (the kind each token takes, the tiles over thread chunks) equal the
/// scalar level's bit for bit, for row counts that are and are not repacked by llama.cpp and
/// batch sizes around the tiled threshold and the gemm groups of four.
#[test]
fn matmul_is_bit_exact_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xa11_70c5);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in WEIGHT_TYPES {
            let at = scalar.get(ty).unwrap().vec_dot_type;
            let n = 2 * ty.block_size().max(64);
            for rows in [8, 13, 24] {
                let w: Vec<u8> = (0..rows)
                    .flat_map(|_| random_row(ty, n, &mut rng, 1.0))
                    .collect();
                let m = nib_simd::MatRef {
                    ty,
                    rows,
                    cols: n,
                    data: &w,
                };
                for toks in [1, 3, 4, 6, 8, 9] {
                    let a = activations(&scalar, at, n, toks, &mut rng);
                    let mut want = vec![0f32; rows * toks];
                    let mut got = vec![0f32; rows * toks];
                    nib_simd::matmul(&scalar, m, &a, toks, &mut want);
                    nib_simd::matmul(&k, m, &a, toks, &mut got);
                    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            same(g, e),
                            "{level} {ty} {rows} rows {toks} tokens [{i}]: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}

/// Tiles over batches whose activations exceed what a tile keeps in cache at once (long rows, many
/// tokens, leftover rows and tokens): the tile's own blocking of the batch changes no element.
#[test]
fn tiles_over_long_rows_and_batches_are_bit_exact() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xb10c);
    let (nr, nc) = (6, 23);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            let (st, lt) = (scalar.get(ty).unwrap(), k.get(ty).unwrap());
            let at = st.vec_dot_type;
            let n = 4096;
            let (rb, ab) = (ty.row_size(n).unwrap(), at.row_size(n).unwrap());
            let w: Vec<u8> = (0..nr)
                .flat_map(|_| random_row(ty, n, &mut rng, 1.0))
                .collect();
            let a = activations(&scalar, at, n, nc, &mut rng);
            for kind in KINDS {
                let (Some(dot), Some(tile)) = (st.dot(kind), lt.tile(kind)) else {
                    continue;
                };
                let mut out = vec![0f32; nr * nc];
                // SAFETY: `out` holds `c * nr + r` for every `c < nc`, `r < nr`.
                unsafe { tile(n, &w, rb, nr, &a, ab, nc, out.as_mut_ptr(), nr) };
                for t in 0..nc {
                    for r in 0..nr {
                        let want = dot(n, &w[r * rb..][..rb], &a[t * ab..][..ab]);
                        let got = out[t * nr + r];
                        assert!(
                            same(got, want),
                            "{level} {ty} {kind:?} row {r} token {t}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
