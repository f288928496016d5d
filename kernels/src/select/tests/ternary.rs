//! Ternary matvec and matmul (both layouts, every variant) against the scalar reference.

use proptest::prelude::*;

use super::*;
use crate::layout::{t1_row_bytes, t2_row_bytes};

/// Every variant's matvec (scalar's too) refuses activations of the wrong length and weights
/// that are not `rows` whole rows, in either layout, instead of reading past them.
#[test]
fn matvec_rejects_bad_shapes() {
    let (rows, cols) = (3usize, 300usize);
    for l in TernaryLayout::ALL {
        let rb = l.row_bytes(cols);
        let w = vec![0u8; rows * rb];
        for k in std::iter::once(&SCALAR).chain(variants()) {
            let mv = k.matvec_ternary(l);
            let name = format!("{} {l:?}", k.variant.name());
            for (wl, xl) in [
                (rows * rb, cols - 1),
                (rows * rb - 1, cols),
                (rows * rb + rb, cols),
            ] {
                let wb = vec![0u8; wl];
                let r = std::panic::catch_unwind(|| mv(&wb, cols, &vec![0; xl], &mut [0; 3]));
                assert!(r.is_err(), "{name}: w {wl} bytes, x {xl}");
            }
            let mut out = [7i32; 3];
            mv(&w, cols, &vec![0; cols], &mut out);
            assert_eq!(out, [0; 3], "{name}: zero weights");
        }
    }
}

fn pack(l: TernaryLayout, w: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let rb = l.row_bytes(cols);
    let mut out = vec![0u8; rows * rb];
    for r in 0..rows {
        l.encode_row(&w[r * cols..(r + 1) * cols], &mut out[r * rb..(r + 1) * rb]);
    }
    out
}

fn check_matvec(l: TernaryLayout, w: &[i8], x: &[i8], rows: usize, cols: usize) {
    let packed = pack(l, w, rows, cols);
    let mut want = vec![0i32; rows];
    (SCALAR.matvec_ternary(l))(&packed, cols, x, &mut want);
    // and the scalar reference itself against a naive dot
    for r in 0..rows {
        let naive: i32 = (0..cols)
            .map(|c| w[r * cols + c] as i32 * x[c] as i32)
            .sum();
        assert_eq!(want[r], naive, "scalar {l:?} row {r}");
    }
    for k in variants() {
        let mut got = vec![7i32; rows];
        (k.matvec_ternary(l))(&packed, cols, x, &mut got);
        assert_eq!(
            got,
            want,
            "{} {l:?} matvec rows {rows} cols {cols}",
            k.variant.name()
        );
    }
}

/// Lengths around both block sizes (128, 160), the SIMD widths (16, 32) and the int16 windows
/// (8 and 10 T2 blocks, 12 T1 blocks).
const EDGE_COLS: [usize; 20] = [
    0, 1, 15, 31, 33, 127, 128, 129, 159, 160, 161, 255, 256, 257, 319, 320, 321, 384, 1000, 1921,
];

#[test]
fn matvec_edge_lengths_and_extremes() {
    for l in TernaryLayout::ALL {
        for cols in EDGE_COLS {
            for rows in [1usize, 2, 3, 4, 5, 9] {
                // extremes: -128 / 127 activations with +1 / -1 / 0 weights
                let w: Vec<i8> = (0..rows * cols).map(|i| [1i8, -1, 0][i % 3]).collect();
                let x: Vec<i8> = (0..cols)
                    .map(|i| if i % 2 == 0 { -128 } else { 127 })
                    .collect();
                check_matvec(l, &w, &x, rows, cols);
                let x: Vec<i8> = vec![-128; cols];
                let w: Vec<i8> = vec![1; rows * cols];
                check_matvec(l, &w, &x, rows, cols);
                let w: Vec<i8> = vec![-1; rows * cols];
                check_matvec(l, &w, &x, rows, cols);
            }
        }
    }
}

/// Raw packed bytes (T2_128: codes 0..=3, code 3 included: every variant reads it as +2;
/// T1_160: any byte, every variant decodes it with the spec's multiply-and-shift).
fn check_matvec_raw(l: TernaryLayout, packed: &[u8], x: &[i8], rows: usize, cols: usize) {
    let mut want = vec![0i32; rows];
    (SCALAR.matvec_ternary(l))(packed, cols, x, &mut want);
    if l == TernaryLayout::T1_160 {
        // the scalar kernel against the layout's decode, weight by weight
        let rb = l.row_bytes(cols);
        let mut wr = vec![0i8; cols];
        for r in 0..rows {
            l.decode_row(&packed[r * rb..(r + 1) * rb], &mut wr);
            let naive: i32 = (0..cols).map(|c| wr[c] as i32 * x[c] as i32).sum();
            assert_eq!(want[r], naive, "scalar raw {l:?} row {r}");
        }
    }
    for k in variants() {
        let mut got = vec![7i32; rows];
        (k.matvec_ternary(l))(packed, cols, x, &mut got);
        assert_eq!(
            got,
            want,
            "{} {l:?} raw matvec rows {rows} cols {cols}",
            k.variant.name()
        );
    }
}

/// T2_128: every code 3 (the largest code, +2) or 0 against -128, the extreme of every int16
/// window: over more blocks than one window of the AVX2 matvec (5 blocks), of the matmul
/// chunks (10) and of the NEON + dotprod matvec's folds (256), with rows on and off the
/// 4-row tile.
#[test]
fn matvec_code3_extremes() {
    for cols in [128usize, 129, 256, 1000, 1280, 1409, 33_025] {
        for rows in [1usize, 2, 3, 4, 5] {
            let l = TernaryLayout::T2_128;
            let packed = vec![0xFFu8; rows * t2_row_bytes(cols)]; // all code 3 (+2)
            check_matvec_raw(l, &packed, &vec![-128i8; cols], rows, cols);
            let packed = vec![0x00u8; rows * t2_row_bytes(cols)]; // all code 0 (-1)
            check_matvec_raw(l, &packed, &vec![-128i8; cols], rows, cols);
        }
    }
}

/// T1_160: every byte value (0x00 decodes to five -1, 0xFF to five +1; 243..=255 are bytes the
/// encoder never writes) in every position, against -128 and 127 over more blocks than one
/// int16 window (12 blocks), with rows off the 4-row tile and a partial last block.
#[test]
fn matvec_t1_every_byte_and_extremes() {
    let l = TernaryLayout::T1_160;
    for cols in [160usize, 1920, 2081, 2240, 4000] {
        for rows in [1usize, 3, 4, 5] {
            let rb = t1_row_bytes(cols);
            for byte in [0x00u8, 0xFF, 0xF3, 0x80, 0x56, 0xAB] {
                let packed = vec![byte; rows * rb];
                for xv in [-128i8, 127] {
                    check_matvec_raw(l, &packed, &vec![xv; cols], rows, cols);
                }
            }
            let packed: Vec<u8> = (0..rows * rb).map(|i| (i * 7 + i / 32) as u8).collect();
            let x: Vec<i8> = (0..cols).map(|i| (i * 13) as i8).collect();
            check_matvec_raw(l, &packed, &x, rows, cols);
        }
    }
}

fn check_matmul(l: TernaryLayout, w: &[i8], x: &[i8], rows: usize, cols: usize, n_tok: usize) {
    let packed = pack(l, w, rows, cols);
    let mut want = vec![0i32; rows * n_tok];
    (SCALAR.matmul_ternary(l))(&packed, cols, x, n_tok, &mut want);
    for r in 0..rows {
        for t in 0..n_tok {
            let naive: i32 = (0..cols)
                .map(|c| w[r * cols + c] as i32 * x[t * cols + c] as i32)
                .sum();
            assert_eq!(
                want[r * n_tok + t],
                naive,
                "scalar {l:?} matmul row {r} token {t}"
            );
        }
    }
    for k in variants() {
        let mut got = vec![7i32; rows * n_tok];
        (k.matmul_ternary(l))(&packed, cols, x, n_tok, &mut got);
        assert_eq!(
            got,
            want,
            "{} {l:?} matmul rows {rows} cols {cols} n_tok {n_tok}",
            k.variant.name()
        );
    }
}

#[test]
fn matmul_edges() {
    for l in TernaryLayout::ALL {
        for (rows, cols, n_tok) in [
            (1, 128, 1),
            (1, 160, 1),
            (2, 159, 3),
            (3, 161, 2),
            (5, 257, 3),
            (4, 384, 65),
            (9, 1000, 2),
            (3, 0, 4),
            (2, 127, 70),
            // several decoded chunks plus a tail; token and row counts off every tile size
            (7, 2 * 2048 + 200, 67),
            (6, 3 * 1920 + 33, 13),
        ] {
            let w: Vec<i8> = (0..rows * cols)
                .map(|i| [1i8, -1, 0, 1, 1][i % 5])
                .collect();
            let x: Vec<i8> = (0..n_tok * cols)
                .map(|i| {
                    if i % 3 == 0 {
                        -128
                    } else {
                        (i * 7 % 255) as i8
                    }
                })
                .collect();
            check_matmul(l, &w, &x, rows, cols, n_tok);
        }
    }
}

/// Raw packed bytes (any byte; T2_128 code 3 included) through every matmul variant, against
/// scalar's matmul and scalar's matvec per token.
fn check_matmul_raw(
    l: TernaryLayout,
    packed: &[u8],
    x: &[i8],
    rows: usize,
    cols: usize,
    n_tok: usize,
) {
    let mut want = vec![0i32; rows * n_tok];
    (SCALAR.matmul_ternary(l))(packed, cols, x, n_tok, &mut want);
    for t in 0..n_tok {
        let mut col = vec![0i32; rows];
        (SCALAR.matvec_ternary(l))(packed, cols, &x[t * cols..(t + 1) * cols], &mut col);
        for r in 0..rows {
            assert_eq!(
                want[r * n_tok + t],
                col[r],
                "scalar {l:?} raw matmul row {r} token {t}"
            );
        }
    }
    for k in variants() {
        let mut got = vec![7i32; rows * n_tok];
        (k.matmul_ternary(l))(packed, cols, x, n_tok, &mut got);
        assert_eq!(
            got,
            want,
            "{} {l:?} raw matmul rows {rows} cols {cols} n_tok {n_tok}",
            k.variant.name()
        );
        for t in 0..n_tok {
            let mut col = vec![7i32; rows];
            (k.matvec_ternary(l))(packed, cols, &x[t * cols..(t + 1) * cols], &mut col);
            for r in 0..rows {
                assert_eq!(
                    col[r],
                    want[r * n_tok + t],
                    "{} {l:?} raw matvec row {r} cols {cols}",
                    k.variant.name()
                );
            }
        }
    }
}

/// Worst-case int16 sums in tiled matmuls and matvecs (T2_128: all code 3 = +2 or code 0 = -1;
/// T1_160: all +1 (0xFF) or -1 (0x00); against -128 or 127, over more blocks than one int16
/// run: 8 blocks in the NEON T2 tile, 10 in AVX2's, 12 T1 blocks), rows and tokens that are not
/// multiples of the tile, and a partial last block.
#[test]
fn matmul_code3_extremes() {
    for l in TernaryLayout::ALL {
        for cols in [1024usize, 1029, 1157, 1285, 1920, 2081, 2181, 4133] {
            for (rows, n_tok) in [(1usize, 1usize), (3, 5), (2, 7), (5, 4)] {
                let rb = l.row_bytes(cols);
                for byte in [0xFFu8, 0x00, 0xAA] {
                    let packed = vec![byte; rows * rb];
                    for xv in [-128i8, 127] {
                        check_matmul_raw(l, &packed, &vec![xv; n_tok * cols], rows, cols, n_tok);
                    }
                }
            }
        }
    }
}

/// Prefill-sized token counts (the AVX2 and NEON matmuls' lookup tables take one or two blocks
/// of up to 32 tokens per pass, the register tiles a rest under 16): raw bytes, code 3 (whose row tiles
/// fall back to the matvec) only in some calls, more rows than one table pass (2048 rows) with
/// one token block and with two, partial last blocks, and the extremes of int8 against
/// all-+1 / all-−1 rows (the int16 block sums' worst case), also with -128 in only one of two
/// token blocks (which must still shorten the int16 window of both).
#[test]
fn matmul_prefill_token_blocks() {
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for l in TernaryLayout::ALL {
        for (rows, cols, n_tok) in [
            (3, 128, 16),
            (5, 300, 31),
            (7, 1000, 32),
            (2, 640, 33),
            (9, 257, 64),
            (4, 2560, 70),
            (2100, 200, 40),
            (2100, 300, 50),
            (3, 700, 47),
            (3, 700, 48),
        ] {
            let w: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
            let x: Vec<i8> = (0..n_tok * cols).map(|_| next() as i8).collect();
            check_matmul(l, &w, &x, rows, cols, n_tok);
            // raw bytes (T2_128: code 3 included)
            let packed: Vec<u8> = (0..rows * l.row_bytes(cols))
                .map(|_| next() as u8)
                .collect();
            check_matmul_raw(l, &packed, &x, rows, cols, n_tok);
            // one odd byte (T2_128: a code 3) in the last row only
            let mut packed = pack(l, &w, rows, cols);
            let at = packed.len() - 1;
            packed[at] |= 0b11;
            check_matmul_raw(l, &packed, &x, rows, cols, n_tok);
        }
        for (rows, cols, n_tok) in [(3, 4096, 32), (2, 1029, 17), (2, 4096, 64), (3, 1029, 50)] {
            for wv in [1i8, -1] {
                for xv in [-128i8, 127] {
                    let (w, x) = (vec![wv; rows * cols], vec![xv; n_tok * cols]);
                    check_matmul(l, &w, &x, rows, cols, n_tok);
                }
                // -128 in one token block only
                for split in [32, 5] {
                    let w = vec![wv; rows * cols];
                    let x: Vec<i8> = (0..n_tok * cols)
                        .map(|i| {
                            if (i / cols < split) == (split == 32) {
                                127
                            } else {
                                -128
                            }
                        })
                        .collect();
                    check_matmul(l, &w, &x, rows, cols, n_tok);
                }
            }
        }
    }
}

/// The int16 window's worst case: every weight +1 and every activation -128 over a whole
/// window sums to exactly -32768 per lane (T2_128, 16 blocks) or -30720 (T1_160, 12 blocks).
#[test]
fn matmul_int16_extreme() {
    for l in TernaryLayout::ALL {
        for (rows, cols, n_tok) in [(5, 4096, 7), (3, 2048, 13), (4, 3840, 3)] {
            let w = vec![1i8; rows * cols];
            let x = vec![-128i8; n_tok * cols];
            check_matmul(l, &w, &x, rows, cols, n_tok);
            let w = vec![-1i8; rows * cols];
            check_matmul(l, &w, &x, rows, cols, n_tok);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn matvec_matches_scalar(rows in 1usize..10, cols in 0usize..700, t1 in any::<bool>(), seed in any::<u64>()) {
        let l = if t1 { TernaryLayout::T1_160 } else { TernaryLayout::T2_128 };
        let mut next = xorshift(seed | 1);
        let w: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        let x: Vec<i8> = (0..cols).map(|_| next() as i8).collect();
        check_matvec(l, &w, &x, rows, cols);
    }

    #[test]
    fn matvec_raw_bytes_match_scalar(rows in 1usize..6, cols in 0usize..600, t1 in any::<bool>(), seed in any::<u64>()) {
        let l = if t1 { TernaryLayout::T1_160 } else { TernaryLayout::T2_128 };
        let mut next = xorshift(seed | 1);
        let packed: Vec<u8> = (0..rows * l.row_bytes(cols)).map(|_| next() as u8).collect();
        let x: Vec<i8> = (0..cols).map(|_| next() as i8).collect();
        check_matvec_raw(l, &packed, &x, rows, cols);
    }

    #[test]
    fn matmul_matches_scalar(rows in 1usize..10, cols in 0usize..500, n_tok in 1usize..9, t1 in any::<bool>(), seed in any::<u64>()) {
        let l = if t1 { TernaryLayout::T1_160 } else { TernaryLayout::T2_128 };
        let mut next = xorshift(seed | 1);
        let w: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        let x: Vec<i8> = (0..n_tok * cols).map(|_| next() as i8).collect();
        check_matmul(l, &w, &x, rows, cols, n_tok);
    }

    #[test]
    fn matmul_raw_bytes_match_scalar(rows in 1usize..10, cols in 0usize..1200, n_tok in 1usize..10, t1 in any::<bool>(), seed in any::<u64>()) {
        let l = if t1 { TernaryLayout::T1_160 } else { TernaryLayout::T2_128 };
        let mut next = xorshift(seed | 1);
        let packed: Vec<u8> = (0..rows * l.row_bytes(cols)).map(|_| next() as u8).collect();
        let x: Vec<i8> = (0..n_tok * cols).map(|_| next() as i8).collect();
        check_matmul_raw(l, &packed, &x, rows, cols, n_tok);
    }

    #[test]
    fn matmul_prefill_matches_scalar(rows in 1usize..40, cols in 0usize..700, n_tok in 14usize..72, t1 in any::<bool>(), seed in any::<u64>()) {
        let l = if t1 { TernaryLayout::T1_160 } else { TernaryLayout::T2_128 };
        let mut next = xorshift(seed | 1);
        let w: Vec<i8> = (0..rows * cols).map(|_| (next() % 3) as i8 - 1).collect();
        let x: Vec<i8> = (0..n_tok * cols).map(|_| next() as i8).collect();
        check_matmul(l, &w, &x, rows, cols, n_tok);
    }
}
