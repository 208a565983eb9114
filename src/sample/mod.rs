//! Sampling: one vector of logits in, one token out.
//!
//! The chain follows llama.cpp's default order:
//!
//! 1. **logit bias**: `logit[id] += bias` (a bias of `-inf` bans a token);
//! 2. **penalties** over the last `repeat_last_n` accepted tokens: for a token seen `count > 0`
//!    times, the repeat penalty divides a positive logit and multiplies a negative one, then
//!    `count * frequency_penalty + presence_penalty` is subtracted;
//! 3. **top-k**: keep the `k` largest logits (`0` = off);
//! 4. **top-p**: keep the smallest set of most likely tokens whose probabilities (softmax over
//!    what top-k kept) add up to at least `p` (`1.0` = off);
//! 5. **min-p**: keep tokens whose probability is at least `min_p` times the largest one, i.e.
//!    `logit >= max_logit + ln(min_p)` (`0.0` = off);
//! 6. **temperature**: divide the logits by `temp`; `temp <= 0` is greedy (the largest logit after
//!    steps 1-2, lowest id on exact ties);
//! 7. **draw** from the softmax of what is left, with a seeded PRNG.
//!
//! The work is done on a short candidate list rather than on the vocabulary: top-k is a streaming
//! partial selection over the logits (no copy of the vocabulary, no sort), and with top-k off the
//! min-p threshold is applied while gathering, so top-p sorts only as far as it needs to. Logit
//! bias and penalties touch a handful of ids and are applied as overrides. All buffers live in the
//! [`Sampler`] and are reused: after the first call no sampling step allocates.
//!
//! [`StopMatcher`] (in `stop.rs`) holds back streamed text that could be the start of a stop
//! string and cuts generation at one.

mod rng;
mod stop;

pub use stop::{StopMatcher, StopStep};

use crate::gguf::{Gguf, Value};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Sampling settings. [`Default`] gives llama.cpp's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Temperature; `<= 0` samples greedily. Default 0.8.
    pub temp: f32,
    /// Keep the `top_k` most likely tokens; 0 (or >= the vocabulary) turns it off. Default 40.
    pub top_k: usize,
    /// Nucleus sampling threshold; 1.0 turns it off. Default 0.95.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token; 0.0 turns it off. Default 0.05.
    pub min_p: f32,
    /// Repetition penalty; 1.0 turns it off. Default 1.0.
    pub repeat_penalty: f32,
    /// How many of the last accepted tokens the penalties look at; 0 turns them off;
    /// `usize::MAX` means all of them. Default 64.
    pub repeat_last_n: usize,
    /// Subtracted `count` times for a token seen `count` times. Default 0.0.
    pub frequency_penalty: f32,
    /// Subtracted once for any token seen at least once. Default 0.0.
    pub presence_penalty: f32,
    /// Seed of the random draws; `None` picks a random one ([`Sampler::seed`] reports it).
    pub seed: Option<u64>,
    /// Added to a token's logit before anything else; `f32::NEG_INFINITY` bans the token. Several
    /// entries for one token add up.
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplerParams {
    fn default() -> SamplerParams {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: None,
            logit_bias: Vec::new(),
        }
    }
}

/// The GGUF keys a model may use to ship its recommended sampling settings (llama.cpp's names).
pub const GGUF_SAMPLING_KEYS: [&str; 6] = [
    "general.sampling.top_k",
    "general.sampling.top_p",
    "general.sampling.min_p",
    "general.sampling.temp",
    "general.sampling.penalty_last_n",
    "general.sampling.penalty_repeat",
];

/// A metadata value as a number: integers, floats, and (as llama.cpp, which reads these keys
/// through their text form) strings that parse as numbers.
fn meta_number(g: &Gguf, key: &str) -> Option<f64> {
    let v = g.get(key)?;
    match v {
        Value::String(_) => g.get_str(key).ok()?.trim().parse::<f64>().ok(),
        _ => v.as_f64().or_else(|| v.as_i128().map(|i| i as f64)),
    }
    .filter(|x| x.is_finite())
}

impl SamplerParams {
    /// Greedy decoding: llama.cpp's defaults with `temp = 0`.
    pub fn greedy() -> SamplerParams {
        SamplerParams {
            temp: 0.0,
            ..SamplerParams::default()
        }
    }

    /// Whether [`Sampler::sample`] takes the argmax instead of drawing (also for a NaN `temp`).
    pub fn is_greedy(&self) -> bool {
        self.temp.is_nan() || self.temp <= 0.0
    }

    /// The settings for a model: the defaults, then the file's `general.sampling.*`, then
    /// `overrides`; checked against the vocabulary.
    pub fn for_model(
        g: &Gguf,
        n_vocab: usize,
        overrides: &SamplerOverrides,
    ) -> anyhow::Result<SamplerParams> {
        let mut p = SamplerParams::default();
        p.apply_gguf_defaults(g);
        overrides.apply(&mut p);
        p.validate(n_vocab)?;
        Ok(p)
    }

    /// Replace the defaults with the model's recommendations from `general.sampling.*`
    /// ([`GGUF_SAMPLING_KEYS`]). Call this before applying the user's settings (see
    /// [`SamplerOverrides`]), which win. Values of the wrong type are ignored, as llama.cpp
    /// does; a negative `top_k` turns top-k off, a negative `penalty_last_n` means the whole
    /// history. Returns `key=value` for each setting taken, for a verbose log.
    pub fn apply_gguf_defaults(&mut self, g: &Gguf) -> Vec<String> {
        let mut applied = Vec::new();
        for key in GGUF_SAMPLING_KEYS {
            let Some(x) = meta_number(g, key) else {
                continue;
            };
            let name = &key["general.sampling.".len()..];
            match name {
                "top_k" => self.top_k = if x <= 0.0 { 0 } else { x as usize },
                "top_p" => self.top_p = x as f32,
                "min_p" => self.min_p = x as f32,
                "temp" => self.temp = x as f32,
                "penalty_last_n" => {
                    self.repeat_last_n = if x < 0.0 { usize::MAX } else { x as usize }
                }
                "penalty_repeat" => self.repeat_penalty = x as f32,
                _ => unreachable!("key list and match agree"),
            }
            applied.push(format!("{key}={x}"));
        }
        applied
    }

    /// Check the settings, with a message naming the bad one.
    pub fn validate(&self, n_vocab: usize) -> anyhow::Result<()> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{name} must be a finite number, got {v}"))
            }
        };
        finite("temperature", self.temp)?;
        finite("top-p", self.top_p)?;
        finite("min-p", self.min_p)?;
        finite("repeat penalty", self.repeat_penalty)?;
        finite("frequency penalty", self.frequency_penalty)?;
        finite("presence penalty", self.presence_penalty)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.top_p),
            "top-p must be in [0, 1], got {}",
            self.top_p
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.min_p),
            "min-p must be in [0, 1], got {}",
            self.min_p
        );
        anyhow::ensure!(
            self.repeat_penalty > 0.0,
            "repeat penalty must be > 0, got {}",
            self.repeat_penalty
        );
        for &(id, bias) in &self.logit_bias {
            anyhow::ensure!(
                (id as usize) < n_vocab,
                "logit bias for token {id}, but the vocabulary has {n_vocab} tokens"
            );
            anyhow::ensure!(!bias.is_nan(), "logit bias for token {id} is NaN");
        }
        Ok(())
    }

    /// Whether any penalty is active (llama.cpp skips the stage otherwise).
    fn penalties_on(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
}

/// Settings the user gave explicitly (command line, request body); `None` keeps what
/// [`SamplerParams`] has (the default, or the model's `general.sampling.*` recommendation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SamplerOverrides {
    pub temp: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<usize>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub seed: Option<u64>,
    /// Appended to the parameters' biases.
    pub logit_bias: Vec<(u32, f32)>,
}

impl SamplerOverrides {
    pub fn apply(&self, p: &mut SamplerParams) {
        fn set<T: Copy>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut p.temp, self.temp);
        set(&mut p.top_k, self.top_k);
        set(&mut p.top_p, self.top_p);
        set(&mut p.min_p, self.min_p);
        set(&mut p.repeat_penalty, self.repeat_penalty);
        set(&mut p.repeat_last_n, self.repeat_last_n);
        set(&mut p.frequency_penalty, self.frequency_penalty);
        set(&mut p.presence_penalty, self.presence_penalty);
        if self.seed.is_some() {
            p.seed = self.seed;
        }
        p.logit_bias.extend_from_slice(&self.logit_bias);
    }
}

/// A candidate token and its (adjusted) logit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cand {
    id: u32,
    logit: f32,
}

/// The ranking every stage uses: larger logit first, lower id first on ties. A total order, so
/// every selection and sort below is deterministic.
fn rank(a: &Cand, b: &Cand) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Keep the `m` best-ranked candidates (in no particular order).
fn keep_top(v: &mut Vec<Cand>, m: usize) {
    if v.len() > m {
        if m == 0 {
            v.clear();
            return;
        }
        v.select_nth_unstable_by(m - 1, rank);
        v.truncate(m);
    }
}

/// Largest value of a short slice, ignoring NaN (`-inf` when there is none). Eight independent
/// lanes, so that the compiler turns it into vector max operations.
fn slice_max(c: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut it = c.chunks_exact(8);
    for v in &mut it {
        for k in 0..8 {
            acc[k] = if v[k] > acc[k] { v[k] } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &x in it.remainder().iter().chain(acc.iter()) {
        m = if x > m { x } else { m };
    }
    m
}

const SCAN_CHUNK: usize = 256;

/// `e^x` for `x <= 0` (larger inputs are not needed: logits are taken relative to their max),
/// to a relative error of about 4e-6, in plain arithmetic that vectorises, unlike a libm call:
/// `x log2(e) = n + f` with `n` an integer and `|f| <= 1/2`, `2^f` by its Taylor polynomial to
/// degree 6, `2^n` written into the exponent bits. NaN and anything below -87 give about 1.6e-38.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    let x = if x > -87.0 { x } else { -87.0 };
    let t = x * std::f32::consts::LOG2_E;
    // Adding 1.5 * 2^23 rounds t to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let tr = t + ROUND;
    let f = t - (tr - ROUND);
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_356 + f * 0.000_154_035_3)))));
    let n_biased = tr.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    p * f32::from_bits(n_biased << 23)
}

/// `sum(e^(x - max))` over `xs` with [`exp_approx`]: f32 lanes within a chunk, f64 across chunks.
fn sum_exp(xs: &[f32], max: f32) -> f64 {
    let mut total = 0.0f64;
    for chunk in xs.chunks(SCAN_CHUNK) {
        let mut acc = [0f32; 8];
        let mut it = chunk.chunks_exact(8);
        for v in &mut it {
            for k in 0..8 {
                acc[k] += exp_approx(v[k] - max);
            }
        }
        let rest: f32 = it.remainder().iter().map(|&x| exp_approx(x - max)).sum();
        total += (rest + acc.iter().sum::<f32>()) as f64;
    }
    total
}

/// The `m` best-ranked entries of `src` (ids are indices), without copying or sorting `src`:
/// one pass with a rising threshold, chunks whose maximum does not beat it are skipped, and the
/// buffer is cut back to `m` with a partial selection whenever it holds `2m`. `-inf` and NaN
/// entries are never taken. Exact: equal to selecting the top `m` of `src` under [`rank`].
fn gather_top(src: &[f32], m: usize, out: &mut Vec<Cand>) {
    out.clear();
    if m == 0 {
        return;
    }
    let cap = (2 * m).max(m + SCAN_CHUNK);
    let mut thr = f32::NEG_INFINITY;
    for (ci, chunk) in src.chunks(SCAN_CHUNK).enumerate() {
        // Entries equal to the threshold rank below the kept one holding it (they come later, so
        // their ids are larger): `>` is exact.
        if slice_max(chunk) <= thr {
            continue;
        }
        let base = ci * SCAN_CHUNK;
        for (j, &x) in chunk.iter().enumerate() {
            if x > thr {
                out.push(Cand {
                    id: (base + j) as u32,
                    logit: x,
                });
            }
        }
        if out.len() >= cap {
            keep_top(out, m);
            thr = out[m - 1].logit;
        }
    }
    keep_top(out, m);
}

/// Turns logits into tokens. See the module documentation for the chain.
pub struct Sampler {
    params: SamplerParams,
    n_vocab: usize,
    seed: u64,
    rng: rng::Rng,
    penalties_on: bool,
    /// Logit biases merged per token, sorted by id, out-of-range ids dropped.
    bias: Vec<(u32, f32)>,
    /// The last `repeat_last_n` accepted tokens (only kept while a penalty is on).
    history: VecDeque<u32>,
    /// Per-token counts over `history` (`n_vocab` entries, only while a penalty is on).
    counts: Vec<u32>,
    /// The distinct tokens in `history`.
    distinct: Vec<u32>,
    /// Tokens whose logit bias or penalties change, with the changed logit; sorted by id.
    overrides: Vec<Cand>,
    /// The candidate list; after `sample`, the final set.
    cand: Vec<Cand>,
    /// Probabilities of `cand` after `sample`.
    probs: Vec<f32>,
    /// A copy of the logits with the overrides applied, for the top-k-off path.
    work: Vec<f32>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.params)
            .field("n_vocab", &self.n_vocab)
            .field("seed", &self.seed)
            .field("history", &self.history.len())
            .finish()
    }
}

impl Sampler {
    /// A sampler for a vocabulary of `n_vocab` tokens. Logit biases for ids outside it are
    /// ignored ([`SamplerParams::validate`] reports them).
    pub fn new(params: SamplerParams, n_vocab: usize) -> Sampler {
        assert!(
            n_vocab > 0 && n_vocab <= u32::MAX as usize,
            "vocabulary size {n_vocab} out of range"
        );
        let seed = params.seed.unwrap_or_else(rng::random_seed);
        let mut bias: Vec<(u32, f32)> = params
            .logit_bias
            .iter()
            .copied()
            .filter(|&(id, b)| (id as usize) < n_vocab && !b.is_nan())
            .collect();
        bias.sort_by_key(|e| e.0);
        bias.dedup_by(|later, first| {
            if later.0 == first.0 {
                first.1 += later.1;
                true
            } else {
                false
            }
        });
        let penalties_on = params.penalties_on();
        // Capacity for the history window (a larger window grows as it fills).
        let window = if penalties_on {
            params.repeat_last_n.min(1 << 16)
        } else {
            0
        };
        let n_over = bias.len() + window.min(n_vocab);
        let k = if params.is_greedy() {
            1
        } else {
            params.top_k.min(n_vocab)
        };
        let cand_cap = if k > 0 && k < n_vocab {
            2 * (k + n_over) + 2 * SCAN_CHUNK
        } else {
            n_vocab
        };
        Sampler {
            n_vocab,
            seed,
            rng: rng::Rng::new(seed),
            penalties_on,
            bias,
            history: VecDeque::with_capacity(window),
            counts: if penalties_on {
                vec![0; n_vocab]
            } else {
                Vec::new()
            },
            distinct: Vec::with_capacity(window),
            overrides: Vec::with_capacity(n_over),
            cand: Vec::with_capacity(cand_cap),
            probs: Vec::with_capacity(cand_cap.min(n_vocab)),
            work: Vec::new(),
            params,
        }
    }

    /// The seed in use: the one given, or the random one picked when none was.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Record a token as part of the text, for the penalties. Call it for each generated token
    /// (and, to penalise repeats of the prompt as llama.cpp's server does, for prompt tokens).
    pub fn accept(&mut self, token: u32) {
        if !self.penalties_on || token as usize >= self.n_vocab {
            return;
        }
        if self.history.len() >= self.params.repeat_last_n {
            if let Some(old) = self.history.pop_front() {
                let c = &mut self.counts[old as usize];
                *c -= 1;
                if *c == 0 {
                    let pos = self
                        .distinct
                        .iter()
                        .position(|&t| t == old)
                        .expect("counted token is listed");
                    self.distinct.swap_remove(pos);
                }
            }
        }
        let c = &mut self.counts[token as usize];
        if *c == 0 {
            self.distinct.push(token);
        }
        *c += 1;
        self.history.push_back(token);
    }

    /// Forget the accepted tokens and restart the random sequence from the seed (a fixed seed
    /// replays the same draws).
    pub fn reset(&mut self) {
        for &t in &self.distinct {
            self.counts[t as usize] = 0;
        }
        self.distinct.clear();
        self.history.clear();
        self.rng = rng::Rng::new(self.seed);
    }

    /// The final candidates of the last [`sample`](Sampler::sample) call and their
    /// probabilities (after temperature; `1.0` for the greedy pick).
    pub fn candidates(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.cand.iter().zip(&self.probs).map(|(c, &p)| (c.id, p))
    }

    /// Pick the next token from `logits` (one per vocabulary entry). Does not call
    /// [`accept`](Sampler::accept).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        assert_eq!(
            logits.len(),
            self.n_vocab,
            "logits length does not match the vocabulary"
        );
        self.build_overrides(logits);
        if !self.filter(logits) {
            // Every logit is -inf or NaN (e.g. all banned): nothing sensible to draw from.
            let id = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(i, _)| i as u32);
            self.cand.clear();
            self.cand.push(Cand {
                id,
                logit: logits[id as usize],
            });
            self.probs.clear();
            self.probs.push(1.0);
            return id;
        }
        self.draw()
    }

    /// Stages 1-2: the logits that bias and penalties change.
    fn build_overrides(&mut self, logits: &[f32]) {
        self.overrides.clear();
        for &(id, b) in &self.bias {
            self.overrides.push(Cand {
                id,
                logit: logits[id as usize] + b,
            });
        }
        if !self.penalties_on || self.distinct.is_empty() {
            return;
        }
        let n_bias = self.overrides.len();
        let p = &self.params;
        for &id in &self.distinct {
            let count = self.counts[id as usize] as f32;
            let pos = self.overrides[..n_bias].binary_search_by_key(&id, |c| c.id);
            let mut l = match pos {
                Ok(i) => self.overrides[i].logit,
                Err(_) => logits[id as usize],
            };
            if l <= 0.0 {
                l *= p.repeat_penalty;
            } else {
                l /= p.repeat_penalty;
            }
            l -= count * p.frequency_penalty + p.presence_penalty;
            match pos {
                Ok(i) => self.overrides[i].logit = l,
                Err(_) => self.overrides.push(Cand { id, logit: l }),
            }
        }
        self.overrides.sort_unstable_by_key(|c| c.id);
    }

    /// Stages 3-5 (and greedy): leaves the surviving candidates in `cand`, best first when the
    /// set was sorted. Returns false when no token has a usable logit.
    fn filter(&mut self, logits: &[f32]) -> bool {
        let p = &self.params;
        let greedy = p.is_greedy();
        let k = if greedy { 1 } else { p.top_k };
        let top_p_on = !greedy && p.top_p < 1.0;
        let min_p_on = !greedy && p.min_p > 0.0;
        // Softmax denominator for top-p (relative to the max logit), when it is not simply the
        // sum over the candidate list.
        let mut z_all: Option<f64> = None;
        let mut sorted;
        if k > 0 && k < self.n_vocab {
            // Top-k on the adjusted logits without materialising them: the adjusted top k are
            // among the original top k + |overrides| once overridden ids are replaced.
            gather_top(logits, k + self.overrides.len(), &mut self.cand);
            if !self.overrides.is_empty() {
                let ov = &self.overrides;
                self.cand
                    .retain(|c| ov.binary_search_by_key(&c.id, |o| o.id).is_err());
                self.cand
                    .extend(ov.iter().filter(|o| o.logit > f32::NEG_INFINITY));
                keep_top(&mut self.cand, k);
            }
            self.cand.sort_unstable_by(rank);
            sorted = true;
        } else {
            // Top-k off: every token is a candidate. Apply the overrides to a copy, and let
            // min-p (which keeps the same tokens wherever it runs, as it depends only on the
            // max) cut the list while gathering.
            self.work.clear();
            self.work.extend_from_slice(logits);
            for o in &self.overrides {
                self.work[o.id as usize] = o.logit;
            }
            let max = slice_max(&self.work);
            if max == f32::NEG_INFINITY {
                self.cand.clear();
                return false;
            }
            let thr = if min_p_on {
                max + p.min_p.ln()
            } else {
                f32::NEG_INFINITY
            };
            self.cand.clear();
            for (ci, chunk) in self.work.chunks(SCAN_CHUNK).enumerate() {
                if min_p_on && slice_max(chunk) < thr {
                    continue;
                }
                for (j, &x) in chunk.iter().enumerate() {
                    if x >= thr && x > f32::NEG_INFINITY {
                        self.cand.push(Cand {
                            id: (ci * SCAN_CHUNK + j) as u32,
                            logit: x,
                        });
                    }
                }
            }
            if top_p_on {
                z_all = Some(sum_exp(&self.work, max));
            }
            sorted = false;
        }
        if self.cand.is_empty() {
            return false;
        }
        let max = if sorted {
            self.cand[0].logit
        } else {
            self.cand.iter().map(|c| c.logit).fold(f32::MIN, f32::max)
        };

        if top_p_on && self.cand.len() > 1 {
            let z = z_all.unwrap_or_else(|| {
                self.cand
                    .iter()
                    .map(|c| exp_approx(c.logit - max) as f64)
                    .sum()
            });
            let target = p.top_p as f64;
            let len = self.cand.len();
            let mut done = 0; // cand[..done] is sorted and ranks above the rest
            let mut chunk = 256;
            let mut cum = 0.0f64;
            let mut cut = len;
            'walk: while done < len {
                let end = if sorted { len } else { (done + chunk).min(len) };
                if !sorted {
                    let rest = &mut self.cand[done..];
                    if end < len {
                        rest.select_nth_unstable_by(end - done - 1, rank);
                    }
                    self.cand[done..end].sort_unstable_by(rank);
                }
                for i in done..end {
                    cum += exp_approx(self.cand[i].logit - max) as f64 / z;
                    if cum >= target {
                        cut = i + 1;
                        break 'walk;
                    }
                }
                done = end;
                chunk *= 4;
            }
            self.cand.truncate(cut);
            sorted = true;
        }

        if min_p_on {
            let thr = max + p.min_p.ln();
            if sorted {
                let keep = self.cand.partition_point(|c| c.logit >= thr).max(1);
                self.cand.truncate(keep);
            } else {
                self.cand.retain(|c| c.logit >= thr);
            }
        }
        true
    }

    /// Stages 6-7 on the final list.
    fn draw(&mut self) -> u32 {
        self.probs.clear();
        if self.params.is_greedy() {
            // `filter` kept the single best-ranked token.
            self.probs.push(1.0);
            return self.cand[0].id;
        }
        let inv_t = 1.0 / self.params.temp;
        let max = self.cand.iter().map(|c| c.logit).fold(f32::MIN, f32::max);
        let mut sum = 0.0f64;
        for c in &self.cand {
            let w = ((c.logit - max) * inv_t).exp();
            self.probs.push(w);
            sum += w as f64;
        }
        // One draw per call whatever the list length, so that a seed gives one sequence.
        let target = self.rng.next_f64() * sum;
        let mut cum = 0.0f64;
        let mut chosen = self.cand.len() - 1;
        for (i, &w) in self.probs.iter().enumerate() {
            cum += w as f64;
            if target < cum {
                chosen = i;
                break;
            }
        }
        let inv_sum = (1.0 / sum) as f32;
        for w in &mut self.probs {
            *w *= inv_sum;
        }
        self.cand[chosen].id
    }
}

#[cfg(test)]
mod tests;
