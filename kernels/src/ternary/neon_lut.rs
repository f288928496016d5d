//! The NEON prefill matmul on lookup tables vectorized over tokens, for both ternary layouts,
//! used by both NEON variants (it needs no dotprod).
//!
//! The design is the AVX2 one (`ternary/avx2/lut.rs`, whose doc derives the tables, the pattern
//! numbers and the int16 bounds), on 128-bit vectors: for a block of [`LUT_TOK`] tokens, per
//! weight byte position (a *group*) of the current weight block, a table of all `3^G` int16
//! vectors `E[p][t] = Σ_k (c_k − 1) · x[t][col_k]` (`G` = 4 codes per `T2_128` byte, 5 per
//! `T1_160` byte); every row then adds the entry its byte's pattern number `p` selects: four
//! 16-byte loads and four `add`s per `G` columns × 32 tokens, where the register tiles spend
//! one `sdot` (or two `smlal`) per 16 multiply-adds and decode every weight once per 4 tokens.
//! One pass over the weights serves up to two token blocks (an entry holds both blocks' lanes
//! side by side), so each pattern number serves 64 tokens.
//!
//! Pattern numbers: `T2_128` bytes by two `tbl` lookups (high nibble `27 c0 + 9 c1`, low
//! nibble `3 c2 + c3`, a code 3 sets bit 7 through the saturating add, and a row tile holding
//! one is recomputed by the exact matvec); `T1_160` bytes `b` as `⌊243 b / 256⌋` (`umull` +
//! `shrn`), whose base-3 digits are the byte's codes.
//!
//! Numerics are exact integer sums, bit-identical to scalar on any bytes: a `T2_128` row sums
//! one block (32 entries of |E| ≤ 512) in int16, two blocks when no activation of the tokens is
//! -128 (|E| ≤ 508, ≤ 32512); a `T1_160` row one block (≤ 20480).
//!
//! Speed: not measured on ARM hardware (this project's machines have none; qemu proves only
//! exactness). It is chosen over the register tiles by instruction count (per 128
//! multiply-adds: four loads and four adds here, against eight `sdot` plus weight decoding,
//! or sixteen `smlal`), as bitnet.cpp's TL1 and T-MAC chose table lookups on ARM.

use core::arch::aarch64::*;
use core::mem::MaybeUninit;

use super::lut::{
    ACC_BYTES, BLOCK_BYTES, BlockScratch, LUT_ROWS, LUT_TB, LUT_TOK, LutShape, MAX_BLOCK_COLS,
    Scratch, T1, T2, TAB_BYTES, block_rows, fallback, pass_rows, pattern_word, scratch_parts,
    token_blocks, window,
};

/// A ternary layout the NEON lookup-table matmul runs on: its table shape and pattern numbers.
pub(super) trait LutLayout: LutShape {
    /// Pattern numbers of 16 weight bytes.
    ///
    /// # Safety
    /// NEON must be available.
    unsafe fn patterns(q: uint8x16_t) -> uint8x16_t;
}

impl LutLayout for T2 {
    #[inline]
    unsafe fn patterns(q: uint8x16_t) -> uint8x16_t {
        // SAFETY: the caller guarantees NEON.
        unsafe { t2_patterns(q) }
    }
}

impl LutLayout for T1 {
    #[inline]
    unsafe fn patterns(q: uint8x16_t) -> uint8x16_t {
        // SAFETY: the caller guarantees NEON.
        unsafe { t1_patterns(q) }
    }
}

/// Base-3 pattern numbers of 16 `T2_128` bytes (`27 c0 + 9 c1 + 3 c2 + c3`, 0..81); a byte
/// holding a code 3 gets bit 7 set (saturating add of the two nibbles' values).
#[inline]
#[target_feature(enable = "neon")]
fn t2_patterns(q: uint8x16_t) -> uint8x16_t {
    const X: u8 = 128;
    // high nibble c0 << 2 | c1 → 27 c0 + 9 c1; low nibble c2 << 2 | c3 → 3 c2 + c3
    const HI: [u8; 16] = [0, 9, 18, X, 27, 36, 45, X, 54, 63, 72, X, X, X, X, X];
    const LO: [u8; 16] = [0, 1, 2, X, 3, 4, 5, X, 6, 7, 8, X, X, X, X, X];
    // SAFETY: the loads read the two 16-byte constants.
    let (ht, lt) = unsafe { (vld1q_u8(HI.as_ptr()), vld1q_u8(LO.as_ptr())) };
    let hi = vqtbl1q_u8(ht, vshrq_n_u8::<4>(q));
    let lo = vqtbl1q_u8(lt, vandq_u8(q, vdupq_n_u8(15)));
    vqaddq_u8(hi, lo)
}

/// `⌊243 b / 256⌋` of 16 `T1_160` bytes: the base-3 number of the codes every variant decodes.
#[inline]
#[target_feature(enable = "neon")]
fn t1_patterns(q: uint8x16_t) -> uint8x16_t {
    // the high byte of each 16-bit product
    let lo = vmull_u8(vget_low_u8(q), vdup_n_u8(243));
    let hi = vmull_high_u8(q, vdupq_n_u8(243));
    vcombine_u8(vshrn_n_u16::<8>(lo), vshrn_n_u16::<8>(hi))
}

#[repr(C, align(64))]
struct Aligned<T>(T);

/// Activations of one weight block, transposed: `[column][token]` as int16.
type Xt = Aligned<[[i16; LUT_TOK]; MAX_BLOCK_COLS]>;

/// Transpose 16 rows of 16 bytes (`r[i]` = row i) into 16 columns (`out[j]` byte i = `r[i]`
/// byte j): `trn1`/`trn2` at 8, 16, 32 and 64 bits, each stage pairing vectors `2^s` apart.
#[inline]
#[target_feature(enable = "neon")]
fn transpose16(r: [uint8x16_t; 16]) -> [uint8x16_t; 16] {
    use core::array::from_fn;
    // after stage s, vector 2^s g + i (i < 2^s) holds at byte 2^s m + u the element
    // r[2^s g + u][2^s m + i]
    let a: [uint8x16_t; 16] = from_fn(|i| {
        let (p, q) = (r[i & !1], r[i | 1]);
        if i & 1 == 0 {
            vtrn1q_u8(p, q)
        } else {
            vtrn2q_u8(p, q)
        }
    });
    let b: [uint8x16_t; 16] = from_fn(|i| {
        let (p, q) = (
            vreinterpretq_u16_u8(a[i & !2]),
            vreinterpretq_u16_u8(a[i | 2]),
        );
        vreinterpretq_u8_u16(if i & 2 == 0 {
            vtrn1q_u16(p, q)
        } else {
            vtrn2q_u16(p, q)
        })
    });
    let c: [uint8x16_t; 16] = from_fn(|i| {
        let (p, q) = (
            vreinterpretq_u32_u8(b[i & !4]),
            vreinterpretq_u32_u8(b[i | 4]),
        );
        vreinterpretq_u8_u32(if i & 4 == 0 {
            vtrn1q_u32(p, q)
        } else {
            vtrn2q_u32(p, q)
        })
    });
    from_fn(|i| {
        let (p, q) = (
            vreinterpretq_u64_u8(c[i & !8]),
            vreinterpretq_u64_u8(c[i | 8]),
        );
        vreinterpretq_u8_u64(if i & 8 == 0 {
            vtrn1q_u64(p, q)
        } else {
            vtrn2q_u64(p, q)
        })
    })
}

/// `xt[c][t] = x[t0 + t][B b + c]` as int16 for the tokens `t < nt` and columns `c < cn` of
/// block `b` (`B = L::BLOCK_COLS` columns), zero elsewhere (so padding columns and missing
/// tokens contribute nothing); `xb` is scratch for a block that is not whole.
#[target_feature(enable = "neon")]
fn transpose_block<L: LutLayout>(
    x: &[i8],
    cols: usize,
    (t0, nt): (usize, usize),
    b: usize,
    xb: &mut BlockScratch,
    xt: &mut Xt,
) {
    let rows = block_rows::<L>(x, cols, t0, nt, b, xb);
    for h in 0..LUT_TOK / 16 {
        for ct in 0..L::BLOCK_COLS / 16 {
            // SAFETY: every row holds at least BLOCK_COLS bytes (`block_rows`), and
            // 16 ct + 16 <= BLOCK_COLS.
            let r: [uint8x16_t; 16] = core::array::from_fn(|i| unsafe {
                vld1q_u8(rows[16 * h + i].as_ptr().add(16 * ct).cast())
            });
            for (j, v) in transpose16(r).into_iter().enumerate() {
                let v = vreinterpretq_s8_u8(v);
                let d = &mut xt.0[16 * ct + j][16 * h..16 * h + 16];
                // SAFETY: d holds 16 int16 lanes.
                unsafe {
                    vst1q_s16(d.as_mut_ptr(), vmovl_s8(vget_low_s8(v)));
                    vst1q_s16(d.as_mut_ptr().add(8), vmovl_high_s8(v));
                }
            }
        }
    }
}

/// Tables of groups `j0 .. j0 + L::GROUPS` of the current block: entry `i * ENTRIES + p`
/// (`64 TB` bytes at `64 TB (i * ENTRIES + p)`: token block `k`'s 32 int16 lanes at `64 k`) is
/// `Σ_k (c_k − 1) · xt[j0 + i + 32 k]` for the codes of pattern `p` (`c_0` most significant).
/// The last two codes form the low 9 patterns, the others the high ones, so each entry is one
/// add.
///
/// # Safety
/// `tp` must be valid for writes of [`TAB_BYTES`] bytes.
#[target_feature(enable = "neon")]
unsafe fn build_tables<L: LutLayout, const TB: usize>(xt: &[Xt; TB], j0: usize, tp: *mut u8) {
    let z = vdupq_n_s16(0);
    for i in 0..L::GROUPS {
        let j = j0 + i;
        for (k, xt) in xt.iter().enumerate() {
            for v in 0..LUT_TOK / 8 {
                // (c − 1) · x for c = 0, 1, 2, of the group's column c
                let tri = |c: usize| {
                    // SAFETY: row j + 32 c < BLOCK_COLS of xt, lanes 8 v .. 8 v + 8 < 32.
                    let a = unsafe { vld1q_s16(xt.0[j + 32 * c].as_ptr().add(8 * v)) };
                    [vnegq_s16(a), z, a]
                };
                let g = L::CODES;
                let (q0, q1) = (tri(g - 2), tri(g - 1));
                let lo: [int16x8_t; 9] = core::array::from_fn(|l| vaddq_s16(q0[l / 3], q1[l % 3]));
                let (p0, p1) = (tri(0), tri(1));
                let p2 = if g == 5 { tri(2) } else { [z; 3] };
                for h in 0..L::ENTRIES / 9 {
                    let hi = if g == 5 {
                        vaddq_s16(vaddq_s16(p0[h / 9], p1[h / 3 % 3]), p2[h % 3])
                    } else {
                        vaddq_s16(p0[h / 3], p1[h % 3])
                    };
                    for (l, lv) in lo.iter().enumerate() {
                        let e = (i * L::ENTRIES + 9 * h + l) * 64 * TB + 64 * k + 16 * v;
                        // SAFETY: entry < GROUPS · ENTRIES, so e + 16 <= TAB_BYTES (the
                        // caller's const assertion).
                        unsafe { vst1q_s16(tp.add(e).cast(), vaddq_s16(hi, *lv)) };
                    }
                }
            }
        }
    }
}

/// The token blocks of the matmul `out[r * n_tok + t] = Σ_c w[r, c] · x[t, c]` that the
/// tables take ([`token_blocks`]); returns the first token left for the register tiles
/// (`n_tok` when none is).
///
/// Stack: about 470 KiB while a block runs (tables, pattern numbers and int16 sums of up to
/// 2048 rows).
///
/// # Safety
/// NEON must be available. Shapes as checked by [`super::matmul_rows`]: `w` holds
/// `rows * row_bytes`, `x: (n_tok, cols)`, `out: (rows, n_tok)`.
#[target_feature(enable = "neon")]
pub(super) unsafe fn matmul_lut_blocks<L: LutLayout>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) -> usize {
    token_blocks(n_tok, |t0, nt, tb| {
        if tb == 2 {
            matmul_lut::<L, 2>(w, cols, x, n_tok, t0, nt, out)
        } else {
            matmul_lut::<L, 1>(w, cols, x, n_tok, t0, nt, out)
        }
    })
}

/// Tokens `t0 .. t0 + nt` (`nt <= TB · LUT_TOK`) of the matmul, every row, `TB` token blocks
/// per pass over the weights. Shapes as for [`matmul_lut_blocks`].
#[target_feature(enable = "neon")]
fn matmul_lut<L: LutLayout, const TB: usize>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    t0: usize,
    nt: usize,
    out: &mut [i32],
) {
    const {
        assert!(BLOCK_BYTES.is_multiple_of(L::GROUPS) && (L::GROUPS == 8 || L::GROUPS == 4));
        assert!(TB >= 1 && TB <= LUT_TB);
        assert!(LUT_ROWS * 64 * TB <= ACC_BYTES);
        assert!(L::GROUPS * L::ENTRIES * 64 * TB <= TAB_BYTES);
    };
    let rows = out.len() / n_tok;
    let rb = L::row_bytes(cols);
    let nb = rb / BLOCK_BYTES;
    let mut xt = [const { Aligned([[0i16; LUT_TOK]; MAX_BLOCK_COLS]) }; TB];
    let mut scratch = MaybeUninit::<Scratch>::uninit();
    let (tp, ip, ap0) = scratch_parts(&mut scratch);
    let mut xb = [[0i8; MAX_BLOCK_COLS]; LUT_TOK];
    // Entry bytes: TB token blocks of 32 int16 lanes (a row's sums take the same bytes).
    let eb = 64 * TB;
    let full = nt == TB * LUT_TOK;
    let window = window::<L>(&x[t0 * cols..(t0 + nt) * cols]);
    let per = pass_rows(rows, LUT_ROWS);
    let mut r0 = 0;
    while r0 < rows {
        let nr = (rows - r0).min(per);
        let mut corrupt = false;
        for b in 0..nb {
            // Base-3 patterns of this block for the pass's rows.
            let mut bad = vdupq_n_u8(0);
            for r in 0..nr {
                let s = (r0 + r) * rb + b * BLOCK_BYTES;
                let q = &w[s..s + BLOCK_BYTES];
                // SAFETY: q holds 32 bytes, and so does pattern row r < nr <= LUT_ROWS; NEON (this
                // function's).
                unsafe {
                    let id = ip.add(r * BLOCK_BYTES);
                    let v0 = L::patterns(vld1q_u8(q.as_ptr()));
                    let v1 = L::patterns(vld1q_u8(q.as_ptr().add(16)));
                    bad = vorrq_u8(bad, vorrq_u8(v0, v1));
                    vst1q_u8(id, v0);
                    vst1q_u8(id.add(16), v1);
                }
            }
            if L::HAS_INVALID && vmaxvq_u8(bad) >= 128 {
                corrupt = true;
                break;
            }
            for (k, xt) in xt.iter_mut().enumerate() {
                let nk = nt.saturating_sub(LUT_TOK * k).min(LUT_TOK);
                transpose_block::<L>(x, cols, (t0 + LUT_TOK * k, nk), b, &mut xb, xt);
            }
            for j0 in (0..BLOCK_BYTES).step_by(L::GROUPS) {
                // SAFETY: tp points at the scratch's TAB_BYTES of tables.
                unsafe { build_tables::<L, TB>(&xt, j0, tp) };
                let first = j0 == 0 && b % window == 0;
                let last =
                    j0 + L::GROUPS == BLOCK_BYTES && (b % window == window - 1 || b + 1 == nb);
                // the window's first widening stores into out, later ones add
                let store = b < window;
                for r in 0..nr {
                    // SAFETY: r < nr <= LUT_ROWS, so the row's eb <= ACC_BYTES / LUT_ROWS bytes
                    // are in the scratch's sums.
                    let ap = unsafe { ap0.add(r * eb) };
                    let mut s = [vdupq_n_s16(0); 4 * LUT_TB];
                    if !first {
                        for (h, sv) in s.iter_mut().enumerate().take(4 * TB) {
                            // SAFETY: 16-byte lanes of the row's sums, stored by its previous
                            // chunk of this window (this one is not the first).
                            *sv = unsafe { vld1q_s16(ap.add(16 * h).cast()) };
                        }
                    }
                    // SAFETY: ip is the scratch's pattern numbers, row r < nr <= LUT_ROWS written
                    // for this block above; j0 + GROUPS <= 32.
                    let pats = unsafe { pattern_word::<L>(ip, r, j0) };
                    for i in 0..L::GROUPS {
                        let p = ((pats >> (8 * i)) & 0xff) as usize;
                        // SAFETY: p < ENTRIES (a T2_128 tile here has no code 3; T1_160
                        // patterns are ⌊243 b / 256⌋ < 243), so the entry is in tab.
                        unsafe {
                            let e = tp.add((i * L::ENTRIES + p) * eb);
                            for (h, sv) in s.iter_mut().enumerate().take(4 * TB) {
                                *sv = vaddq_s16(*sv, vld1q_s16(e.add(16 * h).cast()));
                            }
                        }
                    }
                    if !last {
                        for (h, sv) in s.iter().enumerate().take(4 * TB) {
                            // SAFETY: as the loads above.
                            unsafe { vst1q_s16(ap.add(16 * h).cast(), *sv) };
                        }
                        continue;
                    }
                    // Block done: widen to int32 and add into out[row][t0..t0 + nt].
                    let o = &mut out[(r0 + r) * n_tok + t0..(r0 + r) * n_tok + t0 + nt];
                    let wide = |h: usize, u: usize| {
                        if u == 0 {
                            vmovl_s16(vget_low_s16(s[h]))
                        } else {
                            vmovl_high_s16(s[h])
                        }
                    };
                    if full {
                        for (q, d) in o.chunks_exact_mut(4).enumerate() {
                            let v = wide(q / 2, q % 2);
                            // SAFETY: d holds 4 lanes.
                            unsafe {
                                let v = if store {
                                    v
                                } else {
                                    vaddq_s32(vld1q_s32(d.as_ptr()), v)
                                };
                                vst1q_s32(d.as_mut_ptr(), v);
                            }
                        }
                    } else {
                        let mut lanes = [0i32; LUT_TB * LUT_TOK];
                        for (q, d) in lanes.chunks_exact_mut(4).enumerate().take(8 * TB) {
                            // SAFETY: d holds 4 lanes.
                            unsafe { vst1q_s32(d.as_mut_ptr(), wide(q / 2, q % 2)) };
                        }
                        for (ov, &wv) in o.iter_mut().zip(&lanes) {
                            *ov = if store { wv } else { *ov + wv };
                        }
                    }
                }
            }
        }
        if corrupt || nb == 0 {
            // Code 3 in the pass's rows (or no columns): the exact matvec.
            fallback::<L>(w, cols, x, n_tok, (t0, nt), (r0, nr), out);
        }
        r0 += nr;
    }
}
