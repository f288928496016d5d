//! The parallelism seam. Core stays single-threaded and deterministic; the platform decides
//! how rows are spread over cores.

/// Runs independent row chunks, possibly in parallel. Each call must return only after every
/// chunk is done. Implementations must give each output element to exactly one call of `f`.
pub trait Exec: Sync {
    /// Split `out: (n,)` into contiguous chunks whose lengths are multiples of `unit` (a
    /// matmul passes its token count so every chunk holds whole weight rows) and call
    /// `f(start_index, chunk)` for each, possibly on several threads. Results must not depend
    /// on the split (each element is computed independently by `f`).
    fn par_chunks_i32(&self, out: &mut [i32], unit: usize, f: &(dyn Fn(usize, &mut [i32]) + Sync));
    /// As [`Exec::par_chunks_i32`], for f32 outputs (LM head logits).
    fn par_chunks_f32(&self, out: &mut [f32], unit: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync));
}

/// Runs everything on the calling thread (bare metal, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleThread;

impl Exec for SingleThread {
    fn par_chunks_i32(
        &self,
        out: &mut [i32],
        _unit: usize,
        f: &(dyn Fn(usize, &mut [i32]) + Sync),
    ) {
        f(0, out)
    }
    fn par_chunks_f32(
        &self,
        out: &mut [f32],
        _unit: usize,
        f: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        f(0, out)
    }
}
