//! Synthetic models: the tiny shape packs and parses (`Model::parse` + `verify_checksums`), is
//! deterministic for a seed, and has the documented statistics. Needs `TERN_FIXTURES` for the
//! vocabulary (skipped with a message when unset).

use std::path::PathBuf;

use tern_core::config::FfnAct;
use tern_core::format::{LayerTensor, Model, TensorRole};
use tern_core::kernels::layout::{Layout, t2_get};
use tern_pack::pack::write_tern_atomic;
use tern_pack::synth::{SynthShape, synth_model};

/// The fixtures (`TERN_FIXTURES`), or `None` after a skip message; see [`tern_tests::fixtures`].
fn fixtures() -> Option<PathBuf> {
    tern_tests::fixtures("import_synth")
}

#[test]
fn tiny_synth_packs_parses_and_verifies() {
    let Some(fx) = fixtures() else { return };
    let vocab = fx.join("models/micro/hf-packed");
    let m = synth_model(SynthShape::Tiny, 42, &vocab).unwrap();
    let c = &m.config;
    assert_eq!(
        (
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim
        ),
        (256, 768, 4, 8, 2, 32)
    );
    assert_eq!(
        (c.vocab_size, c.ffn_act, c.sub_norms, c.tied_embedding),
        (4096, FfnAct::Relu2, true, true)
    );
    assert_eq!(m.provenance.source_format, "synthetic");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.tern");
    write_tern_atomic(&m, &out, |_| {}).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let model = Model::parse(&bytes).unwrap();
    model.verify_checksums().unwrap();
    // Same seed, same bytes; another seed, other weights.
    let mut again = Vec::new();
    synth_model(SynthShape::Tiny, 42, &vocab)
        .unwrap()
        .write(&mut again, |_| {})
        .unwrap();
    assert!(again == bytes);
    let other = synth_model(SynthShape::Tiny, 43, &vocab).unwrap();
    assert!(other.tensors[5].data != m.tensors[5].data);
    // Statistics: about a third zeros, scales near sqrt(cols), F16 embedding, norms 1.0.
    let q = model.file.layer(0, LayerTensor::Q).unwrap();
    let data = model.data(q);
    let n = (q.rows * q.cols) as usize;
    let zeros = (0..n)
        .filter(|&i| t2_get(&data[(i / 128) * 32..], i % 128) == 0)
        .count();
    assert!(
        (zeros as f64 / n as f64 - 1.0 / 3.0).abs() < 0.02,
        "{zeros}/{n}"
    );
    assert!(
        (12.0..=20.0).contains(&q.weight_scale),
        "{}",
        q.weight_scale
    );
    assert_eq!(
        model.file.global(TensorRole::TokenEmbd).unwrap().layout,
        Layout::F16
    );
    let norm = model.file.layer(1, LayerTensor::FfnSubNorm).unwrap();
    assert!(
        model
            .data(norm)
            .chunks_exact(4)
            .all(|c| f32::from_le_bytes(c.try_into().unwrap()) == 1.0)
    );
}

#[test]
fn synth_vocab_from_gguf() {
    let Some(fx) = fixtures() else { return };
    let m = synth_model(
        SynthShape::Tiny,
        1,
        &fx.join("tokenizer/ggml-vocab-llama-bpe.gguf"),
    )
    .unwrap();
    assert_eq!(m.config.vocab_size, 128256);
    assert_eq!(m.tensors[0].data.len(), 128256 * 256 * 2);
}
