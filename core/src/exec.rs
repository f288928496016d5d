//! The parallelism seam. Core stays single-threaded and deterministic; the platform decides
//! how rows are spread over cores.

/// A chunk task of [`Exec::par_items_i32_f32`]: `(first_item, a_chunk, b_chunk)`.
pub type ItemsI32F32<'f> = dyn Fn(usize, &mut [i32], &mut [f32]) + Sync + 'f;
/// A chunk task of [`Exec::par_items_i8_f32_f32`]: `(first_item, a_chunk, b_chunk, c_chunk)`.
pub type ItemsI8F32F32<'f> = dyn Fn(usize, &mut [i8], &mut [f32], &mut [f32]) + Sync + 'f;

/// Runs independent chunks of work, possibly in parallel. Each call must return only after
/// every chunk is done, and give each output element to exactly one call of `f`. Results never
/// depend on the split: every element is computed independently.
///
/// The `par_items_*` methods split two outputs in lockstep by *items* (tokens, for prefill): an
/// item is `a_item` elements of `a` and `b_item` elements of `b`, so `f(first_item, a_chunk,
/// b_chunk)` gets whole items `first_item ..` of both. A chunk holds a multiple of `grain`
/// items (the last may hold fewer), and chunks are as large as keeps every thread busy: the
/// prefill matmul builds lookup tables per chunk, so it wants few, large chunks. Their default
/// implementations run everything on the calling thread.
pub trait Exec: Sync {
    /// Split `out: (n,)` into contiguous chunks whose lengths are multiples of `unit` (a
    /// matmul passes its token count so every chunk holds whole weight rows) and call
    /// `f(start_index, chunk)` for each, possibly on several threads.
    fn par_chunks_i32(&self, out: &mut [i32], unit: usize, f: &(dyn Fn(usize, &mut [i32]) + Sync));
    /// As [`Exec::par_chunks_i32`], for f32 outputs (LM head logits).
    fn par_chunks_f32(&self, out: &mut [f32], unit: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync));
    /// Threads that run chunks (a sizing hint for callers, at least 1).
    fn threads(&self) -> usize {
        1
    }
    /// Lockstep split of an int32 and an f32 output by items (see the trait doc): the batched
    /// BitLinear's integer sums `a: (n_tok, rows)` and rescaled outputs `b: (n_tok, rows)`.
    fn par_items_i32_f32(
        &self,
        a: &mut [i32],
        a_item: usize,
        b: &mut [f32],
        b_item: usize,
        grain: usize,
        f: &ItemsI32F32<'_>,
    ) {
        let _ = (a_item, b_item, grain);
        f(0, a, b)
    }
    /// Lockstep split of three outputs by items (see the trait doc): the BitLinear input's
    /// per-token int8 activations `a: (n_tok, width)`, their scales `b: (n_tok,)` and the
    /// normed f32 rows they were quantized from `c: (n_tok, width)`.
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
        let _ = (a_item, b_item, c_item, grain);
        f(0, a, b, c)
    }
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
