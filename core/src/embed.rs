//! The token-embedding lookup: row `token` of the embedding `(vocab, dim)` as f32, in every
//! layout the format allows for it. A row-major layout's row is one contiguous piece; an
//! interleaved head's row is gathered piece by piece (`F16_R8`: `dim / 32` pieces of 64 bytes;
//! `Q4_0_R8`: the `dim / 32` group blocks of 144 bytes holding its blocks).

use core::ops::Range;

use tern_kernels::float::scalar::decode_row;
use tern_kernels::layout::{
    F16_R8_COLS, Layout, Q4_0_BLOCK_ELEMS, Q4_0_R8_BLOCK_BYTES, Q4_0_R8_ROWS, f16_r8_piece_offset,
    q4_0_r8_block_offset, q4_0_r8_gather,
};

/// The pieces of one embedding row: where each lies in the tensor and which values it decodes
/// to. The caller reads each piece's bytes (in place, or through a streaming source) and hands
/// them to [`EmbeddingRow::decode`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmbeddingRow {
    layout: Layout,
    vocab: usize,
    dim: usize,
    token: usize,
}

impl EmbeddingRow {
    /// Row `token` of a validated embedding of layout `layout` and shape `(vocab, dim)`.
    pub(crate) fn new(layout: Layout, vocab: usize, dim: usize, token: usize) -> Self {
        EmbeddingRow {
            layout,
            vocab,
            dim,
            token,
        }
    }

    /// Number of pieces.
    pub(crate) fn pieces(&self) -> usize {
        match self.layout {
            Layout::F16R8 => self.dim / F16_R8_COLS,
            Layout::Q4_0R8 => self.dim / Q4_0_BLOCK_ELEMS,
            _ => 1,
        }
    }

    /// Piece `k`: (byte offset in the tensor, bytes, the row's values it decodes to). `None`
    /// if the token or `k` is out of range or the shape is not the layout's (the format's
    /// validation rules the last out).
    pub(crate) fn piece(&self, k: usize) -> Option<(usize, usize, Range<usize>)> {
        let (v, d, t) = (self.vocab, self.dim, self.token);
        if t >= v || k >= self.pieces() {
            return None;
        }
        match self.layout {
            Layout::F16R8 => {
                let vals = k * F16_R8_COLS..(k + 1) * F16_R8_COLS;
                Some((f16_r8_piece_offset(v, d, t, k)?, 2 * F16_R8_COLS, vals))
            }
            Layout::Q4_0R8 => {
                let vals = k * Q4_0_BLOCK_ELEMS..(k + 1) * Q4_0_BLOCK_ELEMS;
                Some((q4_0_r8_block_offset(v, d, t, k)?, Q4_0_R8_BLOCK_BYTES, vals))
            }
            l => {
                let rb = l.row_bytes(d)?;
                Some((t.checked_mul(rb)?, rb, 0..d))
            }
        }
    }

    /// The most bytes one piece of a `dim`-wide row of `layout` needs.
    pub(crate) fn max_piece_bytes(layout: Layout, dim: usize) -> Option<usize> {
        match layout {
            Layout::F16R8 => Some(2 * F16_R8_COLS),
            Layout::Q4_0R8 => Some(Q4_0_R8_BLOCK_BYTES),
            l => l.row_bytes(dim),
        }
    }

    /// Decode one piece's `bytes` into its values `out` (as [`EmbeddingRow::piece`] gave
    /// them). `false` if the lengths disagree or the layout has no float decoding.
    pub(crate) fn decode(&self, bytes: &[u8], out: &mut [f32]) -> bool {
        match self.layout {
            Layout::F16R8 => decode_row(Layout::F16, bytes, out),
            Layout::Q4_0R8 => {
                bytes.len() == Q4_0_R8_BLOCK_BYTES
                    && decode_row(
                        Layout::Q4_0,
                        &q4_0_r8_gather(bytes, self.token % Q4_0_R8_ROWS),
                        out,
                    )
            }
            l => decode_row(l, bytes, out),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;
    use tern_kernels::layout::{f16_r8_interleave, q4_0_r8_interleave};

    /// Gather row `t` through the pieces, as the session does with resident weights.
    fn lookup(layout: Layout, data: &[u8], vocab: usize, dim: usize, t: usize) -> Vec<f32> {
        let e = EmbeddingRow::new(layout, vocab, dim, t);
        let mut out = vec![f32::NAN; dim];
        for k in 0..e.pieces() {
            let (off, len, vals) = e.piece(k).unwrap();
            assert!(len <= EmbeddingRow::max_piece_bytes(layout, dim).unwrap());
            assert!(e.decode(&data[off..off + len], &mut out[vals]));
        }
        out
    }

    #[test]
    fn interleaved_rows_decode_as_their_row_major_rows() {
        let (vocab, dim) = (16usize, 64usize);
        // F16: row r, column c holds (r·64 + c) / 8, exact in F16
        let f16: Vec<u8> = (0..vocab * dim)
            .flat_map(|i| half::f16::from_f32(i as f32 / 8.0).to_bits().to_le_bytes())
            .collect();
        let mut r8 = vec![0u8; f16.len()];
        f16_r8_interleave(&f16, vocab, dim, &mut r8);
        // Q4_0: scale 1.0 (0x3C00) and code bytes that differ per row and block
        let q4: Vec<u8> = (0..vocab * dim / 32)
            .flat_map(|b| {
                let mut blk = vec![0x00, 0x3C];
                blk.extend((0..16).map(|j| (b * 7 + j * 13) as u8));
                blk
            })
            .collect();
        let mut q4r8 = vec![0u8; q4.len()];
        q4_0_r8_interleave(&q4, vocab, dim, &mut q4r8);
        for t in [0, 5, 8, 15] {
            let want16 = lookup(Layout::F16, &f16, vocab, dim, t);
            assert_eq!(want16[3], (t * 64 + 3) as f32 / 8.0);
            assert_eq!(
                lookup(Layout::F16R8, &r8, vocab, dim, t),
                want16,
                "F16_R8 row {t}"
            );
            let want4 = lookup(Layout::Q4_0, &q4, vocab, dim, t);
            // value 1 of block 0: low nibble of byte 1, minus 8
            assert_eq!(want4[1], f32::from(((t * 2 * 7 + 13) as u8) & 15) - 8.0);
            assert_eq!(
                lookup(Layout::Q4_0R8, &q4r8, vocab, dim, t),
                want4,
                "Q4_0_R8 row {t}"
            );
        }
        let e = EmbeddingRow::new(Layout::Q4_0R8, vocab, dim, vocab);
        assert_eq!(e.piece(0), None, "token out of range");
        assert_eq!(
            EmbeddingRow::new(Layout::Q4_0R8, vocab, dim, 0).piece(2),
            None
        );
    }
}
