//! Hugging Face safetensors importer: a directory with `config.json` and `model.safetensors`
//! (or shards listed in `model.safetensors.index.json`).
//!
//! Two checkpoint forms (see `shared/fixtures/README.md`):
//! * packed (microsoft/bitnet-b1.58-2B-4T): ternary weights as uint8 `(out/4, in)` plus a
//!   `weight_scale` tensor (`[1]`, the divisor `1/alpha`), unpacked by
//!   [`super::ternary::unpack_hf`];
//! * master (`…-bf16`): float weights, ternarized by absmean ([`super::ternary::ternarize_f32`]).
//!
//! Source: transformers `models/bitnet/configuration_bitnet.py` / `modular_bitnet.py` (names,
//! config fields), `integrations/bitnet.py` (packing, `WeightQuant`); safetensors format spec.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;
use tern_core::config::{FfnAct, ModelConfig};
use tern_core::format::writer::OwnedModel;
use tern_core::format::{LayerTensor, TensorRole};
use tern_kernels::layout::Layout;

use super::{
    ImportProgress, Raw, Wanted, convert, decide_act, default_plan, finish, float, provenance,
    ternary, tokenizer_parts,
};
use crate::pack::PackOptions;

/// The Hugging Face name of a tensor.
pub fn hf_name(role: TensorRole, layer: u16) -> String {
    let l = |s: &str| format!("model.layers.{layer}.{s}.weight");
    match role {
        TensorRole::TokenEmbd => "model.embed_tokens.weight".into(),
        TensorRole::OutputNorm => "model.norm.weight".into(),
        TensorRole::Output => "lm_head.weight".into(),
        TensorRole::Layer(lt) => l(match lt {
            LayerTensor::AttnNorm => "input_layernorm",
            LayerTensor::Q => "self_attn.q_proj",
            LayerTensor::K => "self_attn.k_proj",
            LayerTensor::V => "self_attn.v_proj",
            LayerTensor::AttnSubNorm => "self_attn.attn_sub_norm",
            LayerTensor::O => "self_attn.o_proj",
            LayerTensor::FfnNorm => "post_attention_layernorm",
            LayerTensor::Gate => "mlp.gate_proj",
            LayerTensor::Up => "mlp.up_proj",
            LayerTensor::FfnSubNorm => "mlp.ffn_sub_norm",
            LayerTensor::Down => "mlp.down_proj",
        }),
    }
}

/// The mapped safetensors files of a checkpoint and which file holds which tensor.
struct Shards {
    paths: Vec<PathBuf>,
    maps: Vec<tern_mmap::Mmap>,
    index: HashMap<String, usize>,
    /// The file whose SHA-256 goes into the provenance.
    hashed: PathBuf,
}

impl Shards {
    fn open(dir: &Path) -> Result<Shards> {
        let single = dir.join("model.safetensors");
        let idx = dir.join("model.safetensors.index.json");
        let (paths, hashed, weight_map) = if single.is_file() {
            (vec![single.clone()], single, None)
        } else if idx.is_file() {
            let s = std::fs::read_to_string(&idx)
                .with_context(|| format!("{}: cannot read", idx.display()))?;
            let j: Json = serde_json::from_str(&s)
                .with_context(|| format!("{}: invalid JSON", idx.display()))?;
            let wm = j
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| anyhow!("{}: no \"weight_map\" object", idx.display()))?;
            let mut files: Vec<String> = Vec::new();
            let mut map = HashMap::new();
            for (name, f) in wm {
                let f = f.as_str().ok_or_else(|| {
                    anyhow!("{}: weight_map[{name}] is not a string", idx.display())
                })?;
                if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                    bail!(
                        "{}: weight_map[{name}] = {f:?} is not a plain file name",
                        idx.display()
                    );
                }
                let i = files.iter().position(|x| x == f).unwrap_or_else(|| {
                    files.push(f.to_string());
                    files.len() - 1
                });
                map.insert(name.clone(), i);
            }
            (files.iter().map(|f| dir.join(f)).collect(), idx, Some(map))
        } else {
            bail!(
                "{}: neither model.safetensors nor model.safetensors.index.json found",
                dir.display()
            );
        };
        let mut maps = Vec::new();
        for p in &paths {
            let f =
                std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?;
            // safetensors bounds-checks all accesses against the map's length.
            maps.push(tern_mmap::map(&f).with_context(|| format!("{}: cannot map", p.display()))?);
        }
        let index = match weight_map {
            Some(m) => m,
            None => {
                let st = SafeTensors::deserialize(&maps[0])
                    .with_context(|| format!("{}", paths[0].display()))?;
                st.names().into_iter().map(|n| (n.to_string(), 0)).collect()
            }
        };
        Ok(Shards {
            paths,
            maps,
            index,
            hashed,
        })
    }
}

/// Import a Hugging Face safetensors directory.
///
/// # Errors
/// See [`super::import_path`]; messages name the file (`config.json` or the shard) and the
/// tensor or field.
pub fn import_hf_dir(
    dir: &Path,
    opts: &PackOptions,
    progress: &dyn Fn(ImportProgress<'_>),
) -> Result<OwnedModel> {
    let cfg_path = dir.join("config.json");
    let s = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("{}: cannot read", cfg_path.display()))?;
    let cfg: Json = serde_json::from_str(&s)
        .with_context(|| format!("{}: invalid JSON", cfg_path.display()))?;
    let shards = Shards::open(dir)?;
    let mut parsed = Vec::new();
    for (p, m) in shards.paths.iter().zip(&shards.maps) {
        parsed.push(SafeTensors::deserialize(m).with_context(|| format!("{}", p.display()))?);
    }
    let store = Store {
        shards: &shards,
        parsed,
    };
    let lookup = |name: &str| store.get(name);
    let (emb_path, emb) = lookup("model.embed_tokens.weight").ok_or_else(|| {
        anyhow!(
            "{}: missing tensor model.embed_tokens.weight",
            dir.display()
        )
    })?;
    let vocab = match emb.shape() {
        [v, _] => *v,
        s => bail!(
            "{}: tensor model.embed_tokens.weight has shape {s:?}, expected [vocab, hidden]",
            emb_path.display()
        ),
    };
    let config = config_from_json(
        &cfg,
        &cfg_path,
        vocab,
        lookup("lm_head.weight").is_some(),
        opts,
    )?;
    let wanted = super::wanted_tensors(&config);
    let mut tensors = Vec::with_capacity(wanted.len());
    let mut packed = false;
    let mut master_dtype = None;
    for (i, w) in wanted.iter().enumerate() {
        let name = hf_name(w.role, w.layer);
        let (path, view) =
            lookup(&name).ok_or_else(|| anyhow!("{}: missing tensor {name}", dir.display()))?;
        let raw = fetch(w, &name, &view, &store).with_context(|| format!("{}", path.display()))?;
        if w.is_ternary() {
            if view.dtype() == Dtype::U8 {
                packed = true;
            } else {
                master_dtype = Some(view.dtype());
            }
        }
        tensors.push(convert(w, raw).with_context(|| format!("{}: {name}", path.display()))?);
        progress(ImportProgress {
            tensor: &w.name,
            done: i + 1,
            total: wanted.len(),
        });
    }
    let format = match (packed, master_dtype) {
        (true, None) => "safetensors:packed".to_string(),
        (false, Some(d)) => format!("safetensors:{}-master", format!("{d:?}").to_lowercase()),
        _ => "safetensors:mixed".to_string(),
    };
    let tok = tokenizer_parts(crate::tokenizer::blob_from_tokenizer_json(dir)?)?;
    let plan = default_plan(&config, opts)?;
    let prov = provenance(dir, &shards.hashed, &format, opts)?;
    finish(config, tok, plan, prov, tensors)
}

fn float_layout(d: Dtype) -> Option<Layout> {
    match d {
        Dtype::F32 => Some(Layout::F32),
        Dtype::F16 => Some(Layout::F16),
        Dtype::BF16 => Some(Layout::Bf16),
        _ => None,
    }
}

/// The parsed shards.
struct Store<'a> {
    shards: &'a Shards,
    parsed: Vec<SafeTensors<'a>>,
}

impl<'a> Store<'a> {
    /// A tensor by HF name, with the file that holds it.
    fn get(&self, name: &str) -> Option<(&'a Path, TensorView<'a>)> {
        let &i = self.shards.index.get(name)?;
        let v = self.parsed.get(i)?.tensor(name).ok()?;
        Some((self.shards.paths[i].as_path(), v))
    }
}

fn fetch<'a>(w: &Wanted, name: &str, v: &TensorView<'a>, store: &Store<'a>) -> Result<Raw<'a>> {
    let (rows, cols) = (w.shape.0 as usize, w.shape.1 as usize);
    let shape = v.shape();
    let mismatch = |exp: Vec<usize>| {
        anyhow!("tensor {name}: shape {shape:?} disagrees with config.json, which implies {exp:?}")
    };
    if v.dtype() == Dtype::U8 && w.is_ternary() {
        if rows % 4 != 0 || shape != [rows / 4, cols] {
            return Err(mismatch(vec![rows / 4, cols]));
        }
        let sname = name.replace(".weight", ".weight_scale");
        let (_, sv) = store
            .get(&sname)
            .ok_or_else(|| anyhow!("missing tensor {sname} (packed weight {name} needs it)"))?;
        let sl = float_layout(sv.dtype())
            .ok_or_else(|| anyhow!("tensor {sname}: dtype {:?} is not a float", sv.dtype()))?;
        let s = float::to_f32(sl, sv.data()).with_context(|| format!("tensor {sname}"))?;
        let [ws] = s[..] else {
            bail!("tensor {sname}: {} values, expected 1", s.len())
        };
        if !(ws.is_finite() && ws > 0.0) {
            bail!("tensor {sname}: weight_scale {ws} is not finite and positive");
        }
        let codes =
            ternary::unpack_hf(v.data(), rows, cols).with_context(|| format!("tensor {name}"))?;
        return Ok(Raw::Ternary(ternary::Ternary {
            codes,
            weight_scale: ws,
        }));
    }
    let layout = float_layout(v.dtype())
        .ok_or_else(|| anyhow!("tensor {name}: dtype {:?} is not supported here", v.dtype()))?;
    let ok = if w.is_norm() {
        shape == [cols] || shape == [1, cols]
    } else {
        shape == [rows, cols]
    };
    if !ok {
        return Err(mismatch(if w.is_norm() {
            vec![cols]
        } else {
            vec![rows, cols]
        }));
    }
    Ok(Raw::Float {
        layout,
        bytes: Cow::Borrowed(v.data()),
    })
}

fn config_from_json(
    cfg: &Json,
    path: &Path,
    vocab: usize,
    has_lm_head: bool,
    opts: &PackOptions,
) -> Result<ModelConfig> {
    let p = path.display();
    let get_u32 = |k: &str| -> Result<Option<u32>> {
        match cfg.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| anyhow!("{p}: field {k} = {v} is not a valid count")),
        }
    };
    let req_u32 = |k: &str| get_u32(k)?.ok_or_else(|| anyhow!("{p}: field {k} is missing"));
    let get_f32 = |k: &str| -> Result<Option<f32>> {
        match cfg.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| anyhow!("{p}: field {k} = {v} is not a number")),
        }
    };
    let act_str = cfg.get("hidden_act").and_then(Json::as_str);
    let meta_act = match act_str {
        Some("relu2") => Some(FfnAct::Relu2),
        Some("silu") => Some(FfnAct::Silu),
        _ => None,
    };
    let why = format!("{p}: hidden_act is {act_str:?} (supported: relu2, silu)");
    let (ffn_act, ffn_act_source) = decide_act(opts, meta_act, None, &why)?;
    let dim = req_u32("hidden_size")?;
    let n_heads = req_u32("num_attention_heads")?;
    if n_heads == 0 {
        bail!("{p}: field num_attention_heads is 0");
    }
    let head_dim = match get_u32("head_dim")? {
        Some(h) => h,
        None if dim % n_heads == 0 => dim / n_heads,
        None => bail!("{p}: hidden_size {dim} is not a multiple of num_attention_heads {n_heads}"),
    };
    let vocab_size = u32::try_from(vocab)
        .map_err(|_| anyhow!("{p}: vocabulary of {vocab} rows is too large"))?;
    if let Some(v) = get_u32("vocab_size")?
        && v != vocab_size
    {
        bail!(
            "{p}: vocab_size {v} disagrees with model.embed_tokens.weight, which has {vocab_size} rows"
        );
    }
    let tied = match cfg.get("tie_word_embeddings").and_then(Json::as_bool) {
        Some(t) => t,
        None => !has_lm_head,
    };
    let config = ModelConfig {
        ffn_act,
        ffn_act_source,
        sub_norms: cfg.get("model_type").and_then(Json::as_str) == Some("bitnet"),
        tied_embedding: tied,
        dim,
        hidden_dim: req_u32("intermediate_size")?,
        n_layers: req_u32("num_hidden_layers")?,
        n_heads,
        n_kv_heads: get_u32("num_key_value_heads")?.unwrap_or(n_heads),
        head_dim,
        vocab_size,
        max_ctx: req_u32("max_position_embeddings")?,
        rope_theta: get_f32("rope_theta")?.unwrap_or(10000.0),
        norm_eps: get_f32("rms_norm_eps")?
            .ok_or_else(|| anyhow!("{p}: field rms_norm_eps is missing"))?,
    };
    config.validate().map_err(|e| anyhow!("{p}: {e}"))?;
    Ok(config)
}
