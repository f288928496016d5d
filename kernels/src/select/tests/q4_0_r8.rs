//! The `Q4_0_R8` head matvec: scalar's and every variant's outputs against the Q4_0 head
//! matvec over the same rows stored row-major (itself checked against an f64 evaluation in
//! `float.rs`), bit for bit.

use proptest::prelude::*;

use super::*;
use crate::layout::q4_0_r8_interleave;

/// `rows` (a multiple of 8) Q4_0 rows of `nb` blocks, `w: (rows, 18 nb)` row-major, with
/// activations `q: (32 nb,)` and scales `d: (nb,)`: every set's `matvec_q4_0_r8_q8_0` on the
/// interleaved rows equals scalar `matvec_q4_0_q8_0` on `w`.
fn r8_check(w: &[u8], rows: usize, q: &[i8], d: &[f32]) {
    let nb = d.len();
    let mut want = vec![0f32; rows];
    (SCALAR.matvec_q4_0_q8_0)(w, q, d, &mut want);
    let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
    let mut r8 = vec![0u8; w.len()];
    if rows > 0 && nb > 0 {
        q4_0_r8_interleave(w, rows, 32 * nb, &mut r8);
    }
    assert_ne!(r8, w, "the interleaved rows differ from the row-major ones");
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let mut got = vec![f32::NAN; rows];
        (k.matvec_q4_0_r8_q8_0)(&r8, q, d, &mut got);
        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got,
            want,
            "{} matvec_q4_0_r8 ({rows} rows, {nb} blocks)",
            k.variant.name()
        );
    }
}

/// Random rows: any code byte, finite f16 scales, activations in `-128..=127`.
fn random_case(rows: usize, nb: usize, seed: u64) -> (Vec<u8>, Vec<i8>, Vec<f32>) {
    let mut next = xorshift(seed | 1);
    let mut w = Vec::with_capacity(rows * nb * 18);
    for _ in 0..rows * nb {
        let h = next() as u16;
        let h = if h & 0x7C00 == 0x7C00 { h & 0x83FF } else { h };
        w.extend(h.to_le_bytes());
        w.extend((0..16).map(|_| next() as u8));
    }
    let q = (0..32 * nb).map(|_| next() as u8 as i8).collect();
    let d = (0..nb)
        .map(|_| ((next() % 1000) as f32 + 1.0) * 1e-4)
        .collect();
    (w, q, d)
}

#[test]
fn q4_0_r8_edges() {
    // block counts around the 8-block partial-sum cycle, the 2B4T row (80), and past the SIMD
    // variants' stack of per-block offsets (1025: the scalar fallback)
    for nb in [1usize, 2, 7, 8, 9, 16, 17, 80, 1025] {
        for rows in [8usize, 24] {
            let (w, q, d) = random_case(rows, nb, (nb * 31 + rows) as u64);
            r8_check(&w, rows, &q, &d);
        }
    }
    // no rows
    let (_, q, d) = random_case(0, 3, 5);
    let mut out: [f32; 0] = [];
    for k in std::iter::once(&SCALAR).chain(variants()) {
        (k.matvec_q4_0_r8_q8_0)(&[], &q, &d, &mut out);
    }
}

/// The int16 sums' bound: every code 15 (or 0) against activations of -128 (or 127) in every
/// lane, with scales from the smallest subnormal to the largest finite f16.
#[test]
fn q4_0_r8_extremes() {
    for (code, x) in [
        (0xFFu8, -128i8),
        (0xFF, 127),
        (0x00, -128),
        (0x0F, -128),
        (0xF0, 127),
    ] {
        for scale in [0x3C00u16, 0x0001, 0x7BFF, 0xFBFF] {
            let (rows, nb) = (16usize, 9usize);
            let mut w = Vec::new();
            for _ in 0..rows * nb {
                w.extend(scale.to_le_bytes());
                w.extend([code; 16]);
            }
            let q = vec![x; 32 * nb];
            let d = vec![0.5f32; nb];
            r8_check(&w, rows, &q, &d);
        }
    }
}

#[test]
fn q4_0_r8_rejects_bad_shapes() {
    let (w, q, d) = random_case(8, 2, 9);
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let name = k.variant.name();
        // 7 rows; a byte short; activations of the wrong length
        let cases: [(&[u8], &[i8], usize); 3] = [
            (&w[..7 * 36], &q, 7),
            (&w[..w.len() - 1], &q, 8),
            (&w, &q[..63], 8),
        ];
        for (i, (w, q, rows)) in cases.into_iter().enumerate() {
            let r = std::panic::catch_unwind(|| {
                (k.matvec_q4_0_r8_q8_0)(w, q, &d, &mut vec![0.0; rows])
            });
            assert!(r.is_err(), "{name} case {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn q4_0_r8_matches_q4_0(groups in 1usize..4, nb in 1usize..40, seed in any::<u64>()) {
        let (w, q, d) = random_case(8 * groups, nb, seed);
        r8_check(&w, 8 * groups, &q, &d);
    }
}
