//! AArch64 NEON + dotprod Q8_0 / Q4_0 LM-head row dots, bit-identical to [`super::scalar`]:
//! the block loop of [`super::neon::dot_blocks`] with each block's exact integer sum taken by
//! two `sdot`s (four int8 products summed into each int32 lane; exact for the full int8 range).

use core::arch::aarch64::*;

use super::neon::dot_blocks;
use crate::ternary::neon_dot::sdot;

/// NEON + dotprod [`super::scalar::dot_q8_0_row`].
pub(crate) fn dot_q8_0_row_neon_dot(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        w.len() == d.len() * 34 && q.len() == d.len() * QK,
        "dot_q8_0: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the NEON + dotprod contract
    // of `select`; shapes checked above.
    unsafe { dot_impl::<false>(w, q, d) }
}

/// NEON + dotprod [`super::scalar::dot_q4_0_row`].
pub(crate) fn dot_q4_0_row_neon_dot(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    assert!(
        w.len() == d.len() * BB && q.len() == d.len() * QK,
        "dot_q4_0: shapes"
    );
    // SAFETY: as for `dot_q8_0_row_neon_dot`.
    unsafe { dot_impl::<true>(w, q, d) }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_impl<const Q4: bool>(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    let sum = |_: usize, w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| {
        sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1)
    };
    // SAFETY: forwarded (NEON + dotprod enabled here; the wrappers checked the shapes).
    unsafe { dot_blocks::<Q4, false>(w, q, d, sum) }
}

/// Most activation blocks (of 32) whose Q4_0 corrections [`matvec_q4_0_q8_0_neon_dot`] keeps
/// on the stack (16 bytes each: 4 KiB, rows of up to 8192 columns); longer rows take the row
/// dot.
const Q4_CORR_BLOCKS: usize = 256;

/// [`super::scalar::matvec_q4_0_q8_0`] with the NEON + dotprod dot (`w: (rows, cols)` of Q4_0
/// blocks, `q: (cols,)` and `d: (cols / 32,)` the Q8_0 activations, `out: (rows,)`).
///
/// The row dot takes each block's sum as `Σ (c − 8)·x`: two subtractions of 8 and a zeroed
/// accumulator per block, in the vector pipes, where the two `sdot`s are the work (and the
/// `− 8` constant is rematerialized per block, as `sdot` and `usra` overwrite a register).
/// Here every block's `− 8 · Σ x` is computed once per call for all rows, and each block's
/// two `sdot`s of the codes `c` themselves start from it (lane 0, loaded, not computed):
/// `Σ c·x − 8 · Σ x`, the same exact integer sum. The block loop goes from 110 instructions
/// and 41 cycles per 8 blocks to 91 and 30 by llvm-mca 19's Neoverse N1 model (the Pi 5's
/// Cortex-A76 core; `tools/bench/neon_mca.py`).
pub(crate) fn matvec_q4_0_q8_0_neon_dot(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    let nb = d.len();
    if out.is_empty() || nb == 0 || nb > Q4_CORR_BLOCKS {
        return super::scalar::rows_by(dot_q4_0_row_neon_dot, w, q, d, out);
    }
    assert!(
        w.len() == out.len() * nb * BB && q.len() == nb * QK,
        "matvec_q4_0_q8_0: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the NEON + dotprod contract
    // of `select`; shapes checked above.
    unsafe { matvec_q4_impl(w, q, d, out) }
}

/// [`matvec_q4_0_q8_0_neon_dot`] for `d.len() <= Q4_CORR_BLOCKS` (shapes checked).
#[target_feature(enable = "neon,dotprod")]
unsafe fn matvec_q4_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    let nb = d.len();
    let mut corr = [vdupq_n_s32(0); Q4_CORR_BLOCKS];
    for (c, qb) in corr.iter_mut().zip(q.chunks_exact(QK)) {
        let sx: i32 = qb.iter().map(|&v| i32::from(v)).sum();
        *c = vsetq_lane_s32::<0>(-8 * sx, vdupq_n_s32(0));
    }
    let sum = |k: usize, w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| {
        // SAFETY: `dot_blocks` passes block indices k < d.len() = nb <= Q4_CORR_BLOCKS.
        sdot(sdot(unsafe { *corr.get_unchecked(k) }, w0, x0), w1, x1)
    };
    for (o, row) in out.iter_mut().zip(w.chunks_exact(nb * BB)) {
        // SAFETY: NEON + dotprod enabled here; each row is nb whole blocks and q, d hold nb
        // blocks (checked by the wrapper), which is all `dot_blocks` needs.
        *o = unsafe { dot_blocks::<true, true>(row, q, d, sum) };
    }
}
