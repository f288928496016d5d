//! The tokenizer blob writer (host only: behind the `std` feature, and in tests).
//!
//! Importers (tern-pack: GGUF `tokenizer.ggml.*`, HF `tokenizer.json`) turn their source
//! into a [`VocabSpec`]: decoded token bytes, types, scores, merges as id triples in rank
//! order. [`write_blob`] derives the lookup tables (bytes index, sorted merges, byte ids,
//! specials) and lays out the blob as [`super::blob`] and `core/FORMAT.md` specify.

extern crate std;

use std::vec::Vec;

use super::TokenType;
use super::blob::*;
use crate::error::Error;
use crate::format::TokenizerKind;

/// One token of a vocabulary being written.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    /// Decoded bytes (BPE: GPT-2 mapping undone; SPM: `▁` → space, `<0xNN>` → the byte;
    /// control, unknown and user-defined tokens: their text).
    pub bytes: Vec<u8>,
    /// Type.
    pub ty: TokenType,
    /// Merge score (SPM; ignored for BPE).
    pub score: f32,
    /// Whether text may merge into this token (goes into the bytes index when its type is
    /// normal, unused or undefined). Importers clear it for tokens whose source text cannot
    /// be produced from input text (BPE text outside the GPT-2 alphabet, SPM text with a
    /// literal space).
    pub mergeable: bool,
}

/// A vocabulary to write.
#[derive(Clone, Debug, PartialEq)]
pub struct VocabSpec {
    /// Algorithm.
    pub kind: TokenizerKind,
    /// Tokens, by id.
    pub tokens: Vec<TokenSpec>,
    /// BPE merges `[left, right, result]`, in rank order (rank = position); a repeated
    /// `(left, right)` keeps its first rank. Must be empty for SPM.
    pub merges: Vec<[u32; 3]>,
    /// See [`FLAG_IGNORE_MERGES`].
    pub ignore_merges: bool,
    /// See [`FLAG_ADD_SPACE_PREFIX`].
    pub add_space_prefix: bool,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Unknown token (SPM byte fallback of last resort).
    pub unk: Option<u32>,
}

fn bad(what: &'static str) -> Error {
    Error::BadTokenizer { what }
}

fn put(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Lays out the blob for `spec`.
///
/// # Errors
/// [`Error::BadTokenizer`] for an empty vocabulary, ids out of range, SPM merges, or sizes
/// beyond `u32`.
pub fn write_blob(spec: &VocabSpec) -> Result<Vec<u8>, Error> {
    let n = spec.tokens.len();
    let n32 = u32::try_from(n).map_err(|_| bad("too many tokens"))?;
    if n == 0 || n32 == NO_TOKEN {
        return Err(bad("token count is 0 or too large"));
    }
    let id_ok = |id: Option<u32>| id.is_none_or(|i| i < n32);
    if !id_ok(spec.bos) || !id_ok(spec.eos) || !id_ok(spec.unk) {
        return Err(bad("bos/eos/unk id out of range"));
    }
    let is_spm = spec.kind == TokenizerKind::Spm;
    if is_spm && !spec.merges.is_empty() {
        return Err(bad("SPM vocabularies have no merge table"));
    }

    let mut offsets = Vec::with_capacity((n + 1) * 4);
    let mut text = Vec::new();
    let mut types = Vec::with_capacity(n);
    let mut scores = Vec::new();
    put(&mut offsets, 0);
    for t in &spec.tokens {
        text.extend_from_slice(&t.bytes);
        put(
            &mut offsets,
            u32::try_from(text.len()).map_err(|_| bad("token text too long"))?,
        );
        types.push(t.ty as u8);
        if is_spm {
            scores.extend_from_slice(&t.score.to_le_bytes());
        }
    }

    // Bytes index: mergeable ordinary tokens, sorted by bytes; duplicates keep the lowest id.
    let mut idx: Vec<u32> = (0..n32)
        .filter(|&i| {
            let t = &spec.tokens[i as usize];
            t.mergeable
                && matches!(
                    t.ty,
                    TokenType::Normal | TokenType::Unused | TokenType::Undefined
                )
        })
        .collect();
    idx.sort_by(|&a, &b| {
        spec.tokens[a as usize]
            .bytes
            .cmp(&spec.tokens[b as usize].bytes)
            .then(a.cmp(&b))
    });
    idx.dedup_by(|b, a| spec.tokens[*a as usize].bytes == spec.tokens[*b as usize].bytes);
    let find = |bytes: &[u8]| {
        idx.binary_search_by(|&i| spec.tokens[i as usize].bytes.as_slice().cmp(bytes))
            .ok()
            .map(|p| idx[p])
    };

    // Merges: sorted by (left, right), first rank wins.
    let mut merges: Vec<[u32; 4]> = Vec::with_capacity(spec.merges.len());
    for (rank, &[l, r, res]) in spec.merges.iter().enumerate() {
        if l >= n32 || r >= n32 || res >= n32 {
            return Err(bad("merge id out of range"));
        }
        merges.push([
            l,
            r,
            u32::try_from(rank).map_err(|_| bad("too many merges"))?,
            res,
        ]);
    }
    merges.sort_by_key(|m| (m[0], m[1], m[2]));
    merges.dedup_by_key(|m| (m[0], m[1]));

    // Byte tokens.
    let mut byte_ids = [NO_TOKEN; 256];
    for (b, slot) in byte_ids.iter_mut().enumerate() {
        *slot = if is_spm {
            spec.tokens
                .iter()
                .position(|t| t.ty == TokenType::Byte && t.bytes == [b as u8])
                .map_or(NO_TOKEN, |i| i as u32)
        } else {
            find(&[b as u8]).unwrap_or(NO_TOKEN)
        };
    }

    // Specials: longest first, then by id.
    let mut specials: Vec<u32> = (0..n32)
        .filter(|&i| {
            let t = &spec.tokens[i as usize];
            matches!(
                t.ty,
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            ) && !t.bytes.is_empty()
                && core::str::from_utf8(&t.bytes).is_ok()
        })
        .collect();
    specials.sort_by_key(|&i| (core::cmp::Reverse(spec.tokens[i as usize].bytes.len()), i));

    let mut flags = 0;
    if spec.ignore_merges {
        flags |= FLAG_IGNORE_MERGES;
    }
    if spec.add_space_prefix {
        flags |= FLAG_ADD_SPACE_PREFIX;
    }
    let mut out = Vec::new();
    out.extend_from_slice(&BLOB_MAGIC);
    put(&mut out, BLOB_VERSION);
    put(&mut out, u32::from(is_spm));
    put(&mut out, flags);
    put(&mut out, n32);
    for id in [spec.bos, spec.eos, spec.unk] {
        put(&mut out, id.unwrap_or(NO_TOKEN));
    }
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let merge_bytes: Vec<u8> = merges
        .iter()
        .flat_map(|m| m.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    let sections: [Vec<u8>; N_SECTIONS] = [
        offsets,
        text,
        types,
        scores,
        u32s(&idx),
        merge_bytes,
        u32s(&byte_ids),
        u32s(&specials),
    ];
    let mut at = DATA_START;
    for s in &sections {
        put(
            &mut out,
            u32::try_from(at).map_err(|_| bad("blob too large"))?,
        );
        put(
            &mut out,
            u32::try_from(s.len()).map_err(|_| bad("blob too large"))?,
        );
        at = (at + s.len() + 3) & !3;
    }
    for s in &sections {
        out.extend_from_slice(s);
        out.resize((out.len() + 3) & !3, 0);
    }
    u32::try_from(out.len()).map_err(|_| bad("blob too large"))?;
    Ok(out)
}
