//! AArch64 NEON (and NEON + dotprod) kernels over a Q8_0 KV cache, bit-identical to
//! [`super::scalar`].
//!
//! - `dot_rows_q8_0`: four rows at a time, one per lane. Each block's exact integer sum is
//!   two `sdot`s with dotprod, else widening multiplies pairwise-added into int32 (as the LM
//!   head's Q8_0 dot); the four rows' sums meet in one vector by pairwise adds, and the float
//!   steps are the spec's, lane by lane (no FMA).
//! - `axpy_rows_q8_0`: 64 values of `y` (two blocks) stay in sixteen registers while every row
//!   adds into them, then the last block in eight.

use core::arch::aarch64::*;

use super::super::neon::f16x4_to_f32;
use super::scalar::{BLOCK_BYTES as BB, check_axpys, check_dots, dot_row};
use crate::ternary::neon_dot::sdot;

/// NEON [`super::scalar::dot_rows_q8_0`], bit-identical.
pub(crate) fn dot_rows_q8_0_neon(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    check_dots(w.len(), q.len(), d.len(), out.len());
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; shapes checked above.
    unsafe { dots_neon(w, q, d, out) }
}

/// NEON + dotprod [`super::scalar::dot_rows_q8_0`], bit-identical.
pub(crate) fn dot_rows_q8_0_neon_dot(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    check_dots(w.len(), q.len(), d.len(), out.len());
    // SAFETY: reachable only through a KernelSet selected under the NEON + dotprod contract
    // of `select`; shapes checked above.
    unsafe { dots_neon_dot(w, q, d, out) }
}

/// NEON [`super::scalar::axpy_rows_q8_0`], bit-identical.
pub(crate) fn axpy_rows_q8_0_neon(a: &[f32], x: &[u8], y: &mut [f32]) {
    check_axpys(x.len(), y.len(), a.len());
    // SAFETY: as for `dot_rows_q8_0_neon`.
    unsafe { axpys_impl(a, x, y) }
}

#[target_feature(enable = "neon")]
unsafe fn dots_neon(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    // Widening multiplies to int16 (two products per lane: at most 2 · 128 · 127 = 32512 with
    // activations in [-127, 127]), pairwise-added into int32.
    let sum = |w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| {
        let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)), w0, x0);
        let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(x1)), w1, x1);
        vpadalq_s16(vpaddlq_s16(p0), p1)
    };
    // SAFETY: forwarded (NEON enabled here; the wrapper checked the shapes).
    unsafe { dots_rows(w, q, d, out, sum) }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn dots_neon_dot(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let sum = |w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| {
        sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1)
    };
    // SAFETY: forwarded (NEON + dotprod enabled here; the wrapper checked the shapes).
    unsafe { dots_rows(w, q, d, out, sum) }
}

/// The row loop of both dots: `sum(w0, w1, x0, x1)` returns int32 lanes whose total is a
/// block's exact integer sum.
///
/// # Safety
/// NEON (and what `sum` needs) must be available; the shapes as [`check_dots`] checks them.
#[inline(always)]
unsafe fn dots_rows(
    w: &[u8],
    q: &[i8],
    d: &[f32],
    out: &mut [f32],
    sum: impl Fn(int8x16_t, int8x16_t, int8x16_t, int8x16_t) -> int32x4_t,
) {
    let (nb, rows) = (d.len(), out.len());
    let rb = nb * BB;
    let mut r = 0;
    while r + 4 <= rows {
        // SAFETY: rows r .. r + 4 are whole rows of w, block b < nb of each holds 2 + 32
        // bytes, and q holds 32 activations from 32 b (the checked shapes); NEON is available.
        unsafe {
            let base = w.as_ptr().add(r * rb);
            let mut acc = vdupq_n_f32(0.0);
            for (b, &db) in d.iter().enumerate() {
                let xp = q.as_ptr().add(32 * b);
                let (x0, x1) = (vld1q_s8(xp), vld1q_s8(xp.add(16)));
                let s: [int32x4_t; 4] = core::array::from_fn(|i| {
                    let p = base.add(i * rb + b * BB + 2);
                    sum(vld1q_s8(p.cast()), vld1q_s8(p.add(16).cast()), x0, x1)
                });
                // lane i: row r + i's block sum
                let si = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                let dw: [u16; 4] = core::array::from_fn(|i| {
                    u16::from_le_bytes(*base.add(i * rb + b * BB).cast::<[u8; 2]>())
                });
                let dd = vmulq_f32(f16x4_to_f32(vld1_u16(dw.as_ptr())), vdupq_n_f32(db));
                acc = vaddq_f32(acc, vmulq_f32(dd, vcvtq_f32_s32(si)));
            }
            vst1q_f32(out.as_mut_ptr().add(r), acc);
        }
        r += 4;
    }
    for (i, o) in out.iter_mut().enumerate().skip(r) {
        *o = dot_row(&w[i * rb..(i + 1) * rb], q, d);
    }
}

/// The f16 scale at `p` as f32 (exact, as [`f16x4_to_f32`]).
///
/// # Safety
/// NEON must be available; `p` must point at 2 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn scale_at(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes at p (the caller's guarantee).
    let h = u16::from_le_bytes(unsafe { *p.cast::<[u8; 2]>() });
    vgetq_lane_f32::<0>(f16x4_to_f32(vdup_n_u16(h)))
}

/// [`axpy_rows_q8_0_neon`] with the shapes checked.
#[target_feature(enable = "neon")]
unsafe fn axpys_impl(a: &[f32], x: &[u8], y: &mut [f32]) {
    let nb = y.len() / 32;
    let rb = nb * BB;
    let mut b = 0;
    macro_rules! stretch {
        ($blocks:expr) => {{
            const K: usize = 8 * $blocks;
            // SAFETY: blocks b .. b + $blocks <= nb: y holds 32 values per block from 32 b.
            let yp = unsafe { y.as_mut_ptr().add(32 * b) };
            let mut acc: [float32x4_t; K] = core::array::from_fn(|k| {
                // SAFETY: as above (k < K).
                unsafe { vld1q_f32(yp.add(4 * k)) }
            });
            for (r, &ar) in a.iter().enumerate() {
                for j in 0..$blocks {
                    // SAFETY: block b + j of row r is 34 readable bytes of x (checked shapes).
                    unsafe {
                        let blk = x.as_ptr().add(r * rb + (b + j) * BB);
                        let c = vdupq_n_f32(ar * scale_at(blk));
                        for h in 0..2 {
                            let v = vld1q_s8(blk.add(2 + 16 * h).cast());
                            let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
                            let parts = [
                                vmovl_s16(vget_low_s16(lo)),
                                vmovl_high_s16(lo),
                                vmovl_s16(vget_low_s16(hi)),
                                vmovl_high_s16(hi),
                            ];
                            for (k, p) in parts.into_iter().enumerate() {
                                let a = &mut acc[8 * j + 4 * h + k];
                                *a = vaddq_f32(*a, vmulq_f32(c, vcvtq_f32_s32(p)));
                            }
                        }
                    }
                }
            }
            for (k, v) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { vst1q_f32(yp.add(4 * k), *v) };
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
