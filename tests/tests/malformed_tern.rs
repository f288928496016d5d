//! Malformed `.tern` inputs: every corruption gives a specific `tern_core::Error`, never a panic.
//! Needs no fixtures (a small complete model is built by hand).

use tern_core::config::{FfnAct, FfnActSource, ModelConfig};
use tern_core::error::Section;
use tern_core::format::writer::{OwnedModel, OwnedProvenance, OwnedTensor};
use tern_core::format::{DefaultPlan, Model, TernFile, TokenizerInfo, TokenizerKind};
use tern_core::plan::KvDtype;
use tern_core::{Error, kernels::layout::Layout};
use tern_pack::import::wanted_tensors;
use tern_pack::pack::write_tern_atomic;

fn small_model() -> OwnedModel {
    let config = ModelConfig {
        ffn_act: FfnAct::Relu2,
        ffn_act_source: FfnActSource::Metadata,
        sub_norms: true,
        tied_embedding: true,
        dim: 8,
        hidden_dim: 16,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 4,
        vocab_size: 4,
        max_ctx: 32,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
    };
    let tensors = wanted_tensors(&config)
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let (rows, cols) = w.shape;
            let layout = if w.is_ternary() {
                Layout::T2_128
            } else {
                Layout::F32
            };
            let len = rows as usize * layout.row_bytes(cols as usize).unwrap();
            let data = (0..len)
                .map(|k| {
                    if w.is_ternary() {
                        0x55 ^ ((k + i) as u8 & 0x01)
                    } else {
                        (k * 3 + i) as u8
                    }
                })
                .collect();
            OwnedTensor {
                name: w.name,
                role: w.role,
                layer: w.layer,
                layout,
                rows,
                cols,
                weight_scale: 2.0,
                data,
            }
        })
        .collect();
    OwnedModel {
        config,
        tokenizer: TokenizerInfo {
            kind: TokenizerKind::Bpe,
            n_tokens: 4,
            bos: Some(0),
            eos: Some(1),
            stop_ids: heapless::Vec::new(),
            add_bos: true,
            offset: 0,
            len: 0,
            crc32: 0,
        },
        tokenizer_blob: vec![7; 10],
        plan: DefaultPlan {
            ctx_len: 32,
            kv: KvDtype::F32,
        },
        provenance: OwnedProvenance::default(),
        tensors,
    }
}

fn good_bytes() -> Vec<u8> {
    let mut v = Vec::new();
    small_model().write(&mut v, |_| {}).unwrap();
    v
}

fn header_len(b: &[u8]) -> usize {
    u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize
}

#[test]
fn good_file_parses_and_verifies() {
    let b = good_bytes();
    let m = Model::parse(&b).unwrap();
    m.verify_checksums().unwrap();
    assert_eq!(m.file.header.n_tensors, 13);
}

#[test]
fn atomic_write_roundtrips_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.tern");
    let n = write_tern_atomic(&small_model(), &out, |_| {}).unwrap();
    let b = std::fs::read(&out).unwrap();
    assert_eq!(b.len() as u64, n);
    assert_eq!(b, good_bytes());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.tern")]);
    // A failing write (bad tensor length) leaves neither output nor temp file behind.
    let mut bad = small_model();
    bad.tensors[3].data.pop();
    let out2 = dir.path().join("bad.tern");
    let e = write_tern_atomic(&bad, &out2, |_| {}).unwrap_err();
    assert!(format!("{e:#}").contains(&bad.tensors[3].name), "{e:#}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.tern")]);
}

#[test]
fn truncated_anywhere_is_an_error_never_a_panic() {
    let b = good_bytes();
    let hend = 32 + header_len(&b);
    for cut in 0..b.len() {
        let e = Model::parse(&b[..cut]).unwrap_err();
        let ok = match e {
            Error::Truncated {
                section: Section::Preamble,
            } => cut < 32,
            Error::Truncated {
                section: Section::Header,
            } => cut >= 32 && cut < hend,
            Error::TensorOutOfBounds { .. }
            | Error::Truncated {
                section: Section::Tokenizer,
            } => cut >= hend,
            _ => false,
        };
        assert!(ok, "cut at {cut}: {e:?}");
    }
}

#[test]
fn wrong_magic_and_version() {
    let mut b = good_bytes();
    b[1] = b'X';
    assert_eq!(Model::parse(&b).unwrap_err(), Error::BadMagic);
    let mut b = good_bytes();
    b[8] = 2;
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnsupportedVersion { found: 2 }
    );
    assert_eq!(
        Model::parse(b"GGUF\x03\0\0\0").unwrap_err(),
        Error::BadMagic
    );
}

#[test]
fn bad_header_crc() {
    let b = good_bytes();
    for at in [32, 40, 32 + header_len(&b) - 1] {
        let mut c = b.clone();
        c[at] ^= 0x10;
        assert_eq!(
            Model::parse(&c).unwrap_err(),
            Error::ChecksumMismatch {
                section: Section::Header
            },
            "byte {at}"
        );
    }
    let mut c = b.clone();
    c[20] ^= 1; // the stored CRC itself
    assert_eq!(
        Model::parse(&c).unwrap_err(),
        Error::ChecksumMismatch {
            section: Section::Header
        }
    );
}

#[test]
fn bad_tensor_crc() {
    let b = good_bytes();
    let m = Model::parse(&b).unwrap();
    for idx in [0u32, 5, 12] {
        let e = m.file.entries().nth(idx as usize).unwrap();
        let mut c = b.clone();
        c[(e.offset + e.len - 1) as usize] ^= 0x02;
        let m2 = Model::parse(&c).expect("data corruption is invisible to parse");
        assert_eq!(
            m2.verify_checksums().unwrap_err(),
            Error::ChecksumMismatch {
                section: Section::TensorData(idx)
            }
        );
    }
    let mut c = b.clone();
    c[m.file.header.tokenizer.offset as usize] ^= 1;
    assert_eq!(
        Model::parse(&c).unwrap().verify_checksums().unwrap_err(),
        Error::ChecksumMismatch {
            section: Section::Tokenizer
        }
    );
}

#[test]
fn tensor_past_end_and_trailing_data() {
    let b = good_bytes();
    let last = b.len() - 1;
    // Header and table say the last tensor reaches the end; the file is one byte short.
    let e = TernFile::parse(&b[..last], last as u64).unwrap_err();
    assert_eq!(e, Error::TensorOutOfBounds { index: 12 });
    // The prefix may be just the header: bounds use file_len.
    let hend = 32 + header_len(&b);
    assert!(TernFile::parse(&b[..hend], b.len() as u64).is_ok());
    let data_offset = u64::from_le_bytes(b[24..32].try_into().unwrap());
    let short = data_offset + 64 + 1; // tokenizer blob fits, token_embd does not
    assert_eq!(
        TernFile::parse(&b[..hend], short).unwrap_err(),
        Error::TensorOutOfBounds { index: 0 }
    );
    let mut c = b.clone();
    c.push(0);
    assert!(matches!(
        Model::parse(&c).unwrap_err(),
        Error::TrailingData { .. }
    ));
}

/// Block layouts (Q8_0, Q4_0) are for the embedding / LM head only, and only with whole
/// 32-value blocks per row: the small model's 8-wide embedding in either is `WrongLayout`, as
/// is a norm in either.
#[test]
fn block_layouts_only_for_whole_block_heads() {
    // F16_R8 and Q4_0_R8 likewise need whole groups of 8 rows and 32-column pieces / blocks
    // (4 × 8 is neither)
    for layout in [Layout::Q8_0, Layout::Q4_0, Layout::F16R8, Layout::Q4_0R8] {
        for (i, name) in [(0usize, "token_embd"), (1, "output_norm")] {
            let mut m = small_model();
            let t = &mut m.tensors[i];
            assert!(t.name.starts_with(name), "{}", t.name);
            t.layout = layout;
            t.data = vec![0; t.rows as usize * layout.row_bytes(t.cols as usize).unwrap()];
            let mut b = Vec::new();
            m.write(&mut b, |_| {}).unwrap();
            assert_eq!(
                Model::parse(&b).unwrap_err(),
                Error::WrongLayout { index: i as u32 },
                "{layout:?} {name}"
            );
        }
    }
}

/// Re-encode tensor `i` of `m` in `layout` (data of the right length for its shape).
fn relayout(m: &mut OwnedModel, i: usize, layout: Layout) {
    let t = &mut m.tensors[i];
    t.layout = layout;
    let len = t.rows as usize * layout.row_bytes(t.cols as usize).unwrap();
    t.data = (0..len).map(|k| (k * 5 + i) as u8).collect();
}

fn parse_owned(m: &OwnedModel) -> Result<(), Error> {
    let mut v = Vec::new();
    m.write(&mut v, |_| {}).unwrap();
    Model::parse(&v)?.verify_checksums()
}

/// Ternary roles take `T2_128` or `T1_160`, per tensor (a model may mix them, any bytes are
/// valid `T1_160` data); any other role in `T1_160` is `WrongLayout`.
#[test]
fn ternary_layouts_per_role() {
    let base = small_model();
    let ternary: Vec<usize> = (0..base.tensors.len())
        .filter(|&i| matches!(base.tensors[i].role, tern_core::format::TensorRole::Layer(l) if l.is_ternary()))
        .collect();
    assert_eq!(ternary.len(), 7);
    // every ternary tensor in T1_160, and every other one mixed
    let mut all = small_model();
    for &i in &ternary {
        relayout(&mut all, i, Layout::T1_160);
    }
    parse_owned(&all).unwrap();
    let mut mixed = small_model();
    for &i in ternary.iter().step_by(2) {
        relayout(&mut mixed, i, Layout::T1_160);
    }
    parse_owned(&mixed).unwrap();
    // the embedding (0), output norm (1) and a layer norm (2) may not be T1_160
    for i in [0usize, 1, 2] {
        let mut m = small_model();
        relayout(&mut m, i, Layout::T1_160);
        assert_eq!(
            parse_owned(&m).unwrap_err(),
            Error::WrongLayout { index: i as u32 },
            "tensor {i}"
        );
    }
    // a T1_160 tensor's length is rows * ceil(cols / 160) * 32, else BadTensorLength
    let mut v = Vec::new();
    all.write(&mut v, |_| {}).unwrap();
    let m = Model::parse(&v).unwrap();
    let e = m.file.entries().nth(ternary[0]).unwrap();
    assert_eq!(e.layout, 6);
    assert_eq!(e.len, e.rows as u64 * 32);
}
