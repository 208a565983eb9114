//! Every SIMD elementwise and attention kernel against its scalar reference, bit for bit, at
//! every instruction set this CPU supports: odd lengths, head sizes 64/128/256 and odd ones,
//! edge values (zeros of both signs, subnormals, infinities, values at the f16 rounding
//! boundaries, exponent extremes for `expf`). A NaN output must meet a NaN output (payloads may
//! differ, as they may between any two instruction sets).

use half::f16;
use nib_simd::attn::{self, HeadRows, Score, TiledHead, TiledRow, VecState, EMPTY_CELL};
use nib_simd::testing::Rng;
use nib_simd::vec::{self, Isa, VecOps};

/// What these tests draw from the shared generator.
trait Inputs {
    /// Mostly moderate values, sometimes tiny or large ones, sometimes exact edge values.
    fn value(&mut self) -> f32;
    fn values(&mut self, n: usize) -> Vec<f32>;
    /// Uniform in `[-scale, scale)`.
    fn normal(&mut self, n: usize, scale: f32) -> Vec<f32>;
    fn halves(&mut self, n: usize, scale: f32) -> Vec<f16>;
}

impl Inputs for Rng {
    fn value(&mut self) -> f32 {
        match self.below(20) {
            0 => EDGES[self.below(EDGES.len())],
            1 => self.f32() * 1e-6,
            2 => self.f32() * 60.0,
            _ => self.f32() * 4.0,
        }
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
    fn normal(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
    fn halves(&mut self, n: usize, scale: f32) -> Vec<f16> {
        (0..n).map(|_| f16::from_f32(self.f32() * scale)).collect()
    }
}

/// Finite edge values (infinities and NaN are tried where the kernels are defined for them).
const EDGES: [f32; 14] = [
    0.0, -0.0, 1.0, -1.0, 1e-40, -1e-40, 65504.0, 65520.0, -65520.0, 6.1e-5, 5.96e-8, 2.98e-8,
    88.7, -103.9,
];

fn optimised() -> Vec<VecOps> {
    let isas = Isa::supported();
    if let Ok(want) = std::env::var("NIB_EXPECT_VEC") {
        assert_eq!(
            Isa::detect().name(),
            want.trim(),
            "NIB_EXPECT_VEC: detected instruction set"
        );
    }
    isas.into_iter()
        .filter(|&i| i != Isa::Scalar)
        .map(|i| VecOps::new(i).unwrap())
        .collect()
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check(what: &str, ops: VecOps, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            same_bits(g, w),
            "{} {what}: element {i} of {}: {g:e} ({:#010x}) vs scalar {w:e} ({:#010x})",
            ops.isa(),
            got.len(),
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn check_h(what: &str, ops: VecOps, got: &[f16], want: &[f16]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{} {what}: element {i}: {:#06x} vs scalar {:#06x}",
            ops.isa(),
            g.to_bits(),
            w.to_bits()
        );
    }
}

const LENS: [usize; 18] = [
    0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 576, 1537,
];

#[test]
fn the_detected_instruction_set_is_the_widest() {
    let best = Isa::detect();
    assert!(best.is_supported());
    for i in Isa::supported() {
        assert!(VecOps::new(i).is_some());
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        assert_eq!(best, Isa::Avx512);
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(best, Isa::Neon);
    optimised();
}

#[test]
fn f16_conversions_match_half_on_every_value() {
    let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    let mut want = vec![0f32; all.len()];
    vec::scalar::from_f16(&all, &mut want);
    // f32 inputs: every f32 pattern at a stride, plus every f16 value and the midpoints between
    // neighbouring halves (the ties) and a hair either side.
    let mut rng = Rng(7);
    let mut xs: Vec<f32> = (0..1u64 << 32)
        .step_by(4099)
        .map(|b| f32::from_bits(b as u32))
        .collect();
    for h in 0..u16::MAX {
        let (a, b) = (f16::from_bits(h).to_f32(), f16::from_bits(h + 1).to_f32());
        if a.is_finite() && b.is_finite() {
            let mid = (a as f64 + b as f64) / 2.0;
            let m = mid as f32;
            xs.extend([
                a,
                m,
                f32::from_bits(m.to_bits() + 1),
                f32::from_bits(m.to_bits().wrapping_sub(1)),
            ]);
        }
    }
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc1_2345),
    ]);
    xs.extend(rng.values(1000));
    let mut want_h = vec![f16::ZERO; xs.len()];
    vec::scalar::to_f16(&xs, &mut want_h);
    for ops in optimised() {
        let mut got = vec![0f32; all.len()];
        ops.from_f16(&all, &mut got);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_bits(), w.to_bits(), "{} from_f16", ops.isa());
        }
        let mut got_h = vec![f16::ZERO; xs.len()];
        ops.to_f16(&xs, &mut got_h);
        for ((g, w), x) in got_h.iter().zip(&want_h).zip(&xs) {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{} to_f16({x:e} = {:#010x})",
                ops.isa(),
                x.to_bits()
            );
        }
        for n in LENS {
            let x = rng.values(n);
            let mut a = vec![f16::ZERO; n];
            let mut b = vec![f16::ZERO; n];
            vec::scalar::to_f16(&x, &mut a);
            ops.to_f16(&x, &mut b);
            check_h("to_f16", ops, &b, &a);
            let mut fa = vec![0f32; n];
            let mut fb = vec![0f32; n];
            vec::scalar::from_f16(&a, &mut fa);
            ops.from_f16(&a, &mut fb);
            check("from_f16", ops, &fb, &fa);
        }
    }
}

#[test]
fn expf_polynomial_and_softmax_sums_match() {
    // Dense over the interesting range, then every 2^-k-spaced region, then edges.
    let mut xs: Vec<f32> = (-2_200_000..1_000_000).map(|i| i as f32 * 1e-4).collect();
    for b in (0..1u64 << 32).step_by(65_537) {
        xs.push(f32::from_bits(b as u32));
    }
    xs.extend([
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        -87.33655,
        -87.33654,
        -103.97208,
        -103.97207,
        88.72283,
        88.72284,
        -133.0,
        -140.0,
        -149.5,
        -200.0,
    ]);
    while !xs.len().is_multiple_of(16) {
        xs.push(0.0);
    }
    let mut want = xs.clone();
    let sum_want = vec::scalar::soft_max_exp(&mut want, 0.0);
    for ops in optimised() {
        let mut got = xs.clone();
        let sum_got = ops.soft_max_exp(&mut got, 0.0);
        check("expf_poly", ops, &got, &want);
        assert!(
            same_bits(sum_got as f32, sum_want as f32) && sum_got.to_bits() == sum_want.to_bits()
                || sum_got.is_nan() && sum_want.is_nan()
        );
        // Softmax rows of every length (the tail uses libm's expf) with a real maximum.
        let mut rng = Rng(3);
        for n in LENS {
            let x = rng.normal(n, 20.0);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (mut a, mut b) = (x.clone(), x.clone());
            let (sa, sb) = (
                vec::scalar::soft_max_exp(&mut a, max),
                ops.soft_max_exp(&mut b, max),
            );
            check("soft_max_exp", ops, &b, &a);
            assert_eq!(
                sa.to_bits(),
                sb.to_bits(),
                "{} soft_max_exp sum, n = {n}",
                ops.isa()
            );
        }
    }
}

/// SwiGLU and GeGLU of the gates `g` and ups `u` by `ops` against the scalar reference (`what`
/// follows the names in a failure).
fn check_glus(what: &str, ops: VecOps, g: &[f32], u: &[f32]) {
    type Glu = fn(&mut [f32], &[f32]);
    type OpsGlu = fn(VecOps, &mut [f32], &[f32]);
    let glus: [(&str, Glu, OpsGlu); 2] = [
        (
            "swiglu",
            vec::scalar::swiglu_inplace,
            VecOps::swiglu_inplace,
        ),
        ("geglu", vec::scalar::geglu_inplace, VecOps::geglu_inplace),
    ];
    for (name, reference, optimised) in glus {
        let (mut a, mut b) = (g.to_vec(), g.to_vec());
        reference(&mut a, u);
        optimised(ops, &mut b, u);
        check(&format!("{name}{what}"), ops, &b, &a);
    }
}

#[test]
fn swiglu_and_geglu_match() {
    let mut rng = Rng(11);
    let all: Vec<f32> = (0..=u16::MAX)
        .map(|b| f16::from_bits(b).to_f32())
        .filter(|x| x.is_finite())
        .collect();
    for ops in optimised() {
        for n in LENS.into_iter().chain([all.len()]) {
            let g = if n == all.len() {
                all.clone()
            } else {
                rng.values(n)
            };
            let u = rng.values(n);
            check_glus("", ops, &g, &u);
        }
        // Every gate value of the GELU table's domain and around its cut-offs, with up = 1.
        let mut g: Vec<f32> = all.clone();
        g.extend([
            -10.0,
            -10.000001,
            -9.999999,
            10.0,
            10.000001,
            9.999999,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        let u = vec![1.0; g.len()];
        check_glus(" table", ops, &g, &u);
    }
}

#[test]
fn rms_norm_matches() {
    let mut rng = Rng(5);
    for ops in optimised() {
        for cols in [1, 2, 5, 16, 17, 63, 64, 100, 576, 640, 1153] {
            for rows in [1, 2, 3, 4, 5, 7, 8, 9] {
                let mut x = rng.values(cols * rows);
                if rows == 9 {
                    x.iter_mut().for_each(|v| *v *= 1e-20);
                }
                let w = rng.values(cols);
                let eps = [1e-5, 1e-6, 0.0][rng.below(3)];
                let mut a = vec![0f32; cols * rows];
                let mut b = vec![0f32; cols * rows];
                vec::scalar::rms_norm_rows(&x, &w, eps, cols, &mut a);
                ops.rms_norm_rows(&x, &w, eps, cols, &mut b);
                check("rms_norm_rows", ops, &b, &a);
                let mut c = vec![0f32; cols];
                ops.rms_norm(&x[..cols], &w, eps, &mut c);
                check("rms_norm", ops, &c, &a[..cols]);
                let mut d = x[..cols].to_vec();
                ops.rms_norm_inplace(&mut d, &w, eps);
                check("rms_norm_inplace", ops, &d, &a[..cols]);
            }
        }
    }
}

#[test]
fn rope_residual_and_scaling_match() {
    let mut rng = Rng(9);
    for ops in optimised() {
        for n in LENS {
            let half = n / 2;
            let x = rng.values(2 * half);
            let (c, s) = (rng.normal(half, 1.0), rng.normal(half, 1.0));
            let (mut a, mut b) = (x.clone(), x.clone());
            vec::scalar::rope_pairs(&mut a, &c, &s);
            ops.rope_pairs(&mut b, &c, &s);
            check("rope_pairs", ops, &b, &a);
            let (mut a, mut b) = (x.clone(), x.clone());
            vec::scalar::rope_halves(&mut a, &c, &s);
            ops.rope_halves(&mut b, &c, &s);
            check("rope_halves", ops, &b, &a);

            let (x, y) = (rng.values(n), rng.values(n));
            let (mut a, mut b) = (y.clone(), y.clone());
            vec::scalar::add_inplace(&mut a, &x);
            ops.add_inplace(&mut b, &x);
            check("add_inplace", ops, &b, &a);
            let k = rng.value();
            let (mut a, mut b) = (y.clone(), y.clone());
            vec::scalar::scale(&mut a, k);
            ops.scale(&mut b, k);
            check("scale", ops, &b, &a);
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            vec::scalar::scale_into(&x, k, &mut a);
            ops.scale_into(&x, k, &mut b);
            check("scale_into", ops, &b, &a);
            let k2 = rng.value();
            let (mut a, mut b) = (y.clone(), y.clone());
            vec::scalar::merge_scaled(&mut a, k, &x, k2);
            ops.merge_scaled(&mut b, k, &x, k2);
            check("merge_scaled", ops, &b, &a);
        }
    }
}

#[test]
fn f16_dot_matches() {
    let mut rng = Rng(13);
    for ops in optimised() {
        for n in LENS.into_iter().chain([128, 192, 256, 320, 512]) {
            for scale in [1.0, 30.0, 1000.0] {
                let x = rng.halves(n, scale);
                let y = rng.halves(n, scale);
                let (a, b) = (vec::scalar::dot_f16(&x, &y), ops.dot_f16(&x, &y));
                assert!(same_bits(a, b), "{} dot_f16 n = {n}: {b} vs {a}", ops.isa());
            }
        }
    }
}

/// A random f16 cache of `n` cells with `heads` heads of `dim`.
fn cache(rng: &mut Rng, n: usize, heads: usize, dim: usize, scale: f32) -> Vec<f16> {
    rng.halves(n * heads * dim, scale)
}

#[test]
fn vector_path_matches() {
    let mut rng = Rng(17);
    for ops in optimised() {
        for (dk, dv) in [
            (64, 64),
            (128, 128),
            (256, 256),
            (72, 40),
            (8, 24),
            (512, 512),
        ] {
            for softcap in [0.0, 20.0] {
                let (heads, n) = (2, 300);
                let kc = cache(&mut rng, n, heads, dk, 1.0);
                let vc = cache(&mut rng, n, heads, dv, 1.0);
                let head = rng.below(heads);
                let k = HeadRows {
                    data: &kc[head * dk..],
                    stride: heads * dk,
                    dim: dk,
                };
                let v = HeadRows {
                    data: &vc[head * dv..],
                    stride: heads * dv,
                    dim: dv,
                };
                let q = rng.normal(dk, 3.0);
                let score = Score {
                    scale: 1.0 / (dk as f32).sqrt(),
                    softcap,
                };
                // Random visible subsets, in order, continuing a state.
                let mut cells: Vec<usize> = (0..n).filter(|_| rng.below(4) != 0).collect();
                let split = cells.len() / 3;
                let tail = cells.split_off(split);
                let mut acc_a = vec![0f32; dv];
                let mut acc_b = vec![0f32; dv];
                let mut sa = VecState {
                    m: f32::NEG_INFINITY,
                    s: 0.0,
                    acc: &mut acc_a,
                };
                let mut sb = VecState {
                    m: f32::NEG_INFINITY,
                    s: 0.0,
                    acc: &mut acc_b,
                };
                for part in [&cells, &tail] {
                    attn::scalar::fa_vec(&q, k, v, part.iter().copied(), score, &mut sa);
                    ops.fa_vec(&q, k, v, part.iter().copied(), score, &mut sb);
                    assert!(
                        same_bits(sa.m, sb.m) && same_bits(sa.s, sb.s),
                        "{} fa_vec state dk {dk}",
                        ops.isa()
                    );
                    check(
                        &format!("fa_vec dk {dk} dv {dv} cap {softcap}"),
                        ops,
                        sb.acc,
                        sa.acc,
                    );
                }
            }
        }
    }
}

#[test]
fn tiled_path_matches() {
    let mut rng = Rng(19);
    for ops in optimised() {
        for (dk, dv) in [(64, 64), (128, 128), (256, 256), (72, 40), (8, 24)] {
            for case in 0..6 {
                let (hkv, group) = (2, 1 + rng.below(4));
                let n_tok: usize = [1, 5, 16, 37, 64, 70][case];
                let pos0: usize = [0, 3, 64, 100, 0, 200][case];
                let cells_n = pos0 + n_tok;
                let n_kv = match case {
                    0 => cells_n,
                    1 => cells_n + 11,
                    _ => cells_n.div_ceil(64) * 64 + 64 * (case % 2),
                };
                let window = [0, 0, 7, 50, 64, 0][case];
                let kc = cache(&mut rng, n_kv, hkv, dk, 1.0);
                let vc = cache(&mut rng, n_kv, hkv, dv, 1.0);
                // A ring-like cell map for some cases.
                let map: Vec<u32> = (0..n_kv)
                    .map(|c| {
                        if c < cells_n && rng.below(9) != 0 {
                            ((c * 7) % cells_n) as u32
                        } else {
                            EMPTY_CELL
                        }
                    })
                    .collect();
                let kvh = rng.below(hkv);
                let n_head = hkv * group;
                let q = rng.normal(n_tok * n_head * dk, 2.0);
                let h = TiledHead {
                    k: HeadRows {
                        data: &kc[kvh * dk..],
                        stride: hkv * dk,
                        dim: dk,
                    },
                    v: HeadRows {
                        data: &vc[kvh * dv..],
                        stride: hkv * dv,
                        dim: dv,
                    },
                    score: Score {
                        scale: 1.0 / (dk as f32).sqrt(),
                        softcap: if case == 3 { 15.0 } else { 0.0 },
                    },
                    n_kv,
                    window,
                    cells: if case >= 4 { Some(&map) } else { None },
                };
                let mut rows = vec![];
                for t in 0..n_tok {
                    for g in 0..group {
                        let head = kvh * group + g;
                        rows.push(TiledRow {
                            q: (t * n_head + head) * dk,
                            pos: pos0 + t,
                            out: (t * n_head + head) * dv,
                        });
                    }
                }
                let mut a = vec![7f32; n_tok * n_head * dv];
                let mut b = a.clone();
                attn::scalar::fa_tiled(&h, &q, &rows, &mut a);
                ops.fa_tiled(&h, &q, &rows, &mut b);
                check(
                    &format!("fa_tiled dk {dk} dv {dv} case {case}"),
                    ops,
                    &b,
                    &a,
                );
            }
        }
    }
}
