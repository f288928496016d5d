//! Causal GQA attention for one query position over a layer's KV cache: the scores `K·q`
//! scaled by `head_dim^-0.5`, softmax, and the weighted sum of the value rows, with the kernels'
//! row dots and axpys.

use tern_kernels::{AxpyRows, DotRows, KernelSet};

use crate::forward::softmax;

/// A read-only view of one layer's K or V cache, head-major: `(n_kv_heads, cap_pos, head_dim)`
/// with `cap_pos = len / (n_kv_heads · head_dim)` (the cache's capacity in positions), so the
/// rows of one KV head, position after position, are contiguous and attention streams them in
/// order. A position-major cache `(n_pos, kv_dim)`, read one KV head at a time, skips past the
/// other heads' rows: at 1800 positions of 2B4T its V rows read at half the rate (a standalone
/// run of the 30 layers' `axpy_rows`, 13.7 ms against 6.9 ms), and decode ran 8-11 % slower.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'c> {
    /// f32 values.
    F32(&'c [f32]),
    /// IEEE binary16 bits.
    F16(&'c [u16]),
}

impl<'c> KvRows<'c> {
    /// The values as little-endian bytes, and the element size in bytes.
    fn bytes(self) -> (&'c [u8], usize) {
        match self {
            KvRows::F32(s) => (bytemuck::cast_slice(s), 4),
            KvRows::F16(s) => (bytemuck::cast_slice(s), 2),
        }
    }

    /// The cache's capacity in positions for `kv_dim = n_kv_heads · head_dim`.
    ///
    /// # Panics
    /// If the length is not whole `(n_kv_heads, cap_pos, head_dim)` blocks or holds fewer
    /// than `n_pos` positions (a caller bug).
    fn cap_pos(self, kv_dim: usize, n_pos: usize) -> usize {
        let len = match self {
            KvRows::F32(s) => s.len(),
            KvRows::F16(s) => s.len(),
        };
        assert!(
            kv_dim > 0 && len.is_multiple_of(kv_dim) && len / kv_dim >= n_pos,
            "attention: a KV cache of {len} values is not (n_kv_heads, >= {n_pos}, head_dim) \
             with n_kv_heads · head_dim = {kv_dim}"
        );
        len / kv_dim
    }
}

/// The bytes of KV head `kvh`'s rows at positions `a .. b` of a head-major cache `(bytes,
/// element size e)` of `cap` positions, rows of `head_dim` values (contiguous).
fn head_rows(
    (bytes, e): (&[u8], usize),
    cap: usize,
    head_dim: usize,
    kvh: usize,
    (a, b): (usize, usize),
) -> &[u8] {
    let row = head_dim * e;
    &bytes[(kvh * cap + a) * row..(kvh * cap + b) * row]
}

/// Causal GQA attention for one query position over `n_pos` cached positions.
///
/// `q: (n_heads * head_dim,)` (after RoPE), `k, v`: head-major caches ([`KvRows`]) holding at
/// least `n_pos` positions,
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

/// The row dots over K rows of `ke`-byte elements and the axpys over V rows of `ve`-byte
/// elements (4: F32, else F16).
fn kv_kernels(ks: &KernelSet, ke: usize, ve: usize) -> (DotRows, AxpyRows) {
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
    (dots, axpys)
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
    let (kc, vc) = (k.cap_pos(kv_dim, n_pos), v.cap_pos(kv_dim, n_pos));
    out.fill(0.0);
    if n_pos == 0 {
        return;
    }
    let (kb, vb) = (k.bytes(), v.bytes());
    let (dots, axpys) = kv_kernels(ks, kb.1, vb.1);
    let span = (0, n_pos);
    dots(
        head_rows(kb, kc, head_dim, kvh, span),
        head_dim * kb.1,
        qh,
        scores,
    );
    scaled_softmax(scores, scale);
    axpys(
        scores,
        head_rows(vb, vc, head_dim, kvh, span),
        head_dim * vb.1,
        out,
    );
}

/// Positions per block of [`attention_heads`]: a block's K (then V) rows of one KV head, 256 ×
/// `head_dim` values (64 KiB in F16 at `head_dim` 128), stay in L2 while every query head that
/// shares them reads them.
pub const ATT_BLOCK_POS: usize = 256;

/// Query heads `h0 .. h0 + bufs.len() / unit` of [`attention`] for one query position, with
/// exactly [`attention_head`]'s results: the heads that share a KV head (GQA) are taken
/// together, a block of [`ATT_BLOCK_POS`] positions at a time, so each block of the KV cache
/// is read from memory once for all of them instead of once per head (at 1800 positions of
/// 2B4T, one KV head's K and V rows are about 0.9 MiB per layer, so a head after the first
/// no longer finds them in L2). The same row dots, softmax and position-ordered `axpy_rows`
/// (split by blocks, in order: the same additions) as [`attention_head`].
///
/// Head `h0 + j` works in `bufs[j * unit .. (j + 1) * unit]`: its output `(head_dim,)` at
/// `out_at`, its scores `(n_pos,)` scratch at `scores_at`; `out_at + head_dim <= scores_at`.
///
/// # Panics
/// If `bufs` is not whole units, the scores do not fit a unit or overlap the output, or the
/// heads or KV rows are out of range (caller bugs).
#[allow(clippy::too_many_arguments)]
pub fn attention_heads(
    ks: &KernelSet,
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    h0: usize,
    (n_pos, n_heads, n_kv_heads, head_dim): (usize, usize, usize, usize),
    bufs: &mut [f32],
    (unit, out_at, scores_at): (usize, usize, usize),
) {
    assert!(
        unit > 0
            && bufs.len().is_multiple_of(unit)
            && out_at + head_dim <= scores_at
            && scores_at + n_pos <= unit,
        "attention_heads: buffer layout"
    );
    let g = n_heads / n_kv_heads;
    let m = bufs.len() / unit;
    let kv_dim = n_kv_heads * head_dim;
    let scale = 1.0f32 / libm::sqrtf(head_dim as f32);
    let (kc, vc) = (k.cap_pos(kv_dim, n_pos), v.cap_pos(kv_dim, n_pos));
    let (kb, vb) = (k.bytes(), v.bytes());
    let (dots, axpys) = kv_kernels(ks, kb.1, vb.1);
    let heads_pass = kb.1 == 2 && vb.1 == 2 && (1..=PASS_MAX_HEAD_DIM).contains(&head_dim);
    let layout = (unit, out_at, scores_at);
    let mut j = 0;
    while j < m {
        let h = h0 + j;
        let kvh = h / g;
        // heads j .. j + run of this call share KV head kvh
        let run = ((kvh + 1) * g - h).min(m - j);
        let group = &mut bufs[j * unit..(j + run) * unit];
        j += run;
        if heads_pass {
            for (i, pass) in group.chunks_mut(PASS_HEADS * unit).enumerate() {
                let hp = h + i * PASS_HEADS;
                let qp = &q[hp * head_dim..(hp + pass.len() / unit) * head_dim];
                let kv = ((kb, kc), (vb, vc), kvh);
                pass_f16(ks, qp, kv, (n_pos, head_dim, scale), pass, layout);
            }
            continue;
        }
        for b in group.chunks_exact_mut(unit) {
            b[out_at..out_at + head_dim].fill(0.0);
        }
        for (a, b) in blocks(n_pos) {
            let rows = head_rows(kb, kc, head_dim, kvh, (a, b));
            for (i, buf) in group.chunks_exact_mut(unit).enumerate() {
                let qh = &q[(h + i) * head_dim..(h + i + 1) * head_dim];
                let scores = &mut buf[scores_at + a..scores_at + b];
                dots(rows, head_dim * kb.1, qh, scores);
            }
        }
        heads_softmax(group, (unit, scores_at, n_pos), scale);
        for (a, b) in blocks(n_pos) {
            let rows = head_rows(vb, vc, head_dim, kvh, (a, b));
            for buf in group.chunks_exact_mut(unit) {
                let (head, scores) = buf.split_at_mut(scores_at);
                let out = &mut head[out_at..out_at + head_dim];
                axpys(&scores[a..b], rows, head_dim * vb.1, out);
            }
        }
    }
}

/// Most query heads of one KV head that [`attention_heads`] gives one call of the multi-head
/// F16 kernels (`dot_rows_heads_f16`, `axpy_rows_heads_f16`: each cached value converted once
/// for all of them), and the longest head it does so for: a block's scores and the heads'
/// outputs stay on the stack meanwhile (4 KiB each).
const PASS_HEADS: usize = 4;
const PASS_MAX_HEAD_DIM: usize = 256;

/// The blocks of [`ATT_BLOCK_POS`] positions of `0 .. n_pos`, in order.
fn blocks(n_pos: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n_pos)
        .step_by(ATT_BLOCK_POS)
        .map(move |a| (a, (a + ATT_BLOCK_POS).min(n_pos)))
}

/// `scores` scaled by `scale` (`head_dim^-0.5`), then softmax.
fn scaled_softmax(scores: &mut [f32], scale: f32) {
    for s in scores.iter_mut() {
        *s *= scale;
    }
    softmax(scores);
}

/// [`scaled_softmax`] of each head's scores in `bufs` (units of `unit`, `n_pos` scores at
/// `scores_at`).
fn heads_softmax(bufs: &mut [f32], (unit, scores_at, n_pos): (usize, usize, usize), scale: f32) {
    for buf in bufs.chunks_exact_mut(unit) {
        scaled_softmax(&mut buf[scores_at..scores_at + n_pos], scale);
    }
}

/// A cache's bytes with their element size, and its capacity in positions.
type Cache<'c> = ((&'c [u8], usize), usize);

/// Up to [`PASS_HEADS`] query heads of KV head `kvh` over F16 caches (the heads of `bufs`,
/// laid out as [`attention_heads`]' are; `q: (heads, head_dim)` theirs): the multi-head
/// kernels' dots block by block into each head's scores, the scaled softmax, then their
/// axpys block by block, in order (the same operations as [`attention_head`]'s).
fn pass_f16(
    ks: &KernelSet,
    q: &[f32],
    ((kb, kc), (vb, vc), kvh): (Cache<'_>, Cache<'_>, usize),
    (n_pos, head_dim, scale): (usize, usize, f32),
    bufs: &mut [f32],
    (unit, out_at, scores_at): (usize, usize, usize),
) {
    let heads = bufs.len() / unit;
    let mut sb = [0f32; PASS_HEADS * ATT_BLOCK_POS];
    for (a, b) in blocks(n_pos) {
        let s = &mut sb[..heads * (b - a)];
        let rows = head_rows(kb, kc, head_dim, kvh, (a, b));
        (ks.dot_rows_heads_f16)(heads, rows, 2 * head_dim, q, s);
        for (buf, sh) in bufs.chunks_exact_mut(unit).zip(s.chunks_exact(b - a)) {
            buf[scores_at + a..scores_at + b].copy_from_slice(sh);
        }
    }
    heads_softmax(bufs, (unit, scores_at, n_pos), scale);
    let mut yb = [0f32; PASS_HEADS * PASS_MAX_HEAD_DIM];
    let y = &mut yb[..heads * head_dim];
    for (a, b) in blocks(n_pos) {
        let s = &mut sb[..heads * (b - a)];
        for (buf, sh) in bufs.chunks_exact(unit).zip(s.chunks_exact_mut(b - a)) {
            sh.copy_from_slice(&buf[scores_at + a..scores_at + b]);
        }
        let rows = head_rows(vb, vc, head_dim, kvh, (a, b));
        (ks.axpy_rows_heads_f16)(heads, s, rows, 2 * head_dim, y);
    }
    for (buf, yh) in bufs.chunks_exact_mut(unit).zip(y.chunks_exact(head_dim)) {
        buf[out_at..out_at + head_dim].copy_from_slice(yh);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// [`attention_heads`] gives [`attention_head`]'s outputs bit for bit (the scalar kernels;
    /// every SIMD variant's row dots and axpys equal them, `tern-kernels`' tests, and
    /// `tests/tests/gqa_attention.rs` runs this with the CPU's kernels), for chunks of heads
    /// that start and end inside a KV group, groups of 4 heads (one multi-head pass), 6 (a
    /// pass of 4 and one of 2) and 1, position counts around the block size, and F32 and F16
    /// caches.
    #[test]
    fn grouped_heads_equal_single_heads() {
        for (n_heads, n_kv_heads) in [(8usize, 2usize), (12, 2), (3, 3)] {
            grouped_case(tern_kernels::select_scalar(), n_heads, n_kv_heads, 64);
        }
    }

    /// [`grouped_heads_equal_single_heads`] for one shape and kernel set.
    fn grouped_case(ks: &KernelSet, n_heads: usize, n_kv_heads: usize, hd: usize) {
        let kv_dim = n_kv_heads * hd;
        let max_pos = 2 * ATT_BLOCK_POS + 3;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        };
        let kf: Vec<f32> = (0..max_pos * kv_dim).map(|_| next()).collect();
        let vf: Vec<f32> = (0..max_pos * kv_dim).map(|_| next()).collect();
        let q: Vec<f32> = (0..n_heads * hd).map(|_| next()).collect();
        let h16 = |v: &[f32]| -> Vec<u16> {
            v.iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect()
        };
        let (k16, v16) = (h16(&kf), h16(&vf));
        for f16 in [false, true] {
            let (k, v) = if f16 {
                (KvRows::F16(&k16), KvRows::F16(&v16))
            } else {
                (KvRows::F32(&kf), KvRows::F32(&vf))
            };
            for n_pos in [
                0usize,
                1,
                5,
                ATT_BLOCK_POS - 1,
                ATT_BLOCK_POS,
                ATT_BLOCK_POS + 1,
                max_pos,
            ] {
                let dims = (n_pos, n_heads, n_kv_heads, hd);
                let want: Vec<f32> = (0..n_heads)
                    .flat_map(|h| {
                        let (mut sc, mut out) = (vec![0f32; max_pos], vec![f32::NAN; hd]);
                        attention_head(ks, &q, k, v, h, dims, &mut sc, &mut out);
                        out
                    })
                    .collect();
                // chunks of heads as a thread pool may hand them out: 1..3, 3..n-1, n-1..n
                let (out_at, scores_at) = (3usize, 3 + hd + 2);
                let unit = scores_at + max_pos + 1;
                let chunks = [
                    (0usize, n_heads),
                    (1, 3),
                    (3, n_heads - 1),
                    (n_heads - 1, n_heads),
                ];
                for (h0, h1) in chunks.into_iter().filter(|(a, b)| a < b) {
                    let mut bufs = vec![f32::NAN; (h1 - h0) * unit];
                    attention_heads(ks, &q, k, v, h0, dims, &mut bufs, (unit, out_at, scores_at));
                    for h in h0..h1 {
                        let got = &bufs[(h - h0) * unit + out_at..][..hd];
                        let exp = &want[h * hd..(h + 1) * hd];
                        assert!(
                            got.iter().zip(exp).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "head {h} of {h0}..{h1}, {n_pos} positions, f16 {f16}"
                        );
                    }
                }
            }
        }
    }
}
