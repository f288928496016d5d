//! Golden bytes: pins the `.tern` v1 preamble + header encoding (`core/FORMAT.md`) of a small
//! hand-built model. The expected bytes were derived from the spec independently of the Rust
//! writer (postcard wire rules: LEB128 varints, raw u8/bool, f32 LE, str = len + bytes,
//! enum = variant index; CRC-32/ISO-HDLC) and checked field by field below. If this test fails,
//! the on-disk format changed: bump `VERSION` and update FORMAT.md, or fix the regression.

use tern_core::Error;
use tern_core::config::{FfnAct, FfnActSource, ModelConfig};
use tern_core::format::writer::{OwnedModel, OwnedProvenance, OwnedTensor};
use tern_core::format::{
    DefaultPlan, LayerTensor, TensorRole, TernFile, TokenizerInfo, TokenizerKind,
};
use tern_core::kernels::layout::{Layout, TernaryLayout};
use tern_core::plan::KvDtype;

fn golden_model() -> OwnedModel {
    let config = ModelConfig {
        ffn_act: FfnAct::Relu2,
        ffn_act_source: FfnActSource::Metadata,
        sub_norms: false,
        tied_embedding: true,
        dim: 8,
        hidden_dim: 16,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 4,
        vocab_size: 4,
        max_ctx: 300,
        rope_theta: 10000.0,
        norm_eps: 1e-5,
    };
    let mut stop_ids = heapless::Vec::new();
    stop_ids.extend_from_slice(&[2, 3]).unwrap();
    let tokenizer = TokenizerInfo {
        kind: TokenizerKind::Bpe,
        n_tokens: 4,
        bos: Some(1),
        eos: None,
        stop_ids,
        add_bos: true,
        offset: 0,
        len: 0,
        crc32: 0,
    };
    let mut q = vec![0x55u8; 256];
    q[0] = 0x86;
    let t = |name: &str, role, layout, rows, cols, weight_scale, data| OwnedTensor {
        name: name.into(),
        role,
        layer: 0,
        layout,
        rows,
        cols,
        weight_scale,
        data,
    };
    OwnedModel {
        config,
        tokenizer,
        tokenizer_blob: b"abc".to_vec(),
        plan: DefaultPlan {
            ctx_len: 256,
            kv: KvDtype::F32,
        },
        provenance: OwnedProvenance {
            source: "s".into(),
            source_format: "synthetic".into(),
            source_sha256: core::array::from_fn(|i| i as u8),
            packer: "p".into(),
            options: String::new(),
        },
        tensors: vec![
            t(
                "token_embd.weight",
                TensorRole::TokenEmbd,
                Layout::F16,
                4,
                8,
                1.0,
                (0..64).map(|i| (i * 7) as u8).collect(),
            ),
            t(
                "output_norm.weight",
                TensorRole::OutputNorm,
                Layout::F32,
                1,
                8,
                1.0,
                (0..8)
                    .flat_map(|i| (1.0 + i as f32 / 8.0).to_le_bytes())
                    .collect(),
            ),
            t(
                "blk.0.attn_q.weight",
                TensorRole::Layer(LayerTensor::Q),
                Layout::T2_128,
                8,
                8,
                4.0,
                q,
            ),
        ],
    }
}

/// Preamble (32 bytes) + header (199 bytes), annotated.
const GOLDEN: &[&str] = &[
    // preamble: magic | version 1 | flags 0
    "895445524e0d0a1a 01000000 00000000",
    // header_len 199 | header_crc32 0x5fcd5356 | data_offset 256 (u64)
    "c7000000 5653cd5f 0001000000000000",
    // config: Relu2 | Metadata | sub_norms false | tied true | dim 8 | hidden 16 | layers 1 |
    // heads 2 | kv 1 | head_dim 4 | vocab 4 | max_ctx 300 (ac 02) | theta 10000f32 | eps 1e-5f32
    "00 00 00 01 08 10 01 02 01 04 04 ac02 00401c46 acc52737",
    // tokenizer: Bpe | n_tokens 4 | bos Some(1) | eos None | stop_ids [2, 3] | add_bos |
    // offset 256 (80 02) | len 3 | crc32("abc") = 0x352441c2 (varint c2 83 91 a9 03)
    "00 04 0101 00 020203 01 8002 03 c28391a903",
    // plan: ctx_len 256 | F32
    "8002 00",
    // provenance: "s" | "synthetic" | sha256 = 00..1f | "p" | ""
    "0173 0973796e746865746963 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 0170 00",
    // n_tensors 3
    "03",
    // entry 0: "token_embd.weight" | TokenEmbd | layer 0 | F16 | rows 4 | cols 8 | offset 320 |
    // len 64 | weight_scale 1.0 | crc32 0xd324a7d4 (varint d4 cf 92 99 0d)
    "11746f6b656e5f656d62642e776569676874 00 00 01 04 08 c002 40 0000803f d4cf92990d",
    // entry 1: "output_norm.weight" | OutputNorm | 0 | F32 | 1 | 8 | offset 384 | len 32 | 1.0 |
    // crc32 0x78eed847
    "126f75747075745f6e6f726d2e776569676874 01 00 00 01 08 8003 20 0000803f c7b0bbc707",
    // entry 2: "blk.0.attn_q.weight" | Layer(Q) = 03 01 | 0 | T2_128 | 8 | 8 | offset 448 | len 256 |
    // weight_scale 4.0 | crc32 0xcbb86f5e
    "13626c6b2e302e6174746e5f712e776569676874 0301 00 03 08 08 c003 8002 00008040 dedee1dd0c",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts
        .concat()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn tern_v1_golden_bytes() {
    let m = golden_model();
    let mut out = Vec::new();
    let n = m.write(&mut out, |_| {}).unwrap();
    let golden = unhex(GOLDEN);
    assert_eq!(golden.len(), 32 + 199);
    assert_eq!(
        &out[..golden.len()],
        &golden[..],
        "preamble + header bytes changed"
    );
    // Data sections: zero padding to 256, blob, then tensors at 320, 384, 448; file ends at 704.
    assert_eq!(n, 704);
    assert_eq!(out.len(), 704);
    assert!(out[golden.len()..256].iter().all(|&b| b == 0));
    assert_eq!(&out[256..259], b"abc");
    assert_eq!(&out[320..384], &m.tensors[0].data[..]);
    assert_eq!(&out[384..416], &m.tensors[1].data[..]);
    assert_eq!(&out[448..704], &m.tensors[2].data[..]);
    // The header decodes; the graph is incomplete on purpose (only attn_q of layer 0).
    match TernFile::parse(&out, out.len() as u64) {
        Err(Error::MissingTensor {
            role: TensorRole::Layer(LayerTensor::AttnNorm),
            layer: 0,
        }) => {}
        other => panic!("unexpected parse result {other:?}"),
    }
}

/// The same model with `blk.0.attn_q.weight` in `T1_160` (layout id 6): row 0 holds weights
/// `[+1, -1, 0, 0, 0, 0, 0, 0]`, rows 1..8 zeros. Its data bytes follow from the written spec
/// (`core/FORMAT.md`, "T1_160"): byte `j` of a row's one block is `(v · 256 + 242) / 243` with
/// `v = Σ_k c[32k + j] · 3^(4 - k)`, padding code 1: codes (2,1,1,1,1) → v 202 → 0xD5,
/// (0,1,1,1,1) → v 40 → 0x2B, (1,1,1,1,1) → v 121 → 0x80. Only the layout byte, the tensor CRC
/// (0x09cd6a34, a 4-byte varint) and so the header length (198) and CRC change.
#[test]
fn tern_v1_golden_bytes_t1_160() {
    let mut m = golden_model();
    let row0 = [unhex(&["d52b"]), vec![0x80; 30]].concat();
    let data = [row0, vec![0x80; 7 * 32]].concat();
    // the spec's bytes are what the kernels' encoder writes, and decode back
    let mut w = [0i8; 8];
    w[0] = 1;
    w[1] = -1;
    let mut enc = [0u8; 32];
    tern_core::kernels::layout::t1_encode_row(&w, &mut enc);
    assert_eq!(&enc[..], &data[..32]);
    let mut back = [0i8; 8];
    TernaryLayout::T1_160.decode_row(&data[..32], &mut back);
    assert_eq!(back, w);
    m.tensors[2].layout = Layout::T1_160;
    m.tensors[2].data = data.clone();
    let mut golden: Vec<&str> = GOLDEN.to_vec();
    // header_len 198 | header_crc32 0x1aeb5887 | data_offset 256
    golden[1] = "c6000000 8758eb1a 0001000000000000";
    // entry 2: ... | T1_160 = 06 | 8 | 8 | offset 448 | len 256 | 4.0 | crc32 0x09cd6a34
    golden[9] =
        "13626c6b2e302e6174746e5f712e776569676874 0301 00 06 08 08 c003 8002 00008040 b4d4b54e";
    let golden = unhex(&golden);
    assert_eq!(golden.len(), 32 + 198);
    let mut out = Vec::new();
    let n = m.write(&mut out, |_| {}).unwrap();
    assert_eq!(
        &out[..golden.len()],
        &golden[..],
        "T1_160 header bytes changed"
    );
    assert_eq!(n, 704);
    assert_eq!(&out[448..704], &data[..]);
    match TernFile::parse(&out, out.len() as u64) {
        Err(Error::MissingTensor {
            role: TensorRole::Layer(LayerTensor::AttnNorm),
            layer: 0,
        }) => {}
        other => panic!("unexpected parse result {other:?}"),
    }
}

#[test]
fn crc32_is_iso_hdlc() {
    assert_eq!(tern_core::format::CRC32.checksum(b"123456789"), 0xCBF4_3926);
}

/// The `Q4_0` example of `core/FORMAT.md`, byte for byte (derived by hand from ggml's
/// `quantize_row_q4_0_ref`: the value of largest magnitude is -8, so `d = -8 / -8 = 1.0`;
/// codes `min(15, trunc(x / d + 8.5))`; byte `j` = `q[j] | q[j + 16] << 4`): the packer's
/// quantizer writes it, the runtime's row decoder reads it back as `d · (q − 8)`.
#[test]
fn q4_0_layout_golden_bytes() {
    let mut x: Vec<f32> = (0..16).map(|i| i as f32 - 8.0).collect();
    x.extend([
        0.5, -0.5, 0.49, -0.51, 7.6, -7.9, 3.0, -3.0, 1.25, -1.25, 0.0, 6.5, -6.5, 2.5, -2.5, 7.49,
    ]);
    let golden = unhex(&["003C 9081 8273 F405 B657 9879 8AFB 2CBD 6EFF"]);
    let b = tern_pack::import::float::quantize_q4_0(&x).unwrap();
    assert_eq!(b, golden);
    let mut y = [0f32; 32];
    assert!(tern_core::kernels::float::scalar::decode_row(
        Layout::Q4_0,
        &golden,
        &mut y
    ));
    let want_codes = [9, 8, 8, 7, 15, 0, 11, 5, 9, 7, 8, 15, 2, 11, 6, 15];
    for i in 0..16 {
        assert_eq!(y[i], i as f32 - 8.0, "value {i}");
        assert_eq!(y[16 + i], want_codes[i] as f32 - 8.0, "value {}", 16 + i);
    }
    assert_eq!(Layout::from_id(5), Some(Layout::Q4_0));
    assert_eq!(Layout::Q4_0.info().name, "Q4_0");
    assert_eq!(Layout::Q4_0.row_bytes(2560), Some(1440));
}
