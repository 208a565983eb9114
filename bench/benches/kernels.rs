//! Per-row kernel throughput: `vec_dot` for every weight format at every kernel level this CPU
//! supports, in GB/s of weight bytes (the weights of a few rows stay in L2, so this measures the
//! kernel, not DRAM). Also the activation quantizers and dequantization, in GB/s of f32 handled.
//!
//! `matmul/...` measures whole matrix products on one thread through the tile kernels, per
//! summation order: a decode step (1 token, GB/s of weights) and a prompt batch (64 tokens, in
//! multiply-adds per second, shown as "elements").
//!
//!   cargo bench -p nib-bench --bench kernels            # all
//!   cargo bench -p nib-bench --bench kernels -- q4_k    # one format
//!   cargo bench -p nib-bench --bench kernels -- matmul  # the matrix products

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use nib_simd::testing::Rng;
use nib_simd::traits::{Kernels, Level};
use nib_simd::GgmlType;
use std::time::Duration;

/// Elements per row (a typical hidden size) and rows per measured batch.
const N: usize = 4096;
const ROWS: usize = 16;

const WEIGHT_TYPES: [GgmlType; 13] = {
    use GgmlType::*;
    [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16, BF16, F32,
    ]
};

/// A byte buffer aligned for any block type (Q8_K holds an f32).
struct Buf(Vec<u64>, usize);

impl Buf {
    fn new(len: usize) -> Buf {
        Buf(vec![0; len.div_ceil(8)], len)
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.0)[..self.1]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.0)[..self.1]
    }
}

/// Byte offsets of the f16 scales in one block, set to small normal values.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q4_K | Q5_K => &[0, 2],
        Q6_K => &[208],
        _ => &[],
    }
}

/// `rows` rows of `ty` with random quants and sane scales (or random floats).
fn weights(ty: GgmlType, rows: usize, rng: &mut Rng) -> Buf {
    weights_n(ty, rows, N, rng)
}

/// `rows` rows of `n` elements of `ty`, as [`weights`].
fn weights_n(ty: GgmlType, rows: usize, n: usize, rng: &mut Rng) -> Buf {
    let row = ty.row_size(n).unwrap();
    let mut buf = Buf::new(rows * row);
    let b = buf.bytes_mut();
    match ty {
        GgmlType::F32 => b
            .chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&rng.f32().to_le_bytes())),
        GgmlType::F16 => b
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&f16::from_f32(rng.f32()).to_le_bytes())),
        GgmlType::BF16 => b
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&half::bf16::from_f32(rng.f32()).to_le_bytes())),
        _ => {
            b.iter_mut().for_each(|v| *v = rng.byte());
            for blk in b.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let d = f16::from_f32(0.01 + 0.01 * rng.f32().abs());
                    blk[off..off + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
        }
    }
    buf
}

fn levels() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600));
    g
}

fn vec_dot(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let x: Vec<f32> = (0..N).map(|_| rng.f32()).collect();
    for ty in WEIGHT_TYPES {
        let w = weights(ty, ROWS, &mut rng);
        let row = ty.row_size(N).unwrap();
        let mut g = configure(c, &format!("vec_dot/{}", ty.name()));
        g.throughput(Throughput::Bytes((ROWS * row) as u64));
        for level in levels() {
            let k = Kernels::for_level(level);
            let t = k.get(ty).unwrap();
            let at = t.vec_dot_type;
            let mut a = Buf::new(at.row_size(N).unwrap());
            (k.get(at).unwrap().from_float.unwrap())(&x, a.bytes_mut());
            let dot = t.vec_dot.unwrap();
            g.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
                b.iter(|| {
                    let mut s = 0.0f32;
                    for r in w.bytes().chunks_exact(row) {
                        s += dot(N, black_box(r), black_box(a.bytes()));
                    }
                    s
                })
            });
        }
        g.finish();
    }
}

fn from_float(c: &mut Criterion) {
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..N).map(|_| rng.f32()).collect();
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::F16,
    ] {
        let mut g = configure(c, &format!("from_float/{}", ty.name()));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        for level in levels() {
            let k = Kernels::for_level(level);
            let f = k.get(ty).unwrap().from_float.unwrap();
            let mut out = Buf::new(ty.row_size(N).unwrap());
            g.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
                b.iter(|| f(black_box(&x), out.bytes_mut()))
            });
        }
        g.finish();
    }
}

fn to_float(c: &mut Criterion) {
    let mut rng = Rng(11);
    use GgmlType::*;
    for ty in [Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K, F16] {
        let w = weights(ty, 1, &mut rng);
        let mut g = configure(c, &format!("to_float/{}", ty.name()));
        g.throughput(Throughput::Bytes((N * 4) as u64));
        for level in levels() {
            let k = Kernels::for_level(level);
            let f = k.get(ty).unwrap().to_float.unwrap();
            let mut out = vec![0f32; N];
            g.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
                b.iter(|| f(black_box(w.bytes()), &mut out))
            });
        }
        g.finish();
    }
}

/// Matrix products on one thread: `ROWS_MM` × `COLS_MM` weights times 1 or 64 tokens, for each
/// summation order a model can use (the repacked orders need a multiple of 8 rows, which this is).
fn matmul(c: &mut Criterion) {
    const ROWS_MM: usize = 1536;
    const COLS_MM: usize = 2048;
    let pool = nib_simd::pool::Pool::new(1);
    let mut rng = Rng(0xA5A5);
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let w = weights_n(ty, ROWS_MM, COLS_MM, &mut rng);
        for tokens in [1usize, 64] {
            let mut g = configure(c, &format!("matmul/{}/t{tokens}", ty.name()));
            let bytes = ROWS_MM * ty.row_size(COLS_MM).unwrap();
            g.throughput(if tokens == 1 {
                Throughput::Bytes(bytes as u64)
            } else {
                Throughput::Elements((ROWS_MM * COLS_MM * tokens) as u64)
            });
            for level in levels() {
                let k = Kernels::for_level(level);
                let t = k.get(ty).unwrap();
                let kind = t.kind_for(ROWS_MM, tokens, 0).unwrap();
                // The order is what llama.cpp would use here (repacked for Q4_0/Q4_K).
                let at = t.vec_dot_type;
                let x: Vec<f32> = (0..COLS_MM * tokens).map(|_| rng.f32()).collect();
                let mut a = Buf::new(at.row_size(COLS_MM).unwrap() * tokens);
                nib_simd::quantize_rows(&k, at, &x, COLS_MM, tokens, a.bytes_mut());
                let m = nib_simd::MatRef::new(ty, ROWS_MM, COLS_MM, w.bytes());
                let mut out = vec![0f32; ROWS_MM * tokens];
                let id = format!("{}/{:?}", level.name(), kind);
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| {
                        nib_simd::pool::with_pool(&pool, || {
                            nib_simd::matmul(&k, m, black_box(a.bytes()), tokens, &mut out)
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, vec_dot, from_float, to_float, matmul);
criterion_main!(benches);
