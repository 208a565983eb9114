//! The slots: `--parallel N` OS threads, each owning a [`Context`] (its KV cache) and the
//! [`CachedTokens`] that say what that cache holds. Requests wait in one bounded FIFO queue and
//! the first free slot takes the oldest. Slots run concurrently, each calling the model on its
//! own. By default they share the process-wide compute pool (`nib_simd::pool`), which runs one
//! parallel step at a time, so the slots' matrix products take turns while the rest of their
//! work overlaps; `--slot-threads N` gives each slot a pool of its own instead. A forward pass
//! batching several slots' tokens would need multi-sequence support in [`Context`], which does
//! not exist.
//!
//! Nothing here runs on the async runtime: a handler submits a [`Job`] and reads [`Event`]s from
//! an async channel. A slot notices a client gone (the channel's receiver dropped) at the next
//! piece of text and cancels the generation, which frees the slot.

use super::batcher::{Batcher, Member};
use super::error::ApiError;
use super::metrics::Metrics;
use crate::generate::{
    generate, CachedTokens, Direct, Evaluator, GenerateOutput, GenerateParams, StopReason,
};
use crate::model::Context;
use crate::sample::{Sampler, SamplerParams};
use crate::tokenizer::Tokenizer;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// One generation to run.
pub struct Job {
    pub prompt: Vec<u32>,
    pub sampler: SamplerParams,
    pub params: GenerateParams,
    /// Send text pieces as they come (streaming); otherwise only the end.
    pub stream: bool,
    events: UnboundedSender<Event>,
}

/// What a slot reports about a job.
#[derive(Debug)]
pub enum Event {
    /// A piece of text (streaming jobs only).
    Text(String),
    /// The generation ended.
    Done(Box<Finished>),
    /// It failed; the slot is fine again.
    Failed(ApiError),
}

/// A finished generation and its place in the prompt cache.
#[derive(Debug)]
pub struct Finished {
    pub out: GenerateOutput,
    /// Prompt tokens, all of them (cached or evaluated).
    pub prompt_tokens: usize,
    /// Prompt tokens that were in the slot's cache already.
    pub cached_tokens: usize,
    /// Milliseconds the job waited for a slot.
    pub queue_ms: f64,
}

impl Job {
    pub fn new(
        prompt: Vec<u32>,
        sampler: SamplerParams,
        params: GenerateParams,
        stream: bool,
    ) -> (Job, UnboundedReceiver<Event>) {
        let (events, rx) = unbounded_channel();
        (
            Job {
                prompt,
                sampler,
                params,
                stream,
                events,
            },
            rx,
        )
    }
}

struct Queued {
    job: Job,
    at: Instant,
}

/// The queue and how many slots are generating, under one lock so that admission is exact: a
/// request is let in when a slot is idle or fewer than `--queue` requests wait.
#[derive(Default)]
struct Board {
    waiting: VecDeque<Queued>,
    busy: usize,
    closed: bool,
}

struct Shared {
    board: Mutex<Board>,
    wake: Condvar,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, b: &Board) {
        self.metrics.queued.store(b.waiting.len(), SeqCst);
        self.metrics.busy.store(b.busy, SeqCst);
    }
}

/// The slots and their queue.
pub struct Slots {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    n_slots: usize,
    n_ctx: usize,
    max_waiting: usize,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every slot is busy and `--queue` requests wait already.
    Full,
    /// The server is stopping.
    Closed,
}

impl Slots {
    /// Start one thread per context. `cancel` set means: stop every generation now (shutdown).
    /// `threads_per_slot`: give each slot its own compute pool of that many threads; `None`:
    /// the slots share the process-wide pool (one parallel step at a time).
    pub fn start(
        contexts: Vec<Context>,
        tokenizer: Arc<Tokenizer>,
        queue: usize,
        metrics: Arc<Metrics>,
        cancel: Arc<AtomicBool>,
        threads_per_slot: Option<usize>,
    ) -> std::io::Result<Slots> {
        let n_slots = contexts.len();
        let n_ctx = contexts.first().map_or(0, Context::n_ctx);
        let shared = Arc::new(Shared {
            board: Mutex::new(Board::default()),
            wake: Condvar::new(),
            metrics,
        });
        let mut threads = Vec::with_capacity(n_slots);
        // Slots sharing the process-wide pool decode together; slots with pools of their own
        // run side by side instead.
        let batcher =
            (n_slots > 1 && threads_per_slot.is_none()).then(|| Arc::new(Batcher::default()));
        for (i, ctx) in contexts.into_iter().enumerate() {
            let slot = Slot {
                id: i,
                batcher: batcher.clone(),
                ctx,
                pool: threads_per_slot.map(nib_simd::pool::Pool::new),
                cache: CachedTokens::default(),
                tokenizer: Arc::clone(&tokenizer),
                metrics: Arc::clone(&shared.metrics),
                cancel: Arc::clone(&cancel),
            };
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("nib-slot-{i}"))
                    .spawn(move || slot.run(&shared))?,
            );
        }
        Ok(Slots {
            shared,
            threads: Mutex::new(threads),
            n_slots,
            n_ctx,
            max_waiting: queue,
        })
    }

    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Context size of each slot.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Queue a job, or say why not (the queue is full, or closed for shutdown).
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut b = self.shared.board();
        if b.closed {
            return Err(SubmitError::Closed);
        }
        let idle = self.n_slots.saturating_sub(b.busy + b.waiting.len());
        if idle == 0 && b.waiting.len() >= self.max_waiting {
            return Err(SubmitError::Full);
        }
        b.waiting.push_back(Queued {
            job,
            at: Instant::now(),
        });
        self.shared.publish(&b);
        drop(b);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Take no more jobs; the slots finish what is queued (quickly once `cancel` is set) and
    /// their threads end. Returns when they have.
    pub fn close_and_join(&self) {
        self.shared.board().closed = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

struct Slot {
    id: usize,
    /// Where the decoding steps of concurrent generations are batched (`None`: one slot, or
    /// slots with pools of their own).
    batcher: Option<Arc<Batcher>>,
    ctx: Context,
    /// This slot's own thread pool for the hot loops; `None`: the process-wide pool.
    pool: Option<nib_simd::pool::Pool>,
    cache: CachedTokens,
    tokenizer: Arc<Tokenizer>,
    metrics: Arc<Metrics>,
    cancel: Arc<AtomicBool>,
}

impl Slot {
    fn run(mut self, shared: &Shared) {
        loop {
            let Queued { job, at } = {
                let mut b = shared.board();
                loop {
                    if let Some(q) = b.waiting.pop_front() {
                        b.busy += 1;
                        shared.publish(&b);
                        break q;
                    }
                    if b.closed {
                        return;
                    }
                    b = shared.wake.wait(b).unwrap_or_else(|e| e.into_inner());
                }
            };
            let event = if job.events.is_closed() {
                None // The client left while waiting.
            } else if self.cancel.load(Relaxed) {
                Some(Event::Failed(shutting_down()))
            } else {
                Some(self.run_job(&job, at))
            };
            {
                let mut b = shared.board();
                b.busy -= 1;
                shared.publish(&b);
            }
            // Sent after the slot counts as free, so a client that gets its answer and asks
            // again at once finds the slot idle.
            if let Some(e) = event {
                let _ = job.events.send(e);
            }
        }
    }

    fn run_job(&mut self, job: &Job, at: Instant) -> Event {
        let queue_ms = at.elapsed().as_secs_f64() * 1e3;
        match catch_unwind(AssertUnwindSafe(|| self.generate(job, queue_ms))) {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                self.reset();
                Event::Failed(ApiError::internal(format!("generation failed: {e:#}")))
            }
            Err(panic) => {
                self.reset();
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                eprintln!("nib serve: slot {}: generation panicked: {msg}", self.id);
                Event::Failed(ApiError::internal(format!("generation failed: {msg}")))
            }
        }
    }

    /// Forget the cache after a failure: the context's state is not to be trusted.
    fn reset(&mut self) {
        self.ctx.clear();
        self.cache.tokens.clear();
    }

    fn generate(&mut self, job: &Job, queue_ms: f64) -> anyhow::Result<Event> {
        let mut sampler = Sampler::new(job.sampler.clone(), self.ctx.model.hp.n_vocab);
        let cancel = &self.cancel;
        let events = &job.events;
        let stream = job.stream;
        let mut on_text = |s: &str| {
            if cancel.load(Relaxed) {
                return false;
            }
            if stream {
                events.send(Event::Text(s.to_string())).is_ok()
            } else {
                !events.is_closed()
            }
        };
        let (ctx, cache, tok) = (&mut self.ctx, &mut self.cache, &*self.tokenizer);
        let mut member = self.batcher.as_deref().map(Member::new);
        let mut direct = Direct;
        let eval: &mut dyn Evaluator = match member.as_mut() {
            Some(m) => m,
            None => &mut direct,
        };
        let mut run = || {
            generate(
                ctx,
                cache,
                tok,
                &mut sampler,
                &job.prompt,
                &job.params,
                &mut on_text,
                &mut *eval,
            )
        };
        let out = match &self.pool {
            Some(pool) => nib_simd::pool::with_pool(pool, run),
            None => run(),
        };
        // Out of the decoding batch before anything else (the others need not wait for us).
        drop(member);
        let out = out?;
        let cancelled = out.stop == StopReason::Cancelled;
        let cached_tokens = job.prompt.len() - out.n_prompt;
        self.metrics.generation(
            out.n_prompt,
            cached_tokens,
            out.tokens.len(),
            out.prompt_seconds,
            out.gen_seconds,
            cancelled,
        );
        eprintln!(
            "nib serve: slot {}: prompt {} tokens ({} cached) in {:.0} ms, {} tokens at {:.1} t/s, waited {:.0} ms, {}",
            self.id,
            job.prompt.len(),
            cached_tokens,
            out.prompt_seconds * 1e3,
            out.tokens.len(),
            out.gen_tps(),
            queue_ms,
            if cancelled { "cancelled" } else { out.stop.name() },
        );
        if cancelled && self.cancel.load(Relaxed) {
            return Ok(Event::Failed(shutting_down()));
        }
        Ok(Event::Done(Box::new(Finished {
            out,
            prompt_tokens: job.prompt.len(),
            cached_tokens,
            queue_ms,
        })))
    }
}

fn shutting_down() -> ApiError {
    ApiError::unavailable(
        "shutting_down",
        "the server is shutting down; the generation was cancelled",
    )
}
