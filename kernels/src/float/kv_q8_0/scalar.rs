//! The scalar spec of attention over a Q8_0 KV cache (see the [module](super) docs).

#[allow(unused_imports)] // doc links
use super::super::scalar::quantize_q8_0_act;
use super::super::scalar::{block_sum, f16_to_f32};
use crate::layout::Q8_0_BLOCK_ELEMS as QK;

/// Bytes of one Q8_0 block (an f16 scale, then 32 int8 values).
pub const BLOCK_BYTES: usize = 34;

/// The shape checks of every `dot_rows_q8_0` variant: `w_bytes` of `rows` consecutive rows of
/// `nb` blocks, `q_len = 32 · nb` activations.
///
/// # Panics
/// On a mismatch (caller bug).
pub(crate) fn check_dots(w_bytes: usize, q_len: usize, nb: usize, rows: usize) {
    assert!(
        q_len == nb * QK && Some(w_bytes) == rows.checked_mul(nb * BLOCK_BYTES),
        "dot_rows_q8_0: shapes (w {w_bytes} bytes, q {q_len}, {nb} blocks, {rows} rows)"
    );
}

/// The shape checks of every `axpy_rows_q8_0` variant: `x_bytes` of `rows` consecutive rows
/// of `n / 32` blocks, `n` a multiple of 32.
///
/// # Panics
/// On a mismatch (caller bug).
pub(crate) fn check_axpys(x_bytes: usize, n: usize, rows: usize) {
    assert!(
        n.is_multiple_of(QK) && Some(x_bytes) == rows.checked_mul(n / QK * BLOCK_BYTES),
        "axpy_rows_q8_0: shapes (x {x_bytes} bytes, y {n}, {rows} rows)"
    );
}

/// Dots of consecutive Q8_0 rows `w: (rows, nb · 34 bytes)` with activations quantized by
/// [`quantize_q8_0_act`] (`q: (32 · nb,)` in `[-127, 127]`, `d: (nb,)`), `out: (rows,)`:
/// for each row, `acc = 0.0`, then per block `b` in order `acc += (d_w · d_b) · s_b` in f32,
/// with `d_w` the block's f16 scale and `s_b = Σ w·q` its exact integer sum. (The LM head's
/// `dot_q8_0_row` spreads its blocks over 8 partial sums; a KV row has a few blocks, so one sum
/// per row lets a SIMD variant put one row in each lane.)
///
/// # Panics
/// If the lengths disagree with the shape (caller bug).
pub fn dot_rows_q8_0(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let nb = d.len();
    check_dots(w.len(), q.len(), nb, out.len());
    for (r, o) in out.iter_mut().enumerate() {
        *o = dot_row(&w[r * nb * BLOCK_BYTES..(r + 1) * nb * BLOCK_BYTES], q, d);
    }
}

/// One row of [`dot_rows_q8_0`] (also the SIMD variants' tail).
pub(crate) fn dot_row(row: &[u8], q: &[i8], d: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (b, (blk, &db)) in row.chunks_exact(BLOCK_BYTES).zip(d).enumerate() {
        let dw = f16_to_f32([blk[0], blk[1]]);
        let s = block_sum::<false>(blk, &q[QK * b..QK * (b + 1)]);
        acc += (dw * db) * s as f32;
    }
    acc
}

/// `y += Σ_r a[r] · x_r` over consecutive Q8_0 rows `x: (rows, n / 32 · 34 bytes)`,
/// `a: (rows,)`, `y: (n,)` (attention's `P·V`): row after row, in order, and per block `b` of
/// row `r`: `c = a[r] · d_{r,b}` (its f16 scale), then `y[32b + j] += c · q_{r,b,j}` (a multiply
/// then an add, in f32).
///
/// # Panics
/// If `n` is not a multiple of 32 or the lengths disagree with the shape (caller bug).
pub fn axpy_rows_q8_0(a: &[f32], x: &[u8], y: &mut [f32]) {
    check_axpys(x.len(), y.len(), a.len());
    let rb = y.len() / QK * BLOCK_BYTES;
    for (r, &ar) in a.iter().enumerate() {
        axpy_blocks(ar, &x[r * rb..(r + 1) * rb], y);
    }
}

/// One row of [`axpy_rows_q8_0`] over the blocks of `row` and the matching values of `y`
/// (also the SIMD variants' tail).
pub(crate) fn axpy_blocks(a: f32, row: &[u8], y: &mut [f32]) {
    for (blk, yb) in row.chunks_exact(BLOCK_BYTES).zip(y.chunks_exact_mut(QK)) {
        let c = a * f16_to_f32([blk[0], blk[1]]);
        for (yi, &v) in yb.iter_mut().zip(&blk[2..]) {
            *yi += c * f32::from(v as i8);
        }
    }
}
