//! The weight-source seam: where a session's weights come from.
//!
//! * **Resident** ([`crate::format::Model`]): the whole file is addressable memory (mmap, flash
//!   XIP, a linked blob); kernels read the weights in place.
//! * **Streamed** ([`WeightSource`]): the weights are read from storage, tensor by tensor in the
//!   order the forward pass uses them, into two staging slots carved from the session's arena
//!   ([`crate::plan::MemoryPlan::split_staging`]). While the forward pass computes with one
//!   slot the source fills the other: double buffering. A platform with threads reads ahead in
//!   the background (Linux: a `pread` thread); a single-core board reads synchronously
//!   ([`SyncSource`] over any [`ReadAt`], e.g. `embedded_io::{Read, Seek}` on flash).
//!
//! Per token, a streamed session reads every tensor of every layer once, the output norm once,
//! the LM head once (in row chunks of at most one slot) and one embedding row per token
//! (through [`WeightSource::read_at`], into a small arena buffer), in this order:
//! layer 0 (`attn_norm, attn_q, attn_k, attn_v, [attn_sub_norm], attn_output, ffn_norm,
//! ffn_gate, ffn_up, [ffn_sub_norm], ffn_down`), layer 1, …, `output_norm`, LM head chunks.
//! Prefill reads them once per batch of prompt tokens.
//!
//! With [`crate::plan::RunOptions::pin_bytes`], the first units of that order that fit are
//! read once into the arena when the session starts ("pinned") and never read again: a model
//! a little larger than the RAM budget streams only the part that does not fit.

use crate::Error;
use crate::format::{LayerTensor, TensorRole, TernFile};

/// [`LayerTensor::ALL`] (the order the forward pass reads a layer's tensors) for graphs without
/// sub-norms.
const LAYER_ORDER_NO_SUB: [LayerTensor; 9] = [
    LayerTensor::AttnNorm,
    LayerTensor::Q,
    LayerTensor::K,
    LayerTensor::V,
    LayerTensor::O,
    LayerTensor::FfnNorm,
    LayerTensor::Gate,
    LayerTensor::Up,
    LayerTensor::Down,
];

/// A layer's tensors in the order the forward pass reads them (the streaming order).
fn layer_order(file: &TernFile<'_>) -> &'static [LayerTensor] {
    if file.header.config.sub_norms {
        &LayerTensor::ALL
    } else {
        &LAYER_ORDER_NO_SUB
    }
}

/// Units (reads) of one pass: every layer tensor, then, if logits are wanted, the output norm
/// and the LM head in chunks of `head_rows` rows.
pub(crate) fn stream_units(file: &TernFile<'_>, head_rows: usize, want_logits: bool) -> usize {
    let c = &file.header.config;
    let layer_units = c.n_layers as usize * layer_order(file).len();
    let head_units = (c.vocab_size as usize).div_ceil(head_rows.max(1));
    layer_units + if want_logits { 1 + head_units } else { 0 }
}

/// Byte range `(offset, len)` of unit `i` of a pass (see [`stream_units`]).
pub(crate) fn stream_unit(file: &TernFile<'_>, head_rows: usize, i: usize) -> (u64, usize) {
    let c = &file.header.config;
    let order = layer_order(file);
    let layer_units = c.n_layers as usize * order.len();
    let t = if i < layer_units {
        file.layer(i / order.len(), order[i % order.len()])
    } else if i == layer_units {
        file.global(TensorRole::OutputNorm)
    } else {
        let head = file.lm_head();
        let hrb = head.layout.row_bytes(c.dim as usize).expect("validated");
        let r0 = (i - layer_units - 1) * head_rows;
        let rows = head_rows.min(c.vocab_size as usize - r0);
        return (head.offset + (r0 * hrb) as u64, rows * hrb);
    };
    let t = t.expect("validated at parse");
    (t.offset, t.len as usize)
}

/// Blocking positional reads from a model file: the minimal driver a storage device needs.
pub trait ReadAt {
    /// Fill all of `buf` with the file bytes at `offset_bytes..offset_bytes + buf.len()`.
    ///
    /// # Errors
    /// [`Error::WeightRead`] (or any core error) if the bytes cannot be read in full.
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), Error>;
}

impl<R: ReadAt + ?Sized> ReadAt for &mut R {
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), Error> {
        (**self).read_at(offset_bytes, buf)
    }
}

/// A streamed weight source with (at least) two staging slots, used as a FIFO of reads.
///
/// Protocol (what [`crate::session::Session`] does): `begin(a)`, then per unit
/// `begin(next)`, `wait()` → the bytes of the oldest unbegun-and-unwaited read. At most two
/// reads are outstanding (begun, not yet returned by `wait`), and a slot returned by `wait`
/// is released by the next `begin` (the borrow checker enforces that the caller is done with
/// it).
pub trait WeightSource {
    /// Queue a read of `len_bytes` at `offset_bytes` into a free staging slot. A source with a
    /// background reader starts it now; a synchronous one may read it here.
    ///
    /// # Errors
    /// [`Error::WeightRead`] if the read fails or `len_bytes` exceeds a slot, or
    /// [`Error::StreamProtocol`] if two reads are already outstanding.
    fn begin(&mut self, offset_bytes: u64, len_bytes: usize) -> Result<(), Error>;
    /// Wait for the oldest outstanding read and return its bytes (`len_bytes` long).
    ///
    /// # Errors
    /// The read's error, or [`Error::StreamProtocol`] if nothing is outstanding.
    fn wait(&mut self) -> Result<&[u8], Error>;
    /// A small blocking read outside the FIFO (an embedding row, `dim` values), into the
    /// caller's buffer. May run while reads are outstanding.
    ///
    /// # Errors
    /// [`Error::WeightRead`] if the bytes cannot be read in full.
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), Error>;
}

/// A [`WeightSource`] that reads synchronously in [`WeightSource::begin`] through a
/// [`ReadAt`] driver, into two staging slots (from [`crate::plan::MemoryPlan::split_staging`]).
/// For single-core targets, where there is nothing to overlap the read with.
#[derive(Debug)]
pub struct SyncSource<'s, R> {
    reader: R,
    slots: [&'s mut [u8]; 2],
    lens: [usize; 2],
    /// Slot of the oldest outstanding read.
    head: usize,
    outstanding: usize,
}

impl<'s, R: ReadAt> SyncSource<'s, R> {
    /// A source reading through `reader` into the two staging `slots`.
    pub fn new(reader: R, slots: [&'s mut [u8]; 2]) -> Self {
        SyncSource {
            reader,
            slots,
            lens: [0; 2],
            head: 0,
            outstanding: 0,
        }
    }
    /// The driver (e.g. to read its counters).
    pub fn reader(&self) -> &R {
        &self.reader
    }
    /// The driver, mutably.
    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}

impl<R: ReadAt> WeightSource for SyncSource<'_, R> {
    fn begin(&mut self, offset_bytes: u64, len_bytes: usize) -> Result<(), Error> {
        if self.outstanding == 2 {
            return Err(Error::StreamProtocol);
        }
        let s = (self.head + self.outstanding) % 2;
        let slot = self.slots[s]
            .get_mut(..len_bytes)
            .ok_or(Error::WeightRead {
                offset_bytes,
                len_bytes: len_bytes as u64,
            })?;
        self.reader.read_at(offset_bytes, slot)?;
        self.lens[s] = len_bytes;
        self.outstanding += 1;
        Ok(())
    }
    fn wait(&mut self) -> Result<&[u8], Error> {
        if self.outstanding == 0 {
            return Err(Error::StreamProtocol);
        }
        let s = self.head;
        self.head = (s + 1) % 2;
        self.outstanding -= 1;
        Ok(&self.slots[s][..self.lens[s]])
    }
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.reader.read_at(offset_bytes, buf)
    }
}

/// A [`ReadAt`] over bytes in memory (tests; a model already in RAM read as if streamed).
#[derive(Clone, Copy, Debug)]
pub struct SliceReader<'b>(pub &'b [u8]);

impl ReadAt for SliceReader<'_> {
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), Error> {
        let err = Error::WeightRead {
            offset_bytes,
            len_bytes: buf.len() as u64,
        };
        let start = usize::try_from(offset_bytes).map_err(|_| err)?;
        let end = start.checked_add(buf.len()).ok_or(err)?;
        buf.copy_from_slice(self.0.get(start..end).ok_or(err)?);
        Ok(())
    }
}
