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
/// `LlamaRMSNorm`). `x, w, out: (n,)`. The mean is accumulated in f64 and rounded once:
/// squares of f32 values are exact in f64, and the sum runs in [`LANES`] independent lanes
/// (element `i` in lane `i % LANES`) added pairwise at the end, so it vectorizes and no add
/// waits on the previous one. Any summation order is within f64 rounding of the exact sum,
/// far below the float32 mean it is rounded to.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert!(x.len() == w.len() && x.len() == out.len());
    let ss = pairwise(fold_lanes(x, 0f64, |s, v| s + (v as f64) * (v as f64)));
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
/// each chunk runs its rows in slabs, rescaling a slab's sums while they are in its cache (the
/// kernels' transposed rescale). Bit-identical to one
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
        let (xc, sc) = (&xq[t0 * cols..(t0 + nt) * cols], &s_a[t0..t0 + nt]);
        // Row slabs whose int32 sums stay in cache until rescaled: the sums of all rows
        // (MiBs at prefill shapes) went out to memory and back.
        let per = batch_slab_rows(rows);
        let mut c0 = 0;
        while c0 < rows {
            let c1 = (c0 + per).min(rows);
            let ac = &mut a[..(c1 - c0) * nt];
            mm(&w.data[c0 * rb..c1 * rb], cols, xc, nt, ac);
            // each matrix's rows inside the slab, by its own weight_scale
            let mut s0 = 0;
            for &(r, ws) in w.segs {
                let (lo, hi) = (s0.max(c0), (s0 + r).min(c1));
                if lo < hi {
                    let seg = &ac[(lo - c0) * nt..(hi - c0) * nt];
                    (k.rescale_t_i32)(seg, hi - lo, ws, sc, &mut o[lo..], rows);
                }
                s0 += r;
            }
            c0 = c1;
        }
    });
}

/// Rows per slab of a batched BitLinear: equal slabs, a multiple of 8 rows (the rescale's
/// tile), of at most one pass of the lookup-table matmul (2048 rows), so slabs cost no extra
/// table builds. The sums of a slab of 64 tokens take at most 512 KiB.
fn batch_slab_rows(rows: usize) -> usize {
    let slabs = rows.div_ceil(2048).max(1);
    rows.div_ceil(slabs).next_multiple_of(8)
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

/// Independent accumulator lanes of the reductions here ([`rmsnorm`]'s sum of squares,
/// [`softmax`]'s max and sum): as wide as an AVX2 register of f32, two of f64.
const LANES: usize = 8;

/// `f` folded over `x` in [`LANES`] independent lanes, each starting from `init`: element `i`
/// goes into lane `i % LANES`, in order. No step waits on the previous one, so the loop
/// vectorizes.
fn fold_lanes<T: Copy>(x: &[f32], init: T, f: impl Fn(T, f32) -> T) -> [T; LANES] {
    let mut lanes = [init; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = f(*l, v);
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = f(*l, v);
    }
    lanes
}

/// `((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7))`: the lanes' sum in a fixed order.
fn pairwise<T: Copy + core::ops::Add<Output = T>>(l: [T; LANES]) -> T {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// In-place softmax over `x: (n,)` in float32: `exp(x - max) / Σ exp(x - max)`, with
/// [`exp_nonpos`] for the exponentials and the max and sum reduced in [`LANES`] lanes, so
/// every loop vectorizes (the attention scores of every head and query token pass here).
/// A NaN anywhere makes every output NaN (its exponential is NaN, and so is the sum).
pub fn softmax(x: &mut [f32]) {
    let max = |a: f32, b: f32| if b > a { b } else { a };
    let m = fold_lanes(x, f32::NEG_INFINITY, max)
        .into_iter()
        .fold(f32::NEG_INFINITY, max);
    for v in x.iter_mut() {
        *v = exp_nonpos(*v - m);
    }
    let sum = pairwise(fold_lanes(x, 0f32, |s, v| s + v));
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `e^x` for `x <= 0` in float32, within 2 ulp of the correctly rounded value where that is
/// a normal number and 0 below `-87.33654` (where `e^x` is subnormal, under `1.2e-38`;
/// NaN for NaN). Branch-free arithmetic on one value, so a loop over a slice vectorizes.
///
/// Method (Cephes `expf`, Moshier 1984): `x = n ln 2 + r` with `n = round(x / ln 2)`, `|r| <=
/// ln 2 / 2`, `ln 2` split in two parts (Cody-Waite) so `n · ln2_hi` is exact; `e^r` by a
/// degree-7 polynomial (minimax coefficients of Cephes; its 0.50000001201 is 0.5 in
/// float32); `2^n` built from its exponent bits.
pub fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // 0.693359375 has 9 significant bits: n · LN2_HI is exact for |n| <= 2^15
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding 1.5 · 2^23 rounds to an integer (to nearest, ties to even) in the low mantissa
    const ROUND: f32 = 12_582_912.0;
    const MIN: f32 = -87.336_54;
    let xc = if x < MIN { MIN } else { x };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = (p * (r * r) + r) + 1.0;
    // n in [-126, 0] here: 2^n = the float with biased exponent n + 127
    let bits = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits((bits.wrapping_add(127) as u32) << 23);
    if x < MIN { 0.0 } else { e * scale }
}

/// `relu(g)^2 * u` (transformers `ACT2FN["relu2"]` = `square(relu(x))`).
#[inline(always)]
fn relu2_mul(g: f32, u: f32) -> f32 {
    let r = g.max(0.0);
    (r * r) * u
}

/// `(g / (1 + exp(-g))) * u` (SiLU).
#[inline(always)]
fn silu_mul(g: f32, u: f32) -> f32 {
    (g / (1.0 + libm::expf(-g))) * u
}

/// Gated FFN activation in place: `gate[i] = act(gate[i]) * up[i]`, `gate, up: (hidden,)`.
/// Relu2: `relu(g)^2 * u`; Silu: `(g / (1 + exp(-g))) * u`.
pub fn ffn_act_mul(act: FfnAct, gate: &mut [f32], up: &[f32]) {
    match act {
        FfnAct::Relu2 => gate
            .iter_mut()
            .zip(up)
            .for_each(|(g, &u)| *g = relu2_mul(*g, u)),
        FfnAct::Silu => gate
            .iter_mut()
            .zip(up)
            .for_each(|(g, &u)| *g = silu_mul(*g, u)),
    }
}

/// [`ffn_act_mul`] into a separate output: `out[i] = act(gate[i]) * up[i]`, `gate, up, out:
/// (hidden,)`; the same per-element functions, so bit-identical to it.
pub fn ffn_act_mul_into(act: FfnAct, gate: &[f32], up: &[f32], out: &mut [f32]) {
    debug_assert!(gate.len() == up.len() && gate.len() == out.len());
    let pairs = gate.iter().zip(up);
    match act {
        FfnAct::Relu2 => out
            .iter_mut()
            .zip(pairs)
            .for_each(|(o, (&g, &u))| *o = relu2_mul(g, u)),
        FfnAct::Silu => out
            .iter_mut()
            .zip(pairs)
            .for_each(|(o, (&g, &u))| *o = silu_mul(g, u)),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn softmax_sums_to_one_and_handles_large_values() {
        let mut x = [1000.0f32, 1000.0, 0.0];
        softmax(&mut x);
        assert_eq!(x[0], 0.5);
        assert_eq!(x[2], 0.0);
    }

    /// Distance in units in the last place of the float32 `exact` between `got` and `exact`
    /// (an f64 reference).
    fn ulps(got: f32, exact: f64) -> f64 {
        let e = exact as f32;
        let ulp = f32::from_bits(e.to_bits() + 1) - e;
        ((got as f64) - exact).abs() / ulp as f64
    }

    #[test]
    fn exp_nonpos_is_within_two_ulp_of_f64_exp() {
        // every 97th float32 in [-87.33654, 0] (about 11 million), against libm's f64 exp
        let (lo, hi) = (0f32.to_bits() | 0x8000_0000, (-87.336_54f32).to_bits());
        let mut worst = (0.0f64, 0.0f32);
        for bits in (lo..=hi).step_by(97).chain([hi, 0x8000_0001, 0xbf31_7218]) {
            let x = f32::from_bits(bits);
            let u = ulps(exp_nonpos(x), libm::exp(x as f64));
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(worst.0 <= 2.0, "{} ulp at x = {:e}", worst.0, worst.1);
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-0.0), 1.0);
        assert_eq!(exp_nonpos(-87.4), 0.0);
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpos(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_matches_an_f64_softmax_at_every_length() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1usize, 2, 7, 8, 9, 15, 16, 17, 100, 1001] {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 20_000) as f32 / 1000.0 - 10.0
                })
                .collect();
            // x - max in float32, as the formula (its rounding is the input's, not exp's)
            let m = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let e: Vec<f64> = x.iter().map(|&v| libm::exp((v - m) as f64)).collect();
            let sum: f64 = e.iter().sum();
            let mut y = x.clone();
            softmax(&mut y);
            for (i, (&g, &r)) in y.iter().zip(&e).enumerate() {
                let want = r / sum;
                assert!(
                    ((g as f64) - want).abs() <= 1e-6 * want + 1e-30,
                    "n = {n}, element {i}: {g} against {want}"
                );
            }
        }
    }

    #[test]
    fn softmax_propagates_nan_and_infinities_like_the_formula() {
        let mut x = [0.0f32, f32::NAN, 1.0];
        softmax(&mut x);
        assert!(x.iter().all(|v| v.is_nan()));
        // a NaN past the first 8 lanes too
        let mut x = [0.5f32; 19];
        x[17] = f32::NAN;
        softmax(&mut x);
        assert!(x.iter().all(|v| v.is_nan()));
        let mut x = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY];
        softmax(&mut x);
        assert_eq!(x, [0.0, 1.0, 0.0]);
    }

    #[test]
    fn rmsnorm_matches_an_f64_reference_at_every_length() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for n in [0usize, 1, 7, 8, 9, 2560, 6913] {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 4001) as f32 / 1000.0 - 2.0
            };
            let x: Vec<f32> = (0..n).map(|_| next()).collect();
            let w: Vec<f32> = (0..n).map(|_| next()).collect();
            let mut out = vec![0f32; n];
            rmsnorm(&x, &w, 1e-5, &mut out);
            let ms = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / n.max(1) as f64;
            let r = 1.0 / libm::sqrt(ms + 1e-5);
            for (i, ((&o, &xv), &wv)) in out.iter().zip(&x).zip(&w).enumerate() {
                let want = wv as f64 * (xv as f64 * r);
                assert!(
                    ((o as f64) - want).abs() <= 4e-7 * want.abs() + 1e-30,
                    "n = {n}, element {i}: {o} against {want}"
                );
            }
        }
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

    #[test]
    fn act_mul_into_is_bit_identical_to_in_place() {
        let gate: Vec<f32> = (0..257).map(|i| (i as f32 - 128.0) * 0.173).collect();
        let up: Vec<f32> = (0..257).map(|i| 1.5 - (i as f32) * 0.0119).collect();
        for act in [FfnAct::Relu2, FfnAct::Silu] {
            let mut in_place = gate.clone();
            ffn_act_mul(act, &mut in_place, &up);
            let mut out = vec![f32::NAN; gate.len()];
            ffn_act_mul_into(act, &gate, &up, &mut out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&in_place), "{act:?}");
        }
    }
}
