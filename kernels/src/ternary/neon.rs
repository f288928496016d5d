//! AArch64 NEON (no dotprod) ternary × int8 matvec on the `T2_128` layout.
//!
//! Per block of 128 weights: two 16-byte loads of codes; shift-and-mask gives the codes
//! `c ∈ {0,1,2}` of weights `32k .. 32k+16` and `32k+16 .. 32k+32`, decoded to signed
//! `w = c - 1` (code 3 reads as +2, as in scalar). `vmull_s8`/`vmlal_high_s8` widen the
//! products to int16 (16 products of |w·x| ≤ 256 per lane per block: ≤ 4096, no overflow) and
//! `vpadalq_s16` folds them into int32 once per block. Exact for the full int8 range.

use core::arch::aarch64::*;

use super::matmul_by_rows;
use crate::layout::{T2_BLOCK_ELEMS, t2_row_bytes};

/// Safe wrapper: lengths are checked here, the CPU feature by the caller of
/// [`crate::select`] (whose contract guarantees NEON before this can be reached).
pub(crate) fn matvec_t2_i8_neon(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    assert_eq!(x.len(), cols, "matvec_t2_i8: x must have cols elements");
    assert_eq!(
        w.len(),
        out.len() * rb,
        "matvec_t2_i8: w must hold rows * row_bytes"
    );
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted NEON (their `# Safety` contract);
    // the lengths were checked above.
    unsafe { matvec_impl(w, cols, x, out) }
}

/// Safe wrapper for the prefill matmul (`x: (n_tok, cols)`, `out: (rows, n_tok)`): the NEON
/// matvec per row and token, in scalar's order of outputs. Lengths checked as in scalar.
pub(crate) fn matmul_t2_i8_neon(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    matmul_by_rows(w, cols, x, n_tok, out, matvec_t2_i8_neon);
}

/// Signed weights `c - 1` of the low 2-bit field of every byte of `q` (pre-shifted).
#[inline]
#[target_feature(enable = "neon")]
fn decode(q: uint8x16_t) -> int8x16_t {
    vsubq_s8(
        vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(3))),
        vdupq_n_s8(1),
    )
}

/// `acc + w·x` over 16 int8 pairs, widened to int16 lanes.
#[inline]
#[target_feature(enable = "neon")]
fn mla16(acc: int16x8_t, w: int8x16_t, x: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmlal_s8(acc, vget_low_s8(w), vget_low_s8(x)), w, x)
}

/// One full block: int32x4 partial sums of `Σ w·x` over 128 weights.
///
/// # Safety
/// `q` and `xs` must point at 32 and 128 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_dot(acc: int32x4_t, q: *const u8, xs: *const i8) -> int32x4_t {
    // SAFETY: the caller guarantees 32 readable bytes at `q` and 128 at `xs`.
    unsafe {
        let q0 = vld1q_u8(q);
        let q1 = vld1q_u8(q.add(16));
        let mut s = vdupq_n_s16(0);
        s = mla16(s, decode(vshrq_n_u8::<6>(q0)), vld1q_s8(xs));
        s = mla16(s, decode(vshrq_n_u8::<6>(q1)), vld1q_s8(xs.add(16)));
        s = mla16(s, decode(vshrq_n_u8::<4>(q0)), vld1q_s8(xs.add(32)));
        s = mla16(s, decode(vshrq_n_u8::<4>(q1)), vld1q_s8(xs.add(48)));
        s = mla16(s, decode(vshrq_n_u8::<2>(q0)), vld1q_s8(xs.add(64)));
        s = mla16(s, decode(vshrq_n_u8::<2>(q1)), vld1q_s8(xs.add(80)));
        s = mla16(s, decode(q0), vld1q_s8(xs.add(96)));
        s = mla16(s, decode(q1), vld1q_s8(xs.add(112)));
        vpadalq_s16(acc, s)
    }
}

#[target_feature(enable = "neon")]
unsafe fn matvec_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    let full = cols / T2_BLOCK_ELEMS;
    let tail = cols - full * T2_BLOCK_ELEMS;
    let rows = out.len();
    let mut r = 0;
    // Two rows per pass share the activation loads.
    while r + 2 <= rows {
        let (w0, w1) = (&w[r * rb..(r + 1) * rb], &w[(r + 1) * rb..(r + 2) * rb]);
        let (mut a0, mut a1) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for b in 0..full {
            // SAFETY: block b < full lies within both rows (rb = blocks * 32) and within x
            // (full * 128 <= cols = x.len()).
            unsafe {
                let xs = x.as_ptr().add(b * T2_BLOCK_ELEMS);
                a0 = block_dot(a0, w0.as_ptr().add(b * 32), xs);
                a1 = block_dot(a1, w1.as_ptr().add(b * 32), xs);
            }
        }
        out[r] = vaddvq_s32(a0) + tail_dot(w0, full, tail, x);
        out[r + 1] = vaddvq_s32(a1) + tail_dot(w1, full, tail, x);
        r += 2;
    }
    if r < rows {
        let w0 = &w[r * rb..(r + 1) * rb];
        let mut a0 = vdupq_n_s32(0);
        for b in 0..full {
            // SAFETY: as above.
            unsafe {
                a0 = block_dot(
                    a0,
                    w0.as_ptr().add(b * 32),
                    x.as_ptr().add(b * T2_BLOCK_ELEMS),
                );
            }
        }
        out[r] = vaddvq_s32(a0) + tail_dot(w0, full, tail, x);
    }
}

/// The partial last block (`tail < 128` weights), scalar.
#[inline]
pub(super) fn tail_dot(row: &[u8], full: usize, tail: usize, x: &[i8]) -> i32 {
    let blk = &row[full * 32..];
    let base = full * T2_BLOCK_ELEMS;
    (0..tail)
        .map(|i| (((blk[i % 32] >> (6 - 2 * (i / 32))) & 3) as i32 - 1) * x[base + i] as i32)
        .sum()
}
