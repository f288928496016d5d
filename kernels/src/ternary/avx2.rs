//! AVX2 ternary × int8 matvec and matmul on the `T2_128` and `T1_160` layouts.
//!
//! Per block of 128 weights: one 32-byte load of codes, one shift and four masks give the
//! codes `c ∈ {0,1,2}` of weights `32k .. 32k+32` (two of them as `4c`, see [`tile`]), and
//! `vpmaddubsw(c, x)` (unsigned × signed) sums `c · x` in int16 pairs. Since `w = c - 1`,
//! `Σ w·x = Σ c·x − Σ x`, and `Σ x` is computed once per call. Exact for the full int8 range,
//! -128 included (the `vpsignb` trick is not, see TOOLCHAIN.md §4).
//!
//! The matvec (decode) streams its weights from DRAM, so it prefetches them 6 KiB ahead
//! ([`MATVEC_PREFETCH_BYTES`]). The matmul (prefill) is compute bound: blocks of 16 to 32
//! tokens go through lookup tables vectorized over tokens (`lut.rs`: one load and two adds per
//! 4 columns (`T2_128`) or 5 (`T1_160`) × 32 tokens); fewer tokens through 2-row × 6-token
//! `vpmaddubsw` register tiles over codes expanded to bytes once per chunk of blocks (see
//! [`matmul_tiles`]).
//!
//! The `T1_160` matvec and its decode are in `avx2/t1.rs`.

use core::arch::x86_64::*;

use crate::layout::{
    T1_BLOCK_ELEMS, T2_BLOCK_ELEMS, TernaryLayout, t1_get, t1_row_bytes, t2_get, t2_row_bytes,
};

mod lut;
pub(super) mod t1;

use super::matvec_shape;
pub(crate) use t1::matvec_t1_i8_avx2;
use t1::{T1_I16_BLOCKS, decode_codes_t1};

/// Safe wrapper: lengths are checked by [`matvec_rows`], the CPU feature by the caller of
/// [`crate::select`] (whose contract guarantees AVX2 before this can be reached).
pub(crate) fn matvec_t2_i8_avx2(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted AVX2 (their `# Safety` contract).
    unsafe { matvec_avx2(w, cols, x, out) }
}

/// Prefetch (into L1) the bytes `PF` ahead of block `bb` of an `R`-row matvec tile's weights
/// (none when `PF` is 0). The tile's rows are consecutive in memory, so block `bb` touches
/// `R * 32` bytes and the tile's stream moves that far per block: one linear stream. A hint
/// only: the address may lie past the allocation (`wrapping_add`) and is never dereferenced.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn prefetch_tile<const R: usize, const PF: usize>(w0: *const u8, bb: usize) {
    if PF > 0 {
        let p = w0.wrapping_add(PF + bb * R * 32);
        let mut o = 0;
        while o < R * 32 {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o).cast());
            o += 64;
        }
    }
}

#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// [`matvec_t2_i8_avx2`] under its target feature, so that [`matvec_rows`] and the tiles
/// inline into one loop.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
unsafe fn matvec_avx2(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: `matvec_rows` gives each tile row pointers with `full * 32` readable bytes and
    // `x` with `full * 128` (its contract), and AVX2 is enabled here.
    unsafe {
        matvec_rows(
            w,
            cols,
            x,
            out,
            |w, x, full| tile::<4, 1, MATVEC_PREFETCH_BYTES>(w, [x], full).map(|a| a[0]),
            |w, x, full| tile::<1, 1, MATVEC_PREFETCH_BYTES>([w], [x], full)[0][0],
        )
    }
}

/// The `T2_128` matvec (`w: (rows, cols)`, `x: (cols,)`, `out: (rows,)`) over tiles of 4 rows
/// (then single rows), each tile's sums corrected by `Σ x` and the scalar partial last block.
/// Shared by the AVX2 and AVX-512 VNNI variants.
///
/// # Panics
/// If `x.len() != cols` or `w.len() != out.len() * t2_row_bytes(cols)` (a caller bug).
///
/// The tiles `t4` (4 rows) and `t1` (one row) return Σ c·x over the `full` blocks of each row
/// at the pointers they get, `x` holding `full * 128` activations (this driver subtracts Σ x and
/// adds the partial tail block). Generic and inlined, so that called from a function with the
/// tiles' target features, the tiles inline into its loop: as calls through function
/// pointers, one per 4-row tile (2.5 KiB of weights at 2B4T's width), decode read slower
/// (README "What made decode fast").
///
/// # Safety
/// Calling `t4` and `t1` must be sound for row pointers with `full * 32` readable bytes each
/// and `x` with `full * 128` (the CPU runs their target features).
#[inline]
pub(super) unsafe fn matvec_rows(
    w: &[u8],
    cols: usize,
    x: &[i8],
    out: &mut [i32],
    t4: impl Fn([*const u8; 4], *const i8, usize) -> [i32; 4],
    t1: impl Fn(*const u8, *const i8, usize) -> i32,
) {
    let rb = matvec_shape(TernaryLayout::T2_128, w, cols, x, out.len());
    let full = cols / T2_BLOCK_ELEMS;
    let tail = cols - full * T2_BLOCK_ELEMS;
    let sum_x: i32 = x[..full * T2_BLOCK_ELEMS].iter().map(|&v| v as i32).sum();
    let rows = out.len();
    let wp = |r: usize| w[r * rb..].as_ptr();
    let mut put = |r: usize, s: i32| {
        let mut v = s - sum_x;
        if tail > 0 {
            v += tail_dot(&w[r * rb..(r + 1) * rb], full, tail, x);
        }
        out[r] = v;
    };
    let mut r = 0;
    // Four rows per pass share the activation loads.
    while r + 4 <= rows {
        // rows r..r+4 < rows: each pointer has `full * 32` bytes behind it, and x has
        // `cols >= full * 128` bytes (asserted above), as the tiles' contract asks
        let s = t4(core::array::from_fn(|i| wp(r + i)), x.as_ptr(), full);
        for i in 0..4 {
            put(r + i, s[i]);
        }
        r += 4;
    }
    while r < rows {
        // as above, for one row
        let s = t1(wp(r), x.as_ptr(), full);
        put(r, s);
        r += 1;
    }
}

/// The partial last block (`tail < 128` weights), scalar.
#[inline]
fn tail_dot(row: &[u8], full: usize, tail: usize, x: &[i8]) -> i32 {
    let blk = &row[full * 32..];
    let base = full * T2_BLOCK_ELEMS;
    (0..tail)
        .map(|i| (((blk[i % 32] >> (6 - 2 * (i / 32))) & 3) as i32 - 1) * x[base + i] as i32)
        .sum()
}

/// Safe wrapper of the AVX2 matmul; see [`super::scalar::matmul_t2_i8_scalar`] for shapes.
pub(crate) fn matmul_t2_i8_avx2(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    if super::matmul_rows(w, cols, x, n_tok, out, t2_row_bytes(cols)).is_none() {
        return;
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of
    // `select`; shapes checked above.
    unsafe { matmul_impl::<super::lut::T2>(&T2_CHUNKS, w, cols, x, n_tok, out) }
}

/// The prefill matmul of layout `L` (register-tile decode `chunks`): the token blocks of
/// [`super::lut::token_blocks`] through the lookup tables ([`lut::matmul_lut`], one or two
/// blocks of up to 32 tokens per pass over the weights), the rest (under 16 tokens: short
/// prompts, the last few tokens) through the register tiles ([`matmul_tiles`]).
///
/// # Safety
/// AVX2 must be available; the shapes must have passed [`super::matmul_rows`] for `L`'s row
/// bytes, and `chunks` must be `L`'s.
#[target_feature(enable = "avx2")]
unsafe fn matmul_impl<L: lut::LutLayout>(
    chunks: &ChunkCodes,
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    out: &mut [i32],
) {
    let rest = super::lut::token_blocks(n_tok, |t0, nt, tb| {
        // SAFETY: AVX2 is enabled here (this function's contract); shapes were checked by the
        // safe wrapper and tokens t0..t0+nt <= n_tok, nt <= 32 tb.
        unsafe {
            if tb == 2 {
                lut::matmul_lut::<L, 2>(w, cols, x, n_tok, t0, nt, out)
            } else {
                lut::matmul_lut::<L, 1>(w, cols, x, n_tok, t0, nt, out)
            }
        }
    });
    if rest < n_tok {
        // SAFETY: as above, tokens rest..n_tok.
        unsafe { matmul_tiles(chunks, w, cols, x, n_tok, rest, n_tok, out) };
    }
}

/// Blocks whose `vpmaddubsw` results are summed in int16 before widening. Each result lane
/// is two products of a code and an int8, 4 per block. Valid codes are ≤ 2, but the invalid
/// code 3 (in a corrupt file, read as +2 by every variant) must not wrap either, so that all
/// variants agree bit for bit on any bytes: |lane| ≤ 2 · 3 · 128 = 768 per product pair,
/// 3072 per block, and 10 blocks × 3072 = 30720 < 32768 (11 would not fit).
const I16_BLOCKS: usize = 10;

/// How far ahead (bytes) the matvec prefetches its weight stream. The hardware prefetchers
/// stop at every 4 KiB page and the weights stream from DRAM (the whole model is far larger
/// than the last-level cache), so without it a 2560-column matvec read 4-6 GB/s of weights
/// from DRAM on Zen 3 (and 14-17 GB/s with it, measured against 2-16 KiB; 4 KiB was best).
/// On another host of the same VM type (2026-11-30, probe 26-29 GB/s at 1 thread), a
/// microbenchmark of all 30 layers' `T2_128` matvecs from DRAM read at 70-84 % of the probe
/// with 4 KiB, 83-85 % with 6 KiB, 73-93 % with 8 KiB, 59-76 % with 12-16 KiB and 40-81 %
/// prefetching into L2 instead; decode (tg64, `T2_128` + Q4_0 head, 1 thread) with 6 KiB was
/// faster than with 4 KiB in 4 of 5 alternating pairs (median 1.08x).
pub(super) const MATVEC_PREFETCH_BYTES: usize = 6144;

/// Blocks of [`tile`]'s int16 window. Codes are masked in place, without shifting them down,
/// where that keeps them small: the two codes in bits 2-3 of a byte and of the byte shifted
/// right by 4 enter `vpmaddubsw` as `4 c`, the other two as `c`, each pair into its own int16
/// sums. With the invalid code 3 (see [`I16_BLOCKS`]): `|4 · 3 · 128 · 2| = 3072` per product
/// pair, two per block, so 5 blocks × 6144 = 30720 < 32768 (the `c` sums: 7680).
const MV_I16_BLOCKS: usize = 5;

/// One register tile: `R` weight rows × `T` tokens over all full blocks; returns Σ c·x for each
/// (row, token) (the caller subtracts Σ x and adds the partial tail block).
///
/// A block's byte `j` holds the codes of columns `j, 32 + j, 64 + j, 96 + j` in bits 6-7, 4-5,
/// 2-3 and 0-1. With `q` the block and `t = q >> 4` (16-bit lanes), the codes are `t & 3`
/// (columns `32 + j`) and `q & 3` (`96 + j`), and four times them `t & 12` (`j`) and `q & 12`
/// (`64 + j`): one shift and four masks where shifting each code down took three shifts and
/// four masks. The `4 c` products sum in their own int16 sums ([`MV_I16_BLOCKS`]), and their
/// int32 widening is shifted right by 2 (exact: every product is a multiple of 4), so the
/// results are scalar's exact integer sums.
///
/// With `PF > 0` it prefetches (into L1) the bytes `PF` ahead of the tile's weights as one
/// linear stream: rows `w[0..R]` are consecutive in memory, so block `bb` touches `R * 32`
/// bytes and the stream moves `R * 32` bytes per block. Prefetches are hints: addresses past
/// the end of `w` are never dereferenced (and prefetching them cannot fault).
///
/// # Safety
/// AVX2 must be available; `w[i]` must point at `full * 32` readable bytes and `x[t]` at
/// `full * 128` readable bytes.
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize, const T: usize, const PF: usize>(
    w: [*const u8; R],
    x: [*const i8; T],
    full: usize,
) -> [[i32; T]; R] {
    let m1 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(12);
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [[_mm256_setzero_si256(); T]; R];
    let mut b = 0;
    while b < full {
        let bend = (b + MV_I16_BLOCKS).min(full);
        // a1: Σ c·x of columns 32 + j and 96 + j; a4: Σ 4c·x of columns j and 64 + j
        let mut a1 = [[_mm256_setzero_si256(); T]; R];
        let mut a4 = [[_mm256_setzero_si256(); T]; R];
        for bb in b..bend {
            prefetch_tile::<R, PF>(w[0], bb);
            // SAFETY: bb < full: 32 bytes at w[i] + 32 bb and 128 at x[t] + 128 bb (contract).
            unsafe {
                let q: [__m256i; R] =
                    core::array::from_fn(|i| _mm256_loadu_si256(w[i].add(bb * 32).cast()));
                let sh: [__m256i; R] = core::array::from_fn(|i| _mm256_srli_epi16::<4>(q[i]));
                for t in 0..T {
                    let xb = x[t].add(bb * 128);
                    let xv: [__m256i; 4] =
                        core::array::from_fn(|k| _mm256_loadu_si256(xb.add(32 * k).cast()));
                    for i in 0..R {
                        let p1 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_and_si256(sh[i], m1), xv[1]),
                            _mm256_maddubs_epi16(_mm256_and_si256(q[i], m1), xv[3]),
                        );
                        let p4 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_and_si256(sh[i], m4), xv[0]),
                            _mm256_maddubs_epi16(_mm256_and_si256(q[i], m4), xv[2]),
                        );
                        a1[i][t] = _mm256_add_epi16(a1[i][t], p1);
                        a4[i][t] = _mm256_add_epi16(a4[i][t], p4);
                    }
                }
            }
        }
        for i in 0..R {
            for t in 0..T {
                // every lane of a4's pair sums is a multiple of 4: the shift is exact
                let s = _mm256_add_epi32(
                    _mm256_madd_epi16(a1[i][t], ones),
                    _mm256_srai_epi32::<2>(_mm256_madd_epi16(a4[i][t], ones)),
                );
                acc32[i][t] = _mm256_add_epi32(acc32[i][t], s);
            }
        }
        b = bend;
    }
    // SAFETY: register arithmetic under the enabled feature.
    core::array::from_fn(|i| core::array::from_fn(|t| unsafe { hsum_epi32(acc32[i][t]) }))
}

/// Matmul row group: rows whose codes are decoded together, one chunk at a time.
const MM_ROWS: usize = 4;
/// Tokens per register tile of the matmul (2 rows × 6 tokens = 12 int16 accumulators).
const MM_TOK: usize = 6;
/// Weights per decoded chunk of one row, for either layout: the int16 window of
/// [`mm_tile`] (`T2_128`: [`I16_BLOCKS`] × 128 = 1280 weights, codes ≤ 3; `T1_160`:
/// [`T1_I16_BLOCKS`] × 160 = 1920 weights, codes ≤ 2).
const MM_CHUNK: usize = 1920;

/// How one ternary layout feeds [`matmul_tiles`]: its block geometry, the decode of a chunk of
/// blocks to one code byte per weight, and the scalar partial last block.
struct ChunkCodes {
    /// Weights per block (32 bytes).
    block_elems: usize,
    /// Blocks per decoded chunk (`chunk_blocks * block_elems <= MM_CHUNK`, and within the
    /// int16 window of [`mm_tile`] for the layout's largest code).
    chunk_blocks: usize,
    /// Row bytes for `cols`.
    row_bytes: fn(usize) -> usize,
    /// Decode blocks `b0 .. b0 + nb` of the row at `w` to code bytes in weight order.
    decode: unsafe fn(*const u8, usize, usize, &mut [u8; MM_CHUNK]),
    /// Weight `i` (`-1, 0, +1`) of a block, as the layout module decodes it (for the last
    /// `tail % 32` weights of a partial block).
    get: fn(&[u8], usize) -> i8,
}

static T2_CHUNKS: ChunkCodes = ChunkCodes {
    block_elems: T2_BLOCK_ELEMS,
    chunk_blocks: I16_BLOCKS,
    row_bytes: t2_row_bytes,
    decode: decode_codes,
    get: t2_get,
};

static T1_CHUNKS: ChunkCodes = ChunkCodes {
    block_elems: T1_BLOCK_ELEMS,
    chunk_blocks: T1_I16_BLOCKS,
    row_bytes: t1_row_bytes,
    decode: decode_codes_t1,
    get: t1_get,
};

/// Expand the 2-bit codes of blocks `b0 .. b0 + nb` of the row at `w` into one code byte per
/// weight, in weight order: `dec[128 j + 32 k + i] = c[128 (b0 + j) + 32 k + i]`.
///
/// # Safety
/// AVX2 must be available; `w` must point at `(b0 + nb) * 32` readable bytes; `nb <= I16_BLOCKS`.
#[target_feature(enable = "avx2")]
unsafe fn decode_codes(w: *const u8, b0: usize, nb: usize, dec: &mut [u8; MM_CHUNK]) {
    let mask = _mm256_set1_epi8(3);
    for j in 0..nb.min(I16_BLOCKS) {
        // SAFETY: block b0 + j < b0 + nb is readable (contract); dec holds 1920 >= 10 × 128
        // bytes and j < 10.
        unsafe {
            let q = _mm256_loadu_si256(w.add((b0 + j) * 32).cast());
            let d = dec.as_mut_ptr().add(j * T2_BLOCK_ELEMS);
            let c = [
                _mm256_srli_epi16::<6>(q),
                _mm256_srli_epi16::<4>(q),
                _mm256_srli_epi16::<2>(q),
                q,
            ];
            for (k, ck) in c.into_iter().enumerate() {
                _mm256_storeu_si256(d.add(32 * k).cast(), _mm256_and_si256(ck, mask));
            }
        }
    }
}

/// One matmul register tile over a decoded chunk: `R` rows (decoded codes `dec[i]`) × `T`
/// tokens (`x[t]`, at the chunk's first weight) over `n` weights (`n <= MM_CHUNK`, a multiple
/// of 32); returns Σ c·x for each (row, token). The int16 lanes wrap, so only each lane's final
/// sum must fit: it holds `n / 16` products of a code and an int8, so `n <= 1280` for codes
/// ≤ 3 (`T2_128`, see [`I16_BLOCKS`]) and `n <= 1920` for codes ≤ 2 (`T1_160`).
///
/// # Safety
/// AVX2 must be available; `x[t]` must point at `n` readable bytes.
#[target_feature(enable = "avx2")]
unsafe fn mm_tile<const R: usize, const T: usize>(
    dec: [&[u8; MM_CHUNK]; R],
    x: [*const i8; T],
    n: usize,
) -> [[i32; T]; R] {
    let mut a = [[_mm256_setzero_si256(); T]; R];
    let mut i = 0;
    while i < n {
        // SAFETY: i + 32 <= n <= MM_CHUNK: in bounds of dec[r], and of x[t] (contract).
        unsafe {
            let c: [__m256i; R] =
                core::array::from_fn(|r| _mm256_loadu_si256(dec[r].as_ptr().add(i).cast()));
            for t in 0..T {
                let xv = _mm256_loadu_si256(x[t].add(i).cast());
                for r in 0..R {
                    a[r][t] = _mm256_add_epi16(a[r][t], _mm256_maddubs_epi16(c[r], xv));
                }
            }
        }
        i += 32;
    }
    let ones = _mm256_set1_epi16(1);
    core::array::from_fn(|r| {
        core::array::from_fn(|t| {
            // SAFETY: register arithmetic under the enabled feature.
            unsafe { hsum_epi32(_mm256_madd_epi16(a[r][t], ones)) }
        })
    })
}

/// The register-tile matmul of either layout (`lay`) for tokens `t_begin..t_end` (of `n_tok`).
/// Rows go in groups of [`MM_ROWS`]; per group,
/// each chunk of blocks (10 of `T2_128`, 12 of `T1_160`) is decoded once to one code byte per
/// weight (a buffer of at most 7.5 KiB that stays in L1), then every token runs over it in
/// 2-row × 6-token register tiles, so the per-block decode work is paid once per row instead
/// of once per (row, token group), and the activations of a tile (6 × 2 KiB) stay in L1
/// across the rows of the group.
///
/// # Safety
/// AVX2 must be available; the shapes must have passed [`super::matmul_rows`] with
/// `lay.row_bytes(cols)`.
#[target_feature(enable = "avx2")]
unsafe fn matmul_tiles(
    lay: &ChunkCodes,
    w: &[u8],
    cols: usize,
    x: &[i8],
    n_tok: usize,
    t_begin: usize,
    t_end: usize,
    out: &mut [i32],
) {
    let bl = lay.block_elems;
    let rb = (lay.row_bytes)(cols);
    let full = cols / bl;
    let tail = cols - full * bl;
    // Whole 32-weight vectors of the partial last block (its first `32 * tail_vecs` weights are
    // codes 0..tail_vecs of bytes 0..32 in both layouts), and the columns the tiles cover.
    let tail_vecs = tail / 32;
    let vec_cols = full * bl + 32 * tail_vecs;
    let rows = out.len() / n_tok;
    let xrow = |t: usize| &x[t * cols..(t + 1) * cols];
    // Tokens go in chunks of up to 64 whose Σ x (over the full blocks) is computed once.
    const NT: usize = 64;
    let mut sum_x = [0i32; NT];
    let mut dec = [[0u8; MM_CHUNK]; MM_ROWS];
    let mut t0 = t_begin;
    while t0 < t_end {
        let nt = (t_end - t0).min(NT);
        for t in 0..nt {
            sum_x[t] = xrow(t0 + t)[..vec_cols].iter().map(|&v| v as i32).sum();
        }
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(MM_ROWS);
            let mut acc = [[0i32; NT]; MM_ROWS];
            // Chunks of whole blocks, then (if the partial last block holds whole 32-weight
            // vectors) that block as one more chunk of `n = 32 * tail_vecs` weights.
            let mut b0 = 0;
            while b0 < full || (b0 == full && tail_vecs > 0) {
                let nb = if b0 < full {
                    (full - b0).min(lay.chunk_blocks)
                } else {
                    1
                };
                for (i, d) in dec.iter_mut().enumerate().take(nr) {
                    // SAFETY: row r0 + i < rows has `rb >= (b0 + nb) * 32` bytes at its start
                    // (b0 + nb <= full, or the partial block b0 = full exists as tail > 0), and
                    // nb <= chunk_blocks (the decoder's limit).
                    unsafe { (lay.decode)(w[(r0 + i) * rb..].as_ptr(), b0, nb, d) };
                }
                let n = if b0 < full { nb * bl } else { 32 * tail_vecs };
                let xp = |t: usize| xrow(t0 + t)[b0 * bl..].as_ptr();
                macro_rules! run_tile {
                    ($R:literal, $T:literal, $r:expr, $t:expr) => {{
                        // SAFETY: tokens $t..$t+$T < nt: each x pointer is at weight
                        // b0 * bl of a `cols`-long row, with `n <= cols - b0 * bl` behind it
                        // (a partial block's n = 32 * (tail / 32) <= tail).
                        let s = unsafe {
                            mm_tile::<$R, $T>(
                                core::array::from_fn(|i| &dec[$r + i]),
                                core::array::from_fn(|t| xp($t + t)),
                                n,
                            )
                        };
                        for i in 0..$R {
                            for t in 0..$T {
                                acc[$r + i][$t + t] += s[i][t];
                            }
                        }
                    }};
                }
                macro_rules! rows_of {
                    ($T:literal, $t:expr) => {{
                        let mut r = 0;
                        while r + 2 <= nr {
                            run_tile!(2, $T, r, $t);
                            r += 2;
                        }
                        if r < nr {
                            run_tile!(1, $T, r, $t);
                        }
                    }};
                }
                let mut t = 0;
                while t + MM_TOK <= nt {
                    rows_of!(6, t);
                    t += MM_TOK;
                }
                match nt - t {
                    5 => rows_of!(5, t),
                    4 => rows_of!(4, t),
                    3 => rows_of!(3, t),
                    2 => rows_of!(2, t),
                    1 => rows_of!(1, t),
                    _ => {}
                }
                b0 += nb;
            }
            for i in 0..nr {
                let r = r0 + i;
                for t in 0..nt {
                    let mut v = acc[i][t] - sum_x[t];
                    if vec_cols < cols {
                        // the last tail % 32 weights, scalar
                        let blk = &w[r * rb + full * 32..r * rb + full * 32 + 32];
                        let xr = &xrow(t0 + t)[full * bl..];
                        for j in 32 * tail_vecs..tail {
                            v += (lay.get)(blk, j) as i32 * xr[j] as i32;
                        }
                    }
                    out[r * n_tok + t0 + t] = v;
                }
            }
            r0 += nr;
        }
        t0 += nt;
    }
}

/// Safe wrapper of the `T1_160` prefill matmul; shapes as
/// [`super::scalar::matmul_t1_i8_scalar`].
pub(crate) fn matmul_t1_i8_avx2(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    if super::matmul_rows(w, cols, x, n_tok, out, t1_row_bytes(cols)).is_none() {
        return;
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of
    // `select`; shapes checked above.
    unsafe { matmul_impl::<super::lut::T1>(&T1_CHUNKS, w, cols, x, n_tok, out) }
}
