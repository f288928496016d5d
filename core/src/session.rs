//! A decoding session: the model, the chosen kernels, the platform's [`Exec`], and every
//! buffer carved from one arena. [`Session::forward`] runs one token through the graph and
//! returns its logits; nothing is allocated.

use tern_kernels::KernelSet;
use tern_kernels::float::scalar::decode_row;
use tern_kernels::layout::{Layout, TernaryLayout};

use crate::Error;
use crate::attention::{self, KvRows};
use crate::embed::EmbeddingRow;
use crate::exec::Exec;
use crate::format::{LayerTensor, Model, TensorInfo, TensorRole, TernFile};
use crate::forward::{self, TernaryStack, TernaryWeight};
use crate::plan::{ActSizes, KvDtype, MemoryPlan, REGION_ALIGN, RunOptions, align_up};
use crate::sampler::Sampler;
use crate::source::{WeightSource, stream_unit, stream_units};

/// Where the weights are read from.
enum Weights<'m, 'a> {
    /// The whole file, in place.
    Resident(&'m [u8]),
    /// Streamed through a source, unit by unit in the order of [`Stream::unit`].
    Streamed(Stream<'a>),
}

/// The state of a streamed pass over the weights.
struct Stream<'a> {
    src: &'a mut dyn WeightSource,
    /// Index of the next unit `fetch` returns.
    cursor: usize,
    /// Units begun so far in this pass (pinned units count as begun).
    begun: usize,
    /// Reads begun and not yet waited for.
    outstanding: usize,
    /// Units in this pass (layers, then the output norm and LM-head chunks if logits are
    /// wanted).
    n_units: usize,
    /// Rows of the LM head per chunk.
    head_rows: usize,
    /// The first `pinned_units` units of every pass, read once into the arena.
    pinned: &'a [u8],
    pinned_units: usize,
    /// Offset in `pinned` of the next pinned unit this pass.
    pin_off: usize,
}

impl Stream<'_> {
    /// Byte range `(offset, len)` of unit `i` of a pass.
    fn unit(&self, file: &TernFile<'_>, i: usize) -> (u64, usize) {
        stream_unit(file, self.head_rows, i)
    }
}

impl<'m> Weights<'m, '_> {
    /// Streamed: wait out the reads an interrupted pass left outstanding.
    fn drain(&mut self) {
        if let Weights::Streamed(st) = self {
            while st.outstanding > 0 {
                st.outstanding -= 1;
                let _ = st.src.wait();
            }
        }
    }

    /// Start a pass over the weights (streamed: begin the first unit that is not pinned).
    fn start_pass(&mut self, file: &TernFile<'_>, want_logits: bool) -> Result<(), Error> {
        let Weights::Streamed(st) = self else {
            return Ok(());
        };
        st.n_units = stream_units(file, st.head_rows, want_logits);
        st.cursor = 0;
        st.pin_off = 0;
        st.begun = st.pinned_units.min(st.n_units);
        if st.begun < st.n_units {
            let (off, len) = st.unit(file, st.begun);
            st.src.begin(off, len)?;
            st.outstanding += 1;
            st.begun += 1;
        }
        Ok(())
    }

    /// The bytes `offset..offset + len` of the file: in place, or the next streamed unit (which
    /// must be exactly this range), from the pinned copy or the source.
    fn fetch(&mut self, file: &TernFile<'_>, offset: u64, len: usize) -> Result<&[u8], Error> {
        match self {
            Weights::Resident(b) => Ok(&b[offset as usize..offset as usize + len]),
            Weights::Streamed(st) => {
                if st.cursor >= st.begun || st.unit(file, st.cursor) != (offset, len) {
                    return Err(Error::StreamProtocol);
                }
                if st.cursor < st.pinned_units {
                    let at = st.pin_off;
                    st.pin_off += align_up(len);
                    st.cursor += 1;
                    return Ok(&st.pinned[at..at + len]);
                }
                if st.begun < st.n_units {
                    let (o, l) = st.unit(file, st.begun);
                    st.src.begin(o, l)?;
                    st.outstanding += 1;
                    st.begun += 1;
                }
                st.cursor += 1;
                st.outstanding -= 1;
                let d = st.src.wait()?;
                if d.len() != len {
                    return Err(Error::StreamProtocol);
                }
                Ok(d)
            }
        }
    }

    fn tensor(&mut self, file: &TernFile<'_>, t: &TensorInfo) -> Result<&[u8], Error> {
        self.fetch(file, t.offset, t.len as usize)
    }
}

/// A [`TernaryStack`]'s layout, span and its matrices' `(rows, weight_scale)`.
type Stacked<'m, const N: usize> = (TernaryLayout, &'m [u8], [(usize, f32); N]);

/// A mutable KV cache region.
#[derive(Debug)]
enum KvBuf<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [u16]),
    /// Q8_0 blocks, 34 bytes per 32 values ([`KvRows::Q8_0`]).
    Q8_0(&'a mut [u8]),
}

impl KvBuf<'_> {
    /// Stores `src` (one KV head's row of one position, `head_dim` values) at value `at`: as
    /// f32, rounded to f16, or (Q8_0) quantized by the kernels' `quantize_q8_0` (per 32 values
    /// `d = max|x| / 127`, `q = round(x / d)`) with `d` stored as f16, as llama.cpp's
    /// `quantize_row_q8_0` does; `at` and the row then are whole blocks ([`KvDtype::check`]
    /// allows rows of at most 256 values).
    fn store(&mut self, k: &KernelSet, at: usize, src: &[f32]) {
        match self {
            KvBuf::F32(s) => s[at..at + src.len()].copy_from_slice(src),
            KvBuf::F16(s) => {
                for (d, &v) in s[at..at + src.len()].iter_mut().zip(src) {
                    *d = half::f16::from_f32(v).to_bits();
                }
            }
            KvBuf::Q8_0(s) => {
                let n = src.len();
                let (mut q, mut d) = ([0i8; 256], [0f32; 8]);
                (k.quantize_q8_0)(src, &mut q[..n], &mut d[..n / 32]);
                let blocks = s[at / 32 * 34..(at + n) / 32 * 34].chunks_exact_mut(34);
                for ((blk, qb), &db) in blocks.zip(q.chunks_exact(32)).zip(&d) {
                    blk[..2].copy_from_slice(&half::f16::from_f32(db).to_bits().to_le_bytes());
                    for (o, &v) in blk[2..].iter_mut().zip(qb) {
                        *o = v as u8;
                    }
                }
            }
        }
    }
    /// The cache's values `start .. end` (whole Q8_0 blocks).
    fn rows(&self, start: usize, end: usize) -> KvRows<'_> {
        match self {
            KvBuf::F32(s) => KvRows::F32(&s[start..end]),
            KvBuf::F16(s) => KvRows::F16(&s[start..end]),
            KvBuf::Q8_0(s) => KvRows::Q8_0(&s[start / 32 * 34..end / 32 * 34]),
        }
    }
}

struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    fn bytes(&mut self, n: usize) -> &'a mut [u8] {
        let rest = core::mem::take(&mut self.rest);
        let (a, b) = rest.split_at_mut(align_up(n));
        self.rest = b;
        &mut a[..n]
    }
    fn cast<T: bytemuck::Pod>(&mut self, n: usize) -> Result<&'a mut [T], Error> {
        bytemuck::try_cast_slice_mut(self.bytes(n * core::mem::size_of::<T>()))
            .map_err(|_| Error::ArenaMisaligned)
    }
}

/// The input of a BitLinear for `n = s_a.len()` tokens: row `t` of `src: (n, width)` is
/// RMSNormed into `xb` when `norm` (weights `(width,)`, eps) is given, then quantized by absmax
/// into row `t` of `xq`, its scale into `s_a[t]`. Tokens are independent: chunks of them run in
/// parallel.
fn bitlinear_input(
    k: &KernelSet,
    exec: &dyn Exec,
    src: &[f32],
    norm: Option<(&[f32], f32)>,
    xb: &mut [f32],
    xq: &mut [i8],
    s_a: &mut [f32],
) {
    let n = s_a.len();
    let width = src.len() / n;
    let (xq, xb) = (&mut xq[..n * width], &mut xb[..n * width]);
    exec.par_items_i8_f32_f32(xq, width, s_a, 1, xb, width, 1, &|t0, xq, s_a, xb| {
        for (t, sa) in s_a.iter_mut().enumerate() {
            let row = &src[(t0 + t) * width..(t0 + t + 1) * width];
            let q = &mut xq[t * width..(t + 1) * width];
            *sa = match norm {
                Some((w, eps)) => {
                    let xb = &mut xb[t * width..(t + 1) * width];
                    forward::rmsnorm(row, w, eps, xb);
                    forward::quantize_input(k, xb, q)
                }
                None => forward::quantize_input(k, row, q),
            };
        }
    });
}

/// One generation context over one arena. Activation buffers hold up to `batch` tokens
/// (row `t` of a `(batch, width)` buffer starts at `t * width`).
pub struct Session<'m, 'a> {
    file: &'m TernFile<'m>,
    weights: Weights<'m, 'a>,
    k: &'static KernelSet,
    exec: &'a dyn Exec,
    plan: MemoryPlan,
    pos: usize,
    x: &'a mut [f32],       // residual stream (batch, dim)
    xb: &'a mut [f32],      // normed input of the current op (batch, width ≤ wide)
    q: &'a mut [f32],       // (batch, q_dim), Q|K|V run one by one (streamed weights)
    kb: &'a mut [f32],      // (batch, kv_dim), likewise
    vb: &'a mut [f32],      // (batch, kv_dim), likewise
    att_out: &'a mut [f32], // (batch, q_dim)
    hb: &'a mut [f32],      // (batch, stack): Q|K|V rows, gate|up outputs, FFN down output
    hb2: &'a mut [f32],     // (batch, hidden): act(gate) * up
    cos: &'a mut [f32],     // RoPE tables of the batch's positions (batch, head_dim/2)
    sin: &'a mut [f32],     // (batch, head_dim/2)
    normw: &'a mut [f32],   // decoded norm weights (wide,)
    s_a: &'a mut [f32],     // per-token activation scales (batch,)
    xq: &'a mut [i8],       // int8 activations (batch, width)
    acc: &'a mut [i32],     // int32 accumulators (rows, batch)
    att: &'a mut [f32],     // per head: outputs (batch, head_dim) then scores (ctx)
    logits: &'a mut [f32],  // (vocab,)
    cand: &'a mut [u32],    // sampler candidates (vocab,)
    probs: &'a mut [f32],   // sampler probabilities (vocab,)
    history: &'a mut [u32], // tokens so far (ctx,)
    kc: KvBuf<'a>,          // (n_layers, n_kv_heads, ctx, head_dim): head-major
    vc: KvBuf<'a>,          // (n_layers, n_kv_heads, ctx, head_dim)
    row: &'a mut [u8],      // streamed: one embedding row (row_bytes,)
}

impl core::fmt::Debug for Session<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("pos", &self.pos)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl<'m, 'a> Session<'m, 'a> {
    /// Plan and carve `arena` for `model` (resident: weights read in place) under `opts`,
    /// using kernel set `k` and executor `exec`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `opts` is unusable (or asks to stream: use
    /// [`Session::new_streamed`]), [`Error::ArenaTooSmall`] if
    /// `arena.len() < plan.arena_bytes`, [`Error::ArenaMisaligned`] if it is not 64-byte aligned.
    pub fn new(
        model: &'m Model<'m>,
        k: &'static KernelSet,
        exec: &'a dyn Exec,
        opts: RunOptions,
        arena: &'a mut [u8],
    ) -> Result<Self, Error> {
        if opts.stream {
            return Err(Error::BadConfig {
                what: "streamed weights need Session::new_streamed and a WeightSource",
            });
        }
        let plan = MemoryPlan::for_file(&model.file, opts)?;
        Self::carve(
            &model.file,
            Weights::Resident(model.bytes),
            plan,
            k,
            exec,
            arena,
        )
    }

    /// Plan and carve a session whose weights stream from `src` (see [`crate::source`]).
    /// `file` is the parsed header and tensor table (read without the weights);
    /// `arena` is the session part of [`MemoryPlan::split_staging`] (at least
    /// `plan.session_bytes`), whose staging slots `src` owns. `opts.stream` is implied.
    ///
    /// # Errors
    /// As [`Session::new`], against `plan.session_bytes`.
    pub fn new_streamed(
        file: &'m TernFile<'m>,
        src: &'a mut dyn WeightSource,
        k: &'static KernelSet,
        exec: &'a dyn Exec,
        opts: RunOptions,
        arena: &'a mut [u8],
    ) -> Result<Self, Error> {
        let opts = RunOptions {
            stream: true,
            ..opts
        };
        let plan = MemoryPlan::for_file(file, opts)?;
        let head = file.lm_head();
        let hrb = head
            .layout
            .row_bytes(file.header.config.dim as usize)
            .expect("validated");
        let head_rows = plan.head_chunk_rows(hrb, head.layout.row_group());
        // The pinned units sit at the end of the session's part, after what `carve` uses.
        let need = plan.session_bytes;
        if arena.len() < need {
            return Err(Error::ArenaTooSmall {
                need_bytes: need as u64,
                have_bytes: arena.len() as u64,
            });
        }
        let (arena, pinned) = arena.split_at_mut(need - plan.pinned_bytes);
        let mut at = 0;
        for i in 0..plan.pinned_units {
            let (off, len) = stream_unit(file, head_rows, i);
            src.read_at(off, &mut pinned[at..at + len])?;
            at += align_up(len);
        }
        let st = Stream {
            src,
            cursor: 0,
            begun: 0,
            outstanding: 0,
            n_units: 0,
            head_rows,
            pinned,
            pinned_units: plan.pinned_units,
            pin_off: 0,
        };
        Self::carve(file, Weights::Streamed(st), plan, k, exec, arena)
    }

    fn carve(
        file: &'m TernFile<'m>,
        weights: Weights<'m, 'a>,
        plan: MemoryPlan,
        k: &'static KernelSet,
        exec: &'a dyn Exec,
        arena: &'a mut [u8],
    ) -> Result<Self, Error> {
        let c = file.header.config;
        let opts = plan.opts;
        let need = plan.session_bytes - plan.pinned_bytes;
        if arena.len() < need {
            return Err(Error::ArenaTooSmall {
                need_bytes: need as u64,
                have_bytes: arena.len() as u64,
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
            return Err(Error::ArenaMisaligned);
        }
        let mut cv = Carver { rest: arena };
        let batch = opts.batch as usize;
        let s = ActSizes::new(&c, batch);
        let ctx = opts.ctx_len as usize;
        let kv_vals = c.n_layers as usize * ctx * c.kv_dim();
        let (kc, vc) = match opts.kv {
            KvDtype::F32 => (KvBuf::F32(cv.cast(kv_vals)?), KvBuf::F32(cv.cast(kv_vals)?)),
            KvDtype::F16 => (KvBuf::F16(cv.cast(kv_vals)?), KvBuf::F16(cv.cast(kv_vals)?)),
            KvDtype::Q8_0 => {
                opts.kv.check(c.head_dim as usize)?;
                let b = kv_vals / 32 * 34;
                (KvBuf::Q8_0(cv.bytes(b)), KvBuf::Q8_0(cv.bytes(b)))
            }
        };
        let r = s.f32_regions();
        let vocab = c.vocab_size as usize;
        Ok(Session {
            file,
            weights,
            k,
            exec,
            plan,
            pos: 0,
            kc,
            vc,
            x: cv.cast(r[0])?,
            xb: cv.cast(r[1])?,
            q: cv.cast(r[2])?,
            kb: cv.cast(r[3])?,
            vb: cv.cast(r[4])?,
            att_out: cv.cast(r[5])?,
            hb: cv.cast(r[6])?,
            hb2: cv.cast(r[7])?,
            cos: cv.cast(r[8])?,
            sin: cv.cast(r[9])?,
            normw: cv.cast(r[10])?,
            s_a: cv.cast(r[11])?,
            xq: cv.cast(s.wide * batch)?,
            acc: cv.cast(s.stack * batch)?,
            att: cv.cast(c.n_heads as usize * (batch * c.head_dim as usize + ctx))?,
            logits: cv.cast(vocab)?,
            cand: cv.cast(vocab)?,
            probs: cv.cast(vocab)?,
            history: cv.cast(ctx)?,
            row: cv.bytes(plan.row_bytes),
        })
    }

    /// The arena plan this session runs under.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }
    /// Tokens evaluated so far (the next token's position).
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Tokens evaluated so far.
    pub fn history(&self) -> &[u32] {
        &self.history[..self.pos]
    }
    /// Logits of the last evaluated token, `(vocab_size,)`.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }
    /// Forget all tokens (the KV cache is overwritten as new tokens come).
    pub fn reset(&mut self) {
        self.pos = 0;
    }
    /// The kernel set in use.
    pub fn kernels(&self) -> &'static KernelSet {
        self.k
    }

    fn tw<'w>(
        weights: &'w mut Weights<'m, 'a>,
        file: &TernFile<'_>,
        l: usize,
        kind: LayerTensor,
    ) -> Result<TernaryWeight<'w>, Error> {
        let t = file.layer(l, kind).expect("validated at parse");
        let layout =
            TernaryLayout::from_layout(t.layout).ok_or(Error::WrongLayout { index: t.index })?;
        Ok(TernaryWeight {
            layout,
            data: weights.tensor(file, t)?,
            rows: t.rows as usize,
            cols: t.cols as usize,
            weight_scale: t.weight_scale,
        })
    }

    /// Layer `l`'s ternary matrices `kinds` as one [`TernaryStack`] span with their `(rows,
    /// weight_scale)`, when the weights are resident and the matrices lie back to back in the
    /// file with the same layout and columns (the packer writes Q, K, V and gate, up so);
    /// `None` otherwise (then they run one by one, with identical results).
    fn stacked<const N: usize>(
        weights: &Weights<'m, 'a>,
        file: &TernFile<'_>,
        l: usize,
        kinds: [LayerTensor; N],
    ) -> Option<Stacked<'m, N>> {
        let Weights::Resident(bytes) = weights else {
            return None;
        };
        let ts = kinds.map(|kind| file.layer(l, kind).expect("validated at parse"));
        let first = ts[0];
        let rb = first.layout.row_bytes(first.cols as usize)?;
        for (i, t) in ts.iter().enumerate() {
            let exact = t.len == t.rows as u64 * rb as u64;
            let follows = i == 0 || ts[i - 1].offset + ts[i - 1].len == t.offset;
            if t.layout != first.layout || t.cols != first.cols || !exact || !follows {
                return None;
            }
        }
        let (start, end) = (
            first.offset as usize,
            (ts[N - 1].offset + ts[N - 1].len) as usize,
        );
        let layout = TernaryLayout::from_layout(first.layout)?;
        Some((
            layout,
            &bytes[start..end],
            ts.map(|t| (t.rows as usize, t.weight_scale)),
        ))
    }

    /// Decode the norm weights of tensor `t` into `out`.
    fn norm_weights(
        weights: &mut Weights<'m, 'a>,
        file: &TernFile<'_>,
        t: &TensorInfo,
        out: &mut [f32],
    ) -> Result<(), Error> {
        // Norm weights were validated as non-ternary with shape (1, n) at parse.
        let ok = decode_row(
            t.layout,
            weights.tensor(file, t)?,
            &mut out[..t.cols as usize],
        );
        debug_assert!(ok);
        Ok(())
    }

    /// Run token `token` at position [`Session::pos`] through the model; returns its logits
    /// `(vocab_size,)` and advances the position.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id ≥ vocab size; [`Error::ContextFull`] when
    /// `ctx_len` tokens have been evaluated.
    pub fn forward(&mut self, token: u32) -> Result<&mut [f32], Error> {
        self.eval(&[token], true)?;
        Ok(self.logits)
    }

    /// Evaluate `tokens` (a prompt) in batches of up to `batch` tokens, one pass over the
    /// weights per batch, and return the logits of the last one. Bit-identical to calling
    /// [`Session::forward`] for each token; only the last token pays for the LM head.
    ///
    /// # Errors
    /// As [`Session::forward`]; on error no token of the failing batch is kept.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&mut [f32], Error> {
        let b = self.plan.opts.batch as usize;
        let n_chunks = tokens.len().div_ceil(b);
        for (i, chunk) in tokens.chunks(b).enumerate() {
            self.eval(chunk, i + 1 == n_chunks)?;
        }
        Ok(self.logits)
    }

    /// Evaluate `tokens` (1..=batch) at positions `pos..pos + n`; compute the last token's
    /// logits if `want_logits`.
    fn eval(&mut self, tokens: &[u32], want_logits: bool) -> Result<(), Error> {
        let file = self.file;
        let c = file.header.config;
        let n = tokens.len();
        debug_assert!(n >= 1 && n <= self.plan.opts.batch as usize);
        for &token in tokens {
            if token >= c.vocab_size {
                return Err(Error::TokenOutOfRange {
                    token,
                    vocab_size: c.vocab_size,
                });
            }
        }
        let ctx = self.plan.opts.ctx_len as usize;
        if self.pos + n > ctx {
            return Err(Error::ContextFull {
                ctx_len: ctx as u32,
            });
        }
        let (dim, hidden, q_dim, kv_dim, hd) = (
            c.dim as usize,
            c.hidden_dim as usize,
            c.q_dim(),
            c.kv_dim(),
            c.head_dim as usize,
        );
        let (n_heads, n_kv_heads) = (c.n_heads as usize, c.n_kv_heads as usize);
        let qkv = q_dim + 2 * kv_dim;
        let w = &mut self.weights;
        w.drain();
        let emb = file.global(TensorRole::TokenEmbd).expect("validated");
        let vocab = c.vocab_size as usize;
        for (t, &token) in tokens.iter().enumerate() {
            let e = EmbeddingRow::new(emb.layout, vocab, dim, token as usize);
            let xt = &mut self.x[t * dim..(t + 1) * dim];
            // the whole row, or (F16_R8, Q4_0_R8) the pieces holding it
            for k in 0..e.pieces() {
                let (off, len, vals) = e.piece(k).expect("validated shape, token < vocab");
                let at = emb.offset + off as u64;
                let bytes: &[u8] = match w {
                    Weights::Resident(b) => &b[at as usize..at as usize + len],
                    Weights::Streamed(st) => {
                        st.src.read_at(at, &mut self.row[..len])?;
                        &self.row[..len]
                    }
                };
                e.decode(bytes, &mut xt[vals]);
            }
        }
        w.start_pass(file, want_logits)?;
        // RoPE tables of the batch's positions, shared by every layer
        let hh = hd / 2;
        for t in 0..n {
            let (cos, sin) = (
                &mut self.cos[t * hh..(t + 1) * hh],
                &mut self.sin[t * hh..(t + 1) * hh],
            );
            forward::rope_tables((self.pos + t) as u32, c.rope_theta, hd, cos, sin);
        }
        let k = self.k;
        let exec = self.exec;
        let s_a = &mut self.s_a[..n];
        for l in 0..c.n_layers as usize {
            let lt = |kind| file.layer(l, kind).expect("validated");
            // --- attention block ---
            Self::norm_weights(w, file, lt(LayerTensor::AttnNorm), self.normw)?;
            let norm = Some((&self.normw[..dim], c.norm_eps));
            bitlinear_input(k, exec, &self.x[..n * dim], norm, self.xb, self.xq, s_a);
            let xq = &self.xq[..n * dim];
            const QKV: [LayerTensor; 3] = [LayerTensor::Q, LayerTensor::K, LayerTensor::V];
            if let Some((layout, data, segs)) = Self::stacked(w, file, l, QKV) {
                // one BitLinear over Q, K, V back to back: (n, q_dim + 2 kv_dim) in hb
                let st = TernaryStack {
                    layout,
                    data,
                    cols: dim,
                    segs: &segs,
                };
                let out = &mut self.hb[..n * qkv];
                forward::bitlinear_stack(k, exec, &st, xq, s_a, self.acc, out);
            } else {
                let wq = Self::tw(w, file, l, LayerTensor::Q)?;
                forward::bitlinear_batch(k, exec, wq, xq, s_a, self.acc, self.q);
                let wk = Self::tw(w, file, l, LayerTensor::K)?;
                forward::bitlinear_batch(k, exec, wk, xq, s_a, self.acc, self.kb);
                let wv = Self::tw(w, file, l, LayerTensor::V)?;
                forward::bitlinear_batch(k, exec, wv, xq, s_a, self.acc, self.vb);
                // into the stacked layout the rest of the layer reads
                for (t, r) in self.hb[..n * qkv].chunks_exact_mut(qkv).enumerate() {
                    r[..q_dim].copy_from_slice(&self.q[t * q_dim..(t + 1) * q_dim]);
                    r[q_dim..q_dim + kv_dim]
                        .copy_from_slice(&self.kb[t * kv_dim..(t + 1) * kv_dim]);
                    r[q_dim + kv_dim..].copy_from_slice(&self.vb[t * kv_dim..(t + 1) * kv_dim]);
                }
            }
            // Q | K | V of token t: row t of hb (n, qkv)
            let base = l * ctx * kv_dim;
            let hh = hd / 2;
            for (t, r) in self.hb[..n * qkv].chunks_exact_mut(qkv).enumerate() {
                let p = self.pos + t;
                let (cos, sin) = (
                    &self.cos[t * hh..(t + 1) * hh],
                    &self.sin[t * hh..(t + 1) * hh],
                );
                let (q, kv) = r.split_at_mut(q_dim);
                let (kr, vr) = kv.split_at_mut(kv_dim);
                forward::rope(q, hd, cos, sin);
                forward::rope(kr, hd, cos, sin);
                // head-major (attention::KvRows): KV head j's row of position p at (j·ctx + p)·hd
                for (j, (kh, vh)) in kr.chunks_exact(hd).zip(vr.chunks_exact(hd)).enumerate() {
                    let at = base + (j * ctx + p) * hd;
                    self.kc.store(k, at, kh);
                    self.vc.store(k, at, vh);
                }
            }
            // attention (causal): heads in parallel, each over the batch's tokens in order; a
            // head's slice of `att` holds its outputs (n, head_dim) then its scores (ctx)
            let unit = n * hd + ctx;
            let end = base + ctx * kv_dim;
            let (kr, vr) = (self.kc.rows(base, end), self.vc.rows(base, end));
            let (q, pos) = (&self.hb[..n * qkv], self.pos);
            // (the heads of a chunk that share a KV head together, see `attention_heads`)
            exec.par_chunks_f32(&mut self.att[..n_heads * unit], unit, &|start, chunk| {
                for t in 0..n {
                    let qt = &q[t * qkv..t * qkv + q_dim];
                    let dims = (pos + t + 1, n_heads, n_kv_heads, hd);
                    let layout = (unit, t * hd, n * hd);
                    attention::attention_heads(k, qt, kr, vr, start / unit, dims, chunk, layout);
                }
            });
            for (h, buf) in self.att.chunks_exact(unit).take(n_heads).enumerate() {
                for t in 0..n {
                    self.att_out[t * q_dim + h * hd..t * q_dim + (h + 1) * hd]
                        .copy_from_slice(&buf[t * hd..(t + 1) * hd]);
                }
            }
            if c.sub_norms {
                Self::norm_weights(w, file, lt(LayerTensor::AttnSubNorm), self.normw)?;
            }
            let norm = c.sub_norms.then_some((&self.normw[..q_dim], c.norm_eps));
            bitlinear_input(
                k,
                exec,
                &self.att_out[..n * q_dim],
                norm,
                self.xb,
                self.xq,
                s_a,
            );
            let wo = Self::tw(w, file, l, LayerTensor::O)?;
            let xq = &self.xq[..n * q_dim];
            forward::bitlinear_batch(k, exec, wo, xq, s_a, self.acc, &mut self.hb[..n * dim]);
            for (x, &o) in self.x[..n * dim].iter_mut().zip(&self.hb[..n * dim]) {
                *x += o;
            }
            // --- feed-forward block ---
            Self::norm_weights(w, file, lt(LayerTensor::FfnNorm), self.normw)?;
            let norm = Some((&self.normw[..dim], c.norm_eps));
            bitlinear_input(k, exec, &self.x[..n * dim], norm, self.xb, self.xq, s_a);
            let xq = &self.xq[..n * dim];
            const GATE_UP: [LayerTensor; 2] = [LayerTensor::Gate, LayerTensor::Up];
            if let Some((layout, data, segs)) = Self::stacked(w, file, l, GATE_UP) {
                // one BitLinear over gate and up back to back: (n, 2 hidden) in hb, then
                // act(gate) * up into hb2 (n, hidden), tokens in parallel
                let st = TernaryStack {
                    layout,
                    data,
                    cols: dim,
                    segs: &segs,
                };
                let out = &mut self.hb[..n * 2 * hidden];
                forward::bitlinear_stack(k, exec, &st, xq, s_a, self.acc, out);
                let gu = &self.hb[..n * 2 * hidden];
                let act = c.ffn_act;
                exec.par_chunks_f32(&mut self.hb2[..n * hidden], hidden, &|start, chunk| {
                    for (j, o) in chunk.chunks_exact_mut(hidden).enumerate() {
                        let t = start / hidden + j;
                        let (g, u) = gu[t * 2 * hidden..(t + 1) * 2 * hidden].split_at(hidden);
                        forward::ffn_act_mul_into(act, g, u, o);
                    }
                });
            } else {
                let wg = Self::tw(w, file, l, LayerTensor::Gate)?;
                forward::bitlinear_batch(k, exec, wg, xq, s_a, self.acc, self.hb2);
                let wu = Self::tw(w, file, l, LayerTensor::Up)?;
                forward::bitlinear_batch(k, exec, wu, xq, s_a, self.acc, self.hb);
                forward::ffn_act_mul(
                    c.ffn_act,
                    &mut self.hb2[..n * hidden],
                    &self.hb[..n * hidden],
                );
            }
            // act(gate) * up: (n, hidden) in hb2
            if c.sub_norms {
                Self::norm_weights(w, file, lt(LayerTensor::FfnSubNorm), self.normw)?;
            }
            let norm = c.sub_norms.then_some((&self.normw[..hidden], c.norm_eps));
            bitlinear_input(
                k,
                exec,
                &self.hb2[..n * hidden],
                norm,
                self.xb,
                self.xq,
                s_a,
            );
            let wd = Self::tw(w, file, l, LayerTensor::Down)?;
            let (xq, out) = (&self.xq[..n * hidden], &mut self.hb[..n * dim]);
            forward::bitlinear_batch(k, exec, wd, xq, s_a, self.acc, out);
            for (x, &o) in self.x[..n * dim].iter_mut().zip(&self.hb[..n * dim]) {
                *x += o;
            }
        }
        self.history[self.pos..self.pos + n].copy_from_slice(tokens);
        self.pos += n;
        if !want_logits {
            return Ok(());
        }
        // --- final norm and LM head of the last token: logits = norm(x) @ head^T (float) ---
        let last = &self.x[(n - 1) * dim..n * dim];
        let on = file.global(TensorRole::OutputNorm).expect("validated");
        Self::norm_weights(w, file, on, self.normw)?;
        forward::rmsnorm(last, &self.normw[..dim], c.norm_eps, &mut self.xb[..dim]);
        let head = file.lm_head();
        let hrb = head.layout.row_bytes(dim).expect("validated");
        let xn = &self.xb[..dim];
        let vocab = c.vocab_size as usize;
        // Resident: one chunk of every row; streamed: chunks of whole rows that fit a slot.
        let chunk_rows = match w {
            Weights::Resident(_) => vocab,
            Weights::Streamed(st) => st.head_rows,
        };
        // F16/BF16/F32 rows dot the normed state; Q8_0 and Q4_0 rows (int8 / 4-bit head) dot
        // it quantized to int8 per 32 values (scales in `normw`, free after the norm).
        let quant = matches!(head.layout, Layout::Q8_0 | Layout::Q4_0 | Layout::Q4_0R8);
        let (q, d) = (&mut self.xq[..dim], &mut self.normw[..dim / 32]);
        if quant {
            (k.quantize_q8_0)(xn, q, d);
        }
        let (q, d) = (&*q, &*d);
        for (ci, logits) in self.logits.chunks_mut(chunk_rows).enumerate() {
            let off = head.offset + (ci * chunk_rows * hrb) as u64;
            let hdata = w.fetch(file, off, logits.len() * hrb)?;
            exec.par_chunks_f32(logits, head.layout.row_group(), &|start, chunk| {
                let rows = &hdata[start * hrb..(start + chunk.len()) * hrb];
                // Q4_0 and the float layouts: the whole chunk in one call (the Q4_0 matvec
                // prepares the activations once; the AVX2 float row-block dots read eight rows
                // a piece at a time); Q8_0: one row dot per row.
                match head.layout {
                    Layout::Q4_0 => (k.matvec_q4_0_q8_0)(rows, q, d, chunk),
                    Layout::Q4_0R8 => (k.matvec_q4_0_r8_q8_0)(rows, q, d, chunk),
                    Layout::Q8_0 => {
                        for (o, row) in chunk.iter_mut().zip(rows.chunks_exact(hrb)) {
                            *o = (k.dot_q8_0)(row, q, d);
                        }
                    }
                    Layout::F16 => (k.dot_rows_f16)(rows, hrb, xn, chunk),
                    Layout::F16R8 => (k.dot_panels_f16)(rows, xn, chunk),
                    Layout::Bf16 => (k.dot_rows_bf16)(rows, hrb, xn, chunk),
                    Layout::F32 => (k.dot_rows_f32)(rows, hrb, xn, chunk),
                    // the format's validation admits no other head layout
                    Layout::T2_128 | Layout::T1_160 => unreachable!("validated head layout"),
                }
            });
        }
        Ok(())
    }

    /// Sample the next token from the current logits with `sampler` (the repetition penalty
    /// sees this session's history). Call after [`Session::forward`].
    pub fn sample(&mut self, sampler: &mut Sampler) -> u32 {
        sampler.sample(
            self.logits,
            &self.history[..self.pos],
            self.cand,
            self.probs,
        )
    }
}
