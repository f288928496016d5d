//! NEON multi-head attention row kernels, bit-identical to [`super::scalar`]: each F16 value
//! of a KV row is converted (`fcvtl`) once for two (dots) or up to four (axpys) query heads,
//! where the per-head kernels convert it once per head.
//!
//! - Dots: one row × two heads, each keeping scalar's 32 partial sums in eight 4-lane
//!   accumulators (vector `j`, lane `l`: partial sum `4j + l`; columns in order, a separate
//!   multiply and add), then scalar's own reduction. An odd last head, and rows not a multiple
//!   of 32 values, take the per-head NEON kernel.
//! - Axpys: 16 values of `y` of each of up to four heads (32 for one or two heads) stay in
//!   registers across the rows, where the per-head kernel loads and stores `y` every row.

use core::arch::aarch64::*;

use super::scalar::{axpy_passes, check_heads, dots_by_head};
use crate::float::neon::{dot_rows_f16_neon, f16x4_to_f32};
use crate::float::scalar::{DOT_LANES, check_rows, reduce32};

/// 4 values of an F16 row from value `i`, as f32.
///
/// # Safety
/// NEON; the row at `p` must hold 4 values from value `i`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load4(p: *const u8, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees 4 readable values at value i.
    f16x4_to_f32(unsafe { vld1_u16(p.add(2 * i).cast()) })
}

/// NEON [`super::scalar::dot_rows_heads_f16`], bit-identical.
pub(crate) fn dot_rows_heads_f16_neon(
    heads: usize,
    w: &[u8],
    stride_bytes: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let (n, rows) = check_heads(heads, q.len(), out.len());
    if n == 0 || !n.is_multiple_of(DOT_LANES) {
        return dots_by_head(heads, w, stride_bytes, q, out, dot_rows_f16_neon);
    }
    check_rows(w.len(), stride_bytes, rows, 2 * n);
    let pairs = heads / 2 * 2;
    for h0 in (0..pairs).step_by(2) {
        let qp = &q[h0 * n..(h0 + 2) * n];
        for r in 0..rows {
            // SAFETY: reachable only through a KernelSet selected under the NEON contract of
            // `select`; row r < rows holds n values, a positive multiple of 32, at byte
            // r · stride_bytes (checked above); qp is (2, n).
            let [a, b] = unsafe { dots2(w.as_ptr().add(r * stride_bytes), qp, n) };
            out[h0 * rows + r] = a;
            out[(h0 + 1) * rows + r] = b;
        }
    }
    if pairs < heads {
        dot_rows_f16_neon(w, stride_bytes, &q[pairs * n..], &mut out[pairs * rows..]);
    }
}

/// The dots of the row at `p` (`n` F16 values, `n` a multiple of 32) with two heads' `q: (2,
/// n)`.
///
/// # Safety
/// NEON; the row at `p` must hold `n` values.
#[target_feature(enable = "neon")]
unsafe fn dots2(p: *const u8, q: &[f32], n: usize) -> [f32; 2] {
    const VECS: usize = DOT_LANES / 4;
    let mut acc = [[vdupq_n_f32(0.0); VECS]; 2];
    for c in (0..n).step_by(DOT_LANES) {
        // SAFETY: c + 32 <= n values of the row.
        let k: [float32x4_t; VECS] = core::array::from_fn(|j| unsafe { load4(p, c + 4 * j) });
        for (h, a) in acc.iter_mut().enumerate() {
            for (j, s) in a.iter_mut().enumerate() {
                // SAFETY: head h's values c + 4j .. c + 4j + 4 are within q: (2, n).
                let qv = unsafe { vld1q_f32(q.as_ptr().add(h * n + c + 4 * j)) };
                *s = vaddq_f32(*s, vmulq_f32(k[j], qv));
            }
        }
    }
    acc.map(|a| {
        let mut lanes = [0f32; DOT_LANES];
        for (j, &v) in a.iter().enumerate() {
            // SAFETY: lanes holds 4 f32 from 4j.
            unsafe { vst1q_f32(lanes.as_mut_ptr().add(4 * j), v) };
        }
        reduce32(&lanes)
    })
}

/// NEON [`super::scalar::axpy_rows_heads_f16`], bit-identical.
pub(crate) fn axpy_rows_heads_f16_neon(
    heads: usize,
    a: &[f32],
    x: &[u8],
    stride_bytes: usize,
    y: &mut [f32],
) {
    axpy_passes(heads, a, x, stride_bytes, y, |g, ag, yg| {
        // SAFETY: reachable only through a KernelSet selected under the NEON contract of
        // `select`; the `rows` rows of n F16 values fit `x` at `stride_bytes` (checked by
        // `axpy_passes`); ag is (g, rows), yg (g, n), g <= 4.
        unsafe {
            match g {
                4 => axpys_impl::<4, 4>(ag, x, stride_bytes, yg),
                3 => axpys_impl::<3, 4>(ag, x, stride_bytes, yg),
                2 => axpys_impl::<2, 8>(ag, x, stride_bytes, yg),
                _ => axpys_impl::<1, 8>(ag, x, stride_bytes, yg),
            }
        }
    })
}

/// The axpys of `G` heads, `4·S` values of each head's `y` in registers at a time: `a: (G,
/// rows)`, `y: (G, n)`, rows `stride` bytes apart from `x`.
///
/// # Safety
/// NEON; `G <= 4`, and `a.len() / G` rows of `y.len() / G` F16 values must fit `x` at
/// `stride`.
#[target_feature(enable = "neon")]
unsafe fn axpys_impl<const G: usize, const S: usize>(
    a: &[f32],
    x: &[u8],
    stride: usize,
    y: &mut [f32],
) {
    const { assert!(G >= 1 && G <= 4 && G * S <= 16) };
    let n = y.len() / G;
    let mut i = 0;
    while i + 4 * S <= n {
        // SAFETY: forwarded; i + 4S <= n.
        unsafe { stretch::<G, S>(a, x, stride, y, i) };
        i += 4 * S;
    }
    while i + 4 <= n {
        // SAFETY: forwarded; i + 4 <= n.
        unsafe { stretch::<G, 1>(a, x, stride, y, i) };
        i += 4;
    }
    super::scalar::axpy_tail(G, a, x, stride, y, i);
}

/// Values `i .. i + 4R` of each of the `G` heads' `y` of [`axpys_impl`], in registers across
/// all the rows.
///
/// # Safety
/// As [`axpys_impl`]'s, and `i + 4R <= y.len() / G`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn stretch<const G: usize, const R: usize>(
    a: &[f32],
    x: &[u8],
    stride: usize,
    y: &mut [f32],
    i: usize,
) {
    let (rows, n) = (a.len() / G, y.len() / G);
    let mut acc: [[float32x4_t; R]; G] = core::array::from_fn(|h| {
        core::array::from_fn(|k| {
            // SAFETY: i + 4R <= n: every head's y holds 4R values from i.
            unsafe { vld1q_f32(y.as_ptr().add(h * n + i + 4 * k)) }
        })
    });
    for r in 0..rows {
        let row = x.as_ptr().wrapping_add(r * stride);
        // SAFETY: row r < rows holds n >= i + 4R values at byte r * stride.
        let xv: [float32x4_t; R] = core::array::from_fn(|k| unsafe { load4(row, i + 4 * k) });
        for (h, acc_h) in acc.iter_mut().enumerate() {
            let ah = a[h * rows + r];
            for (s, &v) in acc_h.iter_mut().zip(&xv) {
                *s = vaddq_f32(*s, vmulq_n_f32(v, ah));
            }
        }
    }
    for (h, acc_h) in acc.iter().enumerate() {
        for (k, &s) in acc_h.iter().enumerate() {
            // SAFETY: as the loads of y above.
            unsafe { vst1q_f32(y.as_mut_ptr().add(h * n + i + 4 * k), s) };
        }
    }
}
