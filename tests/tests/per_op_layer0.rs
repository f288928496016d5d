//! Per operation: feed the micro model's `layers/layer0.*` reference inputs (transformers,
//! float32) into one op at a time and compare with the next dump (fixtures README, check 1).

use std::path::Path;

use tern_core::attention::{self, KvRows};
use tern_core::exec::SingleThread;
use tern_core::format::{LayerTensor, Model, TensorRole};
use tern_core::forward::{self, TernaryWeight};
use tern_kernels::float::scalar::decode_row;
use tern_tests::{fixtures, packed_bytes, parse, read_f32, read_json};

const REL: f32 = 1e-5;

struct Dumps<'p> {
    dir: &'p Path,
    n: usize,
}

impl Dumps<'_> {
    fn get(&self, name: &str, width: usize) -> Vec<f32> {
        let v = read_f32(&self.dir.join(format!("{name}.f32.bin"))).unwrap();
        assert_eq!(v.len(), self.n * width, "{name}: shape");
        v
    }
}

/// Compare row by row: |a - b| <= 1e-5 * max(|b|, rms(b_row)) for every element.
/// Returns the fraction of bit-identical values.
fn compare(name: &str, got: &[f32], want: &[f32], width: usize) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut same = 0usize;
    for (r, (g, w)) in got.chunks(width).zip(want.chunks(width)).enumerate() {
        let rms = (w.iter().map(|v| v * v).sum::<f32>() / width as f32).sqrt();
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            let tol = REL * b.abs().max(rms);
            assert!(
                (a - b).abs() <= tol,
                "{name}: token {r} element {i}: got {a}, reference {b} (tol {tol})"
            );
            same += (a.to_bits() == b.to_bits()) as usize;
        }
    }
    let f = same as f64 / got.len() as f64;
    eprintln!(
        "{name}: within {REL} relative; {:.1}% bit-identical",
        100.0 * f
    );
    f
}

fn norm_w(m: &Model<'_>, kind: LayerTensor) -> Vec<f32> {
    let t = m.file.layer(0, kind).unwrap();
    let mut w = vec![0f32; t.cols as usize];
    assert!(decode_row(t.layout, m.data(t), &mut w));
    w
}

fn tw<'m>(m: &Model<'m>, kind: LayerTensor) -> TernaryWeight<'m> {
    let t = m.file.layer(0, kind).unwrap();
    TernaryWeight {
        layout: tern_core::kernels::layout::TernaryLayout::from_layout(t.layout).unwrap(),
        data: m.data(t),
        rows: t.rows as usize,
        cols: t.cols as usize,
        weight_scale: t.weight_scale,
    }
}

fn rows_rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (o, r) in out.chunks_mut(w.len()).zip(x.chunks(w.len())) {
        forward::rmsnorm(r, w, eps, o);
    }
    out
}

fn rows_bitlinear(m: &Model<'_>, kind: LayerTensor, x: &[f32]) -> Vec<f32> {
    let k = tern_linux::cpu::kernels().unwrap();
    let w = tw(m, kind);
    let mut out = vec![0f32; x.len() / w.cols * w.rows];
    let mut xq = vec![0i8; w.cols];
    let mut acc = vec![0i32; w.rows];
    for (o, r) in out.chunks_mut(w.rows).zip(x.chunks(w.cols)) {
        let s_a = forward::quantize_input(k, r, &mut xq);
        forward::bitlinear(k, &SingleThread, w, &xq, s_a, &mut acc, o);
    }
    out
}

#[test]
fn layer0_ops_match_transformers_dumps() {
    let Some(fx) = fixtures("layer0_ops_match_transformers_dumps") else {
        return;
    };
    let refdir = fx.join("models/micro/reference/transformers/p4_long_en");
    let r = read_json(&refdir.join("reference.json")).unwrap();
    let n = r["n_tokens"].as_u64().unwrap() as usize;
    let d = Dumps {
        dir: &refdir.join("layers"),
        n,
    };
    let m = parse(packed_bytes(&fx.join("models/micro/hf-packed")));
    let c = m.file.header.config;
    let (dim, hid, qd, kvd, hd) = (
        c.dim as usize,
        c.hidden_dim as usize,
        c.q_dim(),
        c.kv_dim(),
        c.head_dim as usize,
    );
    let eps = c.norm_eps;

    // embedding rows
    let ids: Vec<u32> = r["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let emb_t = m.file.global(TensorRole::TokenEmbd).unwrap();
    let mut emb = vec![0f32; n * dim];
    for (row, &id) in emb.chunks_mut(dim).zip(&ids) {
        let rb = dim * 2;
        assert!(decode_row(
            emb_t.layout,
            &m.data(emb_t)[id as usize * rb..(id as usize + 1) * rb],
            row
        ));
    }
    assert_eq!(compare("embed", &emb, &d.get("embed", dim), dim), 1.0);

    let embed = d.get("embed", dim);
    compare(
        "attn_norm",
        &rows_rmsnorm(&embed, &norm_w(&m, LayerTensor::AttnNorm), eps),
        &d.get("layer0.attn_norm", dim),
        dim,
    );
    let attn_norm = d.get("layer0.attn_norm", dim);
    for (kind, name, w) in [
        (LayerTensor::Q, "layer0.q_proj", qd),
        (LayerTensor::K, "layer0.k_proj", kvd),
        (LayerTensor::V, "layer0.v_proj", kvd),
    ] {
        let f = compare(
            name,
            &rows_bitlinear(&m, kind, &attn_norm),
            &d.get(name, w),
            w,
        );
        assert!(
            f > 0.99,
            "{name}: BitLinear should be bit-exact (README: all seven linear outputs match bit for bit)"
        );
    }

    // attention over all positions: RoPE on the q/k dumps, causal GQA
    let (mut q, mut k, v) = (
        d.get("layer0.q_proj", qd),
        d.get("layer0.k_proj", kvd),
        d.get("layer0.v_proj", kvd),
    );
    let mut cos = vec![0f32; hd / 2];
    let mut sin = vec![0f32; hd / 2];
    for p in 0..n {
        forward::rope_tables(p as u32, c.rope_theta, hd, &mut cos, &mut sin);
        forward::rope(&mut q[p * qd..(p + 1) * qd], hd, &cos, &sin);
        forward::rope(&mut k[p * kvd..(p + 1) * kvd], hd, &cos, &sin);
    }
    // the cache head-major, (n_kv_heads, n, hd), as `KvRows` documents it
    let head_major = |x: &[f32]| -> Vec<f32> {
        let mut t = vec![0f32; n * kvd];
        for p in 0..n {
            for j in 0..kvd / hd {
                t[(j * n + p) * hd..][..hd].copy_from_slice(&x[p * kvd + j * hd..][..hd]);
            }
        }
        t
    };
    let (k, v) = (head_major(&k), head_major(&v));
    let mut att_out = vec![0f32; n * qd];
    let mut att = vec![0f32; c.n_heads as usize * n];
    for p in 0..n {
        attention::attention(
            tern_linux::cpu::kernels().unwrap(),
            &q[p * qd..(p + 1) * qd],
            KvRows::F32(&k),
            KvRows::F32(&v),
            p + 1,
            c.n_heads as usize,
            c.n_kv_heads as usize,
            hd,
            &mut att,
            &mut att_out[p * qd..(p + 1) * qd],
        );
    }
    compare(
        "attn_out_pre_sub_norm",
        &att_out,
        &d.get("layer0.attn_out_pre_sub_norm", qd),
        qd,
    );
    let pre = d.get("layer0.attn_out_pre_sub_norm", qd);
    compare(
        "attn_sub_norm",
        &rows_rmsnorm(&pre, &norm_w(&m, LayerTensor::AttnSubNorm), eps),
        &d.get("layer0.attn_sub_norm", qd),
        qd,
    );
    let f = compare(
        "o_proj",
        &rows_bitlinear(&m, LayerTensor::O, &d.get("layer0.attn_sub_norm", qd)),
        &d.get("layer0.o_proj", dim),
        dim,
    );
    assert!(f > 0.99, "o_proj should be bit-exact");

    // residual + FFN
    let h: Vec<f32> = embed
        .iter()
        .zip(d.get("layer0.o_proj", dim))
        .map(|(a, b)| a + b)
        .collect();
    compare(
        "ffn_norm",
        &rows_rmsnorm(&h, &norm_w(&m, LayerTensor::FfnNorm), eps),
        &d.get("layer0.ffn_norm", dim),
        dim,
    );
    let ffn_norm = d.get("layer0.ffn_norm", dim);
    for (kind, name) in [
        (LayerTensor::Gate, "layer0.gate_proj"),
        (LayerTensor::Up, "layer0.up_proj"),
    ] {
        let f = compare(
            name,
            &rows_bitlinear(&m, kind, &ffn_norm),
            &d.get(name, hid),
            hid,
        );
        assert!(f > 0.99, "{name} should be bit-exact");
    }
    let mut act = d.get("layer0.gate_proj", hid);
    forward::ffn_act_mul(c.ffn_act, &mut act, &d.get("layer0.up_proj", hid));
    assert_eq!(
        compare(
            "ffn_act_times_up",
            &act,
            &d.get("layer0.ffn_act_times_up", hid),
            hid
        ),
        1.0,
        "relu(gate)^2*up is exact (README)"
    );
    let au = d.get("layer0.ffn_act_times_up", hid);
    compare(
        "ffn_sub_norm",
        &rows_rmsnorm(&au, &norm_w(&m, LayerTensor::FfnSubNorm), eps),
        &d.get("layer0.ffn_sub_norm", hid),
        hid,
    );
    let f = compare(
        "down_proj",
        &rows_bitlinear(&m, LayerTensor::Down, &d.get("layer0.ffn_sub_norm", hid)),
        &d.get("layer0.down_proj", dim),
        dim,
    );
    assert!(f > 0.99, "down_proj should be bit-exact");
    let out: Vec<f32> = h
        .iter()
        .zip(d.get("layer0.down_proj", dim))
        .map(|(a, b)| a + b)
        .collect();
    compare("layer0.out", &out, &d.get("layer0.out", dim), dim);
}
