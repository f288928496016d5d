//! Packed weight layouts.
//!
//! A layout is a block struct with a size assert plus one row in [`LAYOUTS`] (the ggml
//! `ggml-common.h` style). The `.tern` format stores each tensor's layout id; the on-disk
//! layout never depends on the build's architecture.

mod q4_0_r8;
pub use q4_0_r8::*;

/// Weights per [`BlockT2`] block.
pub const T2_BLOCK_ELEMS: usize = 128;

/// `T2_128`: ternary weights, 2 bits each, 128 weights in 32 bytes (2.0 bpw), no per-block scale
/// (BitNet b1.58 has one scale per tensor, kept in the tensor table).
///
/// Within a block of 128 consecutive weights `w[0..128]` of one row, byte `j` (0..32) holds
/// `c[j] << 6 | c[32 + j] << 4 | c[64 + j] << 2 | c[96 + j]` with the code `c = w + 1`
/// (0, 1, 2 for -1, 0, +1). Code 3 is never written; every kernel reads it as +2 (`c - 1`),
/// so all variants still agree bit for bit on a corrupt file (whose CRC32 also fails). Rows are padded with zero weights (code 1) to a
/// multiple of 128, so a row of `cols` weights takes `ceil(cols / 128) * 32` bytes.
///
/// This is the in-block order of bitnet.cpp's x86 I2_S (so I2_S imports without repacking),
/// chosen because both AVX2 (one 32-byte load, shift and mask → four 32-weight vectors) and
/// NEON (two 16-byte loads) expand it at full speed.
///
/// Source: microsoft/BitNet `ggml-bitnet-mad.cpp` (I2_S, QK 128, x86 order), verified against
/// the fixture `micro-i2_s.gguf` (see `shared/fixtures/README.md`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockT2 {
    /// 32 packed bytes, 4 codes each.
    pub qs: [u8; 32],
}
const _: () = assert!(core::mem::size_of::<BlockT2>() == 32);

/// Bytes of one `T2_128` row of `cols` weights (padded to a multiple of 128).
pub const fn t2_row_bytes(cols: usize) -> usize {
    cols.div_ceil(T2_BLOCK_ELEMS) * 32
}

/// Decode weight `i` (0..128) of a `T2_128` block: returns `code - 1`, i.e. -1, 0 or +1 for
/// every code the importers write (the invalid code 3 reads as 2, as in the kernels).
#[inline]
pub fn t2_get(block: &[u8], i: usize) -> i8 {
    let byte = block[i % 32];
    let shift = 6 - 2 * (i / 32);
    let c = (byte >> shift) & 3;
    c as i8 - 1
}

/// Encode one row of ternary values (`w: (cols,)`, each in {-1, 0, 1}) into `T2_128` bytes
/// (`out: (t2_row_bytes(cols),)`). Values outside {-1, 0, 1} are clamped.
pub fn t2_encode_row(w: &[i8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), t2_row_bytes(w.len()));
    for b in out.iter_mut() {
        *b = 0b0101_0101; // four zero weights (code 1)
    }
    for (i, &v) in w.iter().enumerate() {
        let blk = i / T2_BLOCK_ELEMS;
        let k = i % T2_BLOCK_ELEMS;
        let shift = 6 - 2 * (k / 32);
        let idx = blk * 32 + k % 32;
        let c = (v.clamp(-1, 1) + 1) as u8;
        out[idx] = (out[idx] & !(3 << shift)) | (c << shift);
    }
}

/// Weights per [`BlockT1`] block.
pub const T1_BLOCK_ELEMS: usize = 160;

/// `T1_160`: ternary weights, 5 per byte in base 3, 160 weights in 32 bytes (1.6 bpw), no
/// per-block scale (one scale per tensor, in the tensor table). For memory-bound devices and
/// storage-streamed models: 20 % fewer bytes than [`BlockT2`] per weight.
///
/// Within a block of 160 consecutive weights `w[0..160]` of one row, byte `j` (0..32) holds the
/// five codes `c[32k + j]` (`k = 0..5`, `c = w + 1` ∈ {0, 1, 2}) as llama.cpp's TQ1_0 stores
/// them: the base-3 number `v = Σ_k c[32k + j] · 3^(4 − k)` (k = 0 is the most significant
/// trit, `v` ∈ 0..243) in "fixed point", `byte = (v · 256 + 242) / 243` (integer division,
/// i.e. `ceil(v · 256 / 243)`). Decoding trit `k` of a byte: `q = (byte · 3^k) mod 256` (an 8-bit
/// wrapping multiply), `c = (q · 3) >> 8` (in 16 bits) — see [`t1_code`]. Every byte 0..=255
/// decodes to codes in {0, 1, 2} this way (there is no invalid code), and every kernel uses
/// exactly this decode, so all variants agree bit for bit on any bytes. Rows are padded with
/// zero weights (code 1) to a multiple of 160, so a row of `cols` weights takes
/// `ceil(cols / 160) * 32` bytes.
///
/// Why this order: one 32-byte load and five multiply-and-take-the-high-byte steps give five
/// 32-weight code vectors (AVX2), or 2 × 16-byte loads and `vmulq_u8` + a widening multiply
/// (NEON), like [`BlockT2`]'s shift and mask. It is the first 160 weights of a TQ1_0 block
/// (`qs[0..32]`), but without the per-block f16 scale and with 160-weight blocks, so any `cols`
/// works and rows never share a block.
///
/// Source: ggml `ggml-quants.c` (`quantize_row_tq1_0_ref`, `dequantize_row_tq1_0`, the first
/// 32 bytes of `qs`), llama.cpp PR #8151 (TQ1_0 / TQ2_0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockT1 {
    /// 32 packed bytes, 5 codes each.
    pub qs: [u8; 32],
}
const _: () = assert!(core::mem::size_of::<BlockT1>() == 32);

/// `3^k` for trit `k` of a `T1_160` byte (`k = 0..5`), as the 8-bit multipliers of the decode.
pub const T1_POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Bytes of one `T1_160` row of `cols` weights (padded to a multiple of 160).
pub const fn t1_row_bytes(cols: usize) -> usize {
    cols.div_ceil(T1_BLOCK_ELEMS) * 32
}

/// Code `k` (0..5) of a `T1_160` byte: `((byte · 3^k) mod 256) · 3 >> 8`, in {0, 1, 2} for
/// every byte (the decode every kernel variant uses; see [`BlockT1`]).
#[inline]
pub const fn t1_code(byte: u8, k: usize) -> u8 {
    let q = byte.wrapping_mul(T1_POW3[k]);
    ((q as u16 * 3) >> 8) as u8
}

/// The `T1_160` byte of five codes `c` (each in {0, 1, 2}; `c[0]` is the most significant
/// trit): `(v · 256 + 242) / 243` with `v = Σ c[k] · 3^(4 − k)`.
#[inline]
pub const fn t1_encode_byte(c: [u8; 5]) -> u8 {
    let v =
        (((c[0] as u16 * 3 + c[1] as u16) * 3 + c[2] as u16) * 3 + c[3] as u16) * 3 + c[4] as u16;
    // (v · 256 + 242) / 243, written as the ceiling division it is
    (v * 256).div_ceil(243) as u8
}

/// Decode weight `i` (0..160) of a `T1_160` block: `code - 1`, i.e. -1, 0 or +1 (for any bytes).
#[inline]
pub fn t1_get(block: &[u8], i: usize) -> i8 {
    t1_code(block[i % 32], i / 32) as i8 - 1
}

/// Encode one row of ternary values (`w: (cols,)`, each in {-1, 0, 1}) into `T1_160` bytes
/// (`out: (t1_row_bytes(cols),)`). Values outside {-1, 0, 1} are clamped; padding weights are 0.
pub fn t1_encode_row(w: &[i8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), t1_row_bytes(w.len()));
    for (b, blk) in out.chunks_exact_mut(32).enumerate() {
        let base = b * T1_BLOCK_ELEMS;
        for (j, o) in blk.iter_mut().enumerate() {
            let c: [u8; 5] = core::array::from_fn(|k| {
                w.get(base + 32 * k + j)
                    .map_or(1, |&v| (v.clamp(-1, 1) + 1) as u8)
            });
            *o = t1_encode_byte(c);
        }
    }
}

/// Element layouts a tensor may have in a `.tern` file. The discriminant is the on-disk id.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// IEEE binary32, little-endian, row-major.
    F32 = 0,
    /// IEEE binary16, little-endian, row-major.
    F16 = 1,
    /// bfloat16, little-endian, row-major.
    Bf16 = 2,
    /// Ternary, see [`BlockT2`].
    T2_128 = 3,
    /// 8-bit blocks, see [`BlockQ8_0`] (LM head / embedding).
    Q8_0 = 4,
    /// 4-bit blocks, see [`BlockQ4_0`] (LM head / embedding).
    Q4_0 = 5,
    /// Ternary, 1.6 bits per weight, see [`BlockT1`].
    T1_160 = 6,
    /// IEEE binary16 with rows interleaved in groups of 8, see [`f16_r8_piece_offset`] (LM
    /// head / embedding).
    F16R8 = 7,
    /// [`BlockQ4_0`] blocks with rows interleaved in groups of 8, see
    /// [`q4_0_r8_block_offset`] (LM head / embedding).
    Q4_0R8 = 8,
}

/// One row of the layout table.
#[derive(Clone, Copy, Debug)]
pub struct LayoutInfo {
    /// The layout.
    pub layout: Layout,
    /// Standard name (as printed by `tern inspect`).
    pub name: &'static str,
    /// Elements per block (1 for plain element types).
    pub block_elems: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Whether the layout holds ternary weights with a per-tensor scale.
    pub ternary: bool,
}

/// The layout table, in on-disk id order (ids need not be contiguous: look a layout up with
/// [`Layout::from_id`] / [`Layout::info`], never by indexing with the id).
pub const LAYOUTS: [LayoutInfo; 9] = [
    LayoutInfo {
        layout: Layout::F32,
        name: "F32",
        block_elems: 1,
        block_bytes: 4,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::F16,
        name: "F16",
        block_elems: 1,
        block_bytes: 2,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::Bf16,
        name: "BF16",
        block_elems: 1,
        block_bytes: 2,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::T2_128,
        name: "T2_128",
        block_elems: 128,
        block_bytes: 32,
        ternary: true,
    },
    LayoutInfo {
        layout: Layout::Q8_0,
        name: "Q8_0",
        block_elems: Q8_0_BLOCK_ELEMS,
        block_bytes: 34,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::Q4_0,
        name: "Q4_0",
        block_elems: Q4_0_BLOCK_ELEMS,
        block_bytes: Q4_0_BLOCK_BYTES,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::T1_160,
        name: "T1_160",
        block_elems: T1_BLOCK_ELEMS,
        block_bytes: 32,
        ternary: true,
    },
    LayoutInfo {
        layout: Layout::F16R8,
        name: "F16_R8",
        block_elems: 1,
        block_bytes: 2,
        ternary: false,
    },
    LayoutInfo {
        layout: Layout::Q4_0R8,
        name: "Q4_0_R8",
        block_elems: Q4_0_BLOCK_ELEMS,
        block_bytes: Q4_0_BLOCK_BYTES,
        ternary: false,
    },
];

/// The ternary layouts: the subset of [`Layout`] a BitLinear weight may have (one scale per
/// tensor, kernels `matvec_*_i8` / `matmul_*_i8`). A model may mix them per tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TernaryLayout {
    /// [`BlockT2`], 2 bits per weight (the default).
    #[default]
    T2_128,
    /// [`BlockT1`], 1.6 bits per weight.
    T1_160,
}

impl TernaryLayout {
    /// Both ternary layouts.
    pub const ALL: [TernaryLayout; 2] = [TernaryLayout::T2_128, TernaryLayout::T1_160];

    /// The ternary layout of `l`, or `None` for a non-ternary layout.
    pub fn from_layout(l: Layout) -> Option<TernaryLayout> {
        match l {
            Layout::T2_128 => Some(TernaryLayout::T2_128),
            Layout::T1_160 => Some(TernaryLayout::T1_160),
            _ => None,
        }
    }
    /// Lower-case name as the CLIs spell it (`t2_128`, `t1_160`).
    pub fn cli_name(self) -> &'static str {
        match self {
            TernaryLayout::T2_128 => "t2_128",
            TernaryLayout::T1_160 => "t1_160",
        }
    }
    /// As a [`Layout`] (the on-disk id).
    pub fn layout(self) -> Layout {
        match self {
            TernaryLayout::T2_128 => Layout::T2_128,
            TernaryLayout::T1_160 => Layout::T1_160,
        }
    }
    /// Bytes of one row of `cols` weights.
    pub const fn row_bytes(self, cols: usize) -> usize {
        match self {
            TernaryLayout::T2_128 => t2_row_bytes(cols),
            TernaryLayout::T1_160 => t1_row_bytes(cols),
        }
    }
    /// Encode one row (`w: (cols,)` in {-1, 0, 1}) into `out: (row_bytes(cols),)`.
    pub fn encode_row(self, w: &[i8], out: &mut [u8]) {
        match self {
            TernaryLayout::T2_128 => t2_encode_row(w, out),
            TernaryLayout::T1_160 => t1_encode_row(w, out),
        }
    }
    /// Decode one row (`row: (row_bytes(cols),)`) into `w: (cols,)` (values -1, 0, +1; a T2_128
    /// code 3 reads as +2, as in the kernels).
    pub fn decode_row(self, row: &[u8], w: &mut [i8]) {
        for (i, v) in w.iter_mut().enumerate() {
            *v = match self {
                TernaryLayout::T2_128 => t2_get(&row[(i / T2_BLOCK_ELEMS) * 32..], i % 128),
                TernaryLayout::T1_160 => t1_get(&row[(i / T1_BLOCK_ELEMS) * 32..], i % 160),
            };
        }
    }
}

/// Values per [`BlockQ8_0`] block.
pub const Q8_0_BLOCK_ELEMS: usize = 32;

/// `Q8_0`: 32 values as a little-endian IEEE binary16 scale `d` followed by 32 int8 `q`
/// (value = d · q), 34 bytes (8.5 bpw). Byte-identical to ggml's `block_q8_0`, so Q8_0 GGUF
/// tensors import without conversion. A row's length must be a multiple of 32.
///
/// Source: ggml `ggml-common.h` (`block_q8_0`, QK8_0 = 32) and `quantize_row_q8_0_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// binary16 scale bits, little-endian.
    pub d: [u8; 2],
    /// Quantized values.
    pub qs: [i8; 32],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);

/// Values per [`BlockQ4_0`] block.
pub const Q4_0_BLOCK_ELEMS: usize = 32;
/// Bytes per [`BlockQ4_0`] block.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// `Q4_0`: 32 values as a little-endian IEEE binary16 scale `d` followed by 16 bytes of 4-bit
/// codes `q` in 0..=15 (value = d · (q − 8)), 18 bytes (4.5 bpw). Value `i < 16` of the block
/// is the low nibble of `qs[i]`, value `i + 16` its high nibble. Byte-identical to ggml's
/// `block_q4_0`, so Q4_0 GGUF tensors import without conversion. A row's length must be a
/// multiple of 32.
///
/// Source: ggml `ggml-common.h` (`block_q4_0`, QK4_0 = 32), `quantize_row_q4_0_ref` and
/// `dequantize_row_q4_0` (`ggml-quants.c`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// binary16 scale bits, little-endian.
    pub d: [u8; 2],
    /// Packed codes: `qs[i] = q[i] | q[i + 16] << 4`.
    pub qs: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == Q4_0_BLOCK_BYTES);

/// Code `i` (0..32) of a `Q4_0` block's packed bytes `qs: (16,)`, in 0..=15 (value `d·(q − 8)`).
#[inline]
pub fn q4_0_code(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0x0F
    } else {
        qs[i - 16] >> 4
    }
}

/// Rows per interleaved group of [`Layout::F16R8`].
pub const F16_R8_ROWS: usize = 8;
/// Columns per piece of [`Layout::F16R8`]: a row's 32 consecutive values, 64 bytes.
pub const F16_R8_COLS: usize = 32;

/// `F16_R8`: IEEE binary16 values (little-endian, as [`Layout::F16`]) of a `(rows, cols)`
/// matrix with `rows` a multiple of [`F16_R8_ROWS`] and `cols` a multiple of
/// [`F16_R8_COLS`], stored in groups of 8 consecutive rows; within a group, column piece `k`
/// (columns `32k .. 32k + 32`) of its 8 rows in row order, then piece `k + 1`. So the byte
/// offset of row `r`'s piece `k` is `(r / 8) · 8 · 2·cols + k · 512 + (r % 8) · 64`, and a group
/// is the same `8 · 2·cols` bytes as in row-major F16, in another order.
///
/// Why: an LM head's matvec reads 8 rows at a time so that each piece of the activations
/// serves all of them; in this order those reads are one sequential stream, which a core's
/// hardware prefetchers follow, instead of 8 streams `2·cols` bytes apart (the row-interleaved
/// repacking of ik_llama.cpp's `_R4` / `_R8` types and llama.cpp's `Q4_0_8_8`, applied to F16).
///
/// `None` if `r` or `k` is out of range or the shape is not `F16_R8`'s.
pub fn f16_r8_piece_offset(rows: usize, cols: usize, r: usize, k: usize) -> Option<usize> {
    if !f16_r8_shape_ok(rows, cols) || r >= rows || k >= cols / F16_R8_COLS {
        return None;
    }
    let piece_bytes = 2 * F16_R8_COLS;
    Some(
        (r / F16_R8_ROWS) * F16_R8_ROWS * 2 * cols
            + k * F16_R8_ROWS * piece_bytes
            + (r % F16_R8_ROWS) * piece_bytes,
    )
}

/// Whether a `(rows, cols)` matrix can be stored as [`Layout::F16R8`]: `rows` a multiple of 8
/// and `cols` a positive multiple of 32.
pub fn f16_r8_shape_ok(rows: usize, cols: usize) -> bool {
    rows.is_multiple_of(F16_R8_ROWS) && cols > 0 && cols.is_multiple_of(F16_R8_COLS)
}

/// Reorder row-major F16 bytes `src: (rows, cols)` into [`Layout::F16R8`] order in `out`
/// (same length).
///
/// # Panics
/// If the shape is not `F16_R8`'s or a length is not `rows · cols · 2`.
pub fn f16_r8_interleave(src: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(
        f16_r8_shape_ok(rows, cols),
        "F16_R8: shape ({rows}, {cols})"
    );
    assert_eq!(src.len(), rows * cols * 2);
    assert_eq!(out.len(), src.len());
    let pb = 2 * F16_R8_COLS;
    for r in 0..rows {
        for k in 0..cols / F16_R8_COLS {
            let at = f16_r8_piece_offset(rows, cols, r, k).expect("in range");
            out[at..at + pb].copy_from_slice(&src[r * 2 * cols + k * pb..][..pb]);
        }
    }
}

/// The inverse of [`f16_r8_interleave`]: [`Layout::F16R8`] bytes `src: (rows, cols)` back to
/// row-major F16 in `out` (same length).
///
/// # Panics
/// As [`f16_r8_interleave`].
pub fn f16_r8_deinterleave(src: &[u8], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(
        f16_r8_shape_ok(rows, cols),
        "F16_R8: shape ({rows}, {cols})"
    );
    assert_eq!(out.len(), rows * cols * 2);
    for (r, row) in out.chunks_exact_mut(2 * cols).enumerate() {
        f16_r8_row(src, rows, cols, r, row);
    }
}

/// Row `r` of an [`Layout::F16R8`] matrix `data: (rows, cols)` as row-major F16 bytes
/// `out: (2·cols,)` (the embedding lookup of a tied head).
///
/// # Panics
/// If the shape is not `F16_R8`'s, `r >= rows`, or a length is wrong.
pub fn f16_r8_row(data: &[u8], rows: usize, cols: usize, r: usize, out: &mut [u8]) {
    assert_eq!(data.len(), rows * cols * 2);
    assert_eq!(out.len(), 2 * cols);
    let pb = 2 * F16_R8_COLS;
    for (k, o) in out.chunks_exact_mut(pb).enumerate() {
        let at = f16_r8_piece_offset(rows, cols, r, k).expect("F16_R8: row or shape out of range");
        o.copy_from_slice(&data[at..at + pb]);
    }
}

impl Layout {
    /// The layout with on-disk id `id`, if any.
    pub fn from_id(id: u8) -> Option<Layout> {
        LAYOUTS
            .iter()
            .find(|l| l.layout as u8 == id)
            .map(|l| l.layout)
    }
    /// This layout's table row.
    pub fn info(self) -> &'static LayoutInfo {
        match self {
            Layout::F32 => &LAYOUTS[0],
            Layout::F16 => &LAYOUTS[1],
            Layout::Bf16 => &LAYOUTS[2],
            Layout::T2_128 => &LAYOUTS[3],
            Layout::Q8_0 => &LAYOUTS[4],
            Layout::Q4_0 => &LAYOUTS[5],
            Layout::T1_160 => &LAYOUTS[6],
            Layout::F16R8 => &LAYOUTS[7],
            Layout::Q4_0R8 => &LAYOUTS[8],
        }
    }
    /// Rows that only come in whole groups: a chunk of the matrix read or split by rows must
    /// hold a multiple of this many ([`F16_R8_ROWS`] for [`Layout::F16R8`],
    /// [`Q4_0_R8_ROWS`] for [`Layout::Q4_0R8`], else 1).
    pub fn row_group(self) -> usize {
        match self {
            Layout::F16R8 => F16_R8_ROWS,
            Layout::Q4_0R8 => Q4_0_R8_ROWS,
            _ => 1,
        }
    }
    /// Bytes of one row of `cols` elements, or `None` on overflow (for [`Layout::F16R8`] and
    /// [`Layout::Q4_0R8`], the average: a group of 8 rows is 8 times this).
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let info = self.info();
        cols.div_ceil(info.block_elems)
            .checked_mul(info.block_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn table_ids_match() {
        for (i, l) in LAYOUTS.iter().enumerate() {
            assert_eq!(Layout::from_id(l.layout as u8), Some(l.layout));
            if i > 0 {
                assert!(l.layout as u8 > LAYOUTS[i - 1].layout as u8, "ids in order");
            }
        }
        assert_eq!(Layout::from_id(9), None);
        assert_eq!(Layout::from_id(255), None);
    }
    #[test]
    fn f16_r8_golden_order() {
        // Spec (core/FORMAT.md): row r's piece k at (r/8)·8·2cols + k·512 + (r%8)·64.
        let (rows, cols) = (16usize, 64usize);
        // element (r, c) holds the value r·1000 + c, as u16 bits
        let src: Vec<u8> = (0..rows * cols)
            .flat_map(|i| (((i / cols) * 1000 + i % cols) as u16).to_le_bytes())
            .collect();
        let mut out = vec![0u8; src.len()];
        f16_r8_interleave(&src, rows, cols, &mut out);
        let at = |b: usize| u16::from_le_bytes([out[b], out[b + 1]]);
        assert_eq!(at(0), 0); // row 0, col 0
        assert_eq!(at(64), 1000); // row 1, piece 0
        assert_eq!(at(7 * 64 + 62), 7031); // row 7, col 31
        assert_eq!(at(512), 32); // row 0, piece 1 (col 32)
        assert_eq!(at(512 + 64), 1032);
        assert_eq!(at(1024), 8000); // group 1 starts at 8 rows · 128 bytes
        assert_eq!(at(1024 + 512 + 3 * 64 + 2), 11033);
        let mut back = vec![0u8; src.len()];
        f16_r8_deinterleave(&out, rows, cols, &mut back);
        assert_eq!(back, src);
        let mut row = vec![0u8; 2 * cols];
        for r in 0..rows {
            f16_r8_row(&out, rows, cols, r, &mut row);
            assert_eq!(row, src[r * 2 * cols..(r + 1) * 2 * cols], "row {r}");
        }
        assert!(f16_r8_shape_ok(8, 32) && !f16_r8_shape_ok(7, 32) && !f16_r8_shape_ok(8, 48));
        assert!(!f16_r8_shape_ok(8, 0));
        assert_eq!(f16_r8_piece_offset(16, 64, 16, 0), None);
        assert_eq!(f16_r8_piece_offset(16, 64, 0, 2), None);
        assert_eq!(Layout::from_id(7), Some(Layout::F16R8));
        assert_eq!(Layout::F16R8.row_bytes(64), Some(128));
        assert_eq!((Layout::F16R8.row_group(), Layout::F16.row_group()), (8, 1));
    }
    #[test]
    fn q4_0_nibble_order() {
        // ggml `block_q4_0`: byte j holds value j (low nibble) and value j + 16 (high nibble).
        let qs: [u8; 16] = core::array::from_fn(|j| (j as u8) | ((15 - j as u8) << 4));
        for i in 0..16 {
            assert_eq!(q4_0_code(&qs, i), i as u8);
            assert_eq!(q4_0_code(&qs, i + 16), 15 - i as u8);
        }
        assert_eq!(Layout::Q4_0.row_bytes(64), Some(36));
        assert_eq!(Layout::from_id(5), Some(Layout::Q4_0));
    }
    #[test]
    fn t2_roundtrip_and_golden() {
        // Golden: weights 0..128 with w[0]=+1, w[32]=-1, w[64]=0, w[96]=+1, rest 0.
        let mut w = [0i8; 130];
        w[0] = 1;
        w[32] = -1;
        w[96] = 1;
        w[129] = -1;
        let mut out = [0u8; 64];
        t2_encode_row(&w, &mut out);
        assert_eq!(out[0], 0b10_00_01_10);
        assert_eq!(out[1], 0b01_01_01_01);
        assert_eq!(out[32 + 1], 0b00_01_01_01);
        for (i, &v) in w.iter().enumerate() {
            assert_eq!(t2_get(&out[(i / 128) * 32..], i % 128), v, "i={i}");
        }
        assert_eq!(t2_row_bytes(0), 0);
        assert_eq!(t2_row_bytes(1), 32);
        assert_eq!(t2_row_bytes(128), 32);
        assert_eq!(t2_row_bytes(129), 64);
    }

    #[test]
    fn every_layout_has_its_row() {
        for l in LAYOUTS {
            assert_eq!(l.layout.info().layout, l.layout);
        }
        assert_eq!(Layout::from_id(5), Some(Layout::Q4_0));
        assert_eq!(Layout::from_id(6), Some(Layout::T1_160));
        for t in TernaryLayout::ALL {
            assert!(t.layout().info().ternary);
            assert_eq!(TernaryLayout::from_layout(t.layout()), Some(t));
            for cols in [0usize, 1, 159, 160, 161, 2560, 6912] {
                assert_eq!(t.layout().row_bytes(cols), Some(t.row_bytes(cols)));
            }
        }
    }

    /// The spec in `core/FORMAT.md`: v = Σ c_k 3^(4-k), byte = (256 v + 242) / 243, and its
    /// decode, for every one of the 243 code combinations; every byte decodes to codes 0..=2.
    #[test]
    fn t1_byte_roundtrip_and_every_byte_decodes() {
        for v in 0u16..243 {
            let c: [u8; 5] = core::array::from_fn(|k| ((v / 3u16.pow(4 - k as u32)) % 3) as u8);
            let b = t1_encode_byte(c);
            assert_eq!(b as u16, (v * 256).div_ceil(243), "v={v}");
            for k in 0..5 {
                assert_eq!(t1_code(b, k), c[k], "v={v} k={k}");
            }
        }
        for b in 0..=255u8 {
            for k in 0..5 {
                assert!(t1_code(b, k) <= 2);
            }
        }
    }

    #[test]
    fn t1_golden_and_roundtrip() {
        // Golden (written out in core/FORMAT.md): w[0] = +1, w[32] = -1, w[64] = 0, w[96] = +1,
        // w[128] = -1 → codes 2, 0, 1, 2, 0 → v = 2·81 + 0·27 + 1·9 + 2·3 + 0 = 177 →
        // byte 0 = (177·256 + 242) / 243 = 187 = 0xBB; all-zero columns → v = 121 → 0x80.
        let mut w = [0i8; 161];
        w[0] = 1;
        w[32] = -1;
        w[96] = 1;
        w[128] = -1;
        w[160] = 1;
        let mut out = [0u8; 64];
        t1_encode_row(&w, &mut out);
        assert_eq!(out[0], 0xBB);
        assert_eq!(out[1], 0x80);
        assert_eq!(out[31], 0x80);
        // second block: w[160] = +1 then padding (0): codes 2,1,1,1,1 → v = 202 → 213 = 0xD5
        assert_eq!(out[32], 0xD5);
        assert_eq!(out[33], 0x80);
        for (i, &v) in w.iter().enumerate() {
            assert_eq!(t1_get(&out[(i / 160) * 32..], i % 160), v, "i={i}");
        }
        assert_eq!(t1_row_bytes(0), 0);
        assert_eq!(t1_row_bytes(1), 32);
        assert_eq!(t1_row_bytes(160), 32);
        assert_eq!(t1_row_bytes(161), 64);
        assert_eq!(t1_row_bytes(2560), 512);
        assert_eq!(t1_row_bytes(6912), 1408);
        let mut back = [0i8; 161];
        TernaryLayout::T1_160.decode_row(&out, &mut back);
        assert_eq!(back, w);
    }
}
