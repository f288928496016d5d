//! The `tern` binary end to end: run (streaming, --json, --dump-logits, seeds), tokenize,
//! inspect, pack, the bundled model, and error messages on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tern_tests::{fixtures, read_f32, read_json};

fn tern(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .env("TERN_CACHE_DIR", cache)
        .env_remove("TERN_KERNELS")
        .output()
        .expect("running tern")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "tern failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(ok(o).trim()).expect("one JSON object on stdout")
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn bundled_model_runs_without_arguments() {
    let cache = tempfile::tempdir().unwrap();
    let o = tern(
        &["run", "-p", "Hello", "-n", "5", "--temp", "0", "--json"],
        cache.path(),
    );
    let v = json(&o);
    // the demo model's BPE vocabulary (tools/train, `tokenizers`): BOS (4094), "H", "ell", "o"
    assert_eq!(ids(&v["prompt_ids"]), vec![4094, 39, 577, 78]);
    assert!(ids(&v["generated_ids"]).len() <= 5 && !ids(&v["generated_ids"]).is_empty());
    for k in ["text", "prompt_tokens_per_s", "decode_tokens_per_s"] {
        assert!(!v[k].is_null(), "missing {k}");
    }
    // streaming mode prints text and a summary line on stderr
    let o = tern(
        &["run", "-p", "Hi", "-n", "4", "--temp", "0", "--ignore-eos"],
        cache.path(),
    );
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("prompt: 3 tokens")
            && err.contains("generated: 4 tokens")
            && err.contains("decode"),
        "{err}"
    );
}

/// The README's first command prints English: the trained demo model continues a KJV-style
/// prompt with ASCII words.
#[test]
fn readme_first_command_prints_english() {
    let cache = tempfile::tempdir().unwrap();
    let o = tern(
        &[
            "run",
            "-p",
            "And God said",
            "-n",
            "32",
            "--temp",
            "0",
            "--json",
        ],
        cache.path(),
    );
    let v = json(&o);
    let text = v["text"].as_str().unwrap();
    assert!(text.is_ascii(), "{text:?}");
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || ",.;:?!()'\"-".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    assert!(words.len() >= 10, "{text:?}");
    assert!(
        words
            .iter()
            .all(|w| w.chars().all(|c| c.is_ascii_alphabetic())),
        "{text:?}"
    );
    // common English words, not a stream of one repeated token
    let common = [
        "the", "and", "of", "unto", "he", "that", "to", "them", "his",
    ];
    assert!(
        words
            .iter()
            .filter(|w| common.contains(&w.to_ascii_lowercase().as_str()))
            .count()
            >= 3,
        "{text:?}"
    );
    let mut distinct = words.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 6, "{text:?}");
}

fn micro(fx: &Path) -> PathBuf {
    fx.join("models/micro/gguf/micro-tq2_0.gguf")
}

#[test]
fn run_json_matches_transformers_greedy_and_dumps_logits() {
    let Some(fx) = fixtures("run_json_matches_transformers_greedy_and_dumps_logits") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let refdir = fx.join("models/micro/reference/transformers/p1_short_en");
    let r = read_json(&refdir.join("reference.json")).unwrap();
    let text = r["text"].as_str().unwrap();
    let dump = cache.path().join("logits.f32");
    let n = 8;
    let o = tern(
        &[
            "run",
            micro(&fx).to_str().unwrap(),
            "-p",
            text,
            "-n",
            &n.to_string(),
            "--temp",
            "0",
            "--ignore-eos",
            "--json",
            "--dump-logits",
            dump.to_str().unwrap(),
        ],
        cache.path(),
    );
    let v = json(&o);
    assert_eq!(
        ids(&v["prompt_ids"]),
        ids(&r["token_ids"]),
        "tokenization of the prompt"
    );
    let want = ids(&r["greedy"]["tokens"]);
    let margins: Vec<f64> = r["greedy"]["top1_minus_top2_logit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_f64().unwrap())
        .collect();
    let got = ids(&v["generated_ids"]);
    assert_eq!(got.len(), n);
    for i in 0..n {
        if margins[i] < 0.5 {
            break;
        }
        assert_eq!(got[i], want[i], "greedy step {i}");
    }
    // logits of every evaluated position: prompt tokens + generated tokens except the last
    let l = read_f32(&dump).unwrap();
    let np = ids(&r["token_ids"]).len();
    assert_eq!(l.len(), (np + n - 1) * 4096);
    let last = read_f32(&refdir.join("logits_last.f32.bin")).unwrap();
    let row = &l[(np - 1) * 4096..np * 4096];
    let d = row
        .iter()
        .zip(&last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        d <= 1e-3,
        "dumped last-prompt logits differ from the reference by {d}"
    );
}

#[test]
fn seeds_tokenize_inspect_and_pack() {
    let Some(fx) = fixtures("seeds_tokenize_inspect_and_pack") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let m = micro(&fx);
    let m = m.to_str().unwrap();
    let run = |seed: &str| {
        ids(&json(&tern(
            &[
                "run",
                m,
                "-p",
                "Once upon a time",
                "-n",
                "24",
                "--temp",
                "1.0",
                "--top-k",
                "0",
                "--top-p",
                "1.0",
                "--min-p",
                "0",
                "--seed",
                seed,
                "--ignore-eos",
                "--json",
            ],
            cache.path(),
        ))["generated_ids"])
    };
    assert_eq!(run("7"), run("7"), "same seed, same tokens");
    assert_ne!(run("7"), run("8"), "another seed, other tokens");

    let r = read_json(&fx.join("models/micro/reference/transformers/p2_code_py/reference.json"))
        .unwrap();
    let out = ok(&tern(
        &["tokenize", m, r["text"].as_str().unwrap()],
        cache.path(),
    ));
    let got: Vec<u64> = out.split_whitespace().map(|t| t.parse().unwrap()).collect();
    assert_eq!(got, ids(&r["token_ids"]));

    let out = ok(&tern(&["inspect", m, "--ctx", "128"], cache.path()));
    for want in [
        "layers 4 dim 256 hidden 768 heads 8 kv_heads 2 head_dim 32 vocab 4096",
        "ffn_act Relu2 (from Rule)",
        "blk.3.ffn_down.weight",
        "T2_128",
        "kv cache",
        "arena total",
    ] {
        assert!(out.contains(want), "inspect output lacks {want:?}:\n{out}");
    }

    let dst = cache.path().join("micro.tern");
    ok(&tern(
        &["pack", m, "-o", dst.to_str().unwrap()],
        cache.path(),
    ));
    let a = json(&tern(
        &[
            "run",
            dst.to_str().unwrap(),
            "-p",
            "Hello",
            "-n",
            "6",
            "--temp",
            "0",
            "--json",
        ],
        cache.path(),
    ));
    let b = json(&tern(
        &["run", m, "-p", "Hello", "-n", "6", "--temp", "0", "--json"],
        cache.path(),
    ));
    assert_eq!(
        a["generated_ids"], b["generated_ids"],
        "packed file and GGUF (via cache) agree"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let cache = tempfile::tempdir().unwrap();
    let o = tern(&["run", "/nonexistent/model.gguf", "-p", "x"], cache.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/model.gguf"));

    // a truncated .tern: the error names the file
    let bad = cache.path().join("cut.tern");
    std::fs::write(&bad, &tern_linux::model_file::BUNDLED_MODEL[..4000]).unwrap();
    let o = tern(&["run", bad.to_str().unwrap(), "-p", "x"], cache.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.tern") && err.contains("error:"), "{err}");

    // a corrupted tensor: CRC error names the file and the tensor (the demo model has 4
    // layers; the last tensor of the canonical order, at the end of the file, is blk.3.ffn_down)
    let mut b = tern_linux::model_file::BUNDLED_MODEL.to_vec();
    let n = b.len();
    b[n - 100] ^= 0x55;
    let bad = cache.path().join("flip.tern");
    std::fs::write(&bad, &b).unwrap();
    let o = tern(&["run", bad.to_str().unwrap(), "-p", "x"], cache.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("flip.tern")
            && err.contains("tensor 'blk.3.ffn_down.weight'")
            && err.contains("CRC32"),
        "{err}"
    );
}

/// `--max-ram` a quarter of the weights: the weights stream from the file (pread and the
/// read-ahead thread), the tokens equal the resident (mmap) run's, and every forward pass
/// reads the weights exactly once (plus one embedding row per evaluated token).
#[test]
fn max_ram_streams_weights_with_identical_tokens() {
    let cache = tempfile::tempdir().unwrap();
    let path = cache.path().join("demo.tern");
    std::fs::write(&path, tern_linux::model_file::BUNDLED_MODEL).unwrap();
    let m = tern_core::format::Model::parse(tern_linux::model_file::BUNDLED_MODEL).unwrap();
    let weights = m.file.weight_bytes();
    let p = path.to_str().unwrap();
    let common = [
        "run",
        p,
        "-p",
        "And God said",
        "-n",
        "24",
        "--temp",
        "0",
        "--ctx",
        "64",
        "-b",
        "4",
        "--json",
    ];
    let resident = json(&tern(&common, cache.path()));
    assert_eq!(resident["streamed"], false);
    assert_eq!(resident["weights"], "mapped");
    // --no-mmap reads the file into memory: the same tokens.
    let mut args = common.to_vec();
    args.push("--no-mmap");
    let read = json(&tern(&args, cache.path()));
    assert_eq!(read["weights"], "read", "{read}");
    assert_eq!(read["generated_ids"], resident["generated_ids"]);
    let budget = (weights / 4).to_string();
    let mut args = common.to_vec();
    args.extend(["--max-ram", &budget]);
    let streamed = json(&tern(&args, cache.path()));
    assert_eq!(streamed["streamed"], true, "{streamed}");
    assert_eq!(streamed["weights"], "streamed");
    assert_eq!(streamed["generated_ids"], resident["generated_ids"]);
    assert_eq!(streamed["text"], resident["text"]);
    assert!(streamed["arena_bytes"].as_u64().unwrap() <= weights / 4);
    // Reads: each pass (prefill batch or decoded token) reads every tensor once; each
    // evaluated token reads its embedding row (BF16, dim 256 = 512 bytes).
    let n_prompt = ids(&streamed["prompt_ids"]).len() as u64;
    let n_gen = ids(&streamed["generated_ids"]).len() as u64;
    let evals = n_prompt + n_gen - 1;
    let passes = n_prompt.div_ceil(4) + n_gen - 1;
    assert_eq!(
        streamed["bytes_read"].as_u64().unwrap(),
        passes * weights + evals * 512
    );
    assert!(streamed["peak_rss_bytes"].as_u64().unwrap() > 0);

    // --stream forces it (here with every range dropped from the page cache after use);
    // too small a budget is a clear error.
    let mut args = common.to_vec();
    args.extend(["--stream", "--drop-cache"]);
    assert_eq!(
        json(&tern(&args, cache.path()))["generated_ids"],
        resident["generated_ids"]
    );
    // A budget above the streamed arena pins the first tensors (the run keeps 16 MiB for
    // itself): same tokens, fewer bytes per pass.
    let mut args = common.to_vec();
    args.extend(["--stream", "--max-ram", "17M"]);
    let pinned = json(&tern(&args, cache.path()));
    assert_eq!(pinned["generated_ids"], resident["generated_ids"]);
    let pb = pinned["pinned_bytes"].as_u64().unwrap();
    assert!(pb > 0 && pb < weights, "{pinned}");
    let per_pass = pinned["bytes_read_per_pass"].as_f64().unwrap();
    assert!(per_pass < (weights - pb / 2) as f64, "{pinned}");
    let mut args = common.to_vec();
    args.extend(["--max-ram", "100K"]);
    let o = tern(&args, cache.path());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not fit --max-ram 102400 bytes") && err.contains("demo.tern"),
        "{err}"
    );

    // tern inspect --stream prints the streamed plan line by line.
    let o = tern(
        &["inspect", p, "--ctx", "64", "-b", "4", "--stream"],
        cache.path(),
    );
    let out = ok(&o);
    for line in [
        "weights (storage)",
        "kv cache",
        "activations",
        "staging (2 slots)",
        "RAM needed",
    ] {
        assert!(out.contains(line), "missing '{line}' in\n{out}");
    }
}

/// `tern perplexity`: one window over a short text scores every token after the first, the
/// same with the weights read into memory (`--no-mmap`); a window longer than the model's
/// context is a clear error.
#[test]
fn perplexity_scores_every_token_after_the_first() {
    let cache = tempfile::tempdir().unwrap();
    let model = cache.path().join("demo.tern");
    std::fs::write(&model, tern_linux::model_file::BUNDLED_MODEL).unwrap();
    let text = cache.path().join("t.txt");
    std::fs::write(
        &text,
        "In the beginning God created the heaven and the earth.\n",
    )
    .unwrap();
    let (m, t) = (model.to_str().unwrap(), text.to_str().unwrap());
    let v = json(&tern(
        &["perplexity", m, "-f", t, "--ctx", "64", "--json"],
        cache.path(),
    ));
    let ids = tern(
        &[
            "tokenize",
            m,
            "In the beginning God created the heaven and the earth.\n",
        ],
        cache.path(),
    );
    let n = ok(&ids).split_whitespace().count() as u64;
    assert_eq!(v["scored_tokens"].as_u64().unwrap(), n - 1);
    assert_eq!(v["windows"], 1);
    let ppl = v["perplexity"].as_f64().unwrap();
    // a trained model on in-domain text: far better than uniform over 4096 tokens
    assert!(ppl > 1.0 && ppl < 4096.0, "{ppl}");
    // the weights read into memory instead of mapped: the same computation, the same value
    let read = json(&tern(
        &[
            "perplexity",
            m,
            "-f",
            t,
            "--ctx",
            "64",
            "--json",
            "--no-mmap",
        ],
        cache.path(),
    ));
    assert_eq!(read["perplexity"], v["perplexity"]);
    let o = tern(&["perplexity", m, "-f", t, "--ctx", "100000"], cache.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ctx must be between 1"));
}

/// `--lm-head` on `.tern` inputs: `tern pack demo.tern --lm-head q4_0` re-packs the bundled
/// demo model with a Q4_0 head (a quarter of the BF16 head's bytes); `tern run` of that file,
/// of `demo.tern --lm-head q4_0` (re-packed into the cache) and of the bundled model with
/// `--lm-head q4_0` give the same tokens. A `.tern` without `--lm-head` is used as it is.
#[test]
fn lm_head_repacks_tern_inputs_and_the_bundled_model() {
    let cache = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo.tern");
    let demo = demo.to_str().unwrap();
    let q4 = cache.path().join("demo-q4.tern");
    let q4 = q4.to_str().unwrap();
    ok(&tern(
        &["pack", demo, "-o", q4, "--lm-head", "q4_0"],
        cache.path(),
    ));
    let out = ok(&tern(&["inspect", q4], cache.path()));
    let line = out
        .lines()
        .find(|l| l.contains("token_embd.weight"))
        .unwrap_or_else(|| panic!("no token_embd line:\n{out}"));
    assert!(line.contains("Q4_0"), "{line}");
    let (bf16_len, q4_len) = (
        std::fs::metadata(demo).unwrap().len(),
        std::fs::metadata(q4).unwrap().len(),
    );
    // 4096 x 256 head: 2 MiB in BF16, 576 KiB in Q4_0
    assert_eq!(
        bf16_len - q4_len,
        4096 * 256 * 2 - 4096 * 256 / 32 * 18,
        "file sizes"
    );
    let run = |args: &[&str]| {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        a.extend(["-p", "And God said", "-n", "12", "--temp", "0", "--json"]);
        ids(&json(&tern(&a, cache.path()))["generated_ids"])
    };
    let want = run(&[q4]);
    assert_eq!(
        run(&[demo, "--lm-head", "q4_0"]),
        want,
        "demo.tern --lm-head q4_0"
    );
    assert_eq!(run(&["--lm-head", "q4_0"]), want, "bundled --lm-head q4_0");
    // the cache now holds the two re-packs; a plain .tern run adds nothing
    let cached = || std::fs::read_dir(cache.path()).unwrap().count();
    let n = cached();
    run(&[demo]);
    run(&[demo, "--lm-head", "q4_0"]);
    assert_eq!(cached(), n);
}

/// `--ternary t1_160` on `tern pack`, `tern run`, `tern inspect` and `tern bench` with a GGUF
/// input: the option reaches the packer and the cache key (two cache entries, one per layout),
/// `inspect` shows the layout, and the T1_160 model gives the T2_128 model's tokens and
/// bit-identical logits.
#[test]
fn ternary_option_packs_t1_160_everywhere() {
    let Some(fx) = fixtures("ternary_option_packs_t1_160_everywhere") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let m = fx.join("models/micro/gguf/micro-tq1_0.gguf");
    let m = m.to_str().unwrap();
    let run = |ternary: &str, dump: &Path| {
        json(&tern(
            &[
                "run",
                m,
                "-p",
                "Hello world",
                "-n",
                "8",
                "--temp",
                "0",
                "--json",
                "--ternary",
                ternary,
                "--dump-logits",
                dump.to_str().unwrap(),
            ],
            cache.path(),
        ))
    };
    let (d2, d1) = (cache.path().join("t2.f32"), cache.path().join("t1.f32"));
    let a = run("t2_128", &d2);
    let b = run("t1_160", &d1);
    assert_eq!(a["generated_ids"], b["generated_ids"]);
    assert_eq!(std::fs::read(&d2).unwrap(), std::fs::read(&d1).unwrap());
    let cached: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tern"))
        .collect();
    assert_eq!(cached.len(), 2, "one cache entry per layout: {cached:?}");

    let out = ok(&tern(&["inspect", m, "--ternary", "t1_160"], cache.path()));
    for want in [
        "--ternary t1_160",
        "blk.0.attn_q.weight",
        "T1_160",
        "ternary layout: T1_160",
    ] {
        assert!(out.contains(want), "inspect output lacks {want:?}:\n{out}");
    }
    assert!(!out.contains("T2_128"), "{out}");

    let dst = cache.path().join("micro-t1.tern");
    ok(&tern(
        &[
            "pack",
            m,
            "-o",
            dst.to_str().unwrap(),
            "--ternary",
            "t1_160",
        ],
        cache.path(),
    ));
    let out = ok(&tern(&["inspect", dst.to_str().unwrap()], cache.path()));
    assert!(out.contains("ternary layout: T1_160"), "{out}");
    let c = json(&tern(
        &[
            "run",
            dst.to_str().unwrap(),
            "-p",
            "Hello world",
            "-n",
            "8",
            "--temp",
            "0",
            "--json",
        ],
        cache.path(),
    ));
    assert_eq!(c["generated_ids"], a["generated_ids"]);

    let out = ok(&tern(
        &[
            "bench",
            m,
            "-p",
            "8",
            "-n",
            "2",
            "-r",
            "1",
            "-t",
            "1",
            "--json",
            "--ternary",
            "t1_160",
        ],
        cache.path(),
    ));
    assert!(out.contains("T1_160"), "{out}");
}

/// A closed stdout pipe (`tern inspect m.tern | head -1`) ends `tern` as it ends other
/// command-line tools, by SIGPIPE, with nothing on stderr: no "failed printing to stdout"
/// panic.
#[test]
fn closed_stdout_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let cache = tempfile::tempdir().unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.tern");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["inspect", demo])
        .env("TERN_CACHE_DIR", cache.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running tern");
    // close the pipe's read end before tern (still starting) writes to it
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
    assert!(err.is_empty(), "{err}");
}
