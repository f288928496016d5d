//! Streamed weights (`Session::new_streamed`): the same logits, bit for bit, as reading the
//! weights in place, through a storage-like source that reads fixed 4 KiB blocks; and the
//! access pattern a flash device sees: every weight byte read once per token.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use tern_core::Error;
use tern_core::exec::{Exec, SingleThread};
use tern_core::format::{LayerTensor, Model, TensorRole};
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::sampler::argmax;
use tern_core::session::Session;
use tern_core::source::{ReadAt, SliceReader, SyncSource};
use tern_linux::arena::Arena;
use tern_linux::model_file::BUNDLED_MODEL;
use tern_linux::pool::ThreadPool;

/// Block size of the simulated flash.
const BLOCK: u64 = 4096;

/// What the simulated flash saw.
#[derive(Default, Debug)]
struct Counts {
    /// Block reads per block index.
    blocks: HashMap<u64, u32>,
    /// Bytes delivered to the caller.
    bytes: u64,
    /// `read_at` calls.
    calls: u64,
}

/// A flash-like device: reads whole 4 KiB blocks, keeps the last block (a driver's one-block
/// buffer), counts every block it fetches.
struct BlockFlash<'d> {
    data: &'d [u8],
    cache: Option<(u64, Vec<u8>)>,
    counts: &'d RefCell<Counts>,
    /// A byte offset whose reads fail (a bad sector), while set.
    fail_at: &'d Cell<Option<u64>>,
}

impl<'d> BlockFlash<'d> {
    fn new(data: &'d [u8], counts: &'d RefCell<Counts>, fail_at: &'d Cell<Option<u64>>) -> Self {
        BlockFlash {
            data,
            cache: None,
            counts,
            fail_at,
        }
    }
}

impl ReadAt for BlockFlash<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let err = Error::WeightRead {
            offset_bytes: offset,
            len_bytes: buf.len() as u64,
        };
        if self
            .fail_at
            .get()
            .is_some_and(|f| (offset..offset + buf.len() as u64).contains(&f))
        {
            return Err(err);
        }
        if offset + buf.len() as u64 > self.data.len() as u64 {
            return Err(err);
        }
        let mut c = self.counts.borrow_mut();
        c.calls += 1;
        c.bytes += buf.len() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let b = pos / BLOCK;
            if self.cache.as_ref().is_none_or(|(cb, _)| *cb != b) {
                let start = (b * BLOCK) as usize;
                let end = (start + BLOCK as usize).min(self.data.len());
                self.cache = Some((b, self.data[start..end].to_vec()));
                *c.blocks.entry(b).or_default() += 1;
            }
            let (_, blk) = self.cache.as_ref().unwrap();
            let in_blk = (pos % BLOCK) as usize;
            let n = (blk.len() - in_blk).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&blk[in_blk..in_blk + n]);
            done += n;
        }
        Ok(())
    }
}

fn kernels() -> &'static tern_core::kernels::KernelSet {
    tern_linux::cpu::kernels().unwrap()
}

/// Prefill `prompt` then decode `n` greedy tokens; returns every logits vector after the
/// prompt (the last prompt position, then each decoded token).
fn run(s: &mut Session<'_, '_>, prompt: &[u32], n: usize) -> Vec<Vec<f32>> {
    let mut out = vec![s.prefill(prompt).unwrap().to_vec()];
    for _ in 0..n {
        let next = argmax(out.last().unwrap()) as u32;
        out.push(s.forward(next).unwrap().to_vec());
    }
    out
}

fn resident(
    model: &Model<'_>,
    opts: RunOptions,
    exec: &dyn Exec,
    p: &[u32],
    n: usize,
) -> Vec<Vec<f32>> {
    let plan = MemoryPlan::for_file(&model.file, opts).unwrap();
    let mut arena = Arena::new(plan.arena_bytes);
    let mut s = Session::new(model, kernels(), exec, opts, arena.bytes_mut()).unwrap();
    run(&mut s, p, n)
}

fn streamed(
    model: &Model<'_>,
    opts: RunOptions,
    exec: &dyn Exec,
    p: &[u32],
    n: usize,
) -> Vec<Vec<f32>> {
    let opts = RunOptions {
        stream: true,
        ..opts
    };
    streamed_with(model, opts, exec, p, n)
}

fn streamed_with(
    model: &Model<'_>,
    opts: RunOptions,
    exec: &dyn Exec,
    p: &[u32],
    n: usize,
) -> Vec<Vec<f32>> {
    let plan = MemoryPlan::for_file(&model.file, opts).unwrap();
    let mut arena = Arena::new(plan.arena_bytes);
    let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
    let mut src = SyncSource::new(SliceReader(model.bytes), slots);
    let mut s = Session::new_streamed(&model.file, &mut src, kernels(), exec, opts, sess).unwrap();
    run(&mut s, p, n)
}

fn assert_same(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let xb: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
        assert!(xb == yb, "{what}: logits differ at step {i}");
    }
}

fn demo() -> Model<'static> {
    Model::parse(BUNDLED_MODEL).unwrap()
}

const PROMPT: [u32; 9] = [1, 400, 17, 2049, 88, 311, 5, 77, 1000];

#[test]
fn streamed_equals_resident_on_the_demo_model() {
    let m = demo();
    for (batch, threads) in [(64, 1), (1, 1), (4, 2), (64, 3)] {
        let opts = RunOptions {
            batch,
            ..RunOptions::new(64, KvDtype::F16)
        };
        let pool = ThreadPool::new(threads);
        let a = resident(&m, opts, &pool, &PROMPT, 20);
        let b = streamed(&m, opts, &pool, &PROMPT, 20);
        assert_same(&a, &b, &format!("batch {batch}, {threads} threads"));
        // Pinning the first tensors (a third of the weights, all of them) changes nothing.
        let w = m.file.weight_bytes() as usize;
        for pin in [w / 3, 2 * w] {
            let o = RunOptions {
                stream: true,
                pin_bytes: pin,
                ..opts
            };
            let c = streamed_with(&m, o, &pool, &PROMPT, 20);
            assert_same(
                &a,
                &c,
                &format!("batch {batch}, {threads} threads, pin {pin}"),
            );
        }
    }
}

#[test]
fn streamed_equals_resident_on_fixture_models() {
    let Some(fx) = tern_tests::fixtures("streamed_equals_resident_on_fixture_models") else {
        return;
    };
    for name in ["tiny", "micro"] {
        let src = fx.join(format!("models/{name}/hf-packed"));
        let m = tern_tests::parse(tern_tests::packed_bytes(&src));
        let opts = RunOptions::new(48, KvDtype::F32);
        let a = resident(&m, opts, &SingleThread, &PROMPT[..5], 12);
        let b = streamed(&m, opts, &SingleThread, &PROMPT[..5], 12);
        assert_same(&a, &b, name);
    }
}

/// Q4_0, Q8_0, F16_R8 and Q4_0_R8 LM heads (the demo model re-packed with `--lm-head`, and the
/// micro fixture packed with it): streamed logits equal resident ones bit for bit, the head
/// streamed in slot-sized chunks of whole rows (of whole 8-row groups for F16_R8 and Q4_0_R8,
/// whose tied embedding rows are then read a 64-byte piece / 144-byte group block at a time),
/// with and without pinning.
#[test]
fn streamed_equals_resident_with_quantized_heads() {
    use tern_pack::pack::{LmHead, PackOptions};
    for head in [LmHead::Q4_0, LmHead::Q8_0, LmHead::F16R8, LmHead::Q4_0R8] {
        let bytes = tern_tests::with_head(BUNDLED_MODEL, head);
        let m = Model::parse(&bytes).unwrap();
        assert_eq!(Some(m.file.lm_head().layout), head.layout());
        for (batch, threads) in [(64, 1), (1, 2), (4, 3)] {
            let opts = RunOptions {
                batch,
                ..RunOptions::new(64, KvDtype::F16)
            };
            // the head takes several chunks of the streamed slot
            let plan = MemoryPlan::for_file(
                &m.file,
                RunOptions {
                    stream: true,
                    ..opts
                },
            )
            .unwrap();
            let hrb = m
                .file
                .lm_head()
                .layout
                .row_bytes(m.file.header.config.dim as usize);
            assert!(
                plan.head_chunk_rows(hrb.unwrap(), m.file.lm_head().layout.row_group()) * 4
                    < m.file.header.config.vocab_size as usize
            );
            let pool = ThreadPool::new(threads);
            let a = resident(&m, opts, &pool, &PROMPT, 12);
            let what = format!("{} head, batch {batch}, {threads} threads", head.name());
            assert_same(&a, &streamed(&m, opts, &pool, &PROMPT, 12), &what);
            let pinned = RunOptions {
                stream: true,
                pin_bytes: m.file.weight_bytes() as usize / 3,
                ..opts
            };
            let c = streamed_with(&m, pinned, &pool, &PROMPT, 12);
            assert_same(&a, &c, &format!("{what}, a third pinned"));
        }
        if let Some(fx) = tern_tests::fixtures("streamed_equals_resident_with_quantized_heads") {
            let src = fx.join("models/micro/hf-packed");
            let o = PackOptions {
                lm_head: head,
                ..Default::default()
            };
            let m = tern_tests::parse(tern_tests::packed_bytes_with(&src, &o));
            let opts = RunOptions::new(48, KvDtype::F32);
            let a = resident(&m, opts, &SingleThread, &PROMPT[..5], 12);
            let b = streamed(&m, opts, &SingleThread, &PROMPT[..5], 12);
            assert_same(&a, &b, &format!("micro, {} head", head.name()));
        }
    }
}

/// The blocks of `[start, start + len)`.
fn blocks(start: u64, len: u64) -> std::ops::Range<u64> {
    start / BLOCK..(start + len).div_ceil(BLOCK)
}

#[test]
fn flash_reads_each_weight_byte_once_per_token() {
    let m = demo();
    let f = &m.file;
    let c = f.header.config;
    let opts = RunOptions {
        stream: true,
        batch: 4,
        ..RunOptions::new(64, KvDtype::F16)
    };
    let plan = MemoryPlan::for_file(f, opts).unwrap();
    // The model is more than four times the whole streamed arena (the --max-ram budget).
    assert!(plan.arena_bytes * 4 < f.weight_bytes() as usize, "{plan:?}");

    // What one decoded token must read, from the tensor table and the documented stream
    // order (core/src/source.rs): the embedding row, then every layer tensor in use order,
    // the output norm and the LM head, each once.
    let emb = f.global(TensorRole::TokenEmbd).unwrap();
    let rb = emb.len / c.vocab_size as u64;
    let mut ranges = Vec::new();
    for l in 0..c.n_layers as usize {
        // LayerTensor::ALL is the use order (attn_norm, q, k, v, attn_sub_norm, o, ...)
        for kind in LayerTensor::ALL {
            if let Some(t) = f.layer(l, kind) {
                ranges.push((t.offset, t.len));
            }
        }
    }
    let on = f.global(TensorRole::OutputNorm).unwrap();
    ranges.push((on.offset, on.len));
    let head = f.lm_head();
    ranges.push((head.offset, head.len));
    let weight_bytes: u64 = ranges.iter().map(|r| r.1).sum();
    let weight_blocks: std::collections::HashSet<u64> =
        ranges.iter().flat_map(|&(o, l)| blocks(o, l)).collect();
    // A device with a one-block buffer fetches a block again only where the stream order
    // leaves the block and comes back: simulate that on the ranges.
    let simulate = |first: (u64, u64)| {
        let mut n: HashMap<u64, u32> = HashMap::new();
        let mut last = None;
        for &(o, l) in std::iter::once(&first).chain(&ranges) {
            for b in blocks(o, l) {
                if last != Some(b) {
                    *n.entry(b).or_default() += 1;
                    last = Some(b);
                }
            }
        }
        n
    };

    let counts = RefCell::new(Counts::default());
    let mut arena = Arena::new(plan.arena_bytes);
    let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
    let no_fail = Cell::new(None);
    let mut src = SyncSource::new(BlockFlash::new(m.bytes, &counts, &no_fail), slots);
    let mut s = Session::new_streamed(f, &mut src, kernels(), &SingleThread, opts, sess).unwrap();
    let mut logits = s.prefill(&PROMPT).unwrap().to_vec();
    let head_chunks = (c.vocab_size as usize).div_ceil(plan.head_chunk_rows(rb as usize, 1));
    for step in 0..6 {
        *counts.borrow_mut() = Counts::default();
        let next = argmax(&logits) as u32;
        logits = s.forward(next).unwrap().to_vec();
        let got = counts.borrow();
        let row = emb.offset + next as u64 * rb;
        assert_eq!(
            got.bytes,
            weight_bytes + rb,
            "step {step}: bytes delivered = every weight once + one embedding row"
        );
        assert_eq!(
            got.blocks,
            simulate((row, rb)),
            "step {step}: block fetches"
        );
        // Every weight block is read; the only blocks read twice are the embedding row's and
        // those where the stream order leaves a block it comes back to (a tensor stored
        // between others, as the output norm is here): a handful per token.
        let fetched: u32 = got.blocks.values().sum();
        assert!(weight_blocks.iter().all(|b| got.blocks.contains_key(b)));
        assert!(
            fetched as usize <= weight_blocks.len() + 6,
            "step {step}: {fetched} fetches"
        );
        // One read per tensor (the LM head: per chunk) plus the row: nothing piecemeal.
        assert_eq!(got.calls as usize, ranges.len() - 1 + head_chunks + 1);
    }
}

#[test]
fn streamed_errors_name_the_read_and_the_session_recovers() {
    let m = demo();
    let f = &m.file;
    let opts = RunOptions {
        stream: true,
        ..RunOptions::new(32, KvDtype::F32)
    };
    let plan = MemoryPlan::for_file(f, opts).unwrap();
    let mut arena = Arena::new(plan.arena_bytes);

    // Too small: the session's part must hold plan.session_bytes.
    {
        let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
        let mut src = SyncSource::new(SliceReader(m.bytes), slots);
        let short = &mut sess[..plan.session_bytes - 64];
        let e =
            Session::new_streamed(f, &mut src, kernels(), &SingleThread, opts, short).unwrap_err();
        assert_eq!(
            e,
            Error::ArenaTooSmall {
                need_bytes: plan.session_bytes as u64,
                have_bytes: (plan.session_bytes - 64) as u64
            }
        );
    }
    assert!(matches!(
        plan.split_staging(&mut arena.bytes_mut()[..plan.arena_bytes - 1]),
        Err(Error::ArenaTooSmall { .. })
    ));

    // A storage error in the middle of layer 2's FFN is reported with its offset.
    let bad = f.layer(2, LayerTensor::Up).unwrap();
    let counts = RefCell::new(Counts::default());
    let fail = Cell::new(Some(bad.offset + 100));
    let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
    let mut src = SyncSource::new(BlockFlash::new(m.bytes, &counts, &fail), slots);
    let mut s = Session::new_streamed(f, &mut src, kernels(), &SingleThread, opts, sess).unwrap();
    let e = s.forward(PROMPT[0]).unwrap_err();
    assert_eq!(
        e,
        Error::WeightRead {
            offset_bytes: bad.offset,
            len_bytes: bad.len
        }
    );
    // The failed token was not kept; once storage works again the session goes on and
    // computes what a resident session computes.
    assert_eq!(s.pos(), 0);
    fail.set(None);
    let got = s.forward(PROMPT[0]).unwrap().to_vec();
    let want = resident(
        &m,
        RunOptions {
            stream: false,
            ..opts
        },
        &SingleThread,
        &PROMPT[..1],
        0,
    );
    assert_same(&[got], &want, "after a read error");
}

/// Pinned weights (`RunOptions::pin_bytes`): read once when the session starts, never again;
/// each decoded token reads only the rest, and the logits are the resident ones.
#[test]
fn pinned_weights_are_read_once() {
    let m = demo();
    let f = &m.file;
    let c = f.header.config;
    let w = f.weight_bytes();
    let opts = RunOptions {
        stream: true,
        batch: 4,
        pin_bytes: (w / 2) as usize,
        ..RunOptions::new(64, KvDtype::F16)
    };
    let plan = MemoryPlan::for_file(f, opts).unwrap();
    assert!(plan.pinned_units > 0 && plan.pinned_bytes <= opts.pin_bytes);
    assert!(plan.streamed_bytes_per_pass < w && plan.streamed_bytes_per_pass >= w / 2);
    let counts = RefCell::new(Counts::default());
    let mut arena = Arena::new(plan.arena_bytes);
    let (sess, slots) = plan.split_staging(arena.bytes_mut()).unwrap();
    let no_fail = Cell::new(None);
    let mut src = SyncSource::new(BlockFlash::new(m.bytes, &counts, &no_fail), slots);
    let mut s = Session::new_streamed(f, &mut src, kernels(), &SingleThread, opts, sess).unwrap();
    // the pins, read once at start: everything not streamed per pass
    assert_eq!(counts.borrow().bytes, w - plan.streamed_bytes_per_pass);
    let mut got = vec![s.prefill(&PROMPT).unwrap().to_vec()];
    let emb = f.global(TensorRole::TokenEmbd).unwrap();
    let rb = emb.len / c.vocab_size as u64;
    for _ in 0..6 {
        *counts.borrow_mut() = Counts::default();
        let next = argmax(got.last().unwrap()) as u32;
        got.push(s.forward(next).unwrap().to_vec());
        assert_eq!(counts.borrow().bytes, plan.streamed_bytes_per_pass + rb);
    }
    let want = resident(
        &m,
        RunOptions {
            stream: false,
            pin_bytes: 0,
            ..opts
        },
        &SingleThread,
        &PROMPT,
        6,
    );
    assert_same(&want, &got, "pinned");
}

/// `T1_160` weights stream like `T2_128` ones: a synthetic tiny model (built-in byte
/// vocabulary, no fixtures needed) packed in both layouts gives bit-identical logits resident
/// and streamed (with and without pinned tensors), prefill batched and not, 1 and 2 threads.
#[test]
fn streamed_t1_160_equals_resident_and_t2_128() {
    use tern_core::kernels::layout::TernaryLayout;
    use tern_pack::synth::{SynthShape, synth_model_with};
    let bytes = |l| {
        let m = synth_model_with(SynthShape::Tiny, 3, std::path::Path::new("bytes"), l).unwrap();
        let mut v = Vec::new();
        m.write(&mut v, |_| {}).unwrap();
        v
    };
    let (b2, b1) = (bytes(TernaryLayout::T2_128), bytes(TernaryLayout::T1_160));
    let (m2, m1) = (Model::parse(&b2).unwrap(), Model::parse(&b1).unwrap());
    assert!(m1.file.weight_bytes() < m2.file.weight_bytes());
    let prompt = [256u32, 72, 101, 108, 108, 111, 32, 119];
    for (batch, threads) in [(64, 1), (1, 1), (4, 2)] {
        let opts = RunOptions {
            batch,
            ..RunOptions::new(40, KvDtype::F32)
        };
        let pool = ThreadPool::new(threads);
        let what = format!("batch {batch}, {threads} threads");
        let a = resident(&m2, opts, &pool, &prompt, 12);
        let b = resident(&m1, opts, &pool, &prompt, 12);
        assert_same(&a, &b, &format!("T1_160 vs T2_128 resident, {what}"));
        let c = streamed(&m1, opts, &pool, &prompt, 12);
        assert_same(&b, &c, &format!("T1_160 streamed, {what}"));
        let o = RunOptions {
            stream: true,
            pin_bytes: m1.file.weight_bytes() as usize / 3,
            ..opts
        };
        let d = streamed_with(&m1, o, &pool, &prompt, 12);
        assert_same(&b, &d, &format!("T1_160 streamed, a third pinned, {what}"));
    }
}

#[test]
fn streamed_t1_160_equals_resident_on_fixture_models() {
    let Some(fx) = tern_tests::fixtures("streamed_t1_160_equals_resident_on_fixture_models") else {
        return;
    };
    let t1 = tern_pack::pack::PackOptions {
        ternary: tern_core::kernels::layout::TernaryLayout::T1_160,
        ..Default::default()
    };
    for name in ["tiny", "micro"] {
        let src = fx.join(format!("models/{name}/hf-packed"));
        let m2 = tern_tests::parse(tern_tests::packed_bytes(&src));
        let m1 = tern_tests::parse(tern_tests::packed_bytes_with(&src, &t1));
        let opts = RunOptions::new(48, KvDtype::F32);
        let a = resident(&m2, opts, &SingleThread, &PROMPT[..5], 12);
        let b = streamed(&m1, opts, &SingleThread, &PROMPT[..5], 12);
        assert_same(&a, &b, name);
    }
}
