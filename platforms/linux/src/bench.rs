//! `tern bench`: llama-bench-like prompt-processing (`pp`) and text-generation (`tg`) speed,
//! and an optional decode roofline from the measured memory read bandwidth.
//!
//! For every thread count: `ppN` evaluates `N` token ids from a fresh session (position 0),
//! `tgN` decodes `N` tokens one forward pass at a time from a fresh session (no sampling, as
//! llama-bench). Token ids are pseudo-random with a fixed seed, the first one BOS when the
//! tokenizer adds BOS (as llama-bench). Each test runs once as a warm-up (llama-bench's:
//! `min(N, 32)` prompt tokens, one generated token), then `reps` timed times; t/s is reported
//! as the mean ± sample standard deviation over the repetitions.
//!
//! Decode is memory-bandwidth bound, so its ceiling is `bandwidth / bytes read per token`
//! (see [`ModelSummary::weight_bytes_per_token`] and [`measure_read_bandwidth`]). A shared
//! VM's bandwidth drifts by tens of percent over minutes, so with `--roofline` every timed `tg`
//! repetition is paired with one probe round right before it (a pass per read method, the
//! faster kept): the share of the ceiling is the median over repetitions of (bytes read per
//! second) / (that round's bandwidth), and the bandwidth shown is the mean of those rounds.

use std::hint::black_box;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use tern_core::format::{Model, TensorRole};
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::session::Session;
use tern_kernels::KernelSet;
use tern_kernels::layout::Layout;
use tern_pack::pack::PackOptions;

use crate::arena::Arena;
use crate::pool::ThreadPool;

mod probe;
pub use probe::{HugePages, bandwidth_buffer, huge_page_bytes, measure_read_bandwidth};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Prompt tokens of the `pp` test (0: no `pp` test).
    pub n_prompt: usize,
    /// Generated tokens of the `tg` test (0: no `tg` test).
    pub n_gen: usize,
    /// Context depth, tokens (llama-bench's `-d`): before every repetition of each test, this
    /// many tokens are evaluated as a prompt, untimed, so the test runs deep into a context
    /// (its attention reads a KV cache that long).
    pub n_depth: usize,
    /// Thread counts to run every test with.
    pub threads: Vec<usize>,
    /// Timed repetitions of every test (after one warm-up).
    pub reps: usize,
    /// KV cache element type.
    pub kv: KvDtype,
    /// Most prompt tokens [`Session::prefill`] evaluates per pass over the weights.
    pub batch: u32,
    /// Also measure the memory read bandwidth per thread count (for the decode roofline).
    pub roofline: bool,
    /// Bytes of the bandwidth test buffer (should be far above the last-level cache).
    pub roofline_bytes: usize,
    /// Whether the weights are read in place from the file's map (true) or from a copy in
    /// anonymous memory ([`crate::model_file::MappedModel::read_into_memory`]): [`cli`] holds
    /// them so, and the report records it as llama-bench's `use_mmap`.
    pub use_mmap: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            n_prompt: 128,
            n_gen: 128,
            n_depth: 0,
            threads: vec![
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ],
            reps: 5,
            kv: KvDtype::F32,
            batch: RunOptions::DEFAULT_BATCH,
            roofline: false,
            roofline_bytes: 1 << 30,
            use_mmap: true,
        }
    }
}

/// The model-level columns of every record.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSummary {
    /// Path of the `.tern` file.
    pub filename: String,
    /// Architecture, size and layouts, e.g. `bitnet-b1.58 2.4B T2_128/F16`.
    pub model_type: String,
    /// Bytes of all tensors in the file.
    pub size_bytes: u64,
    /// Parameters: ternary weights + embedding (+ an untied output head).
    pub n_params: u64,
    /// Bytes of weights one decoded token reads: every ternary tensor, the norms, the LM head,
    /// and one embedding row (an untied embedding is otherwise not read).
    pub weight_bytes_per_token: u64,
    /// Kernel variant name (`scalar`, `avx2`, …).
    pub kernels: &'static str,
    /// KV cache type (`f32`, `f16`).
    pub kv_type: &'static str,
}

/// Which test a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKind {
    /// Prompt processing: `n_prompt` tokens after `n_depth` (0: from an empty context).
    Prompt,
    /// Text generation: `n_gen` single-token forward passes after `n_depth` tokens.
    Gen,
}

/// One test at one thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRecord {
    /// Which test.
    pub kind: TestKind,
    /// Prompt tokens (0 for `tg`).
    pub n_prompt: usize,
    /// Generated tokens (0 for `pp`).
    pub n_gen: usize,
    /// Tokens in the context before the test ([`BenchOptions::n_depth`]).
    pub n_depth: usize,
    /// Threads.
    pub n_threads: usize,
    /// Wall time of every timed repetition, nanoseconds.
    pub samples_ns: Vec<u64>,
    /// With `--roofline`, `tg` only: the read bandwidth (bytes per second) of one probe round
    /// (the faster of its plain and prefetched passes) run right before each repetition
    /// (empty otherwise).
    pub probe_bps: Vec<f64>,
    /// When the test started (UTC, RFC 3339).
    pub test_time: String,
}

/// Mean and sample standard deviation (0 with fewer than two values), as llama-bench.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

impl BenchRecord {
    /// With paired probes: the median over repetitions of the bytes read per second
    /// (`weight_bytes_per_token` × that repetition's t/s) over the bandwidth of the probe round
    /// just before it.
    pub fn ceiling_share(&self, weight_bytes_per_token: u64) -> Option<f64> {
        if self.probe_bps.len() != self.samples_ns.len() || self.probe_bps.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self
            .samples_ts()
            .iter()
            .zip(&self.probe_bps)
            .map(|(ts, bw)| ts * weight_bytes_per_token as f64 / bw)
            .collect();
        v.sort_by(f64::total_cmp);
        let k = v.len();
        Some(if k % 2 == 1 {
            v[k / 2]
        } else {
            (v[k / 2 - 1] + v[k / 2]) / 2.0
        })
    }

    /// Tokens one repetition processes.
    pub fn n_tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }
    /// `pp128`, `tg128`; deep into a context as llama-bench writes it, `tg128 @ d2048`.
    pub fn name(&self) -> String {
        let test = match self.kind {
            TestKind::Prompt => format!("pp{}", self.n_prompt),
            TestKind::Gen => format!("tg{}", self.n_gen),
        };
        match self.n_depth {
            0 => test,
            d => format!("{test} @ d{d}"),
        }
    }
    /// Tokens per second of every repetition.
    pub fn samples_ts(&self) -> Vec<f64> {
        self.samples_ns
            .iter()
            .map(|&ns| self.n_tokens() as f64 * 1e9 / ns.max(1) as f64)
            .collect()
    }
    /// Mean and standard deviation of the repetitions' nanoseconds.
    pub fn ns_stats(&self) -> (f64, f64) {
        mean_sd(
            &self
                .samples_ns
                .iter()
                .map(|&n| n as f64)
                .collect::<Vec<_>>(),
        )
    }
    /// Mean and standard deviation of the repetitions' tokens per second.
    pub fn ts_stats(&self) -> (f64, f64) {
        mean_sd(&self.samples_ts())
    }
}

/// Read bandwidth at one thread count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    /// Threads.
    pub n_threads: usize,
    /// Best observed read bandwidth, bytes per second.
    pub bytes_per_s: f64,
}

/// Everything one `tern bench` run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Model-level columns.
    pub model: ModelSummary,
    /// Records in llama-bench order: every `pp` thread count, then every `tg`.
    pub records: Vec<BenchRecord>,
    /// Read bandwidth per thread count (empty unless `roofline`).
    pub bandwidth: Vec<Bandwidth>,
    /// Prefill batch (tokens per pass over the weights).
    pub n_batch: u32,
    /// Huge-page coverage of the weights and of the probe buffer (with `roofline`, where
    /// `/proc/self/smaps` is readable).
    pub huge_pages: Option<HugePages>,
    /// The CPU, as [`crate::cpu::cpu_info`] names it.
    pub cpu_info: String,
    /// The detected CPU features that select kernels ([`crate::cpu::feature_names`]).
    pub cpu_features: String,
    /// [`BenchOptions::use_mmap`].
    pub use_mmap: bool,
}

/// Describe `model` for the report.
pub fn model_summary(
    filename: &str,
    model: &Model<'_>,
    kernels: &KernelSet,
    kv: KvDtype,
) -> ModelSummary {
    let f = &model.file;
    let c = &f.header.config;
    let mut ternary_params = 0u64;
    let mut layouts: Vec<&str> = Vec::new();
    let mut total = 0u64;
    for e in f.entries() {
        total += e.len;
        if let Some(l) = Layout::from_id(e.layout)
            && l.info().ternary
        {
            ternary_params += e.rows as u64 * e.cols as u64;
            if !layouts.contains(&l.info().name) {
                layouts.push(l.info().name);
            }
        }
    }
    // e.g. `T2_128`, `T1_160`, or `T2_128+T1_160` for a model that mixes them
    let ternary_layout = if layouts.is_empty() {
        "none".to_string()
    } else {
        layouts.join("+")
    };
    let head = f.lm_head();
    let emb = f.global(TensorRole::TokenEmbd);
    let mut n_params = ternary_params;
    let mut per_token = total;
    if let Some(e) = emb {
        n_params += e.rows as u64 * e.cols as u64;
        if e.index != head.index {
            n_params += head.rows as u64 * head.cols as u64;
            // An untied embedding is read one row per token.
            per_token = per_token - e.len + e.len / e.rows.max(1) as u64;
        }
    }
    let arch = if c.sub_norms {
        "bitnet-b1.58"
    } else {
        "llama-1.58"
    };
    ModelSummary {
        filename: filename.to_string(),
        model_type: format!(
            "{arch} {} {ternary_layout}/{}",
            human_params(n_params),
            head.layout.info().name
        ),
        size_bytes: total,
        n_params,
        weight_bytes_per_token: per_token,
        kernels: kernels.variant.name(),
        kv_type: kv.name(),
    }
}

/// `2.4B`, `135M`, `33K`.
fn human_params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

/// Deterministic xorshift64* token stream.
struct TokenRng(u64);
impl TokenRng {
    fn next(&mut self, vocab: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % vocab
    }
}

/// `n` pseudo-random token ids, the first BOS when the tokenizer adds one.
fn bench_tokens(model: &Model<'_>, n: usize, seed: u64) -> Vec<u32> {
    let h = &model.file.header;
    let vocab = h.config.vocab_size.max(1);
    let mut rng = TokenRng(seed | 1);
    let mut t: Vec<u32> = (0..n).map(|_| rng.next(vocab)).collect();
    if let (Some(first), true, Some(bos)) = (t.first_mut(), h.tokenizer.add_bos, h.tokenizer.bos) {
        *first = bos;
    }
    t
}

/// Evaluate `tokens` as a prompt (from the session's current position), batched.
fn prefill(s: &mut Session<'_, '_>, tokens: &[u32]) -> Result<()> {
    black_box(s.prefill(tokens).map_err(|e| anyhow!("{e}"))?);
    Ok(())
}

/// Decode `tokens` one forward pass each.
fn decode(s: &mut Session<'_, '_>, tokens: &[u32]) -> Result<()> {
    for &t in tokens {
        black_box(s.forward(t).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(())
}

/// The current UTC time as RFC 3339 (`2025-01-31T12:34:56Z`).
pub fn utc_now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Run the `pp` and `tg` tests of `opts` on `model`. `progress` receives one line per
/// finished test.
///
/// # Errors
/// No thread counts, a test longer than the model's context, core errors.
pub fn run_bench(
    filename: &str,
    model: &Model<'_>,
    kernels: &'static KernelSet,
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    if opts.threads.is_empty() || opts.threads.contains(&0) {
        bail!("give one or more thread counts ≥ 1 with -t");
    }
    let c = &model.file.header.config;
    let ctx = opts.n_depth + opts.n_prompt.max(opts.n_gen).max(1);
    if ctx > c.max_ctx as usize {
        bail!(
            "a test of {} tokens after a depth of {} is longer than the model's context of {} tokens",
            opts.n_prompt.max(opts.n_gen),
            opts.n_depth,
            c.max_ctx
        );
    }
    let run = RunOptions {
        batch: opts.batch.max(1),
        ..RunOptions::new(ctx as u32, opts.kv)
    };
    let plan = MemoryPlan::new(c, 0, run).map_err(|e| anyhow!("{e}"))?;
    let mut arena = Arena::new(plan.arena_bytes);
    let prompt = bench_tokens(model, opts.n_prompt, 0x5EED_0001);
    let gen_ids = bench_tokens(model, opts.n_gen, 0x5EED_0002);
    let depth_ids = bench_tokens(model, opts.n_depth, 0x5EED_0003);
    let mut records = Vec::new();
    let mut bandwidth = Vec::new();
    let bw_buf = match opts.roofline {
        true => Some(bandwidth_buffer(opts.roofline_bytes)?),
        false => None,
    };

    for &t in &opts.threads {
        let pool = ThreadPool::new(t);
        let mut s = Session::new(model, kernels, &pool, run, arena.bytes_mut())
            .map_err(|e| anyhow!("{e}"))?;
        let tests = [
            (TestKind::Prompt, &prompt, opts.n_prompt.min(32)),
            (TestKind::Gen, &gen_ids, opts.n_gen.min(1)),
        ];
        for (kind, ids, warm) in tests {
            if ids.is_empty() {
                continue;
            }
            // untimed: an empty context, then the depth's tokens
            let prepare = |s: &mut Session<'_, '_>| -> Result<()> {
                s.reset();
                match depth_ids.is_empty() {
                    true => Ok(()),
                    false => prefill(s, &depth_ids),
                }
            };
            let step = |s: &mut Session<'_, '_>, ids: &[u32]| -> Result<()> {
                match kind {
                    TestKind::Prompt => prefill(s, ids),
                    TestKind::Gen => decode(s, ids),
                }
            };
            let test_time = utc_now_rfc3339();
            prepare(&mut s)?;
            step(&mut s, &ids[..warm])?;
            let mut samples_ns = Vec::with_capacity(opts.reps);
            let mut probe_bps = Vec::new();
            for _ in 0..opts.reps {
                // the depth first, so that the probe runs right before the timed test
                prepare(&mut s)?;
                if let (TestKind::Gen, Some(buf)) = (kind, bw_buf.as_deref()) {
                    probe_bps.push(measure_read_bandwidth(&pool, buf, 1));
                }
                let t0 = Instant::now();
                step(&mut s, ids)?;
                samples_ns.push(t0.elapsed().as_nanos() as u64);
            }
            let (n_prompt, n_gen) = match kind {
                TestKind::Prompt => (ids.len(), 0),
                TestKind::Gen => (0, ids.len()),
            };
            let r = BenchRecord {
                kind,
                n_prompt,
                n_gen,
                n_depth: opts.n_depth,
                n_threads: t,
                samples_ns,
                probe_bps,
                test_time,
            };
            let (m, sd) = r.ts_stats();
            progress(&format!("{} threads {t}: {m:.2} ± {sd:.2} t/s", r.name()));
            records.push(r);
        }
        if let Some(buf) = bw_buf.as_deref() {
            // the tg test's paired probes, else (no tg test) a best of 5
            let paired = records
                .last()
                .filter(|r: &&BenchRecord| r.n_threads == t && !r.probe_bps.is_empty())
                .map(|r| mean_sd(&r.probe_bps).0);
            let bps = paired.unwrap_or_else(|| measure_read_bandwidth(&pool, buf, 5));
            progress(&format!(
                "read bandwidth threads {t}: {:.2} GB/s",
                bps / 1e9
            ));
            bandwidth.push(Bandwidth {
                n_threads: t,
                bytes_per_s: bps,
            });
        }
    }
    let huge_pages = bw_buf.as_deref().and_then(|buf| {
        Some(HugePages {
            weights_bytes: model.bytes.len() as u64,
            weights_huge_bytes: huge_page_bytes(model.bytes)?,
            probe_bytes: buf.len() as u64,
            probe_huge_bytes: huge_page_bytes(buf)?,
        })
    });
    // llama-bench order: all pp rows, then all tg rows (stable within a kind).
    records.sort_by_key(|r| r.kind == TestKind::Gen);
    let model = model_summary(filename, model, kernels, opts.kv);
    Ok(BenchReport {
        model,
        records,
        bandwidth,
        n_batch: run.batch,
        huge_pages,
        cpu_info: crate::cpu::cpu_info(),
        cpu_features: crate::cpu::feature_names(crate::cpu::detect()),
        use_mmap: opts.use_mmap,
    })
}

impl BenchReport {
    /// A JSON array of records with llama-bench's field names (`cpu_info` among them; how the
    /// weights are held both as older llama-bench's `use_mmap` and as newer ones' `load_mode`,
    /// `mmap` or `none`) plus Tern's (`kernels`, `cpu_features`, `kv_type`,
    /// `weight_bytes_per_token`, and with a roofline `mem_bw_gbs`, `roofline_ts`,
    /// `roofline_share` and, where `/proc/self/smaps` tells, `model_file_bytes`,
    /// `weights_huge_page_bytes` and `probe_huge_page_bytes` ([`HugePages`])).
    pub fn to_json(&self) -> Value {
        let m = &self.model;
        let recs = self
            .records
            .iter()
            .map(|r| {
                let (avg_ns, sd_ns) = r.ns_stats();
                let (avg_ts, sd_ts) = r.ts_stats();
                let mut v = json!({
                    "model_filename": m.filename,
                    "model_type": m.model_type,
                    "model_size": m.size_bytes,
                    "model_n_params": m.n_params,
                    "n_prompt": r.n_prompt,
                    "n_gen": r.n_gen,
                    "n_depth": r.n_depth,
                    "n_batch": self.n_batch,
                    "n_threads": r.n_threads,
                    "use_mmap": self.use_mmap,
                    "load_mode": if self.use_mmap { "mmap" } else { "none" },
                    "test_time": r.test_time,
                    "avg_ns": avg_ns.round() as u64,
                    "stddev_ns": sd_ns.round() as u64,
                    "avg_ts": avg_ts,
                    "stddev_ts": sd_ts,
                    "samples_ns": r.samples_ns,
                    "samples_ts": r.samples_ts(),
                    "cpu_info": self.cpu_info,
                    "cpu_features": self.cpu_features,
                    "kernels": m.kernels,
                    "kv_type": m.kv_type,
                    "weight_bytes_per_token": m.weight_bytes_per_token,
                });
                if let Some(bw) = self.bandwidth_at(r.n_threads) {
                    v["mem_bw_gbs"] = json!(bw / 1e9);
                    v["roofline_ts"] = json!(bw / m.weight_bytes_per_token as f64);
                }
                if let Some(share) = r.ceiling_share(m.weight_bytes_per_token) {
                    v["roofline_share"] = json!(share);
                }
                if let Some(h) = self.huge_pages {
                    v["model_file_bytes"] = json!(h.weights_bytes);
                    v["weights_huge_page_bytes"] = json!(h.weights_huge_bytes);
                    v["probe_huge_page_bytes"] = json!(h.probe_huge_bytes);
                }
                v
            })
            .collect();
        Value::Array(recs)
    }

    fn bandwidth_at(&self, threads: usize) -> Option<f64> {
        self.bandwidth
            .iter()
            .find(|b| b.n_threads == threads)
            .map(|b| b.bytes_per_s)
    }

    /// The llama-bench-like markdown table (the model column is [`ModelSummary::model_type`];
    /// the file name is in the JSON).
    pub fn markdown(&self) -> String {
        let m = &self.model;
        let rows: Vec<[String; 7]> = self
            .records
            .iter()
            .map(|r| {
                let (avg, sd) = r.ts_stats();
                [
                    m.model_type.clone(),
                    format!("{:.2} GiB", m.size_bytes as f64 / (1u64 << 30) as f64),
                    if m.n_params >= 100_000_000 {
                        format!("{:.2} B", m.n_params as f64 / 1e9)
                    } else {
                        format!("{:.2} M", m.n_params as f64 / 1e6)
                    },
                    m.kernels.to_string(),
                    r.n_threads.to_string(),
                    r.name(),
                    format!("{avg:.2} ± {sd:.2}"),
                ]
            })
            .collect();
        let head = [
            "model", "size", "params", "kernel", "threads", "test", "t/s",
        ];
        let right = [false, true, true, false, true, true, true];
        table(&head, &right, &rows)
    }

    /// Decode roofline per thread count: read bandwidth, weight bytes per token, the ceiling
    /// tokens per second and measured `tg` as a share of it. Empty without bandwidth data.
    pub fn roofline(&self) -> String {
        let m = &self.model;
        let mut rows = Vec::new();
        for r in self.records.iter().filter(|r| r.kind == TestKind::Gen) {
            let Some(bw) = self.bandwidth_at(r.n_threads) else {
                continue;
            };
            let ceiling = bw / m.weight_bytes_per_token as f64;
            let (avg, _) = r.ts_stats();
            let share = r
                .ceiling_share(m.weight_bytes_per_token)
                .unwrap_or(avg / ceiling);
            rows.push([
                r.n_threads.to_string(),
                format!("{:.2}", bw / 1e9),
                format!("{:.1}", m.weight_bytes_per_token as f64 / 1e6),
                format!("{ceiling:.2}"),
                r.name(),
                format!("{avg:.2}"),
                format!("{:.0} %", 100.0 * share),
            ]);
        }
        if rows.is_empty() {
            return String::new();
        }
        let head = [
            "threads",
            "read GB/s",
            "MB/token",
            "ceiling t/s",
            "test",
            "t/s",
            "of ceiling",
        ];
        table(&head, &[true; 7], &rows)
    }
}

fn table<const N: usize>(head: &[&str; N], right: &[bool; N], rows: &[[String; N]]) -> String {
    let mut w = head.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if right[i] {
                s += &format!(" {}{c} |", " ".repeat(pad));
            } else {
                s += &format!(" {c}{} |", " ".repeat(pad));
            }
        }
        s + "\n"
    };
    let mut out = line(&head.map(String::from));
    out += "|";
    for i in 0..N {
        let dashes = "-".repeat(w[i].max(3) - 1);
        out += &if right[i] {
            format!(" {dashes}: |")
        } else {
            format!(" {dashes}- |")
        };
    }
    out += "\n";
    for r in rows {
        out += &line(r);
    }
    out
}

/// `tern bench`: open `model` (packing GGUF/safetensors into the cache like `tern run`), run
/// the tests and print the markdown table (and roofline) or, with `json`, the JSON array.
///
/// # Errors
/// Opening the model, selecting kernels, and [`run_bench`]'s errors.
pub fn cli(model: &Path, pack: &PackOptions, opts: &BenchOptions, json: bool) -> Result<()> {
    let path = crate::model_file::resolve(model, pack, json)?;
    let mut mm = crate::model_file::MappedModel::map(&path)?;
    if !opts.use_mmap {
        mm.read_into_memory()?;
    }
    let m = mm.model(false)?;
    let kernels = crate::cpu::kernels()?;
    let name = mm.path.display().to_string();
    let mut progress = |s: &str| eprintln!("{s}");
    let report = run_bench(&name, &m, kernels, opts, &mut progress)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).map_err(|e| anyhow!("{e}"))?
        );
    } else {
        println!(
            "cpu: {}; features: {}; kernels: {}; weights: {}\n",
            report.cpu_info,
            report.cpu_features,
            report.model.kernels,
            if report.use_mmap {
                "mapped (mmap)"
            } else {
                "read into memory (--no-mmap)"
            }
        );
        print!("{}", report.markdown());
        let roof = report.roofline();
        if !roof.is_empty() {
            println!("\ndecode roofline (ceiling = read bandwidth / weight bytes per token):");
            print!("{roof}");
            if let Some(h) = report.huge_pages {
                println!("{}", h.summary());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_hand_values() {
        assert_eq!(mean_sd(&[]), (0.0, 0.0));
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn record_rates() {
        let r = BenchRecord {
            kind: TestKind::Gen,
            n_prompt: 0,
            n_gen: 4,
            n_depth: 0,
            n_threads: 1,
            samples_ns: vec![1_000_000_000, 2_000_000_000],
            probe_bps: vec![8e9, 2e9],
            test_time: String::new(),
        };
        assert_eq!(r.name(), "tg4");
        let deep = BenchRecord {
            n_depth: 2048,
            ..r.clone()
        };
        assert_eq!(deep.name(), "tg4 @ d2048");
        assert_eq!(r.samples_ts(), vec![4.0, 2.0]);
        // 1e9 bytes per token: 4e9 B/s against 8e9, 2e9 against 2e9 -> median of 0.5 and 1.0
        assert_eq!(r.ceiling_share(1_000_000_000), Some(0.75));
        assert_eq!(r.ts_stats().0, 3.0);
        assert_eq!(r.ns_stats().0, 1.5e9);
    }

    #[test]
    fn rfc3339_shape() {
        let t = utc_now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T");
    }
}
