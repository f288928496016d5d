//! AArch64 NEON (no dotprod) ternary × int8 kernels on the `T1_160` layout
//! ([`crate::layout::BlockT1`]): per 16 bytes and trit `k`, `q = b · 3^k` by one
//! 8-bit wrapping `vmulq_u8`, then `q · 3` widened to 16 bits (`vmull_u8`/`vmull_high_u8`) and
//! its high bytes gathered by `vuzp2q_u8` are the codes (the spec's decode, exactly), minus 1
//! for signed weights ([`t1_weights`]); trits 0–1 and 2–3 go in pairs (`q · 9`, whose high
//! byte `3·c_k + c_{k+1}` two `tbl` lookups split, [`t1_pair_weights`]). The matvec runs 2
//! rows per pass ([`matvec_t1_i8_neon`]); the prefill matmul decodes each row chunk's weights once to bytes and runs 2-row × 4-token tiles over
//! them ([`matmul_t1_decoded`], shared with [`super::neon_dot`]).

use core::arch::aarch64::*;

use super::lut::T1 as LutT1;
use super::matmul_rows;
use super::matvec_shape;
use super::neon::{TOKEN_CHUNK, mla16};
use super::neon_lut::matmul_lut_blocks;
use super::scalar::t1_tail_dot;
use crate::layout::{T1_BLOCK_ELEMS, T1_POW3, TernaryLayout, t1_row_bytes};

/// Signed weights `code - 1` of trit `k` of 16 `T1_160` bytes `q`: `q_k = q · 3^k mod 256`
/// (8-bit wrapping multiply), `code = (q_k · 3) >> 8` (the high byte of the 16-bit product).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn t1_weights<const K: usize>(q: uint8x16_t) -> int8x16_t {
    let qk = vmulq_u8(q, vdupq_n_u8(T1_POW3[K]));
    let lo = vmull_u8(vget_low_u8(qk), vdup_n_u8(3));
    let hi = vmull_high_u8(qk, vdupq_n_u8(3));
    let c = vuzp2q_u8(vreinterpretq_u8_u16(lo), vreinterpretq_u8_u16(hi));
    vsubq_s8(vreinterpretq_s8_u8(c), vdupq_n_s8(1))
}

/// `p / 3 - 1` and `p mod 3 - 1` for `p = 0..9` (then 0): the two signed weights of a trit
/// pair `p = 3·c_k + c_{k+1}`.
const T1_PAIR_HI: [i8; 16] = [-1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const T1_PAIR_LO: [i8; 16] = [-1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0, 0, 0, 0, 0, 0];

/// Signed weights of trits `K` and `K + 1` of 16 `T1_160` bytes `q` at once: with
/// `q_K = q · 3^K mod 256`, the high byte of the 16-bit `9 · q_K` is `p = 3·c_K + c_{K+1}`
/// (0..=8 for any byte; `(3·q_K) >> 8 = c_K`, `3·q_K mod 256 = q_{K+1}`), split by two `tbl`
/// lookups that also subtract 1: 6 instructions for 32 weights instead of 10.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn t1_pair_weights<const K: usize>(q: uint8x16_t) -> (int8x16_t, int8x16_t) {
    let qk = vmulq_u8(q, vdupq_n_u8(T1_POW3[K]));
    let lo = vmull_u8(vget_low_u8(qk), vdup_n_u8(9));
    let hi = vmull_high_u8(qk, vdupq_n_u8(9));
    let p = vuzp2q_u8(vreinterpretq_u8_u16(lo), vreinterpretq_u8_u16(hi));
    // SAFETY: each table is 16 readable bytes.
    let (th, tl) = unsafe { (vld1q_s8(T1_PAIR_HI.as_ptr()), vld1q_s8(T1_PAIR_LO.as_ptr())) };
    (vqtbl1q_s8(th, p), vqtbl1q_s8(tl, p))
}

/// Safe wrapper of the `T1_160` matvec (`w: (rows, cols)`, `x: (cols,)`, `out: (rows,)`; see
/// [`super::scalar::matvec_t1_i8_scalar`]): lengths are checked here, the CPU feature by the
/// caller of [`crate::select`].
pub(crate) fn matvec_t1_i8_neon(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    matvec_shape(TernaryLayout::T1_160, w, cols, x, out.len());
    // SAFETY: only reachable through a KernelSet that `select`/`select_variant` hands out when
    // the caller asserted NEON (their `# Safety` contract); the lengths were checked above.
    unsafe { matvec_t1_impl(w, cols, x, out) }
}

/// One full `T1_160` block: int32x4 partial sums of `Σ w·x` over 160 weights (10 × 16
/// products widened to int16: 20 per lane, |lane| ≤ 2560, then folded into int32).
///
/// # Safety
/// `q` and `xs` must point at 32 and 160 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn t1_block_dot(acc: int32x4_t, q: *const u8, xs: *const i8) -> int32x4_t {
    // SAFETY: the caller guarantees 32 readable bytes at `q` and 160 at `xs`.
    unsafe {
        let q0 = vld1q_u8(q);
        let q1 = vld1q_u8(q.add(16));
        let mut s = vdupq_n_s16(0);
        macro_rules! pair {
            ($k:literal) => {
                let (a0, b0) = t1_pair_weights::<$k>(q0);
                let (a1, b1) = t1_pair_weights::<$k>(q1);
                s = mla16(s, a0, vld1q_s8(xs.add(32 * $k)));
                s = mla16(s, a1, vld1q_s8(xs.add(32 * $k + 16)));
                s = mla16(s, b0, vld1q_s8(xs.add(32 * $k + 32)));
                s = mla16(s, b1, vld1q_s8(xs.add(32 * $k + 48)));
            };
        }
        pair!(0);
        pair!(2);
        s = mla16(s, t1_weights::<4>(q0), vld1q_s8(xs.add(128)));
        s = mla16(s, t1_weights::<4>(q1), vld1q_s8(xs.add(144)));
        vpadalq_s16(acc, s)
    }
}

#[target_feature(enable = "neon")]
unsafe fn matvec_t1_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t1_row_bytes(cols);
    let full = cols / T1_BLOCK_ELEMS;
    let tail = cols - full * T1_BLOCK_ELEMS;
    let rows = out.len();
    let mut r = 0;
    // Two rows per pass share the activation loads.
    while r + 2 <= rows {
        let (w0, w1) = (&w[r * rb..(r + 1) * rb], &w[(r + 1) * rb..(r + 2) * rb]);
        let (mut a0, mut a1) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for b in 0..full {
            // SAFETY: block b < full lies within both rows (rb = blocks * 32) and within x
            // (full * 160 <= cols = x.len()).
            unsafe {
                let xs = x.as_ptr().add(b * T1_BLOCK_ELEMS);
                a0 = t1_block_dot(a0, w0.as_ptr().add(b * 32), xs);
                a1 = t1_block_dot(a1, w1.as_ptr().add(b * 32), xs);
            }
        }
        out[r] = vaddvq_s32(a0) + t1_tail_dot(w0, full, tail, x);
        out[r + 1] = vaddvq_s32(a1) + t1_tail_dot(w1, full, tail, x);
        r += 2;
    }
    if r < rows {
        let w0 = &w[r * rb..(r + 1) * rb];
        let mut a0 = vdupq_n_s32(0);
        for b in 0..full {
            // SAFETY: as above.
            unsafe {
                a0 = t1_block_dot(
                    a0,
                    w0.as_ptr().add(b * 32),
                    x.as_ptr().add(b * T1_BLOCK_ELEMS),
                );
            }
        }
        out[r] = vaddvq_s32(a0) + t1_tail_dot(w0, full, tail, x);
    }
}

/// Safe wrapper of the `T1_160` prefill matmul (`x: (n_tok, cols)`, `out: (rows, n_tok)`; see
/// [`super::scalar::matmul_t1_i8_scalar`]): lookup tables for blocks of at least 16 tokens,
/// decoded-weight tiles for the rest. Shapes are checked by [`matmul_t1_decoded`].
pub(crate) fn matmul_t1_i8_neon(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    // SAFETY: only reachable through a KernelSet that `select`/`select_variant` hands out when
    // the caller asserted NEON (their `# Safety` contract), which is all `NeonDecTile` and the
    // decode need; `matmul_t1_decoded` checks the shapes.
    unsafe { matmul_t1_decoded::<NeonDecTile>(w, cols, x, n_tok, out) }
}

/// `T1_160` blocks decoded per chunk by [`matmul_t1_decoded`]: 1920 weights per row, so a NEON
/// int16 lane of [`NeonDecTile`] holds at most 240 products (|sum| ≤ 30720).
pub(super) const T1_CHUNK_BLOCKS: usize = 12;
/// Weights per decoded chunk of one row.
const T1_CHUNK: usize = T1_CHUNK_BLOCKS * T1_BLOCK_ELEMS;
/// Rows decoded together per chunk.
const T1_MM_ROWS: usize = 4;

/// A register-tile kernel over decoded signed weights for [`matmul_t1_decoded`].
pub(super) trait DecTile {
    /// Returns `Σ w·x` over `n` weights for every (row `i`, token `t`), with `w[i]` the decoded
    /// weights (-1, 0, +1 as int8) and `x[t]` the activations at the same column.
    ///
    /// # Safety
    /// The CPU features of the implementation must be available; `n` must be a multiple of 16
    /// and at most 1920; `w[i]` and `x[t]` must point at `n` readable bytes.
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const i8; R],
        x: [*const i8; T],
        n: usize,
    ) -> [[i32; T]; R];
}

/// Decode blocks `b0 .. b0 + nb` (`nb <= 12`) of the `T1_160` row `row` to signed weights in
/// weight order: `dec[160 j + 32 k + i] = code k of byte i of block b0 + j, minus 1`.
#[target_feature(enable = "neon")]
fn decode_t1_chunk(row: &[u8], b0: usize, nb: usize, dec: &mut [i8; T1_CHUNK]) {
    for j in 0..nb.min(T1_CHUNK_BLOCKS) {
        let blk = &row[(b0 + j) * 32..(b0 + j + 1) * 32];
        let d = &mut dec[j * T1_BLOCK_ELEMS..(j + 1) * T1_BLOCK_ELEMS];
        // SAFETY: `blk` has 32 readable bytes and `d` 160 writable ones; each store writes 16
        // bytes at offset 32 k (+ 16) < 160.
        unsafe {
            let q0 = vld1q_u8(blk.as_ptr());
            let q1 = vld1q_u8(blk.as_ptr().add(16));
            let p = d.as_mut_ptr();
            macro_rules! pair {
                ($k:literal) => {
                    let (a0, b0) = t1_pair_weights::<$k>(q0);
                    let (a1, b1) = t1_pair_weights::<$k>(q1);
                    vst1q_s8(p.add(32 * $k), a0);
                    vst1q_s8(p.add(32 * $k + 16), a1);
                    vst1q_s8(p.add(32 * $k + 32), b0);
                    vst1q_s8(p.add(32 * $k + 48), b1);
                };
            }
            pair!(0);
            pair!(2);
            vst1q_s8(p.add(128), t1_weights::<4>(q0));
            vst1q_s8(p.add(144), t1_weights::<4>(q1));
        }
    }
}

/// The `T1_160` prefill matmul of both NEON variants. Blocks of at least 16 tokens go through
/// the lookup tables ([`super::neon_lut`]); the rest in chunks of [`TOKEN_CHUNK`]; per
/// group of 4 rows, each chunk of 12 blocks is decoded once to signed weight bytes (7.5 KiB,
/// stays in L1), then `K::tile` runs 2-row × 4-token tiles over them; the partial last block
/// is added per (row, token) by [`t1_tail_dot`].
///
/// # Panics
/// On a shape mismatch, as [`super::scalar::matmul_t1_i8_scalar`].
///
/// # Safety
/// NEON and the CPU features `K::tile` needs must be available.
pub(super) unsafe fn matmul_t1_decoded<K: DecTile>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) {
    let rb = t1_row_bytes(cols);
    let Some(rows) = matmul_rows(w, cols, x, n_tok, out, rb) else {
        return;
    };
    let full = cols / T1_BLOCK_ELEMS;
    let tail = cols - full * T1_BLOCK_ELEMS;
    let wrow = |r: usize| &w[r * rb..(r + 1) * rb];
    let xrow = |t: usize| &x[t * cols..(t + 1) * cols];
    let mut dec = [[0i8; T1_CHUNK]; T1_MM_ROWS];
    // SAFETY: NEON is the caller's contract; shapes checked.
    let mut t0 = unsafe { matmul_lut_blocks::<LutT1>(w, cols, x, n_tok, out) };
    while t0 < n_tok {
        let nt = (n_tok - t0).min(TOKEN_CHUNK);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(T1_MM_ROWS);
            let mut acc = [[0i32; TOKEN_CHUNK]; T1_MM_ROWS];
            let mut b0 = 0;
            while b0 < full {
                let nb = (full - b0).min(T1_CHUNK_BLOCKS);
                for (i, d) in dec.iter_mut().enumerate().take(nr) {
                    // SAFETY: NEON is the caller's contract.
                    unsafe { decode_t1_chunk(wrow(r0 + i), b0, nb, d) };
                }
                let n = nb * T1_BLOCK_ELEMS;
                let mut r = 0;
                while r < nr {
                    let rr = if nr - r >= 2 { 2 } else { 1 };
                    let mut t = 0;
                    while t < nt {
                        let tt = (nt - t).min(4);
                        macro_rules! run {
                            ($R:literal, $T:literal) => {{
                                // SAFETY: rows r..r+$R < nr have `n` decoded bytes in `dec`;
                                // tokens t0+t.. < n_tok have `cols - b0 * 160 >= n` bytes from
                                // column b0 * 160; n = 160 nb is a multiple of 16 and <= 1920;
                                // the CPU features are the caller's contract.
                                let s = unsafe {
                                    K::tile::<$R, $T>(
                                        core::array::from_fn(|i| dec[r + i].as_ptr()),
                                        core::array::from_fn(|j| {
                                            xrow(t0 + t + j)[b0 * T1_BLOCK_ELEMS..].as_ptr()
                                        }),
                                        n,
                                    )
                                };
                                for i in 0..$R {
                                    for j in 0..$T {
                                        acc[r + i][t + j] += s[i][j];
                                    }
                                }
                            }};
                        }
                        match (rr, tt) {
                            (2, 4) => run!(2, 4),
                            (2, 3) => run!(2, 3),
                            (2, 2) => run!(2, 2),
                            (2, _) => run!(2, 1),
                            (_, 4) => run!(1, 4),
                            (_, 3) => run!(1, 3),
                            (_, 2) => run!(1, 2),
                            _ => run!(1, 1),
                        }
                        t += tt;
                    }
                    r += rr;
                }
                b0 += nb;
            }
            for i in 0..nr {
                for t in 0..nt {
                    out[(r0 + i) * n_tok + t0 + t] =
                        acc[i][t] + t1_tail_dot(wrow(r0 + i), full, tail, xrow(t0 + t));
                }
            }
            r0 += nr;
        }
        t0 += nt;
    }
}

/// The NEON (`vmull_s8`/`vmlal_high_s8`) tile over decoded weights.
struct NeonDecTile;

impl DecTile for NeonDecTile {
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const i8; R],
        x: [*const i8; T],
        n: usize,
    ) -> [[i32; T]; R] {
        // SAFETY: forwarded contract (NEON available, pointer extents).
        unsafe { dec_tile_neon::<R, T>(w, x, n) }
    }
}

/// See [`DecTile::tile`]: one int16 window (n ≤ 1920: ≤ 240 products of |w·x| ≤ 128 per
/// lane), then widened.
///
/// # Safety
/// As [`DecTile::tile`], with NEON.
#[target_feature(enable = "neon")]
unsafe fn dec_tile_neon<const R: usize, const T: usize>(
    w: [*const i8; R],
    x: [*const i8; T],
    n: usize,
) -> [[i32; T]; R] {
    let mut s = [[vdupq_n_s16(0); T]; R];
    let mut i = 0;
    while i < n {
        // SAFETY: i + 16 <= n: within the `n` readable bytes of every pointer (contract).
        unsafe {
            let wv: [int8x16_t; R] = core::array::from_fn(|r| vld1q_s8(w[r].add(i)));
            for t in 0..T {
                let xv = vld1q_s8(x[t].add(i));
                for r in 0..R {
                    s[r][t] = mla16(s[r][t], wv[r], xv);
                }
            }
        }
        i += 16;
    }
    let mut sums = [[0i32; T]; R];
    for r in 0..R {
        for t in 0..T {
            sums[r][t] = vaddvq_s32(vpaddlq_s16(s[r][t]));
        }
    }
    sums
}
