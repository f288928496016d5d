//! Memory planning: one arena, sized up front from the header and the run options.
//!
//! [`MemoryPlan::new`] computes the byte size of every buffer a session needs; the platform
//! provides one 64-byte-aligned `&mut [u8]` of [`MemoryPlan::arena_bytes`] and
//! [`crate::session::Session::new`] carves it. Nothing is allocated after that.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::ModelConfig;
use crate::format::{LayerTensor, TensorRole, TernFile};
use crate::source::{stream_unit, stream_units};

/// KV cache element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvDtype {
    /// 4 bytes per value (exact reference numerics).
    F32,
    /// 2 bytes per value (IEEE binary16).
    F16,
    /// 34 bytes per 32 values (GGUF Q8_0 blocks: an f16 scale, then 32 int8 values, as
    /// llama.cpp's `--cache-type-k/-v q8_0`): 8.5 bits per value, about half of F16. Needs
    /// `head_dim` a multiple of 32 of at most 256 ([`KvDtype::check`]).
    Q8_0,
}

impl KvDtype {
    /// Bytes that store `vals` values (a multiple of 32 for Q8_0); `None` on overflow.
    pub fn bytes_for(self, vals: usize) -> Option<usize> {
        match self {
            KvDtype::F32 => vals.checked_mul(4),
            KvDtype::F16 => vals.checked_mul(2),
            KvDtype::Q8_0 => (vals / 32).checked_mul(34),
        }
    }

    /// Checks that this type can store a model's KV rows of `head_dim` values.
    ///
    /// # Errors
    /// [`Error::BadConfig`] for Q8_0 when `head_dim` is not a multiple of 32 (whole blocks per
    /// row) or above 256 (attention quantizes the query heads into stack buffers).
    pub fn check(self, head_dim: usize) -> Result<(), Error> {
        if self == KvDtype::Q8_0 && (!head_dim.is_multiple_of(32) || head_dim > 256) {
            return Err(Error::BadConfig {
                what: "a Q8_0 KV cache needs head_dim a multiple of 32, at most 256",
            });
        }
        Ok(())
    }

    /// The name the CLI and benchmarks use (`f32`, `f16`, `q8_0`: llama.cpp's cache types).
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
            KvDtype::Q8_0 => "q8_0",
        }
    }
}

/// What the user chose for this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Context length (KV cache capacity), tokens.
    pub ctx_len: u32,
    /// KV cache element type.
    pub kv: KvDtype,
    /// Most prompt tokens evaluated together by [`crate::session::Session::prefill`] (one
    /// pass over the weights per batch). 1 = token by token (smallest arena).
    pub batch: u32,
    /// Stream the weights from storage through two arena staging slots (see
    /// [`crate::source`]) instead of reading them in place.
    pub stream: bool,
    /// Streamed only: arena bytes for "pinned" weights, the first tensors of the stream order
    /// that fit, read once when the session starts and never streamed again (0: stream all).
    pub pin_bytes: usize,
}

impl RunOptions {
    /// Options with `batch` = [`RunOptions::DEFAULT_BATCH`].
    pub fn new(ctx_len: u32, kv: KvDtype) -> RunOptions {
        RunOptions {
            ctx_len,
            kv,
            batch: Self::DEFAULT_BATCH,
            stream: false,
            pin_bytes: 0,
        }
    }
    /// Default prefill batch, tokens.
    pub const DEFAULT_BATCH: u32 = 64;
}

/// Alignment of every arena region, bytes.
pub const REGION_ALIGN: usize = 64;

/// Byte sizes of every arena region (each rounded up to 64 bytes), in carve order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Options the plan was made for.
    pub opts: RunOptions,
    /// Weight bytes in the file. Resident: mapped or in flash, outside the arena.
    /// Streamed: read from storage through the staging slots, every token. Informational.
    pub weights_bytes: u64,
    /// KV cache: `2 * n_layers * ctx_len * kv_dim` values.
    pub kv_bytes: usize,
    /// Activations for `batch` tokens: residual, normed input, q/k/v, attention output, FFN
    /// buffers, int8 and int32 matmul buffers, activation scales, RoPE tables.
    pub act_bytes: usize,
    /// Attention scratch: per head, its outputs `(batch, head_dim)` and scores `(ctx_len,)`, f32.
    pub att_bytes: usize,
    /// Logits `(vocab_size,)` f32.
    pub logits_bytes: usize,
    /// Sampler scratch: candidate ids and probabilities `(vocab_size,)` each, and the token
    /// history `(ctx_len,)` u32.
    pub sampler_bytes: usize,
    /// Streamed only: one embedding row, read per token (0 when resident).
    pub row_bytes: usize,
    /// Streamed only: bytes of one staging slot, the largest streamed unit: the largest layer
    /// tensor (or the output norm, or one LM-head row); the LM head is read in chunks of
    /// [`MemoryPlan::head_chunk_rows`] rows. 0 when resident.
    pub slot_bytes: usize,
    /// Streamed only: the two staging slots, at the end of the arena (0 when resident).
    pub staging_bytes: usize,
    /// Streamed only: the pinned weights (each unit 64-byte aligned), the last part of
    /// `session_bytes` (0 when nothing is pinned).
    pub pinned_bytes: usize,
    /// Streamed only: how many leading units of every pass are pinned.
    pub pinned_units: usize,
    /// Streamed only: weight bytes pinned (`pinned_bytes` without alignment padding), read
    /// once when the session starts.
    pub pinned_weight_bytes: u64,
    /// Streamed only: weight bytes read from storage per pass that computes logits (every
    /// unit not pinned).
    pub streamed_bytes_per_pass: u64,
    /// Everything but the staging slots: what [`crate::session::Session`] carves.
    pub session_bytes: usize,
    /// Total arena size: `session_bytes + staging_bytes`.
    pub arena_bytes: usize,
}

/// Round `n` up to [`REGION_ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(REGION_ALIGN) * REGION_ALIGN
}

/// Sizes (elements) of the activation buffers, shared by the plan and the session carver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ActSizes {
    pub dim: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub hidden: usize,
    pub wide: usize,
    /// Widest stacked BitLinear output: Q|K|V or gate|up (see `TernaryStack`).
    pub stack: usize,
    pub half_head: usize,
    pub batch: usize,
}

impl ActSizes {
    pub(crate) fn new(c: &ModelConfig, batch: usize) -> ActSizes {
        let (dim, q_dim, kv_dim, hidden) =
            (c.dim as usize, c.q_dim(), c.kv_dim(), c.hidden_dim as usize);
        ActSizes {
            dim,
            q_dim,
            kv_dim,
            hidden,
            wide: dim.max(q_dim).max(hidden),
            stack: dim.max(q_dim + 2 * kv_dim).max(2 * hidden),
            half_head: c.head_dim as usize / 2,
            batch,
        }
    }
    /// f32 regions (×B: for `batch` tokens): x (dim ×B), xb (wide ×B), q (q_dim ×B),
    /// k (kv_dim ×B), v (kv_dim ×B), att_out (q_dim ×B), hb (stack ×B), hb2 (hidden ×B),
    /// rope cos (half_head ×B), rope sin (half_head ×B), decoded norm weights (wide), s_a (B).
    pub(crate) fn f32_regions(&self) -> [usize; 12] {
        let (s, b) = (self, self.batch);
        [
            s.dim * b,
            s.wide * b,
            s.q_dim * b,
            s.kv_dim * b,
            s.kv_dim * b,
            s.q_dim * b,
            s.stack * b,
            s.hidden * b,
            s.half_head * b,
            s.half_head * b,
            s.wide,
            b,
        ]
    }
    pub(crate) fn bytes(&self) -> usize {
        let f: usize = self.f32_regions().iter().map(|&n| align_up(n * 4)).sum();
        // xq: int8 (batch, wide); acc: int32 (stack, batch)
        f + align_up(self.wide * self.batch) + align_up(self.stack * self.batch * 4)
    }
}

impl MemoryPlan {
    /// Plan the arena for `config` under `opts` with resident weights (`opts.stream` is
    /// ignored: streaming needs the tensor table, see [`MemoryPlan::for_file`]).
    /// `weights_bytes` is reported, not allocated.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `ctx_len` is 0, a size overflows `usize`, or the KV type cannot
    /// store this model's rows ([`KvDtype::check`]).
    pub fn new(
        config: &ModelConfig,
        weights_bytes: u64,
        opts: RunOptions,
    ) -> Result<MemoryPlan, Error> {
        if opts.ctx_len == 0 {
            return Err(Error::BadConfig {
                what: "ctx_len must be at least 1",
            });
        }
        let ovf = Error::BadConfig {
            what: "memory plan overflows usize",
        };
        let ctx = opts.ctx_len as usize;
        let kv_vals = 2usize
            .checked_mul(config.n_layers as usize)
            .and_then(|v| v.checked_mul(ctx))
            .and_then(|v| v.checked_mul(config.kv_dim()))
            .ok_or(ovf)?;
        // Two regions (K and V), each aligned.
        opts.kv.check(config.head_dim as usize)?;
        let kv_bytes = 2 * align_up(opts.kv.bytes_for(kv_vals).ok_or(ovf)? / 2);
        let act_bytes = ActSizes::new(config, opts.batch as usize).bytes();
        let att_bytes = align_up(
            (config.n_heads as usize)
                .checked_mul(
                    (opts.batch as usize)
                        .checked_mul(config.head_dim as usize)
                        .and_then(|v| v.checked_add(ctx))
                        .ok_or(ovf)?,
                )
                .and_then(|v| v.checked_mul(4))
                .ok_or(ovf)?,
        );
        let vocab = config.vocab_size as usize;
        let logits_bytes = align_up(vocab * 4);
        let sampler_bytes = 2 * align_up(vocab * 4) + align_up(ctx * 4);
        let arena_bytes = [kv_bytes, act_bytes, att_bytes, logits_bytes, sampler_bytes]
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .ok_or(ovf)?;
        Ok(MemoryPlan {
            opts,
            weights_bytes,
            kv_bytes,
            act_bytes,
            att_bytes,
            logits_bytes,
            sampler_bytes,
            row_bytes: 0,
            slot_bytes: 0,
            staging_bytes: 0,
            pinned_bytes: 0,
            pinned_units: 0,
            pinned_weight_bytes: 0,
            streamed_bytes_per_pass: 0,
            session_bytes: arena_bytes,
            arena_bytes,
        })
    }
}

/// Streaming sizes from the tensor table: (embedding row bytes, slot bytes).
fn stream_sizes(file: &TernFile<'_>) -> Result<(usize, usize), Error> {
    let c = &file.header.config;
    let ovf = Error::BadConfig {
        what: "streaming unit larger than usize",
    };
    let emb = file.global(TensorRole::TokenEmbd).ok_or(ovf)?;
    // the embedding lookup's buffer: a row, or an interleaved row's largest piece
    let row = crate::embed::EmbeddingRow::max_piece_bytes(emb.layout, c.dim as usize).ok_or(ovf)?;
    let head = file.lm_head();
    // the smallest head chunk: one row, or one group of rows (F16_R8, Q4_0_R8)
    let head_row = head.layout.row_bytes(c.dim as usize).ok_or(ovf)?;
    let head_unit = head_row.checked_mul(head.layout.row_group()).ok_or(ovf)?;
    let mut slot = head_unit.max(
        file.global(TensorRole::OutputNorm)
            .map_or(0, |t| t.len as usize),
    );
    for l in 0..c.n_layers as usize {
        for kind in LayerTensor::ALL {
            if let Some(t) = file.layer(l, kind) {
                slot = slot.max(usize::try_from(t.len).map_err(|_| ovf)?);
            }
        }
    }
    Ok((row, slot))
}

impl MemoryPlan {
    /// Plan the arena for the model described by `file` (header and tensor table) under
    /// `opts`; with `opts.stream`, the staging slots and the embedding-row buffer are sized
    /// from the tensor table.
    ///
    /// # Errors
    /// As [`MemoryPlan::new`].
    pub fn for_file(file: &TernFile<'_>, opts: RunOptions) -> Result<MemoryPlan, Error> {
        let mut p = MemoryPlan::new(&file.header.config, file.weight_bytes(), opts)?;
        if opts.stream {
            let (row, slot) = stream_sizes(file)?;
            p.row_bytes = align_up(row);
            p.slot_bytes = slot;
            p.staging_bytes = 2 * align_up(slot);
            let ovf = Error::BadConfig {
                what: "memory plan overflows usize",
            };
            // Pin the leading units of the stream order while they fit `pin_bytes`.
            let head = file.lm_head();
            let hrb = head
                .layout
                .row_bytes(file.header.config.dim as usize)
                .ok_or(ovf)?;
            let head_rows = p.head_chunk_rows(hrb, head.layout.row_group());
            let n = stream_units(file, head_rows, true);
            let (mut pinned, mut pinned_len, mut units, mut total) = (0usize, 0u64, 0usize, 0u64);
            for i in 0..n {
                let (_, len) = stream_unit(file, head_rows, i);
                total += len as u64;
                if units == i && pinned + align_up(len) <= opts.pin_bytes {
                    pinned += align_up(len);
                    pinned_len += len as u64;
                    units += 1;
                }
            }
            p.pinned_bytes = pinned;
            p.pinned_units = units;
            p.pinned_weight_bytes = pinned_len;
            p.streamed_bytes_per_pass = total - pinned_len;
            p.session_bytes = p
                .session_bytes
                .checked_add(p.row_bytes)
                .and_then(|v| v.checked_add(pinned))
                .ok_or(ovf)?;
            p.arena_bytes = p.session_bytes.checked_add(p.staging_bytes).ok_or(ovf)?;
        }
        Ok(p)
    }

    /// Rows of the LM head read per streamed chunk: as many whole groups of `group` rows of
    /// `head_row_bytes` as fit a staging slot (at least one group; `group` is the head
    /// layout's [`tern_kernels::layout::Layout::row_group`], 1 but for `F16_R8` and `Q4_0_R8`).
    pub fn head_chunk_rows(&self, head_row_bytes: usize, group: usize) -> usize {
        let group = group.max(1);
        (self.slot_bytes / head_row_bytes.saturating_mul(group).max(1)).max(1) * group
    }

    /// Split an arena of at least [`MemoryPlan::arena_bytes`] into the session's part and the
    /// two staging slots (each [`MemoryPlan::slot_bytes`] long, 64-byte aligned if the arena
    /// is). Give the slots to the platform's [`crate::source::WeightSource`] and the first part
    /// to [`crate::session::Session::new_streamed`].
    ///
    /// # Errors
    /// [`Error::ArenaTooSmall`] if `arena` is shorter than the plan.
    #[allow(clippy::type_complexity)]
    pub fn split_staging<'x>(
        &self,
        arena: &'x mut [u8],
    ) -> Result<(&'x mut [u8], [&'x mut [u8]; 2]), Error> {
        if arena.len() < self.arena_bytes {
            return Err(Error::ArenaTooSmall {
                need_bytes: self.arena_bytes as u64,
                have_bytes: arena.len() as u64,
            });
        }
        let (sess, staging) = arena.split_at_mut(self.session_bytes);
        let (a, b) = staging.split_at_mut(self.staging_bytes / 2);
        Ok((sess, [&mut a[..self.slot_bytes], &mut b[..self.slot_bytes]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FfnAct, FfnActSource};

    fn b2b4t() -> ModelConfig {
        ModelConfig {
            ffn_act: FfnAct::Relu2,
            ffn_act_source: FfnActSource::Metadata,
            sub_norms: true,
            tied_embedding: true,
            dim: 2560,
            hidden_dim: 6912,
            n_layers: 30,
            n_heads: 20,
            n_kv_heads: 5,
            head_dim: 128,
            vocab_size: 128256,
            max_ctx: 4096,
            rope_theta: 500000.0,
            norm_eps: 1e-5,
        }
    }

    #[test]
    fn b2b4t_kv_is_75_kib_per_token_in_f16() {
        let c = b2b4t();
        let p = MemoryPlan::new(&c, 0, RunOptions::new(4096, KvDtype::F16)).unwrap();
        // DESIGN.md: 30 × 5 × 128 × 2 values per token = 75 KiB/token in f16.
        assert_eq!(p.kv_bytes, 75 * 1024 * 4096);
        assert!(p.arena_bytes > p.kv_bytes);
        assert!(MemoryPlan::new(&c, 0, RunOptions::new(0, KvDtype::F16)).is_err());
    }

    #[test]
    fn q8_0_kv_is_34_bytes_per_32_values_and_needs_whole_blocks() {
        let c = b2b4t();
        let p = MemoryPlan::new(&c, 0, RunOptions::new(4096, KvDtype::Q8_0)).unwrap();
        // K and V, 30 layers × 5 KV heads × 4 blocks of 34 bytes per token
        assert_eq!(p.kv_bytes, 2 * 30 * 5 * 4 * 34 * 4096);
        for bad_hd in [48u32, 288] {
            let c = ModelConfig {
                head_dim: bad_hd,
                ..b2b4t()
            };
            assert!(
                matches!(
                    MemoryPlan::new(&c, 0, RunOptions::new(64, KvDtype::Q8_0)),
                    Err(Error::BadConfig { .. })
                ),
                "head_dim {bad_hd}"
            );
            assert!(MemoryPlan::new(&c, 0, RunOptions::new(64, KvDtype::F16)).is_ok());
        }
    }
}
