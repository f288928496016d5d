//! The Q8_0 KV-cache row kernels: scalar against its definition (written out here with the
//! `half` crate's f16 conversion), every variant against scalar, bit for bit.

use proptest::prelude::*;

use super::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// `rows` Q8_0 rows of `nb` blocks: scales from `scales` in turn, int8 values over the whole
/// range (-128 included) from the seed.
fn rows_q8_0(rows: usize, nb: usize, scales: &[f32], seed: u64) -> Vec<u8> {
    let mut r = xorshift(seed | 1);
    let mut out = Vec::with_capacity(rows * nb * 34);
    for i in 0..rows * nb {
        let d = half::f16::from_f32(scales[i % scales.len()]);
        out.extend_from_slice(&d.to_bits().to_le_bytes());
        out.extend((0..32).map(|_| r() as u8));
    }
    out
}

/// `nb` blocks of query activations as the Q8_0 quantizer leaves them: values in [-127, 127],
/// scales `d` (any f32, negative ones too).
fn query(nb: usize, seed: u64) -> (Vec<i8>, Vec<f32>) {
    let mut r = xorshift(seed.wrapping_mul(31) | 1);
    let q = (0..32 * nb)
        .map(|_| ((r() % 255) as i16 - 127) as i8)
        .collect();
    let d = (0..nb)
        .map(|_| ((r() >> 40) as f32 / (1u64 << 24) as f32 - 0.3) * 0.02)
        .collect();
    (q, d)
}

/// Checks scalar against the definition and every variant against scalar on `x: (rows, nb
/// blocks)` with the query `(q, d)`, weights `a: (rows,)`.
fn check(rows: usize, x: &[u8], (q, d): (&[i8], &[f32]), a: &[f32]) {
    let nb = d.len();
    let n = 32 * nb;
    let f16 = |b: &[u8]| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
    // dots: per row, one f32 sum over the blocks in order of (d_w · d_b) · Σ w·q
    let mut want = vec![f32::NAN; rows];
    (SCALAR.dot_rows_q8_0)(x, q, d, &mut want);
    for (r, &w) in want.iter().enumerate() {
        let mut acc = 0.0f32;
        for b in 0..nb {
            let blk = &x[(r * nb + b) * 34..(r * nb + b + 1) * 34];
            let s: i32 = (0..32)
                .map(|i| i32::from(blk[2 + i] as i8) * i32::from(q[32 * b + i]))
                .sum();
            acc += (f16(blk) * d[b]) * s as f32;
        }
        assert_eq!(
            w.to_bits(),
            acc.to_bits(),
            "scalar dot row {r} of {rows}, {nb} blocks"
        );
    }
    // axpys: rows in order, per block c = a_r · d_w, then y += c · v
    let y0: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
    let mut ywant = y0.clone();
    (SCALAR.axpy_rows_q8_0)(a, x, &mut ywant);
    let mut def = y0.clone();
    for (r, &ar) in a.iter().enumerate() {
        for b in 0..nb {
            let blk = &x[(r * nb + b) * 34..(r * nb + b + 1) * 34];
            let c = ar * f16(blk);
            for i in 0..32 {
                def[32 * b + i] += c * f32::from(blk[2 + i] as i8);
            }
        }
    }
    assert_eq!(
        bits(&ywant),
        bits(&def),
        "scalar axpys, {rows} rows, {nb} blocks"
    );
    for k in variants() {
        let name = k.variant.name();
        let mut got = vec![f32::NAN; rows];
        (k.dot_rows_q8_0)(x, q, d, &mut got);
        assert_eq!(
            bits(&got),
            bits(&want),
            "{name} dot_rows_q8_0 rows {rows} blocks {nb}"
        );
        let mut y = y0.clone();
        (k.axpy_rows_q8_0)(a, x, &mut y);
        assert_eq!(
            bits(&y),
            bits(&ywant),
            "{name} axpy_rows_q8_0 rows {rows} blocks {nb}"
        );
    }
}

fn weights(rows: usize, seed: u64) -> Vec<f32> {
    let mut r = xorshift(seed.wrapping_mul(17) | 1);
    (0..rows)
        .map(|_| (r() >> 40) as f32 / (1u64 << 24) as f32)
        .collect()
}

const SCALES: [f32; 5] = [0.0123, 0.0031, 0.047, 0.0009, 0.02];

#[test]
fn kv_q8_0_kernel_edges() {
    // rows around the dots' 8- (AVX2) and 4-row (NEON) steps, blocks around the axpys'
    // two-block stretches (4 blocks: a head of 128 values)
    for nb in 0..=9usize {
        for rows in [0usize, 1, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 33] {
            let seed = (nb * 100 + rows) as u64;
            let x = rows_q8_0(rows, nb, &SCALES, seed);
            let (q, d) = query(nb, seed);
            check(rows, &x, (&q, &d), &weights(rows, seed));
        }
    }
    // f16 specials as block scales: ±0, a subnormal, the largest half, +inf, NaN
    let sp = [0.0f32, -0.0, 6e-8, 65504.0, f32::INFINITY, f32::NAN, -0.5];
    let x = rows_q8_0(17, 4, &sp, 7);
    let (q, d) = query(4, 7);
    check(17, &x, (&q, &d), &weights(17, 7));
    // the extreme integer sums: every weight -128 and every activation ±127
    let mut x = rows_q8_0(9, 4, &SCALES, 9);
    for blk in x.chunks_exact_mut(34) {
        blk[2..].fill(0x80);
    }
    for sign in [127i8, -127] {
        check(9, &x, (&[sign; 128], &[0.01; 4]), &weights(9, 9));
    }
}

#[test]
fn kv_q8_0_kernels_reject_bad_shapes() {
    let x = vec![0u8; 4 * 34];
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let name = k.variant.name();
        let r =
            std::panic::catch_unwind(|| (k.dot_rows_q8_0)(&x, &[0; 64], &[1.0; 2], &mut [0.0; 3]));
        assert!(
            r.is_err(),
            "{name} dot: 3 rows of 2 blocks in 4 blocks' bytes"
        );
        let r =
            std::panic::catch_unwind(|| (k.dot_rows_q8_0)(&x, &[0; 63], &[1.0; 2], &mut [0.0; 2]));
        assert!(r.is_err(), "{name} dot: q of 63 values for 2 blocks");
        let r = std::panic::catch_unwind(|| (k.axpy_rows_q8_0)(&[1.0; 3], &x, &mut [0.0; 64]));
        assert!(
            r.is_err(),
            "{name} axpy: 3 rows of 2 blocks in 4 blocks' bytes"
        );
        let r = std::panic::catch_unwind(|| (k.axpy_rows_q8_0)(&[1.0; 2], &x, &mut [0.0; 60]));
        assert!(
            r.is_err(),
            "{name} axpy: y of 60 values is not whole blocks"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn kv_q8_0_match_scalar(
        rows in 0usize..40,
        nb in prop_oneof![0usize..10, Just(4usize)],
        seed in any::<u64>(),
        scale in 1e-5f32..0.1,
    ) {
        let x = rows_q8_0(rows, nb, &[scale, scale * 0.37, scale * 2.1], seed);
        let (q, d) = query(nb, seed);
        check(rows, &x, (&q, &d), &weights(rows, seed));
    }
}
