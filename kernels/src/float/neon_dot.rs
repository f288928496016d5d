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
    let sum = |w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| -> int32x4_t {
        sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1)
    };
    // SAFETY: forwarded (NEON + dotprod enabled here; the wrappers checked the shapes).
    unsafe { dot_blocks::<Q4>(w, q, d, sum) }
}

/// [`super::scalar::matvec_q4_0_q8_0`] row by row with the NEON + dotprod dot.
pub(crate) fn matvec_q4_0_q8_0_neon_dot(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::rows_by(dot_q4_0_row_neon_dot, w, q, d, out)
}
