//! Every form of the fixtures' `micro` model imports to the same `.tern` tensors, and these
//! match independent decodes (`quant_report.json`, a direct unpack of the HF packed bytes).
//! Needs `TERN_FIXTURES` (skipped with a message when unset).

use std::path::PathBuf;

use tern_core::config::{FfnAct, FfnActSource};
use tern_core::format::writer::{OwnedModel, OwnedTensor};
use tern_core::format::{Model, TensorRole};
use tern_core::kernels::layout::{Layout, TernaryLayout, t1_row_bytes, t2_get, t2_row_bytes};
use tern_pack::import::{ImportProgress, import_path};
use tern_pack::pack::{PackOptions, pack_path, write_tern_atomic};

/// The fixtures (`TERN_FIXTURES`), or `None` after a skip message; see [`tern_tests::fixtures`].
fn micro() -> Option<PathBuf> {
    tern_tests::fixtures("import_micro").map(|p| p.join("models/micro"))
}

const FORMS: [(&str, &str); 6] = [
    ("gguf/micro-f16.gguf", "gguf:F16"),
    ("gguf/micro-tq1_0.gguf", "gguf:TQ1_0"),
    ("gguf/micro-tq2_0.gguf", "gguf:TQ2_0"),
    ("gguf/micro-i2_s.gguf", "gguf:I2_S"),
    ("hf-packed", "safetensors:packed"),
    ("hf-bf16-master", "safetensors:bf16-master"),
];

fn import(p: &std::path::Path) -> OwnedModel {
    let count = std::cell::Cell::new(0);
    let m = import_path(p, &PackOptions::default(), &|pr: ImportProgress<'_>| {
        count.set(count.get() + 1);
        assert_eq!(pr.done, count.get());
    })
    .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    assert_eq!(count.get(), m.tensors.len());
    m
}

fn f32s(t: &OwnedTensor) -> Vec<f32> {
    tern_pack::import::float::to_f32(t.layout, &t.data).unwrap()
}

/// Ternary codes of a T2_128 tensor, decoded with the kernels' `t2_get`.
fn codes(t: &OwnedTensor) -> Vec<i8> {
    let rb = t2_row_bytes(t.cols as usize);
    let mut v = Vec::new();
    for r in 0..t.rows as usize {
        let row = &t.data[r * rb..(r + 1) * rb];
        for c in 0..t.cols as usize {
            v.push(t2_get(&row[(c / 128) * 32..], c % 128));
        }
    }
    v
}

#[test]
fn all_micro_forms_import_identically() {
    let Some(dir) = micro() else { return };
    let models: Vec<OwnedModel> = FORMS.iter().map(|(f, _)| import(&dir.join(f))).collect();
    let r = &models[0];
    for ((f, fmt), m) in FORMS.iter().zip(&models) {
        assert_eq!(&m.provenance.source_format, fmt, "{f}");
        assert_eq!(
            m.provenance.packer,
            format!("tern-pack {}", env!("CARGO_PKG_VERSION"))
        );
        assert_ne!(m.provenance.source_sha256, [0; 32]);
        let c = &m.config;
        assert_eq!(c.ffn_act, FfnAct::Relu2, "{f}");
        let src = if f.starts_with("gguf/micro-") && !f.contains("i2_s") {
            FfnActSource::Rule
        } else {
            FfnActSource::Metadata
        };
        assert_eq!(c.ffn_act_source, src, "{f}");
        assert!(c.sub_norms && c.tied_embedding, "{f}");
        let dims = (
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.vocab_size,
            c.max_ctx,
        );
        assert_eq!(dims, (256, 768, 4, 8, 2, 32, 4096, 256), "{f}");
        assert_eq!((c.rope_theta, c.norm_eps), (500000.0, 1e-5), "{f}");
        assert_eq!(m.plan.ctx_len, 256, "{f}");
        assert_eq!(m.tensors.len(), 2 + 4 * 11, "{f}");
        for (a, b) in r.tensors.iter().zip(&m.tensors) {
            assert_eq!(
                (&a.name, a.role, a.layer, a.rows, a.cols),
                (&b.name, b.role, b.layer, b.rows, b.cols),
                "{f}"
            );
            match a.role {
                TensorRole::TokenEmbd => {
                    // GGUF F16 vs HF BF16: both decode to the same exact values.
                    assert!(matches!(b.layout, Layout::F16 | Layout::Bf16), "{f}");
                    assert_eq!(f32s(a), f32s(b), "{f}: {}", a.name);
                }
                TensorRole::Layer(lt) if lt.is_ternary() => {
                    assert_eq!(b.layout, Layout::T2_128, "{f}: {}", b.name);
                    assert_eq!(a.weight_scale, b.weight_scale, "{f}: {}", a.name);
                    assert!(a.data == b.data, "{f}: {} T2_128 bytes differ", a.name);
                }
                _ => {
                    assert_eq!(
                        (b.layout, b.weight_scale, b.rows),
                        (Layout::F32, 1.0, 1),
                        "{f}: {}",
                        b.name
                    );
                    assert_eq!(a.data, b.data, "{f}: {}", a.name);
                }
            }
        }
    }
}

/// Decoded ternary values (-1, 0, +1) of a tensor in either ternary layout.
fn values(t: &OwnedTensor) -> Vec<i8> {
    let l = TernaryLayout::from_layout(t.layout).expect("a ternary tensor");
    let (rows, cols) = (t.rows as usize, t.cols as usize);
    let rb = l.row_bytes(cols);
    assert_eq!(t.data.len(), rows * rb, "{}", t.name);
    let mut v = vec![0i8; rows * cols];
    for r in 0..rows {
        l.decode_row(
            &t.data[r * rb..(r + 1) * rb],
            &mut v[r * cols..(r + 1) * cols],
        );
    }
    v
}

/// `--ternary t1_160`: all six forms pack to `T1_160` tensors whose decoded values and scales
/// are exactly the `T2_128` import's (and so the same in every form), every other tensor is
/// unchanged, and the option is recorded in the provenance.
#[test]
fn all_micro_forms_import_identically_as_t1_160() {
    let Some(dir) = micro() else { return };
    let opts = PackOptions {
        ternary: TernaryLayout::T1_160,
        ..Default::default()
    };
    let mut first: Option<OwnedModel> = None;
    for (f, _) in FORMS {
        let t2 = import(&dir.join(f));
        let t1 = import_path(&dir.join(f), &opts, &|_| {}).unwrap();
        assert_eq!(t1.provenance.options, "--ternary t1_160", "{f}");
        assert_eq!(t1.tensors.len(), t2.tensors.len());
        let mut n_ternary = 0;
        for (a, b) in t2.tensors.iter().zip(&t1.tensors) {
            assert_eq!(
                (&a.name, a.role, a.layer, a.rows, a.cols, a.weight_scale),
                (&b.name, b.role, b.layer, b.rows, b.cols, b.weight_scale),
                "{f}"
            );
            if a.layout == Layout::T2_128 {
                n_ternary += 1;
                assert_eq!(b.layout, Layout::T1_160, "{f}: {}", b.name);
                assert_eq!(
                    b.data.len(),
                    b.rows as usize * t1_row_bytes(b.cols as usize),
                    "{f}: {}",
                    b.name
                );
                assert_eq!(values(a), values(b), "{f}: {} values differ", a.name);
                assert_eq!(values(a), codes(a), "{f}: {}", a.name);
            } else {
                assert_eq!((a.layout, &a.data), (b.layout, &b.data), "{f}: {}", a.name);
            }
        }
        assert_eq!(n_ternary, 4 * 7, "{f}");
        // the T1_160 bytes of every form are the same (up to the embedding's F16/BF16 bits)
        match &first {
            None => first = Some(t1),
            Some(r) => {
                for (a, b) in r.tensors.iter().zip(&t1.tensors) {
                    if a.layout == Layout::T1_160 {
                        assert!(a.data == b.data, "{f}: {} T1_160 bytes differ", a.name);
                    }
                }
            }
        }
    }
}

fn hf_to_gguf(hf: &str) -> String {
    let (l, rest) = hf
        .trim_start_matches("model.layers.")
        .split_once('.')
        .unwrap();
    let short = match rest.trim_end_matches(".weight") {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => panic!("unexpected {other}"),
    };
    format!("blk.{l}.{short}.weight")
}

#[test]
fn ternary_tensors_match_quant_report() {
    let Some(dir) = micro() else { return };
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("quant_report.json")).unwrap())
            .unwrap();
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), 28);
    for (f, _) in FORMS {
        let m = import(&dir.join(f));
        for e in report {
            let name = hf_to_gguf(e["tensor"].as_str().unwrap());
            let t = m.tensors.iter().find(|t| t.name == name).unwrap();
            let shape: Vec<u64> = e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(shape, vec![t.rows as u64, t.cols as u64], "{f}: {name}");
            let alpha = e["alpha"].as_f64().unwrap();
            assert_eq!(1.0 / t.weight_scale as f64, alpha, "{f}: {name}");
            let c = codes(t);
            let n = c.len() as f64;
            let zeros = c.iter().filter(|&&x| x == 0).count() as f64;
            let plus = c.iter().filter(|&&x| x == 1).count() as f64;
            assert_eq!(zeros / n, e["frac_zero"].as_f64().unwrap(), "{f}: {name}");
            assert_eq!(plus / n, e["frac_plus"].as_f64().unwrap(), "{f}: {name}");
        }
    }
}

/// Independent unpack of the HF packed bytes (transformers `unpack_weights`, written here from
/// the fixtures README) equals the imported T2_128 codes.
#[test]
fn hf_packed_independent_unpack() {
    let Some(dir) = micro() else { return };
    let bytes = std::fs::read(dir.join("hf-packed/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let m = import(&dir.join("gguf/micro-tq1_0.gguf"));
    for (hf, gg) in [
        (
            "model.layers.0.self_attn.q_proj.weight",
            "blk.0.attn_q.weight",
        ),
        (
            "model.layers.3.mlp.down_proj.weight",
            "blk.3.ffn_down.weight",
        ),
    ] {
        let v = st.tensor(hf).unwrap();
        let (rq, cols) = (v.shape()[0], v.shape()[1]);
        let t = m.tensors.iter().find(|t| t.name == gg).unwrap();
        let c = codes(t);
        for r in 0..rq {
            for col in 0..cols {
                let b = v.data()[r * cols + col];
                for i in 0..4 {
                    let w = ((b >> (2 * i)) & 3) as i8 - 1;
                    assert_eq!(
                        c[(r + i * rq) * cols + col],
                        w,
                        "{gg} row {} col {col}",
                        r + i * rq
                    );
                }
            }
        }
        let s = st.tensor(&hf.replace(".weight", ".weight_scale")).unwrap();
        let ws = half::bf16::from_le_bytes([s.data()[0], s.data()[1]]).to_f32();
        assert_eq!(ws, t.weight_scale);
    }
}

#[test]
fn packed_files_parse_verify_and_match() {
    let Some(dir) = micro() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut first: Option<Vec<u8>> = None;
    for (f, _) in FORMS {
        let out = tmp.path().join("m.tern");
        let rep = pack_path(&dir.join(f), &out, &PackOptions::default()).unwrap();
        let b = std::fs::read(&out).unwrap();
        assert_eq!(b.len() as u64, rep.bytes_written);
        let model = Model::parse(&b).unwrap_or_else(|e| panic!("{f}: {e}"));
        model.verify_checksums().unwrap();
        // All tensor data (from the first tensor on) is identical, except the embedding layout
        // (F16 in GGUF, BF16 in HF): compare the ternary and norm tensors.
        let mut data = Vec::new();
        for e in model
            .file
            .entries()
            .filter(|e| e.role != TensorRole::TokenEmbd)
        {
            data.extend_from_slice(&b[e.offset as usize..(e.offset + e.len) as usize]);
            data.extend_from_slice(&e.weight_scale.to_le_bytes());
        }
        match &first {
            None => first = Some(data),
            Some(d) => assert!(d == &data, "{f}: tensor data differs"),
        }
    }
}

#[test]
fn options_override_activation_and_context() {
    let Some(dir) = micro() else { return };
    let opts = PackOptions {
        ffn_act: Some(FfnAct::Silu),
        ctx_len: Some(100),
        ..Default::default()
    };
    for f in ["gguf/micro-tq2_0.gguf", "hf-packed"] {
        let m = import_path(&dir.join(f), &opts, &|_| {}).unwrap();
        assert_eq!(
            (m.config.ffn_act, m.config.ffn_act_source),
            (FfnAct::Silu, FfnActSource::Override)
        );
        assert_eq!(m.plan.ctx_len, 100);
        assert_eq!(m.provenance.options, "--ffn-act silu --ctx 100");
    }
    // --ctx above the model's context is clamped to it.
    let opts = PackOptions {
        ffn_act: None,
        ctx_len: Some(100_000),
        ..Default::default()
    };
    let m = import_path(&dir.join("hf-packed"), &opts, &|_| {}).unwrap();
    assert_eq!(m.plan.ctx_len, 256);
    // Writing the same model twice gives the same bytes (deterministic packing).
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.tern"), tmp.path().join("b.tern"));
    write_tern_atomic(&m, &a, |_| {}).unwrap();
    write_tern_atomic(&m, &b, |_| {}).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// The same checkpoint split into two shards with `model.safetensors.index.json` imports to the
/// same tensors.
#[test]
fn sharded_safetensors_import_identically() {
    let Some(dir) = micro() else { return };
    let src = dir.join("hf-packed");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("sharded");
    std::fs::create_dir(&d).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), d.join(f)).unwrap();
    }
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut map = serde_json::Map::new();
    for (k, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", k + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &d.join(&file)).unwrap();
        for n in part {
            map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(d.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let a = import(&src);
    let b = import(&d);
    assert_eq!(a.config, b.config);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(
            (&x.name, x.layout, x.weight_scale),
            (&y.name, y.layout, y.weight_scale)
        );
        assert!(x.data == y.data, "{}", x.name);
    }
}
