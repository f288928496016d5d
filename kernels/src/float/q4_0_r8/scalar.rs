//! The LM-head matvec over `Q4_0_R8` rows (the Q4_0 head stored row-interleaved): the scalar
//! spec. Each SIMD variant is bit-identical to it, and it is bit-identical to
//! [`super::super::scalar::matvec_q4_0_q8_0`] on the same rows stored as plain Q4_0.

use super::super::scalar::{block_sum, f16_to_f32, reduce8};
#[allow(unused_imports)] // doc links
use super::super::scalar::{dot_q4_0_row, quantize_q8_0_act};
#[allow(unused_imports)] // doc links
use crate::layout::Layout;

/// LM-head matvec over a [`Layout::Q4_0R8`] matrix `w: (out.len(), 32 · d.len())` with
/// activations quantized by [`quantize_q8_0_act`]: `out[r]` is exactly [`dot_q4_0_row`] of row
/// `r` (the same block sums, products and partial-sum order; only the bytes are read in another
/// order).
///
/// # Panics
/// If `out.len()` is not a multiple of 8, or a length disagrees with the shape (caller bug).
pub fn matvec_q4_0_r8_q8_0(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    use crate::layout::{Q4_0_R8_BLOCK_BYTES as GB, Q4_0_R8_ROWS as R, q4_0_r8_gather};
    let nb = d.len();
    check_shapes(w.len(), q.len(), nb, out.len());
    for (g, o) in out.chunks_exact_mut(R).enumerate() {
        let group = &w[g * nb * GB..(g + 1) * nb * GB];
        let mut acc = [[0.0f32; 8]; R];
        for ((b, &db), blk) in d.iter().enumerate().zip(group.chunks_exact(GB)) {
            for (i, a) in acc.iter_mut().enumerate() {
                let row_blk = q4_0_r8_gather(blk, i);
                let dw = f16_to_f32([row_blk[0], row_blk[1]]);
                let s = block_sum::<true>(&row_blk, &q[32 * b..32 * (b + 1)]);
                a[b % 8] += (dw * db) * s as f32;
            }
        }
        for (o, a) in o.iter_mut().zip(&acc) {
            *o = reduce8(a);
        }
    }
}

/// Most blocks per row whose `− 8 · Σ x` the SIMD variants keep on the stack
/// ([`block_offsets`]; rows of up to 32768 values); longer rows take the scalar spec.
pub(crate) const MAX_BLOCKS: usize = 1024;

/// `− 8 · Σ x` of each block of 32 activations `q` (the Q4_0 codes' offset: a block's exact
/// sum is `Σ c·x` of its unsigned codes plus this), as the first `q.len() / 32` entries.
///
/// # Panics
/// If `q` holds more than [`MAX_BLOCKS`] blocks (caller bug).
pub(crate) fn block_offsets(q: &[i8]) -> [i32; MAX_BLOCKS] {
    let mut out = [0i32; MAX_BLOCKS];
    for (c, qb) in out[..q.len() / 32].iter_mut().zip(q.chunks_exact(32)) {
        *c = -8 * qb.iter().map(|&v| i32::from(v)).sum::<i32>();
    }
    out
}

/// The shape checks of every `matvec_q4_0_r8_q8_0` variant: `w_bytes` of `rows` Q4_0_R8 rows
/// of `nb` blocks, `q_len = 32 · nb` activations.
///
/// # Panics
/// On a mismatch (caller bug).
pub(crate) fn check_shapes(w_bytes: usize, q_len: usize, nb: usize, rows: usize) {
    assert!(
        rows.is_multiple_of(crate::layout::Q4_0_R8_ROWS)
            && q_len == nb * 32
            && w_bytes == rows * nb * crate::layout::Q4_0_BLOCK_BYTES,
        "matvec_q4_0_r8: shapes (w {w_bytes} bytes, q {q_len}, {nb} blocks, {rows} rows)"
    );
}
