//! Tokenizer import: builds the `.tern` tokenizer blob (layout: `core/FORMAT.md`, "Tokenizer
//! blob") from GGUF `tokenizer.ggml.*` metadata or a Hugging Face `tokenizer.json`.
//!
//! Both sources go through one [`RawVocab`] (token texts as the source spells them, types,
//! scores, merges as string pairs) and [`RawVocab::build`], which decodes token texts to
//! bytes (GPT-2 byte mapping for BPE, `▁` and `<0xNN>` for SPM), resolves merges to ids and
//! calls [`tern_core::tokenizer::writer::write_blob`].
//!
//! Supported: `gpt2` (byte-level BPE) with the Llama-3 pre-tokenizer (`llama-bpe`), and
//! `llama` (SentencePiece) vocabularies.

mod hf;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tern_core::format::{CRC32, TokenizerInfo, TokenizerKind};
use tern_core::tokenizer::TokenType;
use tern_core::tokenizer::writer::{TokenSpec, VocabSpec, write_blob};

use crate::gguf::{GgufFile, Value};

pub use hf::{LLAMA3_PATTERN, blob_from_tokenizer_json};

/// Token texts that end generation when present (besides EOS).
pub const STOP_TOKEN_TEXTS: [&str; 3] = ["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"];

/// A built tokenizer: what [`TokenizerInfo`] records, plus the blob bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerBuild {
    /// Algorithm.
    pub kind: TokenizerKind,
    /// Number of tokens.
    pub n_tokens: u32,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Tokens that end generation: EOS, then `<|eot_id|>` / `<|end_of_text|>` / `<|eom_id|>`
    /// (and GGUF `eot`/`eom` ids) when present; deduplicated, at most 8.
    pub stop_ids: Vec<u32>,
    /// Whether prompts start with BOS.
    pub add_bos: bool,
    /// The blob.
    pub blob: Vec<u8>,
}

impl TokenizerBuild {
    /// The header record for this blob placed at absolute file `offset` (a multiple of 64).
    ///
    /// # Errors
    /// More than 8 stop ids (cannot happen for builds from this module).
    pub fn info(&self, offset: u64) -> Result<TokenizerInfo> {
        let mut info = TokenizerInfo {
            kind: self.kind,
            n_tokens: self.n_tokens,
            bos: self.bos,
            eos: self.eos,
            stop_ids: Default::default(),
            add_bos: self.add_bos,
            offset,
            len: self.blob.len() as u64,
            crc32: CRC32.checksum(&self.blob),
        };
        for &id in &self.stop_ids {
            info.stop_ids
                .push(id)
                .map_err(|_| anyhow::anyhow!("more than 8 stop ids"))?;
        }
        Ok(info)
    }
}

/// The GPT-2 byte → character mapping (`bytes_to_unicode` in OpenAI's `encoder.py`, HF
/// `ByteLevel`): printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in order.
pub fn gpt2_byte_to_char() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\0');
            next += 1;
            c
        };
    }
    map
}

/// A vocabulary as its source spells it.
#[derive(Clone, Debug, Default)]
pub struct RawVocab {
    /// `true` for SPM, `false` for byte-level BPE.
    pub spm: bool,
    /// Token texts by id (BPE: GPT-2-mapped; SPM: with `▁`).
    pub texts: Vec<String>,
    /// Token types by id.
    pub types: Vec<TokenType>,
    /// SPM scores by id (empty: all 0).
    pub scores: Vec<f32>,
    /// BPE merges in rank order, as text pairs.
    pub merges: Vec<(String, String)>,
    /// Hugging Face `ignore_merges`.
    pub ignore_merges: bool,
    /// SPM `add_space_prefix`.
    pub add_space_prefix: bool,
    /// BOS id.
    pub bos: Option<u32>,
    /// EOS id.
    pub eos: Option<u32>,
    /// UNK id.
    pub unk: Option<u32>,
    /// Whether prompts start with BOS.
    pub add_bos: bool,
    /// Extra stop ids (GGUF `eot_token_id`, `eom_token_id`, extra config EOS ids).
    pub extra_stops: Vec<u32>,
}

/// Parses an SPM byte token `<0xNN>`.
fn parse_byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl RawVocab {
    /// Decodes, resolves merges and writes the blob. `what` names the source in errors.
    ///
    /// # Errors
    /// Empty vocabulary, mismatched array lengths, a malformed `<0xNN>` byte token, ids out
    /// of range.
    pub fn build(&self, what: &str) -> Result<TokenizerBuild> {
        let n = self.texts.len();
        if n == 0 {
            bail!("{what}: empty vocabulary");
        }
        if self.types.len() != n {
            bail!("{what}: {} token types for {n} tokens", self.types.len());
        }
        if !self.scores.is_empty() && self.scores.len() != n {
            bail!("{what}: {} scores for {n} tokens", self.scores.len());
        }
        let inv: HashMap<char, u8> = gpt2_byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let mut tokens = Vec::with_capacity(n);
        for (i, text) in self.texts.iter().enumerate() {
            let ty = self.types[i];
            let score = self.scores.get(i).copied().unwrap_or(0.0);
            let ordinary = matches!(
                ty,
                TokenType::Normal | TokenType::Unused | TokenType::Undefined
            );
            let (bytes, mergeable) = if self.spm {
                match ty {
                    TokenType::Byte => {
                        let b = parse_byte_token(text).with_context(|| {
                            format!("{what}: token {i} {text:?} has type BYTE but is not <0xNN>")
                        })?;
                        (vec![b], false)
                    }
                    _ if ordinary => (
                        text.replace('\u{2581}', " ").into_bytes(),
                        !text.contains(' '),
                    ),
                    _ => (text.clone().into_bytes(), false),
                }
            } else if ordinary {
                match text
                    .chars()
                    .map(|c| inv.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                {
                    Some(b) => (b, true),
                    None => (text.clone().into_bytes(), false),
                }
            } else {
                (text.clone().into_bytes(), false)
            };
            tokens.push(TokenSpec {
                bytes,
                ty,
                score,
                mergeable,
            });
        }

        let mut merges = Vec::new();
        if !self.spm {
            let mut by_text: HashMap<&str, u32> = HashMap::with_capacity(n);
            for (i, t) in self.texts.iter().enumerate() {
                by_text.entry(t.as_str()).or_insert(i as u32);
            }
            let mut joined = String::new();
            for (a, b) in &self.merges {
                joined.clear();
                joined.push_str(a);
                joined.push_str(b);
                // Merges whose parts or result are not tokens can never apply; skip them.
                if let (Some(&l), Some(&r), Some(&res)) = (
                    by_text.get(a.as_str()),
                    by_text.get(b.as_str()),
                    by_text.get(joined.as_str()),
                ) {
                    merges.push([l, r, res]);
                }
            }
        }

        let n32 = u32::try_from(n).context("vocabulary too large")?;
        for (name, id) in [("bos", self.bos), ("eos", self.eos), ("unk", self.unk)] {
            if let Some(id) = id
                && id >= n32
            {
                bail!("{what}: {name} token id {id} is not below the vocabulary size {n}");
            }
        }
        let spec = VocabSpec {
            kind: if self.spm {
                TokenizerKind::Spm
            } else {
                TokenizerKind::Bpe
            },
            tokens,
            merges,
            ignore_merges: self.ignore_merges,
            add_space_prefix: self.add_space_prefix,
            bos: self.bos,
            eos: self.eos,
            unk: self.unk,
        };
        let blob = write_blob(&spec).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;

        let mut stop_ids: Vec<u32> = Vec::new();
        let named = STOP_TOKEN_TEXTS
            .iter()
            .filter_map(|s| self.texts.iter().position(|t| t == s).map(|p| p as u32));
        for id in self
            .eos
            .into_iter()
            .chain(self.extra_stops.iter().copied())
            .chain(named)
        {
            if id < n32 && !stop_ids.contains(&id) && stop_ids.len() < 8 {
                stop_ids.push(id);
            }
        }
        Ok(TokenizerBuild {
            kind: spec.kind,
            n_tokens: n32,
            bos: self.bos,
            eos: self.eos,
            stop_ids,
            add_bos: self.add_bos,
            blob,
        })
    }
}

fn gguf_u32(g: &GgufFile, key: &str) -> Result<Option<u32>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => {
            let x = v
                .as_u64()
                .with_context(|| format!("GGUF {key}: not an integer"))?;
            Ok(Some(u32::try_from(x).with_context(|| {
                format!("GGUF {key}: {x} out of range")
            })?))
        }
    }
}

fn gguf_array<'g>(g: &'g GgufFile, key: &str) -> Result<Option<&'g [Value]>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => Ok(Some(
            v.as_array()
                .with_context(|| format!("GGUF {key}: not an array"))?,
        )),
    }
}

/// The pre-tokenizer names that mean the Llama-3 regex (llama.cpp `llama-vocab.cpp`).
pub const LLAMA3_PRE_NAMES: [&str; 3] = ["llama-bpe", "llama3", "llama-v3"];

/// Builds the tokenizer from GGUF `tokenizer.ggml.*` metadata: `model` (`gpt2` → BPE, which
/// needs `pre` = `llama-bpe`; `llama` → SPM), `tokens`, `token_type`, `merges`, `scores`,
/// `bos_token_id`, `eos_token_id`, `unknown_token_id`, `eot_token_id`, `eom_token_id`,
/// `add_bos_token`, `add_space_prefix`. Defaults as llama.cpp's `llama_vocab::load`: SPM
/// adds BOS and a space prefix, BOS 1 / EOS 2 / UNK 0; Llama-3 BPE adds BOS and ignores
/// merges for whole-word tokens.
///
/// # Errors
/// A missing or mistyped key (named), an unsupported model or pre-tokenizer.
pub fn blob_from_gguf_metadata(g: &GgufFile) -> Result<TokenizerBuild> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .context("GGUF tokenizer.ggml.model: missing")?;
    let spm = match model {
        "gpt2" => {
            let pre = g
                .get("tokenizer.ggml.pre")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if !LLAMA3_PRE_NAMES.contains(&pre) {
                bail!(
                    "GGUF tokenizer.ggml.pre = {pre:?}: only the Llama-3 pre-tokenizer (llama-bpe) is supported"
                );
            }
            false
        }
        "llama" => true,
        other => bail!(
            "GGUF tokenizer.ggml.model = {other:?}: only \"gpt2\" (BPE) and \"llama\" (SPM) are supported"
        ),
    };
    let toks =
        gguf_array(g, "tokenizer.ggml.tokens")?.context("GGUF tokenizer.ggml.tokens: missing")?;
    let texts = toks
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .with_context(|| format!("GGUF tokenizer.ggml.tokens[{i}]: not a string"))
        })
        .collect::<Result<Vec<_>>>()?;
    let types = match gguf_array(g, "tokenizer.ggml.token_type")? {
        None => vec![TokenType::Normal; texts.len()],
        Some(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_i64() {
                Some(t @ 0..=6) => Ok(TokenType::from_u8(t as u8)),
                _ => bail!("GGUF tokenizer.ggml.token_type[{i}]: not a token type (0..=6)"),
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let scores = match gguf_array(g, "tokenizer.ggml.scores")? {
        None => Vec::new(),
        Some(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .map(|x| x as f32)
                    .with_context(|| format!("GGUF tokenizer.ggml.scores[{i}]: not a number"))
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let mut merges = Vec::new();
    if !spm {
        let a = gguf_array(g, "tokenizer.ggml.merges")?
            .context("GGUF tokenizer.ggml.merges: missing (needed for BPE)")?;
        merges.reserve(a.len());
        for (i, v) in a.iter().enumerate() {
            let s = v
                .as_str()
                .with_context(|| format!("GGUF tokenizer.ggml.merges[{i}]: not a string"))?;
            let (l, r) = s
                .split_once(' ')
                .with_context(|| format!("GGUF tokenizer.ggml.merges[{i}] = {s:?}: no space"))?;
            merges.push((l.to_owned(), r.to_owned()));
        }
    }
    let get_bool = |k: &str| g.get(k).and_then(Value::as_bool);
    let extra_stops = [
        gguf_u32(g, "tokenizer.ggml.eot_token_id")?,
        gguf_u32(g, "tokenizer.ggml.eom_token_id")?,
    ];
    let raw = RawVocab {
        spm,
        texts,
        types,
        scores,
        merges,
        ignore_merges: !spm,
        add_space_prefix: spm && get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true),
        bos: gguf_u32(g, "tokenizer.ggml.bos_token_id")?.or(if spm { Some(1) } else { None }),
        eos: gguf_u32(g, "tokenizer.ggml.eos_token_id")?.or(if spm { Some(2) } else { None }),
        unk: gguf_u32(g, "tokenizer.ggml.unknown_token_id")?.or(if spm { Some(0) } else { None }),
        add_bos: get_bool("tokenizer.ggml.add_bos_token").unwrap_or(true),
        extra_stops: extra_stops.into_iter().flatten().collect(),
    };
    raw.build("GGUF tokenizer.ggml.*")
}

/// [`blob_from_gguf_metadata`] for the GGUF file at `path` (errors name the file).
///
/// # Errors
/// I/O and parse errors, and everything [`blob_from_gguf_metadata`] reports.
pub fn blob_from_gguf(path: &Path) -> Result<TokenizerBuild> {
    let g = GgufFile::open(path)?;
    blob_from_gguf_metadata(&g).with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_mapping_is_a_bijection() {
        let m = gpt2_byte_to_char();
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        assert_eq!(m[b'A' as usize], 'A');
        let mut seen = std::collections::HashSet::new();
        assert!(m.iter().all(|c| seen.insert(*c)));
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xZZ>"), None);
        assert_eq!(parse_byte_token("<0x0A"), None);
    }
}
