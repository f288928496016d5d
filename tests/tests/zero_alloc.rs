//! Zero heap allocations per decoded token: after `Session::new` (one arena, allocated by the
//! caller) the decode loop — forward pass, sampling, thread pool dispatch — never allocates.
//! A counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tern_core::format::Model;
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::sampler::{Sampler, SamplerConfig};
use tern_core::session::Session;
use tern_linux::arena::Arena;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_loop_allocates_nothing_and_short_arena_is_an_error() {
    let model = Model::parse(tern_linux::model_file::BUNDLED_MODEL).unwrap();
    let kernels = tern_linux::cpu::kernels().unwrap();
    for (threads, kv) in [(1, KvDtype::F32), (2, KvDtype::F16)] {
        let pool = tern_linux::pool::ThreadPool::new(threads);
        let opts = RunOptions::new(64, kv);
        let plan = MemoryPlan::new(&model.file.header.config, 0, opts).unwrap();
        let mut arena = Arena::new(plan.arena_bytes);
        let mut s = Session::new(&model, kernels, &pool, opts, arena.bytes_mut()).unwrap();
        let mut sampler = Sampler::new(SamplerConfig {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 16,
            seed: 3,
        });
        s.prefill(&[256, 72, 105]).unwrap();
        let before = ALLOCS.load(Ordering::SeqCst);
        let mut tok = s.sample(&mut sampler);
        for _ in 0..32 {
            s.forward(tok).unwrap();
            tok = s.sample(&mut sampler);
        }
        let after = ALLOCS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{threads} threads, {kv:?}: the decode loop allocated"
        );
        assert_eq!(s.pos(), 35);
    }
    // Streamed weights: the read-ahead thread (pread into the arena's staging slots, slots
    // passed over bounded channels) allocates nothing per token either.
    let bytes: &[u8] = tern_linux::model_file::BUNDLED_MODEL;
    let pool = tern_linux::pool::ThreadPool::new(2);
    let opts = RunOptions {
        stream: true,
        ..RunOptions::new(64, KvDtype::F16)
    };
    let plan = MemoryPlan::for_file(&model.file, opts).unwrap();
    let mut arena = Arena::new(plan.arena_bytes);
    let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
    std::thread::scope(|sc| {
        let mut src = tern_linux::stream::ReadAhead::spawn(sc, &bytes, slots);
        let mut s =
            Session::new_streamed(&model.file, &mut src, kernels, &pool, opts, sess).unwrap();
        let mut sampler = Sampler::new(SamplerConfig::greedy());
        s.prefill(&[256, 72, 105]).unwrap();
        let mut tok = s.sample(&mut sampler);
        s.forward(tok).unwrap();
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..16 {
            tok = s.sample(&mut sampler);
            s.forward(tok).unwrap();
        }
        let after = ALLOCS.load(Ordering::SeqCst);
        assert_eq!(after - before, 0, "the streamed decode loop allocated");
    });
    // (kept in this one test: the allocation counter is process-wide, and tests in the same
    // binary run concurrently)
    let opts = RunOptions::new(64, KvDtype::F32);
    let plan = MemoryPlan::new(&model.file.header.config, 0, opts).unwrap();
    let mut arena = Arena::new(plan.arena_bytes - 1);
    let err = Session::new(
        &model,
        tern_kernels::select_scalar(),
        &tern_core::exec::SingleThread,
        opts,
        arena.bytes_mut(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        tern_core::Error::ArenaTooSmall {
            need_bytes: plan.arena_bytes as u64,
            have_bytes: plan.arena_bytes as u64 - 1
        }
    );
}
