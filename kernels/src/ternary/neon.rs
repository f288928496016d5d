//! AArch64 NEON (no dotprod) ternary × int8 matvec on the `T2_128` layout.
//!
//! Per block of 128 weights: two 16-byte loads of codes; one shift and three masks give the
//! codes `c ∈ {0,1,2}` (code 3 reads as +2, as in scalar) of weights `32k .. 32k+16` and
//! `32k+16 .. 32k+32`, two of them in place as `4c` and `16c` ([`MvSums`]).
//! `vmlal_s8`/`vmlal_high_s8` widen the products to int16 and `vpadalq_s16` folds them into
//! int32 once per block; `Σ (c − 1)·x = Σ c·x − Σ x`, with `Σ x` once per call. Exact for the
//! full int8 range.
//!
//! The prefill matmul runs blocks of at least 16 tokens through lookup tables
//! ([`super::neon_lut`]); the rest is register-tiled ([`matmul_tiled`], shared with
//! [`super::neon_dot`]):
//! a tile of 2 weight rows × 4 tokens loads and decodes each 16-byte weight vector once and
//! uses it for all 4 tokens, and loads each 16-byte activation vector once for both rows.
//! Its int16 sums run over [`I16_BLOCKS`] blocks before widening.
//!
//!
//! `T1_160`: [`super::neon_t1`].

use core::arch::aarch64::*;

use super::lut::T2 as LutT2;
use super::matmul_rows;
use super::matvec_shape;
use super::neon_lut::matmul_lut_blocks;
use crate::layout::{T2_BLOCK_ELEMS, TernaryLayout, t2_row_bytes};

/// Safe wrapper: lengths are checked here, the CPU feature by the caller of
/// [`crate::select`] (whose contract guarantees NEON before this can be reached).
pub(crate) fn matvec_t2_i8_neon(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    matvec_shape(TernaryLayout::T2_128, w, cols, x, out.len());
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted NEON (their `# Safety` contract);
    // the lengths were checked above.
    unsafe { matvec_impl(w, cols, x, out) }
}

/// Safe wrapper for the prefill matmul (`x: (n_tok, cols)`, `out: (rows, n_tok)`; see
/// [`super::scalar::matmul_t2_i8_scalar`]): lookup tables for blocks of at least 16 tokens,
/// register tiles of 2 rows × 4 tokens for the rest. Lengths are checked by [`matmul_tiled`]
/// as in scalar.
pub(crate) fn matmul_t2_i8_neon(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted NEON (their `# Safety` contract),
    // which is all `NeonTile::tile` needs; `matmul_tiled` checks the shapes.
    unsafe { matmul_tiled::<NeonTile>(w, cols, x, n_tok, out) }
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
pub(super) fn mla16(acc: int16x8_t, w: int8x16_t, x: int8x16_t) -> int16x8_t {
    vmlal_high_s8(vmlal_s8(acc, vget_low_s8(w), vget_low_s8(x)), w, x)
}

/// Blocks between two folds of a matvec row's scaled sums (`4c`, `16c`, of either NEON
/// variant in [`matvec_codes`]) into its total: a lane of the `16c` sums gains at most 49152 per
/// block, so 256 blocks stay far inside int32 and the shifts that fold them are exact.
pub(super) const MV_FOLD_BLOCKS: usize = 256;

/// One row's int32 sums of the `T2_128` matvec's code products, as a kernel variant keeps
/// them (NEON: [`MvSums`]; NEON + dotprod: `super::neon_dot::MvAcc`), for the shared driver
/// [`matvec_codes`].
pub(super) trait MvRowSums: Copy {
    /// All sums zero.
    ///
    /// # Safety
    /// NEON must be available.
    unsafe fn zero() -> Self;
    /// The sums plus one full block's products `c · x` (its codes `c`, not `c - 1`).
    ///
    /// # Safety
    /// The variant's CPU features must be available; `q` and `xs` must point at the block's
    /// 32 bytes and its 128 activations.
    unsafe fn add_block(self, q: *const u8, xs: *const i8) -> Self;
    /// `Σ c·x` of the sums (wrapping int32; the scaled sums, multiples of 4 or 16, are
    /// shifted back exactly).
    ///
    /// # Safety
    /// NEON must be available.
    unsafe fn fold_sum(self) -> i32;
}

/// The codes of one full `T2_128` block at `q`, as both NEON matvecs dot them: vector `k` pairs
/// with activations `16 k .. 16 k + 16` of the block. Byte `j` holds columns `j, 32 + j,
/// 64 + j, 96 + j` in bits 6-7, 4-5, 2-3 and 0-1, so for each 16-byte half: `c0` (shifted
/// down), `16 c1`, `4 c2` (masked in place) and `c3`, one shift and three masks (shifting each
/// code down and subtracting 1 took three shifts, four masks and four subtractions). Vectors
/// 0-1 and 6-7 are `c`, 2-3 are `16 c` (at most 48: still an int8), 4-5 are `4 c`.
///
/// # Safety
/// `q` must point at 32 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn t2_block_codes(q: *const u8) -> [int8x16_t; 8] {
    let s8 = vreinterpretq_s8_u8;
    // SAFETY: the caller guarantees 32 readable bytes at `q`.
    let (q0, q1) = unsafe { (vld1q_u8(q), vld1q_u8(q.add(16))) };
    let (m3, m12, m48) = (vdupq_n_u8(0x03), vdupq_n_u8(0x0C), vdupq_n_u8(0x30));
    [
        s8(vshrq_n_u8::<6>(q0)),
        s8(vshrq_n_u8::<6>(q1)),
        s8(vandq_u8(q0, m48)),
        s8(vandq_u8(q1, m48)),
        s8(vandq_u8(q0, m12)),
        s8(vandq_u8(q1, m12)),
        s8(vandq_u8(q0, m3)),
        s8(vandq_u8(q1, m3)),
    ]
}

/// The NEON matvec's sums, by how the codes enter: `c` (`c0`, bits 6-7 shifted down, and `c3`,
/// bits 0-1), `4c` (`c2`, bits 2-3 masked in place) and `16c` (`c1`, bits 4-5 masked in
/// place).
#[derive(Clone, Copy)]
struct MvSums {
    c: int32x4_t,
    c2x4: int32x4_t,
    c1x16: int32x4_t,
}

impl MvRowSums for MvSums {
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn zero() -> MvSums {
        let z = vdupq_n_s32(0);
        MvSums {
            c: z,
            c2x4: z,
            c1x16: z,
        }
    }

    /// Products of [`t2_block_codes`] widened to int16 by `vmlal_s8` / `vmlal_high_s8` and
    /// folded into the sums by `vpadalq_s16`. Per int16 lane and block: `c` sums 8 products of
    /// at most 3 · 128 (3072), `4c` sums 4 of 12 · 128 (6144), `16c` sums 4 of 48 · 128
    /// (24576), all inside int16.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn add_block(self, q: *const u8, xs: *const i8) -> MvSums {
        // SAFETY: the caller guarantees 32 readable bytes at `q` and 128 at `xs`.
        unsafe {
            let v = t2_block_codes(q);
            let x = |k: usize| vld1q_s8(xs.add(16 * k));
            let z = vdupq_n_s16(0);
            let c = mla16(mla16(z, v[0], x(0)), v[1], x(1));
            let c = mla16(mla16(c, v[6], x(6)), v[7], x(7));
            let c16 = mla16(mla16(z, v[2], x(2)), v[3], x(3));
            let c4 = mla16(mla16(z, v[4], x(4)), v[5], x(5));
            MvSums {
                c: vpadalq_s16(self.c, c),
                c2x4: vpadalq_s16(self.c2x4, c4),
                c1x16: vpadalq_s16(self.c1x16, c16),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn fold_sum(self) -> i32 {
        vaddvq_s32(vaddq_s32(
            self.c,
            vaddq_s32(vshrq_n_s32::<2>(self.c2x4), vshrq_n_s32::<4>(self.c1x16)),
        ))
    }
}

/// `Σ c·x` of `R` rows over the `full` blocks, sharing the activation loads, folded every
/// [`MV_FOLD_BLOCKS`] blocks (wrapping int32: the final `Σ c·x − Σ x` equals scalar's sum
/// whenever that fits).
///
/// # Safety
/// `A`'s CPU features; each row holds `full * 32` bytes and `x` at least `full * 128`.
#[inline(always)]
unsafe fn rows_code_dots<A: MvRowSums, const R: usize>(
    rows: [&[u8]; R],
    x: &[i8],
    full: usize,
) -> [i32; R] {
    let mut tot = [0i32; R];
    let mut b0 = 0;
    while b0 < full {
        let b1 = (b0 + MV_FOLD_BLOCKS).min(full);
        // SAFETY: A's features (the caller's contract).
        let mut acc = [unsafe { A::zero() }; R];
        for b in b0..b1 {
            // SAFETY: block b < full lies within every row and within x (the contract).
            unsafe {
                let xs = x.as_ptr().add(b * T2_BLOCK_ELEMS);
                for i in 0..R {
                    acc[i] = acc[i].add_block(rows[i].as_ptr().add(b * 32), xs);
                }
            }
        }
        for i in 0..R {
            // SAFETY: as above.
            tot[i] = tot[i].wrapping_add(unsafe { acc[i].fold_sum() });
        }
        b0 = b1;
    }
    tot
}

/// The `T2_128` matvec of both NEON variants (`out: (rows,)`, shapes checked by the safe
/// wrappers): `Σ c·x` of two rows at a time (sharing the activation loads) through `A`, minus
/// `Σ x` once per call (`Σ (c − 1)·x = Σ c·x − Σ x`), plus the scalar partial last block.
/// Inlined into each variant's `#[target_feature]` function, where `A`'s blocks inline too.
///
/// # Safety
/// `A`'s CPU features; `w` holds `out.len()` rows of `t2_row_bytes(cols)` bytes and `x` holds
/// `cols` values.
#[inline(always)]
pub(super) unsafe fn matvec_codes<A: MvRowSums>(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    let full = cols / T2_BLOCK_ELEMS;
    let tail = cols - full * T2_BLOCK_ELEMS;
    let rows = out.len();
    let sum_x = x[..full * T2_BLOCK_ELEMS]
        .iter()
        .fold(0i32, |s, &v| s.wrapping_add(v as i32));
    let row = |r: usize| &w[r * rb..(r + 1) * rb];
    let put = |r: usize, s: i32| {
        s.wrapping_sub(sum_x)
            .wrapping_add(tail_dot(row(r), full, tail, x))
    };
    let mut r = 0;
    while r + 2 <= rows {
        // SAFETY: A's features (the caller's contract); rows r, r + 1 < rows hold
        // rb >= full * 32 bytes, and x holds cols >= full * 128.
        let s = unsafe { rows_code_dots::<A, 2>([row(r), row(r + 1)], x, full) };
        out[r] = put(r, s[0]);
        out[r + 1] = put(r + 1, s[1]);
        r += 2;
    }
    if r < rows {
        // SAFETY: as above, one row.
        let s = unsafe { rows_code_dots::<A, 1>([row(r)], x, full) };
        out[r] = put(r, s[0]);
    }
}

#[target_feature(enable = "neon")]
unsafe fn matvec_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: NEON (this function's) is all MvSums needs; shapes as the caller's.
    unsafe { matvec_codes::<MvSums>(w, cols, x, out) }
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

/// A register-tile kernel for [`matmul_tiled`]: `R` weight rows × `T` tokens over the full
/// 128-weight blocks.
pub(super) trait Tile {
    /// Returns `Σ w·x` over the first `full` blocks for every (row `i`, token `t`).
    ///
    /// # Safety
    /// The CPU features of the implementation must be available; `w[i]` must point at
    /// `full * 32` readable bytes and `x[t]` at `full * 128` readable bytes.
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const u8; R],
        x: [*const i8; T],
        full: usize,
    ) -> [[i32; T]; R];
}

/// Tokens per outer chunk of [`matmul_tiled`]: the chunk's activations (64 × `cols` bytes) stay
/// in cache while every weight row pair streams past them once.
pub(super) const TOKEN_CHUNK: usize = 64;

/// The prefill matmul of both NEON variants: `out[r * n_tok + t] = row r · token t`. Blocks
/// of at least 16 tokens go through the lookup tables ([`super::neon_lut`]); the rest in
/// tiles of 2 rows × 4 tokens (the last odd row in tiles of 1 row, the last 1..3 tokens of a
/// chunk in one narrower tile). `K::tile` sums the full blocks; the partial last block is added
/// per (row, token) by [`tail_dot`], as in the matvec.
///
/// # Panics
/// On a shape mismatch, as [`super::scalar::matmul_t2_i8_scalar`].
///
/// # Safety
/// The CPU features `K::tile` needs must be available.
pub(super) unsafe fn matmul_tiled<K: Tile>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) {
    let Some(rows) = matmul_rows(w, cols, x, n_tok, out, t2_row_bytes(cols)) else {
        return;
    };
    let rb = t2_row_bytes(cols);
    let full = cols / T2_BLOCK_ELEMS;
    let tail = cols - full * T2_BLOCK_ELEMS;
    // Rows and tokens as checked slices: row r has rb >= full * 32 bytes, token t has
    // cols >= full * 128 (the pointer contract of `Tile::tile`).
    let wrow = |r: usize| &w[r * rb..(r + 1) * rb];
    let xrow = |t: usize| &x[t * cols..(t + 1) * cols];
    // SAFETY: NEON is part of the caller's contract (every `Tile` needs it); shapes checked.
    let mut t0 = unsafe { matmul_lut_blocks::<LutT2>(w, cols, x, n_tok, out) };
    while t0 < n_tok {
        let tend = (t0 + TOKEN_CHUNK).min(n_tok);
        let mut r = 0;
        while r < rows {
            let nr = if rows - r >= 2 { 2 } else { 1 };
            let mut t = t0;
            while t < tend {
                let nt = (tend - t).min(4);
                macro_rules! run {
                    ($R:literal, $T:literal) => {{
                        // SAFETY: rows r..r+$R < rows and tokens t..t+$T < n_tok, so the
                        // pointers come from `wrow`/`xrow` slices of rb >= full * 32 and
                        // cols >= full * 128 bytes; the CPU features are the caller's contract.
                        let s = unsafe {
                            K::tile::<$R, $T>(
                                core::array::from_fn(|i| wrow(r + i).as_ptr()),
                                core::array::from_fn(|j| xrow(t + j).as_ptr()),
                                full,
                            )
                        };
                        for i in 0..$R {
                            for j in 0..$T {
                                out[(r + i) * n_tok + t + j] =
                                    s[i][j] + tail_dot(wrow(r + i), full, tail, xrow(t + j));
                            }
                        }
                    }};
                }
                match (nr, nt) {
                    (2, 4) => run!(2, 4),
                    (2, 3) => run!(2, 3),
                    (2, 2) => run!(2, 2),
                    (2, _) => run!(2, 1),
                    (_, 4) => run!(1, 4),
                    (_, 3) => run!(1, 3),
                    (_, 2) => run!(1, 2),
                    _ => run!(1, 1),
                }
                t += nt;
            }
            r += nr;
        }
        t0 = tend;
    }
}

/// Blocks whose int16 sums [`NeonTile`] keeps before widening: a block adds 16 products per
/// int16 lane, each in [-256, 254] (`w = c - 1 ∈ [-1, 2]` with code 3 as +2, `x ∈ [-128, 127]`),
/// so 8 blocks stay in [-32768, 32512]. (The lanes wrap modulo 2^16, so only the final sum
/// must fit.)
const I16_BLOCKS: usize = 8;

/// The NEON (`vmull_s8`/`vmlal_high_s8`) tile.
struct NeonTile;

impl Tile for NeonTile {
    unsafe fn tile<const R: usize, const T: usize>(
        w: [*const u8; R],
        x: [*const i8; T],
        full: usize,
    ) -> [[i32; T]; R] {
        // SAFETY: forwarded contract (NEON available, pointer extents).
        unsafe { tile_neon::<R, T>(w, x, full) }
    }
}

/// See [`Tile::tile`].
///
/// # Safety
/// As [`Tile::tile`], with NEON.
#[target_feature(enable = "neon")]
unsafe fn tile_neon<const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const i8; T],
    full: usize,
) -> [[i32; T]; R] {
    let mut acc = [[vdupq_n_s32(0); T]; R];
    let mut b = 0;
    while b < full {
        let bend = (b + I16_BLOCKS).min(full);
        let mut s = [[vdupq_n_s16(0); T]; R];
        for bb in b..bend {
            // SAFETY: bb < full: 32 readable bytes at w[i] + 32 bb and 128 at x[t] + 128 bb
            // (the contract).
            unsafe {
                let mut q0 = [vdupq_n_u8(0); R];
                let mut q1 = [vdupq_n_u8(0); R];
                for i in 0..R {
                    q0[i] = vld1q_u8(w[i].add(bb * 32));
                    q1[i] = vld1q_u8(w[i].add(bb * 32 + 16));
                }
                // Weights `off .. off + 16` of the block: decode once per row, use for T tokens.
                macro_rules! step {
                    (@mla $off:expr, $wv:ident) => {
                        for t in 0..T {
                            let xv = vld1q_s8(x[t].add(bb * T2_BLOCK_ELEMS + $off));
                            for i in 0..R {
                                s[i][t] = mla16(s[i][t], $wv[i], xv);
                            }
                        }
                    };
                    ($off:expr, $q:ident, $shift:literal) => {{
                        let mut wv = [vdupq_n_s8(0); R];
                        for i in 0..R {
                            wv[i] = decode(vshrq_n_u8::<$shift>($q[i]));
                        }
                        step!(@mla $off, wv);
                    }};
                    ($off:expr, $q:ident) => {{
                        let mut wv = [vdupq_n_s8(0); R];
                        for i in 0..R {
                            wv[i] = decode($q[i]);
                        }
                        step!(@mla $off, wv);
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
        for i in 0..R {
            for t in 0..T {
                acc[i][t] = vpadalq_s16(acc[i][t], s[i][t]);
            }
        }
        b = bend;
    }
    let mut sums = [[0i32; T]; R];
    for i in 0..R {
        for t in 0..T {
            sums[i][t] = vaddvq_s32(acc[i][t]);
        }
    }
    sums
}
