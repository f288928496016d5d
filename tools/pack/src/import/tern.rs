//! `.tern` importer: re-pack an existing packed model, e.g. with another LM head
//! (`tern-pack pack model.tern -o small.tern --lm-head q4_0`).
//!
//! The file is validated as the runtime does (`Model::parse`, every CRC32). Every tensor is
//! copied as it is (ternary codes in their layout with their scales, norms, the embedding),
//! with the tokenizer blob, the config and the default plan; [`super::import_path`] then
//! converts the LM head as `--lm-head` asks (dequantized exactly to f32, then quantized: a Q8_0
//! head re-packed as Q4_0 is quantized twice) and the ternary tensors as `--ternary` asks. `--ffn-act` overrides the recorded activation and
//! `--ctx` the default context; the provenance names the `.tern` file and its hash, with the
//! source format `tern:<the original's source format>`.
//!
//! Source: `core/FORMAT.md`.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use tern_core::Error as CoreError;
use tern_core::config::FfnActSource;
use tern_core::error::Section;
use tern_core::format::writer::{OwnedModel, OwnedProvenance, OwnedTensor};
use tern_core::format::{Model, tensor_name_at};
use tern_kernels::layout::Layout;

use super::{ImportProgress, default_plan, finish, map_file, options_string, packer_string};
use crate::pack::PackOptions;

/// Turn a core error into a message naming the file and, where the error names a tensor
/// index, the tensor.
pub fn describe(path: &Path, bytes: &[u8], e: CoreError) -> anyhow::Error {
    let idx = match e {
        CoreError::UnknownLayout { index, .. }
        | CoreError::TensorOutOfBounds { index }
        | CoreError::Misaligned { index }
        | CoreError::BadTensorLength { index, .. }
        | CoreError::DuplicateTensor { index }
        | CoreError::ShapeMismatch { index, .. }
        | CoreError::WrongLayout { index } => Some(index),
        CoreError::ChecksumMismatch {
            section: Section::TensorData(i),
        }
        | CoreError::Malformed {
            section: Section::TensorEntry(i),
        }
        | CoreError::Truncated {
            section: Section::TensorData(i),
        }
        | CoreError::TrailingData {
            section: Section::TensorData(i),
        } => Some(i),
        _ => None,
    };
    match idx.and_then(|i| tensor_name_at(bytes, i)) {
        Some(name) => anyhow!("{}: tensor '{name}': {e}", path.display()),
        None => anyhow!("{}: {e}", path.display()),
    }
}

/// Import a `.tern` file (memory-mapped).
///
/// # Errors
/// See [`import_tern_bytes`].
pub fn import_tern(
    path: &Path,
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let map = map_file(path)?;
    import_tern_bytes(path, &map, opts, progress)
}

/// Import the bytes of a whole `.tern` file; `path` names it in messages and the provenance.
///
/// # Errors
/// Any `tern_core` validation error (bad header, tensor table, graph, a CRC32 mismatch),
/// naming the file and the tensor; an invalid `--ctx`.
pub fn import_tern_bytes(
    path: &Path,
    bytes: &[u8],
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let m = Model::parse(bytes).map_err(|e| describe(path, bytes, e))?;
    m.verify_checksums().map_err(|e| describe(path, bytes, e))?;
    let h = &m.file.header;
    let mut config = h.config;
    if let Some(a) = opts.ffn_act {
        config.ffn_act = a;
        config.ffn_act_source = FfnActSource::Override;
    }
    let plan = match opts.ctx_len {
        Some(_) => tern_core::format::DefaultPlan {
            kv: h.plan.kv,
            ..default_plan(&config, opts)?
        },
        None => h.plan,
    };
    let total = h.n_tensors as usize;
    let mut tensors = Vec::with_capacity(total);
    for (i, e) in m.file.entries().enumerate() {
        let layout = Layout::from_id(e.layout)
            .ok_or_else(|| anyhow!("{}: tensor {}: unknown layout", path.display(), e.name))?;
        tensors.push(OwnedTensor {
            name: e.name.into(),
            role: e.role,
            layer: e.layer,
            layout,
            rows: e.rows,
            cols: e.cols,
            weight_scale: e.weight_scale,
            data: bytes[e.offset as usize..(e.offset + e.len) as usize].to_vec(),
        });
        progress(ImportProgress {
            tensor: e.name,
            done: i + 1,
            total,
        });
    }
    let prov = OwnedProvenance {
        source: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_format: format!("tern:{}", h.provenance.source_format),
        source_sha256: Sha256::digest(bytes).into(),
        packer: packer_string(),
        options: options_string(opts),
    };
    let tok = (h.tokenizer.clone(), m.tokenizer_blob().to_vec());
    finish(config, tok, plan, prov, tensors).with_context(|| format!("{}", path.display()))
}
