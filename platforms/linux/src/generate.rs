//! Text generation on a mapped model: tokenize, prefill, decode with streaming output, and
//! the packing helper with a progress bar.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tern_core::exec::Exec;
use tern_core::format::{Model, TernFile};
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::sampler::{Sampler, SamplerConfig};
use tern_core::session::Session;
use tern_core::tokenizer::{StreamDecoder, Tokenizer, scratch_elems};
use tern_kernels::KernelSet;
use tern_pack::pack::PackOptions;

use crate::arena::Arena;
use crate::stream::{PosRead, ReadAhead, StreamStats};

/// Where generation reads the weights from.
#[derive(Clone, Copy)]
pub enum Weights<'x> {
    /// The whole file in memory (mmap or the bundled model): weights read in place.
    Resident(&'x Model<'x>),
    /// Streamed from `reader` (a file, read with `pread`) through the arena's staging slots.
    Streamed {
        /// The parsed header and tensor table.
        file: &'x TernFile<'x>,
        /// The tokenizer blob.
        tokenizer: &'x [u8],
        /// The file's bytes, read at offsets.
        reader: &'x dyn PosRead,
        /// Drop each range from the page cache after reading it (storage-bound reads).
        evict: bool,
    },
}

impl std::fmt::Debug for Weights<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Weights::Resident(_) => "Resident",
            Weights::Streamed { .. } => "Streamed",
        })
    }
}

impl<'x> Weights<'x> {
    /// The header and tensor table.
    pub fn file(&self) -> &'x TernFile<'x> {
        match self {
            Weights::Resident(m) => &m.file,
            Weights::Streamed { file, .. } => file,
        }
    }
    /// The tokenizer blob.
    pub fn tokenizer_blob(&self) -> &'x [u8] {
        match self {
            Weights::Resident(m) => m.tokenizer_blob(),
            Weights::Streamed { tokenizer, .. } => tokenizer,
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Prompt text (`""` = BOS alone).
    pub prompt: String,
    /// Tokens to generate at most.
    pub n_predict: usize,
    /// Sampling parameters.
    pub sampler: SamplerConfig,
    /// Context length in tokens (None: the file's default plan).
    pub ctx_len: Option<u32>,
    /// KV cache element type.
    pub kv: KvDtype,
    /// Keep generating past end-of-text tokens.
    pub ignore_eos: bool,
    /// Recognise special-token text (`<|eot_id|>`) in the prompt.
    pub parse_special: bool,
    /// Prompt tokens evaluated per pass over the weights (prefill batch).
    pub batch: u32,
    /// Streamed runs: arena bytes for pinned weights (see `RunOptions::pin_bytes`).
    pub pin_bytes: usize,
}

/// Receives the logits `(vocab,)` of every evaluated position (e.g. `--dump-logits`).
pub type LogitsSink<'s> = &'s mut dyn FnMut(&[f32]) -> Result<()>;

/// What a generation produced, with timings.
#[derive(Clone, Debug, Default)]
pub struct GenResult {
    /// Prompt token ids (with BOS when the tokenizer adds it).
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (a stop token, if hit, is included).
    pub generated_ids: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Seconds spent evaluating the prompt.
    pub prompt_secs: f64,
    /// Forward passes during decode (generated tokens after the first).
    pub decode_evals: usize,
    /// Seconds spent in decode forward passes and sampling.
    pub decode_secs: f64,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Streamed runs: what was read from storage.
    pub stream: Option<StreamStats>,
    /// Forward passes (prompt batches and decoded tokens) of a streamed run: each reads the
    /// weights once.
    pub passes: usize,
}

impl GenResult {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        if self.prompt_secs > 0.0 {
            self.prompt_ids.len() as f64 / self.prompt_secs
        } else {
            0.0
        }
    }
    /// Decode tokens per second (forward passes of generated tokens per second).
    pub fn decode_tps(&self) -> f64 {
        if self.decode_secs > 0.0 {
            self.decode_evals as f64 / self.decode_secs
        } else {
            0.0
        }
    }
}

/// Tokenize `text` with the model's tokenizer, adding BOS as the file's tokenizer config says.
///
/// # Errors
/// A malformed tokenizer blob.
pub fn tokenize(
    model: &Model<'_>,
    text: &str,
    add_bos: bool,
    parse_special: bool,
) -> Result<Vec<u32>> {
    tokenize_with(Weights::Resident(model), text, add_bos, parse_special)
}

fn tokenize_with(
    w: Weights<'_>,
    text: &str,
    add_bos: bool,
    parse_special: bool,
) -> Result<Vec<u32>> {
    let t = &w.file().header.tokenizer;
    let tok = Tokenizer::from_blob(t.kind, w.tokenizer_blob())
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let mut out = vec![0u32; text.len() + 2];
    let mut scratch = vec![0u32; scratch_elems(text.len())];
    let n = tok
        .encode(
            text,
            add_bos && t.add_bos,
            parse_special,
            &mut out,
            &mut scratch,
        )
        .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// Generate from `model` (resident weights). `on_text` receives complete UTF-8 text as it
/// is produced; `on_logits` (if any) receives the logits `(vocab,)` of every evaluated
/// position.
///
/// # Errors
/// An empty prompt for a tokenizer without BOS, a prompt longer than the context, core errors.
pub fn generate(
    model: &Model<'_>,
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    opts: &GenOptions,
    on_text: &mut dyn FnMut(&str),
    on_logits: Option<LogitsSink<'_>>,
) -> Result<GenResult> {
    generate_with(
        Weights::Resident(model),
        kernels,
        exec,
        opts,
        on_text,
        on_logits,
    )
}

/// The run options and memory plan [`generate_with`] uses for `w` and `opts` (streamed when
/// `w` is).
///
/// # Errors
/// An unusable context length.
pub fn plan_for(w: Weights<'_>, opts: &GenOptions) -> Result<(RunOptions, MemoryPlan)> {
    let file = w.file();
    let stream = matches!(w, Weights::Streamed { .. });
    let run = RunOptions {
        batch: opts.batch.max(1),
        stream,
        pin_bytes: if stream { opts.pin_bytes } else { 0 },
        ..RunOptions::new(opts.ctx_len.unwrap_or(file.header.plan.ctx_len), opts.kv)
    };
    let plan = MemoryPlan::for_file(file, run).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((run, plan))
}

/// Generate from resident or streamed weights; see [`generate`].
///
/// # Errors
/// As [`generate`]; a failed weight read names the offset and the I/O error.
pub fn generate_with(
    w: Weights<'_>,
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    opts: &GenOptions,
    on_text: &mut dyn FnMut(&str),
    on_logits: Option<LogitsSink<'_>>,
) -> Result<GenResult> {
    let file = w.file();
    let prompt_ids = tokenize_with(w, &opts.prompt, true, opts.parse_special)?;
    if prompt_ids.is_empty() {
        bail!("the prompt is empty and this model's tokenizer adds no BOS: give a prompt with -p");
    }
    let (run, plan) = plan_for(w, opts)?;
    if prompt_ids.len() > run.ctx_len as usize {
        bail!(
            "the prompt has {} tokens, more than the context of {} (raise --ctx)",
            prompt_ids.len(),
            run.ctx_len
        );
    }
    let mut arena = Arena::new(plan.arena_bytes);
    let mut res = GenResult {
        prompt_ids,
        arena_bytes: plan.arena_bytes,
        ..Default::default()
    };
    match w {
        Weights::Resident(model) => {
            let mut s = Session::new(model, kernels, exec, run, arena.bytes_mut())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            drive(&mut s, w, opts, &mut res, on_text, on_logits)?;
        }
        Weights::Streamed { reader, evict, .. } => {
            let (sess, slots) = plan
                .split_staging(arena.bytes_mut())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::thread::scope(|sc| -> Result<()> {
                let mut src = ReadAhead::spawn_with(sc, reader, slots, evict);
                let r = (|| {
                    let mut s = Session::new_streamed(file, &mut src, kernels, exec, run, sess)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    drive(&mut s, w, opts, &mut res, on_text, on_logits)
                })();
                res.stream = Some(src.stats);
                match (r, src.last_error.take()) {
                    (Err(e), Some(io)) => Err(e.context(format!("reading weights: {io}"))),
                    (r, _) => r,
                }
            })?;
        }
    }
    Ok(res)
}

/// Prefill and decode on a built session.
fn drive(
    s: &mut Session<'_, '_>,
    w: Weights<'_>,
    opts: &GenOptions,
    res: &mut GenResult,
    on_text: &mut dyn FnMut(&str),
    mut on_logits: Option<LogitsSink<'_>>,
) -> Result<()> {
    let h = &w.file().header;
    let tok = Tokenizer::from_blob(h.tokenizer.kind, w.tokenizer_blob())
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let ctx_len = s.plan().opts.ctx_len as usize;
    let batch = s.plan().opts.batch as usize;
    let t0 = Instant::now();
    if let Some(f) = on_logits.as_mut() {
        // every position's logits are wanted: token by token
        for &id in &res.prompt_ids {
            f(s.forward(id).map_err(|e| anyhow::anyhow!("{e}"))?)?;
            res.passes += 1;
        }
    } else {
        s.prefill(&res.prompt_ids)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        res.passes += res.prompt_ids.len().div_ceil(batch);
    }
    res.prompt_secs = t0.elapsed().as_secs_f64();

    let mut sampler = Sampler::new(opts.sampler);
    let mut dec = StreamDecoder::new();
    let mut emit = |piece: &str, text: &mut String| {
        text.push_str(piece);
        on_text(piece);
    };
    let t1 = Instant::now();
    for i in 0..opts.n_predict {
        let next = s.sample(&mut sampler);
        res.generated_ids.push(next);
        let stop = h.tokenizer.stop_ids.contains(&next);
        if stop && !opts.ignore_eos {
            break;
        }
        let piece = tok.piece(next, false).unwrap_or(&[]);
        let mut text = std::mem::take(&mut res.text);
        dec.push(piece, &mut |p| emit(p, &mut text));
        res.text = text;
        if i + 1 == opts.n_predict || s.pos() >= ctx_len {
            break;
        }
        let logits = s.forward(next).map_err(|e| anyhow::anyhow!("{e}"))?;
        res.decode_evals += 1;
        res.passes += 1;
        if let Some(f) = on_logits.as_mut() {
            f(logits)?;
        }
    }
    let mut text = std::mem::take(&mut res.text);
    dec.finish(&mut |p| emit(p, &mut text));
    res.text = text;
    res.decode_secs = t1.elapsed().as_secs_f64();
    Ok(())
}

/// Import `input` (GGUF or safetensors dir) and write `out` atomically, with a progress bar
/// on stderr unless `quiet`.
///
/// # Errors
/// Import and I/O errors naming the file and tensor.
pub fn pack_with_progress(
    input: &Path,
    out: &Path,
    opts: &PackOptions,
    quiet: bool,
) -> Result<u64> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("importing");
    let model = tern_pack::import::import_path(input, opts, &|p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })?;
    bar.set_message("writing");
    let total: u64 = model.tensors.iter().map(|t| t.data.len() as u64).sum();
    bar.set_length(total);
    bar.set_position(0);
    let n = tern_pack::pack::write_tern_atomic(&model, out, |pos| bar.set_position(pos.min(total)))
        .with_context(|| format!("writing {}", out.display()))?;
    bar.finish_and_clear();
    Ok(n)
}
