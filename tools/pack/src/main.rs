//! `tern-pack`: import GGUF / safetensors BitNet b1.58 models into `.tern` (or re-pack a
//! `.tern`), or synthesize one.
//!
//! ```text
//! tern-pack pack IN -o OUT [--ffn-act relu2|silu] [--ctx N] [--lm-head keep|q8_0|q4_0]
//!     [--ternary t2_128|t1_160]
//! tern-pack synth --shape 2b4t|tiny|small --seed N --vocab VOCAB -o OUT [--lm-head ..] [--ternary ..]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tern_core::config::FfnAct;
use tern_kernels::layout::TernaryLayout;
use tern_pack::import::{ImportProgress, act_name, import_path};
use tern_pack::pack::{PackOptions, write_tern_atomic};
use tern_pack::synth::{SynthShape, synth_model_with};

#[derive(Debug, Parser)]
#[command(
    name = "tern-pack",
    version,
    about = "Pack BitNet b1.58 models into .tern files"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Act {
    Relu2,
    Silu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HeadArg {
    Keep,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "f16_r8")]
    F16R8,
    #[value(name = "q4_0_r8")]
    Q4_0R8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TernaryArg {
    /// 2 bits per weight (128 weights in 32 bytes).
    #[value(name = "t2_128")]
    T2_128,
    /// 1.6 bits per weight (160 weights in 32 bytes, base 3): 20 % fewer bytes.
    #[value(name = "t1_160")]
    T1_160,
}

impl TernaryArg {
    fn layout(self) -> TernaryLayout {
        match self {
            TernaryArg::T2_128 => TernaryLayout::T2_128,
            TernaryArg::T1_160 => TernaryLayout::T1_160,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    #[value(name = "2b4t")]
    B2b4t,
    Tiny,
    Small,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Import a GGUF file or a Hugging Face safetensors directory and write a .tern file, or
    /// re-pack a .tern file (e.g. with another --lm-head).
    Pack {
        /// GGUF file, directory with config.json + model.safetensors (or shards), or .tern file.
        input: PathBuf,
        /// Output .tern file (written atomically).
        #[arg(short, long)]
        out: PathBuf,
        /// Force the FFN activation (overrides metadata and the arch rule).
        #[arg(long, value_enum)]
        ffn_act: Option<Act>,
        /// Default context length recorded in the file, tokens (at most the model's).
        #[arg(long)]
        ctx: Option<u32>,
        /// LM head storage: keep the source's layout, or quantize it to Q8_0 (8.5 bpw) or Q4_0
        /// (4.5 bpw), or F16 in the row-interleaved F16_R8 order (faster on AVX-512 hosts), or
        /// Q4_0 in the row-interleaved Q4_0_R8 order (the same values as Q4_0, faster).
        #[arg(long, value_enum, default_value = "keep")]
        lm_head: HeadArg,
        /// Layout of the ternary weights: T2_128 (2 bpw) or T1_160 (1.6 bpw, 20% smaller).
        #[arg(long, value_enum, default_value = "t2_128")]
        ternary: TernaryArg,
    },
    /// Generate a model with random ternary weights.
    Synth {
        /// Model shape.
        #[arg(long, value_enum)]
        shape: Shape,
        /// PRNG seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Vocabulary: a vocab GGUF, a tokenizer.json, an HF directory, or `bytes` (built-in
        /// 258-token byte-level vocabulary).
        #[arg(long)]
        vocab: PathBuf,
        /// Output .tern file (written atomically).
        #[arg(short, long)]
        out: PathBuf,
        /// LM head storage: the synthetic F16 embedding, or Q8_0 or Q4_0, or F16_R8 or Q4_0_R8.
        #[arg(long, value_enum, default_value = "keep")]
        lm_head: HeadArg,
        /// Layout of the ternary weights (the same values in either): T2_128 or T1_160.
        #[arg(long, value_enum, default_value = "t2_128")]
        ternary: TernaryArg,
    },
}

impl HeadArg {
    fn to_opt(self) -> tern_pack::pack::LmHead {
        match self {
            HeadArg::Keep => tern_pack::pack::LmHead::Keep,
            HeadArg::Q8_0 => tern_pack::pack::LmHead::Q8_0,
            HeadArg::Q4_0 => tern_pack::pack::LmHead::Q4_0,
            HeadArg::F16R8 => tern_pack::pack::LmHead::F16R8,
            HeadArg::Q4_0R8 => tern_pack::pack::LmHead::Q4_0R8,
        }
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn write(model: &tern_core::format::writer::OwnedModel, out: &std::path::Path) -> Result<u64> {
    let total: u64 = model
        .tensors
        .iter()
        .map(|t| t.data.len() as u64)
        .sum::<u64>()
        + model.tokenizer_blob.len() as u64;
    let pb = bar(
        total,
        "writing   [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
    );
    let n = write_tern_atomic(model, out, |b| pb.set_position(b.min(total)))?;
    pb.finish_and_clear();
    Ok(n)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Pack {
            input,
            out,
            ffn_act,
            ctx,
            lm_head,
            ternary,
        } => {
            let ffn_act = ffn_act.map(|a| match a {
                Act::Relu2 => FfnAct::Relu2,
                Act::Silu => FfnAct::Silu,
            });
            let opts = PackOptions {
                ffn_act,
                ctx_len: ctx,
                lm_head: lm_head.to_opt(),
                ternary: ternary.layout(),
            };
            let t0 = Instant::now();
            let pb = bar(0, "importing [{bar:40}] {pos}/{len} {msg}");
            let model = import_path(&input, &opts, &|p: ImportProgress<'_>| {
                pb.set_length(p.total as u64);
                pb.set_position(p.done as u64);
                pb.set_message(p.tensor.to_string());
            })?;
            pb.finish_and_clear();
            let t1 = Instant::now();
            let n = write(&model, &out)?;
            let c = &model.config;
            println!(
                "{} -> {}: {} ({} tensors, {} layers, dim {}, vocab {}, ffn {} [{:?}], {} bytes) in {:.2?} import + {:.2?} write",
                input.display(),
                out.display(),
                model.provenance.source_format,
                model.tensors.len(),
                c.n_layers,
                c.dim,
                c.vocab_size,
                act_name(c.ffn_act),
                c.ffn_act_source,
                n,
                t1 - t0,
                t1.elapsed()
            );
        }
        Cmd::Synth {
            shape,
            seed,
            vocab,
            out,
            lm_head,
            ternary,
        } => {
            let shape = match shape {
                Shape::B2b4t => SynthShape::B2b4t,
                Shape::Tiny => SynthShape::Tiny,
                Shape::Small => SynthShape::Small,
            };
            let t0 = Instant::now();
            let mut model = synth_model_with(shape, seed, &vocab, ternary.layout())?;
            let opts = PackOptions {
                lm_head: lm_head.to_opt(),
                ..Default::default()
            };
            tern_pack::import::apply_lm_head(&mut model, &opts)?;
            let t1 = Instant::now();
            let n = write(&model, &out)?;
            println!(
                "synthetic {} (seed {seed}, vocab {}) -> {}: {} tensors, {n} bytes in {:.2?} generate + {:.2?} write",
                shape.name(),
                model.config.vocab_size,
                out.display(),
                model.tensors.len(),
                t1 - t0,
                t1.elapsed()
            );
        }
    }
    Ok(())
}
