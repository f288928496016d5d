//! The AVX2 prefill matmul on lookup tables vectorized over tokens, for both ternary layouts.
//!
//! A weight byte holds the codes of `G` columns of its block (`T2_128`: 4 columns `j, j+32,
//! j+64, j+96` of 128; `T1_160`: 5 columns `j + 32k` of 160), so one row's contribution from
//! those columns to a token is one of `3^G` values. For a block of [`LUT_TOK`] tokens the kernel
//! builds, per weight byte position (a *group*), the table of all `3^G` int16 vectors
//! `E[p][t] = Σ_k (c_k − 1) · x[t][col_k]` (one lane per token; `p` the base-3 number of the
//! codes, `c_0` most significant), then every row adds `E[p]` for its byte's pattern `p`: one
//! 64-byte load and two `vpaddw` per `G` columns × 32 tokens (`32 G` multiply-adds), where
//! `vpmaddubsw` needs two instructions per 32. Tables are built for [`LutShape::GROUPS`] groups
//! at a time and used by all rows before the next ones. One pass over the weights serves up to
//! [`LUT_TB`] token blocks: an entry holds every block's lanes side by side, so each pattern
//! number (its load and address arithmetic) and each row's base-3 conversion serve them all.
//!
//! Pattern numbers: `T2_128` rows are converted with two byte shuffles (`27 c0 + 9 c1 + 3 c2 +
//! c3`); a byte with the invalid code 3 has no table entry, so a row tile that holds one (a
//! corrupt file) is recomputed by the exact matvec instead. A `T1_160` byte `b` decodes (see
//! [`crate::layout::BlockT1`]) to the base-3 digits of `⌊243 b / 256⌋`, for every byte, so that
//! number is its pattern (one 16-bit multiply and shift).
//!
//! Numerics are exact integer sums: a `T2_128` entry is at most 4 · 128 in magnitude and a row
//! sums 32 of them (one block) in int16 (|sum| ≤ 16384) before widening to int32 in `out`;
//! when no activation of the tokens is -128 (|entry| ≤ 508), two blocks (≤ 32512). A
//! `T1_160` entry is at most 5 · 128, one block 20480. Results are bit-identical to scalar on
//! any bytes.
//!
//! Source: the table-lookup idea of T-MAC (Wei et al., arXiv:2407.00088) and bitnet.cpp's TL
//! kernels, here with the tables indexed by weights and vectorized over tokens (prefill), not
//! over rows.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::super::lut::{
    ACC_BYTES, BLOCK_BYTES, BlockScratch, LUT_ROWS, LUT_TB, LUT_TOK, LutShape, MAX_BLOCK_COLS,
    Scratch, T1, T2, TAB_BYTES, block_rows, fallback, pass_rows, pattern_word, scratch_parts,
    window,
};

/// A ternary layout the AVX2 lookup-table matmul runs on: its table shape and pattern numbers.
pub(super) trait LutLayout: LutShape {
    /// Pattern numbers of 32 weight bytes.
    ///
    /// # Safety
    /// AVX2 must be available.
    unsafe fn patterns(q: __m256i) -> __m256i;
}

impl LutLayout for T2 {
    #[inline]
    unsafe fn patterns(q: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { to_base3(q) }
    }
}

impl LutLayout for T1 {
    #[inline]
    unsafe fn patterns(q: __m256i) -> __m256i {
        // SAFETY: the caller guarantees AVX2.
        unsafe { t1_patterns(q) }
    }
}

/// `⌊243 b / 256⌋` of 32 `T1_160` bytes: the base-3 number of the codes every variant decodes
/// (`c_k = ⌊3^(k+1) b / 256⌋ mod 3` is digit `4 − k` of it).
#[target_feature(enable = "avx2")]
#[inline]
fn t1_patterns(q: __m256i) -> __m256i {
    let z = _mm256_setzero_si256();
    let m = _mm256_set1_epi16(243);
    let lo = _mm256_srli_epi16::<8>(_mm256_mullo_epi16(_mm256_unpacklo_epi8(q, z), m));
    let hi = _mm256_srli_epi16::<8>(_mm256_mullo_epi16(_mm256_unpackhi_epi8(q, z), m));
    // unpack and pack both work per 128-bit half, so the bytes keep their order
    _mm256_packus_epi16(lo, hi)
}

#[repr(C, align(64))]
struct Aligned<T>(T);

/// Rows whose weight blocks the pattern conversion loads before it converts and stores any of
/// them. One row at a time (a load, the conversion, a store), the conversion took 13 % of the
/// matmul's time on Zen 3, the samples on the instruction waiting for each row's load (the
/// rows are `rb` bytes apart, a stride the hardware prefetchers miss; whether the loads also
/// waited behind the stores before them, the VM's counters cannot tell). Eight rows with
/// [`PREFETCH_ROWS`] took the matmul to 1.04-1.13x (2B4T shapes, 64 and 128 tokens,
/// alternating calls in one process; T2_128 and T1_160), 4 or 16 rows less.
const CONVERT_ROWS: usize = 8;
/// Rows ahead of the conversion whose weight blocks it prefetches into L1 (16 to 64 measured
/// alike). This replaced a prefetch into L2 of the next block, one block ahead, which made no
/// difference beside it.
const PREFETCH_ROWS: usize = 32;

/// Base-3 pattern numbers of 32 `T2_128` bytes (`27 c0 + 9 c1 + 3 c2 + c3`, 0..81); a byte
/// holding a code 3 gets bit 7 set (saturating add of the two nibbles' values).
#[target_feature(enable = "avx2")]
#[inline]
fn to_base3(q: __m256i) -> __m256i {
    const X: i8 = -128;
    // high nibble c0 << 2 | c1 → 27 c0 + 9 c1; low nibble c2 << 2 | c3 → 3 c2 + c3
    let hi_t = _mm256_setr_epi8(
        0, 9, 18, X, 27, 36, 45, X, 54, 63, 72, X, X, X, X, X, //
        0, 9, 18, X, 27, 36, 45, X, 54, 63, 72, X, X, X, X, X,
    );
    let lo_t = _mm256_setr_epi8(
        0, 1, 2, X, 3, 4, 5, X, 6, 7, 8, X, X, X, X, X, //
        0, 1, 2, X, 3, 4, 5, X, 6, 7, 8, X, X, X, X, X,
    );
    let m = _mm256_set1_epi8(15);
    let lo = _mm256_and_si256(q, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m);
    _mm256_adds_epu8(_mm256_shuffle_epi8(hi_t, hi), _mm256_shuffle_epi8(lo_t, lo))
}

/// Transpose 16 rows of 16 bytes (`r[i]` = row i) into 16 columns (`out[j]` byte i = `r[i]`
/// byte j), with the classic 4-stage unpack network.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose16(r: [__m128i; 16]) -> [__m128i; 16] {
    let b: [__m128i; 16] = core::array::from_fn(|i| {
        let (p, q) = (r[i & !1], r[i | 1]);
        if i & 1 == 0 {
            _mm_unpacklo_epi8(p, q)
        } else {
            _mm_unpackhi_epi8(p, q)
        }
    });
    // c[4g + m]: rows 4g..4g+4; m = 0,1 from (b[4g], b[4g+2]), m = 2,3 from (b[4g+1], b[4g+3])
    let c: [__m128i; 16] = core::array::from_fn(|i| {
        let (g, m) = (i / 4, i % 4);
        let (p, q) = (b[4 * g + m / 2], b[4 * g + m / 2 + 2]);
        if m % 2 == 0 {
            _mm_unpacklo_epi16(p, q)
        } else {
            _mm_unpackhi_epi16(p, q)
        }
    });
    // d[8h + m]: rows 8h..8h+8, columns 2m, 2m+1, from (c[8h + m/2], c[8h + 4 + m/2])
    let d: [__m128i; 16] = core::array::from_fn(|i| {
        let (h, m) = (i / 8, i % 8);
        let (p, q) = (c[8 * h + m / 2], c[8 * h + 4 + m / 2]);
        if m % 2 == 0 {
            _mm_unpacklo_epi32(p, q)
        } else {
            _mm_unpackhi_epi32(p, q)
        }
    });
    core::array::from_fn(|j| {
        let (p, q) = (d[j / 2], d[8 + j / 2]);
        if j % 2 == 0 {
            _mm_unpacklo_epi64(p, q)
        } else {
            _mm_unpackhi_epi64(p, q)
        }
    })
}

/// `xt[c][t] = x[t0 + t][B b + c]` as int16 for the tokens `t < nt` and columns `c < cn` of
/// block `b` (`B = L::BLOCK_COLS` columns), zero elsewhere (so padding columns and missing
/// tokens contribute nothing); `xb` is scratch for a block that is not whole.
#[target_feature(enable = "avx2")]
fn transpose_block<L: LutLayout>(
    x: &[i8],
    cols: usize,
    (t0, nt): (usize, usize),
    b: usize,
    xb: &mut BlockScratch,
    xt: &mut Aligned<[[i16; LUT_TOK]; MAX_BLOCK_COLS]>,
) {
    let rows = block_rows::<L>(x, cols, t0, nt, b, xb);
    for h in 0..LUT_TOK / 16 {
        for ct in 0..L::BLOCK_COLS / 16 {
            // SAFETY: every row holds at least BLOCK_COLS bytes (`block_rows`), and
            // 16 ct + 16 <= BLOCK_COLS.
            let r: [__m128i; 16] = core::array::from_fn(|i| unsafe {
                _mm_loadu_si128(rows[16 * h + i].as_ptr().add(16 * ct).cast())
            });
            for (j, v) in transpose16(r).into_iter().enumerate() {
                // SAFETY: xt row 16 ct + j < BLOCK_COLS holds 32 lanes; lanes 16h..16h+16 are
                // in it.
                unsafe {
                    _mm256_store_si256(
                        xt.0[16 * ct + j].as_mut_ptr().add(16 * h).cast(),
                        _mm256_cvtepi8_epi16(v),
                    )
                };
            }
        }
    }
}

/// Tables of groups `j0 .. j0 + L::GROUPS` of the current block: entry `i * ENTRIES + p`
/// (`64 TB` bytes at `64 TB (i * ENTRIES + p)`: token block `k`'s 32 int16 lanes at `64 k`) is
/// `Σ_k (c_k − 1) · xt[j0 + i + 32 k]` for the codes of pattern `p` (`c_0` most significant). The last two codes form the low 9 patterns, the others
/// the high ones (9 for `T2_128`, 27 for `T1_160`), so each entry is one add.
///
/// # Safety
/// `tp` must be valid for writes of [`TAB_BYTES`] bytes and 32-byte aligned.
#[target_feature(enable = "avx2")]
unsafe fn build_tables<L: LutLayout, const TB: usize>(
    xt: &[Aligned<[[i16; LUT_TOK]; MAX_BLOCK_COLS]>; TB],
    j0: usize,
    tp: *mut u8,
) {
    for i in 0..L::GROUPS {
        let j = j0 + i;
        for (k, xt) in xt.iter().enumerate() {
            for v in 0..LUT_TOK / 16 {
                // SAFETY: xt rows j + 32 c < BLOCK_COLS, lanes 16 v .. 16 v + 16 < 32.
                let ld =
                    |c: usize| unsafe { _mm256_load_si256(xt.0[c].as_ptr().add(16 * v).cast()) };
                let z = _mm256_setzero_si256();
                // (c − 1) · x for c = 0, 1, 2, of the group's column c
                let tri = |c: usize| {
                    let a = ld(j + 32 * c);
                    [_mm256_sub_epi16(z, a), z, a]
                };
                let g = L::CODES;
                let (q0, q1) = (tri(g - 2), tri(g - 1));
                // low patterns: 3 c_{G-2} + c_{G-1}
                let lo: [__m256i; 9] =
                    core::array::from_fn(|l| _mm256_add_epi16(q0[l / 3], q1[l % 3]));
                let (p0, p1) = (tri(0), tri(1));
                let p2 = if g == 5 { tri(2) } else { [z; 3] };
                let n_hi = L::ENTRIES / 9;
                for h in 0..n_hi {
                    let hi = if g == 5 {
                        _mm256_add_epi16(_mm256_add_epi16(p0[h / 9], p1[h / 3 % 3]), p2[h % 3])
                    } else {
                        _mm256_add_epi16(p0[h / 3], p1[h % 3])
                    };
                    for (l, lv) in lo.iter().enumerate() {
                        let e = (i * L::ENTRIES + 9 * h + l) * 64 * TB + 64 * k + 32 * v;
                        // SAFETY: entry < GROUPS · ENTRIES, so e + 32 <= TAB_BYTES (the
                        // caller's const assertion), within tp's bytes; 32-byte aligned.
                        unsafe { _mm256_store_si256(tp.add(e).cast(), _mm256_add_epi16(hi, *lv)) };
                    }
                }
            }
        }
    }
}

/// Tokens `t0 .. t0 + nt` (`LUT_MIN_TOK <= nt <= TB · LUT_TOK`) of the matmul, every row:
/// `out[r * n_tok + t0 + t] = Σ_c w[r, c] · x[t0 + t, c]`. One pass over the weights serves
/// `TB` token blocks: each pattern number drives `TB` lookups. Stack: about 470 KiB (tables,
/// pattern numbers and int16 sums of up to 2048 rows).
///
/// # Safety
/// AVX2 must be available. Shapes as checked by `matmul_rows`: `w` holds `rows * row_bytes`,
/// `x: (n_tok, cols)`, `out: (rows, n_tok)`; `t0 + nt <= n_tok`, `nt <= TB · LUT_TOK`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn matmul_lut<L: LutLayout, const TB: usize>(
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    t0: usize,
    nt: usize,
    out: &mut [i32],
) {
    let rows = out.len() / n_tok;
    const {
        assert!(BLOCK_BYTES.is_multiple_of(L::GROUPS) && (L::GROUPS == 8 || L::GROUPS == 4));
        assert!(TB >= 1 && TB <= LUT_TB);
        assert!(LUT_ROWS * 64 * TB <= ACC_BYTES);
        assert!(L::GROUPS * L::ENTRIES * 64 * TB <= TAB_BYTES);
    };
    let rb = L::row_bytes(cols);
    let nb = rb / BLOCK_BYTES;
    let mut xt = [const { Aligned([[0i16; LUT_TOK]; MAX_BLOCK_COLS]) }; TB];
    let mut scratch = MaybeUninit::<Scratch>::uninit();
    let (tp, ip, ap0) = scratch_parts(&mut scratch);
    let mut xb = [[0i8; MAX_BLOCK_COLS]; LUT_TOK];
    // Entry bytes: TB token blocks of 32 int16 lanes (a row's sums take the same bytes).
    let eb = 64 * TB;
    // Lanes of `out` that belong to these tokens (all of them when nt == TB · 32).
    let lane_mask = |k: usize| {
        let base = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(nt as i32 - 8 * k as i32), base)
    };
    let full = nt == TB * LUT_TOK;
    let window = window::<L>(&x[t0 * cols..(t0 + nt) * cols]);
    let per = pass_rows(rows, LUT_ROWS);
    let mut r0 = 0;
    while r0 < rows {
        let nr = (rows - r0).min(per);
        let mut corrupt = false;
        for b in 0..nb {
            // Base-3 patterns of this block for the pass's rows, [`CONVERT_ROWS`] rows at a
            // time: their loads first, then their conversions and stores (see there).
            let block = |r: usize| w.as_ptr().wrapping_add((r0 + r) * rb + b * BLOCK_BYTES);
            // SAFETY: row r0 + r < rows has rb bytes, block b < nb.
            let load = |r: usize| unsafe { _mm256_loadu_si256(block(r).cast()) };
            let mut bad = _mm256_setzero_si256();
            let mut store = |r: usize, v: __m256i| {
                bad = _mm256_or_si256(bad, v);
                // SAFETY: row r < nr <= LUT_ROWS of the pattern numbers: 32 bytes, 32-byte
                // aligned.
                unsafe { _mm256_store_si256(ip.add(r * BLOCK_BYTES).cast(), v) };
            };
            let mut r = 0;
            while r + CONVERT_ROWS <= nr {
                for i in 0..CONVERT_ROWS {
                    // A hint only (`wrapping_add`; it never faults).
                    _mm_prefetch::<_MM_HINT_T0>(block(r + PREFETCH_ROWS + i).cast());
                }
                let q: [__m256i; CONVERT_ROWS] = core::array::from_fn(|i| load(r + i));
                // SAFETY: AVX2 (this function's contract).
                let v: [__m256i; CONVERT_ROWS] =
                    core::array::from_fn(|i| unsafe { L::patterns(q[i]) });
                for (i, v) in v.into_iter().enumerate() {
                    store(r + i, v);
                }
                r += CONVERT_ROWS;
            }
            for r in r..nr {
                // SAFETY: AVX2 (this function's contract).
                store(r, unsafe { L::patterns(load(r)) });
            }
            if L::HAS_INVALID && _mm256_movemask_epi8(bad) != 0 {
                corrupt = true;
                break;
            }
            for (k, xt) in xt.iter_mut().enumerate() {
                let (tk, nk) = (
                    t0 + LUT_TOK * k,
                    nt.saturating_sub(LUT_TOK * k).min(LUT_TOK),
                );
                transpose_block::<L>(x, cols, (tk, nk), b, &mut xb, xt);
            }
            for j0 in (0..BLOCK_BYTES).step_by(L::GROUPS) {
                // SAFETY: tp points at the scratch's TAB_BYTES of tables, 64-byte aligned.
                unsafe { build_tables::<L, TB>(&xt, j0, tp) };
                let first = j0 == 0 && b % window == 0;
                let last =
                    j0 + L::GROUPS == BLOCK_BYTES && (b % window == window - 1 || b + 1 == nb);
                // the window's first widening stores into out, later ones add
                let store = b < window;
                for r in 0..nr {
                    // SAFETY: r < nr <= LUT_ROWS, so the row's eb <= ACC_BYTES / LUT_ROWS
                    // bytes are in the scratch's sums.
                    let ap = unsafe { ap0.add(r * eb) };
                    let mut s = [_mm256_setzero_si256(); 2 * LUT_TB];
                    if !first {
                        for (h, sv) in s.iter_mut().enumerate().take(2 * TB) {
                            // SAFETY: 32-byte aligned lanes of the row's sums, stored by its
                            // previous chunk of this window (this one is not the first).
                            *sv = unsafe { _mm256_load_si256(ap.add(32 * h).cast()) };
                        }
                    }
                    // SAFETY: ip is the scratch's pattern numbers, row r < nr <= LUT_ROWS written
                    // for this block above; j0 + GROUPS <= 32.
                    let pats = unsafe { pattern_word::<L>(ip, r, j0) };
                    for i in 0..L::GROUPS {
                        let p = ((pats >> (8 * i)) & 0xff) as usize;
                        // SAFETY: p < ENTRIES (a T2_128 tile here has no code 3; T1_160
                        // patterns are ⌊243 b / 256⌋ < 243), so entry i * ENTRIES + p is in tab.
                        unsafe {
                            let e = tp.add((i * L::ENTRIES + p) * eb);
                            for (h, sv) in s.iter_mut().enumerate().take(2 * TB) {
                                *sv =
                                    _mm256_add_epi16(*sv, _mm256_load_si256(e.add(32 * h).cast()));
                            }
                        }
                    }
                    if !last {
                        for (h, sv) in s.iter().enumerate().take(2 * TB) {
                            // SAFETY: as the loads above.
                            unsafe { _mm256_store_si256(ap.add(32 * h).cast(), *sv) };
                        }
                        continue;
                    }
                    // Block done: widen to int32 and add into out[row][t0..t0 + nt].
                    // SAFETY: row r0 + r < rows; lanes t0 + 8k + l < t0 + nt <= n_tok are in
                    // out (masked when nt < TB · 32).
                    unsafe {
                        let o = out.as_mut_ptr().add((r0 + r) * n_tok + t0);
                        for (h, sv) in s.iter().enumerate().take(2 * TB) {
                            let parts = [
                                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(*sv)),
                                _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(*sv)),
                            ];
                            for (kk, p) in parts.into_iter().enumerate() {
                                let k = 2 * h + kk;
                                let d = o.add(8 * k);
                                if full {
                                    let v = if store {
                                        p
                                    } else {
                                        _mm256_add_epi32(_mm256_loadu_si256(d.cast()), p)
                                    };
                                    _mm256_storeu_si256(d.cast(), v);
                                } else if 8 * k < nt {
                                    let m = lane_mask(k);
                                    let v = if store {
                                        p
                                    } else {
                                        _mm256_add_epi32(_mm256_maskload_epi32(d, m), p)
                                    };
                                    _mm256_maskstore_epi32(d, m, v);
                                }
                            }
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
