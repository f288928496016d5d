//! The core error type.

use crate::format::TensorRole;

/// Which part of a `.tern` file an error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Section {
    /// The fixed 32-byte preamble.
    Preamble,
    /// The postcard header (config, tokenizer, plan, provenance).
    Header,
    /// The tensor table (index of the entry).
    TensorEntry(u32),
    /// A tensor's data (index of the tensor).
    TensorData(u32),
    /// The tokenizer blob.
    Tokenizer,
}

/// Everything that can go wrong in core. Numbers, never strings: host crates add the file path
/// and tensor name for messages.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with the `.tern` magic; it is not a packed Tern model.
    BadMagic,
    /// The format version is not one this build reads; repack with this version of `tern pack`.
    UnsupportedVersion {
        /// Version found in the file.
        found: u32,
    },
    /// The file ends inside `section`; it was truncated (re-copy or re-pack it).
    Truncated {
        /// The section that is cut short.
        section: Section,
    },
    /// Bytes follow the end of `section` where none are allowed; the file is corrupt.
    TrailingData {
        /// The section followed by stray bytes.
        section: Section,
    },
    /// The CRC32 of `section` does not match the stored one; the file is corrupt.
    ChecksumMismatch {
        /// The section whose checksum failed.
        section: Section,
    },
    /// `section` could not be decoded (malformed postcard, bad enum tag, bad UTF-8).
    Malformed {
        /// The undecodable section.
        section: Section,
    },
    /// Tensor `index` has a layout id this build does not know; repack with a matching `tern pack`.
    UnknownLayout {
        /// Tensor index.
        index: u32,
        /// The unknown layout id.
        layout: u8,
    },
    /// Tensor `index` lies (partly) outside the file, or its size overflows.
    TensorOutOfBounds {
        /// Tensor index.
        index: u32,
    },
    /// Tensor `index` does not start on a 64-byte boundary.
    Misaligned {
        /// Tensor index.
        index: u32,
    },
    /// Tensor `index` has a byte length that does not match its layout and shape.
    BadTensorLength {
        /// Tensor index.
        index: u32,
        /// Bytes expected from layout and shape.
        expected_bytes: u64,
        /// Bytes recorded.
        found_bytes: u64,
    },
    /// A tensor the graph needs is absent from the file.
    MissingTensor {
        /// Its role.
        role: TensorRole,
        /// Its layer (0 for global tensors).
        layer: u16,
    },
    /// Two tensors share the same role and layer.
    DuplicateTensor {
        /// Tensor index of the second one.
        index: u32,
    },
    /// Tensor `index` has a shape other than the config implies.
    ShapeMismatch {
        /// Tensor index.
        index: u32,
        /// Expected (rows, cols).
        expected: (u32, u32),
        /// Found (rows, cols).
        found: (u32, u32),
    },
    /// Tensor `index` has a layout the graph cannot use in that role (e.g. F16 q_proj).
    WrongLayout {
        /// Tensor index.
        index: u32,
    },
    /// The model config is inconsistent (zero or overflowing dims, heads not dividing dim…).
    BadConfig {
        /// A short static description of the violated rule.
        what: &'static str,
    },
    /// The arena given to a session is smaller than its [`crate::plan::MemoryPlan`] needs.
    ArenaTooSmall {
        /// Bytes the plan needs.
        need_bytes: u64,
        /// Bytes provided.
        have_bytes: u64,
    },
    /// The arena is not aligned to 64 bytes.
    ArenaMisaligned,
    /// The session's KV cache is full (`ctx_len` tokens); start a new session or raise `--ctx`.
    ContextFull {
        /// The context length in tokens.
        ctx_len: u32,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab_size: u32,
    },
    /// The output buffer for token ids is too small.
    OutputTooSmall {
        /// Elements the caller provided.
        have_elems: u32,
    },
    /// The tokenizer blob is malformed.
    BadTokenizer {
        /// A short static description.
        what: &'static str,
    },
    /// A streamed weight source could not deliver `len_bytes` at `offset_bytes` (storage error,
    /// short file, or a read larger than a staging slot). The platform reports the cause.
    WeightRead {
        /// File offset of the read, bytes.
        offset_bytes: u64,
        /// Length of the read, bytes.
        len_bytes: u64,
    },
    /// A streamed weight source was driven out of protocol (a third outstanding read, or a
    /// wait with none); a bug in the caller.
    StreamProtocol,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadMagic => write!(f, "not a .tern file (bad magic)"),
            Error::UnsupportedVersion { found } => write!(f, "unsupported .tern version {found}"),
            Error::Truncated { section } => write!(f, "file truncated in {section:?}"),
            Error::TrailingData { section } => write!(f, "trailing data after {section:?}"),
            Error::ChecksumMismatch { section } => write!(f, "CRC32 mismatch in {section:?}"),
            Error::Malformed { section } => write!(f, "malformed {section:?}"),
            Error::UnknownLayout { index, layout } => {
                write!(f, "tensor #{index}: unknown layout id {layout}")
            }
            Error::TensorOutOfBounds { index } => {
                write!(f, "tensor #{index}: data lies outside the file")
            }
            Error::Misaligned { index } => write!(f, "tensor #{index}: data not 64-byte aligned"),
            Error::BadTensorLength {
                index,
                expected_bytes,
                found_bytes,
            } => {
                write!(
                    f,
                    "tensor #{index}: {found_bytes} bytes, layout and shape need {expected_bytes}"
                )
            }
            Error::MissingTensor { role, layer } => {
                write!(f, "missing tensor {role:?} of layer {layer}")
            }
            Error::DuplicateTensor { index } => write!(f, "tensor #{index}: duplicate role/layer"),
            Error::ShapeMismatch {
                index,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor #{index}: shape {found:?}, config implies {expected:?}"
                )
            }
            Error::WrongLayout { index } => {
                write!(f, "tensor #{index}: layout not usable in this role")
            }
            Error::BadConfig { what } => write!(f, "bad model config: {what}"),
            Error::ArenaTooSmall {
                need_bytes,
                have_bytes,
            } => {
                write!(
                    f,
                    "arena too small: need {need_bytes} bytes, have {have_bytes}"
                )
            }
            Error::ArenaMisaligned => write!(f, "arena not 64-byte aligned"),
            Error::ContextFull { ctx_len } => write!(f, "context full ({ctx_len} tokens)"),
            Error::TokenOutOfRange { token, vocab_size } => {
                write!(f, "token {token} >= vocab size {vocab_size}")
            }
            Error::OutputTooSmall { have_elems } => {
                write!(f, "output buffer too small ({have_elems} elements)")
            }
            Error::BadTokenizer { what } => write!(f, "bad tokenizer data: {what}"),
            Error::WeightRead {
                offset_bytes,
                len_bytes,
            } => write!(
                f,
                "could not read {len_bytes} weight bytes at offset {offset_bytes}"
            ),
            Error::StreamProtocol => write!(f, "weight stream driven out of protocol"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
