//! Byte-level BPE (Llama-3): merge one pre-token by rank.
//!
//! Source: llama.cpp `llama-vocab.cpp` `llm_tokenizer_bpe_session::tokenize` (a priority queue
//! of adjacent pairs ordered by merge rank, then by left position; stale pairs skipped), and
//! Hugging Face `tokenizers` `models/bpe/word.rs` `Word::merge_all` (same order), with
//! `ignore_merges` (`models/bpe/model.rs`: a word that is itself in the vocabulary is one token).
//! Working on raw bytes with ids is equivalent to working on GPT-2-mapped strings, since the
//! mapping is a bijection between bytes and the characters initial symbols are made of.

use super::blob::{FLAG_IGNORE_MERGES, NO_TOKEN};
use super::heap::Heap;
use super::{Out, Tokenizer, scratch_too_small};
use crate::error::Error;

/// Marks a symbol merged into its left neighbour.
const DEAD: u32 = u32::MAX - 1;

/// Scratch `u32`s one pre-token of `len_bytes` needs: ids, prev, next, and a heap of at most
/// `3 * len_bytes` two-word records.
pub(crate) const fn chunk_scratch_elems(len_bytes: usize) -> usize {
    len_bytes.saturating_mul(9)
}

impl Tokenizer<'_> {
    /// Rank and result of merging `left` then `right`, if the vocabulary has that merge.
    #[inline]
    pub(crate) fn find_merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let key = (u64::from(left) << 32) | u64::from(right);
        let (mut lo, mut hi) = (0usize, self.s.merges.len() / super::blob::MERGE_BYTES);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let [l, r, rank, res] = self.s.merge(mid);
            let k = (u64::from(l) << 32) | u64::from(r);
            match k.cmp(&key) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some((rank, res)),
            }
        }
        None
    }

    /// Encodes one pre-token's bytes into `out`.
    pub(crate) fn bpe_chunk(
        &self,
        chunk: &[u8],
        out: &mut Out<'_>,
        scratch: &mut [u32],
    ) -> Result<(), Error> {
        if self.s.flags & FLAG_IGNORE_MERGES != 0
            && let Some(id) = self.lookup(chunk)
        {
            return out.push(id);
        }
        let k = chunk.len();
        if k <= 1 {
            if let Some(&b) = chunk.first() {
                let id = self.byte_id(b);
                if id != NO_TOKEN {
                    out.push(id)?;
                }
            }
            return Ok(());
        }
        let need = chunk_scratch_elems(k);
        if scratch.len() < need {
            return Err(scratch_too_small(need, scratch.len()));
        }
        let (ids, rest) = scratch.split_at_mut(k);
        let (prev, rest) = rest.split_at_mut(k);
        let (next, rest) = rest.split_at_mut(k);
        let mut heap = Heap::<2>::new(rest);
        for (i, &b) in chunk.iter().enumerate() {
            ids[i] = self.byte_id(b);
            prev[i] = if i == 0 { NO_TOKEN } else { (i - 1) as u32 };
            next[i] = if i + 1 < k { (i + 1) as u32 } else { NO_TOKEN };
        }
        for i in 0..k - 1 {
            if let Some((rank, _)) = self.find_merge(ids[i], ids[i + 1]) {
                heap.push([rank, i as u32]);
            }
        }
        while let Some([rank, left]) = heap.pop() {
            let l = left as usize;
            let Some(&pl) = prev.get(l) else { continue };
            let r = next[l];
            if pl == DEAD || r == NO_TOKEN {
                continue;
            }
            let ru = r as usize;
            let Some((rk, res)) = self.find_merge(ids[l], ids[ru]) else {
                continue;
            };
            if rk != rank {
                continue; // stale: a neighbour changed since this pair was queued
            }
            ids[l] = res;
            let rn = next[ru];
            next[l] = rn;
            if let Some(p) = prev.get_mut(rn as usize) {
                *p = left;
            }
            prev[ru] = DEAD;
            if pl != NO_TOKEN
                && let Some(&lid) = ids.get(pl as usize)
                && let Some((rank, _)) = self.find_merge(lid, res)
            {
                heap.push([rank, pl]);
            }
            if let Some(&rid) = ids.get(rn as usize)
                && let Some((rank, _)) = self.find_merge(res, rid)
            {
                heap.push([rank, left]);
            }
        }
        let mut i = 0u32;
        while let Some(&id) = ids.get(i as usize) {
            if id != NO_TOKEN {
                out.push(id)?;
            }
            i = next[i as usize];
        }
        Ok(())
    }
}
