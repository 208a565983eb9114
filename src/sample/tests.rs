use super::rng::Rng;
use super::*;
use crate::gguf::{GgufWriter, MetaValue};

/// Only the named stage on: everything else off, temperature 1.
fn plain() -> SamplerParams {
    SamplerParams {
        temp: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: Some(1),
        ..SamplerParams::default()
    }
}

fn cands(s: &Sampler) -> Vec<(u32, f32)> {
    let mut v: Vec<(u32, f32)> = s.candidates().collect();
    v.sort_by_key(|c| c.0);
    v
}

fn ids(s: &Sampler) -> Vec<u32> {
    cands(s).into_iter().map(|c| c.0).collect()
}

fn assert_close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

fn ln_probs(p: &[f32]) -> Vec<f32> {
    p.iter().map(|x| x.ln()).collect()
}

fn random_logits(rng: &mut Rng, n: usize, levels: Option<u32>) -> Vec<f32> {
    (0..n)
        .map(|_| match levels {
            // Few distinct values: lots of exact ties.
            Some(l) => (rng.next_u64() % l as u64) as f32 * 0.5,
            None => (rng.next_f64() * 20.0 - 10.0) as f32,
        })
        .collect()
}

#[test]
fn top_k_keeps_the_k_largest() {
    let logits = [1.0, 5.0, 3.0, 4.0, 2.0];
    let mut s = Sampler::new(
        SamplerParams {
            top_k: 2,
            ..plain()
        },
        5,
    );
    let t = s.sample(&logits);
    assert!(t == 1 || t == 3);
    let c = cands(&s);
    assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
    // Softmax over the two kept: e^5 / (e^5 + e^4) = 1 / (1 + e^-1).
    assert_close(c[0].1, 1.0 / (1.0 + (-1.0f32).exp()));
    assert_close(c[1].1, 1.0 / (1.0 + 1.0f32.exp()));

    let mut s = Sampler::new(
        SamplerParams {
            top_k: 3,
            ..plain()
        },
        5,
    );
    s.sample(&logits);
    assert_eq!(ids(&s), vec![1, 2, 3]);
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    let logits = ln_probs(&[0.15, 0.5, 0.05, 0.3]);
    let kept = |top_p: f32, top_k: usize| {
        let mut s = Sampler::new(
            SamplerParams {
                top_p,
                top_k,
                ..plain()
            },
            4,
        );
        s.sample(&logits);
        cands(&s)
    };
    for top_k in [0, 3] {
        // Sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2). With top_k = 3 the 0.05 token
        // is gone first and the others renormalise to 0.5/0.95, 0.3/0.95, 0.15/0.95.
        assert_eq!(
            kept(0.4, top_k).iter().map(|c| c.0).collect::<Vec<_>>(),
            vec![1]
        );
        let two = kept(0.75, top_k);
        assert_eq!(two.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_close(two[0].1, 0.5 / 0.8);
        assert_close(two[1].1, 0.3 / 0.8);
    }
    // Without top-k, 0.5 + 0.3 = 0.8 < 0.85: a third token is needed.
    assert_eq!(
        kept(0.85, 0).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    // With top_k = 3: 0.8 / 0.95 = 0.842 < 0.85 too, and 0.86 still needs three.
    assert_eq!(
        kept(0.86, 3).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    // 0.83 is reached by two after top-k's renormalisation (0.842) but not before (0.8).
    assert_eq!(
        kept(0.83, 3).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(
        kept(0.83, 0).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    // p = 1 is off.
    assert_eq!(kept(1.0, 0).len(), 4);
}

#[test]
fn min_p_threshold_is_relative_to_the_top_probability() {
    let logits = ln_probs(&[0.15, 0.5, 0.05, 0.3]);
    for top_k in [0, 3, 4] {
        let kept = |min_p: f32| {
            let mut s = Sampler::new(
                SamplerParams {
                    min_p,
                    top_k,
                    ..plain()
                },
                4,
            );
            s.sample(&logits);
            ids(&s)
        };
        // 0.2 * 0.5 = 0.1: only 0.05 is below.
        assert_eq!(kept(0.2), vec![0, 1, 3], "top_k {top_k}");
        // 0.35 * 0.5 = 0.175: 0.15 and 0.05 are below.
        assert_eq!(kept(0.35), vec![1, 3], "top_k {top_k}");
        // 0.61 * 0.5 = 0.305 > 0.3.
        assert_eq!(kept(0.61), vec![1], "top_k {top_k}");
        // Off: everything top-k left.
        let all = if top_k == 3 {
            vec![0, 1, 3]
        } else {
            vec![0, 1, 2, 3]
        };
        assert_eq!(kept(0.0), all, "top_k {top_k}");
    }
}

#[test]
fn temperature_scales_logits_before_the_draw() {
    // Probabilities proportional to [1, 2]; temperature 0.5 squares them: [1, 4] / 5.
    let logits = [0.0, 2.0f32.ln()];
    let mut s = Sampler::new(
        SamplerParams {
            temp: 0.5,
            ..plain()
        },
        2,
    );
    s.sample(&logits);
    let c = cands(&s);
    assert_close(c[0].1, 0.2);
    assert_close(c[1].1, 0.8);
    // Temperature 2: square roots, [1, sqrt 2] / (1 + sqrt 2).
    let mut s = Sampler::new(
        SamplerParams {
            temp: 2.0,
            ..plain()
        },
        2,
    );
    s.sample(&logits);
    let c = cands(&s);
    assert_close(c[1].1, 2.0f32.sqrt() / (1.0 + 2.0f32.sqrt()));
}

#[test]
fn filters_see_logits_before_temperature() {
    // min-p 0.3 on probabilities [0.5, 0.3, 0.2, 0.0001]: the threshold is 0.3 * 0.5 = 0.15, so
    // the first three survive whatever the temperature (which only reshapes the draw).
    let logits = ln_probs(&[0.5, 0.3, 0.2, 0.0001]);
    for temp in [0.1, 1.0, 5.0] {
        let mut s = Sampler::new(
            SamplerParams {
                min_p: 0.3,
                temp,
                ..plain()
            },
            4,
        );
        s.sample(&logits);
        assert_eq!(ids(&s), vec![0, 1, 2], "temp {temp}");
    }
}

#[test]
fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
    let logits = [2.0, -1.0, 0.5, 0.0, 3.0];
    let mut s = Sampler::new(
        SamplerParams {
            repeat_penalty: 2.0,
            ..plain()
        },
        5,
    );
    s.accept(0);
    s.accept(1);
    s.accept(3);
    s.accept(0);
    s.build_overrides(&logits);
    // The repeat penalty ignores counts: 2 / 2, -1 * 2, 0 * 2 (zero counts as non-positive).
    assert_eq!(
        s.overrides,
        vec![
            Cand { id: 0, logit: 1.0 },
            Cand { id: 1, logit: -2.0 },
            Cand { id: 3, logit: 0.0 }
        ]
    );
    // And the draw sees them: probabilities proportional to e^[1, -2, 0.5, 0, 3].
    s.sample(&logits);
    let w: Vec<f32> = [1.0f32, -2.0, 0.5, 0.0, 3.0]
        .iter()
        .map(|x| x.exp())
        .collect();
    let z: f32 = w.iter().sum();
    for (id, p) in cands(&s) {
        assert_close(p, w[id as usize] / z);
    }
}

#[test]
fn frequency_and_presence_penalties_subtract() {
    let logits = [1.0, 1.0, 1.0, 1.0];
    let params = SamplerParams {
        frequency_penalty: 0.5,
        presence_penalty: 0.25,
        ..plain()
    };
    let mut s = Sampler::new(params, 4);
    for t in [2, 2, 3, 2] {
        s.accept(t);
    }
    s.build_overrides(&logits);
    // Token 2: 1 - 3 * 0.5 - 0.25; token 3: 1 - 1 * 0.5 - 0.25.
    assert_eq!(
        s.overrides,
        vec![
            Cand {
                id: 2,
                logit: -0.75
            },
            Cand { id: 3, logit: 0.25 }
        ]
    );
}

#[test]
fn penalties_only_see_the_last_n_tokens() {
    let logits = [1.0; 4];
    let params = SamplerParams {
        presence_penalty: 1.0,
        repeat_last_n: 2,
        ..plain()
    };
    let mut s = Sampler::new(params, 4);
    for t in [0, 1, 2] {
        s.accept(t);
    }
    s.build_overrides(&logits);
    assert_eq!(
        s.overrides.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    s.accept(1);
    s.build_overrides(&logits);
    // Window [2, 1]: token 1 counted once (its earlier occurrence left the window).
    assert_eq!(
        s.overrides,
        vec![Cand { id: 1, logit: 0.0 }, Cand { id: 2, logit: 0.0 }]
    );
    s.reset();
    s.build_overrides(&logits);
    assert!(s.overrides.is_empty());
    // repeat_last_n = 0 turns penalties off.
    let mut s = Sampler::new(
        SamplerParams {
            presence_penalty: 1.0,
            repeat_last_n: 0,
            ..plain()
        },
        4,
    );
    s.accept(0);
    s.build_overrides(&logits);
    assert!(s.overrides.is_empty());
}

#[test]
fn logit_bias_comes_before_penalties() {
    let logits = [1.0, 0.0, 0.5];
    let params = SamplerParams {
        repeat_penalty: 2.0,
        // Two entries for token 0 add up to -3.
        logit_bias: vec![(0, -1.0), (2, 4.0), (0, -2.0), (99, 5.0)],
        ..plain()
    };
    let mut s = Sampler::new(params, 3);
    s.accept(0);
    s.build_overrides(&logits);
    // Token 0: 1 - 3 = -2, then negative so multiplied: -4. Token 2: 0.5 + 4 (not penalised).
    assert_eq!(
        s.overrides,
        vec![Cand { id: 0, logit: -4.0 }, Cand { id: 2, logit: 4.5 }]
    );
}

#[test]
fn a_banned_token_is_never_drawn() {
    let logits = [10.0, 0.0, 0.0];
    for top_k in [0, 2] {
        let params = SamplerParams {
            logit_bias: vec![(0, f32::NEG_INFINITY)],
            top_k,
            ..plain()
        };
        let mut s = Sampler::new(params, 3);
        for _ in 0..200 {
            assert_ne!(s.sample(&logits), 0);
        }
        let mut g = Sampler::new(
            SamplerParams {
                logit_bias: vec![(0, f32::NEG_INFINITY)],
                ..SamplerParams::greedy()
            },
            3,
        );
        assert_eq!(g.sample(&logits), 1);
    }
}

#[test]
fn a_bias_can_lift_a_token_into_top_k() {
    // Token 4 is last; +10 makes it the best, which top-k must see.
    let logits = [5.0, 4.0, 3.0, 2.0, 1.0];
    let mut s = Sampler::new(
        SamplerParams {
            top_k: 1,
            logit_bias: vec![(4, 10.0)],
            ..plain()
        },
        5,
    );
    assert_eq!(s.sample(&logits), 4);
    let mut g = Sampler::new(
        SamplerParams {
            logit_bias: vec![(4, 10.0)],
            ..SamplerParams::greedy()
        },
        5,
    );
    assert_eq!(g.sample(&logits), 4);
}

#[test]
fn temp_zero_is_argmax_and_top_k_one_is_greedy() {
    let mut rng = Rng::new(3);
    for n in [1, 2, 7, 100, 5000] {
        for _ in 0..20 {
            let logits = random_logits(&mut rng, n, None);
            let argmax = logits
                .iter()
                .enumerate()
                .fold(0, |b, (i, &x)| if x > logits[b] { i } else { b })
                as u32;
            for temp in [0.0, -1.0] {
                let mut g = Sampler::new(
                    SamplerParams {
                        temp,
                        ..SamplerParams::default()
                    },
                    n,
                );
                assert_eq!(g.sample(&logits), argmax);
            }
            let mut k1 = Sampler::new(
                SamplerParams {
                    top_k: 1,
                    seed: Some(9),
                    ..SamplerParams::default()
                },
                n,
            );
            assert_eq!(k1.sample(&logits), argmax);
        }
    }
    // Exact ties: the lowest id.
    let mut g = Sampler::new(SamplerParams::greedy(), 4);
    assert_eq!(g.sample(&[0.0, 2.0, 1.0, 2.0]), 1);
}

#[test]
fn same_seed_same_tokens() {
    let mut rng = Rng::new(11);
    let logits: Vec<Vec<f32>> = (0..100)
        .map(|_| random_logits(&mut rng, 1000, None))
        .collect();
    let run = |seed: Option<u64>| -> (u64, Vec<u32>) {
        let params = SamplerParams {
            seed,
            temp: 1.5,
            top_k: 0,
            top_p: 0.99,
            min_p: 0.0,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(params, 1000);
        let toks = logits
            .iter()
            .map(|l| {
                let t = s.sample(l);
                s.accept(t);
                t
            })
            .collect();
        (s.seed(), toks)
    };
    let (_, a) = run(Some(1234));
    let (_, b) = run(Some(1234));
    let (_, c) = run(Some(1235));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // A random seed is reported and replays.
    let (seed, d) = run(None);
    assert_eq!(run(Some(seed)).1, d);
}

#[test]
fn reset_replays_the_same_draws() {
    let logits = [0.0f32; 50];
    let mut s = Sampler::new(
        SamplerParams {
            top_k: 0,
            min_p: 0.0,
            seed: Some(5),
            ..SamplerParams::default()
        },
        50,
    );
    let a: Vec<u32> = (0..30).map(|_| s.sample(&logits)).collect();
    s.reset();
    let b: Vec<u32> = (0..30).map(|_| s.sample(&logits)).collect();
    assert_eq!(a, b);
    // Uniform over 50 tokens: 30 draws are not all the same token.
    assert!(a.iter().any(|&t| t != a[0]));
}

#[test]
fn draws_follow_the_distribution() {
    let probs = [0.6, 0.3, 0.1];
    let logits = ln_probs(&probs);
    let mut s = Sampler::new(
        SamplerParams {
            seed: Some(77),
            ..plain()
        },
        3,
    );
    let n = 30_000;
    let mut counts = [0usize; 3];
    for _ in 0..n {
        counts[s.sample(&logits) as usize] += 1;
    }
    for (i, &p) in probs.iter().enumerate() {
        let f = counts[i] as f64 / n as f64;
        // Standard deviation at most sqrt(0.25 / 30000) = 0.0029; allow 5 sigma.
        assert!((f - p as f64).abs() < 0.015, "token {i}: {f} vs {p}");
    }
}

/// The chain written the obvious way: full adjusted logit vector, full sort, each stage in turn.
fn reference(params: &SamplerParams, logits: &[f32], history: &[u32]) -> Vec<(u32, f64)> {
    let n = logits.len();
    let mut l: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
    for &(id, b) in &params.logit_bias {
        l[id as usize] += b as f64;
    }
    let window = &history[history.len().saturating_sub(params.repeat_last_n)..];
    for (id, x) in l.iter_mut().enumerate() {
        let count = window.iter().filter(|&&t| t as usize == id).count();
        if count > 0 && params.repeat_last_n > 0 {
            let rp = params.repeat_penalty as f64;
            *x = if *x <= 0.0 { *x * rp } else { *x / rp };
            *x -= count as f64 * params.frequency_penalty as f64 + params.presence_penalty as f64;
        }
    }
    let mut c: Vec<(u32, f64)> = (0..n)
        .map(|i| (i as u32, l[i]))
        .filter(|c| c.1 > f64::NEG_INFINITY)
        .collect();
    c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if params.temp <= 0.0 {
        c.truncate(1);
        return vec![(c[0].0, 1.0)];
    }
    if params.top_k > 0 {
        c.truncate(params.top_k);
    }
    let max = c[0].1;
    if params.top_p < 1.0 {
        let z: f64 = c.iter().map(|x| (x.1 - max).exp()).sum();
        let mut cum = 0.0;
        let mut keep = c.len();
        for (i, x) in c.iter().enumerate() {
            cum += (x.1 - max).exp() / z;
            if cum >= params.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
    }
    if params.min_p > 0.0 {
        let pmax = 1.0; // relative: p_i / p_max = exp(l_i - max)
        c.retain(|x| (x.1 - max).exp() >= params.min_p as f64 * pmax);
    }
    let w: Vec<f64> = c
        .iter()
        .map(|x| ((x.1 - max) / params.temp as f64).exp())
        .collect();
    let z: f64 = w.iter().sum();
    c.iter().zip(&w).map(|(x, w)| (x.0, w / z)).collect()
}

#[test]
fn chain_matches_the_straightforward_implementation() {
    let mut rng = Rng::new(2024);
    let mut checked = 0;
    for n in [3, 64, 1000, 20_000] {
        for case in 0..24 {
            let levels = if case % 3 == 0 { Some(7) } else { None };
            let logits = random_logits(&mut rng, n, levels);
            let history: Vec<u32> = (0..(rng.next_u64() % 100))
                .map(|_| (rng.next_u64() % n as u64) as u32)
                .collect();
            let pick = |rng: &mut Rng, xs: &[f32]| xs[(rng.next_u64() % xs.len() as u64) as usize];
            let top_k = [0usize, 1, 5, 40, n, n + 3][(rng.next_u64() % 6) as usize];
            let params = SamplerParams {
                temp: pick(&mut rng, &[0.0, 0.7, 1.0, 1.8]),
                top_k,
                top_p: pick(&mut rng, &[1.0, 0.95, 0.5, 0.1]),
                min_p: pick(&mut rng, &[0.0, 0.05, 0.3]),
                repeat_penalty: pick(&mut rng, &[1.0, 1.3]),
                repeat_last_n: [0usize, 8, 64][(rng.next_u64() % 3) as usize],
                frequency_penalty: pick(&mut rng, &[0.0, 0.4]),
                presence_penalty: pick(&mut rng, &[0.0, 0.7]),
                seed: Some(case),
                logit_bias: if case % 4 == 1 {
                    vec![
                        ((rng.next_u64() % n as u64) as u32, 6.0),
                        ((rng.next_u64() % n as u64) as u32, f32::NEG_INFINITY),
                    ]
                } else {
                    Vec::new()
                },
            };
            let mut s = Sampler::new(params.clone(), n);
            for &t in &history {
                s.accept(t);
            }
            let tok = s.sample(&logits);
            let mut got: Vec<(u32, f32)> = s.candidates().collect();
            let mut want = reference(&params, &logits, &history);
            got.sort_by_key(|c| c.0);
            want.sort_by_key(|c| c.0);
            assert_eq!(
                got.iter().map(|c| c.0).collect::<Vec<_>>(),
                want.iter().map(|c| c.0).collect::<Vec<_>>(),
                "n {n} case {case} {params:?}"
            );
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g.1 as f64 - w.1).abs() < 1e-4,
                    "n {n} case {case}: {g:?} vs {w:?}"
                );
            }
            assert!(
                want.iter().any(|c| c.0 == tok),
                "drew {tok}, not a candidate"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 96);
}

#[test]
fn gather_top_is_an_exact_selection() {
    let mut rng = Rng::new(99);
    let mut out = Vec::new();
    for n in [1, 63, 64, 65, 1000, 50_000] {
        for levels in [None, Some(3), Some(50)] {
            let logits = random_logits(&mut rng, n, levels);
            for m in [1, 2, 10, 40, 300] {
                gather_top(&logits, m, &mut out);
                out.sort_by(rank);
                let mut all: Vec<Cand> = logits
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| Cand {
                        id: i as u32,
                        logit: x,
                    })
                    .collect();
                all.sort_by(rank);
                all.truncate(m);
                assert_eq!(out, all, "n {n} m {m} levels {levels:?}");
            }
        }
    }
    // -inf and NaN are never candidates.
    gather_top(&[f32::NEG_INFINITY, f32::NAN, 1.0], 3, &mut out);
    assert_eq!(out, vec![Cand { id: 2, logit: 1.0 }]);
}

#[test]
fn everything_banned_falls_back_to_the_largest_raw_logit() {
    let logits = [1.0, 3.0, 2.0];
    for temp in [0.0, 1.0] {
        for top_k in [0, 2] {
            let params = SamplerParams {
                temp,
                top_k,
                logit_bias: vec![
                    (0, f32::NEG_INFINITY),
                    (1, f32::NEG_INFINITY),
                    (2, f32::NEG_INFINITY),
                ],
                ..plain()
            };
            let mut s = Sampler::new(params, 3);
            assert_eq!(s.sample(&logits), 1);
        }
    }
}

#[test]
fn buffers_do_not_grow_after_warm_up() {
    let n = 30_000;
    let mut rng = Rng::new(5);
    for params in [
        SamplerParams {
            repeat_penalty: 1.1,
            seed: Some(1),
            ..SamplerParams::default()
        },
        SamplerParams {
            top_k: 0,
            min_p: 0.0,
            seed: Some(1),
            ..SamplerParams::default()
        },
        SamplerParams {
            top_k: 0,
            seed: Some(1),
            ..SamplerParams::default()
        },
    ] {
        let mut s = Sampler::new(params, n);
        let mut warm = None;
        for step in 0..150 {
            let logits = random_logits(&mut rng, n, None);
            let t = s.sample(&logits);
            s.accept(t);
            let caps = (
                s.cand.capacity(),
                s.probs.capacity(),
                s.overrides.capacity(),
                s.work.capacity(),
            );
            // The history window (64) is full after 64 tokens; from then on nothing may grow.
            if step == 70 {
                warm = Some(caps);
            } else if step > 70 {
                assert_eq!(Some(caps), warm, "step {step}");
            }
        }
    }
}

#[test]
fn gguf_defaults_apply_and_user_settings_win() {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::str("llama"))
        .unwrap();
    w.set("general.sampling.top_k", MetaValue::I32(64)).unwrap();
    w.set("general.sampling.top_p", MetaValue::F32(0.9))
        .unwrap();
    w.set("general.sampling.temp", MetaValue::str("0.6"))
        .unwrap();
    w.set("general.sampling.penalty_last_n", MetaValue::I32(-1))
        .unwrap();
    w.set("general.sampling.min_p", MetaValue::Bool(true))
        .unwrap(); // wrong type: ignored
    let g = Gguf::from_bytes(w.to_bytes().unwrap()).unwrap();
    let mut p = SamplerParams::default();
    let applied = p.apply_gguf_defaults(&g);
    assert_eq!(p.top_k, 64);
    assert_close(p.top_p, 0.9);
    assert_close(p.temp, 0.6);
    assert_eq!(p.repeat_last_n, usize::MAX);
    assert_close(p.min_p, 0.05);
    assert_eq!(p.repeat_penalty, 1.0);
    assert_eq!(applied.len(), 4, "{applied:?}");
    let user = SamplerOverrides {
        top_k: Some(10),
        temp: Some(0.0),
        ..SamplerOverrides::default()
    };
    user.apply(&mut p);
    assert_eq!(p.top_k, 10);
    assert_eq!(p.temp, 0.0);
    assert_close(p.top_p, 0.9);

    // A file without the keys changes nothing.
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::str("llama"))
        .unwrap();
    let g = Gguf::from_bytes(w.to_bytes().unwrap()).unwrap();
    let mut p = SamplerParams::default();
    assert!(p.apply_gguf_defaults(&g).is_empty());
    assert_eq!(p, SamplerParams::default());
}

#[test]
fn an_unbounded_window_counts_everything() {
    let mut s = Sampler::new(
        SamplerParams {
            presence_penalty: 1.0,
            repeat_last_n: usize::MAX,
            ..plain()
        },
        10,
    );
    for t in 0..10 {
        s.accept(t);
    }
    s.build_overrides(&[0.0; 10]);
    assert_eq!(s.overrides.len(), 10);
}

#[test]
fn validate_names_the_bad_setting() {
    assert!(SamplerParams::default().validate(10).is_ok());
    let e = SamplerParams {
        top_p: 1.5,
        ..SamplerParams::default()
    }
    .validate(10)
    .unwrap_err();
    assert!(e.to_string().contains("top-p"), "{e}");
    let e = SamplerParams {
        logit_bias: vec![(10, 1.0)],
        ..SamplerParams::default()
    }
    .validate(10)
    .unwrap_err();
    assert!(e.to_string().contains("token 10"), "{e}");
    let e = SamplerParams {
        temp: f32::NAN,
        ..SamplerParams::default()
    }
    .validate(10)
    .unwrap_err();
    assert!(e.to_string().contains("temperature"), "{e}");
}

#[test]
fn exp_approx_is_close_to_exp() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x <= 0.0 {
        let (a, b) = (exp_approx(x) as f64, (x as f64).exp());
        worst = worst.max(((a - b) / b).abs());
        x += 0.001;
    }
    assert!(worst < 5e-6, "worst relative error {worst:e}");
    assert_eq!(exp_approx(0.0), 1.0);
    assert!(exp_approx(f32::NEG_INFINITY) < 1e-37);
    assert!(exp_approx(f32::NAN) < 1e-37);
    let mut rng = Rng::new(8);
    let xs = random_logits(&mut rng, 10_001, None);
    let exact: f64 = xs.iter().map(|&x| ((x - 10.0) as f64).exp()).sum();
    assert!((sum_exp(&xs, 10.0) - exact).abs() / exact < 1e-6);
}
