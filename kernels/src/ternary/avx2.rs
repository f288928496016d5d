//! AVX2 ternary × int8 matvec on the `T2_128` layout.
//!
//! Per block of 128 weights: one 32-byte load of codes, four shift-and-mask steps give the
//! codes `c ∈ {0,1,2}` of weights `32k .. 32k+32`, and `vpmaddubsw(c, x)` (unsigned × signed)
//! sums `c · x` in int16 pairs (|2·2·128| fits). Since `w = c - 1`,
//! `Σ w·x = Σ c·x − Σ x`, and `Σ x` is computed once per call. Exact for the full int8 range,
//! -128 included (the `vpsignb` trick is not, see TOOLCHAIN.md §4).

use core::arch::x86_64::*;

use crate::layout::{T2_BLOCK_ELEMS, t2_row_bytes};

/// Safe wrapper: lengths are checked here, the CPU feature by the caller of
/// [`crate::select`] (whose contract guarantees AVX2 before this can be reached).
pub(crate) fn matvec_t2_i8_avx2(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    assert_eq!(x.len(), cols, "matvec_t2_i8: x must have cols elements");
    assert_eq!(
        w.len(),
        out.len() * rb,
        "matvec_t2_i8: w must hold rows * row_bytes"
    );
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted AVX2 (their `# Safety` contract);
    // the lengths were checked above.
    unsafe { matvec_impl(w, cols, x, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

#[target_feature(enable = "avx2")]
unsafe fn matvec_impl(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
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
    // Four rows per pass share the activation loads; int16 sums over 16 blocks (see `tile`).
    while r + 4 <= rows {
        // SAFETY: rows r..r+4 < rows: each pointer has `full * 32` bytes behind it, and x has
        // `cols >= full * 128` bytes.
        let s = unsafe { tile::<4, 1>(core::array::from_fn(|i| wp(r + i)), [x.as_ptr()], full) };
        for i in 0..4 {
            put(r + i, s[i][0]);
        }
        r += 4;
    }
    while r < rows {
        // SAFETY: as above, for one row.
        let s = unsafe { tile::<1, 1>([wp(r)], [x.as_ptr()], full) };
        put(r, s[0][0]);
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
    if super::matmul_rows(w, cols, x, n_tok, out).is_none() {
        return;
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of
    // `select`; shapes checked above.
    unsafe { matmul_impl(w, cols, x, n_tok, out) }
}

/// Blocks whose `vpmaddubsw` results are summed in int16 before widening: each result lane
/// is in [-512, 508] (two products of a code ≤ 2 and an int8), 4 per block, and
/// 16 blocks × 4 × 512 = 32768 still fits an int16 (-32768 exactly at the worst case).
const I16_BLOCKS: usize = 16;

/// One register tile: `R` weight rows × `T` tokens over all full blocks; returns Σ c·x for each
/// (row, token) (the caller subtracts Σ x and adds the partial tail block).
///
/// # Safety
/// AVX2 must be available; `w[i]` must point at `full * 32` readable bytes and `x[t]` at
/// `full * 128` readable bytes.
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [*const i8; T],
    full: usize,
) -> [[i32; T]; R] {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [[_mm256_setzero_si256(); T]; R];
    let mut b = 0;
    while b < full {
        let bend = (b + I16_BLOCKS).min(full);
        let mut a = [[_mm256_setzero_si256(); T]; R];
        for bb in b..bend {
            // SAFETY: bb < full: 32 bytes at w[i] + 32 bb and 128 at x[t] + 128 bb (contract).
            unsafe {
                let q: [__m256i; R] =
                    core::array::from_fn(|i| _mm256_loadu_si256(w[i].add(bb * 32).cast()));
                macro_rules! step {
                    ($k:expr, $code:expr) => {
                        let c: [__m256i; R] =
                            core::array::from_fn(|i| _mm256_and_si256($code(q[i]), mask));
                        for t in 0..T {
                            let xv = _mm256_loadu_si256(x[t].add(bb * 128 + 32 * $k).cast());
                            for i in 0..R {
                                a[i][t] = _mm256_add_epi16(a[i][t], _mm256_maddubs_epi16(c[i], xv));
                            }
                        }
                    };
                }
                step!(0, |v| _mm256_srli_epi16::<6>(v));
                step!(1, |v| _mm256_srli_epi16::<4>(v));
                step!(2, |v| _mm256_srli_epi16::<2>(v));
                step!(3, |v| v);
            }
        }
        for i in 0..R {
            for t in 0..T {
                acc32[i][t] = _mm256_add_epi32(acc32[i][t], _mm256_madd_epi16(a[i][t], ones));
            }
        }
        b = bend;
    }
    // SAFETY: register arithmetic under the enabled feature.
    core::array::from_fn(|i| core::array::from_fn(|t| unsafe { hsum_epi32(acc32[i][t]) }))
}

#[target_feature(enable = "avx2")]
unsafe fn matmul_impl(w: &[u8], cols: usize, x: &[i8], n_tok: usize, out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    let full = cols / T2_BLOCK_ELEMS;
    let tail = cols - full * T2_BLOCK_ELEMS;
    let rows = out.len() / n_tok;
    let xrow = |t: usize| &x[t * cols..(t + 1) * cols];
    let wp = |r: usize| w[r * rb..].as_ptr();
    let xp = |t: usize| xrow(t).as_ptr();
    // Tokens go in chunks of up to 64 whose Σ x (over the full blocks) is computed once.
    let mut sum_x = [0i32; 64];
    let mut t0 = 0;
    while t0 < n_tok {
        let nt = (n_tok - t0).min(sum_x.len());
        for t in 0..nt {
            sum_x[t] = xrow(t0 + t)[..full * T2_BLOCK_ELEMS]
                .iter()
                .map(|&v| v as i32)
                .sum();
        }
        let mut put = |r: usize, t: usize, s: i32| {
            let mut v = s - sum_x[t - t0];
            if tail > 0 {
                v += tail_dot(&w[r * rb..(r + 1) * rb], full, tail, xrow(t));
            }
            out[r * n_tok + t] = v;
        };
        macro_rules! run_tile {
            ($R:literal, $T:literal, $r:expr, $t:expr) => {{
                // SAFETY: rows $r..$r+$R <= rows and tokens $t..$t+$T <= n_tok, so every row
                // pointer has `full * 32` bytes and every token pointer `full * 128` behind it.
                let s = unsafe {
                    tile::<$R, $T>(
                        core::array::from_fn(|i| wp($r + i)),
                        core::array::from_fn(|t| xp($t + t)),
                        full,
                    )
                };
                for i in 0..$R {
                    for t in 0..$T {
                        put($r + i, $t + t, s[i][t]);
                    }
                }
            }};
        }
        macro_rules! row_tiles {
            ($R:literal, $r:expr) => {{
                let mut t = t0;
                while t + 4 <= t0 + nt {
                    run_tile!($R, 4, $r, t);
                    t += 4;
                }
                match t0 + nt - t {
                    3 => run_tile!($R, 3, $r, t),
                    2 => run_tile!($R, 2, $r, t),
                    1 => run_tile!($R, 1, $r, t),
                    _ => {}
                }
            }};
        }
        let mut r = 0;
        while r + 2 <= rows {
            row_tiles!(2, r);
            r += 2;
        }
        if r < rows {
            row_tiles!(1, r);
        }
        t0 += nt;
    }
}
