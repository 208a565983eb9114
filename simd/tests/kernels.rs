//! Every kernel level this CPU supports against the scalar reference, bit for bit: every weight
//! format and every summation order the reference table has (each [`Order`]), the tile kernels
//! against their order's `VecDot` and the interleaved layouts' tiles against the plain layout,
//! whole matrix products against the scalar level's, dequantization and activation quantization,
//! on rows of several lengths (one block, odd block counts, many blocks) and edge values.
//! Under qemu these run once per emulated CPU (`QEMU_CPU=neoverse-n1`, `cortex-a72`).

use half::f16;
use nib_simd::interleave::{self, Layout};
use nib_simd::testing::{f16_fields, random_row, Rng};
use nib_simd::traits::VecDot;
use nib_simd::{GgmlType, Kernels, Level, MatRef, Order, Tile};

fn levels() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
}

/// Levels other than the scalar reference.
fn optimised_levels() -> Vec<Level> {
    levels()
        .into_iter()
        .filter(|&l| l != Level::Scalar)
        .collect()
}

/// Every type with a dot product in the reference table: what a new format's table line adds is
/// tested with no change here.
fn weight_types() -> Vec<GgmlType> {
    let scalar = Kernels::for_level(Level::Scalar);
    scalar
        .types()
        .filter(|&ty| scalar.get(ty).unwrap().dot(Order::Vec).is_some())
        .collect()
}

/// Every quantized activation type (the `vec_dot_type` of some weight type).
fn activation_types() -> Vec<GgmlType> {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut v: Vec<GgmlType> = weight_types()
        .into_iter()
        .map(|ty| scalar.get(ty).unwrap().vec_dot_type)
        .filter(|t| t.is_quantized())
        .collect();
    v.sort_by_key(|t| t.id());
    v.dedup();
    v
}

fn block_counts() -> [usize; 8] {
    // Odd and even counts around the SIMD kernels' unrolling and a longer row.
    [1, 2, 3, 4, 5, 7, 8, 17]
}

/// Same bits (any NaN equals any NaN).
fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Activations for `n` elements of `ty`'s `vec_dot_type`, quantized by the scalar reference.
fn activations(scalar: &Kernels, ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let at = scalar.get(ty).unwrap().vec_dot_type;
    let mut a = vec![0u8; at.row_size(x.len()).unwrap()];
    (scalar.get(at).unwrap().from_float.unwrap())(x, &mut a);
    a
}

/// Every summation order of `ty` the scalar table has, with the scalar and the level's function.
fn dots(scalar: &Kernels, k: &Kernels, ty: GgmlType) -> Vec<(Order, VecDot, VecDot)> {
    let (s, t) = (scalar.get(ty).unwrap(), k.get(ty).unwrap());
    Order::ALL
        .into_iter()
        .filter_map(|order| {
            let want = s.dot(order)?;
            let got = t.dot(order).unwrap_or_else(|| {
                panic!(
                    "{} {ty}: no {order:?} dot product (the scalar table has one)",
                    k.level()
                )
            });
            Some((order, want, got))
        })
        .collect()
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
        for ty in weight_types() {
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

/// The scalar reference itself is close to the exact dot product of the dequantized rows (it
/// defines the float order, so this only guards against a broken reference).
#[test]
fn scalar_dot_products_are_close_to_the_exact_value() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    for ty in weight_types() {
        for nb in block_counts() {
            let n = nb * ty.block_size().max(32);
            for scale in [1.0f32, 1e-3, 100.0] {
                let w = random_row(ty, n, &mut rng, scale);
                let x: Vec<f32> = (0..n).map(|_| rng.f32() * scale).collect();
                let a = activations(&scalar, ty, &x);
                let (exact, mag) = dequantized_dot(&scalar, ty, &w, &a, n);
                for (order, want, _) in dots(&scalar, &scalar, ty) {
                    let want = want(n, &w, &a) as f64;
                    // f16 products in the legacy formats round once per block; the rest is f32.
                    assert!(
                        (want - exact).abs() <= 2e-3 * mag + 1e-6,
                        "scalar {ty} {order:?} n={n} s={scale}: {want} vs exact {exact}"
                    );
                }
            }
        }
    }
}

/// Weight rows to try: random at several scales, every quant byte at an extreme or a pattern,
/// scales from the smallest subnormal to near the f16 maximum.
fn weight_rows(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut rows: Vec<Vec<u8>> = [1.0f32, 1e-3, 100.0]
        .into_iter()
        .map(|s| random_row(ty, n, rng, s))
        .collect();
    if ty.block_size() > 1 {
        for fill in [0x00u8, 0xFF, 0x80, 0x7F, 0x55, 0xAA] {
            rows.push(constant_row(ty, n, fill, 1.0));
        }
        for d in [6e-8f32, 3e-6, 0.5, 3e4, -2.0] {
            let mut w: Vec<u8> = (0..ty.row_size(n).unwrap()).map(|_| rng.byte()).collect();
            for b in w.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    b[off..off + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                }
            }
            rows.push(w);
        }
    }
    rows
}

/// Activation rows to try: random, ±1 patterns (all quants at ±127), tiny and huge magnitudes.
fn activation_rows(n: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    vec![
        (0..n).map(|_| rng.f32()).collect(),
        vec![1.0; n],
        vec![-1.0; n],
        (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    -2.0
                } else {
                    1.0 + (i % 7) as f32 * 0.25
                }
            })
            .collect(),
        (0..n).map(|_| rng.f32() * 1e-30).collect(),
        (0..n).map(|_| rng.f32() * 1e6).collect(),
    ]
}

#[test]
fn every_dot_product_gives_the_scalar_bits_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x0dd5_17e5);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in weight_types() {
            let counts: Vec<usize> = if ty.block_size() > 1 {
                block_counts().to_vec()
            } else {
                // The float formats: every short length, and odd ones around the vector widths.
                (1..=40)
                    .chain([63, 64, 65, 100, 127, 128, 129, 257])
                    .collect()
            };
            for nb in counts {
                let n = nb * ty.block_size();
                let ws = weight_rows(ty, n, &mut rng);
                for x in activation_rows(n, &mut rng) {
                    let a = if ty.block_size() > 1 {
                        activations(&scalar, ty, &x)
                    } else {
                        random_row(ty, n, &mut rng, 2.0)
                    };
                    for (i, w) in ws.iter().enumerate() {
                        for (order, want, got) in dots(&scalar, &k, ty) {
                            let (want, got) = (want(n, w, &a), got(n, w, &a));
                            assert!(
                                same_bits(want, got),
                                "{level} {ty} {order:?} n={n} weights #{i}: {got:e} vs scalar {want:e}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A matrix of `rows` rows of `n` elements, each `stride` bytes apart (`stride` ≥ row size).
fn matrix(ty: GgmlType, n: usize, rows: usize, stride: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = ty.row_size(n).unwrap();
    let mut m = vec![0u8; stride * rows.max(1)];
    for r in 0..rows {
        let row = match rng.below(8) {
            0 => constant_row(ty, n, [0x00, 0xFF, 0x80, 0x7F][rng.below(4)], 1.0),
            1 => random_row(ty, n, rng, 1e-3),
            _ => random_row(ty, n, rng, 1.0),
        };
        m[r * stride..r * stride + rb].copy_from_slice(&row);
    }
    m
}

#[test]
fn tiles_give_their_orders_bits() {
    // Every tile kernel, on blocks of every shape around its tile sizes, with row and output
    // strides larger than needed: each element must equal its order's `VecDot` bit for bit, and
    // nothing outside the block may be written.
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x7113);
    for level in levels() {
        let k = Kernels::for_level(level);
        for ty in weight_types() {
            let t = k.get(ty).unwrap();
            for order in Order::ALL {
                let Some(tile) = t.tile(order) else { continue };
                let dot = t.dot(order).expect("a tile's order has a VecDot");
                for (nb, nr, nc) in [
                    (1, 1, 1),
                    (2, 3, 2),
                    (3, 4, 4),
                    (1, 5, 3),
                    (5, 8, 1),
                    (2, 9, 5),
                    (3, 12, 7),
                    (1, 16, 8),
                    (4, 17, 9),
                    (2, 24, 6),
                    (7, 7, 12),
                ] {
                    let n = nb * ty.block_size();
                    let rb = ty.row_size(n).unwrap();
                    let ws = rb + [0, ty.type_size(), 2 * ty.type_size()][rng.below(3)];
                    let w = matrix(ty, n, nr, ws, &mut rng);
                    let at = t.vec_dot_type;
                    let ab = at.row_size(n).unwrap();
                    let as_ = ab + [0, at.type_size()][rng.below(2)];
                    let mut a = vec![0u8; as_ * nc];
                    for c in 0..nc {
                        let x: Vec<f32> = match rng.below(4) {
                            0 => (0..n)
                                .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
                                .collect(),
                            _ => (0..n).map(|_| rng.f32()).collect(),
                        };
                        a[c * as_..c * as_ + ab].copy_from_slice(&activations(&scalar, ty, &x));
                    }
                    let os = nr + rng.below(3);
                    let sentinel = f32::from_bits(0x7fc0_1234);
                    let mut out = vec![sentinel; os * nc + 2];
                    // SAFETY: `out` has `os * nc` elements, more than `c * os + r` for every
                    // `c < nc`, `r < nr`, and nothing else accesses it.
                    unsafe {
                        tile(&Tile {
                            n,
                            w: &w,
                            w_stride: ws,
                            rows: nr,
                            a: &a,
                            a_stride: as_,
                            tokens: nc,
                            out: out.as_mut_ptr(),
                            out_stride: os,
                        })
                    };
                    for (i, &v) in out.iter().enumerate() {
                        let (c, r) = (i / os, i % os);
                        if c < nc && r < nr {
                            let want = dot(n, &w[r * ws..], &a[c * as_..]);
                            assert!(
                                same_bits(want, v),
                                "{level} {ty} {order:?} tile nb={nb} {nr}×{nc}: ({r}, {c}) = {v:e}, VecDot {want:e}"
                            );
                        } else {
                            assert_eq!(
                                v.to_bits(),
                                sentinel.to_bits(),
                                "{level} {ty} {order:?} tile wrote outside its block at {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_gives_the_scalar_bits_at_every_level() {
    // Whole products through `matmul` (order selection, tiles, runs of two orders, threads):
    // rows with and without llama.cpp's repacking multiple of 8, batches across the tiled K-quant
    // threshold and the repacked gemm's groups of 4.
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x3a7);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        // The reference kernels with the level's summation orders.
        let reference = k.reference();
        for ty in weight_types().into_iter().filter(|t| t.block_size() > 1) {
            let at = scalar.get(ty).unwrap().vec_dot_type;
            for (nb, rows, toks) in [
                (2, 8, 1),
                (3, 12, 3),
                (1, 16, 5),
                (2, 13, 8),
                (3, 24, 9),
                (1, 40, 14),
            ] {
                let n = nb * ty.block_size();
                let rb = ty.row_size(n).unwrap();
                let w = matrix(ty, n, rows, rb, &mut rng);
                let x: Vec<f32> = (0..n * toks).map(|_| rng.f32()).collect();
                let mut act = vec![0u8; at.row_size(n).unwrap() * toks];
                nib_simd::quantize_rows(&scalar, at, &x, n, toks, &mut act);
                let m = MatRef::new(ty, rows, n, &w);
                let mut want = vec![0f32; rows * toks];
                let mut got = vec![0f32; rows * toks];
                nib_simd::matmul(&reference, m, &act, toks, &mut want);
                nib_simd::matmul(&k, m, &act, toks, &mut got);
                for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        same_bits(*a, *b),
                        "{level} {ty} {rows}×{n} × {toks} tokens: element {i} {b:e} vs scalar {a:e}"
                    );
                }
            }
        }
    }
}

/// Products of `ty` stored in `layout` (as models load them where the kernels have a tile for
/// it) against the scalar dot product of the layout's order on the plain rows, at every level (the
/// interleaved tiles, and on levels without one, the de-interleaving fallback), for
/// `(blocks, rows, tokens)`.
fn check_layout(layout: Layout, ty: GgmlType, shapes: &[(usize, usize, usize)]) {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0x1e4 ^ ty as u64);
    let mut levels = optimised_levels();
    levels.push(Level::Scalar);
    let at = scalar.get(ty).unwrap().vec_dot_type;
    for level in levels {
        let k = Kernels::for_level(level);
        let order = match k.get(ty).unwrap().interleaved {
            Some(i) if i.layout == layout => i.order,
            _ => nib_simd::matmul::layout_order(layout),
        };
        let dot = scalar.get(ty).unwrap().dot(order).unwrap();
        for &(nb, rows, toks) in shapes {
            let n = nb * 32;
            let (rb, ab) = (ty.row_size(n).unwrap(), at.row_size(n).unwrap());
            let w = matrix(ty, n, rows, rb, &mut rng);
            let x: Vec<f32> = (0..n * toks).map(|_| rng.f32()).collect();
            let mut act = vec![0u8; ab * toks];
            nib_simd::quantize_rows(&scalar, at, &x, n, toks, &mut act);
            let mut wi = w.clone();
            interleave::interleave_in_place(layout, ty, &mut wi, rows, n);
            let m = MatRef {
                layout,
                ..MatRef::new(ty, rows, n, &wi)
            };
            let mut got = vec![f32::NAN; rows * toks];
            nib_simd::matmul(&k, m, &act, toks, &mut got);
            for (i, &g) in got.iter().enumerate() {
                let (t, r) = (i / rows, i % rows);
                let want = dot(n, &w[r * rb..][..rb], &act[t * ab..][..ab]);
                assert!(
                    same_bits(want, g),
                    "{level} {ty} {layout:?} {rows}×{n} × {toks} tokens: element {i} {g:e} vs {want:e}"
                );
            }
        }
    }
}

#[test]
fn interleaved_layouts_give_the_scalar_bits_at_every_level() {
    // Every layout, for every type that fits it (whether or not this CPU's levels have a tile
    // for it: the levels without one de-interleave), on shapes around the tiles: batch and decode
    // tiles (8 and 16 rows, 1 to 8 tokens per tile), leftover tokens, long rows.
    for layout in Layout::INTERLEAVED {
        let g = layout.group_rows();
        for ty in weight_types() {
            if !interleave::fits(layout, ty, 2 * g, 64) {
                continue;
            }
            let shapes: Vec<(usize, usize, usize)> = [
                (1, 1, 1),
                (2, 2, 1),
                (3, 3, 3),
                (5, 5, 4),
                (4, 4, 8),
                (7, 6, 9),
                (33, 2, 1),
                (2, 8, 17),
                (1, 1, 12),
                (64, 6, 2),
            ]
            .into_iter()
            .map(|(nb, groups, toks)| (nb, groups * g, toks))
            .collect();
            check_layout(layout, ty, &shapes);
        }
    }
}

/// Every order a level's matrix products take for a type: over matrices of 8 and 12 rows and
/// batches around llama.cpp's thresholds, and its interleaved layout's.
fn orders_used(t: &nib_simd::TypeTraits) -> Vec<Order> {
    let mut v: Vec<Order> = [8, 12]
        .into_iter()
        .flat_map(|rows| [1, 3, 4, 8, 9].map(|n| (rows, n)))
        .flat_map(|(rows, n)| (0..n).filter_map(move |tok| t.order_for(rows, n, tok)))
        .chain(t.interleaved.map(|i| i.order))
        .collect();
    v.sort_by_key(|&o| o as usize);
    v.dedup();
    v
}

/// A level that kept a scalar entry would pass every comparison above; the x86 levels must install
/// their own function, with a tile, for every order their products take, and their own
/// conversions.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_levels_install_every_variant_and_the_tiles() {
    use GgmlType::*;
    let scalar = Kernels::for_level(Level::Scalar);
    let addr = |f: Option<VecDot>| f.map(|f| f as usize);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in weight_types() {
            let (s, t) = (scalar.get(ty).unwrap(), k.get(ty).unwrap());
            for order in orders_used(t) {
                {
                    assert!(t.dot(order).is_some(), "{level} {ty} {order:?} missing");
                    assert_ne!(
                        addr(t.dot(order)),
                        addr(s.dot(order)),
                        "{level} {ty} {order:?} is scalar"
                    );
                    assert!(t.tile(order).is_some(), "{level} {ty} {order:?} tile");
                }
            }
            if ty != F32 {
                let f = |t: &nib_simd::TypeTraits| t.to_float.map(|f| f as usize);
                assert_ne!(f(t), f(s), "{level} {ty} to_float is scalar");
            }
        }
        for at in activation_types().into_iter().chain([F16, BF16]) {
            let f = |t: &nib_simd::TypeTraits| t.from_float.map(|f| f as usize);
            assert_ne!(
                f(k.get(at).unwrap()),
                f(scalar.get(at).unwrap()),
                "{level} {at} from_float"
            );
        }
        for (ty, layout) in [
            (Q4_0, Layout::Interleaved8),
            (Q4_1, Layout::Blocks4),
            (Q5_0, Layout::Blocks4),
            (Q5_1, Layout::Blocks4),
            (Q8_0, Layout::Blocks4),
        ] {
            let i = k.get(ty).unwrap().interleaved;
            assert_eq!(
                i.map(|i| i.layout),
                Some(layout),
                "{level} {ty} interleaved tile"
            );
        }
    }
}

#[test]
fn activation_quantizers_match_scalar_at_every_level() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(42);
    for level in levels() {
        let k = Kernels::for_level(level);
        for at in activation_types()
            .into_iter()
            .chain([GgmlType::F16, GgmlType::BF16])
        {
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

/// On aarch64 the levels must really install their own kernels (a level that silently kept the
/// scalar entries would pass every comparison above): every order of every quantized format, with a
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
            t.dot(Order::Vec).map(|f| f as usize),
        )
    };
    let order = |k: &Kernels, ty: GgmlType, order: Order| {
        let t = k.get(ty).unwrap();
        (
            t.dot(order).map(|f| f as usize),
            t.tile(order).map(|f| f as usize),
        )
    };
    for ty in weight_types() {
        assert_ne!(addr(&neon, ty).2, addr(&scalar, ty).2, "neon vec_dot {ty}");
        if ty != F32 {
            assert_ne!(addr(&neon, ty).0, addr(&scalar, ty).0, "neon to_float {ty}");
        }
    }
    for ty in activation_types().into_iter().chain([F16, BF16]) {
        assert_ne!(addr(&neon, ty).0, addr(&scalar, ty).0, "neon to_float {ty}");
        assert_ne!(
            addr(&neon, ty).1,
            addr(&scalar, ty).1,
            "neon from_float {ty}"
        );
    }
    let dp = Level::NeonDotprod
        .is_supported()
        .then(|| Kernels::for_level(Level::NeonDotprod));
    for ty in weight_types().into_iter().filter(|t| t.is_quantized()) {
        let used = orders_used(neon.get(ty).unwrap());
        for o in Order::ALL {
            let s = order(&scalar, ty, o);
            if s.0.is_none() {
                continue;
            }
            let n = order(&neon, ty, o);
            assert!(n.0.is_some() && n.0 != s.0, "neon {ty} {o:?} dot");
            assert!(n.1.is_some() || !used.contains(&o), "neon {ty} {o:?} tile");
            if let Some(dp) = &dp {
                let d = order(dp, ty, o);
                assert!(
                    d.0.is_some() && d.0 != s.0 && d.0 != n.0,
                    "dotprod {ty} {o:?}"
                );
                assert!(
                    d.1.is_some() == n.1.is_some() && d.1 != n.1,
                    "dotprod {ty} {o:?} tile"
                );
            }
        }
    }
    // The 32-element formats: their own order (Block) at every batch size, interleaved eight rows
    // at a time.
    for k in [Some(&neon), dp.as_ref()].into_iter().flatten() {
        for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0] {
            let t = k.get(ty).unwrap();
            assert_eq!(orders_used(t), [Order::Block], "{} {ty} orders", k.level());
            assert_eq!(
                t.interleaved.map(|i| i.layout),
                Some(Layout::Interleaved8),
                "{} {ty} interleaved tile",
                k.level()
            );
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
        for at in activation_types() {
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
fn activation_quantizers_give_the_reference_bytes_on_x86() {
    // The x86 quantizers replicate the reference's arithmetic exactly; other architectures are
    // held to the one-step tolerance above.
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(7);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for at in activation_types()
            .into_iter()
            .chain([GgmlType::F16, GgmlType::BF16])
        {
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
fn float_formats_convert_at_every_length() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(99);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let (st, t) = (scalar.get(ty).unwrap(), k.get(ty).unwrap());
            for n in (1..=40).chain([63, 64, 65, 100, 257]) {
                let w = random_row(ty, n, &mut rng, 2.0);
                let (mut fw, mut fg) = (vec![0f32; n], vec![0f32; n]);
                (st.to_float.unwrap())(&w, &mut fw);
                (t.to_float.unwrap())(&w, &mut fg);
                assert_eq!(fw, fg, "{level} {ty} n={n} to_float");
                // Rows that start at an odd address (an f16 tensor inside a byte buffer).
                let mut shifted = vec![0u8; w.len() + 1];
                shifted[1..].copy_from_slice(&w);
                (t.to_float.unwrap())(&shifted[1..], &mut fg);
                assert_eq!(fw, fg, "{level} {ty} n={n} to_float, unaligned");

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

#[test]
fn dequantize_is_exact_for_extreme_scales() {
    let scalar = Kernels::for_level(Level::Scalar);
    let mut rng = Rng(0xd00d);
    for level in optimised_levels() {
        let k = Kernels::for_level(level);
        for ty in weight_types().into_iter().filter(|t| t.block_size() > 1) {
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
            let a: Vec<u8> = (0..nc)
                .flat_map(|_| {
                    let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                    activations(&scalar, ty, &x)
                })
                .collect();
            for order in Order::ALL {
                let (Some(dot), Some(tile)) = (st.dot(order), lt.tile(order)) else {
                    continue;
                };
                let mut out = vec![0f32; nr * nc];
                // SAFETY: `out` holds `c * nr + r` for every `c < nc`, `r < nr`.
                unsafe {
                    tile(&Tile {
                        n,
                        w: &w,
                        w_stride: rb,
                        rows: nr,
                        a: &a,
                        a_stride: ab,
                        tokens: nc,
                        out: out.as_mut_ptr(),
                        out_stride: nr,
                    })
                };
                for t in 0..nc {
                    for r in 0..nr {
                        let want = dot(n, &w[r * rb..][..rb], &a[t * ab..][..ab]);
                        let got = out[t * nr + r];
                        assert!(
                            same_bits(got, want),
                            "{level} {ty} {order:?} row {r} token {t}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
