//! Float kernels (row dots, axpys, transposed rescale, Q8_0/Q4_0 head dots) and the int8
//! quantizers, every variant against the scalar reference.

use proptest::prelude::*;

use super::*;

fn quant_check(x: &[f32]) {
    let mut want = vec![0i8; x.len()];
    let s = (SCALAR.quantize_i8)(x, &mut want);
    for k in variants() {
        let mut got = vec![1i8; x.len()];
        let s2 = (k.quantize_i8)(x, &mut got);
        assert_eq!(s.to_bits(), s2.to_bits(), "{} s_a", k.variant.name());
        assert_eq!(got, want, "{} quantize len {}", k.variant.name(), x.len());
    }
}

#[test]
fn quantize_edges() {
    for n in [0usize, 1, 7, 8, 9, 31, 32, 33, 100, 256] {
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 40.0) * 0.5).collect();
        quant_check(&x);
    }
    // ties at k + 0.5 after scaling, NaN, infinities, zeros
    quant_check(&[
        127.0, 0.5, 1.5, 2.5, -0.5, -127.0, 3.5, -2.5, 0.0, 1.0, 126.5, -126.5,
    ]);
    let mut x = vec![1.0f32; 40];
    x[3] = f32::NAN;
    x[17] = -f32::NAN;
    quant_check(&x);
    x[5] = f32::INFINITY;
    quant_check(&x);
    quant_check(&[0.0; 33]);
    // quiet NaNs with payloads and either sign, subnormals, -0.0, in the SIMD part and the tail.
    // (Not signalling NaNs: on aarch64 the scalar `f32::max` lowers to FMAXNM, which returns
    // NaN for an sNaN operand, so the scalar reference itself then deviates from its spec.)
    let mut x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 1e-39).collect();
    x[2] = -0.0;
    x[4] = f32::from_bits(0x7FC0_0001);
    x[9] = f32::from_bits(0xFFC0_1234);
    x[35] = f32::from_bits(0xFFFF_FFFF);
    quant_check(&x);
    x[20] = 3.0e38;
    x[21] = -f32::INFINITY;
    quant_check(&x);
}

/// F16 specials: subnormals, ±0, the largest finite value, +inf, a small normal, 2.
const F16_SPECIALS: [f32; 8] = [6e-8, -6e-8, 0.0, -0.0, 65504.0, f32::INFINITY, -1.5e-5, 2.0];

fn dot_check(wf: &[f32], x: &[f32]) {
    let w16 = f16_bytes(wf);
    let wb: Vec<u8> = wf
        .iter()
        .flat_map(|&v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let w32: Vec<u8> = wf.iter().flat_map(|&v| v.to_le_bytes()).collect();
    for k in variants() {
        let n = k.variant.name();
        assert_eq!(
            (k.dot_f16)(&w16, x).to_bits(),
            (SCALAR.dot_f16)(&w16, x).to_bits(),
            "{n} f16 len {}",
            x.len()
        );
        assert_eq!(
            (k.dot_bf16)(&wb, x).to_bits(),
            (SCALAR.dot_bf16)(&wb, x).to_bits(),
            "{n} bf16 len {}",
            x.len()
        );
        assert_eq!(
            (k.dot_f32)(&w32, x).to_bits(),
            (SCALAR.dot_f32)(&w32, x).to_bits(),
            "{n} f32 len {}",
            x.len()
        );
    }
}

/// Every variant's strided row kernels against scalar, bit for bit, and scalar against its
/// definition: `rows` rows of `n = y0.len()` elements, `stride` elements apart in `xf`
/// (the gaps hold values no kernel may read into a result), weights `a: (rows,)`.
/// `dot_rows`: each row dotted with `y0` equals the row dot; `axpy_rows`: `y0 += Σ a[r] x_r`,
/// one f32 multiply and one f32 add per element and row, rows in order.
fn rows_check(a: &[f32], xf: &[f32], stride: usize, y0: &[f32]) {
    let (n, rows) = (y0.len(), a.len());
    assert!(rows == 0 || (rows - 1) * stride + n <= xf.len());
    let x16 = f16_bytes(xf);
    let x32: Vec<u8> = xf.iter().flat_map(|&v| v.to_le_bytes()).collect();
    let xb16: Vec<u8> = xf
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    // the rows' byte extent, so a kernel reading past the last row would panic
    let end = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + n
    };
    let (x16, x32, xb16) = (&x16[..2 * end], &x32[..4 * end], &xb16[..2 * end]);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();

    let (mut w16, mut w32) = (y0.to_vec(), y0.to_vec());
    (SCALAR.axpy_rows_f16)(a, x16, 2 * stride, &mut w16);
    (SCALAR.axpy_rows_f32)(a, x32, 4 * stride, &mut w32);
    let mut def = y0.to_vec();
    for (r, &ar) in a.iter().enumerate() {
        for (i, d) in def.iter_mut().enumerate() {
            *d += ar * xf[r * stride + i];
        }
    }
    assert_eq!(bits(&w32), bits(&def), "scalar axpy_rows f32");
    let (mut d16, mut d32, mut db16) = (vec![0f32; rows], vec![0f32; rows], vec![0f32; rows]);
    (SCALAR.dot_rows_f16)(x16, 2 * stride, y0, &mut d16);
    (SCALAR.dot_rows_f32)(x32, 4 * stride, y0, &mut d32);
    (SCALAR.dot_rows_bf16)(xb16, 2 * stride, y0, &mut db16);
    for r in 0..rows {
        let (s16, s32) = (r * stride * 2, r * stride * 4);
        assert_eq!(
            d16[r].to_bits(),
            (SCALAR.dot_f16)(&x16[s16..s16 + 2 * n], y0).to_bits()
        );
        assert_eq!(
            d32[r].to_bits(),
            (SCALAR.dot_f32)(&x32[s32..s32 + 4 * n], y0).to_bits()
        );
        assert_eq!(
            db16[r].to_bits(),
            (SCALAR.dot_bf16)(&xb16[s16..s16 + 2 * n], y0).to_bits()
        );
    }
    for k in variants() {
        let name = k.variant.name();
        let (mut g16, mut g32) = (y0.to_vec(), y0.to_vec());
        (k.axpy_rows_f16)(a, x16, 2 * stride, &mut g16);
        (k.axpy_rows_f32)(a, x32, 4 * stride, &mut g32);
        assert_eq!(
            bits(&g16),
            bits(&w16),
            "{name} axpy_rows f16 n {n} rows {rows}"
        );
        assert_eq!(
            bits(&g32),
            bits(&w32),
            "{name} axpy_rows f32 n {n} rows {rows}"
        );
        let (mut e16, mut e32, mut eb16) = (vec![0f32; rows], vec![0f32; rows], vec![0f32; rows]);
        (k.dot_rows_f16)(x16, 2 * stride, y0, &mut e16);
        (k.dot_rows_f32)(x32, 4 * stride, y0, &mut e32);
        (k.dot_rows_bf16)(xb16, 2 * stride, y0, &mut eb16);
        assert_eq!(
            bits(&e16),
            bits(&d16),
            "{name} dot_rows f16 n {n} rows {rows}"
        );
        assert_eq!(
            bits(&e32),
            bits(&d32),
            "{name} dot_rows f32 n {n} rows {rows}"
        );
        assert_eq!(
            bits(&eb16),
            bits(&db16),
            "{name} dot_rows bf16 n {n} rows {rows}"
        );
    }
}

#[test]
fn row_kernel_edges() {
    // lengths around the 8-lane vectors, the 64-element register stretch and the 8-row dots'
    // 64-column steps (one or more steps and a tail of 8 to 56 columns); row counts around
    // the 8-row blocks; strides equal to and wider than the rows
    for n in [
        0usize, 1, 3, 7, 8, 9, 16, 31, 32, 33, 63, 64, 65, 72, 96, 128, 131, 136, 200,
    ] {
        for rows in [0usize, 1, 2, 7, 8, 9, 16, 17, 25] {
            for gap in [0usize, 3] {
                let stride = n + gap;
                let x: Vec<f32> = (0..rows * stride + n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.173)
                    .collect();
                let y: Vec<f32> = (0..n).map(|i| 1.0 / (i as f32 + 0.7)).collect();
                let a: Vec<f32> = (0..rows)
                    .map(|r| [0.0f32, 1.0, -0.3125, 1e-30, 3.4e38][r % 5])
                    .collect();
                rows_check(&a, &x, stride, &y);
            }
        }
    }
    // f16 specials: subnormals, ±0, ±inf in x
    let x: Vec<f32> = F16_SPECIALS.iter().cycle().take(37 * 9).copied().collect();
    rows_check(&[0.75; 9], &x, 37, &[0.5; 37]);
}

/// `F16_R8` row dots: scalar's `dot_panels_f16` against the row dot of each row-major F16 row
/// (the layout's definition: the same sums as the rows it reorders), and every variant
/// against scalar, bit for bit. `wf: (rows, cols)` row-major values.
fn panels_check(wf: &[f32], rows: usize, x: &[f32]) {
    let cols = x.len();
    let w16 = f16_bytes(wf);
    let mut p = vec![0u8; w16.len()];
    if rows > 0 {
        crate::layout::f16_r8_interleave(&w16, rows, cols, &mut p);
    }
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let want: Vec<f32> = (0..rows)
        .map(|r| (SCALAR.dot_f16)(&w16[r * 2 * cols..(r + 1) * 2 * cols], x))
        .collect();
    let mut got = vec![f32::NAN; rows];
    (SCALAR.dot_panels_f16)(&p, x, &mut got);
    assert_eq!(
        bits(&got),
        bits(&want),
        "scalar dot_panels_f16 ({rows}, {cols})"
    );
    for k in variants() {
        let mut g = vec![f32::NAN; rows];
        (k.dot_panels_f16)(&p, x, &mut g);
        assert_eq!(
            bits(&g),
            bits(&want),
            "{} dot_panels_f16 ({rows}, {cols})",
            k.variant.name()
        );
    }
}

#[test]
fn panel_kernel_edges() {
    // groups 0..3, one piece and several, an LM-head width; f16 specials in the weights
    for (rows, cols) in [
        (0usize, 32usize),
        (8, 32),
        (8, 64),
        (16, 96),
        (24, 32),
        (8, 2560),
    ] {
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.173)
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| 1.0 / (i as f32 + 0.7)).collect();
        panels_check(&w, rows, &x);
    }
    // and 1e9, which overflows F16 to +inf
    let specials = F16_SPECIALS.iter().chain(&[1e9]);
    let w: Vec<f32> = specials.cycle().take(16 * 64).copied().collect();
    let x: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.37).collect();
    panels_check(&w, 16, &x);
}

#[test]
fn panel_kernels_reject_bad_shapes() {
    let w = vec![0u8; 2 * 8 * 64];
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let name = k.variant.name();
        // 7 rows, 48 columns, and a length that is not rows · cols · 2
        for (len, cols, rows) in [
            (2 * 7 * 64, 64, 7),
            (2 * 8 * 48, 48, 8),
            (2 * 8 * 64 - 2, 64, 8),
        ] {
            let r = std::panic::catch_unwind(|| {
                (k.dot_panels_f16)(&w[..len], &vec![0.0; cols], &mut vec![0.0; rows])
            });
            assert!(r.is_err(), "{name} ({rows}, {cols}), {len} bytes");
        }
    }
}

#[test]
fn row_kernels_reject_bad_shapes() {
    let x = vec![0u8; 2 * 40];
    for k in variants() {
        // 3 rows of 16 F16 elements at a 12-element stride overlap
        let r = std::panic::catch_unwind(|| (k.dot_rows_f16)(&x, 24, &[0.0; 16], &mut [0.0; 3]));
        assert!(r.is_err(), "{} overlapping rows", k.variant.name());
        // 3 rows of 16 at stride 16 need 48 elements, x has 40
        let r = std::panic::catch_unwind(|| (k.axpy_rows_f16)(&[1.0; 3], &x, 32, &mut [0.0; 16]));
        assert!(r.is_err(), "{} rows past the end", k.variant.name());
    }
}

/// Every variant's transposed rescale against scalar (bit for bit), and scalar against the
/// definition, for shapes off the 8 × 8 tile and a stride wider than the rows.
#[test]
fn rescale_t_matches_scalar() {
    for (rows, nt, extra) in [
        (0usize, 3usize, 0usize),
        (5, 0, 1),
        (8, 8, 0),
        (17, 9, 3),
        (40, 33, 0),
        (3, 70, 5),
    ] {
        // small sums (exact in f32) in even rows, sums beyond 2^24 (rounded by the conversion),
        // i32::MIN and i32::MAX in odd ones
        let a: Vec<i32> = (0..rows * nt)
            .map(|i| match (i / nt.max(1)) % 2 {
                0 => (i as i32 * 7919) % 200_003 - 100_000,
                _ => match i % 5 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    _ => (i as i32).wrapping_mul(0x2F6B_4A3D) | 0x0100_0001,
                },
            })
            .collect();
        let s_a: Vec<f32> = (0..nt).map(|t| 0.37 + t as f32 * 1.13).collect();
        let stride = rows + extra;
        let len = if nt == 0 {
            0
        } else {
            (nt - 1) * stride + rows + 2
        };
        let mut want = vec![f32::NAN; len];
        (SCALAR.rescale_t_i32)(&a, rows, 41.5, &s_a, &mut want, stride);
        for t in 0..nt {
            for r in 0..rows {
                let d = 41.5f32 * s_a[t];
                assert_eq!(
                    want[t * stride + r].to_bits(),
                    (a[r * nt + t] as f32 / d).to_bits()
                );
            }
        }
        for k in variants() {
            let mut got = vec![f32::NAN; len];
            (k.rescale_t_i32)(&a, rows, 41.5, &s_a, &mut got, stride);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{} rescale_t {rows}x{nt}",
                k.variant.name()
            );
        }
    }
}

fn q8_check(x: &[f32], wf: &[f32]) {
    let n = x.len();
    let mut q = vec![0i8; n];
    let mut d = vec![0f32; n / 32];
    (SCALAR.quantize_q8_0)(x, &mut q, &mut d);
    // weights in Q8_0 blocks (built independently here: d = amax/127 as f16, q = round)
    let mut w = Vec::new();
    for b in wf.chunks(32) {
        let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
        let dd = half::f16::from_f32(amax / 127.0);
        w.extend(dd.to_bits().to_le_bytes());
        let id = if dd.to_f32() != 0.0 {
            1.0 / dd.to_f32()
        } else {
            0.0
        };
        w.extend(
            b.iter()
                .map(|v| (v * id).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    let want = (SCALAR.dot_q8_0)(&w, &q, &d);
    // the scalar dot against a plain f64 evaluation of the same quantized values
    let terms: Vec<f64> = (0..n / 32)
        .map(|b| {
            let dw = half::f16::from_le_bytes([w[34 * b], w[34 * b + 1]]).to_f64();
            let s: i64 = (0..32)
                .map(|i| (w[34 * b + 2 + i] as i8) as i64 * q[32 * b + i] as i64)
                .sum();
            dw * d[b] as f64 * s as f64
        })
        .collect();
    let exact: f64 = terms.iter().sum();
    // Each f32 term (d_w · d_b) · s_b is off by at most 2 roundings, and the f32 sum adds at
    // most one rounding per level of its tree (nb/8 + 3 levels), each relative to Σ|terms|:
    // the error bound is relative to the terms' magnitude, not to the (possibly cancelled) sum.
    let nb = terms.len() as f64;
    let tol = (nb + 8.0) * f32::EPSILON as f64 * terms.iter().map(|t| t.abs()).sum::<f64>();
    assert!(
        (want as f64 - exact).abs() <= tol + 1e-30,
        "scalar q8 dot {want} vs {exact} (tolerance {tol})"
    );
    for k in variants() {
        let (mut q2, mut d2) = (vec![1i8; n], vec![1f32; n / 32]);
        (k.quantize_q8_0)(x, &mut q2, &mut d2);
        assert_eq!(q2, q, "{} quantize_q8_0 n {n}", k.variant.name());
        assert_eq!(
            d2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            d.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            (k.dot_q8_0)(&w, &q, &d).to_bits(),
            want.to_bits(),
            "{} dot_q8_0 n {n}",
            k.variant.name()
        );
    }
}

/// Activations and float weights of length `n` for the quantized-head edge tests.
fn head_case(n: usize) -> (Vec<f32>, Vec<f32>) {
    let x = (0..n)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.71)
        .collect();
    let w = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
        .collect();
    (x, w)
}

#[test]
fn q8_0_head_edges() {
    for n in [32usize, 64, 224, 256, 288, 2560] {
        let (x, w) = head_case(n);
        q8_check(&x, &w);
    }
    let mut x = vec![0f32; 64];
    x[3] = f32::NAN;
    x[40] = 1.5;
    x[41] = -2.5;
    q8_check(&x, &[0.5; 64]);
}

/// Q4_0 blocks of `wf` (a multiple of 32 values) built here from ggml's definition,
/// independently of the packer: per block the signed value of largest magnitude `max`,
/// `d = max / -8` (stored as f16), `q = min(15, trunc(x / d + 8.5))`, byte `j` = `q[j] |
/// q[j + 16] << 4`.
fn q4_blocks(wf: &[f32]) -> Vec<u8> {
    let mut w = Vec::new();
    for b in wf.chunks(32) {
        let max = b
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let dd = max / -8.0;
        let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
        w.extend(half::f16::from_f32(dd).to_bits().to_le_bytes());
        let q: Vec<u8> = b
            .iter()
            .map(|v| ((v * id + 8.5) as i8).clamp(0, 15) as u8)
            .collect();
        w.extend((0..16).map(|j| q[j] | q[j + 16] << 4));
    }
    w
}

/// Every variant's Q8_0 and Q4_0 row dots against scalar's, bit for bit, on given activations
/// (`q` in [-127, 127], as the quantizer makes them) and raw weight blocks; scalar's against a
/// plain f64 evaluation of the same integers and scales.
fn block_dots_check(q: &[i8], d: &[f32], w8: &[u8], w4: &[u8]) {
    let nb = d.len();
    let exact = |w: &[u8], bb: usize, wq: &dyn Fn(&[u8], usize) -> i64| -> f64 {
        (0..nb)
            .map(|b| {
                let blk = &w[bb * b..bb * (b + 1)];
                let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f64();
                let s: i64 = (0..32).map(|i| wq(blk, i) * q[32 * b + i] as i64).sum();
                dw * d[b] as f64 * s as f64
            })
            .sum()
    };
    let want8 = (SCALAR.dot_q8_0)(w8, q, d);
    let want4 = (SCALAR.dot_q4_0)(w4, q, d);
    let e8 = exact(w8, 34, &|blk, i| (blk[2 + i] as i8) as i64);
    let e4 = exact(w4, 18, &|blk, i| {
        let c = if i < 16 {
            blk[2 + i] & 15
        } else {
            blk[2 + i - 16] >> 4
        };
        c as i64 - 8
    });
    // f32 products of scales and sums, summed in f32: relative error ~1e-6 of the magnitudes
    let mag = |bb: usize, w: &[u8]| -> f64 {
        (0..nb)
            .map(|b| {
                let dw = half::f16::from_le_bytes([w[bb * b], w[bb * b + 1]]).to_f64();
                (dw * d[b] as f64).abs() * 32.0 * 128.0 * 127.0
            })
            .sum()
    };
    assert!(
        (want8 as f64 - e8).abs() <= 1e-5 * (1.0 + mag(34, w8)),
        "scalar q8 dot {want8} vs {e8}"
    );
    assert!(
        (want4 as f64 - e4).abs() <= 1e-5 * (1.0 + mag(18, w4)),
        "scalar q4 dot {want4} vs {e4}"
    );
    // the head matvec over 3 rows (the middle one with other codes) = the row dots
    let mut rows = w4.to_vec();
    rows.extend(w4.chunks(18).flat_map(|b| {
        let mut v = b.to_vec();
        v[2..].iter_mut().for_each(|c| *c ^= 0x5A);
        v
    }));
    rows.extend_from_slice(w4);
    let want_rows: Vec<u32> = rows
        .chunks(18 * nb)
        .map(|r| (SCALAR.dot_q4_0)(r, q, d).to_bits())
        .collect();
    for k in std::iter::once(&SCALAR).chain(variants()) {
        let mut got = [f32::NAN; 3];
        (k.matvec_q4_0_q8_0)(&rows, q, d, &mut got);
        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got,
            want_rows,
            "{} matvec_q4_0 blocks {nb}",
            k.variant.name()
        );
    }
    for k in variants() {
        assert_eq!(
            (k.dot_q8_0)(w8, q, d).to_bits(),
            want8.to_bits(),
            "{} dot_q8_0 blocks {nb}",
            k.variant.name()
        );
        assert_eq!(
            (k.dot_q4_0)(w4, q, d).to_bits(),
            want4.to_bits(),
            "{} dot_q4_0 blocks {nb}",
            k.variant.name()
        );
    }
}

/// Quantize `x` with every variant (bit-identical to scalar), then [`block_dots_check`] with
/// the weights `wf` as Q8_0 (via [`q8_check`]) and Q4_0 blocks.
fn q4_check(x: &[f32], wf: &[f32]) {
    q8_check(x, wf);
    let n = x.len();
    let mut q = vec![0i8; n];
    let mut d = vec![0f32; n / 32];
    (SCALAR.quantize_q8_0)(x, &mut q, &mut d);
    let w4 = q4_blocks(wf);
    let w8: Vec<u8> = w4
        .chunks(18)
        .flat_map(|b| {
            let mut v = b[..2].to_vec();
            v.extend((0..32).map(|i| {
                let c = if i < 16 {
                    b[2 + i] & 15
                } else {
                    b[2 + i - 16] >> 4
                };
                (c as i8 - 8) as u8
            }));
            v
        })
        .collect();
    block_dots_check(&q, &d, &w8, &w4);
    // the Q4_0 row equals the Q8_0 row holding the same values `q - 8`, bit for bit
    assert_eq!(
        (SCALAR.dot_q4_0)(&w4, &q, &d).to_bits(),
        (SCALAR.dot_q8_0)(&w8, &q, &d).to_bits()
    );
}

#[test]
fn q4_0_head_edges() {
    // 8224 columns: 257 blocks, past the NEON + dotprod head matvec's stack of Q4_0 corrections
    for n in [32usize, 64, 224, 256, 288, 512, 544, 2560, 8224] {
        let (x, w) = head_case(n);
        q4_check(&x, &w);
    }
    // zero blocks (d = 0), NaN and a lone extreme value in the activations
    let mut x = vec![0f32; 96];
    x[3] = f32::NAN;
    x[40] = 1.5;
    x[41] = -2.5;
    x[70] = 3.0e38;
    let mut w = vec![0.5f32; 96];
    w[64..].iter_mut().for_each(|v| *v = 0.0);
    q4_check(&x, &w);
}

/// Extremes of the integer block sums: every weight at its most negative (Q8_0 -128, Q4_0
/// code 0 = -8) or most positive code against activations of ±127, alternating or not, and f16
/// scales from the smallest subnormal to the largest finite value, for block counts around the
/// 8-block step.
#[test]
fn block_dots_extremes() {
    let scales = [0x3C00u16, 0x0001, 0x7BFF, 0xFBFF, 0x8000, 0x3555];
    for nb in [1usize, 7, 8, 9, 15, 16, 17, 80] {
        for (wi, (b8, b4)) in [(0x80u8, 0x00u8), (0x7F, 0xFF), (0x81, 0x0F), (0x80, 0xF0)]
            .into_iter()
            .enumerate()
        {
            for xs in [[127i8, 127], [-127, -127], [127, -127]] {
                let q: Vec<i8> = (0..32 * nb).map(|i| xs[i % 2]).collect();
                let d: Vec<f32> = (0..nb).map(|b| [1.0, 0.5e-3, 3.0e-4][b % 3]).collect();
                let mut w8 = Vec::new();
                let mut w4 = Vec::new();
                for b in 0..nb {
                    let sc = scales[(b + wi) % scales.len()].to_le_bytes();
                    w8.extend(sc);
                    w8.extend([b8; 32]);
                    w4.extend(sc);
                    w4.extend([b4; 16]);
                }
                block_dots_check(&q, &d, &w8, &w4);
            }
        }
    }
}

#[test]
fn dot_edges() {
    for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 255, 256, 2560] {
        let wf: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.71)
            .collect();
        dot_check(&wf, &x);
    }
}

#[test]
fn dot_f16_special_values() {
    // Every f16 bit pattern except NaN (subnormals, ±0, ±inf, the largest finite values)
    // against the scalar conversion, in chunks with a small x so no sum overflows to NaN.
    let pats: Vec<u16> = (0u16..=0xFFFF)
        .filter(|&h| h & 0x7C00 != 0x7C00 || h & 0x03FF == 0)
        .collect();
    for chunk in pats.chunks(1021) {
        let w: Vec<u8> = chunk.iter().flat_map(|h| h.to_le_bytes()).collect();
        let x: Vec<f32> = (0..chunk.len())
            .map(|i| {
                if chunk[i] & 0x7C00 == 0x7C00 {
                    0.5
                } else {
                    ((i % 7) as f32 - 3.0) * 0.37
                }
            })
            .collect();
        // infinities: a chunk with both signs of inf would give inf - inf = NaN (bits may differ
        // by NaN propagation only); keep those lanes at x = 0.5 and compare as floats then.
        for k in variants() {
            let (a, b) = ((k.dot_f16)(&w, &x), (SCALAR.dot_f16)(&w, &x));
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{} f16 specials from {:#06x}: {a} vs {b}",
                k.variant.name(),
                chunk[0]
            );
        }
        // and one lane at a time (decoding checked per value, no cancellation)
        for (i, &h) in chunk.iter().enumerate().step_by(13) {
            let w1 = h.to_le_bytes();
            for k in variants() {
                let (a, b) = ((k.dot_f16)(&w1, &[1.0]), (SCALAR.dot_f16)(&w1, &[1.0]));
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{} f16 {h:#06x} (i {i})",
                    k.variant.name()
                );
            }
        }
    }
    // NaN patterns decode to NaN
    for h in [0x7C01u16, 0x7E00, 0xFFFF, 0xFC01] {
        for k in variants() {
            assert!(
                (k.dot_f16)(&h.to_le_bytes(), &[1.0]).is_nan(),
                "{} f16 {h:#06x}",
                k.variant.name()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn quantize_matches_scalar(x in proptest::collection::vec(-1e4f32..1e4, 0..300)) {
        quant_check(&x);
    }

    #[test]
    fn q8_0_matches_scalar(v in proptest::collection::vec((-8f32..8.0, -100f32..100.0), 1..20usize).prop_flat_map(|v| {
        let n = v.len() * 32;
        (proptest::collection::vec(-100f32..100.0, n), proptest::collection::vec(-2f32..2.0, n))
    })) {
        q8_check(&v.0, &v.1);
    }

    #[test]
    fn panel_kernels_match_scalar(groups in 0usize..5, pieces in 1usize..10, seed in any::<u64>()) {
        let (rows, cols) = (8 * groups, 32 * pieces);
        let mut bits = xorshift(seed | 1);
        let mut next = || ((bits() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 200.0;
        let w: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
        let x: Vec<f32> = (0..cols).map(|_| next()).collect();
        panels_check(&w, rows, &x);
    }

    #[test]
    fn row_kernels_match_scalar(
        n in 0usize..300,
        rows in 0usize..20,
        gap in 0usize..5,
        seed in any::<u64>(),
    ) {
        let stride = n + gap;
        let mut bits = xorshift(seed | 1);
        let mut next = || ((bits() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 200.0;
        let x: Vec<f32> = (0..rows * stride + n).map(|_| next()).collect();
        let y: Vec<f32> = (0..n).map(|_| next()).collect();
        let a: Vec<f32> = (0..rows).map(|_| next() / 10.0).collect();
        rows_check(&a, &x, stride, &y);
    }


    #[test]
    fn q4_0_matches_scalar(v in proptest::collection::vec((-8f32..8.0, -100f32..100.0), 1..20usize).prop_flat_map(|v| {
        let n = v.len() * 32;
        (proptest::collection::vec(-100f32..100.0, n), proptest::collection::vec(-2f32..2.0, n))
    })) {
        q4_check(&v.0, &v.1);
    }

    /// Raw weight bytes (any int8 / any nibble) with finite f16 scales, raw activations in
    /// [-127, 127].
    #[test]
    fn block_dots_raw_match_scalar(nb in 1usize..40, seed in any::<u64>()) {
        let mut next = xorshift(seed | 1);
        // finite f16 scales only (exponent field < 31)
        let scale = |r: u64| {
            let h = r as u16;
            if h & 0x7C00 == 0x7C00 { h & 0x83FF } else { h }
        };
        let (mut w8, mut w4, mut q, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..nb {
            let sc = scale(next()).to_le_bytes();
            w8.extend(sc);
            w8.extend((0..32).map(|_| next() as u8));
            w4.extend(sc);
            w4.extend((0..16).map(|_| next() as u8));
            q.extend((0..32).map(|_| ((next() % 255) as i32 - 127) as i8));
            d.push(((next() % 1000) as f32 + 1.0) * 1e-4);
        }
        block_dots_check(&q, &d, &w8, &w4);
    }

    #[test]
    fn dots_match_scalar(v in proptest::collection::vec((-8f32..8.0, -100f32..100.0), 0..600)) {
        let (w, x): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
        dot_check(&w, &x);
    }
}
