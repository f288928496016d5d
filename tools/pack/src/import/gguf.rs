//! GGUF (v2/v3) importer: llama.cpp and bitnet.cpp BitNet b1.58 files.
//!
//! Source: ggml `docs/gguf.md`; tensor names and metadata keys from llama.cpp
//! `src/llama-arch.cpp` (`LLM_ARCH_BITNET`, `LLM_ARCH_LLAMA`) and bitnet.cpp's fork
//! (`bitnet-b1.58`, `bitnet-25`); tensor types in [`super::float`] and [`super::ternary`].
//!
//! Supported tensor types: F32, F16, BF16 everywhere; Q8_0 and Q6_K for the embedding and an
//! untied output (dequantized exactly to F32); Q4_0 for those too (kept as `.tern` Q4_0, the
//! same bytes); TQ1_0, TQ2_0 and I2_S (GGML type 36) for the
//! ternary matrices (F32/F16/BF16 ternary matrices are ternarized, see
//! [`super::ternary::ternarize_f32`]).
//!
//! FFN activation rule (also in `tools/pack/README.md`):
//! * arch `bitnet-b1.58` / `bitnet-25` (bitnet.cpp, the 2B4T graph): `Relu2`, from metadata;
//! * arch `llama` (Llama-style 1.58-bit models: Falcon3-1.58bit, Llama3-8B-1.58): `Silu`, from
//!   metadata, no sub-norms;
//! * arch `bitnet` (llama.cpp) does not record the activation. Rule: `tokenizer.ggml.model ==
//!   "gpt2"` (byte-level BPE, the Llama-3 vocabulary lineage of 2B4T) → `Relu2`; `"llama"`
//!   (SentencePiece, the 1bitLLM lineage) → `Silu`; recorded as `FfnActSource::Rule`;
//! * `--ffn-act` overrides all of these (`FfnActSource::Override`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use tern_core::config::{FfnAct, ModelConfig};
use tern_core::format::writer::OwnedModel;
use tern_kernels::layout::Layout;

use super::{
    ImportProgress, Raw, Wanted, convert, decide_act, default_plan, finish, float, provenance,
    ternary, tokenizer_parts,
};
use crate::gguf::{GgufFile, TensorInfo, Value, ggml_type as gt};
use crate::pack::PackOptions;

/// Import a GGUF file (memory-mapped).
///
/// # Errors
/// See [`super::import_path`]; every message starts with the file path.
pub fn import_gguf(
    path: &Path,
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let map = super::map_file(path)?;
    import_gguf_bytes(path, &map, opts, progress).with_context(|| format!("{}", path.display()))
}

/// Import GGUF bytes (the whole file); `path` is used for provenance only.
///
/// # Errors
/// See [`super::import_path`].
pub fn import_gguf_bytes(
    path: &Path,
    bytes: &[u8],
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let g = GgufFile::parse(bytes)?;
    let by_name: HashMap<&str, &TensorInfo> =
        g.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    // Bounds-check every tensor whose type we know, used or not.
    for t in &g.tensors {
        if let Ok(Some(n)) = byte_size(t) {
            data_range(&g, t, n, bytes.len())?;
        }
    }
    let config = config_from_metadata(&g, &by_name, opts)?;
    let wanted = super::wanted_tensors(&config);
    let strict_llama = arch(&g)? == "llama";
    let mut tensors = Vec::with_capacity(wanted.len());
    let mut ternary_types: Vec<&'static str> = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let t = by_name
            .get(w.name.as_str())
            .ok_or_else(|| anyhow!("missing tensor {}", w.name))?;
        let raw = fetch(&g, t, w, bytes, strict_llama)?;
        if w.is_ternary() {
            let name = gt::name(t.ggml_type);
            if !ternary_types.contains(&name) {
                ternary_types.push(name);
            }
        }
        tensors.push(convert(w, raw)?);
        progress(ImportProgress {
            tensor: &w.name,
            done: i + 1,
            total: wanted.len(),
        });
    }
    let format = format!("gguf:{}", ternary_types.join("+"));
    let tok = tokenizer_parts(
        crate::tokenizer::blob_from_gguf_metadata(&with_pre_tokenizer(&g)).context("tokenizer")?,
    )?;
    let plan = default_plan(&config, opts)?;
    let prov = provenance(path, path, &format, opts)?;
    finish(config, tok, plan, prov, tensors)
}

/// bitnet.cpp's converter (`convert-ms-to-gguf-bitnet.py`, used for the official 2B4T
/// `ggml-model-i2_s.gguf`) writes no `tokenizer.ggml.pre`, so llama.cpp would fall back to its
/// "default" pre-tokenizer, which is not what the model was trained with (transformers uses the
/// Llama-3 tokenizer; see `shared/fixtures/README.md`: bitnet.cpp's ids differ on 3 of 5
/// prompts). Rule: a `gpt2` vocabulary without `pre` that has `<|begin_of_text|>` is Llama-3's,
/// so `pre = "llama-bpe"` is assumed. Other files pass through unchanged.
fn with_pre_tokenizer(g: &GgufFile) -> Cow<'_, GgufFile> {
    let is_gpt2 = g.get("tokenizer.ggml.model").and_then(Value::as_str) == Some("gpt2");
    let has_pre = g.get("tokenizer.ggml.pre").is_some();
    let llama3 = g
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|v| v.as_str() == Some("<|begin_of_text|>")));
    if !is_gpt2 || has_pre || !llama3 {
        return Cow::Borrowed(g);
    }
    let mut g = g.clone();
    g.metadata
        .push(("tokenizer.ggml.pre".into(), Value::Str("llama-bpe".into())));
    Cow::Owned(g)
}

fn arch(g: &GgufFile) -> Result<&str> {
    g.get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("metadata general.architecture is missing or not a string"))
}

/// `(rows, cols)` of a GGUF tensor: `(ne[1] * ne[2] * ..., ne[0])`; 1-D tensors are `(1, ne[0])`.
fn shape_of(t: &TensorInfo) -> Result<(u64, u64)> {
    let n = t
        .n_elems()
        .ok_or_else(|| anyhow!("tensor {}: dims {:?} overflow", t.name, t.dims))?;
    let cols = t.dims[0];
    let rows = n.checked_div(cols).unwrap_or(0);
    if rows > u32::MAX as u64 || cols > u32::MAX as u64 {
        bail!(
            "tensor {}: dims {:?} exceed the supported range",
            t.name,
            t.dims
        );
    }
    Ok((rows, cols))
}

/// Byte size of a tensor's data: `Ok(None)` for types this importer does not know.
fn byte_size(t: &TensorInfo) -> Result<Option<u64>> {
    let n = t
        .n_elems()
        .ok_or_else(|| anyhow!("tensor {}: dims {:?} overflow", t.name, t.dims))?;
    let ne0 = t.dims[0];
    let blocks = |elems: u64, bytes: u64| -> Result<u64> {
        if !ne0.is_multiple_of(elems) {
            bail!(
                "tensor {}: row length {ne0} is not a multiple of the {}-value block of {}",
                t.name,
                elems,
                gt::name(t.ggml_type)
            );
        }
        (n / elems)
            .checked_mul(bytes)
            .ok_or_else(|| anyhow!("tensor {}: byte size overflows", t.name))
    };
    let mul = |k: u64| {
        n.checked_mul(k)
            .ok_or_else(|| anyhow!("tensor {}: byte size overflows", t.name))
    };
    Ok(Some(match t.ggml_type {
        gt::F32 => mul(4)?,
        gt::F16 | gt::BF16 => mul(2)?,
        gt::Q4_0 => blocks(32, 18)?,
        gt::Q8_0 => blocks(32, 34)?,
        gt::Q6_K => blocks(256, 210)?,
        gt::TQ1_0 => blocks(256, 54)?,
        gt::TQ2_0 => blocks(256, 66)?,
        gt::I2_S => {
            if n % 128 != 0 {
                bail!(
                    "tensor {}: {n} values is not a multiple of the 128-value I2_S block",
                    t.name
                );
            }
            n / 4 + 32
        }
        _ => return Ok(None),
    }))
}

/// Absolute byte range of a tensor's data, checked against the file length.
fn data_range(
    g: &GgufFile,
    t: &TensorInfo,
    size: u64,
    file_len: usize,
) -> Result<std::ops::Range<usize>> {
    let start = g.data_offset.checked_add(t.offset);
    let end = start.and_then(|s| s.checked_add(size));
    match (start, end) {
        (Some(s), Some(e)) if e <= file_len as u64 => Ok(s as usize..e as usize),
        _ => bail!(
            "tensor {}: data at offset {} + {} ({} bytes of {}) lies past the end of the file ({file_len} bytes)",
            t.name,
            g.data_offset,
            t.offset,
            size,
            gt::name(t.ggml_type)
        ),
    }
}

fn fetch<'a>(
    g: &GgufFile,
    t: &TensorInfo,
    w: &Wanted,
    bytes: &'a [u8],
    strict_llama: bool,
) -> Result<Raw<'a>> {
    let (rows, cols) = shape_of(t)?;
    if (rows, cols) != (w.shape.0 as u64, w.shape.1 as u64) {
        bail!(
            "tensor {}: shape (rows, cols) = ({rows}, {cols}) (ggml dims {:?}) disagrees with the config, \
             which implies {:?}",
            t.name,
            t.dims,
            w.shape
        );
    }
    let size = byte_size(t)?.ok_or_else(|| {
        anyhow!(
            "tensor {}: unsupported ggml type {} ({})",
            t.name,
            t.ggml_type,
            gt::name(t.ggml_type)
        )
    })?;
    let data = &bytes[data_range(g, t, size, bytes.len())?];
    let n = (rows * cols) as usize;
    let ctx = || format!("tensor {} ({})", t.name, gt::name(t.ggml_type));
    let float = |layout| Raw::Float {
        layout,
        bytes: Cow::Borrowed(data),
    };
    let raw = match (w.is_ternary(), t.ggml_type) {
        (_, gt::F32) => float(Layout::F32),
        (_, gt::F16) => float(Layout::F16),
        (_, gt::BF16) => float(Layout::Bf16),
        (false, gt::Q8_0) => Raw::Float {
            layout: Layout::F32,
            bytes: float::f32_bytes(&float::dequant_q8_0(data).with_context(ctx)?).into(),
        },
        // Byte-identical to `.tern` Q4_0: kept (a norm in Q4_0 is dequantized by `convert`).
        (false, gt::Q4_0) => float(Layout::Q4_0),
        (false, gt::Q6_K) => Raw::Float {
            layout: Layout::F32,
            bytes: float::f32_bytes(&float::dequant_q6_k(data).with_context(ctx)?).into(),
        },
        (true, gt::TQ1_0) => Raw::Ternary(ternary::decode_tq1_0(data, n).with_context(ctx)?),
        (true, gt::TQ2_0) => Raw::Ternary(ternary::decode_tq2_0(data, n).with_context(ctx)?),
        (true, gt::I2_S) => {
            let (bytes, weight_scale) =
                ternary::decode_i2_s_t2(data, rows as usize, cols as usize).with_context(ctx)?;
            Raw::T2 {
                bytes,
                weight_scale,
            }
        }
        (true, ty) => bail!(
            "tensor {}: ggml type {ty} ({}) cannot hold a ternary weight",
            t.name,
            gt::name(ty)
        ),
        (false, ty) => bail!(
            "tensor {}: ggml type {ty} ({}) is not supported for this tensor",
            t.name,
            gt::name(ty)
        ),
    };
    // A `llama` GGUF is only a 1.58-bit model if its float matrices already hold T * alpha.
    if let (true, true, Raw::Float { layout, bytes }) = (strict_llama, w.is_ternary(), &raw) {
        let v = float::to_f32(*layout, bytes).with_context(ctx)?;
        let t3 = ternary::exact_ternary(&v).ok_or_else(|| {
            anyhow!("tensor {}: arch llama with float weights that are not ternary (not a 1.58-bit model)", t.name)
        })?;
        return Ok(Raw::Ternary(t3));
    }
    Ok(raw)
}

fn config_from_metadata(
    g: &GgufFile,
    by_name: &HashMap<&str, &TensorInfo>,
    opts: &PackOptions,
) -> Result<ModelConfig> {
    let arch = arch(g)?;
    let key = |k: &str| format!("{arch}.{k}");
    let get_u32 = |k: &str| -> Result<Option<u32>> {
        let k = key(k);
        match g.get(&k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| anyhow!("metadata {k} = {v:?} is not a valid count")),
        }
    };
    let req_u32 = |k: &str| get_u32(k)?.ok_or_else(|| anyhow!("metadata {} is missing", key(k)));
    let get_f32 = |k: &str| -> Result<Option<f32>> {
        let k = key(k);
        match g.get(&k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| anyhow!("metadata {k} = {v:?} is not a number")),
        }
    };
    let tok_model = g.get("tokenizer.ggml.model").and_then(Value::as_str);
    let (meta_act, rule_act, sub_norms) = match arch {
        "bitnet-b1.58" | "bitnet-25" => (Some(FfnAct::Relu2), None, true),
        "llama" => (Some(FfnAct::Silu), None, false),
        "bitnet" => {
            let rule = match tok_model {
                Some("gpt2") => Some(FfnAct::Relu2),
                Some("llama") => Some(FfnAct::Silu),
                _ => None,
            };
            (None, rule, true)
        }
        other => bail!(
            "unsupported architecture {other:?} (expected bitnet, bitnet-b1.58, bitnet-25 or llama)"
        ),
    };
    let why = format!(
        "arch {arch:?} does not record it and tokenizer.ggml.model is {tok_model:?} (not gpt2 or llama)"
    );
    let (ffn_act, ffn_act_source) = decide_act(opts, meta_act, rule_act, &why)?;
    let dim = req_u32("embedding_length")?;
    let n_heads = req_u32("attention.head_count")?;
    if n_heads == 0 {
        bail!("metadata {} is 0", key("attention.head_count"));
    }
    let head_dim = match get_u32("attention.key_length")? {
        Some(h) => h,
        None if dim % n_heads == 0 => dim / n_heads,
        None => bail!(
            "metadata {} = {dim} is not a multiple of the head count {n_heads}",
            key("embedding_length")
        ),
    };
    let emb = by_name
        .get("token_embd.weight")
        .ok_or_else(|| anyhow!("missing tensor token_embd.weight"))?;
    let (vocab, emb_cols) = shape_of(emb)?;
    if emb_cols != dim as u64 {
        bail!(
            "tensor token_embd.weight: {emb_cols} columns (ggml dims {:?}) disagrees with {} = {dim}",
            emb.dims,
            key("embedding_length")
        );
    }
    let config = ModelConfig {
        ffn_act,
        ffn_act_source,
        sub_norms,
        tied_embedding: !by_name.contains_key("output.weight"),
        dim,
        hidden_dim: req_u32("feed_forward_length")?,
        n_layers: req_u32("block_count")?,
        n_heads,
        n_kv_heads: get_u32("attention.head_count_kv")?.unwrap_or(n_heads),
        head_dim,
        vocab_size: u32::try_from(vocab)
            .map_err(|_| anyhow!("token_embd.weight: {vocab} rows is too many"))?,
        max_ctx: req_u32("context_length")?,
        rope_theta: get_f32("rope.freq_base")?.unwrap_or(10000.0),
        norm_eps: get_f32("attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
            anyhow!(
                "metadata {} is missing",
                key("attention.layer_norm_rms_epsilon")
            )
        })?,
    };
    config
        .validate()
        .map_err(|e| anyhow!("model config from {arch}.* metadata: {e}"))?;
    Ok(config)
}
