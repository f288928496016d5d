//! AArch64 NEON + dotprod ternary × int8 matvec on the `T2_128` layout.
//!
//! As [`super::neon`], but each 16-byte pair of weights and activations goes through one
//! `sdot` (four int8 products summed into each int32 lane). The matvec dots the codes `c`
//! themselves, some masked in place as `4c` or `16c` ([`MvAcc`]), and subtracts `Σ x`
//! once per row; the matmul tiles dot the signed weights `w = c - 1`. `vdotq_s32` is unstable
//! on Rust 1.95, so `sdot` is emitted with `asm!` inside a `dotprod` target-feature function.
//! Exact for the full int8 range (int32 lanes).
//!
//! The prefill matmul uses the tiling of [`super::neon::matmul_tiled`] (2 rows × 4 tokens,
//! each decoded weight vector reused for 4 tokens) with one `sdot` int32 accumulator per
//! (row, token).
//!
//! `T1_160`: the NEON decode ([`super::neon_t1::t1_weights`]) feeding `sdot`; the prefill matmul
//! is [`super::neon_t1::matmul_t1_decoded`] with an `sdot` tile.

use core::arch::aarch64::*;
use core::arch::asm;

use super::matvec_shape;
use super::neon::{MvRowSums, Tile, matmul_tiled, matvec_codes, t2_block_codes};
use super::neon_t1::{DecTile, matmul_t1_decoded, t1_pair_weights, t1_weights};
use super::scalar::t1_tail_dot;
use crate::layout::{T1_BLOCK_ELEMS, T2_BLOCK_ELEMS, TernaryLayout, t1_row_bytes};

/// Safe wrapper: lengths are checked here, the CPU features by the caller of
/// [`crate::select`] (whose contract guarantees NEON and dotprod before this can be reached).
pub(crate) fn matvec_t2_i8_neon_dot(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    matvec_shape(TernaryLayout::T2_128, w, cols, x, out.len());
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted NEON + dotprod (their `# Safety`
    // contract); the lengths were checked above.
    unsafe { matvec_impl(w, cols, x, out) }
}

/// Safe wrapper for the prefill matmul: lookup tables for blocks of at least 16 tokens,
/// register tiles of 2 rows × 4 tokens with `sdot` for the rest (see
/// [`super::neon::matmul_t2_i8_neon`]). Lengths are checked by `matmul_tiled`.
pub(crate) fn matmul_t2_i8_neon_dot(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) {
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted NEON + dotprod (their `# Safety`
    // contract), which is all `DotTile::tile` needs; `matmul_tiled` checks the shapes.
    unsafe { matmul_tiled::<DotTile>(w, cols, x, n_tok, out) }
}

/// `acc + sdot(w, x)`: each int32 lane gains the sum of its four int8 products.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn sdot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` only reads and writes the three vector registers named here (no memory,
    // no stack, no flags); the dotprod feature is enabled on this function, and its callers
    // are only reached under the NEON + dotprod contract of `select`.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
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

/// One row's `sdot` sums of the matvec, by how each code enters: `c` shifted down (`c0`,
/// bits 6-7), `c` in place (`c3`, bits 0-1), `4c` (`c2`, bits 2-3 masked in place) and `16c`
/// (`c1`, bits 4-5 masked in place, at most 48: still an int8).
#[derive(Clone, Copy)]
struct MvAcc {
    c0: int32x4_t,
    c3: int32x4_t,
    c2x4: int32x4_t,
    c1x16: int32x4_t,
}

impl MvRowSums for MvAcc {
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn zero() -> MvAcc {
        let z = vdupq_n_s32(0);
        MvAcc {
            c0: z,
            c3: z,
            c2x4: z,
            c1x16: z,
        }
    }

    /// [`t2_block_codes`] into `sdot`s: the 2-row block loop compiles to 43 instructions
    /// instead of the 67 of decoding `c - 1` (16 `sdot` in both).
    #[inline]
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn add_block(self, q: *const u8, xs: *const i8) -> MvAcc {
        // SAFETY: the caller guarantees 32 readable bytes at `q` and 128 at `xs`.
        unsafe {
            let v = t2_block_codes(q);
            let x = |k: usize| vld1q_s8(xs.add(16 * k));
            MvAcc {
                c0: sdot(sdot(self.c0, v[0], x(0)), v[1], x(1)),
                c1x16: sdot(sdot(self.c1x16, v[2], x(2)), v[3], x(3)),
                c2x4: sdot(sdot(self.c2x4, v[4], x(4)), v[5], x(5)),
                c3: sdot(sdot(self.c3, v[6], x(6)), v[7], x(7)),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn fold_sum(self) -> i32 {
        vaddvq_s32(vaddq_s32(
            vaddq_s32(self.c0, self.c3),
            vaddq_s32(vshrq_n_s32::<2>(self.c2x4), vshrq_n_s32::<4>(self.c1x16)),
        ))
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn matvec_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: NEON + dotprod (this function's) is all MvAcc needs; shapes as the caller's.
    unsafe { matvec_codes::<MvAcc>(w, cols, x, out) }
}

/// The NEON + dotprod (`sdot`) tile for [`matmul_tiled`].
struct DotTile;

impl Tile for DotTile {
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const u8; R],
        x: [*const i8; T],
        full: usize,
    ) -> [[i32; T]; R] {
        // SAFETY: forwarded contract (NEON + dotprod available, pointer extents).
        unsafe { tile_dot::<R, T>(w, x, full) }
    }
}

/// See [`Tile::tile`].
///
/// # Safety
/// As [`Tile::tile`], with NEON and dotprod.
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dot<const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const i8; T],
    full: usize,
) -> [[i32; T]; R] {
    let mut acc = [[vdupq_n_s32(0); T]; R];
    for b in 0..full {
        // SAFETY: b < full: 32 readable bytes at w[i] + 32 b and 128 at x[t] + 128 b (the
        // contract).
        unsafe {
            let mut q0 = [vdupq_n_u8(0); R];
            let mut q1 = [vdupq_n_u8(0); R];
            for i in 0..R {
                q0[i] = vld1q_u8(w[i].add(b * 32));
                q1[i] = vld1q_u8(w[i].add(b * 32 + 16));
            }
            // Weights `off .. off + 16` of the block: decode once per row, use for T tokens.
            macro_rules! step {
                (@dot $off:expr, $wv:ident) => {
                    for t in 0..T {
                        let xv = vld1q_s8(x[t].add(b * T2_BLOCK_ELEMS + $off));
                        for i in 0..R {
                            acc[i][t] = sdot(acc[i][t], $wv[i], xv);
                        }
                    }
                };
                ($off:expr, $q:ident, $shift:literal) => {{
                    let mut wv = [vdupq_n_s8(0); R];
                    for i in 0..R {
                        wv[i] = decode(vshrq_n_u8::<$shift>($q[i]));
                    }
                    step!(@dot $off, wv);
                }};
                ($off:expr, $q:ident) => {{
                    let mut wv = [vdupq_n_s8(0); R];
                    for i in 0..R {
                        wv[i] = decode($q[i]);
                    }
                    step!(@dot $off, wv);
                }};
            }
            step!(0, q0, 6);
            step!(16, q1, 6);
            step!(32, q0, 4);
            step!(48, q1, 4);
            step!(64, q0, 2);
            step!(80, q1, 2);
            step!(96, q0);
            step!(112, q1);
        }
    }
    let mut sums = [[0i32; T]; R];
    for i in 0..R {
        for t in 0..T {
            sums[i][t] = vaddvq_s32(acc[i][t]);
        }
    }
    sums
}

/// Safe wrapper of the `T1_160` matvec with `sdot` (shapes as
/// [`super::scalar::matvec_t1_i8_scalar`]): lengths are checked here, the CPU features by the
/// caller of [`crate::select`].
pub(crate) fn matvec_t1_i8_neon_dot(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    matvec_shape(TernaryLayout::T1_160, w, cols, x, out.len());
    // SAFETY: only reachable through a KernelSet that `select`/`select_variant` hands out when
    // the caller asserted NEON + dotprod (their `# Safety` contract); lengths checked above.
    unsafe { matvec_t1_impl(w, cols, x, out) }
}

/// Safe wrapper of the `T1_160` prefill matmul: lookup tables for blocks of at least 16
/// tokens, `sdot` tiles over decoded weights for the rest.
pub(crate) fn matmul_t1_i8_neon_dot(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) {
    // SAFETY: only reachable through a KernelSet that `select`/`select_variant` hands out when
    // the caller asserted NEON + dotprod (their `# Safety` contract), which is all the decode
    // and `DotDecTile` need; `matmul_t1_decoded` checks the shapes.
    unsafe { matmul_t1_decoded::<DotDecTile>(w, cols, x, n_tok, out) }
}

/// One full `T1_160` block (160 weights) added into two int32x4 accumulators.
///
/// # Safety
/// `q` and `xs` must point at 32 and 160 readable bytes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn t1_block_dot(
    acc: (int32x4_t, int32x4_t),
    q: *const u8,
    xs: *const i8,
) -> (int32x4_t, int32x4_t) {
    // SAFETY: the caller guarantees 32 readable bytes at `q` and 160 at `xs`.
    unsafe {
        let q0 = vld1q_u8(q);
        let q1 = vld1q_u8(q.add(16));
        let (mut s, mut t) = acc;
        macro_rules! pair {
            ($k:literal) => {
                let (a0, b0) = t1_pair_weights::<$k>(q0);
                let (a1, b1) = t1_pair_weights::<$k>(q1);
                s = sdot(s, a0, vld1q_s8(xs.add(32 * $k)));
                t = sdot(t, a1, vld1q_s8(xs.add(32 * $k + 16)));
                s = sdot(s, b0, vld1q_s8(xs.add(32 * $k + 32)));
                t = sdot(t, b1, vld1q_s8(xs.add(32 * $k + 48)));
            };
        }
        pair!(0);
        pair!(2);
        s = sdot(s, t1_weights::<4>(q0), vld1q_s8(xs.add(128)));
        t = sdot(t, t1_weights::<4>(q1), vld1q_s8(xs.add(144)));
        (s, t)
    }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn matvec_t1_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t1_row_bytes(cols);
    let full = cols / T1_BLOCK_ELEMS;
    let tail = cols - full * T1_BLOCK_ELEMS;
    let rows = out.len();
    let zero = (vdupq_n_s32(0), vdupq_n_s32(0));
    let hsum = |a: (int32x4_t, int32x4_t)| vaddvq_s32(vaddq_s32(a.0, a.1));
    let mut r = 0;
    // Two rows per pass share the activation loads.
    while r + 2 <= rows {
        let (w0, w1) = (&w[r * rb..(r + 1) * rb], &w[(r + 1) * rb..(r + 2) * rb]);
        let (mut a0, mut a1) = (zero, zero);
        for b in 0..full {
            // SAFETY: block b < full lies within both rows (rb = blocks * 32) and within x
            // (full * 160 <= cols = x.len()).
            unsafe {
                let xs = x.as_ptr().add(b * T1_BLOCK_ELEMS);
                a0 = t1_block_dot(a0, w0.as_ptr().add(b * 32), xs);
                a1 = t1_block_dot(a1, w1.as_ptr().add(b * 32), xs);
            }
        }
        out[r] = hsum(a0) + t1_tail_dot(w0, full, tail, x);
        out[r + 1] = hsum(a1) + t1_tail_dot(w1, full, tail, x);
        r += 2;
    }
    if r < rows {
        let w0 = &w[r * rb..(r + 1) * rb];
        let mut a0 = zero;
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
        out[r] = hsum(a0) + t1_tail_dot(w0, full, tail, x);
    }
}

/// The NEON + dotprod (`sdot`) tile over decoded weights for [`matmul_t1_decoded`].
struct DotDecTile;

impl DecTile for DotDecTile {
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const i8; R],
        x: [*const i8; T],
        n: usize,
    ) -> [[i32; T]; R] {
        // SAFETY: forwarded contract (NEON + dotprod available, pointer extents).
        unsafe { dec_tile_dot::<R, T>(w, x, n) }
    }
}

/// See [`DecTile::tile`] (int32 `sdot` accumulators: exact for any `n`).
///
/// # Safety
/// As [`DecTile::tile`], with NEON and dotprod.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dec_tile_dot<const R: usize, const T: usize>(
    w: [*const i8; R],
    x: [*const i8; T],
    n: usize,
) -> [[i32; T]; R] {
    let mut acc = [[vdupq_n_s32(0); T]; R];
    let mut i = 0;
    while i < n {
        // SAFETY: i + 16 <= n: within the `n` readable bytes of every pointer (contract).
        unsafe {
            let wv: [int8x16_t; R] = core::array::from_fn(|r| vld1q_s8(w[r].add(i)));
            for t in 0..T {
                let xv = vld1q_s8(x[t].add(i));
                for r in 0..R {
                    acc[r][t] = sdot(acc[r][t], wv[r], xv);
                }
            }
        }
        i += 16;
    }
    let mut sums = [[0i32; T]; R];
    for r in 0..R {
        for t in 0..T {
            sums[r][t] = vaddvq_s32(acc[r][t]);
        }
    }
    sums
}
