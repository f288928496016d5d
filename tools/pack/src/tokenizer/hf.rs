//! Hugging Face `tokenizer.json` (+ `tokenizer_config.json`, `config.json`) import.
//!
//! Supported: byte-level BPE models (`model.type = "BPE"`, a `ByteLevel` pre-tokenizer) whose
//! `Split` pre-tokenizer uses exactly the Llama-3 pattern [`LLAMA3_PATTERN`]. Token types:
//! added tokens with `special: true` are control tokens, other added tokens user-defined,
//! the rest normal (as llama.cpp's `convert_hf_to_gguf.py` assigns them).
//!
//! BOS / EOS / `add_bos`: `tokenizer_config.json` `bos_token` / `eos_token` (a string or
//! `{"content": …}`) and `add_bos_token` first; else a `TemplateProcessing` post-processor
//! whose `single` template starts with a special token (Llama-3: `<|begin_of_text|>`) means
//! "add BOS" with that token; else `config.json` `bos_token_id` / `eos_token_id` (an id or a
//! list, whose other entries become stop ids).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;
use tern_core::tokenizer::TokenType;

use super::{RawVocab, TokenizerBuild};

/// The Llama-3 pre-tokenizer pattern, as Meta's `tokenizer.json` spells it.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn read_json(path: &Path) -> Result<Json> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid JSON", path.display()))
}

fn read_json_opt(path: &Path) -> Result<Option<Json>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Every pre-tokenizer in `v`, flattening `Sequence`s.
fn pre_tokenizers(v: &Json, out: &mut Vec<Json>) {
    if let Some(list) = v.get("pretokenizers").and_then(Json::as_array) {
        for p in list {
            pre_tokenizers(p, out);
        }
    } else if !v.is_null() {
        out.push(v.clone());
    }
}

/// The `(name, id)` of the special token a `TemplateProcessing` `single` template starts with.
fn template_bos(pp: &Json) -> Option<(String, Option<u32>)> {
    let tp = if pp.get("type").and_then(Json::as_str) == Some("Sequence") {
        pp.get("processors")?
            .as_array()?
            .iter()
            .find(|p| p.get("type").and_then(Json::as_str) == Some("TemplateProcessing"))?
    } else if pp.get("type").and_then(Json::as_str) == Some("TemplateProcessing") {
        pp
    } else {
        return None;
    };
    let name = tp
        .get("single")?
        .as_array()?
        .first()?
        .get("SpecialToken")?
        .get("id")?
        .as_str()?
        .to_owned();
    let id = tp
        .get("special_tokens")
        .and_then(|s| s.get(&name))
        .and_then(|s| s.get("ids"))
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(Json::as_u64)
        .and_then(|x| u32::try_from(x).ok());
    Some((name, id))
}

/// A `tokenizer_config.json` token field: a string, or an object with `content`.
fn config_token(cfg: &Json, key: &str) -> Option<String> {
    let v = cfg.get(key)?;
    v.as_str()
        .or_else(|| v.get("content").and_then(Json::as_str))
        .map(str::to_owned)
}

/// `config.json` `*_token_id`: an id or a list of ids.
fn config_ids(cfg: &Json, key: &str) -> Vec<u32> {
    match cfg.get(key) {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(Json::as_u64)
            .filter_map(|x| u32::try_from(x).ok())
            .collect(),
        Some(v) => v
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

/// Builds the tokenizer from the Hugging Face files in `dir`: `tokenizer.json` (required),
/// `tokenizer_config.json` and `config.json` (optional).
///
/// # Errors
/// Missing or invalid `tokenizer.json`, an unsupported model or pre-tokenizer, malformed
/// fields; messages name the file and the field.
pub fn blob_from_tokenizer_json(dir: &Path) -> Result<TokenizerBuild> {
    let tj_path = dir.join("tokenizer.json");
    let tj = read_json(&tj_path)?;
    let file = tj_path.display().to_string();
    let tcfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let cfg = read_json_opt(&dir.join("config.json"))?.unwrap_or(Json::Null);

    let model = tj
        .get("model")
        .with_context(|| format!("{file}: no `model`"))?;
    let mtype = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
    if mtype != "BPE" {
        bail!("{file}: model.type = {mtype:?}; only byte-level BPE is supported");
    }
    let mut pres = Vec::new();
    pre_tokenizers(tj.get("pre_tokenizer").unwrap_or(&Json::Null), &mut pres);
    if !pres
        .iter()
        .any(|p| p.get("type").and_then(Json::as_str) == Some("ByteLevel"))
    {
        bail!("{file}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
    }
    let pattern = pres
        .iter()
        .find(|p| p.get("type").and_then(Json::as_str) == Some("Split"))
        .and_then(|p| p.get("pattern")?.get("Regex")?.as_str());
    if pattern != Some(LLAMA3_PATTERN) {
        bail!(
            "{file}: pre_tokenizer Split pattern {pattern:?} is not the Llama-3 pattern (the only one supported)"
        );
    }

    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .with_context(|| format!("{file}: model.vocab is not an object"))?;
    let added = tj
        .get("added_tokens")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entries: Vec<(u32, String, TokenType)> = Vec::with_capacity(vocab.len() + added.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .with_context(|| format!("{file}: model.vocab[{text:?}] is not an id"))?;
        entries.push((id, text.clone(), TokenType::Normal));
    }
    for (i, a) in added.iter().enumerate() {
        let id = a
            .get("id")
            .and_then(Json::as_u64)
            .and_then(|x| u32::try_from(x).ok())
            .with_context(|| format!("{file}: added_tokens[{i}].id missing"))?;
        let text = a
            .get("content")
            .and_then(Json::as_str)
            .with_context(|| format!("{file}: added_tokens[{i}].content missing"))?;
        let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
        entries.push((
            id,
            text.to_owned(),
            if special {
                TokenType::Control
            } else {
                TokenType::UserDefined
            },
        ));
    }
    let n = entries
        .iter()
        .map(|e| e.0 as usize + 1)
        .max()
        .with_context(|| format!("{file}: empty vocabulary"))?;
    if n > entries.len() * 2 + 1024 {
        bail!(
            "{file}: token ids up to {} for {} tokens",
            n - 1,
            entries.len()
        );
    }
    // Holes become empty unused tokens; an added token overrides a vocab entry with its id.
    let mut texts = vec![String::new(); n];
    let mut types = vec![TokenType::Unused; n];
    for (id, text, ty) in entries {
        texts[id as usize] = text;
        types[id as usize] = ty;
    }

    let mut merges = Vec::new();
    if let Some(ms) = model.get("merges").and_then(Json::as_array) {
        merges.reserve(ms.len());
        for (i, m) in ms.iter().enumerate() {
            let pair = match m {
                Json::String(s) => s.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())),
                Json::Array(a) if a.len() == 2 => a[0]
                    .as_str()
                    .zip(a[1].as_str())
                    .map(|(a, b)| (a.to_owned(), b.to_owned())),
                _ => None,
            };
            merges.push(pair.with_context(|| format!("{file}: model.merges[{i}] is not a pair"))?);
        }
    }

    let find = |name: &str| texts.iter().position(|t| t == name).map(|p| p as u32);
    let tmpl = tj.get("post_processor").and_then(template_bos);
    let bos =
        match config_token(&tcfg, "bos_token") {
            Some(name) => Some(find(&name).with_context(|| {
                format!("tokenizer_config.json bos_token {name:?} is not a token")
            })?),
            None => tmpl
                .as_ref()
                .and_then(|(name, id)| id.or_else(|| find(name)))
                .or(config_ids(&cfg, "bos_token_id").first().copied()),
        };
    let add_bos = tcfg
        .get("add_bos_token")
        .and_then(Json::as_bool)
        .unwrap_or(tmpl.is_some());
    let cfg_eos = config_ids(&cfg, "eos_token_id");
    let eos =
        match config_token(&tcfg, "eos_token") {
            Some(name) => Some(find(&name).with_context(|| {
                format!("tokenizer_config.json eos_token {name:?} is not a token")
            })?),
            None => cfg_eos.first().copied(),
        };
    let raw = RawVocab {
        spm: false,
        texts,
        types,
        scores: Vec::new(),
        merges,
        ignore_merges: model
            .get("ignore_merges")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        add_space_prefix: false,
        bos,
        eos,
        unk: None,
        add_bos,
        extra_stops: cfg_eos,
    };
    raw.build(&file)
}
