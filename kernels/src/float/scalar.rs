//! Scalar float row kernels (the reference).
//!
//! Rows are little-endian byte slices; `x: (cols,)` f32. Dot products accumulate in f32 over
//! 32 interleaved partial sums (`acc[i % 32] += w[i] * x[i]`, a separate multiply and add, no
//! FMA), then reduce in a fixed order: `v[j] = (acc[j] + acc[j+8]) + (acc[j+16] + acc[j+24])`
//! for `j < 8`, then `((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))`. SIMD variants reproduce
//! this exactly (four 8-lane accumulators hide the add latency).

use crate::layout::Layout;

#[inline]
fn f16_to_f32(b: [u8; 2]) -> f32 {
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

/// Decode one row of a plain float layout into `out: (n,)` f32. Returns `false` (and leaves
/// `out` untouched) if `layout` is not F32/F16/BF16 or the lengths disagree.
pub fn decode_row(layout: Layout, w: &[u8], out: &mut [f32]) -> bool {
    let conv: fn(&[u8]) -> f32 = match layout {
        Layout::F32 => |c| f32::from_le_bytes(c.try_into().unwrap()),
        Layout::F16 => |c| f16_to_f32(c.try_into().unwrap()),
        Layout::Bf16 => |c| bf16_to_f32(c.try_into().unwrap()),
        Layout::T2_128 | Layout::T1_160 => return false,
        Layout::Q8_0 => return decode_q8_0_row(w, out),
    };
    let eb = layout.info().block_bytes;
    if w.len() != out.len() * eb {
        return false;
    }
    for (o, c) in out.iter_mut().zip(w.chunks_exact(eb)) {
        *o = conv(c);
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
    for (b, (blk, (qb, &db))) in w
        .chunks_exact(34)
        .zip(q.chunks_exact(QK).zip(d))
        .enumerate()
    {
        let dw = f16_to_f32([blk[0], blk[1]]);
        let s: i32 = blk[2..]
            .iter()
            .zip(qb)
            .map(|(&wq, &xq)| (wq as i8) as i32 * xq as i32)
            .sum();
        acc[b % 8] += (dw * db) * s as f32;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
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
}
