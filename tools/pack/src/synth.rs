//! Synthetic models: random ternary weights in the shapes of real models, for tests, benchmarks
//! and memory planning without downloading checkpoints.
//!
//! Deterministic for a seed (own splitmix64 PRNG, one independent stream per tensor and per
//! embedding chunk, so the result does not depend on the number of threads).
//!
//! Source: shapes from microsoft/bitnet-b1.58-2B-4T `config.json` and the fixtures' `tiny`
//! model (`shared/fixtures/README.md`); `.tern` conventions in `core/FORMAT.md`.

use std::path::Path;

use anyhow::{Result, bail};
use half::f16;
use tern_core::config::{FfnAct, FfnActSource, ModelConfig};
use tern_core::format::writer::{OwnedModel, OwnedTensor};
use tern_core::format::{DefaultPlan, TensorRole};
use tern_core::plan::KvDtype;
use tern_kernels::layout::{Layout, TernaryLayout, t2_row_bytes};

use crate::import::{
    Wanted, finish, float, packer_string, sha256_file, ternary, tokenizer_parts, wanted_tensors,
};

/// Model shapes [`synth_model`] can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthShape {
    /// microsoft/bitnet-b1.58-2B-4T: 30 layers, dim 2560, hidden 6912, 20 heads, 5 KV heads,
    /// head_dim 128, RoPE theta 500000, eps 1e-5, context 4096, tied F16 embedding, Relu2,
    /// sub-norms.
    B2b4t,
    /// The fixtures' `tiny` dims: 4 layers, dim 256, hidden 768, 8 heads, 2 KV heads, head_dim
    /// 32, context 256, otherwise as [`SynthShape::B2b4t`].
    Tiny,
    /// A mid-size shape for bare-metal emulation (~113 MB of ternary weights): 10 layers, dim
    /// 2048, hidden 5632, 16 heads, 4 KV heads, head_dim 128, context 512, otherwise as
    /// [`SynthShape::B2b4t`].
    Small,
}

impl SynthShape {
    /// CLI name (`2b4t`, `tiny`, `small`).
    pub fn name(self) -> &'static str {
        match self {
            SynthShape::B2b4t => "2b4t",
            SynthShape::Tiny => "tiny",
            SynthShape::Small => "small",
        }
    }

    /// The config for a vocabulary of `vocab_size` tokens.
    pub fn config(self, vocab_size: u32) -> ModelConfig {
        let (dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, max_ctx) = match self {
            SynthShape::B2b4t => (2560, 6912, 30, 20, 5, 128, 4096),
            SynthShape::Tiny => (256, 768, 4, 8, 2, 32, 256),
            SynthShape::Small => (2048, 5632, 10, 16, 4, 128, 512),
        };
        ModelConfig {
            ffn_act: FfnAct::Relu2,
            ffn_act_source: FfnActSource::Metadata,
            sub_norms: true,
            tied_embedding: true,
            dim,
            hidden_dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            max_ctx,
            rope_theta: 500000.0,
            norm_eps: 1e-5,
        }
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, good enough for test weights.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A stream for `(seed, stream)`.
    fn stream(seed: u64, stream: u64) -> SplitMix64 {
        let mut s = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        s.next();
        s
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A ternary code (0, 1, 2 = -1, 0, +1) from 8 random bits: each about 1/3.
fn code(b: u8) -> u8 {
    ((b as u16 * 3) >> 8) as u8
}

/// Random `T2_128` data for `(rows, cols)`.
fn random_t2(rng: &mut SplitMix64, rows: usize, cols: usize) -> Vec<u8> {
    if cols.is_multiple_of(128) {
        // Every byte is four codes; no padding to keep at zero.
        let mut out = vec![0u8; rows * t2_row_bytes(cols)];
        for pair in out.chunks_mut(2) {
            let r = rng.next().to_le_bytes();
            for (k, o) in pair.iter_mut().enumerate() {
                let q = &r[4 * k..4 * k + 4];
                *o = code(q[0]) << 6 | code(q[1]) << 4 | code(q[2]) << 2 | code(q[3]);
            }
        }
        return out;
    }
    let codes: Vec<i8> = (0..rows * cols)
        .map(|_| code(rng.next() as u8) as i8 - 1)
        .collect();
    ternary::encode_t2(&codes, rows, cols)
}

/// Rows of the embedding generated from one PRNG stream.
const EMB_CHUNK_ROWS: usize = 512;

/// Random F16 embedding `(rows, cols)`, values ~N(0, 1) (Irwin–Hall of 4 uniforms).
fn random_embedding(seed: u64, rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows * cols * 2];
    let chunk_bytes = EMB_CHUNK_ROWS * cols * 2;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<(usize, &mut [u8])> = out.chunks_mut(chunk_bytes.max(1)).enumerate().collect();
    let per = chunks.len().div_ceil(threads).max(1);
    let mut groups: Vec<Vec<(usize, &mut [u8])>> = Vec::new();
    for c in chunks {
        if groups.last().is_none_or(|g| g.len() >= per) {
            groups.push(Vec::new());
        }
        if let Some(g) = groups.last_mut() {
            g.push(c);
        }
    }
    std::thread::scope(|s| {
        for g in groups {
            s.spawn(move || {
                for (ci, buf) in g {
                    let mut rng = SplitMix64::stream(seed, 1 << 40 | ci as u64);
                    for v in buf.chunks_exact_mut(2) {
                        let r = rng.next();
                        let s: u32 = (0..4).map(|k| (r >> (16 * k)) as u16 as u32).sum();
                        let x = (s as f32 / 65536.0 - 2.0) * 3f32.sqrt();
                        v.copy_from_slice(&f16::from_f32(x).to_bits().to_le_bytes());
                    }
                }
            });
        }
    });
    out
}

/// One synthetic tensor; ternary ones are drawn as `T2_128` and re-encoded in `ternary`, so
/// both layouts hold the same values for a seed.
fn make_tensor(seed: u64, idx: usize, w: &Wanted, ternary: TernaryLayout) -> OwnedTensor {
    let (rows, cols) = (w.shape.0 as usize, w.shape.1 as usize);
    let mut rng = SplitMix64::stream(seed, idx as u64);
    let (layout, weight_scale, data) = if w.is_ternary() {
        // Divisor ≈ sqrt(cols) keeps |y| = |Σ T·x| / ws of order |x|.
        let ws = (cols as f32).sqrt() * (0.75 + 0.5 * rng.unit());
        let t2 = random_t2(&mut rng, rows, cols);
        if ternary == TernaryLayout::T2_128 {
            (Layout::T2_128, ws, t2)
        } else {
            let mut t = OwnedTensor {
                name: String::new(),
                role: w.role,
                layer: w.layer,
                layout: Layout::T2_128,
                rows: w.shape.0,
                cols: w.shape.1,
                weight_scale: ws,
                data: t2,
            };
            crate::import::repack_tensor(&mut t, ternary);
            (t.layout, ws, t.data)
        }
    } else {
        (
            Layout::F32,
            1.0,
            float::f32_bytes(&vec![1.0f32; rows * cols]),
        )
    };
    OwnedTensor {
        name: w.name.clone(),
        role: w.role,
        layer: w.layer,
        layout,
        rows: w.shape.0,
        cols: w.shape.1,
        weight_scale,
        data,
    }
}

/// The `--vocab` value that selects [`byte_level_vocab`] instead of a file.
pub const BYTES_VOCAB: &str = "bytes";

/// A self-contained byte-level BPE vocabulary: the 256 bytes (ids 0..256, no merges) plus
/// `<|begin_of_text|>` (256, BOS) and `<|end_of_text|>` (257, EOS). Tern's Llama-3 BPE
/// tokenizer encodes any text with it (one token per byte), so a model built on it needs no
/// external vocabulary file (the bundled demo model).
///
/// # Errors
/// None in practice (the blob writer validates its input).
pub fn byte_level_vocab() -> Result<crate::tokenizer::TokenizerBuild> {
    use tern_core::tokenizer::TokenType;
    use tern_core::tokenizer::writer::{TokenSpec, VocabSpec, write_blob};
    let mut tokens: Vec<TokenSpec> = (0..=255u8)
        .map(|b| TokenSpec {
            bytes: vec![b],
            ty: TokenType::Normal,
            score: 0.0,
            mergeable: true,
        })
        .collect();
    for t in ["<|begin_of_text|>", "<|end_of_text|>"] {
        tokens.push(TokenSpec {
            bytes: t.as_bytes().to_vec(),
            ty: TokenType::Control,
            score: 0.0,
            mergeable: false,
        });
    }
    let spec = VocabSpec {
        kind: tern_core::format::TokenizerKind::Bpe,
        tokens,
        merges: Vec::new(),
        ignore_merges: true,
        add_space_prefix: false,
        bos: Some(256),
        eos: Some(257),
        unk: None,
    };
    let blob = write_blob(&spec).map_err(|e| anyhow::anyhow!("byte-level vocabulary: {e}"))?;
    Ok(crate::tokenizer::TokenizerBuild {
        kind: spec.kind,
        n_tokens: 258,
        bos: Some(256),
        eos: Some(257),
        stop_ids: vec![257],
        add_bos: true,
        blob,
    })
}

/// Generate a random model of `shape` whose vocabulary (and tokenizer) comes from `vocab`: a
/// vocab GGUF (e.g. `ggml-vocab-llama-bpe.gguf`, 128256 tokens), a `tokenizer.json`, an HF
/// directory holding one, or the literal [`BYTES_VOCAB`] (`bytes`) for [`byte_level_vocab`].
///
/// Ternary weights are uniform over {-1, 0, +1}; `weight_scale` ≈ `sqrt(cols)` (× 0.75..1.25);
/// the tied F16 embedding is ~N(0, 1); norms are 1.0. The 2B4T shape takes a few seconds in a
/// release build (parallel over tensors).
///
/// # Errors
/// An unreadable vocabulary source.
pub fn synth_model(shape: SynthShape, seed: u64, vocab: &Path) -> Result<OwnedModel> {
    synth_model_with(shape, seed, vocab, TernaryLayout::T2_128)
}

/// [`synth_model`] with the ternary tensors in `ternary` (`tern-pack synth --ternary`): the
/// same values for a seed in either layout, so both files compute bit-identical logits.
///
/// # Errors
/// An unreadable vocabulary source.
pub fn synth_model_with(
    shape: SynthShape,
    seed: u64,
    vocab: &Path,
    ternary: TernaryLayout,
) -> Result<OwnedModel> {
    let tok = vocab_tokenizer(vocab)?;
    if tok.0.n_tokens == 0 {
        bail!("{}: the vocabulary is empty", vocab.display());
    }
    let config = shape.config(tok.0.n_tokens);
    let mut options = format!("--shape {} --seed {seed}", shape.name());
    if ternary != TernaryLayout::T2_128 {
        options += &format!(" --ternary {}", ternary.cli_name());
    }
    synth_from_config(config, tok, seed, vocab, ternary, options)
}

/// A random model of any `config` (its `vocab_size` must be the vocabulary's token count):
/// what [`synth_model_with`] builds for a named shape, for tests that need other dimensions.
///
/// # Errors
/// An unreadable vocabulary source, an invalid config.
pub fn synth_config_model(
    config: ModelConfig,
    seed: u64,
    vocab: &Path,
    ternary: TernaryLayout,
) -> Result<OwnedModel> {
    let tok = vocab_tokenizer(vocab)?;
    let config = ModelConfig {
        vocab_size: tok.0.n_tokens,
        ..config
    };
    let mut options = format!("--seed {seed}");
    if ternary != TernaryLayout::T2_128 {
        options += &format!(" --ternary {}", ternary.cli_name());
    }
    synth_from_config(config, tok, seed, vocab, ternary, options)
}

fn synth_from_config(
    config: ModelConfig,
    tok: (tern_core::format::TokenizerInfo, Vec<u8>),
    seed: u64,
    vocab: &Path,
    ternary: TernaryLayout,
    options: String,
) -> Result<OwnedModel> {
    let wanted = wanted_tensors(&config);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tensors: Vec<Option<OwnedTensor>> = vec![None; wanted.len()];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(w) = wanted.get(i) else { break };
                    if w.role == TensorRole::TokenEmbd {
                        continue;
                    }
                    let t = make_tensor(seed, i, w, ternary);
                    if let Ok(mut r) = results.lock() {
                        r.push((i, t));
                    }
                }
            });
        }
    });
    for (i, t) in results.into_inner().unwrap_or_default() {
        tensors[i] = Some(t);
    }
    let emb = &wanted[0];
    tensors[0] = Some(OwnedTensor {
        name: emb.name.clone(),
        role: emb.role,
        layer: 0,
        layout: Layout::F16,
        rows: emb.shape.0,
        cols: emb.shape.1,
        weight_scale: 1.0,
        data: random_embedding(seed, emb.shape.0 as usize, emb.shape.1 as usize),
    });
    let tensors: Option<Vec<OwnedTensor>> = tensors.into_iter().collect();
    let Some(tensors) = tensors else {
        bail!("internal error: a synthetic tensor was not generated")
    };
    let builtin = vocab.as_os_str() == BYTES_VOCAB && !vocab.exists();
    let hashed = if vocab.is_dir() {
        vocab.join("tokenizer.json")
    } else {
        vocab.to_path_buf()
    };
    let prov = tern_core::format::writer::OwnedProvenance {
        source: vocab
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_format: "synthetic".into(),
        source_sha256: if builtin {
            [0; 32]
        } else {
            sha256_file(&hashed)?
        },
        packer: packer_string(),
        options,
    };
    let plan = DefaultPlan {
        ctx_len: config.max_ctx.min(4096),
        kv: KvDtype::F32,
    };
    finish(config, tok, plan, prov, tensors)
}

/// The tokenizer (info, blob) of a vocabulary source: an HF directory, a `tokenizer.json` (its
/// directory is used), or a GGUF file.
fn vocab_tokenizer(vocab: &Path) -> Result<(tern_core::format::TokenizerInfo, Vec<u8>)> {
    let build = if vocab.as_os_str() == BYTES_VOCAB && !vocab.exists() {
        byte_level_vocab()?
    } else if vocab.is_dir() {
        crate::tokenizer::blob_from_tokenizer_json(vocab)?
    } else if vocab.extension().is_some_and(|e| e == "json") {
        let dir = match vocab.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if vocab.file_name().is_some_and(|n| n != "tokenizer.json") {
            bail!(
                "{}: a JSON vocabulary must be named tokenizer.json",
                vocab.display()
            );
        }
        crate::tokenizer::blob_from_tokenizer_json(dir)?
    } else {
        crate::tokenizer::blob_from_gguf(vocab)?
    };
    tokenizer_parts(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_balanced_and_deterministic() {
        let mut a = SplitMix64::stream(7, 3);
        let mut b = SplitMix64::stream(7, 3);
        let x = random_t2(&mut a, 16, 256);
        assert_eq!(x, random_t2(&mut b, 16, 256));
        let mut counts = [0usize; 4];
        for &byte in &x {
            for g in 0..4 {
                counts[((byte >> (2 * g)) & 3) as usize] += 1;
            }
        }
        assert_eq!(counts[3], 0);
        let n = (16 * 256) as f64;
        for &c in &counts[..3] {
            assert!((c as f64 / n - 1.0 / 3.0).abs() < 0.03, "{counts:?}");
        }
    }

    #[test]
    fn embedding_is_roughly_standard_normal() {
        let e = random_embedding(1, 64, 256);
        let v = float::to_f32(Layout::F16, &e).unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.1,
            "mean {mean} var {var}"
        );
        assert_eq!(e, random_embedding(1, 64, 256));
    }
}
