//! The weight quantizers (`from_float` of the weight formats): bytes identical to ggml's
//! reference quantizers (golden hashes), bounded round-trip error, and structural edge cases.

use nib_simd::formats::weight_quantizer;
use nib_simd::GgmlType;
use nib_simd::{Kernels, Level};

/// A deterministic test row of `n` elements (a multiple of 256): per super-block one of eight
/// shapes — Gaussian-like at three scales, uniform, Gaussian with rare large outliers, zeros or
/// near-zero noise, a constant, small integers.
fn test_input(n: usize) -> Vec<f32> {
    let mut s = 0x853c_49e6_748f_ea9b_u64;
    let mut unif = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut out = Vec::with_capacity(n);
    for blk in 0..n / 256 {
        for _ in 0..256 {
            let g = unif() + unif() + unif() + unif() - 2.0;
            let v = match blk % 8 {
                0 => g * 0.02,
                1 => g * 1.5,
                2 => g * 3e-4,
                3 => unif() * 2.0 - 1.0,
                4 => g * if unif() < 0.01 { 40.0 } else { 1.0 },
                5 => {
                    if blk % 16 == 5 {
                        0.0
                    } else {
                        g * 1e-25
                    }
                }
                6 => -0.37,
                _ => (g * 4.0).round(),
            };
            out.push(v);
        }
    }
    out
}

const FORMATS: [GgmlType; 10] = {
    use GgmlType::*;
    [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]
};

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut y = vec![0u8; ty.row_size(x.len()).unwrap()];
    (weight_quantizer(ty).expect("weight quantizer"))(x, &mut y);
    y
}

fn dequantize(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let k = Kernels::for_level(Level::Scalar);
    let mut y = vec![0f32; n];
    (k.get(ty).unwrap().to_float.unwrap())(q, &mut y);
    y
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn quantized_bytes_match_ggml() {
    // Hashes of the output of llama.cpp's `quantize_row_*_ref` (ggml-base, built from the
    // reference tree) for `test_input(256 * 48)`; for the legacy formats the Python `gguf`
    // package (0.19) gives the same bytes.
    let want: [(GgmlType, u64); 10] = {
        use GgmlType::*;
        [
            (Q4_0, 0xcf4c6ac2134e0b67),
            (Q4_1, 0x6981eb9c8f9856b3),
            (Q5_0, 0xf0f8f751478fac13),
            (Q5_1, 0xcd0f87869e3983d5),
            (Q8_0, 0x1987336f28a217b0),
            (Q2_K, 0x4a963f646617abe3),
            (Q3_K, 0xb36fdd1efc2fdf6c),
            (Q4_K, 0x8dab406c85e5f901),
            (Q5_K, 0xd51d4ca3a586a0cb),
            (Q6_K, 0x5bd3d09c6a843673),
        ]
    };
    let x = test_input(256 * 48);
    for (ty, hash) in want {
        let q = quantize(ty, &x);
        assert_eq!(
            fnv1a(&q),
            hash,
            "{ty}: quantized bytes differ from ggml's reference quantizer"
        );
    }
}

/// Relative RMS error on the Gaussian-like super-blocks, per format: about 8% above what the
/// reference quantizers achieve on `test_input` (so a weaker search fails).
fn rms_bound(ty: GgmlType) -> f64 {
    use GgmlType::*;
    match ty {
        Q4_0 => 0.093,
        Q4_1 => 0.09,
        Q5_0 => 0.056,
        Q5_1 => 0.042,
        Q8_0 => 0.0074,
        Q2_K => 0.285,
        Q3_K => 0.142,
        Q4_K => 0.077,
        Q5_K => 0.0405,
        Q6_K => 0.0235,
        _ => unreachable!(),
    }
}

#[test]
fn round_trip_error_is_bounded() {
    let n = 256 * 48;
    let x = test_input(n);
    let mut failures = vec![];
    for ty in FORMATS {
        let y = dequantize(ty, &quantize(ty, &x), n);
        // Relative RMS over the Gaussian-like super-blocks (shapes 0, 1, 3, 4).
        let (mut err, mut sig) = (0f64, 0f64);
        for (blk, (xs, ys)) in x.chunks(256).zip(y.chunks(256)).enumerate() {
            if [0, 1, 3, 4].contains(&(blk % 8)) {
                let scale = xs.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
                err += xs
                    .iter()
                    .zip(ys)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum::<f64>()
                    / scale;
                sig += 1.0;
            }
        }
        let rel = (err / sig).sqrt();
        eprintln!("{ty}: relative RMS error {rel:.4}");
        if rel > rms_bound(ty) {
            failures.push(format!(
                "{ty}: relative RMS error {rel:.4} > {}",
                rms_bound(ty)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn legacy_formats_are_within_one_step_of_every_element() {
    // Q8_0, Q5_x, Q4_x: every element is within half a step (one step where the symmetric formats
    // clip their most negative code) plus the f16 rounding of the block's scale and minimum.
    let mut x = test_input(256 * 16);
    x.extend((0..256).map(|i| (i as f32 * 0.37).sin() * 1e4));
    let n = x.len();
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
    ] {
        let y = dequantize(ty, &quantize(ty, &x), n);
        for (b, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let (lo, hi) = xs
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            let amax = lo.abs().max(hi.abs());
            let (step, slack) = match ty {
                GgmlType::Q8_0 => (amax / 127.0, 0.5),
                GgmlType::Q5_0 => (amax / 16.0, 1.0),
                GgmlType::Q4_0 => (amax / 8.0, 1.0),
                GgmlType::Q5_1 => ((hi - lo) / 31.0, 0.5),
                _ => ((hi - lo) / 15.0, 0.5),
            };
            // f16 rounding of d (relative 2^-11, absolute 2^-25 when subnormal) times the code,
            // plus that of the minimum.
            let qmax = match ty {
                GgmlType::Q8_0 => 127.0,
                GgmlType::Q5_1 => 31.0,
                GgmlType::Q4_1 => 15.0,
                _ => 16.0,
            };
            let f16_rounding = (amax + lo.abs()) * 2f32.powi(-10) + (qmax + 1.0) * 2f32.powi(-25);
            for (i, (a, b2)) in xs.iter().zip(ys).enumerate() {
                let tol = step * slack * 1.001 + f16_rounding + 1e-30;
                assert!(
                    (a - b2).abs() <= tol,
                    "{ty} block {b} elem {i}: {a} -> {b2} (tol {tol})"
                );
            }
        }
    }
}

#[test]
fn zeros_and_constants_quantize_exactly() {
    for ty in FORMATS {
        let n = 512;
        let zeros = vec![0f32; n];
        let q = quantize(ty, &zeros);
        assert!(
            dequantize(ty, &q, n).iter().all(|&v| v == 0.0),
            "{ty}: zeros"
        );
        // A constant that f16 represents exactly comes back exactly from every format (the
        // formats with a minimum store it directly; the others map it to their extreme code).
        for c in [0.5f32, -2.0, 3.0] {
            let x = vec![c; n];
            let y = dequantize(ty, &quantize(ty, &x), n);
            assert!(
                y.iter().all(|&v| (v - c).abs() <= c.abs() * 1e-3),
                "{ty}: constant {c} -> {:?}",
                &y[..4]
            );
        }
    }
}

#[test]
fn the_kernel_tables_hold_the_weight_quantizers() {
    // Level-independent: every table's `from_float` is the weight quantizer, except Q8_0's,
    // which is the activation quantizer (ties to even; the weight quantizer rounds half away).
    let x = test_input(256 * 8);
    let mut ties = x.clone();
    ties[..32].copy_from_slice(&std::array::from_fn::<f32, 32, _>(|i| {
        if i == 0 {
            127.0
        } else {
            i as f32 + 0.5
        }
    }));
    for level in Level::ALL.into_iter().filter(|l| l.is_supported()) {
        let k = Kernels::for_level(level);
        for ty in FORMATS {
            let mut y = vec![0u8; ty.row_size(x.len()).unwrap()];
            (k.get(ty).unwrap().from_float.unwrap())(&ties, &mut y);
            if ty == GgmlType::Q8_0 {
                assert_ne!(
                    y,
                    quantize(ty, &ties),
                    "{level} {ty}: the activation quantizer rounds ties to even"
                );
            } else {
                assert_eq!(y, quantize(ty, &ties), "{level} {ty}");
            }
        }
    }
}
