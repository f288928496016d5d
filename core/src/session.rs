//! A decoding session: the model, the chosen kernels, the platform's [`Exec`], and every
//! buffer carved from one arena. [`Session::forward`] runs one token through the graph and
//! returns its logits; nothing is allocated.

use tern_kernels::KernelSet;
use tern_kernels::float::scalar::decode_row;
use tern_kernels::layout::Layout;

use crate::Error;
use crate::exec::Exec;
use crate::format::{LayerTensor, Model, TensorInfo, TensorRole};
use crate::forward::{self, KvRows, TernaryWeight};
use crate::plan::{ActSizes, KvDtype, MemoryPlan, REGION_ALIGN, RunOptions, align_up};
use crate::sampler::Sampler;

/// A mutable KV cache region.
#[derive(Debug)]
enum KvBuf<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [u16]),
}

impl KvBuf<'_> {
    fn store(&mut self, at: usize, src: &[f32]) {
        match self {
            KvBuf::F32(s) => s[at..at + src.len()].copy_from_slice(src),
            KvBuf::F16(s) => {
                for (d, &v) in s[at..at + src.len()].iter_mut().zip(src) {
                    *d = half::f16::from_f32(v).to_bits();
                }
            }
        }
    }
    fn rows(&self, start: usize, end: usize) -> KvRows<'_> {
        match self {
            KvBuf::F32(s) => KvRows::F32(&s[start..end]),
            KvBuf::F16(s) => KvRows::F16(&s[start..end]),
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

/// One generation context over one arena.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    k: &'static KernelSet,
    exec: &'a dyn Exec,
    plan: MemoryPlan,
    pos: usize,
    x: &'a mut [f32],       // residual stream (dim,)
    xb: &'a mut [f32],      // normed input of the current op (wide,)
    q: &'a mut [f32],       // (q_dim,)
    kb: &'a mut [f32],      // (kv_dim,)
    vb: &'a mut [f32],      // (kv_dim,)
    att_out: &'a mut [f32], // (q_dim,)
    hb: &'a mut [f32],      // (hidden,)
    hb2: &'a mut [f32],     // (hidden,)
    cos: &'a mut [f32],     // (head_dim/2,)
    sin: &'a mut [f32],     // (head_dim/2,)
    normw: &'a mut [f32],   // decoded norm weights (wide,)
    xq: &'a mut [i8],       // int8 activations (wide,)
    acc: &'a mut [i32],     // int32 matvec accumulators (wide,)
    att: &'a mut [f32],     // attention scores (n_heads, ctx)
    logits: &'a mut [f32],  // (vocab,)
    cand: &'a mut [u32],    // sampler candidates (vocab,)
    probs: &'a mut [f32],   // sampler probabilities (vocab,)
    history: &'a mut [u32], // tokens so far (ctx,)
    kc: KvBuf<'a>,          // (n_layers, ctx, kv_dim)
    vc: KvBuf<'a>,          // (n_layers, ctx, kv_dim)
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
    /// Plan and carve `arena` for `model` under `opts`, using kernel set `k` and executor `exec`.
    ///
    /// # Errors
    /// [`Error::BadConfig`] if `opts` is unusable, [`Error::ArenaTooSmall`] if
    /// `arena.len() < plan.arena_bytes`, [`Error::ArenaMisaligned`] if it is not 64-byte aligned.
    pub fn new(
        model: &'m Model<'m>,
        k: &'static KernelSet,
        exec: &'a dyn Exec,
        opts: RunOptions,
        arena: &'a mut [u8],
    ) -> Result<Self, Error> {
        let c = model.file.header.config;
        let plan = MemoryPlan::new(&c, model.file.weight_bytes(), opts)?;
        if arena.len() < plan.arena_bytes {
            return Err(Error::ArenaTooSmall {
                need_bytes: plan.arena_bytes as u64,
                have_bytes: arena.len() as u64,
            });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(REGION_ALIGN) {
            return Err(Error::ArenaMisaligned);
        }
        let mut cv = Carver { rest: arena };
        let s = ActSizes::new(&c);
        let ctx = opts.ctx_len as usize;
        let kv_vals = c.n_layers as usize * ctx * c.kv_dim();
        let (kc, vc) = match opts.kv {
            KvDtype::F32 => (KvBuf::F32(cv.cast(kv_vals)?), KvBuf::F32(cv.cast(kv_vals)?)),
            KvDtype::F16 => (KvBuf::F16(cv.cast(kv_vals)?), KvBuf::F16(cv.cast(kv_vals)?)),
        };
        let r = s.f32_regions();
        let vocab = c.vocab_size as usize;
        Ok(Session {
            model,
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
            xq: cv.cast(s.wide)?,
            acc: cv.cast(s.wide)?,
            att: cv.cast(c.n_heads as usize * ctx)?,
            logits: cv.cast(vocab)?,
            cand: cv.cast(vocab)?,
            probs: cv.cast(vocab)?,
            history: cv.cast(ctx)?,
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

    fn tw(&self, l: usize, kind: LayerTensor) -> TernaryWeight<'m> {
        let t = self.model.file.layer(l, kind).expect("validated at parse");
        TernaryWeight {
            data: self.model.data(t),
            rows: t.rows as usize,
            cols: t.cols as usize,
            weight_scale: t.weight_scale,
        }
    }

    fn norm_weights(model: &Model<'_>, t: &TensorInfo, out: &mut [f32]) {
        // Norm weights were validated as non-ternary with shape (1, n) at parse.
        let ok = decode_row(t.layout, model.data(t), &mut out[..t.cols as usize]);
        debug_assert!(ok);
    }

    /// Run token `token` at position [`Session::pos`] through the model; returns its logits
    /// `(vocab_size,)` and advances the position.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id ≥ vocab size; [`Error::ContextFull`] when
    /// `ctx_len` tokens have been evaluated.
    pub fn forward(&mut self, token: u32) -> Result<&mut [f32], Error> {
        let model = self.model;
        let c = model.file.header.config;
        if token >= c.vocab_size {
            return Err(Error::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        let ctx = self.plan.opts.ctx_len as usize;
        if self.pos >= ctx {
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
        let emb = model.file.global(TensorRole::TokenEmbd).expect("validated");
        let rb = emb.layout.row_bytes(dim).expect("validated");
        let row = &model.data(emb)[token as usize * rb..(token as usize + 1) * rb];
        decode_row(emb.layout, row, self.x);
        forward::rope_tables(self.pos as u32, c.rope_theta, hd, self.cos, self.sin);
        let k = self.k;
        let exec = self.exec;
        for l in 0..c.n_layers as usize {
            let lt = |kind| model.file.layer(l, kind).expect("validated");
            // --- attention block ---
            Self::norm_weights(model, lt(LayerTensor::AttnNorm), self.normw);
            forward::rmsnorm(self.x, &self.normw[..dim], c.norm_eps, &mut self.xb[..dim]);
            let s_a = forward::quantize_input(k, &self.xb[..dim], &mut self.xq[..dim]);
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::Q),
                &self.xq[..dim],
                s_a,
                self.acc,
                self.q,
            );
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::K),
                &self.xq[..dim],
                s_a,
                self.acc,
                self.kb,
            );
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::V),
                &self.xq[..dim],
                s_a,
                self.acc,
                self.vb,
            );
            forward::rope(self.q, hd, self.cos, self.sin);
            forward::rope(self.kb, hd, self.cos, self.sin);
            let base = l * ctx * kv_dim;
            self.kc.store(base + self.pos * kv_dim, self.kb);
            self.vc.store(base + self.pos * kv_dim, self.vb);
            let n_pos = self.pos + 1;
            let end = base + n_pos * kv_dim;
            forward::attention(
                self.q,
                self.kc.rows(base, end),
                self.vc.rows(base, end),
                n_pos,
                c.n_heads as usize,
                c.n_kv_heads as usize,
                hd,
                &mut self.att[..c.n_heads as usize * n_pos],
                self.att_out,
            );
            let o_in: &[f32] = if c.sub_norms {
                Self::norm_weights(model, lt(LayerTensor::AttnSubNorm), self.normw);
                forward::rmsnorm(
                    self.att_out,
                    &self.normw[..q_dim],
                    c.norm_eps,
                    &mut self.xb[..q_dim],
                );
                &self.xb[..q_dim]
            } else {
                self.att_out
            };
            let s_a = forward::quantize_input(k, o_in, &mut self.xq[..q_dim]);
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::O),
                &self.xq[..q_dim],
                s_a,
                self.acc,
                &mut self.hb[..dim],
            );
            for (x, &o) in self.x.iter_mut().zip(&self.hb[..dim]) {
                *x += o;
            }
            // --- feed-forward block ---
            Self::norm_weights(model, lt(LayerTensor::FfnNorm), self.normw);
            forward::rmsnorm(self.x, &self.normw[..dim], c.norm_eps, &mut self.xb[..dim]);
            let s_a = forward::quantize_input(k, &self.xb[..dim], &mut self.xq[..dim]);
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::Gate),
                &self.xq[..dim],
                s_a,
                self.acc,
                self.hb,
            );
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::Up),
                &self.xq[..dim],
                s_a,
                self.acc,
                self.hb2,
            );
            forward::ffn_act_mul(c.ffn_act, self.hb, self.hb2);
            let d_in: &[f32] = if c.sub_norms {
                Self::norm_weights(model, lt(LayerTensor::FfnSubNorm), self.normw);
                forward::rmsnorm(
                    self.hb,
                    &self.normw[..hidden],
                    c.norm_eps,
                    &mut self.xb[..hidden],
                );
                &self.xb[..hidden]
            } else {
                self.hb
            };
            let s_a = forward::quantize_input(k, d_in, &mut self.xq[..hidden]);
            forward::bitlinear(
                k,
                exec,
                self.tw(l, LayerTensor::Down),
                &self.xq[..hidden],
                s_a,
                self.acc,
                &mut self.hb2[..dim],
            );
            for (x, &o) in self.x.iter_mut().zip(&self.hb2[..dim]) {
                *x += o;
            }
        }
        // --- final norm and LM head: logits = norm(x) @ head^T (float, not quantized) ---
        Self::norm_weights(
            model,
            model
                .file
                .global(TensorRole::OutputNorm)
                .expect("validated"),
            self.normw,
        );
        forward::rmsnorm(self.x, &self.normw[..dim], c.norm_eps, &mut self.xb[..dim]);
        let head = model.file.lm_head();
        let hdata = model.data(head);
        let hrb = head.layout.row_bytes(dim).expect("validated");
        let dot = match head.layout {
            Layout::F16 => k.dot_f16,
            Layout::Bf16 => k.dot_bf16,
            _ => k.dot_f32,
        };
        let xn = &self.xb[..dim];
        exec.par_chunks_f32(self.logits, &|start, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = start + i;
                *o = dot(&hdata[r * hrb..(r + 1) * hrb], xn);
            }
        });
        self.history[self.pos] = token;
        self.pos += 1;
        Ok(self.logits)
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
