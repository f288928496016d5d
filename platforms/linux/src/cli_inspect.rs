//! `tern inspect`: a model's config, tensors (layout, bytes) and memory plan. Part of the
//! `tern` binary (`main.rs`), not of the `tern_linux` library.

use std::path::Path;

use anyhow::Result;
use tern_core::plan::{MemoryPlan, RunOptions};
use tern_kernels::layout::Layout;

use super::{KvArg, PackArgs, kv, mib, open};

/// Print the header, every tensor and the memory plan of `model_path` for `run`.
pub(crate) fn cmd_inspect(model_path: &Path, run: InspectPlan, pack: &PackArgs) -> Result<()> {
    let mm = open(model_path, pack, false)?;
    let model = mm.model(false)?;
    let h = &model.file.header;
    let c = &h.config;
    println!("file: {} ({} bytes)", mm.name(), mm.bytes().len());
    println!(
        "source: {} [{}] sha256 {} | packer {} | options {}",
        h.provenance.source,
        h.provenance.source_format,
        h.provenance
            .source_sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        h.provenance.packer,
        h.provenance.options
    );
    println!(
        "config: layers {} dim {} hidden {} heads {} kv_heads {} head_dim {} vocab {} max_ctx {} rope_theta {} eps {:e}",
        c.n_layers,
        c.dim,
        c.hidden_dim,
        c.n_heads,
        c.n_kv_heads,
        c.head_dim,
        c.vocab_size,
        c.max_ctx,
        c.rope_theta,
        c.norm_eps
    );
    println!(
        "graph: ffn_act {:?} (from {:?}), sub_norms {}, tied_embedding {}",
        c.ffn_act, c.ffn_act_source, c.sub_norms, c.tied_embedding
    );
    let t = &h.tokenizer;
    println!(
        "tokenizer: {:?}, {} tokens, bos {:?}, eos {:?}, stop {:?}, add_bos {}",
        t.kind, t.n_tokens, t.bos, t.eos, t.stop_ids, t.add_bos
    );
    println!("tensors ({}):", h.n_tensors);
    // (layout, parameters, bytes) of the ternary tensors, per layout
    let mut ternary: Vec<(&str, u64, u64)> = Vec::new();
    for e in model.file.entries() {
        let layout = Layout::from_id(e.layout);
        let name = layout.map_or("?", |l| l.info().name);
        if layout.is_some_and(|l| l.info().ternary) {
            let params = e.rows as u64 * e.cols as u64;
            match ternary.iter_mut().find(|t| t.0 == name) {
                Some(t) => (t.1, t.2) = (t.1 + params, t.2 + e.len),
                None => ternary.push((name, params, e.len)),
            }
        }
        println!(
            "  {:<28} {:>7} ({:>6} x {:>6}) {:>12} bytes  scale {}",
            e.name, name, e.rows, e.cols, e.len, e.weight_scale
        );
    }
    println!(
        "ternary parameters: {}",
        ternary.iter().map(|t| t.1).sum::<u64>()
    );
    for (name, params, bytes) in &ternary {
        println!(
            "ternary layout: {name}: {params} weights in {bytes} bytes ({:.3} bits per weight)",
            *bytes as f64 * 8.0 / (*params).max(1) as f64
        );
    }
    let run = RunOptions {
        batch: run.batch.max(1),
        stream: run.stream,
        ..RunOptions::new(run.ctx.unwrap_or(h.plan.ctx_len), kv(run.kv))
    };
    let p = MemoryPlan::for_file(&model.file, run).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "memory plan (ctx {} tokens, KV {:?}, batch {}, weights {}):",
        run.ctx_len,
        run.kv,
        run.batch,
        if run.stream { "streamed" } else { "mapped" }
    );
    let line = |name: &str, b: u64| println!("  {name:<20} {b:>12} bytes {:>9.1} MiB", mib(b));
    if run.stream {
        line("weights (storage)", p.weights_bytes);
        println!(
            "    read per token: every weight once, in 2 staging slots of {} bytes",
            p.slot_bytes
        );
    } else {
        line("weights (mapped)", p.weights_bytes);
    }
    for (name, b) in [
        ("kv cache", p.kv_bytes),
        ("activations", p.act_bytes),
        ("attention scratch", p.att_bytes),
        ("logits", p.logits_bytes),
        ("sampler scratch", p.sampler_bytes),
        ("embedding row", p.row_bytes),
        ("staging (2 slots)", p.staging_bytes),
        ("arena total", p.arena_bytes),
    ] {
        line(name, b as u64);
    }
    let ram = if run.stream {
        p.arena_bytes as u64
    } else {
        p.weights_bytes + p.arena_bytes as u64
    };
    line("RAM needed", ram);
    Ok(())
}

/// The run options `tern inspect` plans for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InspectPlan {
    pub(crate) ctx: Option<u32>,
    pub(crate) kv: KvArg,
    pub(crate) stream: bool,
    pub(crate) batch: u32,
}
