//! The bare-metal generation path on the host: same tokens as the Linux CLI's path
//! (`tern run --temp 0`), errors for bad arenas and a missing model.

use tern_baremetal::stream::MemStorage;
use tern_baremetal::{
    Error, SingleCore, StaticArena, arena_bytes_for, find_model, generate_greedy,
};
use tern_core::sampler::SamplerConfig;
use tern_linux::generate::{GenOptions, generate};
use tern_linux::model_file::BUNDLED_MODEL;

const PROMPT: &str = "Hello";

#[repr(C, align(64))]
struct Buf([u8; 1 << 20]);

fn linux_ids(model_bytes: &[u8], prompt: &str, n: usize) -> (Vec<u32>, String) {
    let model = tern_core::format::Model::parse(model_bytes).unwrap();
    let opts = GenOptions {
        prompt: prompt.into(),
        n_predict: n,
        sampler: SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        },
        ctx_len: None,
        kv: tern_core::plan::KvDtype::F32,
        ignore_eos: false,
        parse_special: false,
        batch: tern_core::plan::RunOptions::DEFAULT_BATCH,
        pin_bytes: 0,
    };
    let k = tern_kernels::select_scalar();
    let r = generate(&model, k, &SingleCore, &opts, &mut |_| {}, None).unwrap();
    (r.generated_ids, r.text)
}

#[test]
fn same_tokens_and_text_as_the_linux_path() {
    let mut buf = Box::new(Buf([0; 1 << 20]));
    for (prompt, n) in [(PROMPT, 16), ("The quick brown fox", 9), ("é€😀", 5)] {
        let (want_ids, want_text) = linux_ids(BUNDLED_MODEL, prompt, n);
        let (mut ids, mut text) = (Vec::new(), String::new());
        let k = tern_kernels::select_scalar();
        let stats = generate_greedy(
            BUNDLED_MODEL,
            k,
            &SingleCore,
            &mut buf.0,
            prompt,
            n,
            |id, t| {
                ids.push(id);
                text.push_str(t);
            },
        )
        .unwrap();
        assert_eq!(ids, want_ids, "prompt {prompt:?}");
        assert_eq!(text, want_text, "prompt {prompt:?}");
        assert_eq!(stats.generated_tokens, want_ids.len());
    }
}

#[test]
fn finds_the_model_in_a_larger_region_and_rejects_garbage() {
    let mut region = BUNDLED_MODEL.to_vec();
    region.resize(BUNDLED_MODEL.len() + 4096, 0);
    assert_eq!(find_model(&region).unwrap(), BUNDLED_MODEL);
    assert!(matches!(
        find_model(&[0u8; 4096]),
        Err(Error::Core(tern_core::Error::BadMagic))
    ));
}

#[test]
fn arena_errors() {
    let need = arena_bytes_for(BUNDLED_MODEL, PROMPT.len(), 4).unwrap();
    let mut buf = Box::new(Buf([0; 1 << 20]));
    let k = tern_kernels::select_scalar();
    let short = &mut buf.0[..need - 1];
    assert_eq!(
        generate_greedy(BUNDLED_MODEL, k, &SingleCore, short, PROMPT, 4, |_, _| {}),
        Err(Error::ArenaTooSmall {
            need_bytes: need,
            have_bytes: need - 1
        })
    );
    let shifted = &mut buf.0[1..need + 1];
    assert_eq!(
        generate_greedy(BUNDLED_MODEL, k, &SingleCore, shifted, PROMPT, 4, |_, _| {}),
        Err(Error::ArenaMisaligned)
    );
    assert!(
        generate_greedy(
            BUNDLED_MODEL,
            k,
            &SingleCore,
            &mut buf.0[..need],
            PROMPT,
            4,
            |_, _| {}
        )
        .is_ok()
    );
}

#[test]
fn static_arena_is_taken_once() {
    static A: StaticArena<256> = StaticArena::new();
    let a = A.take().unwrap();
    assert_eq!((a.len(), a.as_ptr() as usize % 64), (256, 0));
    assert!(A.take().is_none());
}

#[test]
fn streamed_from_read_seek_storage_gives_the_same_tokens() {
    let mut buf = Box::new(Buf([0; 1 << 20]));
    // a storage driver reading at most 512 bytes per call (an SD card's sectors)
    let storage = || MemStorage::new(BUNDLED_MODEL, 512);
    let need = tern_baremetal::generate::arena_bytes_for_streamed(
        storage(),
        &mut buf.0[..64 << 10],
        PROMPT.len(),
        16,
    )
    .unwrap();
    // The whole RAM the streamed run needs is under a quarter of the model.
    assert!(need * 4 < BUNDLED_MODEL.len(), "{need}");
    let (want_ids, want_text) = linux_ids(BUNDLED_MODEL, PROMPT, 16);
    let (mut ids, mut text) = (Vec::new(), String::new());
    let k = tern_kernels::select_scalar();
    let stats = tern_baremetal::generate_greedy_streamed(
        storage(),
        k,
        &SingleCore,
        &mut buf.0[..need],
        PROMPT,
        16,
        |id, t| {
            ids.push(id);
            text.push_str(t);
        },
    )
    .unwrap();
    assert_eq!(ids, want_ids);
    assert_eq!(text, want_text);
    assert!(stats.bytes_read > 0);
    // One byte short is a clear error.
    assert!(matches!(
        tern_baremetal::generate_greedy_streamed(
            storage(),
            k,
            &SingleCore,
            &mut buf.0[..need - 1],
            PROMPT,
            16,
            |_, _| {}
        ),
        Err(Error::ArenaTooSmall { .. })
    ));
    // A truncated file is reported as a core error, not a panic.
    let cut = MemStorage::new(&BUNDLED_MODEL[..BUNDLED_MODEL.len() / 2], 512);
    assert!(matches!(
        tern_baremetal::generate_greedy_streamed(
            cut,
            k,
            &SingleCore,
            &mut buf.0[..],
            PROMPT,
            4,
            |_, _| {}
        ),
        Err(Error::Core(_))
    ));
}

/// The demo model with its ternary tensors in `T1_160`: resident and streamed bare-metal
/// generation give the `T2_128` model's tokens and text (the same values, so the same logits),
/// in a streamed arena no larger than the `T2_128` one.
#[test]
fn t1_160_model_gives_the_same_tokens_resident_and_streamed() {
    use tern_kernels::layout::TernaryLayout;
    // rewriting the demo model without a change is the identity
    assert!(tern_tests::repacked(BUNDLED_MODEL, TernaryLayout::T2_128) == BUNDLED_MODEL);
    let t1 = tern_tests::repacked(BUNDLED_MODEL, TernaryLayout::T1_160);
    assert!(t1.len() < BUNDLED_MODEL.len());
    let mut buf = Box::new(Buf([0; 1 << 20]));
    let k = tern_kernels::select_scalar();
    let (want_ids, want_text) = linux_ids(BUNDLED_MODEL, PROMPT, 12);
    assert_eq!(linux_ids(&t1, PROMPT, 12).0, want_ids);
    let (mut ids, mut text) = (Vec::new(), String::new());
    generate_greedy(&t1, k, &SingleCore, &mut buf.0, PROMPT, 12, |id, t| {
        ids.push(id);
        text.push_str(t);
    })
    .unwrap();
    assert_eq!((&ids, &text), (&want_ids, &want_text));
    let need = |m: &[u8], buf: &mut [u8]| {
        tern_baremetal::generate::arena_bytes_for_streamed(
            MemStorage::new(m, 512),
            &mut buf[..64 << 10],
            PROMPT.len(),
            12,
        )
        .unwrap()
    };
    let need1 = need(&t1, &mut buf.0);
    assert!(need1 <= need(BUNDLED_MODEL, &mut buf.0));
    let (mut ids, mut text) = (Vec::new(), String::new());
    let stats = tern_baremetal::generate_greedy_streamed(
        MemStorage::new(&t1, 512),
        k,
        &SingleCore,
        &mut buf.0[..need1],
        PROMPT,
        12,
        |id, t| {
            ids.push(id);
            text.push_str(t);
        },
    )
    .unwrap();
    assert_eq!((&ids, &text), (&want_ids, &want_text));
    assert!(stats.bytes_read > 0);
}
