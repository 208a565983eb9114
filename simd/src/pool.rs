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

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Incremented for every step; workers wait for it to change.
    generation: AtomicU64,
    /// The current step's function, as a raw pointer to the caller's closure; valid while the
    /// caller waits in `run` (see the SAFETY comments there).
    job: UnsafeCell<Option<*const Job>>,
    n_tasks: AtomicUsize,
    next_task: AtomicUsize,
    /// Workers that have finished the current generation.
    finished: AtomicUsize,
    shutdown: AtomicBool,
    /// Workers that are (or are about to be) parked on `wake`.
    sleepers: Mutex<usize>,
    wake: Condvar,
    /// A task panicked in the current generation.
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the thread inside `Pool::run` while no worker reads it (all
// workers have finished the previous generation), and read by workers only between their
// observation of a new generation and their increment of `finished`, during which the caller keeps
// the pointer valid and does not write it. Every other field is atomic or a Mutex/Condvar.
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
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next_task: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            sleepers: Mutex::new(0),
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
    /// are done. A panic in a task is re-raised here after every thread has left the step.
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
        // SAFETY (of the `unsafe` below): every worker has finished the previous generation (we waited for it below
        // before the last `run` returned), so none reads `job` now. The transmute only erases the
        // closure's lifetime; the pointer is cleared before this function returns, and workers
        // dereference it only before incrementing `finished`, which we wait for.
        unsafe {
            *s.job.get() = Some(erase_lifetime(f));
        }
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.next_task.store(0, Ordering::Relaxed);
        s.finished.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        {
            let sleepers = s.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            if *sleepers > 0 {
                s.wake.notify_all();
            }
        }
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim_tasks(s, f)));
        let n_workers = self.workers.len();
        let mut spins = 0u32;
        while s.finished.load(Ordering::Acquire) < n_workers {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                // Oversubscribed (more threads than free cores): let the worker run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: all workers have finished this generation; nobody reads `job` until the next.
        unsafe { *s.job.get() = None };
        if let Err(p) = ok {
            std::panic::resume_unwind(p);
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a worker thread panicked while running a parallel step");
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

fn claim_tasks(s: &Shared, job: &(dyn Fn(usize) + Sync)) {
    let n = s.n_tasks.load(Ordering::Relaxed);
    loop {
        let t = s.next_task.fetch_add(1, Ordering::Relaxed);
        if t >= n {
            break;
        }
        job(t);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            spins += 1;
            if spins.is_multiple_of(1024) && start.elapsed() > SPIN {
                let mut sleepers = s.sleepers.lock().unwrap_or_else(|e| e.into_inner());
                *sleepers += 1;
                while s.generation.load(Ordering::Acquire) == seen
                    && !s.shutdown.load(Ordering::Relaxed)
                {
                    sleepers = s.wake.wait(sleepers).unwrap_or_else(|e| e.into_inner());
                }
                *sleepers -= 1;
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the generation changed, so `run` has stored a valid job and keeps it alive
        // until we increment `finished` below.
        let job = unsafe { (*s.job.get()).expect("a job for the new generation") };
        // SAFETY: as above: the pointee outlives this use.
        let job: &Job = unsafe { &*job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claim_tasks(s, job))).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.finished.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        {
            let _l = self
                .shared
                .sleepers
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
