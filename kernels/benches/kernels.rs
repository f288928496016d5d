//! Kernel micro-benchmarks: ternary matvec (decode) and matmul (prefill, [`MATMUL_TOKENS`]
//! tokens) at BitNet b1.58 2B4T shapes in both ternary layouts (`T2_128`, `T1_160`), and the
//! LM head (F16 row-block dots; Q4_0 and Q4_0_R8 matvecs and Q8_0 row dots on Q8_0-quantized
//! activations), for every kernel variant this CPU runs. Throughput is bytes of
//! *weights* read per call (criterion `Throughput::Bytes`), so criterion reports GB/s
//! comparable with the machine's memory bandwidth (the matvec weights of one call fit in the
//! last-level cache; the LM-head slice does not). After criterion, a short best-of-N timing
//! prints each variant's GB/s, GMAC/s (multiply-accumulates of weights × tokens per second)
//! and speed-up over scalar (criterion has no cross-benchmark ratio).
//!
//! Run: `cargo bench -p tern-kernels` (a few seconds per benchmark); filter with
//! `cargo bench -p tern-kernels -- matvec_t1_i8/avx2`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use tern_kernels::layout::TernaryLayout;
use tern_kernels::{CpuFeatures, KernelSet, KernelVariant, select_variant};

/// Ternary matvec shapes of one 2B4T layer, `(rows, cols)`: Q and O (and K/V at 640 rows),
/// gate and up, down.
const MATVEC_SHAPES: [(usize, usize); 3] = [(2560, 2560), (6912, 2560), (2560, 6912)];

/// Tokens per matmul call: the default prefill batch (64; one thread takes all of it at 1
/// thread), which the lookup-table kernels take in one pass over the weights.
const MATMUL_TOKENS: usize = 64;

/// LM-head slice `(rows, cols)`: 32768 of the 128256 vocabulary rows of 2560 values (168 MB in
/// F16, 47 MB in Q4_0, 89 MB in Q8_0: above the last-level cache, so it streams from DRAM as
/// the real head does).
const HEAD_ROWS: usize = 32768;
const HEAD_COLS: usize = 2560;

/// Rows of the quantized heads' in-cache case: 256 rows of 2560 (369 KB in Q4_0, inside a
/// 512 KiB L2), which shows the kernels' compute rate where the DRAM slice shows the memory's.
const HEAD_CACHE_ROWS: usize = 256;

/// Rows of the F16 heads' in-cache case: 128 rows of 2560 (655 KB, inside a 1 MiB L2; a
/// multiple of the `F16_R8` group).
const HEAD_F16_CACHE_ROWS: usize = 128;

fn features() -> CpuFeatures {
    #[allow(unused_mut)]
    let mut f = CpuFeatures::default();
    #[cfg(target_arch = "x86_64")]
    {
        f.avx2 = std::arch::is_x86_feature_detected!("avx2");
        f.f16c = std::arch::is_x86_feature_detected!("f16c");
        f.avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl");
        f.avx512vnni = std::arch::is_x86_feature_detected!("avx512vnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.neon = std::arch::is_aarch64_feature_detected!("neon");
        f.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    }
    f
}

/// Every variant this CPU runs, scalar first, deduplicated (unported variants point at scalar).
fn variants() -> Vec<&'static KernelSet> {
    let f = features();
    let mut out: Vec<&'static KernelSet> = Vec::new();
    for v in KernelVariant::ALL.iter().rev() {
        // SAFETY: `f` comes from runtime feature detection on this CPU.
        if let Some(k) = unsafe { select_variant(*v, f) }
            && k.variant == *v
            && !out.iter().any(|o| o.variant == k.variant)
        {
            out.push(k);
        }
    }
    out
}

/// Deterministic xorshift64* stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Random ternary weights `(rows, cols)` in layout `l` (about a third zeros).
fn ternary_matrix(l: TernaryLayout, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = l.row_bytes(cols);
    let mut w = vec![0u8; rows * rb];
    let mut row = vec![0i8; cols];
    for r in 0..rows {
        for v in row.iter_mut() {
            *v = (rng.next() % 3) as i8 - 1;
        }
        l.encode_row(&row, &mut w[r * rb..(r + 1) * rb]);
    }
    w
}

/// Benchmark name of a layout's kernels (`t2`, `t1`).
fn short(l: TernaryLayout) -> &'static str {
    match l {
        TernaryLayout::T2_128 => "t2",
        TernaryLayout::T1_160 => "t1",
    }
}

fn int8_vec(n: usize, rng: &mut Rng) -> Vec<i8> {
    (0..n).map(|_| rng.next() as i8).collect()
}

/// F16 bytes of `n` values in about [-0.05, 0.05] (embedding-like magnitudes).
fn f16_bytes(n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 2);
    for _ in 0..n {
        let v = ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        out.extend_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
    }
    out
}

/// Q4_0 (`bb = 18`) or Q8_0 (`bb = 34`) head rows of `cols` values: f16 scales about 0.002
/// (embedding-like magnitudes) and random codes.
fn quant_head(rows: usize, cols: usize, bb: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * cols / 32 * bb);
    for _ in 0..rows * cols / 32 {
        let d = 0.001 + (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 0.002;
        out.extend_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
        out.extend((0..bb - 2).map(|_| rng.next() as u8));
    }
    out
}

/// A quantized LM head's storage.
#[derive(Clone, Copy, PartialEq)]
enum QuantHead {
    Q4_0,
    Q4_0R8,
    Q8_0,
}

/// The quantized LM heads as the forward pass runs them on activations quantized to Q8_0
/// once per token (`q`, `d`: every variant's quantizer gives the same bytes): the Q4_0 and
/// Q4_0_R8 heads as one matvec call, or one Q8_0 row dot per row.
fn lm_head_quant(
    k: &KernelSet,
    h: QuantHead,
    head: &[u8],
    (q, d): (&[i8], &[f32]),
    out: &mut [f32],
) {
    match h {
        QuantHead::Q4_0 => (k.matvec_q4_0_q8_0)(head, q, d, out),
        QuantHead::Q4_0R8 => (k.matvec_q4_0_r8_q8_0)(head, q, d, out),
        QuantHead::Q8_0 => {
            let rb = q.len() / 32 * 34;
            for (r, o) in out.iter_mut().enumerate() {
                *o = (k.dot_q8_0)(&head[r * rb..(r + 1) * rb], q, d);
            }
        }
    }
}

/// The F16 LM head as the forward pass runs it: one row-block dot over all rows, of
/// row-major F16 rows or (`r8`) of the same rows stored as `F16_R8`.
fn lm_head(k: &KernelSet, r8: bool, head: &[u8], x: &[f32], out: &mut [f32]) {
    if r8 {
        (k.dot_panels_f16)(head, x, out);
    } else {
        (k.dot_rows_f16)(head, x.len() * 2, x, out);
    }
}

/// One ternary case: `w: (rows, cols)` in layout `l`, `x: (MATMUL_TOKENS, cols)` (the matvec
/// uses the first token).
struct MatvecCase {
    l: TernaryLayout,
    rows: usize,
    cols: usize,
    w: Vec<u8>,
    x: Vec<i8>,
}

struct Inputs {
    matvec: Vec<MatvecCase>,
    head: Vec<u8>,
    /// `head` in `F16_R8` order.
    head_r8: Vec<u8>,
    /// The same head shape in Q4_0 and Q8_0 blocks.
    head_q4: Vec<u8>,
    /// The Q4_0 head interleaved as `Q4_0_R8`.
    head_q4r8: Vec<u8>,
    head_q8: Vec<u8>,
    hx: Vec<f32>,
    /// `hx` quantized to Q8_0: int8 values and per-32 scales.
    hq: (Vec<i8>, Vec<f32>),
}

fn inputs() -> Inputs {
    let mut rng = Rng(0x7E57_5EED);
    let mut matvec = Vec::new();
    for &(rows, cols) in &MATVEC_SHAPES {
        for l in TernaryLayout::ALL {
            matvec.push(MatvecCase {
                l,
                rows,
                cols,
                w: ternary_matrix(l, rows, cols, &mut rng),
                x: int8_vec(MATMUL_TOKENS * cols, &mut rng),
            });
        }
    }
    let head = f16_bytes(HEAD_ROWS * HEAD_COLS, &mut rng);
    let mut head_r8 = vec![0u8; head.len()];
    tern_kernels::layout::f16_r8_interleave(&head, HEAD_ROWS, HEAD_COLS, &mut head_r8);
    let head_q4 = quant_head(HEAD_ROWS, HEAD_COLS, 18, &mut rng);
    let mut head_q4r8 = vec![0u8; head_q4.len()];
    tern_kernels::layout::q4_0_r8_interleave(&head_q4, HEAD_ROWS, HEAD_COLS, &mut head_q4r8);
    let head_q8 = quant_head(HEAD_ROWS, HEAD_COLS, 34, &mut rng);
    let hx: Vec<f32> = (0..HEAD_COLS)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut hq = (vec![0i8; HEAD_COLS], vec![0f32; HEAD_COLS / 32]);
    (tern_kernels::select_scalar().quantize_q8_0)(&hx, &mut hq.0, &mut hq.1);
    Inputs {
        matvec,
        head,
        head_r8,
        head_q4,
        head_q4r8,
        head_q8,
        hx,
        hq,
    }
}

fn criterion_benches(c: &mut Criterion, inp: &Inputs, ks: &[&'static KernelSet]) {
    for l in TernaryLayout::ALL {
        let mut g = c.benchmark_group(format!("matvec_{}_i8", short(l)));
        for m in inp.matvec.iter().filter(|m| m.l == l) {
            g.throughput(Throughput::Bytes(m.w.len() as u64));
            let mut out = vec![0i32; m.rows];
            let x = &m.x[..m.cols];
            for k in ks {
                let mv = k.matvec_ternary(l);
                g.bench_with_input(
                    BenchmarkId::new(k.variant.name(), format!("{}x{}", m.rows, m.cols)),
                    &(),
                    |b, _| b.iter(|| mv(black_box(&m.w), m.cols, black_box(x), &mut out)),
                );
            }
        }
        g.finish();
        let mut g = c.benchmark_group(format!("matmul_{}_i8", short(l)));
        for m in inp.matvec.iter().filter(|m| m.l == l) {
            g.throughput(Throughput::Bytes(m.w.len() as u64));
            let mut out = vec![0i32; m.rows * MATMUL_TOKENS];
            for k in ks {
                let mm = k.matmul_ternary(l);
                g.bench_with_input(
                    BenchmarkId::new(
                        k.variant.name(),
                        format!("{}x{}x{MATMUL_TOKENS}", m.rows, m.cols),
                    ),
                    &(),
                    |b, _| {
                        b.iter(|| {
                            mm(
                                black_box(&m.w),
                                m.cols,
                                black_box(&m.x),
                                MATMUL_TOKENS,
                                &mut out,
                            )
                        })
                    },
                );
            }
        }
        g.finish();
    }

    let mut g = c.benchmark_group("lm_head_f16");
    let mut out = vec![0f32; HEAD_ROWS];
    for rows in [HEAD_ROWS, HEAD_F16_CACHE_ROWS] {
        let out = &mut out[..rows];
        for k in ks {
            for (r8, head, l) in [(false, &inp.head, "F16"), (true, &inp.head_r8, "F16_R8")] {
                let head = &head[..head.len() / HEAD_ROWS * rows];
                g.throughput(Throughput::Bytes(head.len() as u64));
                g.bench_with_input(
                    BenchmarkId::new(k.variant.name(), format!("{l} {rows}x{HEAD_COLS}")),
                    &(),
                    |b, _| b.iter(|| lm_head(k, r8, black_box(head), black_box(&inp.hx), out)),
                );
            }
        }
    }
    g.finish();
    for (name, h, head) in [
        ("lm_head_q4_0", QuantHead::Q4_0, &inp.head_q4),
        ("lm_head_q4_0_r8", QuantHead::Q4_0R8, &inp.head_q4r8),
        ("lm_head_q8_0", QuantHead::Q8_0, &inp.head_q8),
    ] {
        let mut g = c.benchmark_group(name);
        for rows in [HEAD_ROWS, HEAD_CACHE_ROWS] {
            let head = &head[..head.len() / HEAD_ROWS * rows];
            let out = &mut out[..rows];
            g.throughput(Throughput::Bytes(head.len() as u64));
            for k in ks {
                g.bench_with_input(
                    BenchmarkId::new(k.variant.name(), format!("{rows}x{HEAD_COLS}")),
                    &(),
                    |b, _| {
                        b.iter(|| lm_head_quant(k, h, black_box(head), (&inp.hq.0, &inp.hq.1), out))
                    },
                );
            }
        }
        g.finish();
    }
}

/// Best-of-`reps` seconds of `f`.
fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// One line per (benchmark, variant): GB/s of weights, GMAC/s and the ratio to scalar.
fn ratio_table(inp: &Inputs, ks: &[&'static KernelSet]) {
    println!("\nspeed-up over scalar (best of 5, GB/s of weights read, GMAC/s):");
    println!(
        "{:<32} {:<11} {:>9} {:>9} {:>8}",
        "benchmark", "variant", "GB/s", "GMAC/s", "x scalar"
    );
    let line = |name: String, bytes: usize, macs: usize, secs: &[f64]| {
        for (k, s) in ks.iter().zip(secs) {
            println!(
                "{name:<32} {:<11} {:>9.2} {:>9.2} {:>8.2}",
                k.variant.name(),
                bytes as f64 / s / 1e9,
                macs as f64 / s / 1e9,
                secs[0] / s
            );
        }
    };
    for m in &inp.matvec {
        let mut out = vec![0i32; m.rows];
        let secs: Vec<f64> = ks
            .iter()
            .map(|k| {
                let mv = k.matvec_ternary(m.l);
                best_secs(5, || {
                    mv(black_box(&m.w), m.cols, black_box(&m.x[..m.cols]), &mut out)
                })
            })
            .collect();
        let name = format!("matvec_{}_i8 {}x{}", short(m.l), m.rows, m.cols);
        line(name, m.w.len(), m.rows * m.cols, &secs);
    }
    for m in &inp.matvec {
        let mut out = vec![0i32; m.rows * MATMUL_TOKENS];
        let secs: Vec<f64> = ks
            .iter()
            .map(|k| {
                let mm = k.matmul_ternary(m.l);
                best_secs(
                    if k.variant == KernelVariant::Scalar {
                        1
                    } else {
                        5
                    },
                    || {
                        mm(
                            black_box(&m.w),
                            m.cols,
                            black_box(&m.x),
                            MATMUL_TOKENS,
                            &mut out,
                        )
                    },
                )
            })
            .collect();
        let name = format!(
            "matmul_{}_i8 {}x{}x{MATMUL_TOKENS}",
            short(m.l),
            m.rows,
            m.cols
        );
        line(name, m.w.len(), m.rows * m.cols * MATMUL_TOKENS, &secs);
    }
    let mut out = vec![0f32; HEAD_ROWS];
    for (r8, head, name) in [
        (false, &inp.head, "lm_head_f16"),
        (true, &inp.head_r8, "lm_head_f16_r8"),
    ] {
        let secs: Vec<f64> = ks
            .iter()
            .map(|k| {
                best_secs(3, || {
                    lm_head(k, r8, black_box(head), black_box(&inp.hx), &mut out)
                })
            })
            .collect();
        line(
            format!("{name} {HEAD_ROWS}x{HEAD_COLS}"),
            head.len(),
            HEAD_ROWS * HEAD_COLS,
            &secs,
        );
    }
    for (name, h, head) in [
        ("lm_head_q4_0", QuantHead::Q4_0, &inp.head_q4),
        ("lm_head_q4_0_r8", QuantHead::Q4_0R8, &inp.head_q4r8),
        ("lm_head_q8_0", QuantHead::Q8_0, &inp.head_q8),
    ] {
        for (rows, reps) in [(HEAD_ROWS, 3), (HEAD_CACHE_ROWS, 200)] {
            let head = &head[..head.len() / HEAD_ROWS * rows];
            let out = &mut out[..rows];
            let secs: Vec<f64> = ks
                .iter()
                .map(|k| {
                    best_secs(reps, || {
                        lm_head_quant(k, h, black_box(head), (&inp.hq.0, &inp.hq.1), out)
                    })
                })
                .collect();
            line(
                format!("{name} {rows}x{HEAD_COLS}"),
                head.len(),
                rows * HEAD_COLS,
                &secs,
            );
        }
    }
}

fn main() {
    let ks = variants();
    let inp = inputs();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    criterion_benches(&mut c, &inp, &ks);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the extra timing there.
    if std::env::args().any(|a| a == "--bench") {
        ratio_table(&inp, &ks);
    }
}
