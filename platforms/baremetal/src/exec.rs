//! A single-core executor: every row chunk runs on the calling core, in order.

use tern_core::exec::Exec;

/// Runs all of a matvec's rows on the calling core (bare metal has one core in use).
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleCore;

impl Exec for SingleCore {
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
