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
