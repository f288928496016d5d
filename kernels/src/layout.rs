//! Packed weight layouts.
//!
//! A layout is a block struct with a size assert plus one row in [`LAYOUTS`] (the ggml
//! `ggml-common.h` style). The `.tern` format stores each tensor's layout id; the on-disk
//! layout never depends on the build's architecture.

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

/// The layout table, indexed by on-disk id.
pub const LAYOUTS: [LayoutInfo; 6] = [
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
];

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

impl Layout {
    /// The layout with on-disk id `id`, if any.
    pub fn from_id(id: u8) -> Option<Layout> {
        LAYOUTS.get(id as usize).map(|l| l.layout)
    }
    /// This layout's table row.
    pub fn info(self) -> &'static LayoutInfo {
        &LAYOUTS[self as usize]
    }
    /// Bytes of one row of `cols` elements, or `None` on overflow.
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
            assert_eq!(l.layout as usize, i);
            assert_eq!(Layout::from_id(i as u8), Some(l.layout));
        }
        assert_eq!(Layout::from_id(LAYOUTS.len() as u8), None);
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
}
