//! Greedy generation over one arena: tokenize → prefill → decode, text streamed as UTF-8.
//!
//! Produces the same tokens as the Linux CLI's `tern run MODEL -p PROMPT -n N --temp 0`
//! (`generated_ids`): same tokenization (BOS as the file says, no special-token parsing), greedy
//! sampling through the core sampler, a stop token included and ending the run.

use heapless::String;
use tern_core::exec::Exec;
use tern_core::format::Model;
use tern_core::plan::{KvDtype, MemoryPlan, REGION_ALIGN, RunOptions};
use tern_core::sampler::{Sampler, SamplerConfig};
use tern_core::session::Session;
use tern_core::tokenizer::{StreamDecoder, Tokenizer, scratch_elems};
use tern_kernels::KernelSet;

use crate::Error;

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Prompt tokens (with BOS when the tokenizer adds it).
    pub prompt_tokens: usize,
    /// Generated tokens (a stop token, if hit, is included).
    pub generated_tokens: usize,
    /// Whether a stop token ended the run.
    pub stopped: bool,
    /// Context length planned, tokens.
    pub ctx_len: usize,
    /// Arena bytes used by the session (KV cache, activations, logits, sampler).
    pub session_bytes: usize,
}

/// Layout of the caller's arena: the session's plan, then the prompt ids and the tokenizer
/// scratch (both `u32`).
struct Layout {
    run: RunOptions,
    session_bytes: usize,
    ids_elems: usize,
    scratch_elems: usize,
}

impl Layout {
    fn new(model: &Model<'_>, prompt_len_bytes: usize, n_predict: usize) -> Result<Self, Error> {
        let h = &model.file.header;
        // Byte-level bound on prompt tokens: every token covers at least one byte, plus BOS.
        let ids_elems = prompt_len_bytes + 2;
        let ctx_len = (ids_elems + n_predict).min(h.plan.ctx_len as usize).max(1);
        let run = RunOptions {
            batch: 1,
            ..RunOptions::new(ctx_len as u32, KvDtype::F32)
        };
        let plan = MemoryPlan::new(&h.config, 0, run)?;
        Ok(Layout {
            run,
            session_bytes: plan.arena_bytes.next_multiple_of(REGION_ALIGN),
            ids_elems,
            scratch_elems: scratch_elems(prompt_len_bytes),
        })
    }
    fn total_bytes(&self) -> usize {
        self.session_bytes + 4 * (self.ids_elems + self.scratch_elems)
    }
}

/// Arena bytes [`generate_greedy`] needs for `model_bytes`, a prompt of `prompt_len_bytes`
/// bytes and `n_predict` tokens (context = prompt + tokens, batch 1, F32 KV cache).
///
/// # Errors
/// [`Error::Core`] if the model does not parse or the plan overflows.
pub fn arena_bytes_for(
    model_bytes: &[u8],
    prompt_len_bytes: usize,
    n_predict: usize,
) -> Result<usize, Error> {
    let model = Model::parse(model_bytes)?;
    Ok(Layout::new(&model, prompt_len_bytes, n_predict)?.total_bytes())
}

/// Greedy-generate `n_predict` tokens after `prompt` with `model_bytes` (a whole `.tern`
/// file, resident: flash XIP or RAM), in `arena` (64-byte aligned, at least
/// [`arena_bytes_for`] bytes). `out(token_id, text)` is called once per generated token with
/// the UTF-8 text that token completed (possibly empty: a character split over tokens arrives
/// with the token that completes it; text longer than 256 bytes arrives in several calls).
/// A stop token is reported (with empty text) and ends the run.
///
/// # Errors
/// [`Error::ArenaTooSmall`], [`Error::ArenaMisaligned`], [`Error::EmptyPrompt`],
/// [`Error::PromptTooLong`], or [`Error::Core`] from parsing, tokenizing or the forward pass.
pub fn generate_greedy(
    model_bytes: &[u8],
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    arena: &mut [u8],
    prompt: &str,
    n_predict: usize,
    mut out: impl FnMut(u32, &str),
) -> Result<GenStats, Error> {
    let model = Model::parse(model_bytes)?;
    let h = &model.file.header;
    let lay = Layout::new(&model, prompt.len(), n_predict)?;
    if arena.len() < lay.total_bytes() {
        return Err(Error::ArenaTooSmall {
            need_bytes: lay.total_bytes(),
            have_bytes: arena.len(),
        });
    }
    if !(arena.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
        return Err(Error::ArenaMisaligned);
    }
    let (sess_arena, rest) = arena.split_at_mut(lay.session_bytes);
    let rest: &mut [u32] =
        bytemuck::cast_slice_mut(&mut rest[..4 * (lay.ids_elems + lay.scratch_elems)]);
    let (ids, scratch) = rest.split_at_mut(lay.ids_elems);

    let tok = Tokenizer::from_blob(h.tokenizer.kind, model.tokenizer_blob())?;
    let n_prompt = tok.encode(prompt, h.tokenizer.add_bos, false, ids, scratch)?;
    let ids = &ids[..n_prompt];
    if ids.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let ctx_len = lay.run.ctx_len as usize;
    if n_prompt > ctx_len {
        return Err(Error::PromptTooLong {
            tokens: n_prompt,
            ctx_len,
        });
    }

    let mut s = Session::new(&model, kernels, exec, lay.run, sess_arena)?;
    s.prefill(ids)?;
    let mut stats = GenStats {
        prompt_tokens: n_prompt,
        ctx_len,
        session_bytes: s.plan().arena_bytes,
        ..GenStats::default()
    };
    let mut sampler = Sampler::new(SamplerConfig::greedy());
    let mut dec = StreamDecoder::new();
    let mut text: String<256> = String::new();
    let mut last = 0u32;
    for i in 0..n_predict {
        let next = s.sample(&mut sampler);
        last = next;
        stats.generated_tokens += 1;
        if h.tokenizer.stop_ids.contains(&next) {
            stats.stopped = true;
            out(next, "");
            break;
        }
        let piece = tok.piece(next, false).unwrap_or(&[]);
        text.clear();
        dec.push(piece, &mut |p: &str| {
            push_text(&mut text, p, next, &mut out)
        });
        out(next, &text);
        if i + 1 == n_predict || s.pos() >= ctx_len {
            break;
        }
        s.forward(next)?;
    }
    text.clear();
    dec.finish(&mut |p: &str| push_text(&mut text, p, last, &mut out));
    if !text.is_empty() {
        out(last, &text);
    }
    Ok(stats)
}

/// Append `p` to `buf`, flushing full buffers to `out` (on char boundaries).
fn push_text(buf: &mut String<256>, mut p: &str, id: u32, out: &mut impl FnMut(u32, &str)) {
    while !p.is_empty() {
        let room = buf.capacity() - buf.len();
        if p.len() <= room {
            let _ = buf.push_str(p);
            return;
        }
        let mut cut = room;
        while !p.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = buf.push_str(&p[..cut]);
        out(id, buf);
        buf.clear();
        p = &p[cut..];
    }
}
