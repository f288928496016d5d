//! The `.tern` packed model format, version 1 (specification: `core/FORMAT.md`).
//!
//! Zero-copy: [`TernFile::parse`] reads the preamble and the postcard header from the first
//! bytes of a file and validates every tensor's bounds against the file length; [`Model`] adds
//! the resident bytes (mmap, flash XIP) so tensor data is borrowed in place.

#[cfg(feature = "std")]
pub mod writer;

use heapless::Vec as HVec;
use serde::{Deserialize, Serialize};
use tern_kernels::layout::{Layout, f16_r8_shape_ok, q4_0_r8_shape_ok};

use crate::config::ModelConfig;
use crate::error::{Error, Section};
use crate::plan::KvDtype;

/// The 8 magic bytes every `.tern` file starts with (PNG-style: a high byte and CR LF SUB LF
/// reveal 7-bit or text-mode transfers).
pub const MAGIC: [u8; 8] = *b"\x89TERN\r\n\x1a";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Size of the fixed preamble, bytes.
pub const PREAMBLE_BYTES: usize = 32;
/// Alignment of every data section (tensors, tokenizer blob), bytes.
pub const ALIGN_BYTES: u64 = 64;
/// Most decoder layers a file may have.
pub const MAX_LAYERS: usize = 80;
/// Most tensors a file may have.
pub const MAX_TENSORS: usize = MAX_LAYERS * LayerTensor::COUNT + 8;

/// CRC-32/ISO-HDLC (the zlib/PNG CRC), used for the header, the tokenizer and every tensor.
pub const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What a tensor is in the graph. Global roles have `layer == 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorRole {
    /// Token embedding `(vocab_size, dim)`; also the LM head when tied.
    TokenEmbd,
    /// Final RMSNorm weight `(1, dim)`.
    OutputNorm,
    /// Untied LM head `(vocab_size, dim)`.
    Output,
    /// Per-layer tensor.
    Layer(LayerTensor),
}

/// Per-layer tensors, with their shapes `(rows, cols)` = `(out, in)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum LayerTensor {
    /// `input_layernorm` / `attn_norm`, `(1, dim)`.
    AttnNorm = 0,
    /// `q_proj`, ternary `(q_dim, dim)`.
    Q = 1,
    /// `k_proj`, ternary `(kv_dim, dim)`.
    K = 2,
    /// `v_proj`, ternary `(kv_dim, dim)`.
    V = 3,
    /// `attn_sub_norm`, `(1, q_dim)` (2B4T graph only).
    AttnSubNorm = 4,
    /// `o_proj` / `attn_output`, ternary `(dim, q_dim)`.
    O = 5,
    /// `post_attention_layernorm` / `ffn_norm`, `(1, dim)`.
    FfnNorm = 6,
    /// `gate_proj`, ternary `(hidden_dim, dim)`.
    Gate = 7,
    /// `up_proj`, ternary `(hidden_dim, dim)`.
    Up = 8,
    /// `ffn_sub_norm`, `(1, hidden_dim)` (2B4T graph only).
    FfnSubNorm = 9,
    /// `down_proj`, ternary `(dim, hidden_dim)`.
    Down = 10,
}

impl LayerTensor {
    /// Number of per-layer roles.
    pub const COUNT: usize = 11;
    /// All per-layer roles in canonical order: the order the forward pass reads them (and
    /// the streaming order, see `crate::source`).
    pub const ALL: [LayerTensor; 11] = [
        LayerTensor::AttnNorm,
        LayerTensor::Q,
        LayerTensor::K,
        LayerTensor::V,
        LayerTensor::AttnSubNorm,
        LayerTensor::O,
        LayerTensor::FfnNorm,
        LayerTensor::Gate,
        LayerTensor::Up,
        LayerTensor::FfnSubNorm,
        LayerTensor::Down,
    ];
    /// Whether this role is a ternary BitLinear weight.
    pub fn is_ternary(self) -> bool {
        matches!(
            self,
            LayerTensor::Q
                | LayerTensor::K
                | LayerTensor::V
                | LayerTensor::O
                | LayerTensor::Gate
                | LayerTensor::Up
                | LayerTensor::Down
        )
    }
    /// Whether this role is an RMSNorm weight.
    pub fn is_norm(self) -> bool {
        !self.is_ternary()
    }
    /// Expected `(rows, cols)` under config `c`.
    pub fn shape(self, c: &ModelConfig) -> (u32, u32) {
        let (d, h, q, kv) = (c.dim, c.hidden_dim, c.q_dim() as u32, c.kv_dim() as u32);
        match self {
            LayerTensor::AttnNorm | LayerTensor::FfnNorm => (1, d),
            LayerTensor::Q => (q, d),
            LayerTensor::K | LayerTensor::V => (kv, d),
            LayerTensor::AttnSubNorm => (1, q),
            LayerTensor::O => (d, q),
            LayerTensor::Gate | LayerTensor::Up => (h, d),
            LayerTensor::FfnSubNorm => (1, h),
            LayerTensor::Down => (d, h),
        }
    }
    /// The GGUF-style short name (`attn_q`, `ffn_down`, …) used in `.tern` tensor names.
    pub fn gguf_name(self) -> &'static str {
        match self {
            LayerTensor::AttnNorm => "attn_norm",
            LayerTensor::Q => "attn_q",
            LayerTensor::K => "attn_k",
            LayerTensor::V => "attn_v",
            LayerTensor::AttnSubNorm => "attn_sub_norm",
            LayerTensor::O => "attn_output",
            LayerTensor::FfnNorm => "ffn_norm",
            LayerTensor::Gate => "ffn_gate",
            LayerTensor::Up => "ffn_up",
            LayerTensor::FfnSubNorm => "ffn_sub_norm",
            LayerTensor::Down => "ffn_down",
        }
    }
}

/// One entry of the tensor table, as encoded (postcard) in the header.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry<'a> {
    /// Human-readable name (GGUF style, e.g. `blk.3.ffn_up.weight`).
    pub name: &'a str,
    /// Graph role.
    pub role: TensorRole,
    /// Layer index for per-layer roles, else 0.
    pub layer: u16,
    /// Layout id ([`tern_kernels::layout::Layout`]).
    pub layout: u8,
    /// Rows (output features; 1 for vectors).
    pub rows: u32,
    /// Columns (input features).
    pub cols: u32,
    /// Absolute file offset of the data, bytes (multiple of 64).
    pub offset: u64,
    /// Data length, bytes (must equal `rows * layout.row_bytes(cols)`).
    pub len: u64,
    /// Ternary tensors: BitLinear's `weight_scale`, i.e. the divisor of the integer dot product
    /// (effective weight = code / weight_scale = code · absmean). 1.0 for other tensors.
    pub weight_scale: f32,
    /// CRC32 of the data.
    pub crc32: u32,
}

/// Tokenizer algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenizerKind {
    /// Byte-level BPE (GPT-2 byte mapping) with the Llama-3 pre-tokenizer.
    Bpe,
    /// SentencePiece BPE with scores (Llama-2).
    Spm,
}

/// Where the tokenizer blob is and how to use it (blob layout: `core/FORMAT.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Algorithm.
    pub kind: TokenizerKind,
    /// Number of tokens in the vocabulary.
    pub n_tokens: u32,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Tokens that end generation (eos, `<|eot_id|>`, …).
    pub stop_ids: HVec<u32, 8>,
    /// Whether a prompt starts with BOS.
    pub add_bos: bool,
    /// Absolute file offset of the blob (multiple of 64).
    pub offset: u64,
    /// Blob length, bytes.
    pub len: u64,
    /// CRC32 of the blob.
    pub crc32: u32,
}

/// Run options the packer recommends (the user may override them).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefaultPlan {
    /// Context length, tokens.
    pub ctx_len: u32,
    /// KV cache element type.
    pub kv: KvDtype,
}

/// Where the packed model came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance<'a> {
    /// Source file or directory name (no path).
    pub source: &'a str,
    /// Source format (`gguf:TQ2_0`, `safetensors:packed`, `synthetic`, …).
    pub source_format: &'a str,
    /// SHA-256 of the source file (the main safetensors file for directories), or zeros.
    pub source_sha256: [u8; 32],
    /// Packer name and version.
    pub packer: &'a str,
    /// Pack options as given.
    pub options: &'a str,
}

/// The postcard header, followed in the file by `n_tensors` postcard [`TensorEntry`] records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header<'a> {
    /// Model hyper-parameters.
    pub config: ModelConfig,
    /// Tokenizer description.
    pub tokenizer: TokenizerInfo,
    /// Default run plan.
    pub plan: DefaultPlan,
    /// Provenance.
    #[serde(borrow)]
    pub provenance: Provenance<'a>,
    /// Entries in the tensor table.
    pub n_tensors: u32,
}

/// A validated tensor, as the runtime uses it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo {
    /// Index in the tensor table.
    pub index: u32,
    /// Layout.
    pub layout: Layout,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Absolute offset, bytes.
    pub offset: u64,
    /// Length, bytes.
    pub len: u64,
    /// See [`TensorEntry::weight_scale`].
    pub weight_scale: f32,
    /// CRC32 of the data.
    pub crc32: u32,
}

/// A parsed `.tern` header with its validated tensor table. Needs only the header bytes and
/// the file length (so a streamed model can be planned without reading its weights).
#[derive(Clone, Debug)]
pub struct TernFile<'a> {
    /// The decoded header.
    pub header: Header<'a>,
    /// Total file length, bytes.
    pub file_len: u64,
    table: &'a [u8],
    globals: [Option<TensorInfo>; 3],
    layers: HVec<[Option<TensorInfo>; LayerTensor::COUNT], MAX_LAYERS>,
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The preamble fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// Format version.
    pub version: u32,
    /// Flags (reserved, 0).
    pub flags: u32,
    /// Header length, bytes.
    pub header_len: u32,
    /// CRC32 of the header bytes.
    pub header_crc32: u32,
    /// Absolute offset where tensor data begins.
    pub data_offset: u64,
}

impl Preamble {
    /// Decode the 32-byte preamble.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`], [`Error::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<Preamble, Error> {
        if bytes.len() < 8 {
            return Err(Error::Truncated {
                section: Section::Preamble,
            });
        }
        if bytes[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        if bytes.len() < PREAMBLE_BYTES {
            return Err(Error::Truncated {
                section: Section::Preamble,
            });
        }
        let version = rd_u32(bytes, 8);
        if version != VERSION {
            return Err(Error::UnsupportedVersion { found: version });
        }
        let flags = rd_u32(bytes, 12);
        if flags != 0 {
            return Err(Error::Malformed {
                section: Section::Preamble,
            });
        }
        let mut d = [0u8; 8];
        d.copy_from_slice(&bytes[24..32]);
        Ok(Preamble {
            version,
            flags,
            header_len: rd_u32(bytes, 16),
            header_crc32: rd_u32(bytes, 20),
            data_offset: u64::from_le_bytes(d),
        })
    }
    /// Encode to 32 bytes.
    pub fn to_bytes(&self) -> [u8; PREAMBLE_BYTES] {
        let mut b = [0u8; PREAMBLE_BYTES];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.header_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.header_crc32.to_le_bytes());
        b[24..32].copy_from_slice(&self.data_offset.to_le_bytes());
        b
    }
}

impl<'a> TernFile<'a> {
    /// Parse and validate the preamble, header and tensor table. `prefix` must hold at least
    /// the preamble and header (the whole file is fine); `file_len` is the full file length.
    ///
    /// Checks: magic, version, header CRC32, postcard decoding, no trailing header bytes,
    /// config sanity, every tensor's layout id, shape against the config, length against
    /// layout × shape, 64-byte alignment, bounds within `file_len`, non-overlapping increasing
    /// offsets, no duplicates, every tensor the graph needs present, and the tokenizer blob's
    /// bounds. Data CRCs are checked separately ([`Model::verify_checksums`]).
    ///
    /// # Errors
    /// The first violated check, as an [`Error`] naming the section or tensor index.
    pub fn parse(prefix: &'a [u8], file_len: u64) -> Result<TernFile<'a>, Error> {
        let pre = Preamble::parse(prefix)?;
        let hlen = pre.header_len as usize;
        let hend = PREAMBLE_BYTES.checked_add(hlen).ok_or(Error::Truncated {
            section: Section::Header,
        })?;
        if prefix.len() < hend || (file_len as u128) < hend as u128 {
            return Err(Error::Truncated {
                section: Section::Header,
            });
        }
        let hbytes = &prefix[PREAMBLE_BYTES..hend];
        if CRC32.checksum(hbytes) != pre.header_crc32 {
            return Err(Error::ChecksumMismatch {
                section: Section::Header,
            });
        }
        if pre.data_offset < hend as u64 || !pre.data_offset.is_multiple_of(ALIGN_BYTES) {
            return Err(Error::Malformed {
                section: Section::Preamble,
            });
        }
        let (header, table): (Header<'a>, &'a [u8]) =
            postcard::take_from_bytes(hbytes).map_err(|_| Error::Malformed {
                section: Section::Header,
            })?;
        header.config.validate()?;
        let c = header.config;
        if c.n_layers as usize > MAX_LAYERS {
            return Err(Error::BadConfig {
                what: "more layers than this build supports (80)",
            });
        }
        if header.n_tensors as usize > MAX_TENSORS {
            return Err(Error::BadConfig {
                what: "more tensors than this build supports",
            });
        }
        let mut f = TernFile {
            header,
            file_len,
            table,
            globals: [None; 3],
            layers: HVec::new(),
        };
        for _ in 0..c.n_layers {
            let _ = f.layers.push([None; LayerTensor::COUNT]);
        }
        let mut rest = table;
        let mut prev_end = pre.data_offset;
        for i in 0..f.header.n_tensors {
            let sec = Section::TensorEntry(i);
            let (e, r): (TensorEntry<'a>, &'a [u8]) =
                postcard::take_from_bytes(rest).map_err(|_| Error::Malformed { section: sec })?;
            rest = r;
            let layout = Layout::from_id(e.layout).ok_or(Error::UnknownLayout {
                index: i,
                layout: e.layout,
            })?;
            let row_bytes = layout
                .row_bytes(e.cols as usize)
                .ok_or(Error::TensorOutOfBounds { index: i })?;
            let expected = (row_bytes as u64)
                .checked_mul(e.rows as u64)
                .ok_or(Error::TensorOutOfBounds { index: i })?;
            if expected != e.len {
                return Err(Error::BadTensorLength {
                    index: i,
                    expected_bytes: expected,
                    found_bytes: e.len,
                });
            }
            if !e.offset.is_multiple_of(ALIGN_BYTES) {
                return Err(Error::Misaligned { index: i });
            }
            let end = e
                .offset
                .checked_add(e.len)
                .ok_or(Error::TensorOutOfBounds { index: i })?;
            if e.offset < prev_end || end > file_len {
                return Err(Error::TensorOutOfBounds { index: i });
            }
            prev_end = end;
            if !e.weight_scale.is_finite() || e.weight_scale <= 0.0 {
                return Err(Error::Malformed { section: sec });
            }
            let info = TensorInfo {
                index: i,
                layout,
                rows: e.rows,
                cols: e.cols,
                offset: e.offset,
                len: e.len,
                weight_scale: e.weight_scale,
                crc32: e.crc32,
            };
            let slot = match e.role {
                TensorRole::TokenEmbd => &mut f.globals[0],
                TensorRole::OutputNorm => &mut f.globals[1],
                TensorRole::Output => &mut f.globals[2],
                TensorRole::Layer(lt) => {
                    let l = f
                        .layers
                        .get_mut(e.layer as usize)
                        .ok_or(Error::Malformed { section: sec })?;
                    &mut l[lt as usize]
                }
            };
            if slot.is_some() {
                return Err(Error::DuplicateTensor { index: i });
            }
            *slot = Some(info);
        }
        if !rest.is_empty() {
            return Err(Error::TrailingData {
                section: Section::Header,
            });
        }
        let t = &f.header.tokenizer;
        let tend = t.offset.checked_add(t.len).ok_or(Error::Truncated {
            section: Section::Tokenizer,
        })?;
        if t.offset < pre.data_offset || !t.offset.is_multiple_of(ALIGN_BYTES) || tend > file_len {
            return Err(Error::Truncated {
                section: Section::Tokenizer,
            });
        }
        if t.n_tokens != c.vocab_size && t.n_tokens > c.vocab_size {
            return Err(Error::BadConfig {
                what: "tokenizer has more tokens than the model's vocab_size",
            });
        }
        f.check_graph()?;
        Ok(f)
    }

    fn check_graph(&self) -> Result<(), Error> {
        let c = &self.header.config;
        let need =
            |t: Option<TensorInfo>, role, layer| t.ok_or(Error::MissingTensor { role, layer });
        let shape = |t: &TensorInfo, exp: (u32, u32)| {
            if (t.rows, t.cols) != exp {
                return Err(Error::ShapeMismatch {
                    index: t.index,
                    expected: exp,
                    found: (t.rows, t.cols),
                });
            }
            Ok(())
        };
        // Embedding / LM head: a float layout, Q8_0 / Q4_0 with whole 32-value blocks per row,
        // or F16_R8 / Q4_0_R8 with whole 8-row groups and 32-column pieces / blocks.
        let float = |t: &TensorInfo| match t.layout {
            Layout::F32 | Layout::F16 | Layout::Bf16 => Ok(()),
            Layout::Q8_0 | Layout::Q4_0 if t.cols.is_multiple_of(32) => Ok(()),
            Layout::F16R8 if f16_r8_shape_ok(t.rows as usize, t.cols as usize) => Ok(()),
            Layout::Q4_0R8 if q4_0_r8_shape_ok(t.rows as usize, t.cols as usize) => Ok(()),
            _ => Err(Error::WrongLayout { index: t.index }),
        };
        // Norm weights: plain float only.
        let norm = |t: &TensorInfo| match t.layout {
            Layout::F32 | Layout::F16 | Layout::Bf16 => Ok(()),
            _ => Err(Error::WrongLayout { index: t.index }),
        };
        let emb = need(self.globals[0], TensorRole::TokenEmbd, 0)?;
        shape(&emb, (c.vocab_size, c.dim))?;
        float(&emb)?;
        let on = need(self.globals[1], TensorRole::OutputNorm, 0)?;
        shape(&on, (1, c.dim))?;
        norm(&on)?;
        if !c.tied_embedding {
            let o = need(self.globals[2], TensorRole::Output, 0)?;
            shape(&o, (c.vocab_size, c.dim))?;
            float(&o)?;
        }
        for (l, lt) in self.layers.iter().enumerate() {
            for kind in LayerTensor::ALL {
                let sub = matches!(kind, LayerTensor::AttnSubNorm | LayerTensor::FfnSubNorm);
                let t = match lt[kind as usize] {
                    Some(t) => t,
                    None if sub && !c.sub_norms => continue,
                    None => {
                        return Err(Error::MissingTensor {
                            role: TensorRole::Layer(kind),
                            layer: l as u16,
                        });
                    }
                };
                shape(&t, kind.shape(c))?;
                if kind.is_ternary() {
                    // T2_128 or T1_160, chosen per tensor.
                    if !t.layout.info().ternary {
                        return Err(Error::WrongLayout { index: t.index });
                    }
                } else {
                    norm(&t)?;
                }
            }
        }
        Ok(())
    }

    /// A global tensor (`TokenEmbd`, `OutputNorm`, `Output`).
    pub fn global(&self, role: TensorRole) -> Option<&TensorInfo> {
        match role {
            TensorRole::TokenEmbd => self.globals[0].as_ref(),
            TensorRole::OutputNorm => self.globals[1].as_ref(),
            TensorRole::Output => self.globals[2].as_ref(),
            TensorRole::Layer(_) => None,
        }
    }

    /// A per-layer tensor.
    pub fn layer(&self, layer: usize, kind: LayerTensor) -> Option<&TensorInfo> {
        self.layers
            .get(layer)
            .and_then(|l| l[kind as usize].as_ref())
    }

    /// The LM head: `Output` if untied, else `TokenEmbd`.
    pub fn lm_head(&self) -> &TensorInfo {
        match (self.header.config.tied_embedding, self.globals[2].as_ref()) {
            (false, Some(o)) => o,
            _ => self.globals[0].as_ref().expect("validated at parse"),
        }
    }

    /// Iterate the raw tensor table entries (names, roles) in file order.
    pub fn entries(&self) -> impl Iterator<Item = TensorEntry<'a>> + 'a {
        let mut rest = self.table;
        let n = self.header.n_tensors;
        (0..n).map_while(move |_| {
            let (e, r) = postcard::take_from_bytes::<TensorEntry<'a>>(rest).ok()?;
            rest = r;
            Some(e)
        })
    }

    /// The name of tensor `index` (for error messages), if it exists.
    pub fn tensor_name(&self, index: u32) -> Option<&'a str> {
        self.entries().nth(index as usize).map(|e| e.name)
    }

    /// Bytes of all tensors (weights) in the file.
    pub fn weight_bytes(&self) -> u64 {
        self.entries().map(|e| e.len).sum()
    }
}

/// A `.tern` model whose bytes are resident (mmap, flash XIP, or a `&'static [u8]`).
#[derive(Clone, Debug)]
pub struct Model<'a> {
    /// The parsed header and table.
    pub file: TernFile<'a>,
    /// The whole file.
    pub bytes: &'a [u8],
}

impl<'a> Model<'a> {
    /// Parse a whole resident file.
    ///
    /// # Errors
    /// As [`TernFile::parse`], plus [`Error::TrailingData`] if bytes follow the last section.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let file = TernFile::parse(bytes, bytes.len() as u64)?;
        let mut end = file.header.tokenizer.offset + file.header.tokenizer.len;
        for e in file.entries() {
            end = end.max(e.offset + e.len);
        }
        if end != bytes.len() as u64 {
            return Err(Error::TrailingData {
                section: Section::TensorData(file.header.n_tensors.saturating_sub(1)),
            });
        }
        Ok(Model { file, bytes })
    }

    /// The data of tensor `t` (validated in bounds at parse).
    pub fn data(&self, t: &TensorInfo) -> &'a [u8] {
        &self.bytes[t.offset as usize..(t.offset + t.len) as usize]
    }

    /// The tokenizer blob.
    pub fn tokenizer_blob(&self) -> &'a [u8] {
        let t = &self.file.header.tokenizer;
        &self.bytes[t.offset as usize..(t.offset + t.len) as usize]
    }

    /// Check the CRC32 of every tensor and of the tokenizer blob.
    ///
    /// # Errors
    /// [`Error::ChecksumMismatch`] naming the first bad section.
    pub fn verify_checksums(&self) -> Result<(), Error> {
        let t = &self.file.header.tokenizer;
        if CRC32.checksum(self.tokenizer_blob()) != t.crc32 {
            return Err(Error::ChecksumMismatch {
                section: Section::Tokenizer,
            });
        }
        for (i, e) in self.file.entries().enumerate() {
            let d = &self.bytes[e.offset as usize..(e.offset + e.len) as usize];
            if CRC32.checksum(d) != e.crc32 {
                return Err(Error::ChecksumMismatch {
                    section: Section::TensorData(i as u32),
                });
            }
        }
        Ok(())
    }
}

/// Best-effort name of tensor `index` in a possibly invalid file (for error messages): decodes
/// the header and table up to that entry without the other checks. `None` if unreadable.
pub fn tensor_name_at(bytes: &[u8], index: u32) -> Option<&str> {
    let pre = Preamble::parse(bytes).ok()?;
    let end = PREAMBLE_BYTES.checked_add(pre.header_len as usize)?;
    let h = bytes.get(PREAMBLE_BYTES..end)?;
    let (header, mut rest): (Header<'_>, &[u8]) = postcard::take_from_bytes(h).ok()?;
    if index >= header.n_tensors {
        return None;
    }
    for i in 0..=index {
        let (e, r): (TensorEntry<'_>, &[u8]) = postcard::take_from_bytes(rest).ok()?;
        if i == index {
            return Some(e.name);
        }
        rest = r;
    }
    None
}
