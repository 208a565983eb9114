//! One `Sampler::sample` call over a random logit vector the size of Gemma 3's vocabulary
//! (262,144) and SmolLM2's (49,152): llama.cpp's default settings first, then the other paths
//! (greedy, top-k off, penalties on).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nib::sample::{Sampler, SamplerParams};
use nib_simd::testing::Rng;

/// Deterministic pseudo-random logits, roughly normal around 0 (sum of four uniforms, sd ~2.3).
fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..n)
        .map(|_| (0..4).map(|_| rng.f32() * 4.0).sum())
        .collect()
}

fn bench(c: &mut Criterion) {
    let cases: [(&str, SamplerParams); 4] = [
        (
            "default",
            SamplerParams {
                seed: Some(1),
                ..SamplerParams::default()
            },
        ),
        ("greedy", SamplerParams::greedy()),
        (
            "top_k_off",
            SamplerParams {
                top_k: 0,
                seed: Some(1),
                ..SamplerParams::default()
            },
        ),
        (
            "penalties",
            SamplerParams {
                repeat_penalty: 1.1,
                presence_penalty: 0.5,
                seed: Some(1),
                ..SamplerParams::default()
            },
        ),
    ];
    for (name, params) in cases {
        let mut g = c.benchmark_group(format!("sample_{name}"));
        for n in [262_144usize, 49_152] {
            let l = logits(n, 42);
            let mut s = Sampler::new(params.clone(), n);
            // Warm up the buffers and, for the penalties case, fill the 64-token window.
            for t in 0..64u32 {
                s.sample(&l);
                s.accept(t * 97 % n as u32);
            }
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &l, |b, l| {
                b.iter(|| s.sample(black_box(l)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
