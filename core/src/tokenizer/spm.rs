//! SentencePiece BPE (Llama-2): merge characters by token score, byte fallback.
//!
//! Source: llama.cpp `llama-vocab.cpp` `llm_tokenizer_spm_session` (`tokenize`,
//! `try_add_bigram`, `resegment`): symbols are UTF-8 characters; the adjacent pair whose
//! concatenation is a token with the highest score merges first (ties: leftmost); a final
//! symbol that is not a token becomes its `<0xNN>` byte tokens. The text is prefixed with a
//! space (`add_space_prefix`) and spaces stand for `▁`; this implementation keeps spaces and
//! stores tokens with `▁` already turned into spaces, and so turns a literal `▁` in the input
//! into a space as llama.cpp's `llama_escape_whitespace` makes the two indistinguishable.

use super::blob::{NO_TOKEN, le32};
use super::heap::Heap;
use super::{Out, Tokenizer, scratch_too_small};
use crate::error::Error;

const LOWER_ONE_EIGHTH_BLOCK: &[u8] = "\u{2581}".as_bytes();

/// Scratch `u32`s one fragment of `len_bytes` needs (plus the optional prefix space): the
/// escaped text, 5 words per symbol, and a heap of at most `3 * symbols` five-word records.
pub(crate) const fn fragment_scratch_elems(len_bytes: usize) -> usize {
    let n = len_bytes.saturating_add(1);
    n.saturating_add(3) / 4 + n.saturating_mul(20)
}

/// Maps an `f32` score to a `u32` that sorts higher scores first.
fn score_key(score: f32) -> u32 {
    let b = score.to_bits();
    let ord = if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    };
    !ord
}

/// Length of the UTF-8 sequence a lead byte announces (1 for stray continuation bytes).
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

struct Syms<'s> {
    start: &'s mut [u32],
    len: &'s mut [u32],
    prev: &'s mut [u32],
    next: &'s mut [u32],
    id: &'s mut [u32],
}

impl Tokenizer<'_> {
    fn spm_score(&self, id: u32) -> f32 {
        f32::from_bits(le32(self.s.scores, id as usize))
    }

    /// Queues the pair `(l, r)` if their concatenation is a token.
    fn spm_try_pair(&self, text: &[u8], sy: &Syms<'_>, heap: &mut Heap<'_, 5>, l: u32, r: u32) {
        let (Some(&s), Some(&ll), Some(&rl)) = (
            sy.start.get(l as usize),
            sy.len.get(l as usize),
            sy.len.get(r as usize),
        ) else {
            return;
        };
        let size = ll + rl;
        let Some(bytes) = text.get(s as usize..(s + size) as usize) else {
            return;
        };
        if let Some(id) = self.lookup(bytes) {
            heap.push([score_key(self.spm_score(id)), l, r, size, id]);
        }
    }

    /// Encodes one raw-text fragment, prefixed with a space when `prefix`.
    pub(crate) fn spm_fragment(
        &self,
        frag: &str,
        prefix: bool,
        out: &mut Out<'_>,
        scratch: &mut [u32],
    ) -> Result<(), Error> {
        let need = fragment_scratch_elems(frag.len());
        if scratch.len() < need {
            return Err(scratch_too_small(need, scratch.len()));
        }
        let cap = frag.len() + 1;
        let (tw, rest) = scratch.split_at_mut(cap.div_ceil(4));
        let tb: &mut [u8] = bytemuck::cast_slice_mut(tw);
        let mut tl = 0;
        if prefix {
            tb[0] = b' ';
            tl = 1;
        }
        let fb = frag.as_bytes();
        let mut i = 0;
        while i < fb.len() {
            if fb[i..].starts_with(LOWER_ONE_EIGHTH_BLOCK) {
                tb[tl] = b' ';
                i += LOWER_ONE_EIGHTH_BLOCK.len();
            } else {
                tb[tl] = fb[i];
                i += 1;
            }
            tl += 1;
        }
        let text: &[u8] = &tb[..tl];
        if text.is_empty() {
            return Ok(());
        }

        let (start, rest) = rest.split_at_mut(cap);
        let (len, rest) = rest.split_at_mut(cap);
        let (prev, rest) = rest.split_at_mut(cap);
        let (next, rest) = rest.split_at_mut(cap);
        let (id, rest) = rest.split_at_mut(cap);
        let sy = Syms {
            start,
            len,
            prev,
            next,
            id,
        };
        let mut heap = Heap::<5>::new(rest);

        let mut n = 0usize;
        let mut off = 0usize;
        while off < text.len() {
            let l = utf8_len(text[off]).min(text.len() - off);
            sy.start[n] = off as u32;
            sy.len[n] = l as u32;
            sy.prev[n] = if n == 0 { NO_TOKEN } else { (n - 1) as u32 };
            sy.next[n] = if off + l < text.len() {
                (n + 1) as u32
            } else {
                NO_TOKEN
            };
            sy.id[n] = self.lookup(&text[off..off + l]).unwrap_or(NO_TOKEN);
            off += l;
            n += 1;
        }
        for i in 1..n {
            self.spm_try_pair(text, &sy, &mut heap, (i - 1) as u32, i as u32);
        }
        while let Some([_, l, r, size, tok]) = heap.pop() {
            let (lu, ru) = (l as usize, r as usize);
            let (Some(&ll), Some(&rl)) = (sy.len.get(lu), sy.len.get(ru)) else {
                continue;
            };
            if ll == 0 || rl == 0 || ll + rl != size {
                continue; // stale
            }
            sy.len[lu] = size;
            sy.len[ru] = 0;
            let rn = sy.next[ru];
            sy.next[lu] = rn;
            if let Some(p) = sy.prev.get_mut(rn as usize) {
                *p = l;
            }
            sy.id[lu] = tok;
            let pl = sy.prev[lu];
            if pl != NO_TOKEN {
                self.spm_try_pair(text, &sy, &mut heap, pl, l);
            }
            if rn != NO_TOKEN {
                self.spm_try_pair(text, &sy, &mut heap, l, rn);
            }
        }

        let mut i = 0u32;
        while let Some(&tok) = sy.id.get(i as usize) {
            let iu = i as usize;
            if tok != NO_TOKEN {
                out.push(tok)?;
            } else {
                let (s, l) = (sy.start[iu] as usize, sy.len[iu] as usize);
                for &b in text.get(s..s + l).unwrap_or(&[]) {
                    let bt = self.byte_id(b);
                    if bt != NO_TOKEN {
                        out.push(bt)?;
                    } else if self.s.unk != NO_TOKEN {
                        out.push(self.s.unk)?;
                    }
                }
            }
            i = sy.next[iu];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_order() {
        let xs = [
            f32::NEG_INFINITY,
            -1000.0,
            -3.5,
            -0.0,
            0.0,
            2.0,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(score_key(w[0]) >= score_key(w[1]), "{w:?}");
        }
        assert!(score_key(-3.5) > score_key(-1.0));
    }
}
