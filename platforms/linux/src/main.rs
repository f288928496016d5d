//! `tern`: run BitNet b1.58 models on the CPU.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tern_core::config::FfnAct;
use tern_core::format::TernFile;
use tern_core::plan::{KvDtype, RunOptions};
use tern_core::sampler::SamplerConfig;
use tern_kernels::layout::TernaryLayout;
use tern_linux::generate::{
    GenOptions, Weights, generate_with, pack_with_progress, plan_for, tokenize,
};
use tern_linux::model_file::ModelBytes;
use tern_linux::pool::ThreadPool;
use tern_linux::stream::{PosRead, StreamedModel};
use tern_pack::pack::PackOptions;

mod cli_inspect;
use cli_inspect::{InspectPlan, cmd_inspect};

#[derive(Parser, Debug)]
#[command(
    name = "tern",
    version,
    about = "Run ternary (BitNet b1.58) LLMs on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate text from a prompt, streaming tokens to stdout.
    Run(RunArgs),
    /// Measure prompt-processing and generation speed (llama-bench-like table or JSON).
    Bench(BenchArgs),
    /// Pack a GGUF file or an HF safetensors directory into a .tern file, or re-pack a .tern
    /// file (e.g. with another --lm-head).
    Pack {
        /// Input: .gguf file, safetensors directory, or .tern file.
        input: PathBuf,
        /// Output .tern file.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        pack: PackArgs,
    },
    /// Print a model's config, tensors (layout, bytes) and memory plan.
    Inspect {
        /// .tern, .gguf or safetensors directory.
        model: PathBuf,
        /// Context length for the memory plan (default: the file's).
        #[arg(long)]
        ctx: Option<u32>,
        /// KV cache type for the memory plan.
        #[arg(long, value_enum, default_value_t = KvArg::F32)]
        kv: KvArg,
        /// Plan for streamed weights (staging buffers instead of mapped weights).
        #[arg(long)]
        stream: bool,
        /// Prompt tokens per prefill batch for the memory plan.
        #[arg(short = 'b', long, default_value_t = RunOptions::DEFAULT_BATCH)]
        batch: u32,
        #[command(flatten)]
        pack: PackArgs,
    },
    /// Perplexity of the model on a text file (non-overlapping windows of --ctx tokens, every
    /// token after the first of each window scored; see tern_linux::perplexity).
    Perplexity(PplArgs),
    /// Print the token ids of TEXT on one line (like llama-tokenize).
    Tokenize {
        /// .tern, .gguf or safetensors directory.
        model: PathBuf,
        /// Text to tokenize.
        text: String,
        /// Do not add BOS.
        #[arg(long)]
        no_bos: bool,
        /// Recognise special-token text such as <|eot_id|>.
        #[arg(long)]
        parse_special: bool,
        #[command(flatten)]
        pack: PackArgs,
    },
}

/// How a resident model's weights are held (`run`, `bench`, `perplexity`).
#[derive(Args, Debug, Clone, Copy)]
struct LoadArgs {
    /// Read the weights into memory (2 MiB transparent huge pages where the kernel allows)
    /// instead of mapping the file: decode reads them faster, at the cost of reading the whole
    /// file at start into private memory (llama.cpp's --no-mmap, llama-bench's -mmp 0 or -lm
    /// none). Streamed runs read into staging buffers either way.
    #[arg(long)]
    no_mmap: bool,
}

#[derive(Args, Debug, Clone)]
struct PackArgs {
    /// FFN activation override when the source does not record it (see tools/pack/README.md).
    #[arg(long, value_enum)]
    ffn_act: Option<ActArg>,
    /// LM head storage when packing: keep the source's layout, or Q8_0 (halves the head's
    /// bytes) or Q4_0 (quarters them), or F16 / Q4_0 in the row-interleaved F16_R8 / Q4_0_R8
    /// order (the same bytes as F16 / Q4_0, read faster by the head kernels).
    #[arg(long, value_enum, default_value = "keep")]
    lm_head: HeadArg,
    /// Ternary weight layout when packing: T2_128 (2 bits per weight) or T1_160 (1.6 bits per
    /// weight: 20% fewer bytes to read, more decode work; for memory-bound devices and streamed
    /// weights). Part of the cache key.
    #[arg(long, value_enum, default_value = "t2_128")]
    ternary: TernaryArg,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum TernaryArg {
    #[value(name = "t2_128")]
    T2_128,
    #[value(name = "t1_160")]
    T1_160,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
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

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ActArg {
    Relu2,
    Silu,
}

/// KV cache element type (llama.cpp's `--cache-type-k/-v` names): `f32` (exact), `f16` (half
/// the bytes), `q8_0` (Q8_0 blocks: about a quarter of f32's bytes; the query is quantized to
/// Q8_0 for the scores).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
enum KvArg {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

impl PackArgs {
    fn options(&self) -> PackOptions {
        PackOptions {
            ffn_act: self.ffn_act.map(|a| match a {
                ActArg::Relu2 => FfnAct::Relu2,
                ActArg::Silu => FfnAct::Silu,
            }),
            lm_head: match self.lm_head {
                HeadArg::Keep => tern_pack::pack::LmHead::Keep,
                HeadArg::Q8_0 => tern_pack::pack::LmHead::Q8_0,
                HeadArg::Q4_0 => tern_pack::pack::LmHead::Q4_0,
                HeadArg::F16R8 => tern_pack::pack::LmHead::F16R8,
                HeadArg::Q4_0R8 => tern_pack::pack::LmHead::Q4_0R8,
            },
            ternary: match self.ternary {
                TernaryArg::T2_128 => TernaryLayout::T2_128,
                TernaryArg::T1_160 => TernaryLayout::T1_160,
            },
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// .tern, .gguf or safetensors directory (GGUF and safetensors are packed once into the
    /// cache). Default: the bundled demo model (trained on the KJV Bible).
    model: Option<PathBuf>,
    /// Prompt text ("" = BOS alone).
    #[arg(short, long, default_value = "")]
    prompt: String,
    /// Tokens to generate.
    #[arg(short = 'n', long, default_value_t = 64)]
    n_predict: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    top_k: u32,
    /// Top-p (1.0 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0.0 = off).
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: u32,
    /// RNG seed.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Context length in tokens (default: the file's plan).
    #[arg(long)]
    ctx: Option<u32>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    kv: KvArg,
    /// Keep generating past end-of-text tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Recognise special-token text such as <|eot_id|> in the prompt.
    #[arg(long)]
    parse_special: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Write the logits of every evaluated position as little-endian f32 rows.
    #[arg(long)]
    dump_logits: Option<PathBuf>,
    /// Prompt tokens per prefill batch (one pass over the weights per batch).
    #[arg(short = 'b', long, default_value_t = RunOptions::DEFAULT_BATCH)]
    batch: u32,
    /// Threads (default: all available cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Skip the CRC32 check of every tensor at load (streamed runs never read the weights up
    /// front: their check is the header's CRC32).
    #[arg(long)]
    no_verify: bool,
    /// Memory budget (e.g. 300M, 1.5G): when the mapped weights plus the arena exceed it, the
    /// weights are streamed from storage through two staging buffers instead.
    #[arg(long, value_parser = parse_size)]
    max_ram: Option<u64>,
    /// Stream the weights from storage whatever the budget.
    #[arg(long)]
    stream: bool,
    /// Streamed runs: drop each weight range from the page cache after reading it, so every
    /// token reads from storage and the page cache never holds the model.
    #[arg(long)]
    drop_cache: bool,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    pack: PackArgs,
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    tern_linux::stream::parse_bytes(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
struct PplArgs {
    /// .tern, .gguf or safetensors directory.
    model: PathBuf,
    /// UTF-8 text file.
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Window length in tokens (default: the file's plan context).
    #[arg(long)]
    ctx: Option<u32>,
    /// Every non-empty line is a document: BOS + line + EOS (default: the whole file after
    /// one BOS).
    #[arg(long)]
    lines: bool,
    /// Score at most this many tokens (the stream is cut first).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    kv: KvArg,
    /// Threads (default: all available cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    pack: PackArgs,
}

fn cmd_perplexity(a: &PplArgs) -> Result<()> {
    let mut mm = open(&a.model, &a.pack, a.json)?;
    if a.load.no_mmap {
        mm.read_into_memory()?;
    }
    let model = mm.model(true)?;
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {} (UTF-8 text expected)", a.file.display()))?;
    let mut stream = tern_linux::perplexity::token_stream(&model, &text, a.lines)?;
    if let Some(m) = a.max_tokens {
        stream.truncate(m.saturating_add(1));
    }
    let ctx = a.ctx.unwrap_or(model.file.header.plan.ctx_len) as usize;
    let kernels = tern_linux::cpu::kernels()?;
    let pool = ThreadPool::new(a.threads.unwrap_or_else(default_threads));
    let t0 = std::time::Instant::now();
    let json = a.json;
    let p = tern_linux::perplexity::perplexity(
        &model,
        kernels,
        &pool,
        &stream,
        ctx,
        kv(a.kv),
        &mut |done, total| {
            if !json {
                eprint!("\rwindow {done}/{total}");
            }
        },
    )
    .with_context(|| mm.name())?;
    let secs = t0.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": mm.name(),
                "file": a.file.display().to_string(),
                "perplexity": p.ppl,
                "nll_per_token": p.nll,
                "scored_tokens": p.scored,
                "windows": p.windows,
                "ctx": ctx,
                "lines": a.lines,
                "kernels": kernels.variant.name(),
                "seconds": secs,
            })
        );
    } else {
        eprintln!();
        println!(
            "perplexity {:.4} (NLL {:.5} nats/token) over {} tokens in {} windows of {ctx} | {} | kernels {} | {:.1} s",
            p.ppl,
            p.nll,
            p.scored,
            p.windows,
            mm.name(),
            kernels.variant.name(),
            secs
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// .tern, .gguf or safetensors directory (GGUF and safetensors are packed once into the cache).
    model: PathBuf,
    /// Prompt tokens of the pp test (0 = no pp test).
    #[arg(short = 'p', long, default_value_t = 128)]
    n_prompt: usize,
    /// Generated tokens of the tg test (0 = no tg test).
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Context depth: tokens evaluated, untimed, before every repetition, so each test runs
    /// that deep into a context (llama-bench's -d; tests named e.g. tg128 @ d2048). The
    /// roofline still counts weight bytes only, not the KV cache's.
    #[arg(short = 'd', long, default_value_t = 0)]
    n_depth: usize,
    /// Thread counts, comma-separated, e.g. 1,2,4 (default: all available cores).
    #[arg(short = 't', long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed repetitions of every test (after one warm-up).
    #[arg(short = 'r', long, default_value_t = 5)]
    reps: usize,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    kv: KvArg,
    /// Most prompt tokens evaluated per pass over the weights in the pp test.
    #[arg(short = 'b', long, default_value_t = tern_core::plan::RunOptions::DEFAULT_BATCH)]
    batch: u32,
    /// Print a JSON array of records (llama-bench field names) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also measure memory read bandwidth and print the decode roofline.
    #[arg(long)]
    roofline: bool,
    /// Size of the bandwidth test buffer, MiB (far above the last-level cache).
    #[arg(long, default_value_t = 1024)]
    roofline_mib: usize,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    pack: PackArgs,
}

impl BenchArgs {
    fn options(&self) -> tern_linux::bench::BenchOptions {
        tern_linux::bench::BenchOptions {
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
            n_depth: self.n_depth,
            threads: if self.threads.is_empty() {
                vec![default_threads()]
            } else {
                self.threads.clone()
            },
            reps: self.reps,
            kv: kv(self.kv),
            batch: self.batch,
            roofline: self.roofline,
            roofline_bytes: self.roofline_mib << 20,
            use_mmap: !self.load.no_mmap,
        }
    }
}

/// Default thread count: every core this process may use.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn kv(k: KvArg) -> KvDtype {
    match k {
        KvArg::F32 => KvDtype::F32,
        KvArg::F16 => KvDtype::F16,
        KvArg::Q8_0 => KvDtype::Q8_0,
    }
}

fn open(model: &Path, pack: &PackArgs, quiet: bool) -> Result<ModelBytes> {
    ModelBytes::open(Some(model), &pack.options(), quiet)
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-tern");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn cmd_run(a: &RunArgs) -> Result<()> {
    let mut mm = ModelBytes::open(a.model.as_deref(), &a.pack.options(), a.json)?;
    let kernels = tern_linux::cpu::kernels()?;
    let mut opts = GenOptions {
        prompt: a.prompt.clone(),
        n_predict: a.n_predict,
        sampler: SamplerConfig {
            temperature: a.temp,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            repeat_last_n: a.repeat_last_n,
            seed: a.seed,
        },
        ctx_len: a.ctx,
        kv: kv(a.kv),
        ignore_eos: a.ignore_eos,
        parse_special: a.parse_special,
        batch: a.batch,
        pin_bytes: 0,
    };
    // Resident or streamed: parse the header only (no weight page is touched) and compare
    // both plans with the budget.
    let resident_need = {
        let header_only = mm.model(false)?;
        let (_, p) = plan_for(Weights::Resident(&header_only), &opts)?;
        header_only.file.weight_bytes() + p.arena_bytes as u64
    };
    let stream = a.stream || a.max_ram.is_some_and(|m| resident_need > m);
    if a.load.no_mmap && !stream {
        mm.read_into_memory()?;
    }
    let header_only = mm.model(false)?;
    let streamed_model = match (&mm, stream) {
        (ModelBytes::Mapped(m), true) => Some(StreamedModel::open(&m.path)?),
        _ => None,
    };
    let streamed_file = streamed_model.as_ref().map(|m| m.tern_file()).transpose()?;
    let resident_model;
    let weights = if stream {
        let (file, tokenizer, reader): (&TernFile<'_>, &[u8], &dyn PosRead) =
            match (&streamed_model, &streamed_file) {
                (Some(m), Some(f)) => (f, m.tokenizer_blob(), &m.file),
                _ => (
                    &header_only.file,
                    header_only.tokenizer_blob(),
                    &tern_linux::model_file::BUNDLED_MODEL,
                ),
            };
        let w = Weights::Streamed {
            file,
            tokenizer,
            reader,
            evict: a.drop_cache,
        };
        let (_, p) = plan_for(w, &opts)?;
        if let Some(m) = a.max_ram
            && p.arena_bytes as u64 > m
        {
            bail!(
                "{}: does not fit --max-ram {m} bytes even with streamed weights: the arena needs {} bytes (KV cache {}, staging {}, activations {}); lower --ctx or -b",
                mm.name(),
                p.arena_bytes,
                p.kv_bytes,
                p.staging_bytes,
                p.act_bytes
            );
        }
        // What the budget leaves after the streamed arena (and PIN_RESERVE for the process
        // itself) pins the first tensors of the stream order in the arena.
        if let Some(m) = a.max_ram {
            opts.pin_bytes = (m.saturating_sub(p.arena_bytes as u64 + PIN_RESERVE_BYTES)) as usize;
        }
        let (_, p) = plan_for(w, &opts)?;
        if !a.json {
            eprintln!(
                "streaming {:.1} of {:.1} MiB of weights per token from {} through 2 x {:.1} MiB staging, {:.1} MiB pinned (arena {:.1} MiB{})",
                mib(p.streamed_bytes_per_pass),
                mib(file.weight_bytes()),
                mm.name(),
                mib(p.slot_bytes as u64),
                mib(p.pinned_bytes as u64),
                mib(p.arena_bytes as u64),
                a.max_ram
                    .map(|m| format!(", --max-ram {:.1} MiB", mib(m)))
                    .unwrap_or_default()
            );
        }
        w
    } else {
        resident_model = mm.model(!a.no_verify)?;
        Weights::Resident(&resident_model)
    };
    let mut dump: Vec<u8> = Vec::new();
    let mut on_logits = |l: &[f32]| -> Result<()> {
        for v in l {
            dump.extend_from_slice(&v.to_le_bytes());
        }
        Ok(())
    };
    let json = a.json;
    let stdout = std::io::stdout();
    let mut on_text = |s: &str| {
        if !json {
            let mut o = stdout.lock();
            let _ = o.write_all(s.as_bytes());
            let _ = o.flush();
        }
    };
    let logits_cb: Option<tern_linux::generate::LogitsSink<'_>> = if a.dump_logits.is_some() {
        Some(&mut on_logits)
    } else {
        None
    };
    let pool = ThreadPool::new(a.threads.unwrap_or_else(default_threads));
    let (_, plan) = plan_for(weights, &opts)?;
    let r = generate_with(weights, kernels, &pool, &opts, &mut on_text, logits_cb)?;
    let peak_rss = tern_linux::stream::peak_rss_bytes();
    // Bytes read per forward pass, without the one-time read of the pinned weights.
    let pinned_bytes = plan.pinned_weight_bytes;
    let per_pass = r
        .stream
        .map(|st| (st.bytes_read - pinned_bytes) as f64 / r.passes.max(1) as f64);
    if let Some(p) = &a.dump_logits {
        write_atomic(p, &dump)?;
    }
    if json {
        let v = serde_json::json!({
            "model": mm.name(),
            "prompt": a.prompt,
            "prompt_ids": r.prompt_ids,
            "generated_ids": r.generated_ids,
            "text": r.text,
            "prompt_tokens": r.prompt_ids.len(),
            "generated_tokens": r.generated_ids.len(),
            "prompt_tokens_per_s": r.prompt_tps(),
            "decode_tokens_per_s": r.decode_tps(),
            "kernels": kernels.variant.name(),
            "threads": pool.n_threads(),
            "arena_bytes": r.arena_bytes,
            "streamed": stream,
            "weights": if stream { "streamed" } else { mm.holding() },
            "bytes_read": r.stream.map(|st| st.bytes_read),
            "bytes_read_per_pass": per_pass,
            "pinned_bytes": pinned_bytes,
            "read_wait_s": r.stream.map(|st| st.wait_secs),
            "peak_rss_bytes": peak_rss,
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "prompt: {} tokens, {:.2} tok/s | generated: {} tokens, decode {:.2} tok/s | kernels {} | threads {} | arena {:.1} MiB",
            r.prompt_ids.len(),
            r.prompt_tps(),
            r.generated_ids.len(),
            r.decode_tps(),
            kernels.variant.name(),
            pool.n_threads(),
            r.arena_bytes as f64 / (1 << 20) as f64
        );
        if let (Some(st), Some(pp)) = (r.stream, per_pass) {
            eprintln!(
                "streamed: {:.1} MiB read in {} reads, {:.1} MiB per forward pass, {:.2} s waiting for reads",
                mib(st.bytes_read),
                st.reads,
                pp / (1 << 20) as f64,
                st.wait_secs
            );
        }
        if let Some(rss) = peak_rss {
            eprintln!("peak RSS {:.1} MiB", mib(rss));
        }
    }
    Ok(())
}

/// Memory `--max-ram` keeps for the process outside the arena (code, tokenizer, stacks) when
/// it sizes the pinned weights.
const PIN_RESERVE_BYTES: u64 = 16 << 20;

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Perplexity(a) => cmd_perplexity(a),
        Cmd::Bench(a) => tern_linux::bench::cli(&a.model, &a.pack.options(), &a.options(), a.json),
        Cmd::Pack {
            input,
            output,
            pack,
        } => {
            if output.extension().is_none_or(|e| e != "tern") {
                bail!("{}: the output should end in .tern", output.display());
            }
            let n = pack_with_progress(input, output, &pack.options(), false)?;
            eprintln!("wrote {} ({n} bytes)", output.display());
            Ok(())
        }
        Cmd::Inspect {
            model,
            ctx,
            kv,
            stream,
            batch,
            pack,
        } => cmd_inspect(
            model,
            InspectPlan {
                ctx: *ctx,
                kv: *kv,
                stream: *stream,
                batch: *batch,
            },
            pack,
        ),
        Cmd::Tokenize {
            model,
            text,
            no_bos,
            parse_special,
            pack,
        } => {
            let mm = open(model, pack, false)?;
            let m = mm.model(false)?;
            let ids = tokenize(&m, text, !no_bos, *parse_special)?;
            println!(
                "{}",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // A closed stdout pipe (`tern inspect m.tern | head`) ends tern as it ends other
    // command-line tools, by SIGPIPE, instead of as println!'s "failed printing to stdout"
    // panic: Rust starts programs with SIGPIPE ignored.
    // SAFETY: `signal` only sets the process's disposition of SIGPIPE back to the default; it
    // runs before any thread is started and touches no Rust-managed memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
