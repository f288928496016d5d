//! `tern bench` statistics and JSON shape on a tiny synthetic model (no timing is asserted:
//! speed is never a test condition). Needs `TERN_FIXTURES` for the vocabulary (skipped with a
//! message when unset).

use std::path::PathBuf;

use tern_core::format::Model;
use tern_core::plan::KvDtype;
use tern_linux::bench::{BenchOptions, TestKind, run_bench};
use tern_pack::pack::write_tern_atomic;
use tern_pack::synth::{SynthShape, synth_model};

/// The fixtures (`TERN_FIXTURES`), or `None` after a skip message; see [`tern_tests::fixtures`].
fn fixtures() -> Option<PathBuf> {
    tern_tests::fixtures("bench_cli")
}

#[test]
fn bench_json_records_have_llama_bench_shape() {
    let Some(fx) = fixtures() else { return };
    let vocab = fx.join("tokenizer/ggml-vocab-llama-bpe.gguf");
    let m = synth_model(SynthShape::Tiny, 7, &vocab).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.tern");
    write_tern_atomic(&m, &path, |_| {}).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let kernels = tern_linux::cpu::kernels().unwrap();
    let opts = BenchOptions {
        n_prompt: 8,
        n_gen: 4,
        n_depth: 0,
        threads: vec![1, 2],
        reps: 2,
        kv: KvDtype::F16,
        batch: 4,
        roofline: true,
        roofline_bytes: 1 << 20,
        use_mmap: false,
    };
    let mut lines = Vec::new();
    let name = path.display().to_string();
    let report = run_bench(&name, &model, kernels, &opts, &mut |s| {
        lines.push(s.to_string())
    })
    .unwrap();
    // Two tests (pp, tg) × two thread counts, pp rows first; one progress line per test and
    // one per bandwidth measurement.
    assert_eq!(lines.len(), 6, "{lines:?}");
    let kinds: Vec<_> = report
        .records
        .iter()
        .map(|r| (r.kind, r.n_threads))
        .collect();
    assert_eq!(
        kinds,
        [
            (TestKind::Prompt, 1),
            (TestKind::Prompt, 2),
            (TestKind::Gen, 1),
            (TestKind::Gen, 2)
        ]
    );
    assert_eq!(report.bandwidth.len(), 2);

    let json = report.to_json();
    let recs = json.as_array().expect("a JSON array");
    assert_eq!(recs.len(), 4);
    let c = &model.file.header.config;
    for (i, r) in recs.iter().enumerate() {
        for f in [
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "n_prompt",
            "n_gen",
            "n_depth",
            "n_threads",
            "use_mmap",
            "load_mode",
            "n_batch",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ns",
            "samples_ts",
            "test_time",
            "kernels",
            "cpu_info",
            "cpu_features",
            "kv_type",
            "weight_bytes_per_token",
            "mem_bw_gbs",
            "roofline_ts",
        ] {
            assert!(r.get(f).is_some(), "record {i} lacks {f}: {r}");
        }
        let pp = i < 2;
        assert_eq!(r["n_prompt"], if pp { 8 } else { 0 });
        assert_eq!(r["n_gen"], if pp { 0 } else { 4 });
        assert_eq!(r["n_depth"], 0);
        assert_eq!(r["n_threads"], if i % 2 == 0 { 1 } else { 2 });
        assert_eq!(r["model_filename"], name.as_str());
        assert_eq!(r["model_size"], model.file.weight_bytes());
        assert_eq!(r["kv_type"], "f16");
        assert_eq!(r["n_batch"], 4);
        assert_eq!(r["use_mmap"], false, "the test reads the file into a Vec");
        assert_eq!(r["load_mode"], "none");
        assert_eq!(r["kernels"], kernels.variant.name());
        assert_eq!(r["cpu_info"], tern_linux::cpu::cpu_info().as_str());
        assert_ne!(r["cpu_info"], "unknown", "/proc/cpuinfo names this CPU");
        // Ternary parameters of 4 layers plus the tied embedding.
        let per_layer = (c.q_dim() * 256 * 2 + c.kv_dim() * 256 * 2 + 768 * 256 * 3) as u64;
        assert_eq!(
            r["model_n_params"],
            4 * per_layer + c.vocab_size as u64 * 256
        );
        // Tied head: every tensor is read per token.
        assert_eq!(r["weight_bytes_per_token"], r["model_size"]);
        let ns: Vec<u64> = r["samples_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let ts: Vec<f64> = r["samples_ts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!((ns.len(), ts.len()), (2, 2));
        // Statistics are consistent with the samples (whatever the speed).
        let n_tok = if pp { 8.0 } else { 4.0 };
        for (n, t) in ns.iter().zip(&ts) {
            assert!((t - n_tok * 1e9 / *n as f64).abs() <= 1e-9 * t);
        }
        let mean_ts = (ts[0] + ts[1]) / 2.0;
        let sd_ts = (ts[0] - ts[1]).abs() / 2f64.sqrt();
        assert!((r["avg_ts"].as_f64().unwrap() - mean_ts).abs() <= 1e-9 * mean_ts);
        assert!((r["stddev_ts"].as_f64().unwrap() - sd_ts).abs() <= 1e-9 * mean_ts);
        assert_eq!(r["avg_ns"], (ns[0] + ns[1]).div_ceil(2));
        let t = r["test_time"].as_str().unwrap();
        assert!(t.len() == 20 && t.ends_with('Z'), "{t}");
        // Linux: the huge-page coverage of the model bytes and of the 1 MiB probe buffer
        assert_eq!(r["model_file_bytes"], bytes.len() as u64, "{r}");
        assert!(r["weights_huge_page_bytes"].as_u64().unwrap() <= bytes.len() as u64);
        assert!(r["probe_huge_page_bytes"].as_u64().unwrap() <= 1 << 20);
    }
    let h = report
        .huge_pages
        .expect("/proc/self/smaps is readable on Linux");
    assert_eq!(
        (h.weights_bytes, h.probe_bytes),
        (bytes.len() as u64, 1 << 20)
    );
    assert!(
        h.summary().starts_with("in huge pages: weights "),
        "{}",
        h.summary()
    );

    let table = report.markdown();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2 + 4, "{table}");
    assert!(rows[0].starts_with("| model") && rows[0].ends_with(" t/s |"));
    assert!(rows[2].contains("pp8") && rows[5].contains("tg4"));
    assert!(rows[2].contains(" ± "));
    assert_eq!(report.roofline().lines().count(), 2 + 2);
}

/// `n_depth` (llama-bench's `-d`, on the bundled model: no fixtures): the records and the JSON
/// carry it, the tests are named as llama-bench names them (`pp3 @ d6`), and the depth counts
/// against the context: a test that fits only with the depth counted runs, one past the
/// context is refused with a message naming the depth.
#[test]
fn bench_depth_is_named_and_counts_against_the_context() {
    let model = Model::parse(tern_linux::model_file::BUNDLED_MODEL).unwrap();
    let kernels = tern_linux::cpu::kernels().unwrap();
    let max = model.file.header.config.max_ctx as usize;
    let opts = BenchOptions {
        n_prompt: 3,
        n_gen: 2,
        n_depth: 6,
        threads: vec![1],
        reps: 1,
        ..BenchOptions::default()
    };
    let report = run_bench("demo", &model, kernels, &opts, &mut |_| {}).unwrap();
    let names: Vec<String> = report.records.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["pp3 @ d6", "tg2 @ d6"]);
    for r in report.to_json().as_array().unwrap() {
        assert_eq!(r["n_depth"], 6, "{r}");
    }
    assert!(report.markdown().contains("tg2 @ d6"));
    // depth + the longer test = the whole context: runs (the session's context is the sum)
    let full = BenchOptions {
        n_depth: max - 3,
        ..opts.clone()
    };
    run_bench("demo", &model, kernels, &full, &mut |_| {}).unwrap();
    // one token more does not fit
    let over = BenchOptions {
        n_depth: max - 2,
        ..opts
    };
    let e = run_bench("demo", &model, kernels, &over, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("depth of {}", max - 2)), "{e}");
}
