//! The operations of the BitNet b1.58 forward pass, one public function each, so tests can
//! feed reference inputs into a single op.
//!
//! Numerics follow the model's definition as transformers' BitNet implements it in float32
//! (BitNet b1.58, arXiv:2402.17764 §2; 2B4T report arXiv:2504.12285 §2;
//! `transformers/models/bitnet/modular_bitnet.py`, `integrations/bitnet.py`), with the exact
//! evaluation order written down in `shared/fixtures/README.md`.

use tern_kernels::KernelSet;
use tern_kernels::layout::TernaryLayout;

use crate::config::FfnAct;
use crate::exec::Exec;

/// RMSNorm: `out = w * (x * (1 / sqrt(mean(x^2) + eps)))`, float32 (transformers
/// `LlamaRMSNorm`). `x, w, out: (n,)`. The mean is accumulated in f64 and rounded once.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert!(x.len() == w.len() && x.len() == out.len());
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (ss / x.len().max(1) as f64) as f32;
    let r = 1.0f32 / libm::sqrtf(mean + eps);
    for ((o, &xv), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = wv * (xv * r);
    }
}

/// A ternary weight matrix `w: (rows, cols)` in one of the ternary layouts (`T2_128` or
/// `T1_160`, per tensor), with BitLinear's `weight_scale` (the divisor: effective weight =
/// code / weight_scale).
#[derive(Clone, Copy, Debug)]
pub struct TernaryWeight<'w> {
    /// The layout of `data`; selects the kernel.
    pub layout: TernaryLayout,
    /// `rows * layout.row_bytes(cols)` bytes.
    pub data: &'w [u8],
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Divisor of the integer dot product.
    pub weight_scale: f32,
}

/// Quantize one token's input `x: (cols,)` to int8 by absmax into `xq: (cols,)`; returns
/// `s_a`. Do this once per input and reuse it for every BitLinear that reads the same input
/// (q/k/v share one, gate/up share one).
pub fn quantize_input(k: &KernelSet, x: &[f32], xq: &mut [i8]) -> f32 {
    (k.quantize_i8)(x, xq)
}

/// Ternary matrices with the same `cols` stored back to back in one span (Q, K and V, or gate
/// and up, as the packer writes them), each with its own scale: `segs[i] = (rows_i,
/// weight_scale_i)` for consecutive row ranges. One BitLinear over the stack computes all of
/// them from one quantized input (one pass, one parallel call, one set of prefill tables).
#[derive(Clone, Copy, Debug)]
pub struct TernaryStack<'w, 's> {
    /// The layout of every matrix of the stack.
    pub layout: TernaryLayout,
    /// `Σ rows_i * layout.row_bytes(cols)` bytes.
    pub data: &'w [u8],
    /// Input features.
    pub cols: usize,
    /// `(rows, weight_scale)` of each matrix, in storage order.
    pub segs: &'s [(usize, f32)],
}

impl TernaryStack<'_, '_> {
    /// Output features of all matrices together.
    pub fn rows(&self) -> usize {
        self.segs.iter().map(|s| s.0).sum()
    }
}

/// BitLinear on an already-quantized input: `out[r] = acc[r] / (weight_scale * s_a)` with
/// `acc[r] = Σ_c T[r, c] · xq[c]` exact in int32 (`acc, out: (rows,)`, `xq: (cols,)`).
/// The division (not a multiplication by the reciprocal) is what transformers evaluates.
pub fn bitlinear(
    k: &KernelSet,
    exec: &dyn Exec,
    w: TernaryWeight<'_>,
    xq: &[i8],
    s_a: f32,
    acc: &mut [i32],
    out: &mut [f32],
) {
    let segs = [(w.rows, w.weight_scale)];
    let st = TernaryStack {
        layout: w.layout,
        data: w.data,
        cols: w.cols,
        segs: &segs,
    };
    bitlinear_stack(k, exec, &st, xq, &[s_a], acc, out)
}

/// Tokens per chunk of a batched BitLinear: chunks are split by tokens (each thread runs every
/// weight row for its tokens), in multiples of this; the AVX2 matmul builds lookup tables per
/// block of 16 to 32 tokens.
pub const BATCH_GRAIN_TOKENS: usize = 16;

/// BitLinear over `n = s_a.len()` tokens at once (prefill): `xq: (n, cols)` int8 with per-token
/// scales `s_a: (n,)`, `acc: (rows * n,)` scratch, `out: (n, rows)`. Bit-identical to `n` calls
/// of [`bitlinear`] (same integer sums, same float rescale per token). See [`bitlinear_stack`].
pub fn bitlinear_batch(
    k: &KernelSet,
    exec: &dyn Exec,
    w: TernaryWeight<'_>,
    xq: &[i8],
    s_a: &[f32],
    acc: &mut [i32],
    out: &mut [f32],
) {
    let segs = [(w.rows, w.weight_scale)];
    let st = TernaryStack {
        layout: w.layout,
        data: w.data,
        cols: w.cols,
        segs: &segs,
    };
    bitlinear_stack(k, exec, &st, xq, s_a, acc, out)
}

/// BitLinear of a [`TernaryStack`] over `n = s_a.len()` tokens: `xq: (n, cols)` int8 with
/// per-token scales `s_a: (n,)`, `acc: (rows * n,)` scratch, `out: (n, rows)` with
/// `rows = w.rows()`, each matrix's rows rescaled by its own `weight_scale`.
///
/// One token (decode): the executor splits the rows (matvec). Several (prefill): it splits the
/// tokens (each chunk runs every row for its tokens, a multiple of [`BATCH_GRAIN_TOKENS`]), and
/// each chunk rescales its own sums while they are in its cache (the kernels' transposed
/// rescale). Bit-identical to one
/// [`bitlinear`] per matrix and token.
pub fn bitlinear_stack(
    k: &KernelSet,
    exec: &dyn Exec,
    w: &TernaryStack<'_, '_>,
    xq: &[i8],
    s_a: &[f32],
    acc: &mut [i32],
    out: &mut [f32],
) {
    let (n, rows, cols) = (s_a.len(), w.rows(), w.cols);
    let rb = w.layout.row_bytes(cols);
    if n == 1 {
        let acc = &mut acc[..rows];
        let mv = k.matvec_ternary(w.layout);
        exec.par_chunks_i32(acc, 1, &|start, chunk| {
            mv(
                &w.data[start * rb..(start + chunk.len()) * rb],
                cols,
                xq,
                chunk,
            );
        });
        let mut r0 = 0;
        for &(r, ws) in w.segs {
            let d = ws * s_a[0];
            for (o, &a) in out[r0..r0 + r].iter_mut().zip(&acc[r0..r0 + r]) {
                *o = a as f32 / d;
            }
            r0 += r;
        }
        return;
    }
    let mm = k.matmul_ternary(w.layout);
    let (acc, out) = (&mut acc[..rows * n], &mut out[..n * rows]);
    exec.par_items_i32_f32(acc, rows, out, rows, BATCH_GRAIN_TOKENS, &|t0, a, o| {
        // a: this chunk's sums (rows, nt), o: its outputs (nt, rows)
        let nt = a.len() / rows.max(1);
        mm(w.data, cols, &xq[t0 * cols..(t0 + nt) * cols], nt, a);
        let mut r0 = 0;
        for &(r, ws) in w.segs {
            let seg = &a[r0 * nt..(r0 + r) * nt];
            (k.rescale_t_i32)(seg, r, ws, &s_a[t0..t0 + nt], &mut o[r0..], rows);
            r0 += r;
        }
    });
}

/// RoPE tables for position `pos`: `cos, sin: (head_dim / 2,)`, with
/// `inv_freq[i] = 1 / theta^(2i / head_dim)` and `angle = pos * inv_freq[i]`, each rounded to
/// float32 as transformers' `LlamaRotaryEmbedding` (rope_type "default") computes them.
pub fn rope_tables(pos: u32, theta: f32, head_dim: usize, cos: &mut [f32], sin: &mut [f32]) {
    for i in 0..head_dim / 2 {
        let expo = (2 * i) as f32 / head_dim as f32;
        let inv_freq = 1.0f32 / libm::powf(theta, expo);
        let angle = pos as f32 * inv_freq;
        cos[i] = libm::cos(angle as f64) as f32;
        sin[i] = libm::sin(angle as f64) as f32;
    }
}

/// Apply RoPE in place to every head of `x: (n_heads * head_dim,)`, NEOX pairing
/// (`rotate_half`: element `i` pairs with `i + head_dim/2`), as llama.cpp's
/// LLAMA_ROPE_TYPE_NEOX and transformers' `apply_rotary_pos_emb` do.
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] + (-b) * sin[i];
            head[i + half] = b * cos[i] + a * sin[i];
        }
    }
}

/// In-place softmax over `x: (n,)` in float32: `exp(x - max) / Σ exp(x - max)`.
pub fn softmax(x: &mut [f32]) {
    let mut m = f32::NEG_INFINITY;
    for &v in x.iter() {
        m = m.max(v);
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - m);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// A read-only view of one layer's K or V cache rows `(n_pos, kv_dim)`.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'c> {
    /// f32 values.
    F32(&'c [f32]),
    /// IEEE binary16 bits.
    F16(&'c [u16]),
}

impl<'c> KvRows<'c> {
    /// The rows as little-endian bytes, and the element size in bytes.
    fn bytes(self) -> (&'c [u8], usize) {
        match self {
            KvRows::F32(s) => (bytemuck::cast_slice(s), 4),
            KvRows::F16(s) => (bytemuck::cast_slice(s), 2),
        }
    }
}

/// Causal GQA attention for one query position over `n_pos` cached positions.
///
/// `q: (n_heads * head_dim,)` (after RoPE), `k, v: (n_pos, n_kv_heads * head_dim)`,
/// `att: (n_heads * n_pos,)` scratch for the scores, `out: (n_heads * head_dim,)`.
/// KV head `j` serves query heads `j*g .. (j+1)*g` with `g = n_heads / n_kv_heads`
/// (transformers `repeat_kv`). Scores are `(k · q) * head_dim^-0.5` with the kernels' float row
/// dot (32 interleaved partial sums, a fixed order), softmax in float32, and the output is
/// `Σ_t p_t · v_t` accumulated position by position (the kernels' `axpy_rows`).
pub fn attention(
    ks: &KernelSet,
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    n_pos: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    att: &mut [f32],
    out: &mut [f32],
) {
    for h in 0..n_heads {
        attention_head(
            ks,
            q,
            k,
            v,
            h,
            (n_pos, n_heads, n_kv_heads, head_dim),
            &mut att[h * n_pos..(h + 1) * n_pos],
            &mut out[h * head_dim..(h + 1) * head_dim],
        );
    }
}

/// One query head `h` of [`attention`]: `scores: (n_pos,)` scratch, `out: (head_dim,)`.
/// Heads are independent, so a platform may run them in parallel.
pub fn attention_head(
    ks: &KernelSet,
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    h: usize,
    (n_pos, n_heads, n_kv_heads, head_dim): (usize, usize, usize, usize),
    scores: &mut [f32],
    out: &mut [f32],
) {
    let kv_dim = n_kv_heads * head_dim;
    let kvh = h / (n_heads / n_kv_heads);
    let scale = 1.0f32 / libm::sqrtf(head_dim as f32);
    let qh = &q[h * head_dim..(h + 1) * head_dim];
    let scores = &mut scores[..n_pos];
    out.fill(0.0);
    if n_pos == 0 {
        return;
    }
    let ((kb, ke), (vb, ve)) = (k.bytes(), v.bytes());
    let dots = if ke == 4 {
        ks.dot_rows_f32
    } else {
        ks.dot_rows_f16
    };
    let axpys = if ve == 4 {
        ks.axpy_rows_f32
    } else {
        ks.axpy_rows_f16
    };
    // KV head kvh's rows: position t at element t * kv_dim + kvh * head_dim.
    let first = kvh * head_dim;
    let end = (n_pos - 1) * kv_dim + first + head_dim;
    dots(&kb[first * ke..end * ke], kv_dim * ke, qh, scores);
    for s in scores.iter_mut() {
        *s *= scale;
    }
    softmax(scores);
    axpys(scores, &vb[first * ve..end * ve], kv_dim * ve, out);
}

/// Gated FFN activation in place: `gate[i] = act(gate[i]) * up[i]`, `gate, up: (hidden,)`.
/// Relu2: `relu(g)^2 * u` (transformers `ACT2FN["relu2"]` = `square(relu(x))`);
/// Silu: `(g / (1 + exp(-g))) * u`.
pub fn ffn_act_mul(act: FfnAct, gate: &mut [f32], up: &[f32]) {
    match act {
        FfnAct::Relu2 => {
            for (g, &u) in gate.iter_mut().zip(up) {
                let r = g.max(0.0);
                *g = (r * r) * u;
            }
        }
        FfnAct::Silu => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = (*g / (1.0 + libm::expf(-*g))) * u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_handles_large_values() {
        let mut x = [1000.0f32, 1000.0, 0.0];
        softmax(&mut x);
        assert_eq!(x[0], 0.5);
        assert_eq!(x[2], 0.0);
    }

    #[test]
    fn rope_position_zero_is_identity_and_rotates_pairs() {
        let mut cos = [0f32; 2];
        let mut sin = [0f32; 2];
        rope_tables(0, 10000.0, 4, &mut cos, &mut sin);
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut x, 4, &cos, &sin);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        rope_tables(1, 10000.0, 4, &mut cos, &mut sin);
        // pair (0, 2) rotates by angle 1 rad, pair (1, 3) by 1/100 rad
        let mut x = [1.0f32, 0.0, 0.0, 0.0];
        rope(&mut x, 4, &cos, &sin);
        assert!((x[0] - 1f32.cos()).abs() < 1e-7 && (x[2] - 1f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn relu2_and_silu() {
        let mut g = [-1.0f32, 2.0];
        ffn_act_mul(FfnAct::Relu2, &mut g, &[3.0, 3.0]);
        assert_eq!(g, [0.0, 12.0]);
        let mut g = [0.0f32];
        ffn_act_mul(FfnAct::Silu, &mut g, &[5.0]);
        assert_eq!(g, [0.0]);
    }
}
