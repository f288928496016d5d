//! AVX2 `T1_160` ternary × int8 matvec (decode), and the `T1_160` decode the matmul shares.
//!
//! `T1_160` (5 base-3 codes per byte, see [`crate::layout::BlockT1`]): the code of trit `k` of
//! byte `b` is the high byte of `3 · q_k` with `q_0 = b`, `q_{k+1} = 3 · q_k mod 256`. One
//! `vpmaddubsw` by the byte pair `[9, 0]` computes `9 · q_k` for the even bytes of a 32-byte
//! block in 16-bit lanes — `3·c_k + c_{k+1}` in the high byte, `q_{k+2}` in the low byte,
//! ignoring whatever the high byte held before — and `[0, 9]` (then `[9, 0]`) for the odd
//! bytes; a shift and a byte blend put the pairs back in byte order and two `vpshufb` lookups
//! split them into codes ([`t1_pair`]); the fifth trit takes `3 · q_4` ([`t1_last`]). Then
//! `vpmaddubsw(codes, x)` as for `T2_128` ([`tile_t1`]): 26 instructions per 160 weights and
//! row, 11 of them multiplies. Of the exact sequences measured on Zen 3 (matvec 6912 × 2560,
//! best of 5, same process), this was the fastest: 1.25× one trit per `vpmaddubsw` step,
//! 1.35× 8-bit compares (`3q ≥ 256`, `3q ≥ 512`, xor-biased) and 1.4× `vpmullw`/`vpmulhuw` on
//! unpacked 16-bit lanes + `vpackuswb`. It is still about 1.6× the work per byte of
//! `T2_128`'s shift and mask, so on a core whose DRAM bandwidth it can saturate with
//! `T2_128` the denser layout trades bytes for decode work (README, "Denser ternary layout").

use core::arch::x86_64::*;

use super::{MATVEC_PREFETCH_BYTES, MM_CHUNK, hsum_epi32, prefetch_tile};
use crate::layout::{T1_BLOCK_ELEMS, TernaryLayout};
use crate::ternary::matvec_shape;
use crate::ternary::scalar::t1_tail_dot_from;

/// Blocks of `T1_160` whose `vpmaddubsw` results [`tile_t1`] sums in int16 before widening:
/// each lane gains two products of a code (≤ 2) and an int8 per trit, 5 trits per block, so
/// |lane| ≤ 5 · 2 · 2 · 128 = 2560 per block and 12 blocks stay within 30720 (13 would not).
/// Every byte decodes to codes ≤ 2, so this holds for any bytes.
pub(super) const T1_I16_BLOCKS: usize = 12;

/// Safe wrapper of the `T1_160` matvec (`w: (rows, cols)`, `x: (cols,)`, `out: (rows,)`; see
/// [`crate::ternary::scalar::matvec_t1_i8_scalar`]): lengths are checked by
/// [`matvec_t1_rows`], the CPU feature by the caller of [`crate::select`].
pub(crate) fn matvec_t1_i8_avx2(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: only reachable through a KernelSet that `select`/`select_variant` hands out when
    // the caller asserted AVX2 (their `# Safety` contract).
    unsafe { matvec_t1_avx2(w, cols, x, out) }
}

/// [`matvec_t1_i8_avx2`] under its target feature, so that [`matvec_t1_rows`] and the tiles
/// inline into one loop.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
unsafe fn matvec_t1_avx2(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: `matvec_t1_rows` gives each tile pointers as `tile_t1`'s contract asks (its own
    // contract), and AVX2 is enabled here.
    unsafe {
        matvec_t1_rows(
            w,
            cols,
            x,
            out,
            |w, x, full, tv| tile_t1::<T1_MV_ROWS, MATVEC_PREFETCH_BYTES>(w, x, full, tv),
            |w, x, full, tv| tile_t1::<1, MATVEC_PREFETCH_BYTES>(w, x, full, tv),
        )
    }
}

/// Rows per pass of the `T1_160` matvec: they share the activation loads; each row keeps two
/// decode registers and one accumulator next to the decode's 6 constants. On Zen 3 (in
/// cache, best of 5, runs interleaved) 3 rows were about 1.1× 2 or 4 rows and 1.2× one row,
/// within the shared VM's run-to-run spread of ±10 %.
pub(in crate::ternary) const T1_MV_ROWS: usize = 3;

/// The `T1_160` matvec over tiles of [`T1_MV_ROWS`] rows (then single rows), each tile's sums
/// corrected by `Σ x`, and the partial last block's weights past its whole 32-weight vectors
/// (none at 2B4T's shapes) added by scalar code. Shared by the AVX2 and AVX-512 VNNI variants.
///
/// # Panics
/// If `x.len() != cols` or `w.len() != out.len() * t1_row_bytes(cols)` (a caller bug).
///
/// The tiles `t3` ([`T1_MV_ROWS`] rows) and `t1` (one row) take `(w, x, full, tail_vecs)` as
/// [`tile_t1`] and return its result. Generic and inlined, so that the tiles inline into the
/// loop of a caller with their target features (see the `T2_128` driver, `matvec_rows`).
///
/// # Safety
/// Calling `t3` and `t1` must be sound for arguments that meet [`tile_t1`]'s contract (the CPU
/// runs their target features).
#[inline]
pub(in crate::ternary) unsafe fn matvec_t1_rows(
    w: &[u8],
    cols: usize,
    x: &[i8],
    out: &mut [i32],
    t3: impl Fn([*const u8; T1_MV_ROWS], *const i8, usize, usize) -> [i32; T1_MV_ROWS],
    t1: impl Fn([*const u8; 1], *const i8, usize, usize) -> [i32; 1],
) {
    let rb = matvec_shape(TernaryLayout::T1_160, w, cols, x, out.len());
    let full = cols / T1_BLOCK_ELEMS;
    let tail = cols - full * T1_BLOCK_ELEMS;
    // The partial last block's whole 32-weight vectors go through the tile too.
    let tail_vecs = tail / 32;
    let vec_cols = full * T1_BLOCK_ELEMS + 32 * tail_vecs;
    let sum_x: i32 = x[..vec_cols].iter().map(|&v| v as i32).sum();
    let rows = out.len();
    let wp = |r: usize| w[r * rb..].as_ptr();
    let mut r = 0;
    while r + T1_MV_ROWS <= rows {
        // rows r..r+T1_MV_ROWS <= rows: each pointer has `rb` bytes behind it (the partial
        // block included when tail_vecs > 0), and x has `cols >= vec_cols` bytes (the tiles'
        // contract, see this function's).
        let s = t3(
            core::array::from_fn(|i| wp(r + i)),
            x.as_ptr(),
            full,
            tail_vecs,
        );
        for i in 0..T1_MV_ROWS {
            out[r + i] = s[i] - sum_x;
        }
        r += T1_MV_ROWS;
    }
    while r < rows {
        // as above, for one row
        let s = t1([wp(r)], x.as_ptr(), full, tail_vecs);
        out[r] = s[0] - sum_x;
        r += 1;
    }
    // Weights past the tile's last whole vector (none at 2B4T's shapes): scalar, per row, in a
    // pass of its own so the tile loop above stays free of calls.
    if tail > 32 * tail_vecs {
        for (r, o) in out.iter_mut().enumerate() {
            *o += t1_tail_dot_from(&w[r * rb..(r + 1) * rb], full, 32 * tail_vecs, tail, x);
        }
    }
}

/// The constants of the `T1_160` decode, made once per tile so they stay in registers.
#[derive(Clone, Copy)]
pub(in crate::ternary) struct T1Consts {
    /// Bytes `[9, 0]`: 9 × the low byte of each 16-bit lane.
    pub(in crate::ternary) by9: __m256i,
    /// Bytes `[0, 9]`: 9 × the high (odd) byte, the odd bytes' first step.
    pub(in crate::ternary) odd9: __m256i,
    /// Bytes `[3, 0]`.
    pub(in crate::ternary) by3: __m256i,
    /// Byte blend mask: the odd bytes.
    pub(in crate::ternary) odd: __m256i,
    /// `vpshufb` table `p / 3` for `p = 0..9`.
    pub(in crate::ternary) div3: __m256i,
    /// `vpshufb` table `p mod 3`.
    pub(in crate::ternary) mod3: __m256i,
}

impl T1Consts {
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(in crate::ternary) fn new() -> T1Consts {
        #[rustfmt::skip]
        let div3 = _mm256_setr_epi8(
            0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0,
        );
        #[rustfmt::skip]
        let mod3 = _mm256_setr_epi8(
            0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0,
            0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0,
        );
        T1Consts {
            by9: _mm256_set1_epi16(9),
            odd9: _mm256_set1_epi16(9 << 8),
            by3: _mm256_set1_epi16(3),
            odd: _mm256_set1_epi16(0xFF00u16 as i16),
            div3,
            mod3,
        }
    }
}

/// Advance the `T1_160` decode of a 32-byte block by two trits. `e` and `o` hold the running
/// products of the even and odd bytes in 16-bit lanes (both start as the raw block): each step
/// multiplies the lane's low byte `q_k` by 9 with one `vpmaddubsw` (the odd bytes' first step
/// takes the high byte, `[0, 9]`), and `9 · q_k = 256 · (3·c_k + c_{k+1}) + q_{k+2}` puts the
/// pair `p = 3·c_k + c_{k+1}` (0..=8, for any byte) in the high byte and `q_{k+2}` in the low
/// byte. The pairs are gathered in byte order (shift + byte blend) and split by two
/// `vpshufb` table lookups (`p / 3`, `p mod 3`). Returns the 32 codes of trits `k` and `k + 1`.
/// This is the spec's decode exactly: `(3·q_k) >> 8 = c_k` and `3·q_k mod 256 = q_{k+1}`.
#[inline]
#[target_feature(enable = "avx2")]
pub(in crate::ternary) fn t1_pair<const FIRST: bool>(
    k: &T1Consts,
    e: &mut __m256i,
    o: &mut __m256i,
) -> (__m256i, __m256i) {
    *e = _mm256_maddubs_epi16(*e, k.by9);
    *o = _mm256_maddubs_epi16(*o, if FIRST { k.odd9 } else { k.by9 });
    // even positions: the high byte of `e` shifted down; odd positions: the high byte of `o`.
    let p = _mm256_blendv_epi8(_mm256_srli_epi16::<8>(*e), *o, k.odd);
    (
        _mm256_shuffle_epi8(k.div3, p),
        _mm256_shuffle_epi8(k.mod3, p),
    )
}

/// The last trit (`k = 4`) after two [`t1_pair`] steps: `3 · q_4` by `vpmaddubsw` `[3, 0]`,
/// codes from the high bytes in byte order.
#[inline]
#[target_feature(enable = "avx2")]
pub(in crate::ternary) fn t1_last(k: &T1Consts, e: __m256i, o: __m256i) -> __m256i {
    _mm256_blendv_epi8(
        _mm256_srli_epi16::<8>(_mm256_maddubs_epi16(e, k.by3)),
        _mm256_maddubs_epi16(o, k.by3),
        k.odd,
    )
}

/// The codes of trits 0..4 (32 weights each) of the 32-byte `T1_160` block at `p`: what a
/// partial last block's whole 32-weight vectors need.
///
/// # Safety
/// AVX2 must be available; `p` must point at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(in crate::ternary) unsafe fn t1_codes4(k: &T1Consts, p: *const u8) -> [__m256i; 4] {
    // SAFETY: 32 readable bytes at p (contract).
    let mut e = unsafe { _mm256_loadu_si256(p.cast()) };
    let mut o = e;
    let (c0, c1) = t1_pair::<true>(k, &mut e, &mut o);
    let (c2, c3) = t1_pair::<false>(k, &mut e, &mut o);
    [c0, c1, c2, c3]
}

/// One `T1_160` register tile: `R` weight rows over all full blocks against `x`, then the
/// first `tail_vecs` (0..=4) 32-weight vectors (codes 0..tail_vecs) of the partial block
/// `full`; returns Σ c·x per row (the caller subtracts Σ x over those columns and adds the
/// rest of the partial block). Prefetches `PF` bytes ahead of the rows' weight stream
/// ([`prefetch_tile`]).
///
/// # Safety
/// AVX2 must be available; `w[i]` must point at `full * 32` readable bytes (`(full + 1) * 32`
/// if `tail_vecs > 0`) and `x` at `full * 160 + 32 * tail_vecs` readable bytes.
#[target_feature(enable = "avx2")]
unsafe fn tile_t1<const R: usize, const PF: usize>(
    w: [*const u8; R],
    x: *const i8,
    full: usize,
    tail_vecs: usize,
) -> [i32; R] {
    let ones = _mm256_set1_epi16(1);
    let k = T1Consts::new();
    let mut acc32 = [_mm256_setzero_si256(); R];
    let mut b = 0;
    while b < full {
        let bend = (b + T1_I16_BLOCKS).min(full);
        let mut a = [_mm256_setzero_si256(); R];
        for bb in b..bend {
            prefetch_tile::<R, PF>(w[0], bb);
            // SAFETY: bb < full: 32 bytes at w[i] + 32 bb and 160 at x + 160 bb (contract).
            unsafe {
                let mut e: [__m256i; R] =
                    core::array::from_fn(|i| _mm256_loadu_si256(w[i].add(bb * 32).cast()));
                let mut o = e;
                let xb = x.add(bb * T1_BLOCK_ELEMS);
                macro_rules! pair {
                    ($k:literal, $first:literal) => {
                        let x0 = _mm256_loadu_si256(xb.add(32 * $k).cast());
                        let x1 = _mm256_loadu_si256(xb.add(32 * $k + 32).cast());
                        for i in 0..R {
                            let (c0, c1) = t1_pair::<$first>(&k, &mut e[i], &mut o[i]);
                            a[i] = _mm256_add_epi16(a[i], _mm256_maddubs_epi16(c0, x0));
                            a[i] = _mm256_add_epi16(a[i], _mm256_maddubs_epi16(c1, x1));
                        }
                    };
                }
                pair!(0, true);
                pair!(2, false);
                let x4 = _mm256_loadu_si256(xb.add(128).cast());
                for i in 0..R {
                    let c = t1_last(&k, e[i], o[i]);
                    a[i] = _mm256_add_epi16(a[i], _mm256_maddubs_epi16(c, x4));
                }
            }
        }
        for i in 0..R {
            acc32[i] = _mm256_add_epi32(acc32[i], _mm256_madd_epi16(a[i], ones));
        }
        b = bend;
    }
    if tail_vecs > 0 {
        for i in 0..R {
            // SAFETY: block `full` of row i (32 bytes) and x columns full * 160 ..
            // full * 160 + 32 * tail_vecs are readable (contract).
            unsafe {
                let xb = x.add(full * T1_BLOCK_ELEMS);
                let mut a = _mm256_setzero_si256();
                let codes = t1_codes4(&k, w[i].add(full * 32));
                for (t, c) in codes.into_iter().enumerate().take(tail_vecs) {
                    let xv = _mm256_loadu_si256(xb.add(32 * t).cast());
                    a = _mm256_add_epi16(a, _mm256_maddubs_epi16(c, xv));
                }
                acc32[i] = _mm256_add_epi32(acc32[i], _mm256_madd_epi16(a, ones));
            }
        }
    }
    // SAFETY: register arithmetic under the enabled feature.
    core::array::from_fn(|i| unsafe { hsum_epi32(acc32[i]) })
}

/// Decode blocks `b0 .. b0 + nb` of the `T1_160` row at `w` into one code byte per weight, in
/// weight order: `dec[160 j + 32 k + i] = code k of byte i of block b0 + j`.
///
/// # Safety
/// AVX2 must be available; `w` must point at `(b0 + nb) * 32` readable bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn decode_codes_t1(w: *const u8, b0: usize, nb: usize, dec: &mut [u8; MM_CHUNK]) {
    let k = T1Consts::new();
    for j in 0..nb.min(T1_I16_BLOCKS) {
        // SAFETY: block b0 + j < b0 + nb is readable (contract); dec holds 12 × 160 bytes and
        // j < 12.
        unsafe {
            let mut e = _mm256_loadu_si256(w.add((b0 + j) * 32).cast());
            let mut o = e;
            let d = dec.as_mut_ptr().add(j * T1_BLOCK_ELEMS);
            let (c0, c1) = t1_pair::<true>(&k, &mut e, &mut o);
            let (c2, c3) = t1_pair::<false>(&k, &mut e, &mut o);
            for (t, c) in [c0, c1, c2, c3, t1_last(&k, e, o)].into_iter().enumerate() {
                _mm256_storeu_si256(d.add(32 * t).cast(), c);
            }
        }
    }
}
