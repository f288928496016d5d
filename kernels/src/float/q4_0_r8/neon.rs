//! AArch64 NEON and NEON + dotprod [`super::scalar::matvec_q4_0_r8_q8_0`], bit-identical. In a
//! group block each 16 bytes of a chunk are 4 rows' 4 code bytes, one row per 32-bit lane, so
//! with 4 activations broadcast to every lane:
//!
//! - dotprod: one `sdot` adds 4 products to each of 4 rows' sums (the low nibbles against
//!   activations `4c..4c + 4`, the high nibbles against `16 + 4c..`), 16 per block of 8 rows;
//! - NEON: widening multiplies into int16 lanes (8 products per lane over a block, at most
//!   8 · 15 · 128 = 15360: exact), then two pairwise adds into one int32 lane per row.
//!
//! Either way the lanes hold `Σ c·x` of the unsigned codes; adding the block's `− 8 · Σ x`
//! (once per call) gives the exact block sums. The float steps are scalar's, lane by lane, with
//! partial sum `b % 8` in accumulator `b % 8`.

use core::arch::aarch64::*;

use super::super::neon::f16x4_to_f32;
use crate::layout::{Q4_0_R8_BLOCK_BYTES as GB, Q4_0_R8_ROWS};
use crate::ternary::neon_dot::sdot;

use super::scalar::{MAX_BLOCKS, block_offsets};

/// NEON [`super::scalar::matvec_q4_0_r8_q8_0`] (same arguments, result and panics).
pub(crate) fn matvec_q4_0_r8_q8_0_neon(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::check_shapes(w.len(), q.len(), d.len(), out.len());
    if d.len() > MAX_BLOCKS {
        return super::scalar::matvec_q4_0_r8_q8_0(w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; shapes checked above.
    unsafe { neon_impl(w, q, d, out) }
}

/// NEON + dotprod [`super::scalar::matvec_q4_0_r8_q8_0`] (same arguments, result and panics).
pub(crate) fn matvec_q4_0_r8_q8_0_neon_dot(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::check_shapes(w.len(), q.len(), d.len(), out.len());
    if d.len() > MAX_BLOCKS {
        return super::scalar::matvec_q4_0_r8_q8_0(w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the NEON + dotprod contract
    // of `select`; shapes checked above.
    unsafe { dot_impl(w, q, d, out) }
}

/// The 4 activations at `p` broadcast to every 32-bit lane.
///
/// # Safety
/// The 4 bytes at `p` must be readable; NEON available.
#[inline(always)]
unsafe fn bcast4(p: *const i8) -> int8x16_t {
    // SAFETY: the caller's guarantee (an unaligned read).
    unsafe { vreinterpretq_s8_s32(vdupq_n_s32(p.cast::<i32>().read_unaligned())) }
}

/// Chunk `c`, half `h` (rows `4h..4h + 4`) of the group block at `p`: the low and the high
/// nibbles as int8 codes `0..=15`.
///
/// # Safety
/// The 144-byte group block at `p` must be readable; NEON available.
#[inline(always)]
unsafe fn codes(p: *const u8, c: usize, h: usize) -> (int8x16_t, int8x16_t) {
    // SAFETY: 16 + 32c + 16h + 16 <= 144 for c < 4, h < 2 (the caller's block).
    unsafe {
        let v = vld1q_u8(p.add(16 + 32 * c + 16 * h));
        (
            vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))),
            vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
        )
    }
}

#[target_feature(enable = "neon")]
unsafe fn neon_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let sums = |p: *const u8, xb: *const i8| -> [int32x4_t; 2] {
        // m[h][k]: rows 4h + 2k and 4h + 2k + 1, four int16 lanes each
        let mut m = [[vdupq_n_s16(0); 2]; 2];
        for c in 0..4 {
            // SAFETY: xb + 4c and xb + 16 + 4c lie in the block's 32 activations, p is a
            // whole group block (the caller's contract); NEON is enabled here.
            unsafe {
                let (xl, xh) = (bcast4(xb.add(4 * c)), bcast4(xb.add(16 + 4 * c)));
                for (h, mh) in m.iter_mut().enumerate() {
                    let (lo, hi) = codes(p, c, h);
                    let a = vmlal_s8(mh[0], vget_low_s8(lo), vget_low_s8(xl));
                    mh[0] = vmlal_s8(a, vget_low_s8(hi), vget_low_s8(xh));
                    mh[1] = vmlal_high_s8(vmlal_high_s8(mh[1], lo, xl), hi, xh);
                }
            }
        }
        m.map(|mh| vpaddq_s32(vpaddlq_s16(mh[0]), vpaddlq_s16(mh[1])))
    };
    // SAFETY: forwarded (NEON enabled here; the wrapper checked the shapes).
    unsafe { groups(w, q, d, out, sums) }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let sums = |p: *const u8, xb: *const i8| -> [int32x4_t; 2] {
        let mut a = [vdupq_n_s32(0); 2];
        for c in 0..4 {
            // SAFETY: as in `neon_impl`'s `sums`; NEON + dotprod are enabled here.
            unsafe {
                let (xl, xh) = (bcast4(xb.add(4 * c)), bcast4(xb.add(16 + 4 * c)));
                for (h, ah) in a.iter_mut().enumerate() {
                    let (lo, hi) = codes(p, c, h);
                    *ah = sdot(sdot(*ah, lo, xl), hi, xh);
                }
            }
        }
        a
    };
    // SAFETY: forwarded (NEON + dotprod enabled here; the wrapper checked the shapes).
    unsafe { groups(w, q, d, out, sums) }
}

/// The group and block loops shared by both variants. `sums(p, xb)` returns the 8 rows'
/// `Σ c·x` (rows `4h..4h + 4` in vector `h`) of the group block at `p` with its activations at
/// `xb`.
///
/// # Safety
/// NEON (and what `sums` needs) must be available; the shapes as `check_shapes` checks, with at
/// most [`MAX_BLOCKS`] blocks per row.
#[inline(always)]
unsafe fn groups(
    w: &[u8],
    q: &[i8],
    d: &[f32],
    out: &mut [f32],
    sums: impl Fn(*const u8, *const i8) -> [int32x4_t; 2],
) {
    let nb = d.len();
    let corr = block_offsets(q);
    for (g, o) in out.chunks_exact_mut(Q4_0_R8_ROWS).enumerate() {
        let gp = w[g * nb * GB..(g + 1) * nb * GB].as_ptr();
        // SAFETY: NEON is available (the contract).
        let mut acc = [[unsafe { vdupq_n_f32(0.0) }; 2]; 8];
        for (b, (&db, &cb)) in d.iter().zip(&corr[..nb]).enumerate() {
            // SAFETY: block b < nb of the group is the 144 bytes at gp + 144 b and its
            // activations q[32 b..32 b + 32] (the checked shape); NEON is available.
            unsafe {
                let p = gp.add(GB * b);
                let s = sums(p, q.as_ptr().add(32 * b));
                let dx = vdupq_n_f32(db);
                for (h, a) in acc[b % 8].iter_mut().enumerate() {
                    let dw = f16x4_to_f32(vld1_u16(p.add(8 * h).cast()));
                    let sh = vcvtq_f32_s32(vaddq_s32(s[h], vdupq_n_s32(cb)));
                    *a = vaddq_f32(*a, vmulq_f32(vmulq_f32(dw, dx), sh));
                }
            }
        }
        for h in 0..2 {
            let a = |j: usize| acc[j][h];
            // SAFETY: NEON is available; `o` holds 8 f32, rows 4h..4h + 4 here.
            unsafe {
                let r = vaddq_f32(
                    vaddq_f32(vaddq_f32(a(0), a(4)), vaddq_f32(a(2), a(6))),
                    vaddq_f32(vaddq_f32(a(1), a(5)), vaddq_f32(a(3), a(7))),
                );
                vst1q_f32(o.as_mut_ptr().add(4 * h), r);
            }
        }
    }
}
