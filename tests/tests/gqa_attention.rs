//! Grouped GQA attention (`attention_heads`: over F16 caches the multi-head F16 kernels, each
//! cached value converted once for the query heads that share it; over Q8_0 caches the Q8_0
//! row kernels) with this CPU's kernels (or those `TERN_KERNELS` forces) against the scalar
//! per-head attention (`attention_head`), bit for bit, and against an f64 evaluation of the
//! formula, over head-major caches: 2B4T's shape (20 heads over 5 KV heads, `head_dim` 128),
//! groups of 6 (a 4-head pass and a 2-head one) and 1, and position counts around the
//! 256-position blocks.

use tern_core::attention::{ATT_BLOCK_POS, KvRows, attention_head, attention_heads};

fn rng(mut s: u64) -> impl FnMut() -> f32 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
    }
}

/// softmax(K·q / sqrt(hd)) · V for head `h` in f64, over head-major caches of `cap` positions.
fn reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    h: usize,
    dims: (usize, usize, usize, usize),
    cap: usize,
) -> Vec<f64> {
    let (n_pos, n_heads, n_kv_heads, hd) = dims;
    let kvh = h / (n_heads / n_kv_heads);
    let row = |c: &[f32], t: usize| c[(kvh * cap + t) * hd..][..hd].to_vec();
    let qh = &q[h * hd..(h + 1) * hd];
    let s: Vec<f64> = (0..n_pos)
        .map(|t| {
            let d: f64 = row(k, t)
                .iter()
                .zip(qh)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            d / (hd as f64).sqrt()
        })
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    let mut out = vec![0f64; hd];
    for (t, p) in e.iter().enumerate() {
        for (o, &x) in out.iter_mut().zip(&row(v, t)) {
            *o += p / z * x as f64;
        }
    }
    out
}

/// One cache shape: `attention_heads` with the CPU's kernels, in two chunks as two threads
/// take them (the split inside a KV group), against scalar `attention_head` bit for bit and
/// against [`reference`] on the values the caches hold (`k32`, `v32`) and the query the
/// kernels score with (`q_ref`: `q` itself, or its Q8_0 quantization for a Q8_0 cache).
#[allow(clippy::too_many_arguments)]
fn check_grouped(
    (n_heads, n_kv_heads, hd): (usize, usize, usize),
    cap: usize,
    (k, v): (KvRows<'_>, KvRows<'_>),
    (k32, v32): (&[f32], &[f32]),
    q: &[f32],
    q_ref: &[f32],
) {
    let ks = tern_linux::cpu::kernels().unwrap();
    let scalar = tern_kernels::select_scalar();
    for n_pos in [1usize, 7, ATT_BLOCK_POS - 1, ATT_BLOCK_POS + 1, cap] {
        let dims = (n_pos, n_heads, n_kv_heads, hd);
        let (out_at, scores_at) = (1usize, hd + 3);
        let unit = scores_at + cap;
        let mut bufs = vec![f32::NAN; n_heads * unit];
        let split = n_heads / 2 + 1;
        let (first, second) = bufs.split_at_mut(split.min(n_heads) * unit);
        attention_heads(ks, q, k, v, 0, dims, first, (unit, out_at, scores_at));
        attention_heads(ks, q, k, v, split, dims, second, (unit, out_at, scores_at));
        for h in 0..n_heads {
            let got = &bufs[h * unit + out_at..][..hd];
            let (mut sc, mut want) = (vec![0f32; cap], vec![f32::NAN; hd]);
            attention_head(scalar, q, k, v, h, dims, &mut sc, &mut want);
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(got),
                bits(&want),
                "{}: head {h} of {n_heads} over {n_kv_heads} KV heads, hd {hd}, {n_pos} positions",
                ks.variant.name()
            );
            let r = reference(q_ref, k32, v32, h, dims, cap);
            for (i, (&g, &e)) in got.iter().zip(&r).enumerate() {
                assert!(
                    (g as f64 - e).abs() <= 1e-5 + 1e-4 * e.abs(),
                    "head {h} value {i}: {g} against f64 {e} ({n_pos} positions)"
                );
            }
        }
    }
}

/// The shapes both tests run: 2B4T's, groups of 6 and of 1.
const SHAPES: [(usize, usize, usize); 3] = [(20, 5, 128), (12, 2, 64), (3, 3, 64)];

#[test]
fn grouped_f16_attention_matches_scalar_heads_and_f64() {
    for (n_heads, n_kv_heads, hd) in SHAPES {
        let kv_dim = n_kv_heads * hd;
        let cap = 2 * ATT_BLOCK_POS + 90;
        let mut next = rng(0x9E37_79B9_7F4A_7C15 ^ (n_heads * 1000 + hd) as u64);
        let to16 = |x: f32| half::f16::from_f32(x);
        let k16: Vec<u16> = (0..cap * kv_dim).map(|_| to16(next()).to_bits()).collect();
        let v16: Vec<u16> = (0..cap * kv_dim).map(|_| to16(next()).to_bits()).collect();
        let as32 = |c: &[u16]| -> Vec<f32> {
            c.iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect()
        };
        let (k32, v32) = (as32(&k16), as32(&v16));
        let q: Vec<f32> = (0..n_heads * hd).map(|_| next() * 0.25).collect();
        let kv = (KvRows::F16(&k16), KvRows::F16(&v16));
        check_grouped((n_heads, n_kv_heads, hd), cap, kv, (&k32, &v32), &q, &q);
    }
}

/// Q8_0 blocks (an f16 scale, 32 int8 values) of `vals` values from `next`, and the values
/// they hold (scale × int8) as f32.
fn q8_0_cache(vals: usize, next: &mut impl FnMut() -> f32) -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut held) = (Vec::new(), Vec::new());
    for _ in 0..vals / 32 {
        let d = half::f16::from_f32(0.02 + 0.01 * next());
        bytes.extend_from_slice(&d.to_bits().to_le_bytes());
        for _ in 0..32 {
            let q = (next() * 63.0).round() as i8;
            bytes.push(q as u8);
            held.push(d.to_f32() * f32::from(q));
        }
    }
    (bytes, held)
}

/// `x` quantized per 32 values as Q8_0 activations (`d = max|x| / 127`, `q = round(x / d)`,
/// ties to even) and dequantized: the query a Q8_0 K cache is scored with.
fn q8_0_query(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(32)
        .flat_map(|b| {
            let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            b.iter()
                .map(move |&v| (v * id).round_ties_even().clamp(-127.0, 127.0) * d)
        })
        .collect()
}

/// The same checks over Q8_0 caches (`attention_heads`' per-head row kernels
/// `dot_rows_q8_0`, `axpy_rows_q8_0`, the query quantized to Q8_0 once per head).
#[test]
fn grouped_q8_0_attention_matches_scalar_heads_and_f64() {
    for (n_heads, n_kv_heads, hd) in SHAPES {
        let kv_dim = n_kv_heads * hd;
        let cap = 2 * ATT_BLOCK_POS + 90;
        let mut next = rng(0x51_7CC1_B727_220A ^ (n_heads * 1000 + hd) as u64);
        let (kq, k32) = q8_0_cache(cap * kv_dim, &mut next);
        let (vq, v32) = q8_0_cache(cap * kv_dim, &mut next);
        let q: Vec<f32> = (0..n_heads * hd).map(|_| next() * 0.25).collect();
        let kv = (KvRows::Q8_0(&kq), KvRows::Q8_0(&vq));
        check_grouped(
            (n_heads, n_kv_heads, hd),
            cap,
            kv,
            (&k32, &v32),
            &q,
            &q8_0_query(&q),
        );
    }
}
