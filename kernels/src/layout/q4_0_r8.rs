//! `Q4_0_R8`: Q4_0 rows interleaved in groups of 8 for the LM head's matvec.

use super::{Q4_0_BLOCK_BYTES, Q4_0_BLOCK_ELEMS};

/// Rows per interleaved group of [`super::Layout::Q4_0R8`].
pub const Q4_0_R8_ROWS: usize = 8;

/// Bytes of one block of a group: the same block of its 8 rows (8 · 18 bytes).
pub const Q4_0_R8_BLOCK_BYTES: usize = Q4_0_R8_ROWS * Q4_0_BLOCK_BYTES;

/// `Q4_0_R8`: the [`super::BlockQ4_0`] blocks of a `(rows, cols)` matrix, with `rows` a
/// multiple of [`Q4_0_R8_ROWS`] and `cols` a positive multiple of 32, stored in groups of 8
/// consecutive rows. A group holds its `cols / 32` blocks in column order; block `b` of a group
/// is 144 bytes:
///
/// - bytes `0..16`: the 8 rows' f16 scales `d`, row `i`'s at `2i` (little-endian);
/// - bytes `16..144`: four chunks of 32 bytes; chunk `c` (0..4) holds code bytes `qs[4c..4c+4]`
///   of row 0, then of row 1, …, of row 7 (row `i`'s at `16 + 32c + 4i`).
///
/// So block `b` of row `r` starts its group block at byte `(r / 8) · 8 · row_bytes + 144 b`,
/// with `row_bytes = 18 · cols / 32` as in [`super::Layout::Q4_0`]: a group is the same bytes
/// as 8 Q4_0 rows, in another order, and the values are exactly Q4_0's.
///
/// Why: with the codes of 8 rows side by side, each 32-bit lane of a 256-bit register is one
/// row's 4 code bytes, so one `vpmaddubsw` / `sdot` against 4 broadcast activations adds to
/// 8 rows' sums at once, and a block needs no horizontal sums (the row-interleaved repacking
/// of llama.cpp's `Q4_0_8_8` and ik_llama.cpp's `Q4_0_R8`, in Tern's own byte order).
///
/// `None` if `r` or `b` is out of range or the shape is not `Q4_0_R8`'s.
pub fn q4_0_r8_block_offset(rows: usize, cols: usize, r: usize, b: usize) -> Option<usize> {
    if !q4_0_r8_shape_ok(rows, cols) || r >= rows || b >= cols / Q4_0_BLOCK_ELEMS {
        return None;
    }
    let row_bytes = cols / Q4_0_BLOCK_ELEMS * Q4_0_BLOCK_BYTES;
    Some((r / Q4_0_R8_ROWS) * Q4_0_R8_ROWS * row_bytes + b * Q4_0_R8_BLOCK_BYTES)
}

/// Whether a `(rows, cols)` matrix can be stored as [`super::Layout::Q4_0R8`]: `rows` a
/// multiple of 8 and `cols` a positive multiple of 32.
pub fn q4_0_r8_shape_ok(rows: usize, cols: usize) -> bool {
    rows.is_multiple_of(Q4_0_R8_ROWS) && cols > 0 && cols.is_multiple_of(Q4_0_BLOCK_ELEMS)
}

/// Row `i` (0..8) of a group block `blk: (144,)` as a plain Q4_0 block (scale, then 16 code
/// bytes).
///
/// # Panics
/// If `blk` is shorter than 144 bytes or `i >= 8`.
pub fn q4_0_r8_gather(blk: &[u8], i: usize) -> [u8; Q4_0_BLOCK_BYTES] {
    let mut out = [0u8; Q4_0_BLOCK_BYTES];
    for (at_block, at_group, n) in spans(i) {
        out[at_block..at_block + n].copy_from_slice(&blk[at_group..at_group + n]);
    }
    out
}

/// Where row `i` (0..8) of a group block keeps the bytes of its Q4_0 block: `(offset in the
/// 18-byte block, offset in the 144-byte group block, bytes)` for the scale and the four
/// 4-byte pieces of codes.
///
/// # Panics
/// If `i >= 8`.
fn spans(i: usize) -> [(usize, usize, usize); 5] {
    assert!(i < Q4_0_R8_ROWS, "Q4_0_R8: row {i} of a group of 8");
    let codes = |c: usize| (2 + 4 * c, 16 + 32 * c + 4 * i, 4);
    [(0, 2 * i, 2), codes(0), codes(1), codes(2), codes(3)]
}

/// Reorder row-major Q4_0 bytes `src: (rows, cols)` into [`super::Layout::Q4_0R8`] order in
/// `out` (same length).
///
/// # Panics
/// If the shape is not `Q4_0_R8`'s or a length is not `rows · 18 · cols / 32`.
pub fn q4_0_r8_interleave(src: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(
        q4_0_r8_shape_ok(rows, cols),
        "Q4_0_R8: shape ({rows}, {cols})"
    );
    let rb = cols / Q4_0_BLOCK_ELEMS * Q4_0_BLOCK_BYTES;
    assert_eq!(src.len(), rows * rb);
    assert_eq!(out.len(), src.len());
    for r in 0..rows {
        let i = r % Q4_0_R8_ROWS;
        for (b, blk) in src[r * rb..(r + 1) * rb]
            .chunks_exact(Q4_0_BLOCK_BYTES)
            .enumerate()
        {
            let at = q4_0_r8_block_offset(rows, cols, r, b).expect("in range");
            for (at_block, at_group, n) in spans(i) {
                out[at + at_group..at + at_group + n].copy_from_slice(&blk[at_block..at_block + n]);
            }
        }
    }
}

/// The inverse of [`q4_0_r8_interleave`]: [`super::Layout::Q4_0R8`] bytes `src: (rows, cols)`
/// back to row-major Q4_0 in `out` (same length).
///
/// # Panics
/// As [`q4_0_r8_interleave`].
pub fn q4_0_r8_deinterleave(src: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(
        q4_0_r8_shape_ok(rows, cols),
        "Q4_0_R8: shape ({rows}, {cols})"
    );
    let rb = cols / Q4_0_BLOCK_ELEMS * Q4_0_BLOCK_BYTES;
    assert_eq!(out.len(), rows * rb);
    for (r, row) in out.chunks_exact_mut(rb).enumerate() {
        q4_0_r8_row(src, rows, cols, r, row);
    }
}

/// Row `r` of a [`super::Layout::Q4_0R8`] matrix `data: (rows, cols)` as row-major Q4_0 bytes
/// `out: (18 · cols / 32,)` (the embedding lookup of a tied head).
///
/// # Panics
/// If the shape is not `Q4_0_R8`'s, `r >= rows`, or a length is wrong.
pub fn q4_0_r8_row(data: &[u8], rows: usize, cols: usize, r: usize, out: &mut [u8]) {
    let rb = cols / Q4_0_BLOCK_ELEMS * Q4_0_BLOCK_BYTES;
    assert_eq!(data.len(), rows * rb);
    assert_eq!(out.len(), rb);
    for (b, o) in out.chunks_exact_mut(Q4_0_BLOCK_BYTES).enumerate() {
        let at =
            q4_0_r8_block_offset(rows, cols, r, b).expect("Q4_0_R8: row or shape out of range");
        o.copy_from_slice(&q4_0_r8_gather(
            &data[at..at + Q4_0_R8_BLOCK_BYTES],
            r % Q4_0_R8_ROWS,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Layout;
    use super::*;

    #[test]
    fn golden_order() {
        // Spec (core/FORMAT.md): group block b of rows 8g.. at g·8·row_bytes + 144 b; row i's
        // scale at 2i, its code bytes 4c..4c+4 at 16 + 32c + 4i.
        let (rows, cols) = (16usize, 64usize);
        let rb = 36;
        // byte j of row r's block b: r·16 + b·4 + j (mod 256), distinct within a group
        let src: Vec<u8> = (0..rows * rb)
            .map(|k| ((k / rb) * 40 + k % rb) as u8)
            .collect();
        let mut out = vec![0u8; src.len()];
        q4_0_r8_interleave(&src, rows, cols, &mut out);
        let byte = |r: usize, b: usize, j: usize| src[r * rb + 18 * b + j];
        assert_eq!(out[0..2], [byte(0, 0, 0), byte(0, 0, 1)]); // row 0's scale
        assert_eq!(out[14..16], [byte(7, 0, 0), byte(7, 0, 1)]); // row 7's scale
        assert_eq!(out[16..20], [2, 3, 4, 5].map(|j| byte(0, 0, j))); // row 0, qs[0..4]
        assert_eq!(out[20], byte(1, 0, 2)); // row 1, qs[0]
        assert_eq!(out[16 + 32 * 3 + 4 * 7 + 3], byte(7, 0, 17)); // row 7, qs[15]
        assert_eq!(out[144..146], [byte(0, 1, 0), byte(0, 1, 1)]); // block 1: row 0's scale
        assert_eq!(out[144 + 2], byte(1, 1, 0)); // block 1: row 1's scale
        assert_eq!(out[288], byte(8, 0, 0)); // group 1 (rows 8..16) starts at 8 · 36 bytes
        assert_eq!(out[8 * rb + 144 + 16 + 32 + 4], byte(9, 1, 6)); // group 1, row 9, qs[4]
        let mut back = vec![0u8; src.len()];
        q4_0_r8_deinterleave(&out, rows, cols, &mut back);
        assert_eq!(back, src);
        let mut row = vec![0u8; rb];
        for r in 0..rows {
            q4_0_r8_row(&out, rows, cols, r, &mut row);
            assert_eq!(row, src[r * rb..(r + 1) * rb], "row {r}");
        }
        assert!(q4_0_r8_shape_ok(8, 32) && !q4_0_r8_shape_ok(7, 32) && !q4_0_r8_shape_ok(8, 48));
        assert!(!q4_0_r8_shape_ok(8, 0));
        assert_eq!(q4_0_r8_block_offset(16, 64, 16, 0), None);
        assert_eq!(q4_0_r8_block_offset(16, 64, 0, 2), None);
        assert_eq!(Layout::from_id(8), Some(Layout::Q4_0R8));
        assert_eq!(Layout::Q4_0R8.row_bytes(64), Some(36));
        assert_eq!(Layout::Q4_0R8.row_group(), 8);
    }
}
