//! What the lookup-table prefill matmuls of AVX2 (`avx2/lut.rs`, whose doc derives the method)
//! and NEON (`neon_lut.rs`) share: the layouts' table shapes, the token blocks a call takes,
//! the int16 window, the row passes, the stack scratch and its pattern numbers, the
//! activations' block rows and the exact fallback for rows with an invalid code. Computing
//! pattern numbers, transposes, tables and lookups is SIMD and per architecture.

use core::mem::MaybeUninit;

use super::scalar::{matvec_t1_i8_scalar, matvec_t2_i8_scalar};
use crate::layout::{T1_BLOCK_ELEMS, T2_BLOCK_ELEMS, t1_row_bytes, t2_row_bytes};

/// Tokens per table entry and token block: one int16 lane each.
pub(super) const LUT_TOK: usize = 32;
/// A token block with at least this many tokens uses the tables; fewer pay more to build the
/// tables than the lookups save, and go through the register tiles.
pub(super) const LUT_MIN_TOK: usize = 16;
/// Token blocks one pass over the weights serves, at most: an entry holds every block's 32
/// lanes side by side, so each pattern number (its load and address arithmetic) and each row's
/// base-3 conversion serve them all. On Zen 3 (2B4T shapes, 64 tokens, best of 5 interleaved
/// runs) two blocks per pass took 0.92-1.0x the time of two passes (`T2_128` and `T1_160`
/// alike): the table loads, which two blocks do not share, bound the kernel.
pub(super) const LUT_TB: usize = 2;
/// Table entries held at once, the most of any layout (`T1_160`: 4 groups × 243).
const TAB_ENTRIES: usize = 972;
/// Bytes of the tables, the most of any layout and block count: `T1_160`, 4 groups × 243
/// entries × 64 bytes × 2 token blocks (124 KiB; `T2_128`: 8 × 81 × 64 × 2 = 83 KiB).
pub(super) const TAB_BYTES: usize = TAB_ENTRIES * 64 * LUT_TB;
/// Columns per block, the most of any layout (`T1_160`).
pub(super) const MAX_BLOCK_COLS: usize = T1_BLOCK_ELEMS;
/// Rows per pass, at most, with either token-block count: the pattern numbers (32 bytes) of
/// one block and the int16 sums (`64 TB` bytes) of each row live on the stack. Each pass builds
/// every table once, so taller passes build fewer: on Zen 3 (2B4T shapes, 64 tokens, pp128 in
/// 8 interleaved rounds), 2048-row passes took prefill to 1.08x the 1024-row ones by median
/// (7 rounds of 8 faster).
pub(super) const LUT_ROWS: usize = 2048;
/// Bytes of the int16 sums (on the stack): `64 TB` per row for [`LUT_ROWS`] rows.
pub(super) const ACC_BYTES: usize = LUT_ROWS * 64 * LUT_TB;
/// Bytes per block of either layout.
pub(super) const BLOCK_BYTES: usize = 32;

/// A ternary layout's table shape.
pub(super) trait LutShape {
    /// Weights per block (columns of one 32-byte block).
    const BLOCK_COLS: usize;
    /// Codes per byte (`G`): columns `j + 32 k`, `k < G`, of byte `j`.
    const CODES: usize;
    /// Table entries per group: `3^G`.
    const ENTRIES: usize;
    /// Groups (byte positions) whose tables are built together, a divisor of 32: `T2_128` 8
    /// (41 KiB per token block), `T1_160` 4 (61 KiB; on Zen 3, 4 and 8 groups were
    /// 1.2-1.3x the register tiles, 2 groups 1.1x, 1 group 0.7x).
    const GROUPS: usize;
    /// Blocks per int16 window when no activation of the tokens is -128 (1 otherwise).
    const WINDOW: usize;
    /// Whether a byte can hold an invalid code (flagged by bit 7 of its pattern number).
    const HAS_INVALID: bool;
    /// Bytes of one row of `cols` weights.
    fn row_bytes(cols: usize) -> usize;
    /// The exact matvec (`out: (rows,)`, scalar: only rows with an invalid code and empty rows
    /// take it).
    fn matvec(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]);
}

/// `T2_128`: 2 bits per code, 4 codes per byte.
pub(super) struct T2;
/// `T1_160`: 5 base-3 codes per byte.
pub(super) struct T1;

impl LutShape for T2 {
    const BLOCK_COLS: usize = T2_BLOCK_ELEMS;
    const CODES: usize = 4;
    const ENTRIES: usize = 81;
    const GROUPS: usize = 8;
    // an entry is at most 4 · 128 in magnitude, 4 · 127 without -128: one block sums to at
    // most 16384, two to 32512
    const WINDOW: usize = 2;
    const HAS_INVALID: bool = true;
    fn row_bytes(cols: usize) -> usize {
        t2_row_bytes(cols)
    }
    fn matvec(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
        matvec_t2_i8_scalar(w, cols, x, out)
    }
}

impl LutShape for T1 {
    const BLOCK_COLS: usize = T1_BLOCK_ELEMS;
    const CODES: usize = 5;
    const ENTRIES: usize = 243;
    const GROUPS: usize = 4;
    // one block sums to at most 5 · 128 · 32 = 20480; two of 5 · 127 would not fit int16
    const WINDOW: usize = 1;
    const HAS_INVALID: bool = false;
    fn row_bytes(cols: usize) -> usize {
        t1_row_bytes(cols)
    }
    fn matvec(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
        matvec_t1_i8_scalar(w, cols, x, out)
    }
}

/// The token blocks of an `n_tok`-token matmul that the tables take, from token 0: 64 tokens
/// per pass (`tb = 2`) while at least 48 remain, then one block of 16 to 32 (`tb = 1`); calls
/// `run(t0, nt, tb)` for each and returns the first token left to the register tiles (`n_tok`
/// when none is).
pub(super) fn token_blocks(n_tok: usize, mut run: impl FnMut(usize, usize, usize)) -> usize {
    let mut t0 = 0;
    loop {
        let rest = n_tok - t0;
        let (nt, tb) = if rest >= LUT_TOK + LUT_MIN_TOK {
            (rest.min(2 * LUT_TOK), 2)
        } else if rest >= LUT_MIN_TOK {
            (rest.min(LUT_TOK), 1)
        } else {
            return t0;
        };
        run(t0, nt, tb);
        t0 += nt;
    }
}

/// Blocks per int16 window for the activations `x` of one call's tokens: [`LutShape::WINDOW`],
/// or 1 if any of them is -128 (never, from the absmax quantizer). The minimum is a reduction
/// the compiler vectorizes (`pminsb`, `sminv`); `contains` called a word-at-a-time `memchr`
/// (0.8 % of a pp128 at 1 thread).
#[inline]
pub(super) fn window<L: LutShape>(x: &[i8]) -> usize {
    if L::WINDOW == 1 || x.iter().fold(i8::MAX, |m, &v| m.min(v)) == i8::MIN {
        1
    } else {
        L::WINDOW
    }
}

/// Rows per pass: passes of equal size, at most `max_rows`, so every pass pays the same table
/// builds.
pub(super) fn pass_rows(rows: usize, max_rows: usize) -> usize {
    rows.div_ceil(rows.div_ceil(max_rows).max(1))
}

/// The stack scratch of one table-matmul call, 64-byte aligned: the tables ([`TAB_BYTES`]),
/// the pattern numbers of one block for each row of a pass ([`LUT_ROWS`] rows of
/// [`BLOCK_BYTES`]) and the int16 sums ([`ACC_BYTES`]), about 470 KiB. Every call writes each
/// byte before it reads it (tables: every entry of the groups in use, before the lookups;
/// pattern numbers: the pass's rows, per block; sums: a row's first chunk of a window stores
/// without loading), so it stays uninitialized instead of zero-filled per call.
#[repr(C, align(64))]
pub(super) struct Scratch([u8; TAB_BYTES + LUT_ROWS * BLOCK_BYTES + ACC_BYTES]);

/// Pointers to the tables, the pattern numbers and the sums of `s` (see [`Scratch`]).
pub(super) fn scratch_parts(s: &mut MaybeUninit<Scratch>) -> (*mut u8, *mut u8, *mut u8) {
    let p = s.as_mut_ptr().cast::<u8>();
    (
        p,
        p.wrapping_add(TAB_BYTES),
        p.wrapping_add(TAB_BYTES + LUT_ROWS * BLOCK_BYTES),
    )
}

/// The pattern numbers of groups `j0 .. j0 + L::GROUPS` of row `r` of the scratch's pattern
/// numbers at `ip`, group `j0 + i` in bits `8 i ..`: one 8-byte read (`T2_128`, 8 groups) or
/// 4-byte read (`T1_160`).
///
/// # Safety
/// `ip` must be [`scratch_parts`]' pattern numbers, row `r < LUT_ROWS` written for the
/// current block, and `j0 + L::GROUPS <= BLOCK_BYTES`.
#[inline(always)]
pub(super) unsafe fn pattern_word<L: LutShape>(ip: *const u8, r: usize, j0: usize) -> u64 {
    // SAFETY: the caller's contract: GROUPS initialized bytes at row r, byte j0.
    unsafe {
        let p = ip.add(r * BLOCK_BYTES + j0);
        if L::GROUPS == 8 {
            p.cast::<u64>().read_unaligned()
        } else {
            p.cast::<u32>().read_unaligned() as u64
        }
    }
}

/// Scratch rows for [`block_rows`]: a zero-padded copy of one block's activations.
pub(super) type BlockScratch = [[i8; MAX_BLOCK_COLS]; LUT_TOK];

/// Row `t` holds `x[t0 + t][B b + c]` for the columns `c < B` (`B = L::BLOCK_COLS`) of block
/// `b`: the token-major input of the SIMD transposes, every row at least `B` bytes long. A
/// whole block (all [`LUT_TOK`] tokens, `B` columns inside `cols`) is read in place from `x`;
/// otherwise its tokens `t < nt` and columns up to `cols` are copied into `xb` and the rest
/// of `xb` is zeroed, so padding columns and missing tokens contribute nothing.
pub(super) fn block_rows<'a, L: LutShape>(
    x: &'a [i8],
    cols: usize,
    t0: usize,
    nt: usize,
    b: usize,
    xb: &'a mut BlockScratch,
) -> [&'a [i8]; LUT_TOK] {
    let c0 = b * L::BLOCK_COLS;
    if nt == LUT_TOK && c0 + L::BLOCK_COLS <= cols {
        return core::array::from_fn(|t| {
            let s = (t0 + t) * cols + c0;
            &x[s..s + L::BLOCK_COLS]
        });
    }
    let cn = (cols - c0).min(L::BLOCK_COLS);
    for (t, row) in xb.iter_mut().enumerate() {
        row.fill(0);
        if t < nt {
            let s = (t0 + t) * cols + c0;
            row[..cn].copy_from_slice(&x[s..s + cn]);
        }
    }
    let xb: &'a BlockScratch = xb;
    core::array::from_fn(|t| &xb[t][..])
}

/// Rows `r0 .. r0 + nr`, tokens `t0 .. t0 + nt` of the matmul by the exact matvec, token by
/// token: for a pass with an invalid code (a corrupt file), or with no columns.
pub(super) fn fallback<L: LutShape>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    (t0, nt): (usize, usize),
    (r0, nr): (usize, usize),
    out: &mut [i32],
) {
    let rb = L::row_bytes(cols);
    let mut col = [0i32; LUT_ROWS];
    for t in t0..t0 + nt {
        let wt = &w[r0 * rb..(r0 + nr) * rb];
        L::matvec(wt, cols, &x[t * cols..(t + 1) * cols], &mut col[..nr]);
        for (r, &v) in col[..nr].iter().enumerate() {
            out[(r0 + r) * n_tok + t] = v;
        }
    }
}
