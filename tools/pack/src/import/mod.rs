//! Importers: the files users download (GGUF, HF safetensors directories), or an existing
//! `.tern` file to re-pack, become an [`OwnedModel`] ready for
//! [`crate::pack::write_tern_atomic`].
//!
//! Every importer follows the same conventions (`core/FORMAT.md`):
//! * ternary matrices → `T2_128`, `weight_scale` = BitLinear's divisor (`1 / alpha`), then
//!   [`repack_ternary`] to `T1_160` when `--ternary t1_160` asks for it;
//! * norms → F32 `(1, n)`, `weight_scale` 1.0;
//! * embedding / untied output kept as F32/F16/BF16 (bit-exact) or GGUF Q4_0 (byte-identical
//!   blocks), or dequantized exactly to F32 (Q8_0, Q6_K); then `--lm-head` may quantize the LM
//!   head ([`apply_lm_head`]);
//! * tensors in canonical order (`token_embd`, `output_norm`, `output` if untied, then per
//!   layer [`LayerTensor::ALL`]), named like llama.cpp's GGUF tensors.
//!
//! Error messages name the file and the tensor or metadata field.

pub mod float;
pub mod gguf;
pub mod safetensors;
pub mod tern;
pub mod ternary;

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use tern_core::config::{FfnAct, FfnActSource, ModelConfig};
use tern_core::format::writer::{OwnedModel, OwnedProvenance, OwnedTensor};
use tern_core::format::{DefaultPlan, LayerTensor, TensorRole, TokenizerInfo};
use tern_core::plan::KvDtype;
use tern_kernels::layout::{Layout, TernaryLayout, t2_row_bytes};

use crate::pack::PackOptions;

/// Progress of an import, reported once per converted tensor.
#[derive(Clone, Copy, Debug)]
pub struct ImportProgress<'a> {
    /// The `.tern` name of the tensor just converted (e.g. `blk.3.ffn_up.weight`).
    pub tensor: &'a str,
    /// Tensors converted so far, including this one.
    pub done: usize,
    /// Tensors to convert in total.
    pub total: usize,
}

/// Import a model: a GGUF file, a Hugging Face safetensors directory (`config.json` +
/// `model.safetensors` or shards listed in `model.safetensors.index.json`), or a `.tern` file
/// (re-packed, see [`tern`]). Also accepts the path of a `.safetensors` file or `config.json`
/// inside such a directory.
///
/// `progress` is called after each tensor.
///
/// # Errors
/// Unreadable or malformed input, unsupported tensor types, missing tensors, shapes that
/// disagree with the config; each message names the file and the tensor or field.
pub fn import_path(
    path: &Path,
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let mut m = import_source(path, opts, progress)?;
    apply_lm_head(&mut m, opts).with_context(|| format!("{}", path.display()))?;
    repack_ternary(&mut m, opts.ternary);
    Ok(m)
}

/// Re-encode every ternary tensor of `m` in `layout` (the importers write `T2_128`; this is
/// the named step that turns them into `T1_160` for `--ternary t1_160`). The ternary values
/// and `weight_scale`s are unchanged, so the model computes bit-identical logits. Tensors run
/// in parallel, one per thread at a time.
pub fn repack_ternary(m: &mut OwnedModel, layout: TernaryLayout) {
    let work = std::sync::Mutex::new(
        m.tensors
            .iter_mut()
            .filter(|t| TernaryLayout::from_layout(t.layout).is_some_and(|from| from != layout)),
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = match work.lock() {
                        Ok(mut it) => it.next(),
                        Err(_) => None,
                    };
                    let Some(t) = next else { break };
                    repack_tensor(t, layout);
                }
            });
        }
    });
}

/// Re-encode one ternary tensor in `layout` (row by row: decode to -1/0/+1, encode); other
/// tensors are left alone.
pub fn repack_tensor(t: &mut OwnedTensor, layout: TernaryLayout) {
    let Some(from) = TernaryLayout::from_layout(t.layout) else {
        return;
    };
    let (rows, cols) = (t.rows as usize, t.cols as usize);
    let (rb_in, rb_out) = (from.row_bytes(cols), layout.row_bytes(cols));
    let mut data = vec![0u8; rows * rb_out];
    let mut w = vec![0i8; cols];
    if rb_out > 0 {
        for (src, dst) in t
            .data
            .chunks_exact(rb_in)
            .zip(data.chunks_exact_mut(rb_out))
        {
            from.decode_row(src, &mut w);
            layout.encode_row(&w, dst);
        }
    }
    t.data = data;
    t.layout = layout.layout();
}

/// Convert the LM head (the untied `output`, else the tied `token_embd`) to the layout
/// `opts.lm_head` asks for: dequantized exactly to f32 ([`float::tensor_to_f32`]), then
/// quantized ([`float::quantize_q8_0`], [`float::quantize_q4_0`], then for `Q4_0_R8`
/// interleaved) or rounded to F16 and interleaved ([`float::f16_r8_from_f32`]; exact from an
/// F16 source). A head already in that layout is left as it is, and Q4_0 becomes `Q4_0_R8`
/// (or back) by reordering its blocks: never requantized.
///
/// # Errors
/// A head whose row length is not a multiple of 32 (Q8_0 / Q4_0 blocks); for `F16_R8` and
/// `Q4_0_R8`, rows not a multiple of 8; for `F16_R8`, a value beyond F16's range.
pub fn apply_lm_head(m: &mut OwnedModel, opts: &PackOptions) -> Result<()> {
    let Some(want) = opts.lm_head.layout() else {
        return Ok(());
    };
    let role = if m.config.tied_embedding {
        TensorRole::TokenEmbd
    } else {
        TensorRole::Output
    };
    let Some(t) = m.tensors.iter_mut().find(|t| t.role == role) else {
        bail!("no LM head tensor to quantize");
    };
    if t.layout != want {
        let (rows, cols) = (t.rows as usize, t.cols as usize);
        let ctx = || format!("tensor {}: --lm-head {}", t.name, opts.lm_head.name());
        t.data = match (t.layout, want) {
            // the same Q4_0 blocks in the other order: exact, never requantized
            (Layout::Q4_0, Layout::Q4_0R8) => {
                float::q4_0_r8_from_q4_0(&t.data, rows, cols).with_context(ctx)?
            }
            (Layout::Q4_0R8, Layout::Q4_0) => {
                float::q4_0_from_r8(&t.data, rows, cols).with_context(ctx)?
            }
            _ => {
                let v = float::tensor_to_f32(t.layout, &t.data, rows, cols)
                    .with_context(|| t.name.clone())?;
                match want {
                    Layout::Q4_0 => float::quantize_q4_0(&v).with_context(ctx)?,
                    Layout::Q4_0R8 => float::quantize_q4_0(&v)
                        .and_then(|q| float::q4_0_r8_from_q4_0(&q, rows, cols))
                        .with_context(ctx)?,
                    Layout::F16R8 => float::f16_r8_from_f32(&v, rows, cols).with_context(ctx)?,
                    _ => float::quantize_q8_0(&v).with_context(ctx)?,
                }
            }
        };
        t.layout = want;
    }
    Ok(())
}

fn import_source(
    path: &Path,
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    if path.is_dir() {
        return safetensors::import_hf_dir(path, opts, progress);
    }
    let mut magic = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if n >= 4 && &magic[..4] == b"GGUF" {
        return gguf::import_gguf(path, opts, progress);
    }
    if n == 8 && magic == tern_core::format::MAGIC {
        return tern::import_tern(path, opts, progress);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if (name.ends_with(".safetensors") || name == "config.json" || name.ends_with(".index.json"))
        && let Some(dir) = path.parent()
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        return safetensors::import_hf_dir(dir, opts, progress);
    }
    bail!(
        "{}: not a GGUF file (magic {:?}, expected \"GGUF\"), a .tern file nor a Hugging Face safetensors directory",
        path.display(),
        &magic[..n.min(4)]
    )
}

/// Map a whole input file read-only.
///
/// # Errors
/// I/O errors, with the path.
pub fn map_file(path: &Path) -> Result<tern_mmap::Mmap> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    // Importers bounds-check every access against the map's length.
    tern_mmap::map(&file).with_context(|| format!("{}: cannot map", path.display()))
}

/// The `.tern` name of a tensor: llama.cpp's GGUF names.
pub fn tern_name(role: TensorRole, layer: u16) -> String {
    match role {
        TensorRole::TokenEmbd => "token_embd.weight".into(),
        TensorRole::OutputNorm => "output_norm.weight".into(),
        TensorRole::Output => "output.weight".into(),
        TensorRole::Layer(lt) => format!("blk.{layer}.{}.weight", lt.gguf_name()),
    }
}

/// One tensor the graph needs: role, layer, `.tern` name and expected `(rows, cols)`.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// Role.
    pub role: TensorRole,
    /// Layer (0 for globals).
    pub layer: u16,
    /// `.tern` (GGUF-style) name.
    pub name: String,
    /// Expected `(rows, cols)`.
    pub shape: (u32, u32),
}

impl Wanted {
    /// Whether the role is a ternary BitLinear weight.
    pub fn is_ternary(&self) -> bool {
        matches!(self.role, TensorRole::Layer(lt) if lt.is_ternary())
    }
    /// Whether the role is an RMSNorm weight.
    pub fn is_norm(&self) -> bool {
        matches!(self.role, TensorRole::OutputNorm)
            || matches!(self.role, TensorRole::Layer(lt) if lt.is_norm())
    }
}

/// Every tensor config `c` needs, in canonical order.
pub fn wanted_tensors(c: &ModelConfig) -> Vec<Wanted> {
    let mut v = Vec::new();
    let mut push = |role, layer, shape| {
        v.push(Wanted {
            role,
            layer,
            name: tern_name(role, layer),
            shape,
        })
    };
    push(TensorRole::TokenEmbd, 0, (c.vocab_size, c.dim));
    push(TensorRole::OutputNorm, 0, (1, c.dim));
    if !c.tied_embedding {
        push(TensorRole::Output, 0, (c.vocab_size, c.dim));
    }
    for l in 0..c.n_layers as u16 {
        for lt in LayerTensor::ALL {
            if matches!(lt, LayerTensor::AttnSubNorm | LayerTensor::FfnSubNorm) && !c.sub_norms {
                continue;
            }
            push(TensorRole::Layer(lt), l, lt.shape(c));
        }
    }
    v
}

/// A source tensor as an importer hands it over.
#[derive(Debug)]
pub enum Raw<'a> {
    /// Plain float elements (F32, F16 or BF16 layout), or Q4_0 blocks, row-major `(rows, cols)`.
    Float {
        /// Element or block layout.
        layout: Layout,
        /// Little-endian element bytes.
        bytes: Cow<'a, [u8]>,
    },
    /// Ternary codes `(rows * cols,)` and their `weight_scale` divisor.
    Ternary(ternary::Ternary),
    /// Already `T2_128`-encoded rows and their `weight_scale` divisor.
    T2 {
        /// `rows * t2_row_bytes(cols)` bytes.
        bytes: Vec<u8>,
        /// Divisor.
        weight_scale: f32,
    },
}

/// Convert one source tensor to its `.tern` form (see the module docs for the conventions).
///
/// # Errors
/// Float data of the wrong length, non-finite ternary weights; messages name `w.name`.
pub fn convert(w: &Wanted, raw: Raw<'_>) -> Result<OwnedTensor> {
    let (rows, cols) = (w.shape.0 as usize, w.shape.1 as usize);
    let mk = |layout, weight_scale, data| OwnedTensor {
        name: w.name.clone(),
        role: w.role,
        layer: w.layer,
        layout,
        rows: w.shape.0,
        cols: w.shape.1,
        weight_scale,
        data,
    };
    if w.is_ternary() {
        let (data, ws) = match raw {
            Raw::Float { layout, bytes } => {
                let v = float::to_f32(layout, &bytes).with_context(|| w.name.clone())?;
                let t = ternary::ternarize_f32(&v).with_context(|| w.name.clone())?;
                (ternary::encode_t2(&t.codes, rows, cols), t.weight_scale)
            }
            Raw::Ternary(t) => (ternary::encode_t2(&t.codes, rows, cols), t.weight_scale),
            Raw::T2 {
                bytes,
                weight_scale,
            } => (bytes, weight_scale),
        };
        if data.len() != rows * t2_row_bytes(cols) {
            bail!(
                "tensor {}: ternary data of {} bytes for shape {:?}",
                w.name,
                data.len(),
                w.shape
            );
        }
        if !(ws.is_finite() && ws > 0.0) {
            bail!(
                "tensor {}: weight_scale {ws} is not finite and positive",
                w.name
            );
        }
        return Ok(mk(Layout::T2_128, ws, data));
    }
    let Raw::Float { layout, bytes } = raw else {
        bail!(
            "tensor {}: ternary data where a float tensor is expected",
            w.name
        );
    };
    if Some(bytes.len()) != layout.row_bytes(cols).and_then(|rb| rb.checked_mul(rows)) {
        bail!(
            "tensor {}: {} bytes of {:?} for shape {:?}",
            w.name,
            bytes.len(),
            layout,
            w.shape
        );
    }
    if w.is_norm() {
        let v = float::to_f32(layout, &bytes).with_context(|| w.name.clone())?;
        return Ok(mk(Layout::F32, 1.0, float::f32_bytes(&v)));
    }
    Ok(mk(layout, 1.0, bytes.into_owned()))
}

/// Decide the FFN activation: `--ffn-act` wins ([`FfnActSource::Override`]), else what the
/// source states ([`FfnActSource::Metadata`]), else the rule's answer ([`FfnActSource::Rule`]).
///
/// # Errors
/// None of the three gives an answer; `what` explains why.
pub fn decide_act(
    opts: &PackOptions,
    metadata: Option<FfnAct>,
    rule: Option<FfnAct>,
    what: &str,
) -> Result<(FfnAct, FfnActSource)> {
    if let Some(a) = opts.ffn_act {
        return Ok((a, FfnActSource::Override));
    }
    if let Some(a) = metadata {
        return Ok((a, FfnActSource::Metadata));
    }
    if let Some(a) = rule {
        return Ok((a, FfnActSource::Rule));
    }
    bail!("cannot tell the FFN activation: {what}; pass --ffn-act relu2|silu")
}

/// The default plan: `ctx_len = min(opts.ctx_len or 4096, max_ctx)`, f32 KV cache.
///
/// # Errors
/// `--ctx 0`.
pub fn default_plan(c: &ModelConfig, opts: &PackOptions) -> Result<DefaultPlan> {
    let ctx = opts.ctx_len.unwrap_or(4096);
    if ctx == 0 {
        bail!("--ctx must be at least 1 token");
    }
    Ok(DefaultPlan {
        ctx_len: ctx.min(c.max_ctx),
        kv: KvDtype::F32,
    })
}

/// The options string recorded in the provenance (`--ffn-act relu2 --ctx 2048`, or empty).
pub fn options_string(opts: &PackOptions) -> String {
    let mut v = Vec::new();
    if let Some(a) = opts.ffn_act {
        v.push(format!("--ffn-act {}", act_name(a)));
    }
    if let Some(c) = opts.ctx_len {
        v.push(format!("--ctx {c}"));
    }
    if opts.lm_head != crate::pack::LmHead::Keep {
        v.push(format!("--lm-head {}", opts.lm_head.name()));
    }
    if opts.ternary != TernaryLayout::T2_128 {
        v.push(format!("--ternary {}", opts.ternary.cli_name()));
    }
    v.join(" ")
}

/// Lower-case CLI name of an activation (`relu2`, `silu`).
pub fn act_name(a: FfnAct) -> &'static str {
    match a {
        FfnAct::Relu2 => "relu2",
        FfnAct::Silu => "silu",
    }
}

/// The packer string recorded in the provenance: `tern-pack <version>`.
pub fn packer_string() -> String {
    format!("tern-pack {}", env!("CARGO_PKG_VERSION"))
}

/// SHA-256 of a file, streamed.
///
/// # Errors
/// I/O errors, with the path.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read error", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Build the provenance record.
///
/// # Errors
/// Hashing errors.
pub fn provenance(
    source: &Path,
    hashed: &Path,
    format: &str,
    opts: &PackOptions,
) -> Result<OwnedProvenance> {
    Ok(OwnedProvenance {
        source: source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_format: format.into(),
        source_sha256: sha256_file(hashed)?,
        packer: packer_string(),
        options: options_string(opts),
    })
}

/// Split a tokenizer build (`crate::tokenizer`) into the header record (offset, length and CRC
/// are filled in by the writer) and the blob.
///
/// # Errors
/// More than 8 stop ids.
pub fn tokenizer_parts(b: crate::tokenizer::TokenizerBuild) -> Result<(TokenizerInfo, Vec<u8>)> {
    let info = b.info(0)?;
    Ok((info, b.blob))
}

/// Assemble and validate the final model: checks the config and that the tokenizer fits.
///
/// # Errors
/// An invalid config, or a tokenizer with more tokens than the model's vocabulary.
pub fn finish(
    config: ModelConfig,
    tokenizer: (TokenizerInfo, Vec<u8>),
    plan: DefaultPlan,
    provenance: OwnedProvenance,
    tensors: Vec<OwnedTensor>,
) -> Result<OwnedModel> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("model config: {e}"))?;
    if config.n_layers as usize > tern_core::format::MAX_LAYERS {
        bail!(
            "{} layers: the .tern format holds at most {}",
            config.n_layers,
            tern_core::format::MAX_LAYERS
        );
    }
    let (tok, blob) = tokenizer;
    if tok.n_tokens > config.vocab_size {
        bail!(
            "tokenizer has {} tokens but the model's vocabulary has {} rows",
            tok.n_tokens,
            config.vocab_size
        );
    }
    Ok(OwnedModel {
        config,
        tokenizer: tok,
        tokenizer_blob: blob,
        plan,
        provenance,
        tensors,
    })
}
