//! Perplexity of a model on a text: `tern perplexity MODEL -f FILE`.
//!
//! Definition (the one `tools/train/train.py` uses for the demo model's held-out figure, so
//! the two can be compared): the text becomes one token stream — the whole file after one BOS,
//! or with `--lines` every non-empty line as a document `BOS + line + EOS` (BOS/EOS as the
//! model's tokenizer declares them). The stream is cut into non-overlapping windows of
//! `ctx + 1` tokens starting at `0, ctx, 2 ctx, …`; each window is evaluated from position 0
//! with an empty KV cache, and every token after the first is scored:
//! `ppl = exp(Σ −log p(token | previous tokens in the window) / scored tokens)`.
//! Log-probabilities use a float64 log-sum-exp over the float32 logits.
//! (llama.cpp's `llama-perplexity` differs: overlapping context, only the second half of each
//! window scored; numbers are not comparable across the two definitions.)

use anyhow::{Result, anyhow, bail};
use tern_core::exec::Exec;
use tern_core::format::Model;
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::session::Session;
use tern_kernels::KernelSet;

use crate::arena::Arena;
use crate::generate::tokenize;

/// The token stream of `text`: with `lines`, every non-empty line as `BOS + line + EOS`; else
/// the whole text after one BOS (each as the tokenizer declares BOS/EOS).
///
/// # Errors
/// A malformed tokenizer blob.
pub fn token_stream(model: &Model<'_>, text: &str, lines: bool) -> Result<Vec<u32>> {
    if !lines {
        return tokenize(model, text, true, false);
    }
    let t = &model.file.header.tokenizer;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        out.extend(tokenize(model, line, true, false)?);
        out.extend(t.eos);
    }
    Ok(out)
}

/// What [`perplexity`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    /// `exp(mean negative log-likelihood)` per scored token.
    pub ppl: f64,
    /// Mean negative log-likelihood (nats per token).
    pub nll: f64,
    /// Tokens scored.
    pub scored: usize,
    /// Windows evaluated.
    pub windows: usize,
}

/// Perplexity of `stream` under `model` in windows of `ctx` tokens (module docs); `progress`
/// is called after each window with (windows done, windows total).
///
/// # Errors
/// `ctx` of 0 or above the model's context, fewer than 2 tokens, core errors.
pub fn perplexity(
    model: &Model<'_>,
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    stream: &[u32],
    ctx: usize,
    kv: KvDtype,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    let max = model.file.header.config.max_ctx as usize;
    if ctx == 0 || ctx > max {
        bail!("--ctx must be between 1 and the model's context ({max}), got {ctx}");
    }
    if stream.len() < 2 {
        bail!("the text has {} tokens: need at least 2", stream.len());
    }
    let run = RunOptions {
        batch: 1,
        ..RunOptions::new(ctx as u32, kv)
    };
    let plan = MemoryPlan::for_file(&model.file, run).map_err(|e| anyhow!("{e}"))?;
    let mut arena = Arena::new(plan.arena_bytes);
    let mut s =
        Session::new(model, kernels, exec, run, arena.bytes_mut()).map_err(|e| anyhow!("{e}"))?;
    let starts: Vec<usize> = (0..stream.len() - 1).step_by(ctx).collect();
    let (mut nll, mut scored) = (0f64, 0usize);
    for (w, &start) in starts.iter().enumerate() {
        let win = &stream[start..(start + ctx + 1).min(stream.len())];
        s.reset();
        for (i, &tok) in win[..win.len() - 1].iter().enumerate() {
            let logits = s.forward(tok).map_err(|e| anyhow!("{e}"))?;
            nll -= log_softmax_at(logits, win[i + 1] as usize);
            scored += 1;
        }
        progress(w + 1, starts.len());
    }
    let mean = nll / scored as f64;
    Ok(Perplexity {
        ppl: mean.exp(),
        nll: mean,
        scored,
        windows: starts.len(),
    })
}

/// `log softmax(logits)[target]`, in float64.
pub fn log_softmax_at(logits: &[f32], target: usize) -> f64 {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let z: f64 = logits.iter().map(|&v| (v as f64 - m).exp()).sum();
    logits[target] as f64 - m - z.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_the_definition() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&v| (v as f64).exp()).sum();
        for t in 0..3 {
            let want = (l[t] as f64).exp().ln() - z.ln();
            assert!((log_softmax_at(&l, t) - want).abs() < 1e-12);
        }
        // large logits do not overflow
        assert!((log_softmax_at(&[1000.0, 1000.0], 0) - 0.5f64.ln()).abs() < 1e-12);
    }
}
