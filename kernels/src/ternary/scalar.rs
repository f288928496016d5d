//! Scalar reference ternary × int8 matvec and matmul for both ternary layouts (the
//! specification the SIMD variants are diffed against).

use super::matvec_shape;
use crate::layout::{
    T1_BLOCK_ELEMS, T2_BLOCK_ELEMS, TernaryLayout, t1_code, t1_row_bytes, t2_row_bytes,
};

/// `out[r] = Σ_c w[r, c] · x[c]` for `w: (out.len(), cols)` in `T2_128` layout and
/// `x: (cols,)` int8. Exact: |sum| ≤ 128 · cols fits i32 for any realistic `cols` (< 2^24).
///
/// # Panics
/// If `x.len() != cols` or `w.len() != out.len() * t2_row_bytes(cols)`.
pub fn matvec_t2_i8_scalar(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = matvec_shape(TernaryLayout::T2_128, w, cols, x, out.len());
    if rb == 0 {
        out.fill(0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        let mut acc: i32 = 0;
        for (b, blk) in row.chunks_exact(32).enumerate() {
            let base = b * T2_BLOCK_ELEMS;
            let n = (cols - base).min(T2_BLOCK_ELEMS);
            if n == T2_BLOCK_ELEMS {
                let xs = &x[base..base + T2_BLOCK_ELEMS];
                for j in 0..32 {
                    let byte = blk[j];
                    for k in 0..4 {
                        let c = ((byte >> (6 - 2 * k)) & 3) as i32;
                        // code 0 → -1, 1 → 0, 2 → +1 (3 is never written; reads as +2)
                        let wv = c - 1;
                        acc += wv * xs[k * 32 + j] as i32;
                    }
                }
            } else {
                for i in 0..n {
                    let c = ((blk[i % 32] >> (6 - 2 * (i / 32))) & 3) as i32;
                    let wv = c - 1;
                    acc += wv * x[base + i] as i32;
                }
            }
        }
        *o = acc;
    }
}

/// Ternary × int8 matmul for prefill: `out[r * n_tok + t] = Σ_c w[r, c] · x[t * cols + c]`
/// for `w: (rows, cols)` in `T2_128` layout, `x: (n_tok, cols)` int8 and `out: (rows, n_tok)`
/// (row-major, so a contiguous chunk of `out` is a set of whole weight rows: threads split the
/// weights, every thread sees every token).
///
/// # Panics
/// If `x.len() != n_tok * cols`, `out.len() % n_tok != 0` or `w.len() != rows * row_bytes`.
pub fn matmul_t2_i8_scalar(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    super::matmul_by_rows(
        w,
        cols,
        x,
        n_tok,
        out,
        t2_row_bytes(cols),
        matvec_t2_i8_scalar,
    );
}

/// `out[r] = Σ_c w[r, c] · x[c]` for `w: (out.len(), cols)` in `T1_160` layout and
/// `x: (cols,)` int8; every weight is decoded with [`t1_code`] (`w = code - 1`). Exact:
/// |sum| ≤ 128 · cols fits i32 for any realistic `cols` (< 2^24).
///
/// # Panics
/// If `x.len() != cols` or `w.len() != out.len() * t1_row_bytes(cols)`.
pub fn matvec_t1_i8_scalar(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = matvec_shape(TernaryLayout::T1_160, w, cols, x, out.len());
    if rb == 0 {
        out.fill(0);
        return;
    }
    let full = cols / T1_BLOCK_ELEMS;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        let mut acc: i32 = 0;
        for b in 0..full {
            let blk = &row[b * 32..(b + 1) * 32];
            let xs = &x[b * T1_BLOCK_ELEMS..(b + 1) * T1_BLOCK_ELEMS];
            for j in 0..32 {
                for k in 0..5 {
                    // code 0 → -1, 1 → 0, 2 → +1 (every byte decodes to 0..=2)
                    let wv = t1_code(blk[j], k) as i32 - 1;
                    acc += wv * xs[32 * k + j] as i32;
                }
            }
        }
        *o = acc + t1_tail_dot(row, full, cols - full * T1_BLOCK_ELEMS, x);
    }
}

/// The partial last block of a `T1_160` row (`tail < 160` weights after `full` whole blocks):
/// `Σ_i w[full·160 + i] · x[full·160 + i]`. Shared by every variant.
#[inline]
pub(crate) fn t1_tail_dot(row: &[u8], full: usize, tail: usize, x: &[i8]) -> i32 {
    t1_tail_dot_from(row, full, 0, tail, x)
}

/// [`t1_tail_dot`] over weights `from..tail` of the partial block only (a SIMD variant covers
/// the whole 32-weight vectors before `from`).
#[inline]
pub(crate) fn t1_tail_dot_from(row: &[u8], full: usize, from: usize, tail: usize, x: &[i8]) -> i32 {
    if from >= tail {
        return 0;
    }
    let blk = &row[full * 32..full * 32 + 32];
    let base = full * T1_BLOCK_ELEMS;
    (from..tail)
        .map(|i| (t1_code(blk[i % 32], i / 32) as i32 - 1) * x[base + i] as i32)
        .sum()
}

/// Ternary × int8 matmul for prefill on `T1_160` weights: `out[r * n_tok + t] =
/// Σ_c w[r, c] · x[t * cols + c]` with `w: (rows, cols)`, `x: (n_tok, cols)` int8 and
/// `out: (rows, n_tok)`, as [`matmul_t2_i8_scalar`].
///
/// # Panics
/// If `x.len() != n_tok * cols`, `out.len() % n_tok != 0` or `w.len() != rows * row_bytes`.
pub fn matmul_t1_i8_scalar(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    super::matmul_by_rows(
        w,
        cols,
        x,
        n_tok,
        out,
        t1_row_bytes(cols),
        matvec_t1_i8_scalar,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{t1_encode_row, t2_encode_row};

    #[test]
    fn matches_naive_dot() {
        let rows = 3;
        for cols in [0usize, 1, 127, 128, 129, 300] {
            let mut w = [[0i8; 300]; 3];
            let mut x = [0i8; 300];
            for c in 0..cols {
                x[c] = ((c * 37 % 256) as i32 - 128) as i8;
                for r in 0..rows {
                    w[r][c] = ((c * 7 + r * 3) % 3) as i8 - 1;
                }
            }
            let rb = t2_row_bytes(cols);
            let mut packed = [0u8; 3 * 96];
            for r in 0..rows {
                t2_encode_row(&w[r][..cols], &mut packed[r * rb..(r + 1) * rb]);
            }
            let mut out = [0i32; 3];
            matvec_t2_i8_scalar(&packed[..rows * rb], cols, &x[..cols], &mut out);
            for r in 0..rows {
                let want: i32 = (0..cols).map(|c| w[r][c] as i32 * x[c] as i32).sum();
                assert_eq!(out[r], want, "cols={cols} r={r}");
            }
        }
    }

    #[test]
    fn t1_matches_naive_dot() {
        let rows = 3;
        for cols in [0usize, 1, 31, 159, 160, 161, 320, 333] {
            let mut w = [[0i8; 333]; 3];
            let mut x = [0i8; 333];
            for c in 0..cols {
                x[c] = ((c * 37 % 256) as i32 - 128) as i8;
                for r in 0..rows {
                    w[r][c] = ((c * 7 + r * 3) % 3) as i8 - 1;
                }
            }
            let rb = t1_row_bytes(cols);
            let mut packed = [0u8; 3 * 96];
            for r in 0..rows {
                t1_encode_row(&w[r][..cols], &mut packed[r * rb..(r + 1) * rb]);
            }
            let mut out = [0i32; 3];
            matvec_t1_i8_scalar(&packed[..rows * rb], cols, &x[..cols], &mut out);
            for r in 0..rows {
                let want: i32 = (0..cols).map(|c| w[r][c] as i32 * x[c] as i32).sum();
                assert_eq!(out[r], want, "cols={cols} r={r}");
            }
        }
    }
}
