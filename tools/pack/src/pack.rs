//! Packing: import a model and write it as a `.tern` file, atomically.
//!
//! Source: `core/FORMAT.md` (the `.tern` v1 format); the writer is
//! `tern_core::format::writer::OwnedModel::write`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tern_core::config::{FfnAct, ModelConfig};
use tern_core::format::writer::OwnedModel;
use tern_kernels::layout::TernaryLayout;

use crate::import::{ImportProgress, import_path};

/// Options of `tern-pack pack` that change the packed model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackOptions {
    /// Force the FFN activation (`--ffn-act relu2|silu`), overriding metadata and the rule.
    pub ffn_act: Option<FfnAct>,
    /// Default context length recorded in the file, tokens (`--ctx N`); default
    /// `min(model max_ctx, 4096)`, and never more than the model's `max_ctx`.
    pub ctx_len: Option<u32>,
    /// Storage of the LM head (`--lm-head`): as in the source, or quantized to Q8_0 or Q4_0
    /// (the tied embedding is then quantized too). Q8_0 halves the bytes decode reads for the
    /// head (the largest tensor of 2B4T) at a small accuracy cost, Q4_0 quarters them at a
    /// larger one (`Q4_0_R8`: the same values, row-interleaved for a faster matvec); see
    /// README "Performance".
    pub lm_head: LmHead,
    /// Layout of the ternary tensors (`--ternary t2_128|t1_160`): `T2_128` (2 bits per weight,
    /// the default) or `T1_160` (1.6 bits per weight: 20 % fewer bytes for memory-bound devices
    /// and streamed models, more decode work per weight). Same ternary values either way.
    pub ternary: TernaryLayout,
}

/// LM head storage choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LmHead {
    /// Keep the source's layout: F32/F16/BF16 bits, a `.tern` input's head as it is, a GGUF
    /// Q4_0 embedding as Q4_0 (Q8_0 / Q6_K GGUF embeddings are dequantized to F32).
    #[default]
    Keep,
    /// ggml Q8_0: 32 values per f16 scale, 8.5 bpw.
    Q8_0,
    /// ggml Q4_0: 32 4-bit values per f16 scale, 4.5 bpw.
    Q4_0,
    /// F16 (16 bpw, the same values as an F16 source) in Tern's `F16_R8` order: rows
    /// interleaved in groups of 8 by 32-column pieces, which the AVX-512 head reads as one
    /// stream (README "Performance"). From a BF16, F32 or quantized source the values are
    /// rounded to F16 (an error if one overflows it).
    F16R8,
    /// ggml Q4_0 (the same blocks, 4.5 bpw) in Tern's `Q4_0_R8` order: rows interleaved in
    /// groups of 8, block by block, which the head matvec reads with no horizontal sums
    /// (README "Performance"). A Q4_0 source's blocks are reordered, never requantized.
    Q4_0R8,
}

impl LmHead {
    /// The layout this choice asks for (`None`: keep the source's).
    pub fn layout(self) -> Option<tern_kernels::layout::Layout> {
        use tern_kernels::layout::Layout;
        match self {
            LmHead::Keep => None,
            LmHead::Q8_0 => Some(Layout::Q8_0),
            LmHead::Q4_0 => Some(Layout::Q4_0),
            LmHead::F16R8 => Some(Layout::F16R8),
            LmHead::Q4_0R8 => Some(Layout::Q4_0R8),
        }
    }
    /// The CLI spelling (`keep`, `q8_0`, `q4_0`, `f16_r8`, `q4_0_r8`).
    pub fn name(self) -> &'static str {
        match self {
            LmHead::Keep => "keep",
            LmHead::Q8_0 => "q8_0",
            LmHead::Q4_0 => "q4_0",
            LmHead::F16R8 => "f16_r8",
            LmHead::Q4_0R8 => "q4_0_r8",
        }
    }
}

/// What [`pack_path`] did.
#[derive(Clone, Debug)]
pub struct PackReport {
    /// Input file or directory.
    pub input: PathBuf,
    /// Output `.tern` file.
    pub output: PathBuf,
    /// Source format recorded in the provenance (`gguf:TQ2_0`, `safetensors:packed`, …).
    pub source_format: String,
    /// The packed model's config.
    pub config: ModelConfig,
    /// Tensors written.
    pub n_tensors: usize,
    /// Bytes written.
    pub bytes_written: u64,
    /// Time spent importing (decoding, hashing).
    pub import_time: Duration,
    /// Time spent writing.
    pub write_time: Duration,
}

/// Write `model` to `out` atomically: into a temporary file in the same directory, flushed and
/// synced, then renamed over `out`. On any error the temporary file is removed and `out` is
/// left untouched, so a half-written `.tern` never appears under its final name.
/// `progress(bytes_written)` is called after each tensor. Returns the file size, bytes.
///
/// # Errors
/// I/O errors (with the path), or a tensor whose data length disagrees with its shape.
pub fn write_tern_atomic(model: &OwnedModel, out: &Path, progress: impl FnMut(u64)) -> Result<u64> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(fname) = out.file_name() else {
        bail!("{}: not a file path", out.display())
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        fname.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| -> Result<u64> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = model
            .write(&mut w, progress)
            .with_context(|| format!("{}: write failed", tmp.display()))?;
        w.flush()
            .with_context(|| format!("{}: write failed", tmp.display()))?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("{}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("{}: sync failed", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
        Ok(n)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Import `input` (GGUF file or HF safetensors directory) and write `out` atomically.
///
/// # Errors
/// Everything [`import_path`] and [`write_tern_atomic`] report.
pub fn pack_path(input: &Path, out: &Path, opts: &PackOptions) -> Result<PackReport> {
    pack_path_with_progress(input, out, opts, &|_| {}, |_| {})
}

/// [`pack_path`] with progress callbacks for the import (per tensor) and the write (bytes).
///
/// # Errors
/// As [`pack_path`].
pub fn pack_path_with_progress(
    input: &Path,
    out: &Path,
    opts: &PackOptions,
    import_progress: &dyn Fn(ImportProgress<'_>),
    write_progress: impl FnMut(u64),
) -> Result<PackReport> {
    let t0 = Instant::now();
    let model = import_path(input, opts, import_progress)?;
    let t1 = Instant::now();
    let bytes_written = write_tern_atomic(&model, out, write_progress)?;
    Ok(PackReport {
        input: input.to_path_buf(),
        output: out.to_path_buf(),
        source_format: model.provenance.source_format.clone(),
        config: model.config,
        n_tensors: model.tensors.len(),
        bytes_written,
        import_time: t1 - t0,
        write_time: t1.elapsed(),
    })
}
