//! Float element decoders: F32 / F16 / BF16 element arrays and the GGML block formats used for
//! embeddings (Q8_0, Q4_0, Q6_K), dequantized exactly as ggml does; the Q8_0 and Q4_0
//! quantizers of `--lm-head`.
//!
//! Source: ggml `ggml-common.h` (`block_q8_0`, `block_q4_0`, `block_q6_K`) and `ggml-quants.c`
//! (`dequantize_row_q8_0`, `dequantize_row_q4_0`, `dequantize_row_q6_K`,
//! `quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`), llama.cpp `0c1e57098`.

use anyhow::{Result, bail};
use half::{bf16, f16};
use tern_kernels::layout::Layout;

/// Decode little-endian float elements in `layout` (F32, F16 or BF16) to f32, exactly.
///
/// # Errors
/// A ternary layout, or a byte length that is not a whole number of elements.
pub fn to_f32(layout: Layout, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match layout {
        Layout::F32 => {
            if !bytes.len().is_multiple_of(4) {
                bail!(
                    "F32 data of {} bytes is not a whole number of elements",
                    bytes.len()
                );
            }
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        Layout::F16 | Layout::Bf16 => {
            if !bytes.len().is_multiple_of(2) {
                bail!(
                    "16-bit float data of {} bytes is not a whole number of elements",
                    bytes.len()
                );
            }
            let it = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            if layout == Layout::F16 {
                it.map(|b| f16::from_bits(b).to_f32()).collect()
            } else {
                it.map(|b| bf16::from_bits(b).to_f32()).collect()
            }
        }
        Layout::T2_128 | Layout::T1_160 => bail!("{layout:?} is not a float layout"),
        // element order depends on the shape: `tensor_to_f32` de-interleaves it first
        Layout::F16R8 => bail!("F16_R8 data needs its tensor's shape to decode"),
        Layout::Q4_0R8 => bail!("Q4_0_R8 data needs its tensor's shape to decode"),
        Layout::Q8_0 => dequant_q8_0(bytes)?,
        Layout::Q4_0 => dequant_q4_0(bytes)?,
    })
}

/// [`to_f32`] of a `(rows, cols)` tensor's data, row-major: also [`Layout::F16R8`] and
/// [`Layout::Q4_0R8`], whose rows are de-interleaved first.
///
/// # Errors
/// As [`to_f32`]; an `F16_R8` / `Q4_0_R8` shape or length that is not the layout's.
pub fn tensor_to_f32(layout: Layout, bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>> {
    match layout {
        Layout::F16R8 => {
            if !tern_kernels::layout::f16_r8_shape_ok(rows, cols) || bytes.len() != rows * cols * 2
            {
                bail!(
                    "F16_R8 data of {} bytes for shape ({rows}, {cols}): expected rows a multiple of 8, columns of 32 and rows · cols · 2 bytes",
                    bytes.len()
                );
            }
            let mut f16 = vec![0u8; bytes.len()];
            tern_kernels::layout::f16_r8_deinterleave(bytes, rows, cols, &mut f16);
            to_f32(Layout::F16, &f16)
        }
        Layout::Q4_0R8 => to_f32(Layout::Q4_0, &q4_0_from_r8(bytes, rows, cols)?),
        _ => to_f32(layout, bytes),
    }
}

/// `Q4_0_R8` data of a `(rows, cols)` tensor as row-major Q4_0 blocks (the same bytes,
/// de-interleaved).
///
/// # Errors
/// A shape that is not `Q4_0_R8`'s (rows a multiple of 8, columns of 32) or a length that is
/// not `rows · 18 · cols / 32`.
pub fn q4_0_from_r8(bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    q4_0_r8_check(bytes.len(), rows, cols)?;
    let mut out = vec![0u8; bytes.len()];
    tern_kernels::layout::q4_0_r8_deinterleave(bytes, rows, cols, &mut out);
    Ok(out)
}

/// Row-major Q4_0 blocks of a `(rows, cols)` tensor as `Q4_0_R8` data (the same bytes,
/// interleaved: exact, never requantized).
///
/// # Errors
/// As [`q4_0_from_r8`].
pub fn q4_0_r8_from_q4_0(bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    q4_0_r8_check(bytes.len(), rows, cols)?;
    let mut out = vec![0u8; bytes.len()];
    tern_kernels::layout::q4_0_r8_interleave(bytes, rows, cols, &mut out);
    Ok(out)
}

fn q4_0_r8_check(len: usize, rows: usize, cols: usize) -> Result<()> {
    if !tern_kernels::layout::q4_0_r8_shape_ok(rows, cols) || len != rows * cols / 32 * 18 {
        bail!(
            "Q4_0_R8 data of {len} bytes for shape ({rows}, {cols}): expected rows a multiple of 8, columns of 32 and rows · 18 · cols / 32 bytes"
        );
    }
    Ok(())
}

/// F32 values as `F16_R8` data of a `(rows, cols)` tensor: each rounded to the nearest F16 (ties
/// to even), then interleaved.
///
/// # Errors
/// A shape that is not `F16_R8`'s (rows a multiple of 8, columns of 32), a length that is not
/// `rows · cols`, or a finite value beyond F16's range (±65504; it would become infinite).
pub fn f16_r8_from_f32(v: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>> {
    if !tern_kernels::layout::f16_r8_shape_ok(rows, cols) || v.len() != rows * cols {
        bail!(
            "F16_R8 needs rows a multiple of 8 and columns a multiple of 32 (shape ({rows}, {cols}), {} values)",
            v.len()
        );
    }
    let mut bytes = Vec::with_capacity(2 * v.len());
    for (i, &x) in v.iter().enumerate() {
        let h = f16::from_f32(x);
        if x.is_finite() && h.is_infinite() {
            bail!(
                "value {x} at row {}, column {} is beyond F16's range",
                i / cols,
                i % cols
            );
        }
        bytes.extend(h.to_bits().to_le_bytes());
    }
    let mut out = vec![0u8; bytes.len()];
    tern_kernels::layout::f16_r8_interleave(&bytes, rows, cols, &mut out);
    Ok(out)
}

/// Quantize f32 values (`v.len()` a multiple of 32) to Q8_0 blocks exactly as ggml's
/// `quantize_row_q8_0_ref`: `d = max|x| / 127`, `id = 1/d` (0 if `d` is 0), `q = round(x·id)`
/// (half away from zero), `d` stored as f16.
///
/// # Errors
/// A length that is not a multiple of 32.
pub fn quantize_q8_0(v: &[f32]) -> Result<Vec<u8>> {
    if !v.len().is_multiple_of(Q8_0_BLOCK_ELEMS) {
        bail!("Q8_0 needs a multiple of 32 values, got {}", v.len());
    }
    let mut out = Vec::with_capacity(v.len() / Q8_0_BLOCK_ELEMS * Q8_0_BLOCK_BYTES);
    for b in v.chunks_exact(Q8_0_BLOCK_ELEMS) {
        let amax = b.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16::from_f32(d).to_bits().to_le_bytes());
        out.extend(b.iter().map(|x| (x * id).round() as i8 as u8));
    }
    Ok(out)
}

/// Quantize f32 values (`v.len()` a multiple of 32) to Q4_0 blocks exactly as ggml's
/// `quantize_row_q4_0_ref`: per block of 32, `max` is the value of largest magnitude (the
/// first one on a tie, sign kept), `d = max / −8`, `id = 1/d` (0 if `d` is 0), code
/// `q = min(15, trunc(x·id + 8.5))` (all in f32), `d` stored as f16 (round to nearest even);
/// byte `j` of the block holds `q[j] | q[j + 16] << 4`. The value of largest magnitude maps
/// to code 0 (exactly `max`), the other end of the range is clipped to code 15 (`−7/8 · max`).
///
/// For finite inputs this is ggml's arithmetic step for step (its `(int8_t)` conversion
/// truncates toward zero, as Rust's `as` does in range). Non-finite values, where C's
/// conversion is undefined, use Rust's saturating `as i8` (NaN → 0) clamped to the code range.
///
/// # Errors
/// A length that is not a multiple of 32.
pub fn quantize_q4_0(v: &[f32]) -> Result<Vec<u8>> {
    if !v.len().is_multiple_of(Q8_0_BLOCK_ELEMS) {
        bail!("Q4_0 needs a multiple of 32 values, got {}", v.len());
    }
    let mut out = Vec::with_capacity(v.len() / 32 * Q4_0_BLOCK_BYTES);
    for b in v.chunks_exact(32) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &x in b {
            if amax < x.abs() {
                amax = x.abs();
                max = x;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(f16::from_f32(d).to_bits().to_le_bytes());
        let code = |x: f32| ((x * id + 8.5) as i8).clamp(0, 15) as u8;
        out.extend((0..16).map(|j| code(b[j]) | code(b[j + 16]) << 4));
    }
    Ok(out)
}

/// Encode f32 values as little-endian F32 bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Bytes of one Q8_0 block (32 values): f16 `d` + 32 × i8.
pub const Q8_0_BLOCK_BYTES: usize = 34;
/// Values per Q8_0 block.
pub const Q8_0_BLOCK_ELEMS: usize = 32;
/// Bytes of one Q6_K block (256 values): `ql[128]`, `qh[64]`, `scales[16]` (i8), f16 `d`.
pub const Q6_K_BLOCK_BYTES: usize = 210;
/// Values per Q6_K block.
pub const Q6_K_BLOCK_ELEMS: usize = 256;

/// Dequantize Q8_0 blocks (`bytes: (n_blocks * 34,)`) to f32: `y = q * d`.
///
/// # Errors
/// A byte length that is not a whole number of blocks.
pub fn dequant_q8_0(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(Q8_0_BLOCK_BYTES) {
        bail!(
            "Q8_0 data of {} bytes is not a whole number of 34-byte blocks",
            bytes.len()
        );
    }
    let mut y = Vec::with_capacity(bytes.len() / Q8_0_BLOCK_BYTES * Q8_0_BLOCK_ELEMS);
    for b in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
        let d = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        y.extend(b[2..].iter().map(|&q| (q as i8) as f32 * d));
    }
    Ok(y)
}

/// Bytes of one Q4_0 block (32 values): f16 `d` + 16 bytes of 4-bit codes.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// Dequantize Q4_0 blocks (`bytes: (n_blocks * 18,)`) to f32: `y[j] = (lo(qs[j]) − 8) · d`,
/// `y[j + 16] = (hi(qs[j]) − 8) · d`.
///
/// # Errors
/// A byte length that is not a whole number of blocks.
pub fn dequant_q4_0(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(Q4_0_BLOCK_BYTES) {
        bail!(
            "Q4_0 data of {} bytes is not a whole number of 18-byte blocks",
            bytes.len()
        );
    }
    let mut y = Vec::with_capacity(bytes.len() / Q4_0_BLOCK_BYTES * 32);
    for b in bytes.chunks_exact(Q4_0_BLOCK_BYTES) {
        let d = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
        let qs = &b[2..];
        y.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
        y.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
    }
    Ok(y)
}

/// Dequantize Q6_K blocks (`bytes: (n_blocks * 210,)`) to f32, in ggml's order of operations
/// (`y = d * scale * q`, evaluated left to right in f32).
///
/// # Errors
/// A byte length that is not a whole number of blocks.
pub fn dequant_q6_k(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(Q6_K_BLOCK_BYTES) {
        bail!(
            "Q6_K data of {} bytes is not a whole number of 210-byte blocks",
            bytes.len()
        );
    }
    let mut out = Vec::with_capacity(bytes.len() / Q6_K_BLOCK_BYTES * Q6_K_BLOCK_ELEMS);
    for b in bytes.chunks_exact(Q6_K_BLOCK_BYTES) {
        let (ql_all, rest) = b.split_at(128);
        let (qh_all, rest) = rest.split_at(64);
        let (sc_all, dbytes) = rest.split_at(16);
        let d = f16::from_bits(u16::from_le_bytes([dbytes[0], dbytes[1]])).to_f32();
        let mut y = [0f32; Q6_K_BLOCK_ELEMS];
        for half in 0..2 {
            let ql = &ql_all[64 * half..];
            let qh = &qh_all[32 * half..];
            let sc = &sc_all[8 * half..];
            let y = &mut y[128 * half..];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                let s = |i: usize| (sc[i] as i8) as f32;
                y[l] = d * s(is) * q1 as f32;
                y[l + 32] = d * s(is + 2) * q2 as f32;
                y[l + 64] = d * s(is + 4) * q3 as f32;
                y[l + 96] = d * s(is + 6) * q4 as f32;
            }
        }
        out.extend_from_slice(&y);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block() {
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        b[2] = 4;
        b[3] = (-6i8) as u8;
        let y = dequant_q8_0(&b).unwrap();
        assert_eq!(&y[..3], &[2.0, -3.0, 0.0]);
        assert!(dequant_q8_0(&b[..33]).is_err());
    }

    #[test]
    fn q4_0_block() {
        // d = 0.25; byte 0 = 0x3C: value 0 has code 0xC (12 - 8 = 4), value 16 code 3 (-5)
        let mut b = vec![0x88u8; 18];
        b[..2].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        b[2] = 0x3C;
        b[17] = 0xF0; // value 15: code 0 (-8); value 31: code 15 (+7)
        let y = dequant_q4_0(&b).unwrap();
        assert_eq!(y.len(), 32);
        assert_eq!(
            (y[0], y[16], y[1], y[15], y[31]),
            (1.0, -1.25, 0.0, -2.0, 1.75)
        );
        assert!(dequant_q4_0(&b[..17]).is_err());
    }

    #[test]
    fn q4_0_quantizer_follows_ggml() {
        // Hand-computed from ggml's definition. Block: max = -2 (|max| largest), d = 0.25,
        // id = 4; x = 1.9 -> trunc(7.6 + 8.5) = 16 -> clipped to 15; x = 0.125 -> trunc(9.0) = 9;
        // x = -0.125 -> trunc(8.0) = 8; x = -0.13 -> trunc(7.98) = 7; x = 0 -> 8; x = -2 -> 0.
        let mut v = [0f32; 32];
        v[0] = -2.0;
        v[16] = 1.9;
        v[1] = 0.125;
        v[17] = -0.125;
        v[2] = -0.13;
        let b = quantize_q4_0(&v).unwrap();
        assert_eq!(b.len(), 18);
        assert_eq!(&b[..2], &f16::from_f32(0.25).to_bits().to_le_bytes());
        assert_eq!(&b[2..6], &[0xF0, 0x89, 0x87, 0x88]);
        assert!(b[6..].iter().all(|&x| x == 0x88));
        // ties in |x|: the first wins, so the sign of d follows it
        let mut v = [0f32; 32];
        v[5] = 4.0;
        v[9] = -4.0;
        let b = quantize_q4_0(&v).unwrap();
        assert_eq!(&b[..2], &f16::from_f32(-0.5).to_bits().to_le_bytes());
        assert_eq!((b[2 + 5] & 15, b[2 + 9] & 15), (0, 15));
        // a zero block: d = 0 / -8 = -0.0 (f16 0x8000, as ggml writes it), id = 0, every
        // code trunc(8.5) = 8
        let b = quantize_q4_0(&[0.0; 64]).unwrap();
        assert_eq!(&b[..2], &[0x00, 0x80]);
        assert!(b[2..18].iter().all(|&x| x == 0x88));
        // round trip through the dequantizer: within d/2 except the clipped end
        let v: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 29) as f32 - 14.0) * 0.03)
            .collect();
        let y = dequant_q4_0(&quantize_q4_0(&v).unwrap()).unwrap();
        for (blk, (vb, yb)) in v.chunks(32).zip(y.chunks(32)).enumerate() {
            let max = vb
                .iter()
                .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
            let d = (max / 8.0).abs();
            for (x, yv) in vb.iter().zip(yb) {
                let clipped = x * max.signum() < -7.0 / 8.0 * max.abs();
                assert!(
                    clipped || (x - yv).abs() <= d / 2.0 + 1e-3,
                    "block {blk}: {x} -> {yv}"
                );
            }
        }
        assert!(quantize_q4_0(&[0.0; 33]).is_err());
    }

    #[test]
    fn q6_k_block_positions() {
        let mut b = vec![0u8; 210];
        // all q = 32 (value 0) except a few; scales 1, d = 1.
        for x in &mut b[..128] {
            *x = 0;
        }
        for x in &mut b[128..192] {
            *x = 0b10_10_10_10; // high bits 2 -> q = 32 + low
        }
        for x in &mut b[192..208] {
            *x = 1;
        }
        b[208..210].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        b[0] = 0x53; // l=0: q1 low 3, q3 low 5
        b[32] = 0x07; // q2 low 7
        let y = dequant_q6_k(&b).unwrap();
        assert_eq!(y[0], 3.0);
        assert_eq!(y[64], 5.0);
        assert_eq!(y[32], 7.0);
        assert_eq!(y[1], 0.0);
        assert_eq!(y.len(), 256);
    }
}
