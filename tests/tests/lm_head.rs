//! LM-head layouts end to end: re-packing a `.tern` file (the bundled demo model, fixture
//! packs) with `--lm-head`, a GGUF Q4_0 embedding kept as Q4_0, and what Q4_0 and Q8_0 heads
//! do to the trained demo model's logits. The demo-model tests need no fixtures.

use std::path::Path;

use tern_core::exec::{Exec, SingleThread};
use tern_core::format::writer::{OwnedModel, OwnedTensor};
use tern_core::format::{Model, TensorRole};
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::sampler::argmax;
use tern_core::session::Session;
use tern_kernels::layout::Layout;
use tern_linux::arena::Arena;
use tern_linux::model_file::BUNDLED_MODEL;
use tern_pack::import::{float, import_path};
use tern_pack::pack::{LmHead, PackOptions};

fn opts(head: LmHead) -> PackOptions {
    PackOptions {
        lm_head: head,
        ..Default::default()
    }
}

/// `tern-pack pack <bytes as demo.tern> --lm-head head`, into memory.
fn repack(bytes: &[u8], head: LmHead) -> Vec<u8> {
    tern_tests::with_head(bytes, head)
}

fn parse(bytes: &[u8]) -> Model<'_> {
    let m = Model::parse(bytes).unwrap();
    m.verify_checksums().unwrap();
    m
}

/// Logits of every position of `prompt` (teacher forcing), resident weights.
fn logits(m: &Model<'_>, prompt: &[u32]) -> Vec<Vec<f32>> {
    logits_on(m, prompt, &SingleThread)
}

/// An [`Exec`] that runs every split on this thread in pieces of 3 units (the last shorter):
/// the finest split its contract allows callers to get, so a caller that passes a `unit`
/// smaller than its kernels need sees pieces they reject.
struct ThreeUnits;

impl Exec for ThreeUnits {
    fn par_chunks_i32(&self, out: &mut [i32], unit: usize, f: &(dyn Fn(usize, &mut [i32]) + Sync)) {
        for (i, c) in out.chunks_mut(3 * unit.max(1)).enumerate() {
            f(i * 3 * unit.max(1), c);
        }
    }
    fn par_chunks_f32(&self, out: &mut [f32], unit: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        for (i, c) in out.chunks_mut(3 * unit.max(1)).enumerate() {
            f(i * 3 * unit.max(1), c);
        }
    }
}

/// [`logits`] on `exec`.
fn logits_on(m: &Model<'_>, prompt: &[u32], exec: &dyn Exec) -> Vec<Vec<f32>> {
    let k = tern_linux::cpu::kernels().unwrap();
    let o = RunOptions::new(prompt.len() as u32, KvDtype::F32);
    let plan = MemoryPlan::for_file(&m.file, o).unwrap();
    let mut arena = Arena::new(plan.arena_bytes);
    let mut s = Session::new(m, k, exec, o, arena.bytes_mut()).unwrap();
    prompt
        .iter()
        .map(|&t| s.forward(t).unwrap().to_vec())
        .collect()
}

/// Genesis 1:1-5 (KJV), which the demo model was trained on.
const GENESIS: &str = "In the beginning God created the heaven and the earth. And the earth \
was without form, and void; and darkness was upon the face of the deep. And the Spirit of God \
moved upon the face of the waters. And God said, Let there be light: and there was light. And \
God saw the light, that it was good: and God divided the light from the darkness. And God \
called the light Day, and the darkness he called Night. And the evening and the morning were \
the first day.";

#[test]
fn repacking_the_demo_model_changes_only_the_head() {
    let orig = parse(BUNDLED_MODEL);
    let head = orig.file.lm_head();
    assert_eq!(
        head.layout,
        Layout::Bf16,
        "the demo model has a BF16 tied head"
    );
    let (vocab, dim) = (head.rows as usize, head.cols as usize);
    let keep = repack(BUNDLED_MODEL, LmHead::Keep);
    let q4 = repack(BUNDLED_MODEL, LmHead::Q4_0);
    let q8 = repack(BUNDLED_MODEL, LmHead::Q8_0);
    let want_head =
        float::quantize_q4_0(&float::to_f32(Layout::Bf16, orig.data(head)).unwrap()).unwrap();
    for (bytes, layout) in [
        (&keep, Layout::Bf16),
        (&q4, Layout::Q4_0),
        (&q8, Layout::Q8_0),
    ] {
        let m = parse(bytes);
        let h = &m.file.header;
        assert_eq!(h.config, orig.file.header.config);
        assert_eq!(h.plan, orig.file.header.plan);
        assert_eq!(m.tokenizer_blob(), orig.tokenizer_blob());
        assert_eq!(
            h.provenance.source_format,
            format!("tern:{}", orig.file.header.provenance.source_format)
        );
        assert_eq!(m.file.lm_head().layout, layout);
        for (a, b) in orig.file.entries().zip(m.file.entries()) {
            assert_eq!((a.name, a.role, a.layer), (b.name, b.role, b.layer));
            assert_eq!((a.rows, a.cols), (b.rows, b.cols));
            if a.role == TensorRole::TokenEmbd {
                assert_eq!(b.layout, layout as u8);
                assert_eq!(b.len as usize, vocab * layout.row_bytes(dim).unwrap());
            } else {
                assert_eq!(
                    (a.layout, a.len, a.crc32),
                    (b.layout, b.len, b.crc32),
                    "{}",
                    a.name
                );
                assert_eq!(a.weight_scale.to_bits(), b.weight_scale.to_bits());
            }
        }
    }
    // Keep: the same tensors, so the same logits, bit for bit
    let ids = tern_linux::generate::tokenize(&orig, GENESIS, true, false).unwrap();
    let ids = &ids[..24];
    let bits = |l: Vec<Vec<f32>>| -> Vec<u32> { l.concat().iter().map(|v| v.to_bits()).collect() };
    assert_eq!(bits(logits(&parse(&keep), ids)), bits(logits(&orig, ids)));
    // Q4_0: ggml's quantization of the BF16 values
    let m4 = parse(&q4);
    assert_eq!(m4.data(m4.file.lm_head()), &want_head[..]);
    // A head already in the asked layout is kept as it is; Q8_0 -> Q4_0 requantizes.
    let again = repack(&q4, LmHead::Q4_0);
    assert_eq!(
        parse(&again).data(parse(&again).file.lm_head()),
        &want_head[..]
    );
    let from_q8 = parse(&repack(&q8, LmHead::Q4_0)).file.lm_head().layout;
    assert_eq!(from_q8, Layout::Q4_0);
}

/// The trained demo model (BF16 head) against its Q4_0 and Q8_0 re-packs on Genesis 1:1-5
/// (108 positions): mean and max |Δlogit|, argmax agreement. Measured (every kernel variant
/// gives the same bits; logit std 2.93): Q8_0 mean 0.0142, max 0.234, 100 % agreement; Q4_0
/// mean 0.101, max 1.33, 93.5 % (101/108). Bounds about 1.5x those.
#[test]
fn quantized_heads_on_the_trained_demo_model() {
    let orig = parse(BUNDLED_MODEL);
    let ids = tern_linux::generate::tokenize(&orig, GENESIS, true, false).unwrap();
    let base = logits(&orig, &ids);
    let spread = {
        let all: Vec<f64> = base.concat().iter().map(|&v| v as f64).collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        (all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64).sqrt()
    };
    for (head, max_mean, max_max, min_agree) in [
        (LmHead::Q8_0, 0.02, 0.35, 0.99),
        (LmHead::Q4_0, 0.15, 2.0, 0.88),
    ] {
        let bytes = repack(BUNDLED_MODEL, head);
        let got = logits(&parse(&bytes), &ids);
        let (mut sum, mut max, mut agree) = (0f64, 0f32, 0usize);
        for (a, b) in got.iter().zip(&base) {
            for (x, y) in a.iter().zip(b) {
                sum += (x - y).abs() as f64;
                max = max.max((x - y).abs());
            }
            agree += (argmax(a) == argmax(b)) as usize;
        }
        let mean = sum / (base.len() * base[0].len()) as f64;
        let frac = agree as f64 / base.len() as f64;
        eprintln!(
            "demo model, {} head vs BF16: mean |Δlogit| {mean:.4} (logit std {spread:.2}), max {max:.3}, argmax agreement {:.1}% ({agree}/{})",
            head.name(),
            100.0 * frac,
            base.len()
        );
        assert!(mean < max_mean, "{}: mean |Δlogit| {mean}", head.name());
        assert!(max < max_max, "{}: max |Δlogit| {max}", head.name());
        assert!(
            frac >= min_agree,
            "{}: argmax agreement {frac}",
            head.name()
        );
    }
}

/// A `.tern` input re-packs exactly as its source does: `micro-f16.gguf` packed (F16 head),
/// then that file re-packed with `--lm-head q4_0`, equals the GGUF packed with `--lm-head q4_0`
/// tensor for tensor; `--ctx` and `--ffn-act` apply to `.tern` inputs too.
#[test]
fn tern_input_repacks_like_its_source() {
    let Some(fx) = tern_tests::fixtures("tern_input_repacks_like_its_source") else {
        return;
    };
    let gguf = fx.join("models/micro/gguf/micro-f16.gguf");
    let dir = tempfile::tempdir().unwrap();
    let f16 = dir.path().join("micro-f16.tern");
    std::fs::write(&f16, tern_tests::packed_bytes(&gguf)).unwrap();
    let direct = import_path(&gguf, &opts(LmHead::Q4_0), &|_| {}).unwrap();
    let o = PackOptions {
        lm_head: LmHead::Q4_0,
        ctx_len: Some(100),
        ffn_act: Some(tern_core::config::FfnAct::Silu),
        ..PackOptions::default()
    };
    let via = import_path(&f16, &o, &|_| {}).unwrap();
    assert_eq!(via.tensors.len(), direct.tensors.len());
    for (a, b) in direct.tensors.iter().zip(&via.tensors) {
        assert_eq!(
            (&a.name, a.layout, a.rows, a.cols),
            (&b.name, b.layout, b.rows, b.cols)
        );
        assert_eq!(a.weight_scale.to_bits(), b.weight_scale.to_bits());
        assert!(a.data == b.data, "{}", a.name);
    }
    assert_eq!(via.tensors[0].layout, Layout::Q4_0);
    assert_eq!(via.plan.ctx_len, 100);
    assert_eq!(via.config.ffn_act, tern_core::config::FfnAct::Silu);
    assert_eq!(via.provenance.source, "micro-f16.tern");
    assert!(via.provenance.source_format.starts_with("tern:gguf:"));
    assert_eq!(
        via.provenance.options,
        "--ffn-act silu --ctx 100 --lm-head q4_0"
    );
    // a corrupt .tern input is refused with the file and tensor named
    let mut bad = tern_tests::packed_bytes(&gguf).to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let p = dir.path().join("bad.tern");
    std::fs::write(&p, &bad).unwrap();
    let e = format!(
        "{:#}",
        import_path(&p, &opts(LmHead::Q4_0), &|_| {}).unwrap_err()
    );
    assert!(
        e.contains("bad.tern") && e.contains("blk.3.ffn_down.weight") && e.contains("CRC32"),
        "{e}"
    );
}

/// Byte position just after the (length-prefixed) name of tensor `name` in a GGUF tensor table.
fn after_name(b: &[u8], name: &str) -> usize {
    let mut pat = (name.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(name.as_bytes());
    b.windows(pat.len()).position(|w| w == pat).unwrap() + pat.len()
}

/// A GGUF whose `token_embd` is Q4_0 (GGML type 2) keeps it: the `.tern` head is the GGUF's
/// blocks, byte for byte. Made from `micro-f16.gguf` by writing ggml's Q4_0 of the F16
/// embedding in place of its data (the shorter blocks leave a gap the reader skips) and
/// changing the type; it then packs to the same head as the F16 file with `--lm-head q4_0`,
/// and gives the same logits.
#[test]
fn gguf_q4_0_embedding_is_kept() {
    let Some(fx) = tern_tests::fixtures("gguf_q4_0_embedding_is_kept") else {
        return;
    };
    let src = fx.join("models/micro/gguf/micro-f16.gguf");
    let mut b = std::fs::read(&src).unwrap();
    let g = tern_pack::gguf::GgufFile::parse(&b).unwrap();
    let t = g
        .tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .unwrap();
    assert_eq!(t.ggml_type, tern_pack::gguf::ggml_type::F16);
    let n: u64 = t.dims.iter().product();
    let start = (g.data_offset + t.offset) as usize;
    let f16 = float::to_f32(Layout::F16, &b[start..start + 2 * n as usize]).unwrap();
    let q4 = float::quantize_q4_0(&f16).unwrap();
    let at = after_name(&b, "token_embd.weight") + 4 + 8 * t.dims.len();
    b[at..at + 4].copy_from_slice(&tern_pack::gguf::ggml_type::Q4_0.to_le_bytes());
    b[start..start + q4.len()].copy_from_slice(&q4);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("micro-q4emb.gguf");
    std::fs::write(&p, &b).unwrap();
    let m = import_path(&p, &PackOptions::default(), &|_| {}).unwrap();
    assert_eq!(m.tensors[0].name, "token_embd.weight");
    assert_eq!(m.tensors[0].layout, Layout::Q4_0);
    assert!(m.tensors[0].data == q4);
    let mut kept = Vec::new();
    m.write(&mut kept, |_| {}).unwrap();
    let packed = tern_tests::packed_bytes_with(&src, &opts(LmHead::Q4_0));
    let ids = [4094u32, 17, 300, 1200, 45, 9, 3000, 77];
    assert_eq!(
        logits(&parse(&kept), &ids),
        logits(&parse(packed), &ids),
        "GGUF Q4_0 embedding vs --lm-head q4_0"
    );
    // --lm-head q8_0 requantizes it (Q4_0 -> f32 -> Q8_0)
    let m = import_path(&p, &opts(LmHead::Q8_0), &|_| {}).unwrap();
    assert_eq!(m.tensors[0].layout, Layout::Q8_0);
}

/// The bundled demo model imported as it is (for tests that edit its tensors).
fn demo_owned() -> OwnedModel {
    let o = opts(LmHead::Keep);
    tern_pack::import::tern::import_tern_bytes(Path::new("demo.tern"), BUNDLED_MODEL, &o, &|_| {})
        .unwrap()
}

/// The token embedding (the demo model's tied head) of `m`.
fn embedding(m: &mut OwnedModel) -> &mut OwnedTensor {
    let embd = |t: &&mut OwnedTensor| t.role == TensorRole::TokenEmbd;
    m.tensors.iter_mut().find(embd).unwrap()
}

/// `--lm-head f16_r8` on the demo model (BF16 tied head): the values rounded to F16 and stored
/// in `F16_R8` order, which `core/FORMAT.md` defines (row `r`'s 32-column piece `k` at byte
/// `(r / 8) · 8 · 2·dim + 512 k + 64 (r % 8)`), checked at rows and pieces across groups. Its
/// logits equal, bit for bit, those of a model whose head holds the same F16 values row-major
/// (the F16 row dots, checked against the fixtures elsewhere: the same sums in the same order);
/// so does its embedding lookup, which gathers each row's pieces. Re-packing it to Q8_0 reads
/// its rows back in order: the Q8_0 head of the row-major F16 model.
#[test]
fn f16_r8_head_reads_as_its_rows() {
    let orig = parse(BUNDLED_MODEL);
    let head = orig.file.lm_head();
    let (vocab, dim) = (head.rows as usize, head.cols as usize);
    let r8 = repack(BUNDLED_MODEL, LmHead::F16R8);
    let m8 = parse(&r8);
    assert_eq!(m8.file.lm_head().layout, Layout::F16R8);
    let f16: Vec<u8> = float::to_f32(Layout::Bf16, orig.data(head))
        .unwrap()
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let got = m8.data(m8.file.lm_head());
    assert_eq!(got.len(), f16.len());
    for (r, k) in [
        (0, 0),
        (1, 0),
        (7, 1),
        (8, 0),
        (13, 5),
        (vocab - 1, dim / 32 - 1),
    ] {
        let at = (r / 8) * 8 * 2 * dim + 512 * k + 64 * (r % 8);
        assert_eq!(
            &got[at..at + 64],
            &f16[r * 2 * dim + 64 * k..][..64],
            "row {r}, piece {k}"
        );
    }
    // the same values, row-major F16
    let mut m = demo_owned();
    let t = embedding(&mut m);
    (t.layout, t.data) = (Layout::F16, f16.clone());
    let mut plain = Vec::new();
    m.write(&mut plain, |_| {}).unwrap();
    let ids = tern_linux::generate::tokenize(&orig, GENESIS, true, false).unwrap();
    let ids = &ids[..24];
    let bits = |l: Vec<Vec<f32>>| -> Vec<u32> { l.concat().iter().map(|v| v.to_bits()).collect() };
    let want = bits(logits(&parse(&plain), ids));
    assert_eq!(bits(logits(&m8, ids)), want);
    // split into pieces of 3 units: the head's chunks must still be whole 8-row groups
    assert_eq!(bits(logits_on(&m8, ids, &ThreeUnits)), want);
    // F16_R8 -> Q8_0 equals F16 -> Q8_0
    let a = repack(&r8, LmHead::Q8_0);
    let b = repack(&plain, LmHead::Q8_0);
    assert_eq!(
        parse(&a).data(parse(&a).file.lm_head()),
        parse(&b).data(parse(&b).file.lm_head())
    );
}

/// A head whose rows are not whole 8-row groups cannot be stored as `F16_R8` or `Q4_0_R8`:
/// `--lm-head f16_r8` / `q4_0_r8` names the tensor and the shape it needs (a file that claims
/// it anyway is refused at parse: `malformed_tern.rs`).
#[test]
fn row_interleaved_heads_need_whole_row_groups() {
    for head in [LmHead::F16R8, LmHead::Q4_0R8] {
        let mut m = demo_owned();
        // drop the last 3 rows of the tied head: vocab % 8 != 0
        let t = embedding(&mut m);
        let rb = 2 * t.cols as usize;
        t.rows -= 3;
        t.data.truncate(t.rows as usize * rb);
        m.config.vocab_size -= 3;
        let e = format!(
            "{:#}",
            tern_pack::import::apply_lm_head(&mut m, &opts(head)).unwrap_err()
        );
        assert!(
            e.contains("token_embd") && e.contains("multiple of 8"),
            "{}: {e}",
            head.name()
        );
    }
}

/// `--lm-head q4_0_r8` on the demo model: the `--lm-head q4_0` head's blocks in `Q4_0_R8`
/// order, which `core/FORMAT.md` defines (row `r`'s block `b` in the group block at
/// `(r / 8) · 8 · row_bytes + 144 b`: its scale at `2 (r % 8)`, its code bytes `4c..4c + 4` at
/// `16 + 32c + 4 (r % 8)`), checked at rows and blocks across groups. The logits equal, bit
/// for bit, those of the Q4_0 head (whose matvec the kernel tests check against an f64
/// evaluation), with resident weights and with the head split into pieces of 3 units, and so
/// does the embedding lookup. Q4_0 and Q4_0_R8 convert into each other by reordering, never
/// requantizing.
#[test]
fn q4_0_r8_head_reads_as_its_rows() {
    let q4 = repack(BUNDLED_MODEL, LmHead::Q4_0);
    let r8 = repack(BUNDLED_MODEL, LmHead::Q4_0R8);
    let (m4, m8) = (parse(&q4), parse(&r8));
    assert_eq!(m8.file.lm_head().layout, Layout::Q4_0R8);
    let (vocab, dim) = (
        m8.file.lm_head().rows as usize,
        m8.file.lm_head().cols as usize,
    );
    let (rows4, got) = (m4.data(m4.file.lm_head()), m8.data(m8.file.lm_head()));
    assert_eq!(got.len(), rows4.len());
    let rb = dim / 32 * 18;
    for (r, b) in [
        (0, 0),
        (1, 0),
        (7, 1),
        (8, 0),
        (13, 5),
        (vocab - 1, dim / 32 - 1),
    ] {
        let blk = &rows4[r * rb + 18 * b..][..18];
        let at = (r / 8) * 8 * rb + 144 * b;
        let i = r % 8;
        assert_eq!(
            got[at + 2 * i..at + 2 * i + 2],
            blk[..2],
            "row {r}, block {b}: scale"
        );
        for c in 0..4 {
            let o = at + 16 + 32 * c + 4 * i;
            assert_eq!(
                got[o..o + 4],
                blk[2 + 4 * c..6 + 4 * c],
                "row {r}, block {b}: code bytes {}..",
                4 * c
            );
        }
    }
    let orig = parse(BUNDLED_MODEL);
    let ids = tern_linux::generate::tokenize(&orig, GENESIS, true, false).unwrap();
    let ids = &ids[..24];
    let bits = |l: Vec<Vec<f32>>| -> Vec<u32> { l.concat().iter().map(|v| v.to_bits()).collect() };
    let want = bits(logits(&m4, ids));
    assert_eq!(bits(logits(&m8, ids)), want);
    assert_eq!(bits(logits_on(&m8, ids, &ThreeUnits)), want);
    // reordered both ways, not requantized
    let again = repack(&q4, LmHead::Q4_0R8);
    assert_eq!(parse(&again).data(parse(&again).file.lm_head()), got);
    let back = repack(&r8, LmHead::Q4_0);
    assert_eq!(parse(&back).data(parse(&back).file.lm_head()), rows4);
}
