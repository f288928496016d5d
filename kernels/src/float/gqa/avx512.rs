//! AVX-512 multi-head attention row kernels, bit-identical to [`super::scalar`]: each F16
//! value of a KV row is converted to f32 once (`vcvtph2ps`, half the throughput of a multiply
//! and add on Zen 4) and multiplied with up to four query heads' values, where the per-head
//! kernels convert it once per head.
//!
//! - Dots: two rows × up to four heads, each (row, head) keeping scalar's 32 partial sums in two
//!   512-bit accumulators (lanes `0..16` and `16..32`, columns in order, a separate multiply
//!   and add), reduced together by the row dots' 8-set network.
//! - Axpys: 64 (then 16) values of `y` of every head stay in registers across the rows; each
//!   row's converted values serve every head (rows in order, a separate multiply and add).
//!
//! Shapes off these paths (rows not a multiple of 32 values for the dots, the last `n % 16`
//! values of the axpys, a last odd row) take the per-head AVX-512 dot kernel or scalar's
//! per-value loop: the same operations.

use core::arch::x86_64::*;

use super::scalar::{axpy_passes, check_heads, dots_by_head, head_runs};
use crate::float::avx512::dot_rows_f16_avx512;
use crate::float::reduce8::reduce8_accs;
use crate::float::scalar::check_rows;

/// AVX-512 [`super::scalar::dot_rows_heads_f16`], bit-identical.
pub(crate) fn dot_rows_heads_f16_avx512(
    heads: usize,
    w: &[u8],
    stride_bytes: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let (n, rows) = check_heads(heads, q.len(), out.len());
    if n == 0 || !n.is_multiple_of(32) {
        return dots_by_head(heads, w, stride_bytes, q, out, dot_rows_f16_avx512);
    }
    check_rows(w.len(), stride_bytes, rows, 2 * n);
    head_runs(heads, q, out, |g, qg, og| {
        // SAFETY: reachable only through a KernelSet selected under the AVX-512 F/BW/VL (+ AVX2,
        // F16C) contract of `select`; n is a positive multiple of 32 and the `rows` rows of n
        // F16 values fit `w` at `stride_bytes` (checked above); qg is (g, n), og (g, rows),
        // g <= 4.
        unsafe {
            match g {
                4 => dots_impl::<4>(w, stride_bytes, qg, og),
                3 => dots_impl::<3>(w, stride_bytes, qg, og),
                2 => dots_impl::<2>(w, stride_bytes, qg, og),
                _ => dots_impl::<1>(w, stride_bytes, qg, og),
            }
        }
    })
}

/// The dots of `G` heads: `q: (G, n)`, `out: (G, rows)`, rows `stride` bytes apart from `w`.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and F16C must be available; `n` must be a positive multiple of 32,
/// `G <= 4`, and `out.len() / G` rows of `n` F16 values must fit `w` at `stride`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn dots_impl<const G: usize>(w: &[u8], stride: usize, q: &[f32], out: &mut [f32]) {
    const { assert!(G >= 1 && G <= 4) };
    let (n, rows) = (q.len() / G, out.len() / G);
    // values c .. c + 16 of the row at p, as f32
    let cvt = |p: *const u8, c: usize| {
        // SAFETY: the callers pass a row of n values and c + 16 <= n.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.add(2 * c).cast()) })
    };
    let mut r = 0;
    while r + 2 <= rows {
        // SAFETY: rows r and r + 1 < rows hold n values each (the caller's contract).
        let p = unsafe { [w.as_ptr().add(r * stride), w.as_ptr().add((r + 1) * stride)] };
        // set i = rr · G + h: row r + rr with head h; sets 2G.. stay zero
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        for c in (0..n).step_by(32) {
            let k = [
                cvt(p[0], c),
                cvt(p[0], c + 16),
                cvt(p[1], c),
                cvt(p[1], c + 16),
            ];
            for h in 0..G {
                // SAFETY: head h's values c .. c + 32 are within q: (G, n).
                let (qa, qb) = unsafe {
                    let qh = q.as_ptr().add(h * n + c);
                    (_mm512_loadu_ps(qh), _mm512_loadu_ps(qh.add(16)))
                };
                for (rr, s) in [h, G + h].into_iter().enumerate() {
                    let a = &mut acc[s];
                    a[0] = _mm512_add_ps(a[0], _mm512_mul_ps(k[2 * rr], qa));
                    a[1] = _mm512_add_ps(a[1], _mm512_mul_ps(k[2 * rr + 1], qb));
                }
            }
        }
        // AVX2's four 8-lane accumulators per set: partial sums 0..8, 8..16, 16..24, 24..32
        let sets: [[__m256; 4]; 8] = core::array::from_fn(|i| {
            let [lo, hi] = acc[i];
            let upper =
                |v: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            [
                _mm512_castps512_ps256(lo),
                upper(lo),
                _mm512_castps512_ps256(hi),
                upper(hi),
            ]
        });
        let mut o = [0f32; 8];
        // SAFETY: o holds 8 f32.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), reduce8_accs(&sets)) };
        for h in 0..G {
            out[h * rows + r] = o[h];
            out[h * rows + r + 1] = o[G + h];
        }
        r += 2;
    }
    if r < rows {
        let last = &w[r * stride..r * stride + 2 * n];
        for h in 0..G {
            let o = &mut out[h * rows + r..h * rows + r + 1];
            dot_rows_f16_avx512(last, stride, &q[h * n..(h + 1) * n], o);
        }
    }
}

/// AVX-512 [`super::scalar::axpy_rows_heads_f16`], bit-identical.
pub(crate) fn axpy_rows_heads_f16_avx512(
    heads: usize,
    a: &[f32],
    x: &[u8],
    stride_bytes: usize,
    y: &mut [f32],
) {
    axpy_passes(heads, a, x, stride_bytes, y, |g, ag, yg| {
        // SAFETY: as for `dot_rows_heads_f16_avx512`; the rows fit `x` at `stride_bytes`
        // (checked by `axpy_passes`); ag is (g, rows), yg (g, n), g <= 4.
        unsafe {
            match g {
                4 => axpys_impl::<4>(ag, x, stride_bytes, yg),
                3 => axpys_impl::<3>(ag, x, stride_bytes, yg),
                2 => axpys_impl::<2>(ag, x, stride_bytes, yg),
                _ => axpys_impl::<1>(ag, x, stride_bytes, yg),
            }
        }
    })
}

/// The axpys of `G` heads: `a: (G, rows)`, `y: (G, n)`, rows `stride` bytes apart from `x`.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and F16C must be available; `G <= 4`, and `a.len() / G` rows of
/// `y.len() / G` F16 values must fit `x` at `stride`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn axpys_impl<const G: usize>(a: &[f32], x: &[u8], stride: usize, y: &mut [f32]) {
    const { assert!(G >= 1 && G <= 4) };
    let (rows, n) = (a.len() / G, y.len() / G);
    let mut i = 0;
    macro_rules! stretch {
        ($regs:expr) => {{
            const S: usize = $regs;
            let mut acc: [[__m512; S]; G] = core::array::from_fn(|h| {
                core::array::from_fn(|k| {
                    // SAFETY: i + 16S <= n: every head's y holds 16S values from i.
                    unsafe { _mm512_loadu_ps(y.as_ptr().add(h * n + i + 16 * k)) }
                })
            });
            for r in 0..rows {
                let row = x.as_ptr().wrapping_add(r * stride);
                let xv: [__m512; S] = core::array::from_fn(|k| {
                    // SAFETY: row r < rows holds n >= i + 16S values at byte r * stride.
                    let v = unsafe { _mm256_loadu_si256(row.add(2 * (i + 16 * k)).cast()) };
                    _mm512_cvtph_ps(v)
                });
                for (h, acc_h) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(a[h * rows + r]);
                    for (s, &v) in acc_h.iter_mut().zip(&xv) {
                        *s = _mm512_add_ps(*s, _mm512_mul_ps(av, v));
                    }
                }
            }
            for (h, acc_h) in acc.iter().enumerate() {
                for (k, &s) in acc_h.iter().enumerate() {
                    // SAFETY: as the loads of y above.
                    unsafe { _mm512_storeu_ps(y.as_mut_ptr().add(h * n + i + 16 * k), s) };
                }
            }
            i += 16 * S;
        }};
    }
    while i + 64 <= n {
        stretch!(4);
    }
    while i + 16 <= n {
        stretch!(1);
    }
    super::scalar::axpy_tail(G, a, x, stride, y, i);
}
