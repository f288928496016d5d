//! Ternary weight × int8 activation kernels.
//!
//! `matvec_t2_i8*`: `out[r] = Σ_c w[r, c] · x[c]` as exact int32 sums, with `w: (rows, cols)`
//! in [`crate::layout::BlockT2`] layout (`rows * t2_row_bytes(cols)` bytes) and `x: (cols,)`;
//! `matvec_t1_i8*` the same over [`crate::layout::BlockT1`] (`rows * t1_row_bytes(cols)`
//! bytes). `matmul_*` are the prefill forms (`x: (n_tok, cols)`, `out: (rows, n_tok)`).
//! The float rescale (`acc / (weight_scale * s_a)`) is the caller's, so that every variant
//! can be compared bit for bit on its int32 output.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod lut;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_dot;
#[cfg(target_arch = "aarch64")]
mod neon_lut;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_t1;
pub mod scalar;

/// The shape checks every `matvec_*_i8*` variant makes: `x: (cols,)`, `w: rows * rb` (`rb`:
/// `l`'s row bytes for `cols`). Returns `rb`.
///
/// # Panics
/// On a shape mismatch (a caller bug).
pub(crate) fn matvec_shape(
    l: crate::layout::TernaryLayout,
    w: &[u8],
    cols: usize,
    x: &[i8],
    rows: usize,
) -> usize {
    let name = match l {
        crate::layout::TernaryLayout::T2_128 => "matvec_t2_i8",
        crate::layout::TernaryLayout::T1_160 => "matvec_t1_i8",
    };
    let rb = l.row_bytes(cols);
    assert_eq!(x.len(), cols, "{name}: x must have cols elements");
    assert_eq!(w.len(), rows * rb, "{name}: w must hold rows * row_bytes");
    rb
}

/// The shape checks every `matmul_*_i8*` variant makes: `x: (n_tok, cols)`,
/// `out: (rows, n_tok)`, `w: rows * rb` (`rb`: the layout's row bytes for `cols`). Returns
/// `rows`, or `None` when `n_tok` is 0 (nothing to compute).
///
/// # Panics
/// On a shape mismatch (a caller bug).
pub(crate) fn matmul_rows(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &[i32],
    rb: usize,
) -> Option<usize> {
    assert_eq!(x.len(), n_tok * cols, "matmul_i8: x must be (n_tok, cols)");
    if n_tok == 0 {
        return None;
    }
    assert_eq!(out.len() % n_tok, 0, "matmul_i8: out must be (rows, n_tok)");
    let rows = out.len() / n_tok;
    assert_eq!(
        w.len(),
        rows * rb,
        "matmul_i8: w must hold rows * row_bytes"
    );
    Some(rows)
}

/// A matmul made of one `matvec` call per (row, token): `out[r * n_tok + t] = row r · token t`
/// (the reference definition, used by scalar; a variant without a tiled matmul may use it too).
pub(crate) fn matmul_by_rows(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
    rb: usize,
    matvec: fn(&[u8], usize, &[i8], &mut [i32]),
) {
    if matmul_rows(w, cols, x, n_tok, out, rb).is_none() {
        return;
    }
    for (r, o) in out.chunks_exact_mut(n_tok).enumerate() {
        let row = &w[r * rb..(r + 1) * rb];
        for (t, ot) in o.iter_mut().enumerate() {
            let mut one = [0i32];
            matvec(row, cols, &x[t * cols..(t + 1) * cols], &mut one);
            *ot = one[0];
        }
    }
}
