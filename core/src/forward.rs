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
    let rb = w.layout.row_bytes(w.cols);
    let acc = &mut acc[..w.rows];
    let mv = k.matvec_ternary(w.layout);
    exec.par_chunks_i32(acc, 1, &|start, chunk| {
        mv(
            &w.data[start * rb..(start + chunk.len()) * rb],
            w.cols,
            xq,
            chunk,
        );
    });
    let d = w.weight_scale * s_a;
    for (o, &a) in out[..w.rows].iter_mut().zip(acc.iter()) {
        *o = a as f32 / d;
    }
}

/// BitLinear over `n = s_a.len()` tokens at once (prefill): `xq: (n, cols)` int8 with per-token
/// scales `s_a: (n,)`, `acc: (rows * n,)` scratch, `out: (n, rows)`. One pass over the weights
/// for all `n` tokens; bit-identical to `n` calls of [`bitlinear`] (same integer sums, same
/// float rescale per token).
pub fn bitlinear_batch(
    k: &KernelSet,
    exec: &dyn Exec,
    w: TernaryWeight<'_>,
    xq: &[i8],
    s_a: &[f32],
    acc: &mut [i32],
    out: &mut [f32],
) {
    let n = s_a.len();
    if n == 1 {
        return bitlinear(k, exec, w, &xq[..w.cols], s_a[0], acc, out);
    }
    let rb = w.layout.row_bytes(w.cols);
    let acc = &mut acc[..w.rows * n];
    let mm = k.matmul_ternary(w.layout);
    let x = &xq[..n * w.cols];
    exec.par_chunks_i32(acc, n, &|start, chunk| {
        let (r0, nr) = (start / n, chunk.len() / n);
        mm(&w.data[r0 * rb..(r0 + nr) * rb], w.cols, x, n, chunk);
    });
    for (t, &sa) in s_a.iter().enumerate() {
        let d = w.weight_scale * sa;
        let o = &mut out[t * w.rows..(t + 1) * w.rows];
        for (r, y) in o.iter_mut().enumerate() {
            *y = acc[r * n + t] as f32 / d;
        }
    }
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

/// A KV cache element type.
trait KvElem: Copy {
    fn to_f32(self) -> f32;
}
impl KvElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}
impl KvElem for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::from_bits(self).to_f32()
    }
}

/// Causal GQA attention for one query position over `n_pos` cached positions.
///
/// `q: (n_heads * head_dim,)` (after RoPE), `k, v: (n_pos, n_kv_heads * head_dim)`,
/// `att: (n_heads * n_pos,)` scratch for the scores, `out: (n_heads * head_dim,)`.
/// KV head `j` serves query heads `j*g .. (j+1)*g` with `g = n_heads / n_kv_heads`
/// (transformers `repeat_kv`). Scores are `(q · k) * head_dim^-0.5` (the dot summed over 8
/// interleaved partial sums, a fixed order), softmax in float32.
pub fn attention(
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
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    h: usize,
    dims: (usize, usize, usize, usize),
    scores: &mut [f32],
    out: &mut [f32],
) {
    match (k, v) {
        (KvRows::F32(k), KvRows::F32(v)) => head_impl(q, k, v, h, dims, scores, out),
        (KvRows::F16(k), KvRows::F16(v)) => head_impl(q, k, v, h, dims, scores, out),
        (KvRows::F32(k), KvRows::F16(v)) => head_impl(q, k, v, h, dims, scores, out),
        (KvRows::F16(k), KvRows::F32(v)) => head_impl(q, k, v, h, dims, scores, out),
    }
}

#[inline]
fn dot8<K: KvElem>(q: &[f32], k: &[K]) -> f32 {
    let mut acc = [0.0f32; 8];
    let n8 = q.len() / 8 * 8;
    for (a, b) in q[..n8].chunks_exact(8).zip(k[..n8].chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += a[j] * b[j].to_f32();
        }
    }
    for i in n8..q.len() {
        acc[i % 8] += q[i] * k[i].to_f32();
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

fn head_impl<K: KvElem, V: KvElem>(
    q: &[f32],
    k: &[K],
    v: &[V],
    h: usize,
    (n_pos, n_heads, n_kv_heads, head_dim): (usize, usize, usize, usize),
    scores: &mut [f32],
    oh: &mut [f32],
) {
    let kv_dim = n_kv_heads * head_dim;
    let kvh = h / (n_heads / n_kv_heads);
    let scale = 1.0f32 / libm::sqrtf(head_dim as f32);
    let qh = &q[h * head_dim..(h + 1) * head_dim];
    let scores = &mut scores[..n_pos];
    for (t, s) in scores.iter_mut().enumerate() {
        let base = t * kv_dim + kvh * head_dim;
        *s = dot8(qh, &k[base..base + head_dim]) * scale;
    }
    softmax(scores);
    oh.fill(0.0);
    for (t, &p) in scores.iter().enumerate() {
        let base = t * kv_dim + kvh * head_dim;
        for (o, &vv) in oh.iter_mut().zip(&v[base..base + head_dim]) {
            *o += p * vv.to_f32();
        }
    }
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
