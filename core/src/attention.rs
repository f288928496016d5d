//! Causal GQA attention for one query position over a layer's KV cache: the scores `K·q`
//! scaled by `head_dim^-0.5`, softmax, and the weighted sum of the value rows, with the kernels'
//! row dots and axpys.

use tern_kernels::KernelSet;

use crate::forward::softmax;

/// A read-only view of one layer's K or V cache, head-major: `(n_kv_heads, cap_pos, head_dim)`
/// with `cap_pos` the cache's capacity in positions (its length over `n_kv_heads` rows of
/// `head_dim` values), so the rows of one KV head, position after position, are contiguous and
/// attention streams them in order. A position-major cache `(n_pos, kv_dim)`, read one KV head
/// at a time, skips past the other heads' rows: at 1800 positions of 2B4T its V rows read at
/// half the rate (a standalone run of the 30 layers' `axpy_rows`, 13.7 ms against 6.9 ms), and
/// decode ran 8-11 % slower.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'c> {
    /// f32 values.
    F32(&'c [f32]),
    /// IEEE binary16 bits.
    F16(&'c [u16]),
    /// Q8_0 blocks (GGUF's `block_q8_0`: an f16 scale, then 32 int8 values, 34 bytes per 32
    /// values; llama.cpp's `--cache-type-k/-v q8_0`), `head_dim` a multiple of 32 and at most
    /// 256: a row is `head_dim / 32` blocks.
    Q8_0(&'c [u8]),
}

/// How a KV cache stores its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    F32,
    F16,
    Q8_0,
}

impl Elem {
    /// Bytes of one row of `head_dim` values.
    fn row_bytes(self, head_dim: usize) -> usize {
        match self {
            Elem::F32 => 4 * head_dim,
            Elem::F16 => 2 * head_dim,
            Elem::Q8_0 => head_dim / 32 * 34,
        }
    }
}

impl<'c> KvRows<'c> {
    /// The cache as little-endian bytes, and how they store the values.
    fn bytes(self) -> (&'c [u8], Elem) {
        match self {
            KvRows::F32(s) => (bytemuck::cast_slice(s), Elem::F32),
            KvRows::F16(s) => (bytemuck::cast_slice(s), Elem::F16),
            KvRows::Q8_0(s) => (s, Elem::Q8_0),
        }
    }

    /// The cache's capacity in positions for `n_kv_heads` rows of `head_dim` values each.
    ///
    /// # Panics
    /// If the length is not whole `(n_kv_heads, cap_pos, head_dim)` blocks or holds fewer
    /// than `n_pos` positions, or a Q8_0 `head_dim` is not a multiple of 32 of at most
    /// [`PASS_MAX_HEAD_DIM`] (caller bugs).
    fn cap_pos(self, n_kv_heads: usize, head_dim: usize, n_pos: usize) -> usize {
        let (b, e) = self.bytes();
        let per_pos = n_kv_heads * e.row_bytes(head_dim);
        assert!(
            e != Elem::Q8_0
                || (head_dim.is_multiple_of(32) && (1..=PASS_MAX_HEAD_DIM).contains(&head_dim)),
            "attention: a Q8_0 KV cache needs head_dim a multiple of 32 of at most \
             {PASS_MAX_HEAD_DIM}, not {head_dim}"
        );
        assert!(
            per_pos > 0 && b.len().is_multiple_of(per_pos) && b.len() / per_pos >= n_pos,
            "attention: a KV cache of {} bytes is not (n_kv_heads {n_kv_heads}, >= {n_pos}, \
             head_dim {head_dim}) of {e:?}",
            b.len()
        );
        b.len() / per_pos
    }
}

/// The bytes of KV head `kvh`'s rows at positions `a .. b` of a head-major cache `(bytes,
/// element e)` of `cap` positions, rows of `head_dim` values (contiguous).
fn head_rows(
    (bytes, e): (&[u8], Elem),
    cap: usize,
    head_dim: usize,
    kvh: usize,
    (a, b): (usize, usize),
) -> &[u8] {
    let row = e.row_bytes(head_dim);
    &bytes[(kvh * cap + a) * row..(kvh * cap + b) * row]
}

/// Query heads `q: (heads, head_dim)` as the row dots of a cache of element `e` take them: as
/// they are, and for a Q8_0 cache also quantized to Q8_0 (the kernels' `quantize_q8_0`, once
/// per head for all positions, as llama.cpp quantizes the query for a Q8_0 K cache), at most
/// [`PASS_HEADS`] heads of [`PASS_MAX_HEAD_DIM`] values.
struct Queries<'q> {
    f: &'q [f32],
    e: Elem,
    head_dim: usize,
    q8: [i8; PASS_HEADS * PASS_MAX_HEAD_DIM],
    d8: [f32; PASS_HEADS * PASS_MAX_HEAD_DIM / 32],
}

impl<'q> Queries<'q> {
    fn new(ks: &KernelSet, e: Elem, q: &'q [f32], head_dim: usize) -> Queries<'q> {
        let mut s = Queries {
            f: q,
            e,
            head_dim,
            q8: [0; PASS_HEADS * PASS_MAX_HEAD_DIM],
            d8: [0.0; PASS_HEADS * PASS_MAX_HEAD_DIM / 32],
        };
        if e == Elem::Q8_0 {
            let n = q.len();
            assert!(
                n <= s.q8.len() && head_dim.is_multiple_of(32),
                "attention: Q8_0 query heads"
            );
            (ks.quantize_q8_0)(q, &mut s.q8[..n], &mut s.d8[..n / 32]);
        }
        s
    }

    /// `out[r] = k_r · q_i`: head `i`'s scores over `rows` (one KV head's positions), unscaled.
    fn dots(&self, ks: &KernelSet, i: usize, rows: &[u8], out: &mut [f32]) {
        let hd = self.head_dim;
        let qh = &self.f[i * hd..(i + 1) * hd];
        match self.e {
            Elem::F32 => (ks.dot_rows_f32)(rows, 4 * hd, qh, out),
            Elem::F16 => (ks.dot_rows_f16)(rows, 2 * hd, qh, out),
            Elem::Q8_0 => (ks.dot_rows_q8_0)(
                rows,
                &self.q8[i * hd..(i + 1) * hd],
                &self.d8[i * hd / 32..(i + 1) * hd / 32],
                out,
            ),
        }
    }
}

/// `y += Σ_r a[r] · v_r` over `rows` (one KV head's positions, of element `e`) in order.
fn axpys(ks: &KernelSet, e: Elem, a: &[f32], rows: &[u8], y: &mut [f32]) {
    match e {
        Elem::F32 => (ks.axpy_rows_f32)(a, rows, 4 * y.len(), y),
        Elem::F16 => (ks.axpy_rows_f16)(a, rows, 2 * y.len(), y),
        Elem::Q8_0 => (ks.axpy_rows_q8_0)(a, rows, y),
    }
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
    let kvh = h / (n_heads / n_kv_heads);
    let scale = 1.0f32 / libm::sqrtf(head_dim as f32);
    let scores = &mut scores[..n_pos];
    let (kc, vc) = (
        k.cap_pos(n_kv_heads, head_dim, n_pos),
        v.cap_pos(n_kv_heads, head_dim, n_pos),
    );
    out.fill(0.0);
    if n_pos == 0 {
        return;
    }
    let (kb, vb) = (k.bytes(), v.bytes());
    let qs = Queries::new(ks, kb.1, &q[h * head_dim..(h + 1) * head_dim], head_dim);
    let span = (0, n_pos);
    qs.dots(ks, 0, head_rows(kb, kc, head_dim, kvh, span), scores);
    scaled_softmax(scores, scale);
    axpys(
        ks,
        vb.1,
        scores,
        head_rows(vb, vc, head_dim, kvh, span),
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
    let scale = 1.0f32 / libm::sqrtf(head_dim as f32);
    let (kc, vc) = (
        k.cap_pos(n_kv_heads, head_dim, n_pos),
        v.cap_pos(n_kv_heads, head_dim, n_pos),
    );
    let (kb, vb) = (k.bytes(), v.bytes());
    let f16_heads =
        kb.1 == Elem::F16 && vb.1 == Elem::F16 && (1..=PASS_MAX_HEAD_DIM).contains(&head_dim);
    let layout = (unit, out_at, scores_at);
    let mut j = 0;
    while j < m {
        let h = h0 + j;
        let kvh = h / g;
        // heads j .. j + run of this call share KV head kvh
        let run = ((kvh + 1) * g - h).min(m - j);
        let group = &mut bufs[j * unit..(j + run) * unit];
        j += run;
        for (i, pass) in group.chunks_mut(PASS_HEADS * unit).enumerate() {
            let hp = h + i * PASS_HEADS;
            let qp = &q[hp * head_dim..(hp + pass.len() / unit) * head_dim];
            let kv = ((kb, kc), (vb, vc), kvh);
            let dims = (n_pos, head_dim, scale);
            if f16_heads {
                pass_f16(ks, qp, kv, dims, pass, layout);
            } else {
                pass_rows(ks, qp, kv, dims, pass, layout);
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

/// A cache's bytes with their element type, and its capacity in positions.
type Cache<'c> = ((&'c [u8], Elem), usize);

/// Up to [`PASS_HEADS`] query heads of KV head `kvh` (the heads of `bufs`, laid out as
/// [`attention_heads`]' are; `q: (heads, head_dim)` theirs) with the per-head row kernels:
/// the dots block by block into each head's scores, the scaled softmax, then the axpys block
/// by block, in order (the same operations as [`attention_head`]'s).
fn pass_rows(
    ks: &KernelSet,
    q: &[f32],
    ((kb, kc), (vb, vc), kvh): (Cache<'_>, Cache<'_>, usize),
    (n_pos, head_dim, scale): (usize, usize, f32),
    bufs: &mut [f32],
    (unit, out_at, scores_at): (usize, usize, usize),
) {
    let qs = Queries::new(ks, kb.1, q, head_dim);
    for b in bufs.chunks_exact_mut(unit) {
        b[out_at..out_at + head_dim].fill(0.0);
    }
    for (a, b) in blocks(n_pos) {
        let rows = head_rows(kb, kc, head_dim, kvh, (a, b));
        for (i, buf) in bufs.chunks_exact_mut(unit).enumerate() {
            qs.dots(ks, i, rows, &mut buf[scores_at + a..scores_at + b]);
        }
    }
    heads_softmax(bufs, (unit, scores_at, n_pos), scale);
    for (a, b) in blocks(n_pos) {
        let rows = head_rows(vb, vc, head_dim, kvh, (a, b));
        for buf in bufs.chunks_exact_mut(unit) {
            let (head, scores) = buf.split_at_mut(scores_at);
            axpys(
                ks,
                vb.1,
                &scores[a..b],
                rows,
                &mut head[out_at..out_at + head_dim],
            );
        }
    }
}

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
