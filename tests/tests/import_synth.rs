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

/// `T1_160` is 20 % smaller: a synthetic model whose ternary widths are multiples of 640 (so
/// neither layout pads) packed in both layouts (built-in byte vocabulary, no fixtures): the
/// `T1_160` file has exactly the byte count the spec gives (`core/FORMAT.md`: 64-aligned
/// sections after the header; a ternary tensor is `rows * ceil(cols / 160) * 32` bytes), its
/// ternary tensors are exactly 0.8 × the `T2_128` ones, and both decode to the same values.
#[test]
fn t1_160_file_is_20_percent_smaller() {
    use tern_core::config::{FfnActSource, ModelConfig};
    use tern_core::kernels::layout::{TernaryLayout, t1_row_bytes, t2_row_bytes};
    use tern_pack::synth::synth_config_model;
    let config = ModelConfig {
        ffn_act: FfnAct::Relu2,
        ffn_act_source: FfnActSource::Metadata,
        sub_norms: true,
        tied_embedding: true,
        dim: 640,
        hidden_dim: 1920,
        n_layers: 2,
        n_heads: 5,
        n_kv_heads: 5,
        head_dim: 128,
        vocab_size: 0, // the vocabulary's
        max_ctx: 64,
        rope_theta: 500000.0,
        norm_eps: 1e-5,
    };
    let vocab = std::path::Path::new("bytes");
    let tmp = tempfile::tempdir().unwrap();
    let write = |l: TernaryLayout| {
        let m = synth_config_model(config, 5, vocab, l).unwrap();
        let out = tmp.path().join(format!("{}.tern", l.cli_name()));
        let n = write_tern_atomic(&m, &out, |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, n);
        (m, bytes)
    };
    let (m2, f2) = write(TernaryLayout::T2_128);
    let (m1, f1) = write(TernaryLayout::T1_160);
    // The expected size from the spec alone: header, then each section 64-aligned.
    let align = |x: u64| x.div_ceil(64) * 64;
    let header_len = u32::from_le_bytes(f1[16..20].try_into().unwrap()) as u64;
    let mut end = align(32 + header_len) + m1.tokenizer_blob.len() as u64;
    let (mut tern1, mut tern2) = (0u64, 0u64);
    for t in &m1.tensors {
        let (rows, cols) = (t.rows as u64, t.cols as usize);
        let len = match t.role {
            TensorRole::Layer(l) if l.is_ternary() => {
                assert_eq!(cols % 640, 0);
                tern1 += rows * t1_row_bytes(cols) as u64;
                tern2 += rows * t2_row_bytes(cols) as u64;
                rows * t1_row_bytes(cols) as u64
            }
            TensorRole::TokenEmbd => rows * cols as u64 * 2, // F16
            _ => rows * cols as u64 * 4,                     // F32 norms
        };
        end = align(end) + len;
    }
    assert_eq!(f1.len() as u64, end, "T1_160 file size from the spec");
    // 2 layers of q, k, v, o (640 x 640) and gate, up (1920 x 640), down (640 x 1920)
    assert_eq!(tern1, 2 * (4 * 640 * 128 + 2 * 1920 * 128 + 640 * 384));
    assert_eq!(tern1 * 5, tern2 * 4, "ternary bytes: exactly 0.8x");
    let saved = f2.len() - f1.len();
    assert_eq!(
        saved as u64,
        tern2 - tern1,
        "the file shrinks by the ternary bytes saved"
    );
    let ratio = f1.len() as f64 / f2.len() as f64;
    eprintln!(
        "T2_128 {} bytes, T1_160 {} bytes ({:.1} % smaller)",
        f2.len(),
        f1.len(),
        100.0 * (1.0 - ratio)
    );
    // the whole file, with its F16 embedding (258 x 640) and norms: 17.6 % smaller
    assert!(ratio < 0.83, "{ratio}");
    // same values, same scales
    let (p2, p1) = (Model::parse(&f2).unwrap(), Model::parse(&f1).unwrap());
    p1.verify_checksums().unwrap();
    for (a, b) in m2.tensors.iter().zip(&m1.tensors) {
        assert_eq!(a.weight_scale, b.weight_scale);
        if let (Some(la), Some(lb)) = (
            TernaryLayout::from_layout(a.layout),
            TernaryLayout::from_layout(b.layout),
        ) {
            let (rows, cols) = (a.rows as usize, a.cols as usize);
            let (mut va, mut vb) = (vec![0i8; rows * cols], vec![0i8; rows * cols]);
            for r in 0..rows {
                la.decode_row(
                    &a.data[r * la.row_bytes(cols)..][..la.row_bytes(cols)],
                    &mut va[r * cols..(r + 1) * cols],
                );
                lb.decode_row(
                    &b.data[r * lb.row_bytes(cols)..][..lb.row_bytes(cols)],
                    &mut vb[r * cols..(r + 1) * cols],
                );
            }
            assert!(va == vb, "{}", a.name);
        } else {
            assert_eq!(a.data, b.data);
        }
    }
    assert_eq!(
        p2.file.weight_bytes() - p1.file.weight_bytes(),
        tern2 - tern1
    );
}
