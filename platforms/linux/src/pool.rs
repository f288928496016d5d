//! A persistent thread pool implementing [`tern_core::exec::Exec`].
//!
//! `n - 1` workers are spawned once; each parallel call publishes a job, the caller runs
//! task 0 itself and the workers run tasks 1..n. Workers spin briefly on the job counter
//! (decode issues hundreds of small calls per token), then park on a condition variable; a job
//! makes the wake-up call (a futex syscall) only when a worker is parked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tern_core::exec::{Exec, ItemsI8F32F32, ItemsI32F32};

type Task<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// Incremented once per published job.
    epoch: AtomicUsize,
    /// Tasks of the current job not finished yet.
    pending: AtomicUsize,
    /// The current job, valid while `pending > 0` (lifetime erased, see `run`).
    job: Mutex<Option<Task<'static>>>,
    wake: Condvar,
    /// Workers parked on `wake` (changed only under the `job` lock): a job needs a wake-up
    /// call (a futex syscall) only when some worker sleeps, not while they spin.
    sleepers: AtomicUsize,
    stop: AtomicBool,
}

/// A fixed set of worker threads.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
    /// Serializes callers: one job at a time.
    busy: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.n_threads)
    }
}

const SPIN_ITERS: u32 = 20_000;

fn worker(shared: Arc<Shared>, index: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0;
        let epoch = loop {
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen || shared.stop.load(Ordering::Acquire) {
                break e;
            }
            if spins < SPIN_ITERS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let g = shared.job.lock().unwrap_or_else(|e| e.into_inner());
                if shared.epoch.load(Ordering::Acquire) == seen
                    && !shared.stop.load(Ordering::Acquire)
                {
                    // Counted under the lock that `run` and `drop` publish under, so either
                    // they see this sleeper and wake it, or this check sees their new epoch.
                    shared.sleepers.fetch_add(1, Ordering::Relaxed);
                    let g = shared.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                    shared.sleepers.fetch_sub(1, Ordering::Relaxed);
                    drop(g);
                }
            }
        };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        seen = epoch;
        let job = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = job {
            f(index);
        }
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ThreadPool {
    /// A pool running jobs on `n_threads` threads (the caller counts as one; `0` means 1).
    pub fn new(n_threads: usize) -> ThreadPool {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            job: Mutex::new(None),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let workers = (1..n_threads)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("tern-{i}"))
                    .spawn(move || worker(s, i))
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            n_threads,
            busy: Mutex::new(()),
        }
    }

    /// Threads used per job.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Run `f(0) .. f(n_threads - 1)` in parallel and return when all are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.n_threads == 1 {
            return f(0);
        }
        let _serial = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the lifetime of `f` is erased to publish it to the workers. Every worker
        // reads it only after the epoch bump below and decrements `pending` after its last
        // use; this function returns only once `pending` is 0, and clears the slot before
        // returning, so no worker can use `f` after it goes out of scope.
        let erased: Task<'static> = unsafe { std::mem::transmute::<Task<'_>, Task<'static>>(f) };
        {
            let mut g = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            *g = Some(erased);
            self.shared
                .pending
                .store(self.n_threads - 1, Ordering::Release);
            self.shared.epoch.fetch_add(1, Ordering::AcqRel);
            if self.shared.sleepers.load(Ordering::Relaxed) > 0 {
                self.shared.wake.notify_all();
            }
        }
        f(0);
        while self.shared.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _g = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A raw pointer that may cross threads; each task derives a disjoint sub-slice from it.
struct SyncPtr<T>(*mut T);
impl<T> Clone for SyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SyncPtr<T> {}
// SAFETY: only used to hand disjoint ranges of one `&mut [T]` to the pool's tasks while the
// caller holds that exclusive borrow (see `chunks`).
unsafe impl<T: Send> Sync for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SyncPtr<T> {}

/// Pieces per thread that [`chunks`] cuts an output into. Threads claim pieces from a shared
/// counter, so a thread that is descheduled or slower (a shared VM's stolen time, a busy
/// sibling core) does not hold up the others for a whole half of the work.
const PIECES_PER_THREAD: usize = 8;

/// Split `out` into contiguous pieces (multiples of `unit` elements, or of 16 when `unit` is
/// 1, except the last; about [`PIECES_PER_THREAD`] per thread) and call `f(start, piece)` for
/// each on the pool, threads claiming pieces in order until none is left.
fn chunks<T: Send>(
    pool: &ThreadPool,
    out: &mut [T],
    unit: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let len = out.len();
    let n = pool.n_threads;
    let g = if unit <= 1 { 16 } else { unit };
    if n == 1 || len < 4 * g {
        return f(0, out);
    }
    let per = len.div_ceil(n * PIECES_PER_THREAD).div_ceil(g) * g;
    let ptr = SyncPtr(out.as_mut_ptr());
    let next = AtomicUsize::new(0);
    pool.run(&move |_| {
        let p = ptr;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let start = i.saturating_mul(per).min(len);
            let end = (i + 1).saturating_mul(per).min(len);
            if start >= end {
                break;
            }
            // SAFETY: each piece index is claimed by exactly one task (atomic counter), so the
            // [start, end) ranges are disjoint; they lie within `out`, which stays exclusively
            // borrowed until `run` returns.
            let chunk = unsafe { std::slice::from_raw_parts_mut(p.0.add(start), end - start) };
            f(start, chunk);
        }
    });
}

/// Split `bufs` (each `(n, item)` for its own item size) in lockstep into one piece of whole
/// items per thread (a multiple of `grain` items each, the last may be shorter) and call
/// `f(first_item, pieces)` for each on the pool. Few, large pieces: the prefill matmul builds
/// its lookup tables once per piece.
fn items<const K: usize>(
    pool: &ThreadPool,
    n: usize,
    grain: usize,
    bufs: [(SyncPtr<u8>, usize, usize); K],
    f: &(dyn Fn(usize, [(*mut u8, usize); K]) + Sync),
) {
    let grain = grain.max(1);
    let per = n.div_ceil(pool.n_threads).div_ceil(grain) * grain;
    let piece = |start: usize, end: usize| {
        // (pointer, bytes) of items start..end of every buffer
        core::array::from_fn(|k| {
            let (p, item_bytes, _) = bufs[k];
            (
                p.0.wrapping_add(start * item_bytes),
                (end - start) * item_bytes,
            )
        })
    };
    if pool.n_threads == 1 || per == 0 || per >= n {
        return f(0, piece(0, n));
    }
    let next = AtomicUsize::new(0);
    pool.run(&move |_| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let start = i.saturating_mul(per).min(n);
            let end = (i + 1).saturating_mul(per).min(n);
            if start >= end {
                break;
            }
            f(start, piece(start, end));
        }
    });
}

/// A buffer of `(n, item)` elements for [`items`]: its pointer, bytes per item, and `n`.
fn buf<T>(s: &mut [T], item: usize) -> (SyncPtr<u8>, usize, usize) {
    assert!(
        item > 0 && s.len().is_multiple_of(item),
        "items: a buffer of whole items"
    );
    (
        SyncPtr(s.as_mut_ptr().cast()),
        item * size_of::<T>(),
        s.len() / item,
    )
}

/// The item count shared by every buffer.
fn same_n<const K: usize>(bufs: &[(SyncPtr<u8>, usize, usize); K]) -> usize {
    let n = bufs[0].2;
    assert!(
        bufs.iter().all(|b| b.2 == n),
        "items: buffers hold different item counts"
    );
    n
}

/// `len` bytes at `p` as a `&mut [T]`.
///
/// # Safety
/// `p .. p + len` must be a range of whole `T`s inside one live `&mut [T]` that no one else
/// uses while the returned slice lives.
unsafe fn piece_mut<'a, T>((p, len): (*mut u8, usize)) -> &'a mut [T] {
    // SAFETY: forwarded from the contract.
    unsafe { std::slice::from_raw_parts_mut(p.cast::<T>(), len / size_of::<T>()) }
}

impl Exec for ThreadPool {
    fn par_chunks_i32(&self, out: &mut [i32], unit: usize, f: &(dyn Fn(usize, &mut [i32]) + Sync)) {
        chunks(self, out, unit, f)
    }
    fn par_chunks_f32(&self, out: &mut [f32], unit: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        chunks(self, out, unit, f)
    }
    fn threads(&self) -> usize {
        self.n_threads
    }
    fn par_items_i32_f32(
        &self,
        a: &mut [i32],
        a_item: usize,
        b: &mut [f32],
        b_item: usize,
        grain: usize,
        f: &ItemsI32F32<'_>,
    ) {
        let bufs = [buf(a, a_item), buf(b, b_item)];
        let n = same_n(&bufs);
        items(self, n, grain, bufs, &|t0, [pa, pb]| {
            // SAFETY: `items` hands each item range to exactly one call, inside the buffers,
            // which stay exclusively borrowed by this method until it returns.
            f(t0, unsafe { piece_mut(pa) }, unsafe { piece_mut(pb) })
        })
    }
    fn par_items_i8_f32_f32(
        &self,
        a: &mut [i8],
        a_item: usize,
        b: &mut [f32],
        b_item: usize,
        c: &mut [f32],
        c_item: usize,
        grain: usize,
        f: &ItemsI8F32F32<'_>,
    ) {
        let bufs = [buf(a, a_item), buf(b, b_item), buf(c, c_item)];
        let n = same_n(&bufs);
        items(self, n, grain, bufs, &|t0, [pa, pb, pc]| {
            // SAFETY: as in `par_items_i32_f32`.
            f(
                t0,
                unsafe { piece_mut(pa) },
                unsafe { piece_mut(pb) },
                unsafe { piece_mut(pc) },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_once_for_all_sizes() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(threads);
            for len in [0usize, 1, 7, 63, 64, 65, 1000, 4099] {
                let mut out = vec![0i32; len];
                pool.par_chunks_i32(&mut out, 1, &|start, c| {
                    for (i, v) in c.iter_mut().enumerate() {
                        *v += (start + i) as i32 + 1;
                    }
                });
                assert!(
                    out.iter().enumerate().all(|(i, &v)| v == i as i32 + 1),
                    "threads {threads} len {len}"
                );
            }
        }
    }

    #[test]
    fn chunks_hold_whole_units() {
        let pool = ThreadPool::new(3);
        for (len, unit) in [(7 * 64, 7), (5 * 100, 5), (33 * 9, 9)] {
            let mut out = vec![0i32; len];
            pool.par_chunks_i32(&mut out, unit, &|start, c| {
                assert_eq!(start % unit, 0);
                assert_eq!(c.len() % unit, 0);
                c.iter_mut().for_each(|v| *v = 1);
            });
            assert!(out.iter().all(|&v| v == 1));
        }
    }

    #[test]
    fn items_split_in_lockstep() {
        for threads in [1, 2, 3, 4] {
            let pool = ThreadPool::new(threads);
            for (n, grain) in [
                (0usize, 16usize),
                (1, 16),
                (33, 16),
                (64, 16),
                (70, 32),
                (5, 1),
            ] {
                let (ai, bi) = (3, 2);
                let mut a = vec![0i32; n * ai];
                let mut b = vec![0f32; n * bi];
                pool.par_items_i32_f32(&mut a, ai, &mut b, bi, grain, &|t0, ca, cb| {
                    let k = ca.len() / ai;
                    assert_eq!(cb.len(), k * bi);
                    assert!(t0 % grain == 0 || threads == 1);
                    ca.iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v += (t0 * ai + i) as i32 + 1);
                    cb.iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v += (t0 * bi + i) as f32 + 1.0);
                });
                assert!(
                    a.iter().enumerate().all(|(i, &v)| v == i as i32 + 1),
                    "threads {threads} n {n}"
                );
                assert!(
                    b.iter().enumerate().all(|(i, &v)| v == i as f32 + 1.0),
                    "threads {threads} n {n}"
                );
            }
        }
    }

    #[test]
    fn many_small_jobs() {
        let pool = ThreadPool::new(4);
        let mut out = vec![0f32; 256];
        for _ in 0..2000 {
            pool.par_chunks_f32(&mut out, 1, &|_, c| c.iter_mut().for_each(|v| *v += 1.0));
        }
        assert!(out.iter().all(|&v| v == 2000.0));
    }

    /// Jobs published while the workers sleep (past their spin) and while they spin, in turns:
    /// each must be picked up (a lost wake-up would leave `run` waiting forever, so the jobs
    /// run on another thread and the test fails after 30 s instead of hanging).
    #[test]
    fn jobs_reach_parked_workers() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = ThreadPool::new(3);
            let ran = AtomicUsize::new(0);
            for i in 0..40 {
                if i % 2 == 0 {
                    // far past SPIN_ITERS spin-loop hints: the workers park
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                pool.run(&|_| {
                    ran.fetch_add(1, Ordering::Relaxed);
                });
            }
            tx.send(ran.load(Ordering::Relaxed)).unwrap();
        });
        let ran = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a job never finished: a parked worker was not woken");
        assert_eq!(ran, 40 * 3);
    }
}
