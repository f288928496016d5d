//! The multi-head attention row kernels, the spec: [`dot_rows_heads_f16`] and
//! [`axpy_rows_heads_f16`] are exactly [`dot_rows_f16`] and [`axpy_rows_f16`] head after head,
//! so every variant of them is bit-identical to the per-head kernels (and so to
//! `attention_head`'s results).

use crate::float::scalar::{axpy_rows_f16, dot_rows_f16};
use crate::select::{AxpyRows, DotRows};

/// Checks a multi-head shape: `heads` query heads, `a: (heads, m)` and `b: (heads, k)` whole
/// rows, returning `(m, k)`.
///
/// # Panics
/// If `heads` is 0 or does not divide both lengths (a caller bug).
pub(crate) fn check_heads(heads: usize, a_len: usize, b_len: usize) -> (usize, usize) {
    assert!(
        heads > 0 && a_len.is_multiple_of(heads) && b_len.is_multiple_of(heads),
        "heads kernel: {a_len} and {b_len} values are not {heads} heads' rows"
    );
    (a_len / heads, b_len / heads)
}

/// Dots of F16 rows with the queries of `heads` heads: for `q: (heads, n)` and `out: (heads,
/// rows)`, `out[h · rows + r] = dot_f16_row(row r, q[h · n ..][.. n])` exactly, row `r` being
/// the `n` values at byte `r * stride_bytes` of `w` (one KV head's cached keys over a block
/// of positions, for the query heads that share it: GQA).
///
/// # Panics
/// If `heads` is 0 or does not divide `q.len()` and `out.len()`, or the rows do not fit `w` or
/// overlap (see [`dot_rows_f16`]).
pub fn dot_rows_heads_f16(heads: usize, w: &[u8], stride_bytes: usize, q: &[f32], out: &mut [f32]) {
    dots_by_head(heads, w, stride_bytes, q, out, dot_rows_f16)
}

/// `y_h += Σ_r a[h · rows + r] · x_r` for each of `heads` heads: `a: (heads, rows)` (their
/// attention weights), `y: (heads, n)`, row `r` the `n` F16 values at byte `r * stride_bytes`
/// of `x`: exactly [`axpy_rows_f16`] for each head (rows in order, a separate multiply and add
/// per value).
///
/// # Panics
/// If `heads` is 0 or does not divide `a.len()` and `y.len()`, or the rows do not fit `x` or
/// overlap.
pub fn axpy_rows_heads_f16(heads: usize, a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
    axpys_by_head(heads, a, x, stride_bytes, y, axpy_rows_f16)
}

/// [`dot_rows_heads_f16`] with a variant's per-head `dots`.
pub(crate) fn dots_by_head(
    heads: usize,
    w: &[u8],
    stride_bytes: usize,
    q: &[f32],
    out: &mut [f32],
    dots: DotRows,
) {
    let (n, rows) = check_heads(heads, q.len(), out.len());
    for h in 0..heads {
        dots(
            w,
            stride_bytes,
            &q[h * n..(h + 1) * n],
            &mut out[h * rows..(h + 1) * rows],
        );
    }
}

/// [`axpy_rows_heads_f16`] with a variant's per-head `axpys`.
pub(crate) fn axpys_by_head(
    heads: usize,
    a: &[f32],
    x: &[u8],
    stride_bytes: usize,
    y: &mut [f32],
    axpys: AxpyRows,
) {
    let (rows, n) = check_heads(heads, a.len(), y.len());
    for h in 0..heads {
        axpys(
            &a[h * rows..(h + 1) * rows],
            x,
            stride_bytes,
            &mut y[h * n..(h + 1) * n],
        );
    }
}

/// Most heads per pass of a SIMD variant (2B4T's and Llama 3's GQA groups share a KV head
/// among 4).
pub(crate) const PASS_HEADS: usize = 4;

/// `pass(g, src_g, dst_g)` for each run of up to [`PASS_HEADS`] heads, `src: (heads, m)` and
/// `dst: (heads, k)` split alike: the passes of a SIMD variant.
pub(crate) fn head_runs(
    heads: usize,
    src: &[f32],
    dst: &mut [f32],
    mut pass: impl FnMut(usize, &[f32], &mut [f32]),
) {
    let (m, k) = (src.len() / heads, dst.len() / heads);
    for h0 in (0..heads).step_by(PASS_HEADS) {
        let g = PASS_HEADS.min(heads - h0);
        pass(
            g,
            &src[h0 * m..(h0 + g) * m],
            &mut dst[h0 * k..(h0 + g) * k],
        );
    }
}

/// The passes of a SIMD `axpy_rows_heads_f16`: the shape checked (as the spec's), then
/// [`head_runs`] over `a: (heads, rows)` and `y: (heads, n)`, whose `rows` rows of `n` F16
/// values are then known to fit `x` at `stride_bytes`.
///
/// # Panics
/// As [`axpy_rows_heads_f16`].
pub(crate) fn axpy_passes(
    heads: usize,
    a: &[f32],
    x: &[u8],
    stride_bytes: usize,
    y: &mut [f32],
    pass: impl FnMut(usize, &[f32], &mut [f32]),
) {
    let (rows, n) = check_heads(heads, a.len(), y.len());
    crate::float::scalar::check_rows(x.len(), stride_bytes, rows, 2 * n);
    head_runs(heads, a, y, pass);
}

/// Values `from ..` of each of the `g` heads' axpys, `a: (g, rows)`, `y: (g, n)`, by the
/// spec's per-value loop (rows in order, a separate multiply and add): a SIMD axpy's tail.
pub(crate) fn axpy_tail(g: usize, a: &[f32], x: &[u8], stride: usize, y: &mut [f32], from: usize) {
    let (rows, n) = (a.len() / g, y.len() / g);
    for h in 0..g {
        for k in from..n {
            let yk = &mut y[h * n + k];
            for r in 0..rows {
                let at = r * stride + 2 * k;
                *yk += a[h * rows + r] * crate::float::scalar::f16_to_f32([x[at], x[at + 1]]);
            }
        }
    }
}
