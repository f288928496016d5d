//! Greedy generation over one arena: tokenize → prefill → decode, text streamed as UTF-8.
//!
//! Produces the same tokens as the Linux CLI's `tern run MODEL -p PROMPT -n N --temp 0`
//! (`generated_ids`): same tokenization (BOS as the file says, no special-token parsing), greedy
//! sampling through the core sampler, a stop token included and ending the run.

use embedded_io::{Read, Seek};
use heapless::String;
use tern_core::exec::Exec;
use tern_core::format::{Header, Model, PREAMBLE_BYTES, Preamble, TernFile};
use tern_core::plan::{KvDtype, MemoryPlan, REGION_ALIGN, RunOptions, align_up};
use tern_core::sampler::{Sampler, SamplerConfig};
use tern_core::session::Session;
use tern_core::source::{ReadAt, SyncSource};
use tern_core::tokenizer::{StreamDecoder, Tokenizer, scratch_elems};
use tern_kernels::KernelSet;

use crate::Error;
use crate::stream::EioReader;

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
    /// Arena bytes used by the session (KV cache, activations, logits, sampler; streamed:
    /// staging too).
    pub session_bytes: usize,
    /// Streamed runs: weight bytes read from storage (0 when resident).
    pub bytes_read: u64,
}

/// Layout of the caller's arena: the session's plan, then the prompt ids and the tokenizer
/// scratch (both `u32`).
struct Layout {
    run: RunOptions,
    plan: MemoryPlan,
    session_bytes: usize,
    ids_elems: usize,
    scratch_elems: usize,
}

impl Layout {
    fn new(
        file: &TernFile<'_>,
        prompt_len_bytes: usize,
        n_predict: usize,
        stream: bool,
    ) -> Result<Self, Error> {
        let h = &file.header;
        // Byte-level bound on prompt tokens: every token covers at least one byte, plus BOS.
        let ids_elems = prompt_len_bytes + 2;
        let ctx_len = (ids_elems + n_predict).min(h.plan.ctx_len as usize).max(1);
        let run = RunOptions {
            batch: 1,
            stream,
            ..RunOptions::new(ctx_len as u32, KvDtype::F32)
        };
        let plan = MemoryPlan::for_file(file, run)?;
        Ok(Layout {
            run,
            plan,
            session_bytes: plan.arena_bytes.next_multiple_of(REGION_ALIGN),
            ids_elems,
            scratch_elems: scratch_elems(prompt_len_bytes),
        })
    }
    /// A streamed run's arena: the header as read (`header_bytes`, preamble included), the
    /// tokenizer blob, then [`Layout::total_bytes`].
    fn streamed_total_bytes(&self, header_bytes: usize, tokenizer_bytes: usize) -> usize {
        align_up(header_bytes) + align_up(tokenizer_bytes) + self.total_bytes()
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
    Ok(Layout::new(&model.file, prompt_len_bytes, n_predict, false)?.total_bytes())
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
    let lay = Layout::new(&model.file, prompt.len(), n_predict, false)?;
    let (sess_arena, ids, scratch) = lay.carve(arena)?;
    let tok = Tokenizer::from_blob(model.file.header.tokenizer.kind, model.tokenizer_blob())?;
    let ids = tokenize(
        &model.file,
        &tok,
        prompt,
        ids,
        scratch,
        lay.run.ctx_len as usize,
    )?;
    let mut s = Session::new(&model, kernels, exec, lay.run, sess_arena)?;
    greedy(&mut s, &model.file, &tok, ids, n_predict, &mut out)
}

/// Arena bytes [`generate_greedy_streamed`] needs: the header and tokenizer blob as read from
/// storage, the session with its two staging slots, the prompt ids and tokenizer scratch.
/// `header_buf` must hold the preamble and header (a few KiB; more for many tensors).
///
/// # Errors
/// As [`generate_greedy_streamed`] (storage errors, a bad header, a short `header_buf`).
pub fn arena_bytes_for_streamed<R: Read + Seek>(
    storage: R,
    header_buf: &mut [u8],
    prompt_len_bytes: usize,
    n_predict: usize,
) -> Result<usize, Error> {
    let mut r = EioReader::new(storage);
    let (need, file_len) = header_len(&mut r)?;
    let have = header_buf.len();
    let buf = header_buf.get_mut(..need).ok_or(Error::ArenaTooSmall {
        need_bytes: need,
        have_bytes: have,
    })?;
    r.read_at(0, buf)?;
    let file = TernFile::parse(buf, file_len)?;
    let lay = Layout::new(&file, prompt_len_bytes, n_predict, true)?;
    Ok(lay.streamed_total_bytes(need, file.header.tokenizer.len as usize))
}

/// Bytes of the preamble and header (from the preamble) and the storage length.
fn header_len<R: Read + Seek>(r: &mut EioReader<R>) -> Result<(usize, u64), Error> {
    let file_len = r.len_bytes()?;
    let mut pre = [0u8; PREAMBLE_BYTES];
    r.read_at(0, &mut pre)?;
    let p = Preamble::parse(&pre)?;
    Ok((PREAMBLE_BYTES + p.header_len as usize, file_len))
}

/// Greedy generation as [`generate_greedy`], with the weights streamed from `storage` (any
/// `embedded_io::{Read, Seek}` driver holding a `.tern` file from its offset 0): the header
/// and tokenizer are read into `arena`, then every tensor is read once per token into two
/// staging slots of the arena (see `tern_core::source`). RAM needed: what `tern inspect MODEL
/// --stream -b 1` prints, plus the header and tokenizer ([`arena_bytes_for_streamed`]); the
/// model may be any size. Same tokens as [`generate_greedy`] and `tern run --temp 0`.
///
/// # Errors
/// As [`generate_greedy`]; storage errors are [`Error::Core`] with
/// `tern_core::Error::WeightRead` naming the offset and length.
pub fn generate_greedy_streamed<R: Read + Seek>(
    storage: R,
    kernels: &'static KernelSet,
    exec: &dyn Exec,
    arena: &mut [u8],
    prompt: &str,
    n_predict: usize,
    mut out: impl FnMut(u32, &str),
) -> Result<GenStats, Error> {
    if !(arena.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
        return Err(Error::ArenaMisaligned);
    }
    let mut r = EioReader::new(storage);
    let total = arena.len();
    let (used, file_len) = header_len(&mut r)?;
    if total < align_up(used) {
        return Err(Error::ArenaTooSmall {
            need_bytes: align_up(used),
            have_bytes: total,
        });
    }
    let (hdr, rest) = arena.split_at_mut(align_up(used));
    r.read_at(0, &mut hdr[..used])?;
    let file = TernFile::parse(&hdr[..used], file_len)?;
    let t = &file.header.tokenizer;
    let tlen = t.len as usize;
    let lay = Layout::new(&file, prompt.len(), n_predict, true)?;
    let need = lay.streamed_total_bytes(used, tlen);
    if total < need {
        return Err(Error::ArenaTooSmall {
            need_bytes: need,
            have_bytes: total,
        });
    }
    let (tok_bytes, rest) = rest.split_at_mut(align_up(tlen));
    r.read_at(t.offset, &mut tok_bytes[..tlen])?;
    let tok = Tokenizer::from_blob(t.kind, &tok_bytes[..tlen])?;
    let plan = lay.plan;
    let (sess_and_staging, ids, scratch) = lay.carve(rest)?;
    let (sess, slots) = plan.split_staging(sess_and_staging)?;
    let ids = tokenize(&file, &tok, prompt, ids, scratch, lay.run.ctx_len as usize)?;
    let mut src = SyncSource::new(r, slots);
    let mut stats = {
        let mut s = Session::new_streamed(&file, &mut src, kernels, exec, lay.run, sess)?;
        greedy(&mut s, &file, &tok, ids, n_predict, &mut out)?
    };
    stats.session_bytes = plan.arena_bytes;
    stats.bytes_read = src.reader().bytes_read;
    Ok(stats)
}

/// The session's part of an arena, the prompt ids and the tokenizer scratch.
type Carved<'x> = (&'x mut [u8], &'x mut [u32], &'x mut [u32]);

impl Layout {
    /// Split `arena` into the session's part, the prompt ids and the tokenizer scratch.
    fn carve<'x>(&self, arena: &'x mut [u8]) -> Result<Carved<'x>, Error> {
        if arena.len() < self.total_bytes() {
            return Err(Error::ArenaTooSmall {
                need_bytes: self.total_bytes(),
                have_bytes: arena.len(),
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
            return Err(Error::ArenaMisaligned);
        }
        let (sess_arena, rest) = arena.split_at_mut(self.session_bytes);
        let rest: &mut [u32] =
            bytemuck::cast_slice_mut(&mut rest[..4 * (self.ids_elems + self.scratch_elems)]);
        let (ids, scratch) = rest.split_at_mut(self.ids_elems);
        Ok((sess_arena, ids, scratch))
    }
}

/// Tokenize `prompt` into `ids` (BOS as the file says); check it is not empty and fits.
fn tokenize<'i>(
    file: &TernFile<'_>,
    tok: &Tokenizer<'_>,
    prompt: &str,
    ids: &'i mut [u32],
    scratch: &mut [u32],
    ctx_len: usize,
) -> Result<&'i [u32], Error> {
    let n_prompt = tok.encode(prompt, file.header.tokenizer.add_bos, false, ids, scratch)?;
    if n_prompt == 0 {
        return Err(Error::EmptyPrompt);
    }
    if n_prompt > ctx_len {
        return Err(Error::PromptTooLong {
            tokens: n_prompt,
            ctx_len,
        });
    }
    Ok(&ids[..n_prompt])
}

/// Prefill `ids`, then greedy-decode up to `n_predict` tokens, streaming text to `out`.
fn greedy(
    s: &mut Session<'_, '_>,
    file: &TernFile<'_>,
    tok: &Tokenizer<'_>,
    ids: &[u32],
    n_predict: usize,
    out: &mut impl FnMut(u32, &str),
) -> Result<GenStats, Error> {
    let h: &Header<'_> = &file.header;
    let ctx_len = s.plan().opts.ctx_len as usize;
    s.prefill(ids)?;
    let mut stats = GenStats {
        prompt_tokens: ids.len(),
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
        dec.push(piece, &mut |p: &str| push_text(&mut text, p, next, out));
        out(next, &text);
        if i + 1 == n_predict || s.pos() >= ctx_len {
            break;
        }
        s.forward(next)?;
    }
    text.clear();
    dec.finish(&mut |p: &str| push_text(&mut text, p, last, out));
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
