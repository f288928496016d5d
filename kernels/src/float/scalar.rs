//! Scalar float row kernels (the reference).
//!
//! Rows are little-endian byte slices; `x: (cols,)` f32. Dot products accumulate in f32 over
//! 32 interleaved partial sums (`acc[i % 32] += w[i] * x[i]`, a separate multiply and add, no
//! FMA), then reduce in a fixed order: `v[j] = (acc[j] + acc[j+8]) + (acc[j+16] + acc[j+24])`
//! for `j < 8`, then `((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))`. SIMD variants reproduce
//! this exactly (four 8-lane accumulators hide the add latency).

use crate::layout::Layout;

#[inline]
pub(crate) fn f16_to_f32(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}
#[inline]
fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
}

/// Number of partial sums of the dot products.
pub const DOT_LANES: usize = 32;

/// The fixed reduction of the 32 partial sums (see the module doc).
#[inline]
pub fn reduce32(acc: &[f32; DOT_LANES]) -> f32 {
    let v: [f32; 8] = core::array::from_fn(|j| (acc[j] + acc[j + 8]) + (acc[j + 16] + acc[j + 24]));
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

macro_rules! dot_impl {
    ($name:ident, $bytes:expr, $conv:expr, $doc:literal) => {
        #[doc = $doc]
        ///
        /// # Panics
        /// If `w.len() != x.len() * bytes_per_elem`.
        pub fn $name(w: &[u8], x: &[f32]) -> f32 {
            assert_eq!(w.len(), x.len() * $bytes, "dot: row and x lengths differ");
            let mut acc = [0.0f32; DOT_LANES];
            for (i, (c, &xv)) in w.chunks_exact($bytes).zip(x).enumerate() {
                acc[i % DOT_LANES] += $conv(c.try_into().unwrap()) * xv;
            }
            reduce32(&acc)
        }
    };
}

dot_impl!(
    dot_f32_row,
    4,
    f32::from_le_bytes,
    "Dot product of an F32 row `w: (n,)` with `x: (n,)`."
);
dot_impl!(
    dot_f16_row,
    2,
    f16_to_f32,
    "Dot product of an F16 row `w: (n,)` with `x: (n,)`."
);
dot_impl!(
    dot_bf16_row,
    2,
    bf16_to_f32,
    "Dot product of a BF16 row `w: (n,)` with `x: (n,)`."
);

/// `y[i] += a · x[i]` for a row `x: (n,)` of F32 (4 little-endian bytes per value) and
/// `y: (n,)`: the attention's weighted sum of value rows. A separate multiply and add per
/// element (no FMA), so every variant is bit-identical.
///
/// # Panics
/// If `x.len() != y.len() * 4`.
pub fn axpy_f32_row(a: f32, x: &[u8], y: &mut [f32]) {
    assert_eq!(x.len(), y.len() * 4, "axpy: row and y lengths differ");
    for (o, c) in y.iter_mut().zip(x.chunks_exact(4)) {
        *o += a * f32::from_le_bytes(c.try_into().unwrap());
    }
}

/// As [`axpy_f32_row`] for an F16 row `x: (n,)` (2 little-endian bytes per value, converted
/// exactly to f32).
///
/// # Panics
/// If `x.len() != y.len() * 2`.
pub fn axpy_f16_row(a: f32, x: &[u8], y: &mut [f32]) {
    assert_eq!(x.len(), y.len() * 2, "axpy: row and y lengths differ");
    for (o, c) in y.iter_mut().zip(x.chunks_exact(2)) {
        *o += a * f16_to_f32([c[0], c[1]]);
    }
}

/// Checks the strided row shape of [`dot_rows_f16`] / [`axpy_rows_f16`] and their kin:
/// `rows` rows of `row_bytes` bytes, row `r` at byte `r * stride_bytes` of a `len`-byte slice.
///
/// # Panics
/// If `stride_bytes < row_bytes` (rows would overlap) when `rows > 1`, or the last row ends past
/// `len`.
pub(crate) fn check_rows(len: usize, stride_bytes: usize, rows: usize, row_bytes: usize) {
    if rows == 0 {
        return;
    }
    assert!(
        rows == 1 || stride_bytes >= row_bytes,
        "rows: stride {stride_bytes} bytes < row {row_bytes} bytes"
    );
    let end = (rows - 1)
        .checked_mul(stride_bytes)
        .and_then(|b| b.checked_add(row_bytes));
    assert!(
        end.is_some_and(|e| e <= len),
        "rows: {rows} rows of {row_bytes} bytes at stride {stride_bytes} exceed {len} bytes"
    );
}

macro_rules! dots_impl {
    ($dots:ident, $dot:ident, $bytes:expr, $fmt:literal) => {
        #[doc = concat!("Dots of ", $fmt, " rows with `x: (n,)`: `out[r] = ", stringify!($dot), "(row r, x)` exactly,")]
        /// for `out: (rows,)`, row `r` being the `n` elements at byte `r * stride_bytes` of `w`
        /// (the attention's `K·q` over the cached positions of one KV head, whose rows lie
        /// `kv_dim` elements apart; the LM head's rows, consecutive). One call per head lets a
        /// SIMD variant work on eight rows together.
        ///
        /// # Panics
        /// If the rows do not fit `w` or overlap (see the stride rule of the row kernels).
        pub fn $dots(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
            let rb = x.len() * $bytes;
            check_rows(w.len(), stride_bytes, out.len(), rb);
            for (r, o) in out.iter_mut().enumerate() {
                *o = $dot(&w[r * stride_bytes..r * stride_bytes + rb], x);
            }
        }
    };
}

macro_rules! rows_impl {
    ($dots:ident, $dot:ident, $axpys:ident, $axpy:ident, $bytes:expr, $fmt:literal) => {
        dots_impl!($dots, $dot, $bytes, $fmt);

        #[doc = concat!("`y += Σ_r a[r] · x_r` over ", $fmt, " rows, `a: (rows,)`, `y: (n,)`, row `r` at byte")]
        #[doc = concat!("`r * stride_bytes` of `x`: exactly [`", stringify!($axpy), "`] row after row, in order (the")]
        /// attention's `P·V`; a SIMD variant keeps a stretch of `y` in registers across rows).
        ///
        /// # Panics
        /// If the rows do not fit `x` or overlap.
        pub fn $axpys(a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
            let rb = y.len() * $bytes;
            check_rows(x.len(), stride_bytes, a.len(), rb);
            for (r, &ar) in a.iter().enumerate() {
                $axpy(ar, &x[r * stride_bytes..r * stride_bytes + rb], y);
            }
        }
    };
}

rows_impl!(
    dot_rows_f32,
    dot_f32_row,
    axpy_rows_f32,
    axpy_f32_row,
    4,
    "F32"
);
rows_impl!(
    dot_rows_f16,
    dot_f16_row,
    axpy_rows_f16,
    axpy_f16_row,
    2,
    "F16"
);
// BF16 rows only in an LM head (the KV cache is F32 or F16): dots, no axpys.
dots_impl!(dot_rows_bf16, dot_bf16_row, 2, "BF16");

/// The shape checks of every `dot_panels_f16` variant: `w` holds `out.len()` rows of
/// `x.len()` values in [`Layout::F16R8`] order.
///
/// # Panics
/// If `(out.len(), x.len())` is not an `F16_R8` shape (rows a multiple of 8, columns a positive
/// multiple of 32; no rows at all is allowed) or `w.len() != out.len() · x.len() · 2`.
pub(crate) fn check_panels(w_len: usize, cols: usize, rows: usize) {
    assert!(
        rows == 0 || crate::layout::f16_r8_shape_ok(rows, cols),
        "dot_panels_f16: ({rows}, {cols}) is not an F16_R8 shape (rows % 8, cols % 32)"
    );
    assert_eq!(
        Some(w_len),
        rows.checked_mul(cols).and_then(|e| e.checked_mul(2)),
        "dot_panels_f16: w must hold rows · cols F16 values"
    );
}

/// Dots of the rows of an [`Layout::F16R8`] matrix `w: (rows, cols)` with `x: (cols,)`:
/// `out[r] = dot_f16_row(row r, x)` exactly, for `out: (rows,)` (the LM head stored as
/// `F16_R8`: the same sums, in the same order, as its row-major F16 rows give).
///
/// # Panics
/// If `(out.len(), x.len())` is not an `F16_R8` shape (rows a multiple of 8, columns a positive
/// multiple of 32; no rows at all is allowed) or `w.len() != out.len() · x.len() · 2`.
pub fn dot_panels_f16(w: &[u8], x: &[f32], out: &mut [f32]) {
    let (cols, rows) = (x.len(), out.len());
    check_panels(w.len(), cols, rows);
    let pb = 2 * crate::layout::F16_R8_COLS;
    for (r, o) in out.iter_mut().enumerate() {
        let mut acc = [0.0f32; DOT_LANES];
        for (k, xs) in x.chunks_exact(crate::layout::F16_R8_COLS).enumerate() {
            let at = crate::layout::f16_r8_piece_offset(rows, cols, r, k).expect("checked shape");
            for (j, (c, &xv)) in w[at..at + pb].chunks_exact(2).zip(xs).enumerate() {
                // piece k's column j is column 32k + j: partial sum (32k + j) % 32 = j
                acc[j] += f16_to_f32([c[0], c[1]]) * xv;
            }
        }
        *o = reduce32(&acc);
    }
}

/// BitLinear's rescale of a chunk of batched integer sums, transposed: for `a: (rows, nt)` int32
/// (row-major, `nt = s_a.len()` tokens) and per-token activation scales `s_a: (nt,)`,
/// `o[t * o_stride + r] = a[r * nt + t] as f32 / (scale * s_a[t])` for `r < rows`, `t < nt`
/// (the division, not a multiplication by the reciprocal, as transformers evaluates it; the
/// divisor is the f32 product `scale * s_a[t]`). Elements of `o` outside those are untouched.
///
/// # Panics
/// If `a.len() != rows * nt`, `o_stride < rows`, or `o` is shorter than
/// `(nt - 1) * o_stride + rows` (when `nt > 0`).
pub fn rescale_t_i32(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
) {
    rescale_t_shape(a, rows, s_a.len(), o, o_stride);
    // every row of every token: `o[t * o_stride + r] = a[r * nt + t] as f32 / (scale * s_a[t])`
    rescale_t_rest(a, rows, scale, s_a, o, o_stride, (0, 0));
}

/// What a SIMD `rescale_t_i32` leaves to scalar after its tiles cover rows `..r_done` of
/// tokens `..t_done`: rows `r_done..` of those tokens and every row of tokens `t_done..`
/// (all of it from `(0, 0)`: [`rescale_t_i32`] itself), each as
/// `a[r * nt + t] as f32 / (scale * s_a[t])`.
pub(crate) fn rescale_t_rest(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
    (r_done, t_done): (usize, usize),
) {
    let nt = s_a.len();
    for (t, &sa) in s_a.iter().enumerate() {
        let d = scale * sa;
        let rs = if t < t_done { r_done } else { 0 };
        for r in rs..rows {
            o[t * o_stride + r] = a[r * nt + t] as f32 / d;
        }
    }
}

/// The shape checks of every `rescale_t_i32` variant.
pub(crate) fn rescale_t_shape(a: &[i32], rows: usize, nt: usize, o: &[f32], o_stride: usize) {
    assert_eq!(a.len(), rows * nt, "rescale_t: a must be (rows, nt)");
    assert!(o_stride >= rows, "rescale_t: o_stride < rows");
    assert!(
        nt == 0 || o.len() >= (nt - 1) * o_stride + rows,
        "rescale_t: o too short"
    );
}

/// Decode one row of a plain float layout into `out: (n,)` f32. Returns `false` (and leaves
/// `out` untouched) if `layout` is not F32/F16/BF16 or the lengths disagree.
pub fn decode_row(layout: Layout, w: &[u8], out: &mut [f32]) -> bool {
    match layout {
        Layout::F32 => decode_elems(w, out, f32::from_le_bytes),
        Layout::F16 => decode_elems(w, out, f16_to_f32),
        Layout::Bf16 => decode_elems(w, out, bf16_to_f32),
        // F16_R8 / Q4_0_R8 rows are not contiguous: `layout::f16_r8_row` /
        // `layout::q4_0_r8_row` gather one as F16 / Q4_0 first.
        Layout::T2_128 | Layout::T1_160 | Layout::F16R8 | Layout::Q4_0R8 => false,
        Layout::Q8_0 => decode_q8_0_row(w, out),
        Layout::Q4_0 => decode_q4_0_row(w, out),
    }
}

/// `out[i] = conv(element i of w)` for `EB`-byte elements; `false` if the lengths disagree.
/// One loop per element type (the norm weights are decoded per token: through a function
/// pointer per element, this took about 1 % of a decode step).
#[inline]
fn decode_elems<const EB: usize>(
    w: &[u8],
    out: &mut [f32],
    conv: impl Fn([u8; EB]) -> f32,
) -> bool {
    if w.len() != out.len() * EB {
        return false;
    }
    for (o, c) in out.iter_mut().zip(w.chunks_exact(EB)) {
        let mut b = [0u8; EB];
        b.copy_from_slice(c);
        *o = conv(b);
    }
    true
}

/// Decode a `Q8_0` row (`out.len()` a multiple of 32): `out[i] = d · q[i]` in f32.
fn decode_q8_0_row(w: &[u8], out: &mut [f32]) -> bool {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    if !out.len().is_multiple_of(QK) || w.len() != out.len() / QK * 34 {
        return false;
    }
    for (o, b) in out.chunks_exact_mut(QK).zip(w.chunks_exact(34)) {
        let d = f16_to_f32([b[0], b[1]]);
        for (v, &q) in o.iter_mut().zip(&b[2..]) {
            *v = d * (q as i8) as f32;
        }
    }
    true
}

/// Decode a `Q4_0` row (`out.len()` a multiple of 32): `out[i] = d · (q[i] − 8)` in f32, as
/// ggml's `dequantize_row_q4_0`.
fn decode_q4_0_row(w: &[u8], out: &mut [f32]) -> bool {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK, q4_0_code};
    if !out.len().is_multiple_of(QK) || w.len() != out.len() / QK * BB {
        return false;
    }
    for (o, b) in out.chunks_exact_mut(QK).zip(w.chunks_exact(BB)) {
        let d = f16_to_f32([b[0], b[1]]);
        for (i, v) in o.iter_mut().enumerate() {
            *v = (q4_0_code(&b[2..], i) as i32 - 8) as f32 * d;
        }
    }
    true
}

/// Quantize activations `x: (n,)` (n a multiple of 32) to `q: (n,)` int8 with one f32 scale
/// per 32 values, `d: (n/32,)`: `d = max|x| / 127`, `q = clamp(round_half_even(x · (1/d)),
/// -127, 127)` (0 where `d` is 0; NaN → 0). Symmetric (no -128), so the SIMD dot may use the
/// sign trick.
///
/// # Panics
/// On length mismatches (caller bug).
pub fn quantize_q8_0_act(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        x.len().is_multiple_of(QK) && q.len() == x.len() && d.len() == x.len() / QK,
        "quantize_q8_0_act: shapes"
    );
    for ((xb, qb), db) in x
        .chunks_exact(QK)
        .zip(q.chunks_exact_mut(QK))
        .zip(d.iter_mut())
    {
        let mut amax = 0.0f32;
        for &v in xb {
            let a = v.abs();
            if a > amax {
                amax = a;
            }
        }
        let dd = amax / 127.0;
        let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
        for (qi, &v) in qb.iter_mut().zip(xb) {
            *qi = libm::rintf(v * id).clamp(-127.0, 127.0) as i8;
        }
        *db = dd;
    }
}

/// Dot of a `Q8_0` weight row `w` (n/32 blocks) with activations quantized by
/// [`quantize_q8_0_act`] (`q: (n,)`, `d: (n/32,)`): per block the exact integer sum
/// `s_b = Σ wq·q`, then `p_b = (d_w · d_b) · s_b` in f32, accumulated over 8 interleaved
/// partial sums (`acc[b % 8] += p_b`) and reduced as `((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7))`.
///
/// # Panics
/// On length mismatches (caller bug).
pub fn dot_q8_0_row(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        w.len() == d.len() * 34 && q.len() == d.len() * QK,
        "dot_q8_0: shapes"
    );
    let mut acc = [0.0f32; 8];
    block_dots::<false>(w, q, d, 0, &mut acc);
    reduce8(&acc)
}

/// Dot of a `Q4_0` weight row `w` (n/32 blocks of 18 bytes) with activations quantized by
/// [`quantize_q8_0_act`] (`q: (n,)`, `d: (n/32,)`): per block the exact integer sum
/// `s_b = Σ (wq − 8)·q`, then `p_b = (d_w · d_b) · s_b` in f32, accumulated over 8 interleaved
/// partial sums (`acc[b % 8] += p_b`) and reduced as `((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7))`,
/// exactly as [`dot_q8_0_row`].
///
/// # Panics
/// On length mismatches (caller bug).
pub fn dot_q4_0_row(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    assert!(
        w.len() == d.len() * BB && q.len() == d.len() * QK,
        "dot_q4_0: shapes"
    );
    let mut acc = [0.0f32; 8];
    block_dots::<true>(w, q, d, 0, &mut acc);
    reduce8(&acc)
}

/// LM-head matvec over Q4_0 rows: `out[r] = dot_q4_0_row(row r of w, q, d)` for
/// `w: (out.len(), row_bytes)` and activations quantized by [`quantize_q8_0_act`]. One call per
/// chunk of rows lets a SIMD variant prepare the activations once (AVX2: their block sums).
///
/// # Panics
/// On length mismatches (caller bug).
pub fn matvec_q4_0_q8_0(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    rows_by(dot_q4_0_row, w, q, d, out)
}

/// `out[r] = dot(row r of w, q, d)` with rows of `w.len() / out.len()` bytes.
///
/// # Panics
/// If `w` is not `out.len()` rows of equal length.
pub(crate) fn rows_by(
    dot: fn(&[u8], &[i8], &[f32]) -> f32,
    w: &[u8],
    q: &[i8],
    d: &[f32],
    out: &mut [f32],
) {
    if out.is_empty() {
        return;
    }
    let rb = w.len() / out.len();
    assert_eq!(rb * out.len(), w.len(), "matvec: w must hold whole rows");
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        *o = dot(row, q, d);
    }
}

/// The exact integer sum `Σ w·x` of one whole block `blk` (scale included: 34 bytes of
/// Q8_0, or 18 of Q4_0 when `Q4`) with its 32 activations `qb`.
#[inline]
pub(crate) fn block_sum<const Q4: bool>(blk: &[u8], qb: &[i8]) -> i32 {
    use crate::layout::q4_0_code;
    qb.iter()
        .enumerate()
        .map(|(i, &xq)| {
            let wq = if Q4 {
                q4_0_code(&blk[2..], i) as i32 - 8
            } else {
                (blk[2 + i] as i8) as i32
            };
            wq * xq as i32
        })
        .sum()
}

/// `acc[b % 8] += (d_w · d_b) · s_b` for blocks `from..d.len()` of a Q8_0 (or Q4_0 when
/// `Q4`) row: the block step of [`dot_q8_0_row`] / [`dot_q4_0_row`], also the SIMD
/// variants' tail.
pub(crate) fn block_dots<const Q4: bool>(
    w: &[u8],
    q: &[i8],
    d: &[f32],
    from: usize,
    acc: &mut [f32; 8],
) {
    let bb = if Q4 { 18 } else { 34 };
    for (b, &db) in d.iter().enumerate().skip(from) {
        let blk = &w[bb * b..bb * (b + 1)];
        let dw = f16_to_f32([blk[0], blk[1]]);
        let s = block_sum::<Q4>(blk, &q[32 * b..32 * (b + 1)]);
        acc[b % 8] += (dw * db) * s as f32;
    }
}

/// The fixed reduction of the 8 block partial sums: `((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7))`.
#[inline]
pub(crate) fn reduce8(a: &[f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn dots_agree_with_f64() {
        let x: [f32; 19] = core::array::from_fn(|i| (i as f32 - 9.0) * 0.25);
        let wf: [f32; 19] = core::array::from_fn(|i| 1.0 - i as f32 * 0.125);
        let mut w32 = [0u8; 76];
        let mut w16 = [0u8; 38];
        let mut wb = [0u8; 38];
        for i in 0..19 {
            w32[4 * i..4 * i + 4].copy_from_slice(&wf[i].to_le_bytes());
            w16[2 * i..2 * i + 2]
                .copy_from_slice(&half::f16::from_f32(wf[i]).to_bits().to_le_bytes());
            wb[2 * i..2 * i + 2].copy_from_slice(&((wf[i].to_bits() >> 16) as u16).to_le_bytes());
        }
        let want: f64 = (0..19).map(|i| wf[i] as f64 * x[i] as f64).sum();
        for got in [
            dot_f32_row(&w32, &x),
            dot_f16_row(&w16, &x),
            dot_bf16_row(&wb, &x),
        ] {
            assert_eq!(got as f64, want); // all values and partial sums exact here
        }
        let mut out = [0f32; 19];
        assert!(decode_row(Layout::F16, &w16, &mut out));
        assert_eq!(out, wf);
        assert!(!decode_row(Layout::T2_128, &w16, &mut out));
    }

    #[test]
    fn q4_0_decode_and_dot() {
        // One block: d = 0.5, codes q[i] = i % 16 (values (q - 8)/2), byte j = q[j] | q[j+16] << 4.
        let mut b = [0u8; 18];
        b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        for j in 0..16 {
            b[2 + j] = (j as u8) | ((j as u8) << 4);
        }
        let mut out = [0f32; 32];
        assert!(decode_row(Layout::Q4_0, &b, &mut out));
        for (i, &v) in out.iter().enumerate() {
            assert_eq!(v, ((i % 16) as f32 - 8.0) * 0.5, "i={i}");
        }
        assert!(!decode_row(Layout::Q4_0, &b[..17], &mut out));
        assert!(!decode_row(Layout::Q4_0, &b, &mut out[..16]));
        // activations 1 (i < 16) and 2 (i >= 16), d_b = 2: s = Σ_{k<16} (k - 8) · (1 + 2)
        // = -8 · 3 = -24, logit = (0.5 · 2) · -24
        let q: [i8; 32] = core::array::from_fn(|i| if i < 16 { 1 } else { 2 });
        assert_eq!(dot_q4_0_row(&b, &q, &[2.0]), -24.0);
    }
}
