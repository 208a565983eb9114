//! A small pool of persistent worker threads for the hot loops of inference.
//!
//! Decoding one token runs a few hundred short parallel steps (one per matrix product), each
//! lasting microseconds. A fork-join that wakes sleeping threads through the kernel for every
//! step costs as much as the step itself, so this pool keeps its workers spinning on an atomic
//! generation counter between steps (as ggml's thread pool does) and parks them only after a
//! while without work. The calling thread takes part in every step.
//!
//! A step is `run(n_tasks, f)`: `f(task)` is called once for every task in `0..n_tasks`, tasks
//! being claimed from an atomic counter so fast threads take more of them.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);
/// `state` bit meaning "this step takes no more workers".
const CLOSED: u64 = 1 << 31;
/// `state` mask of the count of workers inside the current step.
const ACTIVE: u64 = CLOSED - 1;

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// `generation << 32 | CLOSED? | active workers`. A worker joins a step by incrementing the
    /// active count while the step is open; the caller closes the step once every task is done
    /// and waits only for the workers that joined, so a descheduled worker never delays a step
    /// it did not take part in.
    state: AtomicU64,
    /// The current step's function, as a raw pointer to the caller's closure; valid while the
    /// step is open or has active workers (see the SAFETY comments in `run`).
    job: UnsafeCell<Option<*const Job>>,
    n_tasks: AtomicUsize,
    next_task: AtomicUsize,
    done_tasks: AtomicUsize,
    shutdown: AtomicBool,
    /// Workers parked (or about to park) on `wake`.
    n_sleeping: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// A task panicked in the current step.
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the thread inside `Pool::run`, while the step is closed and
// no worker is active (so no worker reads it), and read by workers only while they are counted
// as active in an open-or-closing step, during which the caller keeps the pointee alive and does
// not write the pointer. Every other field is atomic or a Mutex/Condvar.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A pool of `n - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
    /// Serialises `run` calls from different threads.
    busy: Mutex<()>,
}

impl Pool {
    /// A pool running steps on `n_threads` threads (the caller and `n_threads - 1` workers).
    pub fn new(n_threads: usize) -> Pool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            // Generation 0, closed, no workers.
            state: AtomicU64::new(CLOSED),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next_task: AtomicUsize::new(0),
            done_tasks: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            n_sleeping: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            panicked: AtomicBool::new(false),
        });
        let workers = (1..n_threads)
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("nib-worker-{i}"))
                    .spawn(move || worker(&s))
                    .expect("spawn worker thread")
            })
            .collect();
        Pool {
            shared,
            workers,
            n_threads,
            busy: Mutex::new(()),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Call `f(task)` for every task in `0..n_tasks` on the pool's threads; returns when all
    /// are done. If a task panics, the other tasks still run and this call then panics.
    pub fn run<F: Fn(usize) + Sync>(&self, n_tasks: usize, f: &F) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            (0..n_tasks).for_each(f);
            return;
        }
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: the previous step ended closed with no active worker (we waited for that
        // before the last `run` returned), and workers read `job` only after joining an open
        // step, which none can do until we open one below; so nobody reads `job` now. The
        // pointer erases the closure's lifetime; it is cleared before this function returns,
        // after every worker that joined has left.
        unsafe {
            *s.job.get() = Some(erase_lifetime(f));
        }
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.next_task.store(0, Ordering::Relaxed);
        s.done_tasks.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        // Open the next generation with no workers (publishes the stores above).
        let generation = (s.state.load(Ordering::Relaxed) >> 32) + 1;
        s.state.store(generation << 32, Ordering::SeqCst);
        if s.n_sleeping.load(Ordering::SeqCst) > 0 {
            let _l = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        claim_tasks(s, f);
        // Wait for the tasks other threads claimed, then close the step and wait for the
        // workers that joined it to leave.
        wait_until(|| s.done_tasks.load(Ordering::Acquire) >= n_tasks);
        s.state.fetch_or(CLOSED, Ordering::SeqCst);
        wait_until(|| s.state.load(Ordering::Acquire) & ACTIVE == 0);
        // SAFETY: the step is closed and no worker is active: nobody reads `job` until the next
        // step opens.
        unsafe { *s.job.get() = None };
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a worker thread panicked while running a parallel step");
        }
    }
}

/// Spin until `done()`, yielding the CPU now and then in case the thread we wait for needs it
/// (more threads than free cores).
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if spins > 2000 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The closure as a lifetime-free pointer.
///
/// # Safety
/// The caller must not let the pointer be dereferenced after `f` is gone.
unsafe fn erase_lifetime<'a>(f: &'a (dyn Fn(usize) + Sync + 'a)) -> *const Job {
    // SAFETY: only the trait object's lifetime bound changes; the layout is identical. The
    // caller guarantees the pointee outlives every dereference.
    unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + 'a), *const Job>(f) }
}

/// Claim and run tasks until none is left; every finished task is counted (also one that
/// panicked, after recording the panic, so the caller never waits forever).
fn claim_tasks(s: &Shared, job: &(dyn Fn(usize) + Sync)) {
    let n = s.n_tasks.load(Ordering::Relaxed);
    loop {
        let t = s.next_task.fetch_add(1, Ordering::Relaxed);
        if t >= n {
            break;
        }
        // Keep going after a panic (so the step completes), but remember it for the caller;
        // the panic hook has already printed its message.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(t))).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.done_tasks.fetch_add(1, Ordering::Release);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Wait for an open step of a new generation: spin, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        let joined = loop {
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let st = s.state.load(Ordering::Acquire);
            let generation = st >> 32;
            if generation != seen {
                if st & CLOSED != 0 {
                    // Missed that step entirely; it is over.
                    seen = generation;
                    continue;
                }
                if s.state
                    .compare_exchange_weak(st, st + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    seen = generation;
                    break true;
                }
                continue;
            }
            spins += 1;
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN {
                let mut l = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                s.n_sleeping.fetch_add(1, Ordering::SeqCst);
                while s.state.load(Ordering::SeqCst) >> 32 == seen
                    && !s.shutdown.load(Ordering::Relaxed)
                {
                    l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
                }
                s.n_sleeping.fetch_sub(1, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        };
        debug_assert!(joined);
        // SAFETY: we joined an open step (counted as active), so `run` has stored a valid job
        // and keeps it alive and unchanged until we leave below.
        let job = unsafe { (*s.job.get()).expect("a job for the open step") };
        // SAFETY: as above: the pointee outlives this use.
        let job: &Job = unsafe { &*job };
        claim_tasks(s, job);
        s.state.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        {
            let _l = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A raw slice pointer handed to tasks that each touch a disjoint chunk.
struct ChunkPtr<T>(*mut T);
// SAFETY: used only by `for_each_chunk_mut`, whose tasks access disjoint chunks.
unsafe impl<T: Send> Sync for ChunkPtr<T> {}

impl<T> ChunkPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

impl Pool {
    /// Call `f(i, chunk)` for the `i`-th `chunk_len`-long chunk of `data` (the last may be
    /// shorter), in parallel.
    pub fn for_each_chunk_mut<T: Send, F: Fn(usize, &mut [T]) + Sync>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: F,
    ) {
        let chunk_len = chunk_len.max(1);
        let len = data.len();
        let n = len.div_ceil(chunk_len);
        let ptr = ChunkPtr(data.as_mut_ptr());
        let ptr = &ptr;
        self.run(n, &|i| {
            let start = i * chunk_len;
            let end = (start + chunk_len).min(len);
            // SAFETY: chunks `[i * chunk_len, min(len, (i + 1) * chunk_len))` are disjoint for
            // different `i`, lie inside `data`, and `data` stays mutably borrowed until `run`
            // returns after every task.
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(ptr.get().add(start), end - start) };
            f(i, chunk)
        });
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// Set the global pool's thread count; only effective before its first use. Returns the
/// count the pool has (or will have).
pub fn set_threads(n: usize) -> usize {
    let _ = REQUESTED.compare_exchange(0, n.max(1), Ordering::Relaxed, Ordering::Relaxed);
    match GLOBAL.get() {
        Some(p) => p.n_threads(),
        None => REQUESTED.load(Ordering::Relaxed),
    }
}

thread_local! {
    static CURRENT: std::cell::Cell<*const Pool> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Run `f` with `pool` as this thread's pool (what [`current`] returns), e.g. to benchmark
/// several thread counts in one process.
pub fn with_pool<R>(pool: &Pool, f: impl FnOnce() -> R) -> R {
    struct Restore(*const Pool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(pool as *const Pool)));
    f()
}

/// Call `f` with the pool the hot loops of this thread use: the one set by [`with_pool`], else
/// the global pool.
pub fn with_current<R>(f: impl FnOnce(&Pool) -> R) -> R {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        f(global())
    } else {
        // SAFETY: `with_pool` sets the pointer only while its closure runs on this thread, and
        // restores the previous value when it returns or unwinds; we are inside that closure
        // (same thread, nested call), so the pool is alive for all of `f`.
        f(unsafe { &*p })
    }
}

/// The process-wide pool (threads: [`set_threads`], else the number of CPUs).
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| {
        let n = match REQUESTED.load(Ordering::Relaxed) {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        Pool::new(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            for n in [0, 1, 2, 7, 100, 1000] {
                let counts: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                for _ in 0..20 {
                    pool.run(n, &|t| {
                        counts[t].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(
                    counts.iter().all(|c| c.load(Ordering::Relaxed) == 20),
                    "threads {threads} n {n}"
                );
            }
        }
    }

    #[test]
    fn survives_parking_and_waking() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        for round in 0..3 {
            pool.run(10, &|t| {
                sum.fetch_add(t, Ordering::Relaxed);
            });
            if round == 1 {
                std::thread::sleep(SPIN * 5);
            }
        }
        assert_eq!(sum.load(Ordering::Relaxed), 3 * 45);
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_stays_usable() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(8, &|t| {
                if t == 5 {
                    panic!("task 5");
                }
            })
        }));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        pool.run(4, &|t| {
            sum.fetch_add(t, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
    }
}
