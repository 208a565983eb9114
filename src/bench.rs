//! Speed measurement in llama-bench's way: `pp<N>` processes a prompt of N random tokens as a
//! batch from an empty cache; `tg<N>` decodes N tokens one at a time from an empty cache. Each
//! test runs once as a warm-up, then `reps` times; tokens/s is reported as the mean and
//! standard deviation over the repetitions. With a depth `d` (llama-bench's `-d`), each repetition
//! first fills the cache with `d` random tokens, untimed, and the test runs after them.

use crate::model::{Context, Logits};
use anyhow::Result;
use nib_simd::testing::Rng;
use std::time::Instant;

/// One test: a prompt of `n_prompt` tokens or `n_gen` decoded tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Prompt(usize),
    Gen(usize),
}

impl Test {
    pub fn name(&self) -> String {
        match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Gen(n) => format!("tg{n}"),
        }
    }

    pub fn n_prompt(&self) -> usize {
        match self {
            Test::Prompt(n) => *n,
            Test::Gen(_) => 0,
        }
    }

    pub fn n_gen(&self) -> usize {
        match self {
            Test::Prompt(_) => 0,
            Test::Gen(n) => *n,
        }
    }

    pub fn n_tokens(&self) -> usize {
        self.n_prompt() + self.n_gen()
    }
}

/// Timings of one test.
#[derive(Clone, Debug)]
pub struct Samples {
    pub test: Test,
    /// Tokens in the cache before the test.
    pub depth: usize,
    /// Nanoseconds per repetition.
    pub ns: Vec<u64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample standard deviation (as llama-bench: 0 for fewer than two samples).
fn stdev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

impl Samples {
    /// llama-bench's test name: `pp512`, `tg128`, `tg128 @ d1024`.
    pub fn name(&self) -> String {
        match self.depth {
            0 => self.test.name(),
            d => format!("{} @ d{d}", self.test.name()),
        }
    }

    /// Tokens per second of each repetition.
    pub fn ts(&self) -> Vec<f64> {
        let n = self.test.n_tokens() as f64;
        self.ns.iter().map(|&t| 1e9 * n / t as f64).collect()
    }

    pub fn avg_ts(&self) -> f64 {
        mean(&self.ts())
    }

    pub fn stddev_ts(&self) -> f64 {
        stdev(&self.ts())
    }

    pub fn avg_ns(&self) -> f64 {
        mean(&self.ns.iter().map(|&x| x as f64).collect::<Vec<_>>())
    }

    pub fn stddev_ns(&self) -> f64 {
        stdev(&self.ns.iter().map(|&x| x as f64).collect::<Vec<_>>())
    }
}

/// A random token id below `n_vocab` (the workspace's deterministic generator, so every run
/// of a test evaluates the same tokens).
fn random_token(rng: &mut Rng, n_vocab: usize) -> u32 {
    (rng.next_u64() >> 33) as u32 % n_vocab as u32
}

/// Run one test: a warm-up, then `reps` timed repetitions. `bos`: the first token of a prompt
/// when the model adds one (as llama-bench).
pub fn run_test(
    ctx: &mut Context,
    test: Test,
    reps: usize,
    bos: Option<u32>,
    warmup: bool,
) -> Result<Samples> {
    run_test_at(ctx, test, 0, reps, bos, warmup)
}

/// [`run_test`] after `depth` untimed random tokens in the cache (the context must hold
/// `depth + test.n_tokens()`).
pub fn run_test_at(
    ctx: &mut Context,
    test: Test,
    depth: usize,
    reps: usize,
    bos: Option<u32>,
    warmup: bool,
) -> Result<Samples> {
    let n_vocab = ctx.model.hp.n_vocab;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let once = |ctx: &mut Context, rng: &mut Rng, test: Test| -> Result<u64> {
        ctx.clear();
        if depth > 0 {
            let tokens: Vec<u32> = (0..depth)
                .map(|i| match (i, bos) {
                    (0, Some(b)) => b,
                    _ => random_token(rng, n_vocab),
                })
                .collect();
            ctx.eval(&tokens, Logits::Last)?;
        }
        let t0 = Instant::now();
        match test {
            Test::Prompt(n) => {
                let tokens: Vec<u32> = (0..n)
                    .map(|i| {
                        if i == 0 && depth == 0 {
                            bos.unwrap_or_else(|| random_token(rng, n_vocab))
                        } else {
                            random_token(rng, n_vocab)
                        }
                    })
                    .collect();
                ctx.eval(&tokens, Logits::Last)?;
            }
            Test::Gen(n) => {
                let mut tok = match bos {
                    Some(b) if depth == 0 => b,
                    _ => random_token(rng, n_vocab),
                };
                for _ in 0..n {
                    ctx.eval(&[tok], Logits::Last)?;
                    tok = random_token(rng, n_vocab);
                }
            }
        }
        Ok(t0.elapsed().as_nanos() as u64)
    };
    if warmup {
        let w = match test {
            Test::Prompt(n) => Test::Prompt(n),
            Test::Gen(_) => Test::Gen(1),
        };
        once(ctx, &mut rng, w)?;
    }
    let mut ns = Vec::with_capacity(reps);
    for _ in 0..reps {
        ns.push(once(ctx, &mut rng, test)?);
    }
    Ok(Samples { test, depth, ns })
}

/// Peak resident set size of this process so far, in bytes (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
