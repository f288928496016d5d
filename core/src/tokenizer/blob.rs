//! The tokenizer blob, version 1: constants, header and section validation.
//!
//! Specification: `core/FORMAT.md`, section "Tokenizer blob". Every integer is little-endian;
//! values are read with `from_le_bytes` from byte slices, so the blob needs no alignment and is
//! used in place (mmap, flash XIP). [`super::Tokenizer::from_blob`] checks the canonical layout (every
//! section length derived from the counts, sections in order, 4-byte aligned, no gap and no
//! trailing byte), every token id, every token type, the text offsets, the strict ordering of
//! the bytes index and the merge table, and the special-token list, so the encoder afterwards
//! only ever reads in bounds.

use core::cmp::Ordering;

use crate::error::Error;
use crate::format::TokenizerKind;

/// The 4 magic bytes a tokenizer blob starts with.
pub const BLOB_MAGIC: [u8; 4] = *b"TTOK";
/// The blob version this build reads and writes.
pub const BLOB_VERSION: u32 = 1;
/// Bytes of the fixed header (8 `u32` fields).
pub const HEADER_BYTES: usize = 32;
/// Number of sections, in file order (see [`Section`]).
pub const N_SECTIONS: usize = 8;
/// Bytes of the section table that follows the header (`(offset, len)` pairs of `u32`).
pub const TABLE_BYTES: usize = N_SECTIONS * 8;
/// Offset of the first section.
pub const DATA_START: usize = HEADER_BYTES + TABLE_BYTES;
/// The "no token" id (absent BOS/EOS/UNK, byte without a token).
pub const NO_TOKEN: u32 = u32::MAX;
/// Flag bit: a pre-token that is itself a vocabulary entry is emitted without merging
/// (BPE; Hugging Face `ignore_merges`).
pub const FLAG_IGNORE_MERGES: u32 = 1;
/// Flag bit: prefix each text fragment that starts the prompt or follows a special token with
/// a space (SPM; llama.cpp `add_space_prefix`).
pub const FLAG_ADD_SPACE_PREFIX: u32 = 2;
/// Bytes of one merge record: `left, right, rank, result` (`u32` each).
pub const MERGE_BYTES: usize = 16;

/// The sections of a blob, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Section {
    /// `n_tokens + 1` `u32` offsets into [`Section::Text`], non-decreasing, first 0, last = text length.
    Offsets = 0,
    /// Concatenated decoded token bytes (BPE: GPT-2 byte mapping undone; SPM: `▁` → space,
    /// `<0xNN>` → the byte; control / user-defined tokens: their text).
    Text = 1,
    /// `n_tokens` token types, one `u8` each ([`super::TokenType`]).
    Types = 2,
    /// `n_tokens` `f32` merge scores (SPM); empty for BPE.
    Scores = 3,
    /// `u32` ids of the tokens text may merge into, sorted strictly by their bytes.
    Index = 4,
    /// BPE merges, [`MERGE_BYTES`] each, sorted strictly by `(left, right)`; empty for SPM.
    Merges = 5,
    /// 256 `u32`: the token of each single byte (BPE: the byte's token; SPM: `<0xNN>`), or [`NO_TOKEN`].
    ByteIds = 6,
    /// `u32` ids of tokens matched verbatim in text (control, user-defined, unknown), sorted
    /// by text length, longest first, then by id.
    Specials = 7,
}

/// Reads the `i`-th little-endian `u32` of `s`; 0 when out of bounds (never after validation).
#[inline]
pub(crate) fn le32(s: &[u8], i: usize) -> u32 {
    let at = i.wrapping_mul(4);
    match s.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

const fn bad(what: &'static str) -> Error {
    Error::BadTokenizer { what }
}

/// A validated blob split into its sections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sections<'a> {
    pub kind: TokenizerKind,
    pub flags: u32,
    pub n_tokens: u32,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    pub offsets: &'a [u8],
    pub text: &'a [u8],
    pub types: &'a [u8],
    pub scores: &'a [u8],
    pub index: &'a [u8],
    pub merges: &'a [u8],
    pub byte_ids: &'a [u8],
    pub specials: &'a [u8],
}

impl<'a> Sections<'a> {
    /// Parses and validates a blob of the given kind.
    pub fn parse(kind: TokenizerKind, blob: &'a [u8]) -> Result<Sections<'a>, Error> {
        if blob.len() < DATA_START {
            return Err(bad("blob shorter than its header"));
        }
        if blob.get(0..4) != Some(&BLOB_MAGIC[..]) {
            return Err(bad("bad blob magic"));
        }
        if le32(blob, 1) != BLOB_VERSION {
            return Err(bad("unsupported blob version"));
        }
        let blob_kind = match le32(blob, 2) {
            0 => TokenizerKind::Bpe,
            1 => TokenizerKind::Spm,
            _ => return Err(bad("unknown tokenizer kind in blob")),
        };
        if blob_kind != kind {
            return Err(bad("blob kind differs from the header's tokenizer kind"));
        }
        let flags = le32(blob, 3);
        if flags & !(FLAG_IGNORE_MERGES | FLAG_ADD_SPACE_PREFIX) != 0 {
            return Err(bad("unknown blob flags"));
        }
        let n_tokens = le32(blob, 4);
        if n_tokens == 0 || n_tokens == NO_TOKEN {
            return Err(bad("token count is 0 or too large"));
        }
        let n = n_tokens as usize;
        let (bos, eos, unk) = (le32(blob, 5), le32(blob, 6), le32(blob, 7));
        for id in [bos, eos, unk] {
            if id != NO_TOKEN && id >= n_tokens {
                return Err(bad("bos/eos/unk id out of range"));
            }
        }

        // Section table: canonical layout, each section at the 4-aligned end of the previous.
        let mut secs: [&[u8]; N_SECTIONS] = [&[]; N_SECTIONS];
        let mut expect = DATA_START;
        for (i, sec) in secs.iter_mut().enumerate() {
            let off = le32(blob, HEADER_BYTES / 4 + 2 * i) as usize;
            let len = le32(blob, HEADER_BYTES / 4 + 2 * i + 1) as usize;
            if off != expect {
                return Err(bad("section not at its canonical offset"));
            }
            let end = off
                .checked_add(len)
                .ok_or(bad("section length overflows"))?;
            *sec = blob
                .get(off..end)
                .ok_or(bad("section extends past the blob"))?;
            expect = end.checked_add(3).ok_or(bad("section length overflows"))? & !3;
        }
        if blob.len() != expect {
            return Err(bad("trailing bytes after the last section"));
        }
        let [
            offsets,
            text,
            types,
            scores,
            index,
            merges,
            byte_ids,
            specials,
        ] = secs;

        let want = |sec: &[u8], elems: Option<usize>, what| match elems {
            Some(b) if b == sec.len() => Ok(()),
            _ => Err(bad(what)),
        };
        want(
            offsets,
            n.checked_add(1).and_then(|x| x.checked_mul(4)),
            "offsets section length",
        )?;
        want(types, Some(n), "types section length")?;
        let n_scores = if kind == TokenizerKind::Spm {
            n.checked_mul(4)
        } else {
            Some(0)
        };
        want(scores, n_scores, "scores section length")?;
        want(byte_ids, Some(256 * 4), "byte-ids section length")?;
        if index.len() % 4 != 0 || index.len() / 4 > n {
            return Err(bad("index section length"));
        }
        if merges.len() % MERGE_BYTES != 0 || (kind == TokenizerKind::Spm && !merges.is_empty()) {
            return Err(bad("merges section length"));
        }
        if specials.len() % 4 != 0 || specials.len() / 4 > n {
            return Err(bad("specials section length"));
        }

        let s = Sections {
            kind,
            flags,
            n_tokens,
            bos,
            eos,
            unk,
            offsets,
            text,
            types,
            scores,
            index,
            merges,
            byte_ids,
            specials,
        };
        s.validate_tokens()?;
        s.validate_tables()?;
        Ok(s)
    }

    fn validate_tokens(&self) -> Result<(), Error> {
        let n = self.n_tokens as usize;
        if le32(self.offsets, 0) != 0 || le32(self.offsets, n) as usize != self.text.len() {
            return Err(bad("text offsets do not span the text section"));
        }
        let mut prev = 0;
        for i in 1..=n {
            let o = le32(self.offsets, i);
            if o < prev {
                return Err(bad("text offsets decrease"));
            }
            prev = o;
        }
        if self.types.iter().any(|&t| t > 6) {
            return Err(bad("unknown token type"));
        }
        Ok(())
    }

    fn validate_tables(&self) -> Result<(), Error> {
        let n = self.n_tokens;
        // Index: ids in range, bytes strictly increasing (so lookups are unambiguous).
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.index.len() / 4 {
            let id = le32(self.index, i);
            let b = self.bytes(id).ok_or(bad("index id out of range"))?;
            if let Some(p) = prev
                && p.cmp(b) != Ordering::Less
            {
                return Err(bad("index not strictly sorted by token bytes"));
            }
            prev = Some(b);
        }
        // Merges: ids in range, (left, right) strictly increasing.
        let mut prev_key: Option<u64> = None;
        for i in 0..self.merges.len() / MERGE_BYTES {
            let [l, r, rank, res] = self.merge(i);
            if l >= n || r >= n || res >= n || rank == NO_TOKEN {
                return Err(bad("merge id out of range"));
            }
            let key = (u64::from(l) << 32) | u64::from(r);
            if prev_key.is_some_and(|p| p >= key) {
                return Err(bad("merges not strictly sorted by (left, right)"));
            }
            prev_key = Some(key);
        }
        for b in 0..256 {
            let id = le32(self.byte_ids, b);
            if id != NO_TOKEN && id >= n {
                return Err(bad("byte token id out of range"));
            }
        }
        // Specials: in range, non-empty valid UTF-8 (so a match starts on a char boundary),
        // sorted by length, longest first.
        let mut prev_len = usize::MAX;
        for i in 0..self.specials.len() / 4 {
            let b = self
                .bytes(le32(self.specials, i))
                .ok_or(bad("special id out of range"))?;
            if b.is_empty() || core::str::from_utf8(b).is_err() {
                return Err(bad("special token text empty or not UTF-8"));
            }
            if b.len() > prev_len {
                return Err(bad("specials not sorted longest first"));
            }
            prev_len = b.len();
        }
        Ok(())
    }

    /// Decoded bytes of token `id`.
    #[inline]
    pub fn bytes(&self, id: u32) -> Option<&'a [u8]> {
        if id >= self.n_tokens {
            return None;
        }
        let i = id as usize;
        let (s, e) = (
            le32(self.offsets, i) as usize,
            le32(self.offsets, i + 1) as usize,
        );
        self.text.get(s..e)
    }

    /// Merge record `i`: `[left, right, rank, result]`.
    #[inline]
    pub fn merge(&self, i: usize) -> [u32; 4] {
        let b = i.wrapping_mul(4);
        [
            le32(self.merges, b),
            le32(self.merges, b + 1),
            le32(self.merges, b + 2),
            le32(self.merges, b + 3),
        ]
    }
}
