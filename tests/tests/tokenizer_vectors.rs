//! llama.cpp's tokenizer test vectors (`tokenizer/ggml-vocab-llama-{bpe,spm}.gguf{,.inp,.out}`)
//! through the whole path: GGUF metadata → blob (tern-pack) → `Tokenizer` (tern-core).
//! Also the HF `tokenizer.json` route, decoding, streaming and the micro model's prompt.
//!
//! Needs `TERN_FIXTURES` (e.g. `../shared/fixtures`); without it every test passes with a
//! skip message.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use tern_core::format::TokenizerKind;
use tern_core::tokenizer::{StreamDecoder, TokenType, Tokenizer, scratch_elems};
use tern_pack::tokenizer::{TokenizerBuild, blob_from_gguf, blob_from_tokenizer_json};

/// The fixtures (`TERN_FIXTURES`), or `None` after a skip message; see [`tern_tests::fixtures`].
fn fixtures() -> Option<PathBuf> {
    tern_tests::fixtures("tokenizer_vectors")
}

/// The test strings and expected ids, split as llama.cpp `tests/test-tokenizer-0.cpp` does.
fn vectors(gguf: &Path) -> Result<Vec<(String, Vec<u32>)>> {
    let inp_path = PathBuf::from(format!("{}.inp", gguf.display()));
    let out_path = PathBuf::from(format!("{}.out", gguf.display()));
    let inp = std::fs::read_to_string(&inp_path).with_context(|| inp_path.display().to_string())?;
    let out = std::fs::read_to_string(&out_path).with_context(|| out_path.display().to_string())?;
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        ids.len(),
        "{}: {} inputs, {} outputs",
        gguf.display(),
        texts.len(),
        ids.len()
    );
    Ok(texts.into_iter().map(str::to_owned).zip(ids).collect())
}

fn encode(t: &Tokenizer<'_>, text: &str, add_bos: bool) -> Vec<u32> {
    let mut out = vec![0u32; text.len() + 2];
    let mut scratch = vec![0u32; scratch_elems(text.len())];
    let n = t
        .encode(text, add_bos, false, &mut out, &mut scratch)
        .unwrap();
    out.truncate(n);
    out
}

fn decode(t: &Tokenizer<'_>, ids: &[u32]) -> String {
    let mut s = String::new();
    let mut d = StreamDecoder::new();
    for &id in ids {
        d.push(t.piece(id, false).unwrap(), &mut |p| s.push_str(p));
    }
    d.finish(&mut |p| s.push_str(p));
    s
}

/// Runs all vectors; returns the number of failures (printed).
fn check_vectors(name: &str, t: &Tokenizer<'_>, cases: &[(String, Vec<u32>)]) -> usize {
    let mut fails = 0;
    for (i, (text, want)) in cases.iter().enumerate() {
        let got = encode(t, text, false);
        if &got != want {
            fails += 1;
            eprintln!("{name} #{i} {text:?}\n  want {want:?}\n  got  {got:?}");
        }
    }
    fails
}

fn build_gguf(fx: &Path, file: &str) -> (PathBuf, TokenizerBuild) {
    let path = fx.join("tokenizer").join(file);
    let t0 = Instant::now();
    let b = blob_from_gguf(&path).unwrap();
    eprintln!(
        "{file}: blob {} bytes built in {:.2?}",
        b.blob.len(),
        t0.elapsed()
    );
    (path, b)
}

#[test]
fn llama_bpe_vectors() {
    let Some(fx) = fixtures() else { return };
    let (path, b) = build_gguf(&fx, "ggml-vocab-llama-bpe.gguf");
    assert_eq!(
        (b.kind, b.n_tokens, b.bos, b.eos, b.add_bos),
        (TokenizerKind::Bpe, 128256, Some(128000), Some(128001), true)
    );
    assert!(
        b.stop_ids.contains(&128009),
        "stop ids {:?} lack <|eot_id|>",
        b.stop_ids
    );
    let t = Tokenizer::from_blob(b.kind, &b.blob).unwrap();
    let cases = vectors(&path).unwrap();
    assert_eq!(cases.len(), 46);
    assert_eq!(check_vectors("llama-bpe", &t, &cases), 0);
    // Byte-level BPE is lossless.
    for (text, ids) in &cases {
        assert_eq!(&decode(&t, ids), text);
    }
    // Special tokens: text with parse_special, BOS.
    let mut out = [0u32; 16];
    let mut scratch = vec![0u32; scratch_elems(64)];
    let n = t
        .encode(
            "<|begin_of_text|>Hi<|eot_id|>",
            false,
            true,
            &mut out,
            &mut scratch,
        )
        .unwrap();
    assert_eq!(&out[..n], [128000, 13347, 128009]);
    assert_eq!(encode(&t, "Hello world", true), [128000, 9906, 1917]);
    assert_eq!(t.token_type(128009), Some(TokenType::Control));
    assert_eq!(t.piece(128009, false), Some(&b""[..]));
    assert_eq!(t.piece(128009, true), Some(&b"<|eot_id|>"[..]));
}

#[test]
fn llama_spm_vectors() {
    let Some(fx) = fixtures() else { return };
    let (path, b) = build_gguf(&fx, "ggml-vocab-llama-spm.gguf");
    assert_eq!(
        (b.kind, b.n_tokens, b.bos, b.eos, b.add_bos),
        (TokenizerKind::Spm, 32000, Some(1), Some(2), true)
    );
    let t = Tokenizer::from_blob(b.kind, &b.blob).unwrap();
    let cases = vectors(&path).unwrap();
    assert_eq!(cases.len(), 46);
    assert_eq!(check_vectors("llama-spm", &t, &cases), 0);
    // Decoding gives the text back with the space prefix SPM adds.
    for (text, ids) in &cases {
        if !text.is_empty() {
            assert_eq!(decode(&t, ids), format!(" {text}"));
        }
    }
    assert_eq!(encode(&t, "Hello world", true), [1, 15043, 3186]);
}

#[test]
fn hf_tokenizer_json_matches_gguf() {
    let Some(fx) = fixtures() else { return };
    let t0 = Instant::now();
    let hf = blob_from_tokenizer_json(&fx.join("models/tiny/hf-packed")).unwrap();
    eprintln!("tiny tokenizer.json: blob built in {:.2?}", t0.elapsed());
    assert_eq!(
        (hf.kind, hf.n_tokens, hf.bos, hf.eos, hf.add_bos),
        (TokenizerKind::Bpe, 128256, Some(128000), Some(128001), true)
    );
    assert!(
        hf.stop_ids.contains(&128001) && hf.stop_ids.contains(&128009),
        "{:?}",
        hf.stop_ids
    );
    let t = Tokenizer::from_blob(hf.kind, &hf.blob).unwrap();
    let cases = vectors(&fx.join("tokenizer/ggml-vocab-llama-bpe.gguf")).unwrap();
    assert_eq!(check_vectors("tiny tokenizer.json", &t, &cases), 0);
    for (text, ids) in &cases {
        assert_eq!(&decode(&t, ids), text);
    }
    let info = hf.info(4096).unwrap();
    assert_eq!(
        (info.offset, info.len, info.n_tokens),
        (4096, hf.blob.len() as u64, 128256)
    );
}

#[test]
fn micro_prompt_matches_transformers() {
    let Some(fx) = fixtures() else { return };
    let micro = fx.join("models/micro");
    let b = blob_from_tokenizer_json(&micro.join("hf-packed")).unwrap();
    assert_eq!(
        (b.n_tokens, b.bos, b.eos, b.add_bos),
        (4096, Some(4094), Some(4095), true)
    );
    let t = Tokenizer::from_blob(b.kind, &b.blob).unwrap();
    let refp = micro.join("reference/transformers/p1_short_en/reference.json");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&refp).unwrap()).unwrap();
    let text = r["text"].as_str().unwrap();
    let want: Vec<u32> = r["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(encode(&t, text, b.add_bos), want);
}

#[test]
fn streaming_decoder_waits_for_whole_characters() {
    let Some(fx) = fixtures() else { return };
    let (_, b) = build_gguf(&fx, "ggml-vocab-llama-bpe.gguf");
    let t = Tokenizer::from_blob(b.kind, &b.blob).unwrap();
    let text = "中文🦙 ok";
    let ids = encode(&t, text, false);
    // Split every token into single-byte tokens, then stream them.
    let byte_ids: Vec<u32> = ids
        .iter()
        .flat_map(|&id| t.token_bytes(id).unwrap().to_vec())
        .map(|byte| t.lookup(&[byte]).unwrap())
        .collect();
    assert_eq!(byte_ids.len(), text.len());
    let mut d = StreamDecoder::new();
    let mut got = String::new();
    let mut emitted_at = Vec::new();
    for (i, &id) in byte_ids.iter().enumerate() {
        let before = got.len();
        d.push(t.piece(id, false).unwrap(), &mut |p| got.push_str(p));
        if got.len() > before {
            emitted_at.push(i + 1);
        }
        assert!(d.pending_bytes() < 4);
    }
    d.finish(&mut |p| got.push_str(p));
    assert_eq!(got, text);
    // Text appears only at character ends: after bytes 3 (中), 6 (文), 10 (🦙), then each ASCII byte.
    assert_eq!(emitted_at, [3, 6, 10, 11, 12, 13]);
}

#[test]
fn encode_is_fast() {
    let Some(fx) = fixtures() else { return };
    let (path, b) = build_gguf(&fx, "ggml-vocab-llama-bpe.gguf");
    let t = Tokenizer::from_blob(b.kind, &b.blob).unwrap();
    let text: String = vectors(&path)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect::<Vec<_>>()
        .join(" ");
    let text = &text[..text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= 400)
        .unwrap_or(text.len())];
    let t0 = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        std::hint::black_box(encode(&t, text, true));
    }
    eprintln!(
        "encode {} bytes: {:.2?} per call",
        text.len(),
        t0.elapsed() / reps
    );
}
