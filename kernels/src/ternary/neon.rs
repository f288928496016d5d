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
//! `T1_160` ([`crate::layout::BlockT1`]): per 16 bytes and trit `k`, `q = b · 3^k` by one
//! 8-bit wrapping `vmulq_u8`, then `q · 3` widened to 16 bits (`vmull_u8`/`vmull_high_u8`) and
//! its high bytes gathered by `vuzp2q_u8` are the codes (the spec's decode, exactly), minus 1
//! for signed weights ([`t1_weights`]); trits 0–1 and 2–3 go in pairs (`q · 9`, whose high
//! byte `3·c_k + c_{k+1}` two `tbl` lookups split, [`t1_pair_weights`]). The matvec runs 2 rows per pass ([`matvec_t1_i8_neon`]); the prefill
//! matmul decodes each row chunk's weights once to bytes and runs 2-row × 4-token tiles over
//! them ([`matmul_t1_decoded`], shared with [`super::neon_dot`]).

use core::arch::aarch64::*;

use super::lut::{T1 as LutT1, T2 as LutT2};
use super::matmul_rows;
use super::neon_lut::matmul_lut_blocks;
use super::scalar::t1_tail_dot;
use crate::layout::{T1_BLOCK_ELEMS, T1_POW3, T2_BLOCK_ELEMS, t1_row_bytes, t2_row_bytes};

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
fn mla16(acc: int16x8_t, w: int8x16_t, x: int8x16_t) -> int16x8_t {
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
const TOKEN_CHUNK: usize = 64;

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
    let rb = t1_row_bytes(cols);
    assert_eq!(x.len(), cols, "matvec_t1_i8: x must have cols elements");
    assert_eq!(
        w.len(),
        out.len() * rb,
        "matvec_t1_i8: w must hold rows * row_bytes"
    );
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
