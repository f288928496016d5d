//! Shared helpers for the integration tests.
//!
//! Fixture tests read `TERN_FIXTURES` (the path of `shared/fixtures`). Without it they print a
//! skip message and pass; `.ci/run` sets it, and then a missing fixture fails the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use tern_core::format::Model;
use tern_pack::pack::PackOptions;

/// The fixtures directory, or `None` (after printing why) when `TERN_FIXTURES` is unset.
///
/// # Panics
/// When `TERN_FIXTURES` is set but is not a directory (CI must not silently skip).
pub fn fixtures(test: &str) -> Option<PathBuf> {
    match std::env::var_os("TERN_FIXTURES") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(
                p.is_dir(),
                "TERN_FIXTURES={} is not a directory",
                p.display()
            );
            Some(p)
        }
        _ => {
            eprintln!(
                "skipping {test}: TERN_FIXTURES is not set (e.g. TERN_FIXTURES=../shared/fixtures)"
            );
            None
        }
    }
}

/// Read a little-endian f32 file.
pub fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        b.len() % 4 == 0,
        "{}: length not a multiple of 4",
        path.display()
    );
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

/// Read a JSON file.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", path.display()))
}

/// A JSON array of token ids (reference files).
///
/// # Panics
/// If `v` is not an array of non-negative integers.
pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().expect("a token id") as u32)
        .collect()
}

/// Import `src` (GGUF or safetensors dir) with default options and pack it into memory;
/// cached per process and leaked (tests only).
///
/// # Panics
/// If the import or the write fails.
pub fn packed_bytes(src: &Path) -> &'static [u8] {
    packed_bytes_with(src, &PackOptions::default())
}

/// [`packed_bytes`] with pack options `opts` (e.g. `--lm-head q4_0`, `--ternary t1_160`);
/// cached per (source,
/// options).
///
/// # Panics
/// If the import or the write fails.
pub fn packed_bytes_with(src: &Path, opts: &PackOptions) -> &'static [u8] {
    type Cache = Mutex<HashMap<(PathBuf, String), &'static [u8]>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (src.to_path_buf(), format!("{opts:?}"));
    if let Some(b) = cache.lock().unwrap().get(&key) {
        return b;
    }
    let m = tern_pack::import::import_path(src, opts, &|_| {})
        .unwrap_or_else(|e| panic!("importing {}: {e:#}", src.display()));
    let mut buf = Vec::new();
    m.write(&mut buf, |_| {}).unwrap();
    let leaked: &'static [u8] = Box::leak(buf.into_boxed_slice());
    cache.lock().unwrap().insert(key, leaked);
    leaked
}

/// Parse a packed model (and check every CRC).
///
/// # Panics
/// If the bytes do not parse.
pub fn parse(bytes: &'static [u8]) -> Model<'static> {
    let m = Model::parse(bytes).unwrap_or_else(|e| panic!("parsing packed model: {e}"));
    m.verify_checksums().unwrap();
    m
}

/// The forms of the `micro` model shipped in the fixtures, as (label, path).
pub fn micro_forms(fx: &Path) -> Vec<(&'static str, PathBuf)> {
    let m = fx.join("models/micro");
    vec![
        ("hf-packed", m.join("hf-packed")),
        ("hf-bf16-master", m.join("hf-bf16-master")),
        ("gguf-f16", m.join("gguf/micro-f16.gguf")),
        ("gguf-tq1_0", m.join("gguf/micro-tq1_0.gguf")),
        ("gguf-tq2_0", m.join("gguf/micro-tq2_0.gguf")),
        ("gguf-i2_s", m.join("gguf/micro-i2_s.gguf")),
    ]
}

/// The prompt names of the reference set.
pub const PROMPTS: [&str; 5] = [
    "p0_bos_only",
    "p1_short_en",
    "p2_code_py",
    "p3_mixed",
    "p4_long_en",
];

/// A packed model (`bytes`, e.g. the bundled demo model) rewritten with its ternary tensors in
/// `layout`: the same values and scales, so the same logits bit for bit.
///
/// # Panics
/// If `bytes` does not parse.
pub fn repacked(bytes: &[u8], layout: tern_kernels::layout::TernaryLayout) -> Vec<u8> {
    let m = Model::parse(bytes).unwrap_or_else(|e| panic!("parsing packed model: {e}"));
    let mut o = tern_core::format::writer::OwnedModel::from_model(&m).unwrap();
    tern_pack::import::repack_ternary(&mut o, layout);
    let mut out = Vec::new();
    o.write(&mut out, |_| {}).unwrap();
    out
}

/// A packed model (`bytes`, e.g. the bundled demo model) re-packed as `tern-pack pack X.tern
/// --lm-head head` does: every tensor copied, the LM head (tied embedding) requantized.
///
/// # Panics
/// If `bytes` does not import.
pub fn with_head(bytes: &[u8], head: tern_pack::pack::LmHead) -> Vec<u8> {
    let o = PackOptions {
        lm_head: head,
        ..Default::default()
    };
    let mut m =
        tern_pack::import::tern::import_tern_bytes(Path::new("model.tern"), bytes, &o, &|_| {})
            .unwrap_or_else(|e| panic!("re-packing a .tern: {e}"));
    tern_pack::import::apply_lm_head(&mut m, &o).unwrap();
    let mut out = Vec::new();
    m.write(&mut out, |_| {}).unwrap();
    out
}
