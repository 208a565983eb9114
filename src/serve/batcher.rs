//! The slots' model evaluations, scheduled together: decoding steps run as one batch, prompts one
//! at a time in between.
//!
//! Decoding is bound by reading the weights: one token's step reads every matrix once, and so
//! can several tokens' steps together ([`Context::decode_batch`]). A slot in its decoding loop
//! hands its step to the [`Batcher`] and waits. The first slot to find the batch complete (every
//! decoding slot has asked) or to have waited [`GATHER`] runs the step for everyone waiting and
//! hands each its result; the others sleep meanwhile. Slots still evaluating a prompt are not
//! waited for: they join when they start decoding ([`Member`]). A prompt runs alone, while no
//! step runs, and the steps asked for meanwhile gather into the next batch; only one thread
//! computes at a time (with the compute pool), so the slots never compete for the cores.

use crate::generate::Evaluator;
use crate::model::{Context, Logits};
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a step waits for decoding slots that have not asked yet (they are sampling or
/// sending text, which takes far less than a step).
const GATHER: Duration = Duration::from_millis(2);

/// A context lent to the step that runs it.
struct Lent(*mut Context);

// SAFETY: the pointer is only dereferenced by the thread running the step, while the thread
// that lent it is blocked in `Batcher::decode` (see there); a `Context` may move between threads.
unsafe impl Send for Lent {}

struct Request {
    ticket: u64,
    ctx: Lent,
    token: u32,
}

#[derive(Default)]
struct State {
    /// Slots in their decoding loop.
    decoding: usize,
    pending: Vec<Request>,
    /// A step is running.
    running: bool,
    done: HashMap<u64, Result<(), String>>,
    next_ticket: u64,
    /// The most steps one batch has run (the tests check that batches formed).
    #[cfg(test)]
    largest_batch: usize,
}

/// See the module documentation.
#[derive(Default)]
pub struct Batcher {
    state: Mutex<State>,
    wake: Condvar,
}

impl Batcher {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One decoding step of `ctx` with `token`, batched with the other slots' steps; on return
    /// the logits are in `ctx.last_logits()`.
    pub fn decode(&self, ctx: &mut Context, token: u32) -> Result<()> {
        let mut st = self.state();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.pending.push(Request {
            ticket,
            ctx: Lent(ctx),
            token,
        });
        self.wake.notify_all();
        let since = Instant::now();
        loop {
            if let Some(r) = st.done.remove(&ticket) {
                return r.map_err(|e| anyhow!(e));
            }
            let waited = since.elapsed();
            if !st.running
                && !st.pending.is_empty()
                && (st.pending.len() >= st.decoding || waited >= GATHER)
            {
                st.running = true;
                let batch = std::mem::take(&mut st.pending);
                #[cfg(test)]
                {
                    st.largest_batch = st.largest_batch.max(batch.len());
                }
                drop(st);
                let result = run(&batch);
                st = self.state();
                st.running = false;
                for r in &batch {
                    st.done.insert(r.ticket, result.clone());
                }
                self.wake.notify_all();
                continue;
            }
            let timeout = GATHER
                .saturating_sub(waited)
                .max(Duration::from_micros(100));
            st = self
                .wake
                .wait_timeout(st, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Evaluate a prompt on `ctx` while no step runs.
    pub fn prompt(&self, ctx: &mut Context, tokens: &[u32]) -> Result<()> {
        let mut st = self.state();
        while st.running {
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.running = true;
        drop(st);
        let result = catch_unwind(AssertUnwindSafe(|| {
            ctx.eval(tokens, Logits::Last).map(|_| ())
        }));
        self.state().running = false;
        self.wake.notify_all();
        match result {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// Runs one step; a panic becomes every request's error (the waiting slots must not hang).
fn run(batch: &[Request]) -> Result<(), String> {
    let tokens: Vec<u32> = batch.iter().map(|r| r.token).collect();
    // Two requests lending one context would make two `&mut` to it below: refuse (a slot has
    // one context and waits for each step before asking for the next, so this never fires).
    for (i, a) in batch.iter().enumerate() {
        assert!(
            batch[..i].iter().all(|b| b.ctx.0 != a.ctx.0),
            "one context lent twice to a decoding step"
        );
    }
    // SAFETY: each pointer was made from the `&mut Context` of a thread now blocked in
    // `Batcher::decode` until its ticket is done, which happens after this function returns; the
    // slots own distinct contexts, so the references are unique and valid for this call.
    let mut ctxs: Vec<&mut Context> = batch.iter().map(|r| unsafe { &mut *r.ctx.0 }).collect();
    match catch_unwind(AssertUnwindSafe(|| {
        Context::decode_batch(&mut ctxs, &tokens)
    })) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("the decoding step panicked".to_string()),
    }
}

/// A slot's membership in the decoding batch for one generation: it counts as decoding from its
/// first step until this is dropped.
pub struct Member<'a> {
    batcher: &'a Batcher,
    joined: bool,
}

impl<'a> Member<'a> {
    pub fn new(batcher: &'a Batcher) -> Self {
        Member {
            batcher,
            joined: false,
        }
    }

    /// [`Batcher::decode`], joining the batch at the first step.
    pub fn decode(&mut self, ctx: &mut Context, token: u32) -> Result<()> {
        if !self.joined {
            self.batcher.state().decoding += 1;
            self.joined = true;
        }
        self.batcher.decode(ctx, token)
    }
}

impl Evaluator for Member<'_> {
    fn prompt(&mut self, ctx: &mut Context, tokens: &[u32]) -> Result<()> {
        self.batcher.prompt(ctx, tokens)
    }
    fn decode(&mut self, ctx: &mut Context, token: u32) -> Result<()> {
        Member::decode(self, ctx, token)
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if self.joined {
            let mut st = self.batcher.state();
            st.decoding -= 1;
            // The others may be waiting for this slot's step: let them see it will not come.
            self.batcher.wake.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The `Lent(*mut Context)` invariant: a context lent to a step is used by that step only,
    //! never by two steps or two slots at once, and is back with its slot, holding exactly its
    //! own step, when `decode` returns. Checked on the real SmolLM2 model: slots decoding
    //! concurrently through the batcher get, bit for bit, the logits and tokens that each
    //! context decoding alone gets (batches of fewer than 8 tokens sum in the same order as one
    //! token), their positions advance by one per step, and the batcher ends empty.

    use super::*;
    use crate::model::{KvType, LoadOptions, Model};
    use std::sync::{Arc, Barrier};

    const SLOTS: usize = 4;
    const STEPS: usize = 12;

    fn prompt(i: usize) -> Vec<u32> {
        (0..3 + 5 * i)
            .map(|j| 200 + (31 * j + 17 * i) as u32 % 700)
            .collect()
    }

    fn argmax(v: &[f32]) -> u32 {
        (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32
    }

    /// Per slot: the greedy tokens and each step's logits, decoding alone.
    fn alone(model: &Arc<Model>) -> Vec<(Vec<u32>, Vec<Vec<f32>>)> {
        (0..SLOTS)
            .map(|i| {
                let mut ctx = Context::new(Arc::clone(model), 64, 32, KvType::F16).unwrap();
                let mut next = argmax(ctx.eval(&prompt(i), Logits::Last).unwrap());
                let (mut toks, mut rows) = (vec![], vec![]);
                for _ in 0..STEPS {
                    toks.push(next);
                    let l = ctx.eval(&[next], Logits::Last).unwrap().to_vec();
                    next = argmax(&l);
                    rows.push(l);
                }
                (toks, rows)
            })
            .collect()
    }

    #[test]
    fn lent_contexts_are_used_by_one_step_and_returned() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            path.exists(),
            "{} is missing: run tools/fetch-models.sh",
            path.display()
        );
        let model = Arc::new(Model::load(&path, &LoadOptions::default()).unwrap());
        let want = alone(&model);
        let batcher = Batcher::default();
        let start = Barrier::new(SLOTS);
        for round in 0..3 {
            std::thread::scope(|s| {
                for (i, want) in want.iter().enumerate() {
                    let (model, batcher, start) = (&model, &batcher, &start);
                    s.spawn(move || {
                        let mut ctx =
                            Context::new(Arc::clone(model), 64, 32, KvType::F16).unwrap();
                        let p = prompt(i);
                        let mut member = Member::new(batcher);
                        start.wait();
                        Evaluator::prompt(&mut member, &mut ctx, &p).unwrap();
                        let mut next = argmax(ctx.last_logits());
                        for step in 0..STEPS {
                            assert_eq!(next, want.0[step], "round {round} slot {i} step {step}");
                            member.decode(&mut ctx, next).unwrap();
                            // Back with its slot, holding its own step and no other.
                            assert_eq!(ctx.n_past(), p.len() + step + 1);
                            let got = ctx.last_logits();
                            assert!(
                                got.iter()
                                    .zip(&want.1[step])
                                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                                "round {round} slot {i} step {step}: logits differ from decoding alone"
                            );
                            next = argmax(got);
                        }
                        drop(member);
                        // The context is the slot's again: it decodes on alone.
                        let l = ctx.eval(&[next], Logits::Last).unwrap();
                        assert!(l.iter().all(|v| v.is_finite()));
                    });
                }
            });
        }
        let st = batcher.state();
        assert!(
            st.pending.is_empty() && st.done.is_empty(),
            "requests left behind"
        );
        assert!(!st.running);
        assert_eq!(st.decoding, 0, "a member still counted as decoding");
        assert!(
            st.largest_batch > 1,
            "no step batched two slots: the test did not exercise lending"
        );
    }
}
