//! The SiLU FFN graph (1bitLLM / Falcon3 lineage) against independent references: the
//! fixtures' llama.cpp comparison records, per prompt, the last-position argmax of
//! transformers' *silu twin* of `micro` (identical weights, `hidden_act: "silu"`) and of
//! llama.cpp (whose `bitnet` graph is SiLU). Where both agree, Tern packed with
//! `--ffn-act silu` must give that argmax too, wherever its top-1 − top-2 margin is at least
//! 0.5 (the fixtures' README: activation quantization alone moves logits by up to ~1, so an
//! argmax is only comparable above such a margin; the comparison records no reference margin).

use tern_core::config::{FfnAct, FfnActSource};
use tern_core::exec::SingleThread;
use tern_core::format::Model;
use tern_core::plan::{KvDtype, MemoryPlan, RunOptions};
use tern_core::sampler::argmax;
use tern_core::session::Session;
use tern_linux::arena::Arena;
use tern_pack::pack::PackOptions;
use tern_tests::{PROMPTS, fixtures, read_json};

#[test]
fn silu_graph_matches_transformers_silu_twin_and_llama_cpp() {
    let Some(fx) = fixtures("silu_graph_matches_transformers_silu_twin_and_llama_cpp") else {
        return;
    };
    let opts = PackOptions {
        ffn_act: Some(FfnAct::Silu),
        ..Default::default()
    };
    let m = tern_pack::import::import_path(
        &fx.join("models/micro/gguf/micro-tq2_0.gguf"),
        &opts,
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        (m.config.ffn_act, m.config.ffn_act_source),
        (FfnAct::Silu, FfnActSource::Override)
    );
    let mut bytes = Vec::new();
    m.write(&mut bytes, |_| {}).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let cmp = read_json(&fx.join("models/micro/reference/llama.cpp/comparison.json")).unwrap();
    let kernels = tern_linux::cpu::kernels().unwrap();
    let mut checked = 0;
    for p in PROMPTS {
        let rec = &cmp["results"]["f16"]["prompts"][p]["last_logits_vs_transformers_silu_twin"];
        let (llama, twin) = (
            rec["argmax_a"].as_u64().unwrap(),
            rec["argmax_b"].as_u64().unwrap(),
        );
        if llama != twin {
            continue;
        }
        let r = read_json(&fx.join(format!(
            "models/micro/reference/transformers/{p}/reference.json"
        )))
        .unwrap();
        let ids: Vec<u32> = r["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let run = RunOptions::new(ids.len() as u32, KvDtype::F32);
        let plan = MemoryPlan::new(&model.file.header.config, 0, run).unwrap();
        let mut arena = Arena::new(plan.arena_bytes);
        let mut s = Session::new(&model, kernels, &SingleThread, run, arena.bytes_mut()).unwrap();
        let logits = s.prefill(&ids).unwrap();
        let got = argmax(logits) as u64;
        let top2 = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i as u64 != got)
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        let margin = logits[got as usize] - top2;
        if margin < 0.5 {
            eprintln!("{p}: margin {margin:.3} < 0.5, argmax not compared");
            continue;
        }
        assert_eq!(
            got, twin,
            "{p}: last-position argmax with the SiLU FFN (margin {margin})"
        );
        // and the relu2 model of the same weights disagrees (the activation really changed)
        assert_ne!(
            got,
            r["argmax_per_position"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_u64()
                .unwrap(),
            "{p}"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} prompts had agreeing references and a margin of 0.5"
    );
}
