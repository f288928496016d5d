//! The multi-head (GQA) attention row kernels: scalar against its definition (the per-head row
//! dot and axpy, head after head), every variant against scalar, bit for bit.

use proptest::prelude::*;

use super::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// `heads` query heads over `rows` F16 rows of `n` values, `stride` values apart in `xf` (the
/// gaps hold values no kernel may read into a result): `q: (heads, n)` for the dots, `a:
/// (heads, rows)` weights and `y0: (heads, n)` starting sums for the axpys.
fn heads_check(heads: usize, rows: usize, stride: usize, xf: &[f32], q: &[f32], a: &[f32]) {
    let n = q.len() / heads;
    let end = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + n
    };
    let x = f16_bytes(&xf[..end]);
    // scalar against the definition: the row dot of each row with each head's query, and
    // `y += a · x_r` with one f32 multiply and one f32 add per value, rows in order
    let mut want = vec![f32::NAN; heads * rows];
    (SCALAR.dot_rows_heads_f16)(heads, &x, 2 * stride, q, &mut want);
    for h in 0..heads {
        for r in 0..rows {
            let row = &x[2 * r * stride..2 * (r * stride + n)];
            let d = (SCALAR.dot_f16)(row, &q[h * n..(h + 1) * n]);
            assert_eq!(
                want[h * rows + r].to_bits(),
                d.to_bits(),
                "scalar dots h {h} r {r}"
            );
        }
    }
    let y0: Vec<f32> = (0..heads * n)
        .map(|i| (i % 7) as f32 * 0.25 - 0.5)
        .collect();
    let mut ywant = y0.clone();
    (SCALAR.axpy_rows_heads_f16)(heads, a, &x, 2 * stride, &mut ywant);
    let mut def = y0.clone();
    for h in 0..heads {
        for r in 0..rows {
            for i in 0..n {
                let xv = half::f16::from_f32(xf[r * stride + i]).to_f32();
                def[h * n + i] += a[h * rows + r] * xv;
            }
        }
    }
    assert_eq!(bits(&ywant), bits(&def), "scalar axpys");
    for k in variants() {
        let name = k.variant.name();
        let mut got = vec![f32::NAN; heads * rows];
        (k.dot_rows_heads_f16)(heads, &x, 2 * stride, q, &mut got);
        assert_eq!(
            bits(&got),
            bits(&want),
            "{name} dot_rows_heads_f16 heads {heads} rows {rows} n {n} stride {stride}"
        );
        let mut y = y0.clone();
        (k.axpy_rows_heads_f16)(heads, a, &x, 2 * stride, &mut y);
        assert_eq!(
            bits(&y),
            bits(&ywant),
            "{name} axpy_rows_heads_f16 heads {heads} rows {rows} n {n} stride {stride}"
        );
    }
}

fn inputs(heads: usize, rows: usize, n: usize, stride: usize, seed: u64) -> [Vec<f32>; 3] {
    let mut r = xorshift(seed | 1);
    let mut val = move |scale: f32| ((r() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale;
    let xf = (0..rows * stride + n).map(|_| val(6.0)).collect();
    let q = (0..heads * n).map(|_| val(3.0)).collect();
    let a = (0..heads * rows).map(|_| val(1.0) + 0.5).collect();
    [xf, q, a]
}

#[test]
fn heads_kernel_edges() {
    // head counts around the 4-head passes; values per row around the dots' 32-value steps
    // and the axpys' 64- and 16-value stretches; odd and even row counts; strides equal to
    // and wider than the rows
    for heads in [1usize, 2, 3, 4, 5, 8] {
        for n in [0usize, 1, 3, 8, 16, 24, 32, 33, 48, 64, 80, 96, 128, 136] {
            for rows in [0usize, 1, 2, 3, 8, 17] {
                for gap in [0usize, 8] {
                    let stride = n + gap;
                    let [xf, q, a] = inputs(
                        heads,
                        rows,
                        n,
                        stride,
                        (heads * 1000 + n * 10 + rows) as u64,
                    );
                    heads_check(heads, rows, stride, &xf, &q, &a);
                }
            }
        }
    }
    // F16 specials in the rows: subnormals, ±0, 65504, +inf, and 1e9 (overflows to +inf)
    let sp = [
        6e-8f32,
        -6e-8,
        0.0,
        -0.0,
        65504.0,
        f32::INFINITY,
        -1.5e-5,
        2.0,
        1e9,
    ];
    let xf: Vec<f32> = sp.iter().cycle().take(9 * 64).copied().collect();
    let q: Vec<f32> = (0..4 * 64).map(|i| (i as f32 - 100.0) * 0.37).collect();
    heads_check(4, 9, 64, &xf, &q, &[0.75; 36]);
}

#[test]
fn heads_kernels_reject_bad_shapes() {
    let x = vec![0u8; 2 * 64];
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let name = k.variant.name();
        // no heads; q not whole heads' rows
        let r = std::panic::catch_unwind(|| (k.dot_rows_heads_f16)(0, &x, 64, &[], &mut []));
        assert!(r.is_err(), "{name} 0 heads");
        let r = std::panic::catch_unwind(|| {
            (k.dot_rows_heads_f16)(2, &x, 64, &[0.0; 33], &mut [0.0; 2])
        });
        assert!(r.is_err(), "{name} q of 33 values for 2 heads");
        // 3 rows of 32 at stride 32 need 96 values, x has 64
        let r = std::panic::catch_unwind(|| {
            (k.dot_rows_heads_f16)(2, &x, 64, &[0.0; 64], &mut [0.0; 6])
        });
        assert!(r.is_err(), "{name} dot rows past the end");
        let r = std::panic::catch_unwind(|| {
            (k.axpy_rows_heads_f16)(2, &[1.0; 6], &x, 64, &mut [0.0; 64])
        });
        assert!(r.is_err(), "{name} axpy rows past the end");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn heads_match_scalar(
        heads in 1usize..10,
        rows in 0usize..40,
        // any length, and as often whole 32-value steps (the SIMD dots' fast path)
        n in prop_oneof![0usize..200, (1usize..7).prop_map(|k| 32 * k)],
        gap in 0usize..20,
        seed in any::<u64>(),
    ) {
        let stride = n + gap;
        let [xf, q, a] = inputs(heads, rows, n, stride, seed);
        heads_check(heads, rows, stride, &xf, &q, &a);
    }
}
