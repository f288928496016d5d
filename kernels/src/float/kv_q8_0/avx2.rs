//! AVX2 + F16C kernels over a Q8_0 KV cache, bit-identical to [`super::scalar`].
//!
//! - `dot_rows_q8_0`: eight rows at a time, one per lane. Each block's exact integer sum is
//!   `vpmaddubsw` + `vpmaddwd` (the sign trick: the activations are in `[-127, 127]`, and a
//!   weight's magnitude is at most 128, so a pair is at most 32512), the eight rows' sums are
//!   reduced together ([`hsum8`]), and the float steps are the spec's, lane by lane.
//! - `axpy_rows_q8_0`: 64 values of `y` (two blocks) stay in eight registers while every row
//!   adds into them, then the last block in four.

use core::arch::x86_64::*;

use super::super::avx2::hsum8;
use super::scalar::{BLOCK_BYTES as BB, check_axpys, check_dots, dot_row};

/// AVX2 [`super::scalar::dot_rows_q8_0`], bit-identical.
pub(crate) fn dot_rows_q8_0_avx2(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    check_dots(w.len(), q.len(), d.len(), out.len());
    // SAFETY: reachable only through a KernelSet selected under the AVX2 + F16C contract of
    // `select`; shapes checked above.
    unsafe { dots_impl(w, q, d, out) }
}

/// AVX2 [`super::scalar::axpy_rows_q8_0`], bit-identical.
pub(crate) fn axpy_rows_q8_0_avx2(a: &[f32], x: &[u8], y: &mut [f32]) {
    check_axpys(x.len(), y.len(), a.len());
    // SAFETY: as for `dot_rows_q8_0_avx2`.
    unsafe { axpys_impl(a, x, y) }
}

/// The f16 scale at `p` as f32 (exact).
///
/// # Safety
/// F16C must be available; `p` must point at 2 readable bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn scale_at(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes at p (the caller's guarantee).
    let h = u16::from_le_bytes(unsafe { [*p, *p.add(1)] });
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
}

/// [`dot_rows_q8_0_avx2`] with the shapes checked.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dots_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let (nb, rows) = (d.len(), out.len());
    let rb = nb * BB;
    let ones = _mm256_set1_epi16(1);
    let mut r = 0;
    while r + 8 <= rows {
        // SAFETY: rows r .. r + 8 are whole rows of w (checked shapes).
        let base = unsafe { w.as_ptr().add(r * rb) };
        let mut acc = _mm256_setzero_ps();
        for (b, &db) in d.iter().enumerate() {
            // SAFETY: block b < nb of each of the 8 rows holds 2 + 32 bytes, and q holds 32
            // activations from 32 b (checked shapes).
            unsafe {
                let xv = _mm256_loadu_si256(q.as_ptr().add(32 * b).cast());
                let s: [__m256i; 8] = core::array::from_fn(|i| {
                    let wv = _mm256_loadu_si256(base.add(i * rb + b * BB + 2).cast());
                    let p =
                        _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                    _mm256_madd_epi16(p, ones)
                });
                let dw: [f32; 8] = core::array::from_fn(|i| scale_at(base.add(i * rb + b * BB)));
                let dd = _mm256_mul_ps(_mm256_loadu_ps(dw.as_ptr()), _mm256_set1_ps(db));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(dd, _mm256_cvtepi32_ps(hsum8(s))));
            }
        }
        // SAFETY: out[r .. r + 8] is in bounds (r + 8 <= rows).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r), acc) };
        r += 8;
    }
    for (i, o) in out.iter_mut().enumerate().skip(r) {
        *o = dot_row(&w[i * rb..(i + 1) * rb], q, d);
    }
}

/// [`axpy_rows_q8_0_avx2`] with the shapes checked.
#[target_feature(enable = "avx2,f16c")]
unsafe fn axpys_impl(a: &[f32], x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 32;
    let rb = nb * BB;
    let mut b = 0;
    macro_rules! stretch {
        ($blocks:expr) => {{
            const K: usize = 4 * $blocks;
            // SAFETY: blocks b .. b + $blocks <= nb: y holds 32 values per block from 32 b.
            let yp = unsafe { y.as_mut_ptr().add(32 * b) };
            let mut acc: [__m256; K] = core::array::from_fn(|k| {
                // SAFETY: as above (k < K).
                unsafe { _mm256_loadu_ps(yp.add(8 * k)) }
            });
            for (r, &ar) in a.iter().enumerate() {
                for j in 0..$blocks {
                    // SAFETY: block b + j of row r is 34 readable bytes of x (checked shapes).
                    unsafe {
                        let blk = x.as_ptr().add(r * rb + (b + j) * BB);
                        let c = _mm256_set1_ps(ar * scale_at(blk));
                        for k in 0..4 {
                            let v8 = _mm_loadl_epi64(blk.add(2 + 8 * k).cast());
                            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v8));
                            acc[4 * j + k] = _mm256_add_ps(acc[4 * j + k], _mm256_mul_ps(c, v));
                        }
                    }
                }
            }
            for (k, v) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(yp.add(8 * k), *v) };
            }
            b += $blocks;
        }};
    }
    while b < nb {
        if b + 2 <= nb {
            stretch!(2);
        } else {
            stretch!(1);
        }
    }
}
