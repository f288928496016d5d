//! Malformed GGUF / safetensors inputs: each gives a specific error naming the file and the
//! tensor or field, never a panic. Made by mutating copies of the fixtures' micro files in a
//! temporary directory. Needs `TERN_FIXTURES` (skipped with a message when unset).

use std::path::{Path, PathBuf};

use tern_pack::import::import_path;
use tern_pack::pack::{PackOptions, pack_path};

/// The fixtures (`TERN_FIXTURES`), or `None` after a skip message; see [`tern_tests::fixtures`].
fn micro() -> Option<PathBuf> {
    tern_tests::fixtures("malformed_gguf").map(|p| p.join("models/micro"))
}

/// Import `bytes` written as `name` in a temp dir; returns the full error chain.
fn import_err(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let e = import_path(&p, &PackOptions::default(), &|_| {}).expect_err("import must fail");
    let msg = format!("{e:#}");
    assert!(msg.contains(name), "message does not name the file: {msg}");
    msg
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap()
}

/// Byte position just after the (length-prefixed) name of tensor `name` in the tensor table.
fn after_name(b: &[u8], name: &str) -> usize {
    let mut pat = (name.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(name.as_bytes());
    let p = b
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("tensor name in file");
    p + pat.len()
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

const Q: &str = "blk.0.attn_q.weight";

#[test]
fn truncated_gguf() {
    let Some(dir) = micro() else { return };
    let b = read(&dir, "gguf/micro-tq2_0.gguf");
    let m = import_err("cut-header.gguf", &b[..1000]);
    assert!(m.contains("truncated GGUF"), "{m}");
    // Cut inside the data: some tensor now lies past the end; the message names it.
    let m = import_err("cut-data.gguf", &b[..b.len() - 100]);
    assert!(
        m.contains("past the end of the file") && m.contains("tensor "),
        "{m}"
    );
    for cut in [0, 3, 4, 8, 23, 24, 500, 200_000] {
        import_err("cut.gguf", &b[..cut]);
    }
}

#[test]
fn wrong_magic() {
    let Some(dir) = micro() else { return };
    let mut b = read(&dir, "gguf/micro-tq2_0.gguf");
    b[..4].copy_from_slice(b"GGUX");
    let m = import_err("magic.gguf", &b);
    assert!(m.contains("not a GGUF file"), "{m}");
    let m = import_err("empty.gguf", b"");
    assert!(m.contains("not a GGUF file"), "{m}");
}

#[test]
fn unknown_tensor_type() {
    let Some(dir) = micro() else { return };
    let mut b = read(&dir, "gguf/micro-tq2_0.gguf");
    let at = after_name(&b, Q) + 4 + 2 * 8; // n_dims, 2 dims, then the type
    put_u32(&mut b, at, 99);
    let m = import_err("type.gguf", &b);
    assert!(
        m.contains(Q) && m.contains("unsupported ggml type 99"),
        "{m}"
    );
    // A known type that cannot hold a ternary weight.
    put_u32(&mut b, at, 8); // Q8_0
    let m = import_err("q8.gguf", &b);
    assert!(m.contains(Q) && m.contains("Q8_0"), "{m}");
}

#[test]
fn missing_tensor_and_metadata() {
    let Some(dir) = micro() else { return };
    let mut b = read(&dir, "gguf/micro-tq2_0.gguf");
    let at = after_name(&b, Q) - 7; // "blk.0.attn_q.weight" -> "blk.0.attn_X.weight"
    b[at - 1] = b'X';
    let m = import_err("missing.gguf", &b);
    assert!(m.contains(&format!("missing tensor {Q}")), "{m}");
    let mut b = read(&dir, "gguf/micro-tq2_0.gguf");
    let key = b"bitnet.block_count";
    let p = b.windows(key.len()).position(|w| w == key).unwrap();
    b[p] = b'X';
    let m = import_err("meta.gguf", &b);
    assert!(m.contains("metadata bitnet.block_count is missing"), "{m}");
}

#[test]
fn dims_overflow_or_disagree_with_config() {
    let Some(dir) = micro() else { return };
    let orig = read(&dir, "gguf/micro-tq2_0.gguf");
    let at = after_name(&orig, Q) + 4;
    let mut b = orig.clone();
    put_u64(&mut b, at, 1 << 40);
    put_u64(&mut b, at + 8, 1 << 40);
    let m = import_err("overflow.gguf", &b);
    assert!(m.contains(Q) && m.contains("overflow"), "{m}");
    let mut b = orig.clone();
    put_u64(&mut b, at + 8, 128); // (256, 256) -> (128, 256)
    let m = import_err("dims.gguf", &b);
    assert!(
        m.contains(Q) && m.contains("(128, 256)") && m.contains("(256, 256)"),
        "{m}"
    );
}

#[test]
fn tensor_past_end_of_file() {
    let Some(dir) = micro() else { return };
    let mut b = read(&dir, "gguf/micro-i2_s.gguf");
    let at = after_name(&b, Q) + 4 + 2 * 8 + 4; // the offset field
    put_u64(&mut b, at, 1 << 30);
    let m = import_err("pastend.gguf", &b);
    assert!(
        m.contains(Q) && m.contains("past the end of the file"),
        "{m}"
    );
}

#[test]
fn tq_block_scales_must_agree() {
    let Some(dir) = micro() else { return };
    let mut b = read(&dir, "gguf/micro-tq2_0.gguf");
    let g = tern_pack::gguf::GgufFile::parse(&b).unwrap();
    let t = g.tensor(Q).unwrap();
    let d_at = (g.data_offset + t.offset) as usize + 66 + 64; // second block's d
    let d = half::f16::from_le_bytes([b[d_at], b[d_at + 1]]).to_f32();
    b[d_at..d_at + 2].copy_from_slice(&half::f16::from_f32(d * 2.0).to_le_bytes());
    let m = import_err("scales.gguf", &b);
    assert!(m.contains(Q) && m.contains("block scales differ"), "{m}");
}

#[test]
fn safetensors_errors_name_file_and_tensor() {
    let Some(dir) = micro() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("hf");
    std::fs::create_dir(&d).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(dir.join("hf-packed").join(f), d.join(f)).unwrap();
    }
    let st = read(&dir, "hf-packed/model.safetensors");
    let try_import = |bytes: &[u8]| {
        std::fs::write(d.join("model.safetensors"), bytes).unwrap();
        format!(
            "{:#}",
            import_path(&d, &PackOptions::default(), &|_| {}).expect_err("must fail")
        )
    };
    // Missing tensor: rename it in the JSON header (same length).
    let name = b"model.layers.2.mlp.up_proj.weight\"";
    let mut b = st.clone();
    let p = b.windows(name.len()).position(|w| w == name).unwrap();
    b[p + 15] = b'X';
    let m = try_import(&b);
    assert!(
        m.contains("missing tensor model.layers.2.mlp.up_proj.weight") && m.contains("hf"),
        "{m}"
    );
    // Truncated file.
    let m = try_import(&st[..st.len() / 2]);
    assert!(m.contains("model.safetensors"), "{m}");
    // config.json disagreeing with the tensors.
    std::fs::write(d.join("model.safetensors"), &st).unwrap();
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"intermediate_size\": 768", "\"intermediate_size\": 512"),
    )
    .unwrap();
    let m = format!(
        "{:#}",
        import_path(&d, &PackOptions::default(), &|_| {}).unwrap_err()
    );
    assert!(
        m.contains("model.layers.0.mlp.gate_proj.weight") && m.contains("model.safetensors"),
        "{m}"
    );
    // Output is never half-written: a failed pack leaves no file.
    let out = tmp.path().join("x.tern");
    assert!(pack_path(&d, &out, &PackOptions::default()).is_err());
    assert!(!out.exists());
}
