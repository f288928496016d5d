//! Ternary decoders: every source form of a BitNet b1.58 weight matrix becomes
//! [`Ternary`] (codes in {-1, 0, +1}, `(rows, cols)` row-major, plus BitLinear's
//! `weight_scale` divisor), then `T2_128` bytes.
//!
//! Sources:
//! * TQ1_0 / TQ2_0: ggml `ggml-common.h` (`block_tq1_0`, `block_tq2_0`) and `ggml-quants.c`
//!   (`dequantize_row_tq1_0`, `dequantize_row_tq2_0`), gguf-py `quants.py`, llama.cpp `0c1e57098`.
//! * I2_S: microsoft/BitNet (GGML type 36), layout as verified in `shared/fixtures/README.md`.
//! * HF packed uint8: transformers `integrations/bitnet.py` `pack_weights` / `unpack_weights`.
//! * Absmean: transformers `integrations/bitnet.py` `WeightQuant`.

use anyhow::{Result, bail};
use half::f16;
use tern_kernels::layout::{t2_encode_row, t2_row_bytes};

/// A decoded ternary matrix `(rows, cols)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    /// Codes in {-1, 0, +1}, row-major `(rows * cols,)`.
    pub codes: Vec<i8>,
    /// BitLinear's `weight_scale`: the divisor (effective weight = code / weight_scale).
    pub weight_scale: f32,
}

/// `weight_scale` for a per-tensor multiplier `alpha` (effective weight = code · alpha):
/// `1 / alpha`, or 1.0 when every code is zero (the scale is then meaningless).
///
/// # Errors
/// `alpha` not finite and positive while some code is non-zero.
pub fn scale_from_alpha(alpha: f32, codes: &[i8]) -> Result<f32> {
    if codes.iter().all(|&c| c == 0) {
        return Ok(1.0);
    }
    let ws = 1.0 / alpha;
    if !(alpha.is_finite() && alpha > 0.0 && ws.is_finite()) {
        bail!("tensor scale alpha = {alpha} is not a finite positive number");
    }
    Ok(ws)
}

/// Encode `codes: (rows * cols,)` as `T2_128` rows (`rows * t2_row_bytes(cols)` bytes).
pub fn encode_t2(codes: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let rb = t2_row_bytes(cols);
    let mut out = vec![0u8; rows * rb];
    if cols == 0 {
        return out;
    }
    for (w, o) in codes.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        t2_encode_row(w, o);
    }
    out
}

/// Values per TQ1_0 / TQ2_0 block (QK_K).
pub const TQ_BLOCK_ELEMS: usize = 256;
/// Bytes per TQ1_0 block: `qs[48]` (5 trits per byte), `qh[4]` (4 trits per byte), f16 `d`.
pub const TQ1_0_BLOCK_BYTES: usize = 54;
/// Bytes per TQ2_0 block: `qs[64]` (4 × 2-bit per byte), f16 `d`.
pub const TQ2_0_BLOCK_BYTES: usize = 66;

/// Check that all blocks that hold a non-zero code share one scale `d` (BitNet tensors have one
/// per-tensor scale; all-zero blocks are ignored: their `d` is 0 in llama.cpp's quantizer).
fn common_block_scale(ds: &[(u16, bool)]) -> Result<f32> {
    let mut found: Option<u16> = None;
    for (i, &(d, nonzero)) in ds.iter().enumerate() {
        if !nonzero {
            continue;
        }
        match found {
            None => found = Some(d),
            Some(f) if f16::from_bits(f) == f16::from_bits(d) => {}
            Some(f) => bail!(
                "block scales differ (block 0.. has d = {}, block {i} has d = {}); a BitNet b1.58 \
                 tensor has one scale per tensor, this file is not a ternary BitNet model",
                f16::from_bits(f),
                f16::from_bits(d)
            ),
        }
    }
    Ok(found.map_or(1.0, |d| f16::from_bits(d).to_f32()))
}

/// Decode TQ2_0 blocks into a [`Ternary`] of `n` values.
///
/// # Errors
/// Wrong byte length, a 2-bit code of 3, differing block scales, bad scale.
pub fn decode_tq2_0(bytes: &[u8], n: usize) -> Result<Ternary> {
    if !n.is_multiple_of(TQ_BLOCK_ELEMS) || bytes.len() != n / TQ_BLOCK_ELEMS * TQ2_0_BLOCK_BYTES {
        bail!(
            "TQ2_0 data: {} bytes for {n} values (need {} per 256 values)",
            bytes.len(),
            TQ2_0_BLOCK_BYTES
        );
    }
    let mut codes = vec![0i8; n];
    let mut ds = Vec::with_capacity(n / TQ_BLOCK_ELEMS);
    for (b, y) in bytes
        .chunks_exact(TQ2_0_BLOCK_BYTES)
        .zip(codes.chunks_exact_mut(TQ_BLOCK_ELEMS))
    {
        let qs = &b[..64];
        let mut nonzero = false;
        for j in (0..64).step_by(32) {
            for l in 0..4 {
                for m in 0..32 {
                    let q = (qs[j + m] >> (2 * l)) & 3;
                    if q == 3 {
                        bail!("TQ2_0 data holds the invalid 2-bit code 3 (not a ternary tensor)");
                    }
                    let v = q as i8 - 1;
                    nonzero |= v != 0;
                    y[j * 4 + l * 32 + m] = v;
                }
            }
        }
        ds.push((u16::from_le_bytes([b[64], b[65]]), nonzero));
    }
    let alpha = common_block_scale(&ds)?;
    let weight_scale = scale_from_alpha(alpha, &codes)?;
    Ok(Ternary {
        codes,
        weight_scale,
    })
}

/// One base-3 digit of llama.cpp's TQ1_0 packing: `((q * 3^n) as u8 as u16 * 3) >> 8`.
fn trit(q: u8, pow3: u8) -> i8 {
    let q = q.wrapping_mul(pow3);
    (((q as u16) * 3) >> 8) as i8 - 1
}

/// Decode TQ1_0 blocks into a [`Ternary`] of `n` values.
///
/// # Errors
/// Wrong byte length, differing block scales, bad scale.
pub fn decode_tq1_0(bytes: &[u8], n: usize) -> Result<Ternary> {
    if !n.is_multiple_of(TQ_BLOCK_ELEMS) || bytes.len() != n / TQ_BLOCK_ELEMS * TQ1_0_BLOCK_BYTES {
        bail!(
            "TQ1_0 data: {} bytes for {n} values (need {} per 256 values)",
            bytes.len(),
            TQ1_0_BLOCK_BYTES
        );
    }
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let mut codes = vec![0i8; n];
    let mut ds = Vec::with_capacity(n / TQ_BLOCK_ELEMS);
    for (b, y) in bytes
        .chunks_exact(TQ1_0_BLOCK_BYTES)
        .zip(codes.chunks_exact_mut(TQ_BLOCK_ELEMS))
    {
        let (qs, qh) = (&b[..48], &b[48..52]);
        let mut k = 0;
        for p in POW3 {
            for &q in &qs[..32] {
                y[k] = trit(q, p);
                k += 1;
            }
        }
        for p in POW3 {
            for &q in &qs[32..48] {
                y[k] = trit(q, p);
                k += 1;
            }
        }
        for &p in &POW3[..4] {
            for &q in qh {
                y[k] = trit(q, p);
                k += 1;
            }
        }
        debug_assert_eq!(k, TQ_BLOCK_ELEMS);
        let nonzero = y.iter().any(|&v| v != 0);
        ds.push((u16::from_le_bytes([b[52], b[53]]), nonzero));
    }
    let alpha = common_block_scale(&ds)?;
    let weight_scale = scale_from_alpha(alpha, &codes)?;
    Ok(Ternary {
        codes,
        weight_scale,
    })
}

/// Values per I2_S block.
pub const I2S_BLOCK_ELEMS: usize = 128;
/// Bytes of the I2_S tail after the packed data (first 4 bytes: f32 scale alpha; rest garbage).
pub const I2S_TAIL_BYTES: usize = 32;

/// Whether any 2-bit field of `b` is 3.
fn has_code3(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b & (b >> 1) & 0x55 != 0)
}

/// Decode an I2_S tensor of `(rows, cols)` straight to `T2_128` bytes plus `weight_scale`.
///
/// I2_S cuts the row-major matrix into blocks of 128 values, 32 bytes each, with byte
/// `j = c[j]<<6 | c[32+j]<<4 | c[64+j]<<2 | c[96+j]` (`c = w + 1`); the `n/4` data bytes are
/// followed by a 32-byte tail whose first 4 bytes are the f32 scale alpha (the remaining 28 are
/// uninitialized memory in bitnet.cpp's `llama-quantize`; ignored). That is `T2_128`'s block
/// order, so when `cols % 128 == 0` the data is copied as is.
///
/// # Errors
/// Wrong byte length, `rows * cols` not a multiple of 128, code 3, bad scale.
pub fn decode_i2_s_t2(bytes: &[u8], rows: usize, cols: usize) -> Result<(Vec<u8>, f32)> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| anyhow::anyhow!("I2_S: element count overflows"))?;
    if n % I2S_BLOCK_ELEMS != 0 {
        bail!("I2_S: {n} values is not a multiple of the 128-value block");
    }
    if bytes.len() != n / 4 + I2S_TAIL_BYTES {
        bail!(
            "I2_S data: {} bytes for {n} values (need n/4 + 32 = {})",
            bytes.len(),
            n / 4 + I2S_TAIL_BYTES
        );
    }
    let (data, tail) = bytes.split_at(n / 4);
    if has_code3(data) {
        bail!("I2_S data holds the invalid 2-bit code 3 (not a ternary tensor)");
    }
    let alpha = f32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let all_zero = data.iter().all(|&b| b == 0b0101_0101);
    let weight_scale = if all_zero {
        1.0
    } else {
        scale_from_alpha(alpha, &[1])?
    };
    if cols.is_multiple_of(I2S_BLOCK_ELEMS) {
        return Ok((data.to_vec(), weight_scale));
    }
    // General case: blocks straddle rows; decode to codes and re-encode per row.
    let mut codes = vec![0i8; n];
    for (blk, y) in data
        .chunks_exact(32)
        .zip(codes.chunks_exact_mut(I2S_BLOCK_ELEMS))
    {
        for (j, &byte) in blk.iter().enumerate() {
            for g in 0..4 {
                y[g * 32 + j] = ((byte >> (6 - 2 * g)) & 3) as i8 - 1;
            }
        }
    }
    Ok((encode_t2(&codes, rows, cols), weight_scale))
}

/// Unpack an HF packed BitNet weight (`packed: (out/4, in)` uint8, row-major) to codes
/// `(out, in)`: `packed[r, c]` bits `2i..2i+1` hold `w[r + i*R, c] + 1` with `R = out/4`.
///
/// # Errors
/// `out` not a multiple of 4, wrong byte length, code 3.
pub fn unpack_hf(packed: &[u8], out: usize, inp: usize) -> Result<Vec<i8>> {
    if !out.is_multiple_of(4) {
        bail!("packed weight: out features {out} is not a multiple of 4");
    }
    let r_quarter = out / 4;
    if packed.len() != r_quarter * inp {
        bail!(
            "packed weight: {} bytes, expected (out/4) * in = {}",
            packed.len(),
            r_quarter * inp
        );
    }
    if has_code3(packed) {
        bail!("packed weight holds the invalid 2-bit code 3 (not a ternary tensor)");
    }
    let mut codes = vec![0i8; out * inp];
    for r in 0..r_quarter {
        let src = &packed[r * inp..(r + 1) * inp];
        for i in 0..4 {
            let dst = &mut codes[(r + i * r_quarter) * inp..(r + i * r_quarter + 1) * inp];
            for (d, &b) in dst.iter_mut().zip(src) {
                *d = ((b >> (2 * i)) & 3) as i8 - 1;
            }
        }
    }
    Ok(codes)
}

/// If every value of `w` is 0 or ±a for one finite `a > 0` (or all are 0), the codes `w / a`
/// and `weight_scale = 1 / a` (1.0 when all are 0); else `None`.
pub fn exact_ternary(w: &[f32]) -> Option<Ternary> {
    let Some(a) = w.iter().map(|v| v.abs()).find(|&v| v != 0.0) else {
        return Some(Ternary {
            codes: vec![0; w.len()],
            weight_scale: 1.0,
        });
    };
    if !w.iter().all(|&v| v == 0.0 || v.abs() == a) {
        return None;
    }
    let codes: Vec<i8> = w
        .iter()
        .map(|&v| {
            if v == 0.0 {
                0
            } else if v > 0.0 {
                1
            } else {
                -1
            }
        })
        .collect();
    let weight_scale = scale_from_alpha(a, &codes).ok()?;
    Some(Ternary {
        codes,
        weight_scale,
    })
}

/// Ternarize float weights `w: (rows * cols,)`.
///
/// If every value is 0 or ±a for one `a > 0` (a file that already holds `T * alpha`, e.g.
/// llama.cpp's F16 BitNet GGUFs), the codes are `w / a` exactly and `weight_scale = 1 / a`.
/// Otherwise absmean, exactly as transformers' `WeightQuant`:
/// `scale = 1 / clamp(mean|W|, 1e-5)`, `T = clamp(round_half_even(W * scale), -1, 1)`,
/// `weight_scale = scale` (the mean is accumulated in f64 and rounded once to f32).
///
/// # Errors
/// A NaN or infinite value.
pub fn ternarize_f32(w: &[f32]) -> Result<Ternary> {
    if let Some(bad) = w.iter().find(|v| !v.is_finite()) {
        bail!("weight holds a non-finite value ({bad})");
    }
    if let Some(t) = exact_ternary(w) {
        return Ok(t);
    }
    let sum: f64 = w.iter().map(|&v| v.abs() as f64).sum();
    let mean = (sum / w.len() as f64) as f32;
    let scale = 1.0 / mean.max(1e-5);
    let codes = w
        .iter()
        .map(|&v| (v * scale).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    Ok(Ternary {
        codes,
        weight_scale: scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tq2_0_roundtrip_positions() {
        let mut b = vec![0x55u8; 66]; // all code 1 = zero
        b[64..66].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        // element j*4 + l*32 + m: set j=32, l=2, m=3 -> index 128 + 64 + 3 = 195 to +1
        b[32 + 3] = (b[32 + 3] & !(3 << 4)) | (2 << 4);
        let t = decode_tq2_0(&b, 256).unwrap();
        assert_eq!(t.codes[195], 1);
        assert_eq!(t.codes.iter().filter(|&&c| c != 0).count(), 1);
        assert_eq!(t.weight_scale, 4.0);
    }

    #[test]
    fn tq_scales_must_agree() {
        let mut b = vec![0x55u8; 132];
        b[0] = 0x56;
        b[66] = 0x56;
        b[64..66].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        b[130..132].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        let e = decode_tq2_0(&b, 512).unwrap_err().to_string();
        assert!(e.contains("block scales differ"), "{e}");
        // An all-zero block with d = 0 is fine.
        b[66] = 0x55;
        b[130..132].copy_from_slice(&[0, 0]);
        assert_eq!(decode_tq2_0(&b, 512).unwrap().weight_scale, 4.0);
    }

    #[test]
    fn tq1_0_trits() {
        // A byte encoding trits t0..t4 (most significant first) = round(v * 256 / 243) style:
        // llama.cpp packs q = sum t_n 3^(4-n), byte = (q * 256 + 242) / 243.
        let t = [2u16, 0, 1, 2, 1];
        let q: u16 = t.iter().fold(0, |a, &d| a * 3 + d);
        let byte = (q * 256).div_ceil(243) as u8;
        let got: Vec<i8> = [1u8, 3, 9, 27, 81].iter().map(|&p| trit(byte, p)).collect();
        assert_eq!(got, t.iter().map(|&d| d as i8 - 1).collect::<Vec<_>>());
    }

    #[test]
    fn i2_s_general_and_fast_paths_agree() {
        let rows = 2;
        let cols = 192; // blocks straddle rows
        let codes: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 5) % 3) as i8 - 1)
            .collect();
        // Build I2_S bytes.
        let mut data = vec![0u8; rows * cols / 4];
        for (blk, y) in data.chunks_exact_mut(32).zip(codes.chunks_exact(128)) {
            for j in 0..32 {
                blk[j] = ((y[j] + 1) as u8) << 6
                    | ((y[32 + j] + 1) as u8) << 4
                    | ((y[64 + j] + 1) as u8) << 2
                    | (y[96 + j] + 1) as u8;
            }
        }
        data.extend(0.5f32.to_le_bytes());
        data.extend([0xAB; 28]);
        let (t2, ws) = decode_i2_s_t2(&data, rows, cols).unwrap();
        assert_eq!(ws, 2.0);
        assert_eq!(t2, encode_t2(&codes, rows, cols));
        // Fast path: cols = 128 per row.
        let (t2b, _) = decode_i2_s_t2(&data, 3, 128).unwrap();
        assert_eq!(t2b, encode_t2(&codes, 3, 128));
    }

    #[test]
    fn hf_unpack_quarters() {
        // out = 4, in = 1: byte holds rows 0..4 in bit pairs 0..3.
        let b = [0b10_00_01_10u8];
        assert_eq!(unpack_hf(&b, 4, 1).unwrap(), vec![1, 0, -1, 1]);
        assert!(unpack_hf(&[0xFF], 4, 1).is_err());
    }

    #[test]
    fn ternarize_exact_and_absmean() {
        let t = ternarize_f32(&[0.25, -0.25, 0.0, 0.25]).unwrap();
        assert_eq!((t.codes, t.weight_scale), (vec![1, -1, 0, 1], 4.0));
        let t = ternarize_f32(&[0.5, -0.1, 0.0, 1.0]).unwrap();
        // mean = 0.4, scale = 2.5: 1.25 -> 1, -0.25 -> 0, 0, 2.5 -> 1 (clamped)
        assert_eq!(t.codes, vec![1, 0, 0, 1]);
        assert_eq!(t.weight_scale, 1.0 / 0.4f32);
        assert!(ternarize_f32(&[f32::NAN]).is_err());
    }
}
