//! Decode-path bandwidth: matrix × vector products of 4096 × 4096 and 11008 × 4096 weight
//! matrices, cycling through enough distinct matrices to touch at least 1 GiB (so weights stream
//! from memory, as in decode, not from the large L3), with 1 and 2 threads — against the
//! machine's memory read bandwidth measured in the same run (summing a 1 GiB buffer with the
//! same threads). Prints GB/s and the ratio to the bandwidth. A last, small matrix is read from
//! cache again and again: the kernel's own speed limit, which decode reaches only if memory
//! is faster.
//!
//!     cargo bench -p nib-bench --bench matvec            (NIB_BENCH_TYPES=q4_0,q8_0 by default)
//!     NIB_BENCH_SHAPES=2048x2048,512x2048,8192x2048c ... (ROWSxCOLS; `c`: from cache)
//!     NIB_BENCH_INTERLEAVE=1 ...                         (rows interleaved, as models load)

use nib_simd::pool::{with_pool, Pool};
use nib_simd::testing::Rng;
use nib_simd::{interleave, GgmlType, Layout, MatRef};
use std::time::Instant;

const GIB: usize = 1 << 30;

fn bandwidth(pool: &Pool, buf: &[u64]) -> f64 {
    let chunks = pool.n_threads() * 8;
    let per = buf.len().div_ceil(chunks);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let sums: Vec<std::sync::atomic::AtomicU64> =
            (0..chunks).map(|_| Default::default()).collect();
        let t0 = Instant::now();
        pool.run(chunks, &|c| {
            let s = &buf[(c * per).min(buf.len())..((c + 1) * per).min(buf.len())];
            let mut acc = [0u64; 8];
            for w in s.chunks_exact(8) {
                for i in 0..8 {
                    acc[i] = acc[i].wrapping_add(w[i]);
                }
            }
            sums[c].store(
                acc.iter().fold(0, |a, &b| a.wrapping_add(b)),
                std::sync::atomic::Ordering::Relaxed,
            );
        });
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(&sums);
    }
    (buf.len() * 8) as f64 / best / 1e9
}

fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let x: Vec<f32> = (0..rows * cols).map(|_| rng.f32() * 0.5).collect();
    let q = nib_simd::formats::weight_quantizer(ty).unwrap();
    let rb = ty.row_size(cols).unwrap();
    let mut out = vec![0u8; rb * rows];
    for (o, xi) in out.chunks_mut(rb).zip(x.chunks(cols)) {
        q(xi, o);
    }
    out
}

fn main() {
    let types: Vec<GgmlType> = std::env::var("NIB_BENCH_TYPES")
        .unwrap_or_else(|_| "q4_0,q8_0".into())
        .split(',')
        .map(|t| GgmlType::from_name(t.trim()).expect("a type name"))
        .collect();
    let max_threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2);
    // NIB_BENCH_SHAPES=ROWSxCOLS,...: matrices from memory (a trailing `c`: one from cache).
    let shapes: Vec<(usize, usize, bool)> = std::env::var("NIB_BENCH_SHAPES")
        .unwrap_or_else(|_| "4096x4096,11008x4096,2048x2048c".into())
        .split(',')
        .map(|s| {
            let s = s.trim();
            let cached = s.ends_with('c');
            let (r, c) = s.trim_end_matches('c').split_once('x').expect("ROWSxCOLS");
            (r.parse().expect("rows"), c.parse().expect("cols"), cached)
        })
        .collect();
    let buf: Vec<u64> = (0..GIB / 8).map(|i| i as u64).collect();
    let k = nib_simd::kernels();
    println!("kernels: {}", k.level());
    println!("| test | threads | GB/s | of memory bandwidth |");
    println!("|---|---:|---:|---:|");
    let mut bw = vec![0.0; max_threads + 1];
    for (t, slot) in bw.iter_mut().enumerate().skip(1) {
        let pool = Pool::new(t);
        *slot = bandwidth(&pool, &buf);
        println!("| memory read (sum of 1 GiB) | {t} | {:.1} | 100% |", *slot);
    }
    drop(buf);
    for &ty in &types {
        for &(rows, cols, cached) in &shapes {
            let bytes = ty.row_size(cols).unwrap() * rows;
            // From memory: enough matrices to touch 1 GiB. From cache: one small matrix, read
            // again and again (the kernel's own speed limit, no memory traffic).
            let n_mats = if cached {
                1
            } else {
                GIB.div_ceil(bytes).max(2)
            };
            let reps = if cached { 200 } else { 1 };
            // One random matrix copied: the contents do not change the speed, the addresses do.
            let mut base = random_matrix(ty, rows, cols, 7);
            // NIB_BENCH_INTERLEAVE=1: rows interleaved as the model loader leaves them where the
            // kernels have a tile for that.
            let interleave = std::env::var("NIB_BENCH_INTERLEAVE").is_ok_and(|v| v == "1");
            let layout = if interleave {
                k.best_layout(ty, rows, cols)
            } else {
                Layout::Rows
            };
            if layout != Layout::Rows {
                interleave::interleave_in_place(layout, ty, &mut base, rows, cols);
            }
            let mats: Vec<Vec<u8>> = (0..n_mats).map(|_| base.clone()).collect();
            let at = k.get(ty).unwrap().vec_dot_type;
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 31) % 97) as f32 / 97.0 - 0.5)
                .collect();
            let mut act = vec![0u8; at.row_size(cols).unwrap()];
            (k.get(at).unwrap().from_float.unwrap())(&x, &mut act);
            let mut out = vec![0f32; rows];
            for (t, &bw_t) in bw.iter().enumerate().skip(1) {
                let pool = Pool::new(t);
                let secs = with_pool(&pool, || {
                    let mut best = f64::MAX;
                    for _ in 0..3 {
                        let t0 = Instant::now();
                        for m in std::iter::repeat_n(&mats, reps).flatten() {
                            let w = MatRef {
                                layout,
                                ..MatRef::new(ty, rows, cols, m)
                            };
                            nib_simd::matmul(k, w, &act, 1, &mut out);
                        }
                        best = best.min(t0.elapsed().as_secs_f64());
                    }
                    best
                });
                let gbs = (bytes * n_mats * reps) as f64 / secs / 1e9;
                let what = if cached {
                    format!(
                        "one matrix from cache, {:.1} MiB",
                        bytes as f64 / (1 << 20) as f64
                    )
                } else {
                    format!(
                        "{n_mats} matrices, {:.2} GiB",
                        (bytes * n_mats) as f64 / GIB as f64
                    )
                };
                println!(
                    "| {ty} {rows}x{cols} matvec ({what}) | {t} | {gbs:.1} | {:.0}% |",
                    100.0 * gbs / bw_t
                );
            }
        }
    }
}
