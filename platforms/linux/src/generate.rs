//! Text generation on a mapped model: tokenize, prefill, decode with streaming output, and
//! the packing helper with a progress bar.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tern_core::exec::Exec;
use tern_core::format::Model;
use tern_core::plan::{KvDtype, RunOptions};
use tern_core::sampler::{Sampler, SamplerConfig};
use tern_core::session::Session;
use tern_core::tokenizer::{StreamDecoder, Tokenizer, scratch_elems};
use tern_kernels::KernelSet;
use tern_pack::pack::PackOptions;

use crate::arena::Arena;

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
    let t = &model.file.header.tokenizer;
    let tok = Tokenizer::from_blob(t.kind, model.tokenizer_blob())
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

/// Generate from `model`. `on_text` receives complete UTF-8 text as it is produced;
/// `on_logits` (if any) receives the logits `(vocab,)` of every evaluated position.
///
/// # Errors
/// An empty prompt for a tokenizer without BOS, a prompt longer than the context, core errors.
pub fn generate(
    model: &Model<'_>,
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    opts: &GenOptions,
    on_text: &mut dyn FnMut(&str),
    mut on_logits: Option<LogitsSink<'_>>,
) -> Result<GenResult> {
    let h = &model.file.header;
    let tok = Tokenizer::from_blob(h.tokenizer.kind, model.tokenizer_blob())
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let prompt_ids = tokenize(model, &opts.prompt, true, opts.parse_special)?;
    if prompt_ids.is_empty() {
        bail!("the prompt is empty and this model's tokenizer adds no BOS: give a prompt with -p");
    }
    let ctx_len = opts.ctx_len.unwrap_or(h.plan.ctx_len);
    if prompt_ids.len() > ctx_len as usize {
        bail!(
            "the prompt has {} tokens, more than the context of {ctx_len} (raise --ctx)",
            prompt_ids.len()
        );
    }
    let run = RunOptions {
        batch: opts.batch.max(1),
        ..RunOptions::new(ctx_len, opts.kv)
    };
    let plan =
        tern_core::plan::MemoryPlan::new(&h.config, 0, run).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut arena = Arena::new(plan.arena_bytes);
    let mut s = Session::new(model, kernels, exec, run, arena.bytes_mut())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut res = GenResult {
        prompt_ids: prompt_ids.clone(),
        arena_bytes: plan.arena_bytes,
        ..Default::default()
    };

    let t0 = Instant::now();
    if let Some(f) = on_logits.as_mut() {
        // every position's logits are wanted: token by token
        for &id in &prompt_ids {
            f(s.forward(id).map_err(|e| anyhow::anyhow!("{e}"))?)?;
        }
    } else {
        s.prefill(&prompt_ids).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        if i + 1 == opts.n_predict || s.pos() >= ctx_len as usize {
            break;
        }
        let logits = s.forward(next).map_err(|e| anyhow::anyhow!("{e}"))?;
        res.decode_evals += 1;
        if let Some(f) = on_logits.as_mut() {
            f(logits)?;
        }
    }
    let mut text = std::mem::take(&mut res.text);
    dec.finish(&mut |p| emit(p, &mut text));
    res.text = text;
    res.decode_secs = t1.elapsed().as_secs_f64();
    Ok(res)
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
