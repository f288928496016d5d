//! AVX2 + F16C multi-head attention row kernels, bit-identical to [`super::scalar`]: as the
//! AVX-512 ones ([`super::avx512`]), each F16 value is converted once for two (dots) or up to
//! four (axpys) query heads, within AVX2's 16 registers.
//!
//! - Dots: one row × two heads at a time, each (row, head) keeping scalar's 32 partial sums in
//!   four 8-lane accumulators (columns in order, a separate multiply and add); four rows' sets
//!   are then reduced together by the row dots' 8-set network. An odd last head, and the last
//!   `rows % 4` rows, take the per-head AVX2 kernel.
//! - Axpys: 16 values of `y` of each of up to four heads (more values for fewer heads) stay in
//!   registers across the rows; each row's converted values serve every head.

use core::arch::x86_64::*;

use super::scalar::{axpy_passes, check_heads, dots_by_head};
use crate::float::avx2::dot_rows_f16_avx2;
use crate::float::reduce8::reduce8_accs;
use crate::float::scalar::check_rows;

/// AVX2 + F16C [`super::scalar::dot_rows_heads_f16`], bit-identical.
pub(crate) fn dot_rows_heads_f16_avx2(
    heads: usize,
    w: &[u8],
    stride_bytes: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let (n, rows) = check_heads(heads, q.len(), out.len());
    if n == 0 || !n.is_multiple_of(32) {
        return dots_by_head(heads, w, stride_bytes, q, out, dot_rows_f16_avx2);
    }
    check_rows(w.len(), stride_bytes, rows, 2 * n);
    let pairs = heads / 2 * 2;
    if pairs > 0 {
        let (qp, op) = (&q[..pairs * n], &mut out[..pairs * rows]);
        // SAFETY: reachable only through a KernelSet selected under the AVX2 + F16C contract
        // of `select`; n is a positive multiple of 32 and the `rows` rows of n F16 values fit
        // `w` at `stride_bytes` (checked above); qp and op are whole pairs of heads.
        unsafe { dots_pairs(w, stride_bytes, qp, n, op) };
    }
    if pairs < heads {
        let (ql, ol) = (&q[pairs * n..], &mut out[pairs * rows..]);
        dot_rows_f16_avx2(w, stride_bytes, ql, ol);
    }
}

/// The dots of pairs of heads: `q: (2p, n)`, `out: (2p, rows)`, `p >= 1`.
///
/// # Safety
/// AVX2 and F16C must be available; `n` must be a positive multiple of 32, `q` at least one
/// pair of heads, and `out.len() / (q.len() / n)` rows of `n` F16 values must fit `w` at
/// `stride`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dots_pairs(w: &[u8], stride: usize, q: &[f32], n: usize, out: &mut [f32]) {
    let heads = q.len() / n;
    let rows = out.len() / heads;
    for h0 in (0..heads).step_by(2) {
        let mut r = 0;
        while r + 4 <= rows {
            // set 2·rr + h: row r + rr with head h0 + h
            let mut sets = [[_mm256_setzero_ps(); 4]; 8];
            for rr in 0..4 {
                let p = w.as_ptr().wrapping_add((r + rr) * stride);
                let mut acc = [[_mm256_setzero_ps(); 4]; 2];
                for c in (0..n).step_by(32) {
                    let k: [__m256; 4] = core::array::from_fn(|j| {
                        // SAFETY: row r + rr < rows holds n >= c + 32 values.
                        let v = unsafe { _mm_loadu_si128(p.add(2 * (c + 8 * j)).cast()) };
                        _mm256_cvtph_ps(v)
                    });
                    for (h, a) in acc.iter_mut().enumerate() {
                        let qh = q.as_ptr().wrapping_add((h0 + h) * n + c);
                        for (j, s) in a.iter_mut().enumerate() {
                            // SAFETY: head h0 + h's values c .. c + 32 are within q.
                            let qv = unsafe { _mm256_loadu_ps(qh.add(8 * j)) };
                            *s = _mm256_add_ps(*s, _mm256_mul_ps(k[j], qv));
                        }
                    }
                }
                sets[2 * rr] = acc[0];
                sets[2 * rr + 1] = acc[1];
            }
            let mut o = [0f32; 8];
            // SAFETY: o holds 8 f32.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), reduce8_accs(&sets)) };
            for rr in 0..4 {
                out[h0 * rows + r + rr] = o[2 * rr];
                out[(h0 + 1) * rows + r + rr] = o[2 * rr + 1];
            }
            r += 4;
        }
        if r < rows {
            let last = &w[r * stride..];
            for h in h0..h0 + 2 {
                let o = &mut out[h * rows + r..(h + 1) * rows];
                dot_rows_f16_avx2(last, stride, &q[h * n..(h + 1) * n], o);
            }
        }
    }
}

/// AVX2 + F16C [`super::scalar::axpy_rows_heads_f16`], bit-identical.
pub(crate) fn axpy_rows_heads_f16_avx2(
    heads: usize,
    a: &[f32],
    x: &[u8],
    stride_bytes: usize,
    y: &mut [f32],
) {
    axpy_passes(heads, a, x, stride_bytes, y, |g, ag, yg| {
        // SAFETY: as for `dot_rows_heads_f16_avx2`; the `rows` rows of n F16 values fit `x` at
        // `stride_bytes` (checked by `axpy_passes`); ag is (g, rows), yg (g, n), g <= 4.
        unsafe {
            match g {
                4 => axpys_impl::<4, 2>(ag, x, stride_bytes, yg),
                3 => axpys_impl::<3, 2>(ag, x, stride_bytes, yg),
                2 => axpys_impl::<2, 4>(ag, x, stride_bytes, yg),
                _ => axpys_impl::<1, 8>(ag, x, stride_bytes, yg),
            }
        }
    })
}

/// The axpys of `G` heads, `8·S` values of each head's `y` in registers at a time: `a: (G,
/// rows)`, `y: (G, n)`, rows `stride` bytes apart from `x`.
///
/// # Safety
/// AVX2 and F16C must be available; `G <= 4`, and `a.len() / G` rows of `y.len() / G` F16
/// values must fit `x` at `stride`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn axpys_impl<const G: usize, const S: usize>(
    a: &[f32],
    x: &[u8],
    stride: usize,
    y: &mut [f32],
) {
    const { assert!(G >= 1 && G <= 4 && G * S <= 8) };
    let n = y.len() / G;
    let mut i = 0;
    while i + 8 * S <= n {
        // SAFETY: forwarded; i + 8S <= n.
        unsafe { stretch::<G, S>(a, x, stride, y, i) };
        i += 8 * S;
    }
    while i + 8 <= n {
        // SAFETY: forwarded; i + 8 <= n.
        unsafe { stretch::<G, 1>(a, x, stride, y, i) };
        i += 8;
    }
    super::scalar::axpy_tail(G, a, x, stride, y, i);
}

/// Values `i .. i + 8R` of each of the `G` heads' `y` of [`axpys_impl`], in registers across
/// all the rows.
///
/// # Safety
/// As [`axpys_impl`]'s, and `i + 8R <= y.len() / G`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn stretch<const G: usize, const R: usize>(
    a: &[f32],
    x: &[u8],
    stride: usize,
    y: &mut [f32],
    i: usize,
) {
    let (rows, n) = (a.len() / G, y.len() / G);
    let mut acc: [[__m256; R]; G] = core::array::from_fn(|h| {
        core::array::from_fn(|k| {
            // SAFETY: i + 8R <= n: every head's y holds 8R values from i.
            unsafe { _mm256_loadu_ps(y.as_ptr().add(h * n + i + 8 * k)) }
        })
    });
    for r in 0..rows {
        let row = x.as_ptr().wrapping_add(r * stride);
        let xv: [__m256; R] = core::array::from_fn(|k| {
            // SAFETY: row r < rows holds n >= i + 8R values at byte r * stride.
            let v = unsafe { _mm_loadu_si128(row.add(2 * (i + 8 * k)).cast()) };
            _mm256_cvtph_ps(v)
        });
        for (h, acc_h) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_ps(a[h * rows + r]);
            for (s, &v) in acc_h.iter_mut().zip(&xv) {
                *s = _mm256_add_ps(*s, _mm256_mul_ps(av, v));
            }
        }
    }
    for (h, acc_h) in acc.iter().enumerate() {
        for (k, &s) in acc_h.iter().enumerate() {
            // SAFETY: as the loads of y above.
            unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(h * n + i + 8 * k), s) };
        }
    }
}
