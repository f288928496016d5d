//! Tokenizers: Llama-3 byte-level BPE and Llama-2 SentencePiece, read in place from the
//! tokenizer blob of a `.tern` file (layout: `core/FORMAT.md`, "Tokenizer blob").
//!
//! Allocation-free: [`Tokenizer::encode`] writes ids into a caller's `out` slice and works in
//! a caller's `scratch` slice of [`scratch_elems`]`(text.len())` `u32`s. [`Tokenizer::piece`]
//! borrows token bytes from the blob; [`StreamDecoder`] turns a stream of pieces into
//! complete UTF-8 text.
//!
//! ```text
//! encode(text):
//!   [BOS]  then, per fragment between special tokens (matched only with parse_special,
//!          except user-defined tokens, always matched):
//!     BPE: Llama-3 pre-tokenizer → each pre-token: whole-word lookup (ignore_merges),
//!          else bytes → merges by rank
//!     SPM: " " prefix (first fragment / after a special) → chars → merges by score → byte fallback
//! ```
//!
//! Source: llama.cpp `src/llama-vocab.cpp` (`tokenize_impl`, `tokenizer_st_partition`,
//! `llm_tokenizer_bpe_session`, `llm_tokenizer_spm_session`, `token_to_piece`), matched
//! against llama.cpp's vocab test vectors `ggml-vocab-llama-{bpe,spm}.gguf.{inp,out}`.

pub mod blob;
mod bpe;
mod heap;
pub mod pretok;
mod spm;
pub mod stream;
mod unicode_tables;
#[cfg(any(feature = "std", test))]
pub mod writer;

use blob::{FLAG_ADD_SPACE_PREFIX, NO_TOKEN, Sections, le32};
pub use pretok::Llama3Split;
pub use stream::StreamDecoder;

use crate::error::Error;
use crate::format::TokenizerKind;

/// Token type, with llama.cpp's `llama_token_type` / GGUF `tokenizer.ggml.token_type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum TokenType {
    /// Type not given.
    Undefined = 0,
    /// An ordinary token text merges into.
    Normal = 1,
    /// The unknown token (`<unk>`).
    Unknown = 2,
    /// A control token (`<s>`, `<|eot_id|>`): matched in text only with `parse_special`,
    /// printed only when asked for.
    Control = 3,
    /// A user-defined (added, non-special) token: always matched verbatim in text.
    UserDefined = 4,
    /// An unused slot.
    Unused = 5,
    /// An SPM byte-fallback token `<0xNN>`.
    Byte = 6,
}

impl TokenType {
    /// The type for a stored `u8` (unknown values: [`TokenType::Undefined`]).
    pub const fn from_u8(v: u8) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// `u32` elements of `scratch` that [`Tokenizer::encode`] needs for a text of
/// `text_len_bytes` bytes (enough for either kind: BPE needs `9 × pre-token bytes`, SPM
/// `21 × fragment bytes + 21`).
pub const fn scratch_elems(text_len_bytes: usize) -> usize {
    text_len_bytes.saturating_mul(21).saturating_add(24)
}

/// The error for a scratch slice shorter than needed (`ArenaTooSmall`, sizes in bytes).
pub(crate) fn scratch_too_small(need_elems: usize, have_elems: usize) -> Error {
    Error::ArenaTooSmall {
        need_bytes: (need_elems as u64).saturating_mul(4),
        have_bytes: (have_elems as u64).saturating_mul(4),
    }
}

/// Output cursor over the caller's id buffer.
#[derive(Debug)]
pub(crate) struct Out<'o> {
    buf: &'o mut [u32],
    n: usize,
}

impl Out<'_> {
    #[inline]
    pub(crate) fn push(&mut self, id: u32) -> Result<(), Error> {
        let have = self.buf.len();
        let slot = self.buf.get_mut(self.n).ok_or(Error::OutputTooSmall {
            have_elems: have as u32,
        })?;
        *slot = id;
        self.n += 1;
        Ok(())
    }
}

/// A tokenizer over a validated blob borrowed from the model file (mmap or flash).
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    s: Sections<'a>,
    /// Bitmap of the first bytes of special tokens' text (fast reject while scanning).
    special_first: [u32; 8],
}

impl<'a> Tokenizer<'a> {
    /// Validates `blob` (layout version, section bounds, ids, types, offsets, sort orders)
    /// and wraps it. Runs in O(tokens + merges); the blob is never copied.
    ///
    /// # Errors
    /// [`Error::BadTokenizer`] naming the first violated rule, including a `kind` other than
    /// the blob's own.
    pub fn from_blob(kind: TokenizerKind, blob: &'a [u8]) -> Result<Tokenizer<'a>, Error> {
        let s = Sections::parse(kind, blob)?;
        let mut special_first = [0u32; 8];
        for i in 0..s.specials.len() / 4 {
            if let Some(&b) = s.bytes(le32(s.specials, i)).and_then(|t| t.first()) {
                special_first[usize::from(b >> 5)] |= 1 << (b & 31);
            }
        }
        Ok(Tokenizer { s, special_first })
    }

    /// The algorithm.
    pub fn kind(&self) -> TokenizerKind {
        self.s.kind
    }

    /// Number of tokens (ids are `0..n_tokens`).
    pub fn n_tokens(&self) -> u32 {
        self.s.n_tokens
    }

    /// Beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        (self.s.bos != NO_TOKEN).then_some(self.s.bos)
    }

    /// End-of-sequence token, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        (self.s.eos != NO_TOKEN).then_some(self.s.eos)
    }

    /// Unknown token, if the vocabulary has one.
    pub fn unk(&self) -> Option<u32> {
        (self.s.unk != NO_TOKEN).then_some(self.s.unk)
    }

    /// Whether SPM encoding prefixes the text with a space (so decoding a whole prompt
    /// yields that leading space).
    pub fn add_space_prefix(&self) -> bool {
        self.s.flags & FLAG_ADD_SPACE_PREFIX != 0
    }

    /// The type of token `id`, or `None` if `id >= n_tokens`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.s
            .types
            .get(id as usize)
            .map(|&t| TokenType::from_u8(t))
    }

    /// The merge score of token `id` (SPM; `None` for BPE or out of range).
    pub fn score(&self, id: u32) -> Option<f32> {
        if id >= self.s.n_tokens || self.s.scores.is_empty() {
            return None;
        }
        Some(f32::from_bits(le32(self.s.scores, id as usize)))
    }

    /// The bytes token `id` stands for: BPE with the GPT-2 byte mapping undone, SPM with `▁`
    /// as a space and `<0xNN>` as the byte; control, unknown and user-defined tokens as their
    /// text. `None` if `id >= n_tokens`. The bytes need not be valid UTF-8 on their own (use
    /// [`StreamDecoder`]).
    pub fn token_bytes(&self, id: u32) -> Option<&'a [u8]> {
        self.s.bytes(id)
    }

    /// The bytes to print for token `id`, as llama.cpp's `token_to_piece`: control and
    /// unknown tokens print their text only when `render_special`, otherwise nothing;
    /// everything else prints [`Tokenizer::token_bytes`]. `None` if `id >= n_tokens`.
    pub fn piece(&self, id: u32, render_special: bool) -> Option<&'a [u8]> {
        let b = self.s.bytes(id)?;
        match self.token_type(id)? {
            TokenType::Control | TokenType::Unknown if !render_special => Some(&[]),
            _ => Some(b),
        }
    }

    /// The id of the token whose bytes are exactly `bytes`, among the tokens text merges into
    /// (normal, unused, undefined types).
    pub fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.s.index.len() / 4);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = le32(self.s.index, mid);
            match self.s.bytes(id).unwrap_or(&[]).cmp(bytes) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some(id),
            }
        }
        None
    }

    /// The id of a special token (any type in the specials list) whose text is exactly `text`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        (0..self.s.specials.len() / 4)
            .map(|i| le32(self.s.specials, i))
            .find(|&id| self.s.bytes(id) == Some(text.as_bytes()))
    }

    #[inline]
    pub(crate) fn byte_id(&self, b: u8) -> u32 {
        le32(self.s.byte_ids, usize::from(b))
    }

    /// The longest special token at the start of `rest`: `(id, len_bytes)`.
    fn match_special(&self, rest: &[u8], parse_special: bool) -> Option<(u32, usize)> {
        let b = *rest.first()?;
        if self.special_first[usize::from(b >> 5)] & (1 << (b & 31)) == 0 {
            return None;
        }
        for i in 0..self.s.specials.len() / 4 {
            let id = le32(self.s.specials, i);
            let ty = self.token_type(id)?;
            if !parse_special && matches!(ty, TokenType::Control | TokenType::Unknown) {
                continue;
            }
            let t = self.s.bytes(id)?;
            if rest.starts_with(t) {
                return Some((id, t.len()));
            }
        }
        None
    }

    /// Encodes `text` into `out`, returning the number of ids written.
    ///
    /// * `add_bos`: start with the BOS token (ignored when the vocabulary has none).
    /// * `parse_special`: recognise control tokens written in the text (`<|eot_id|>`) as
    ///   those tokens; otherwise they are encoded as plain text. User-defined tokens are
    ///   always recognised (llama.cpp `tokenizer_st_partition`). Where special tokens
    ///   overlap, the leftmost, then longest, wins.
    /// * `out`: receives the ids.
    /// * `scratch`: work space of at least [`scratch_elems`]`(text.len())` elements.
    ///
    /// # Errors
    /// [`Error::OutputTooSmall`] when `out` fills up; [`Error::ArenaTooSmall`] (sizes in
    /// bytes) when `scratch` is shorter than needed.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
        out: &mut [u32],
        scratch: &mut [u32],
    ) -> Result<usize, Error> {
        let mut out = Out { buf: out, n: 0 };
        if add_bos && let Some(b) = self.bos() {
            out.push(b)?;
        }
        let bytes = text.as_bytes();
        let mut prev_special = true;
        let (mut start, mut p) = (0usize, 0usize);
        while p < bytes.len() {
            let Some((id, len)) = self.match_special(&bytes[p..], parse_special) else {
                p += 1;
                continue;
            };
            // A special token's text is valid UTF-8, so `p` is a char boundary.
            if let Some(frag) = text.get(start..p)
                && !frag.is_empty()
            {
                self.encode_fragment(frag, prev_special, &mut out, scratch)?;
            }
            out.push(id)?;
            prev_special = true;
            p += len;
            start = p;
        }
        if let Some(frag) = text.get(start..)
            && !frag.is_empty()
        {
            self.encode_fragment(frag, prev_special, &mut out, scratch)?;
        }
        Ok(out.n)
    }

    fn encode_fragment(
        &self,
        frag: &str,
        after_special: bool,
        out: &mut Out<'_>,
        scratch: &mut [u32],
    ) -> Result<(), Error> {
        match self.s.kind {
            TokenizerKind::Bpe => {
                for chunk in Llama3Split::new(frag) {
                    self.bpe_chunk(chunk.as_bytes(), out, scratch)?;
                }
                Ok(())
            }
            TokenizerKind::Spm => {
                self.spm_fragment(frag, after_special && self.add_space_prefix(), out, scratch)
            }
        }
    }
}

#[cfg(test)]
mod tests;
