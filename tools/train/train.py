#!/usr/bin/env python3
"""Train Tern's bundled demo model: a small BitNet b1.58 model with the 2B4T graph.

Pipeline (every stage deterministic for a seed; see tools/train/README.md):

1. corpus   - the King James Bible (public domain) from Debian's `bible-kjv-text`, read
              with its `bible` program; one document per chapter, verse numbers removed.
              Every 25th chapter is held out.
2. tokenizer- byte-level BPE (4096 ids: 4094 learned + <|begin_of_text|>, <|end_of_text|>)
              trained with `tokenizers`, Llama-3 pre-tokenizer (Split with the Llama-3
              regex, then ByteLevel without regex), `ignore_merges`, BOS post-processor.
3. training - quantization-aware (BitNet b1.58): every linear layer of the decoder is a
              BitLinear with absmean ternary weights and per-token absmax int8 activations
              in the forward pass, straight-through estimator, float32 latent weights.
              Graph as microsoft/bitnet-b1.58-2B-4T: RMSNorm, RoPE (rotate_half), GQA,
              attn_sub_norm before o_proj, ffn_sub_norm before down_proj, relu(gate)^2*up,
              tied embedding (the LM head is not quantized).
4. export   - Hugging Face safetensors in the 2B4T deployment form ("hf-packed": uint8
              [out/4, in] with 4 row quarters per byte, weight_scale bf16 [1] = 1/alpha,
              bf16 embedding and norms) + config.json + tokenizer.json.
5. reference- `reference_forward()` loads the exported files back and runs the float32
              numerics of transformers' BitLinear (fixtures README) to measure held-out
              perplexity and record greedy continuations (tests/data/demo_reference.json).

Usage:
    python tools/train/train.py --out tools/train/out --reference tests/data/demo_reference.json
    cargo run --release -p tern-pack -- pack tools/train/out -o platforms/linux/assets/demo.tern
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
HELD_OUT_EVERY = 25  # chapter i is held out when i % 25 == 24

# Extra strings whose `tokenizers` ids are recorded, so that Tern's tokenizer is checked on
# more than the corpus (digits, contractions, whitespace runs, non-ASCII, an emoji).
TOKENIZER_STRINGS = [
    "Hello",
    "Hi",
    "Hello world! It's 2026: they'll say \"3.14159\" -- naïve café, Ünïcödé, 中文 🦙",
    "  leading spaces,\ttabs\t\tand\n\nnewlines\r\n  trailing   ",
    "I'M YOU'RE we've HE'D 1234567 x=1+2; (a) [b] {c}",
]

PROMPTS = [
    ("bos_only", None),
    ("genesis", "In the beginning God created"),
    ("moses", "And the LORD spake unto Moses, saying,"),
    ("blessed", "Blessed are the"),
]


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 32
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 256


# --------------------------------------------------------------------------------------
# 1. corpus


def read_kjv(path: str | None) -> list[str]:
    """Chapters of the KJV as documents: verses joined by spaces, numbers removed.

    `path`: a file in the format `bible -l0 Gen1:1-Rev22:21` prints; default: run `bible`.
    """
    if path:
        raw = Path(path).read_text(encoding="utf-8")
    else:
        raw = subprocess.run(
            ["bible", "-l0", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True
        ).stdout
    chapters: list[list[str]] = []
    for line in raw.splitlines():
        m = re.match(r"^\s+\d+ (.*)$", line)
        if m:
            chapters[-1].append(m.group(1).strip())
        elif line.strip():
            chapters.append([])  # "Genesis 1" heading
    docs = [" ".join(v) for v in chapters if v]
    if len(docs) != 1189:
        sys.exit(f"expected 1189 chapters of the KJV, got {len(docs)}")
    return docs


def split_docs(docs: list[str]) -> tuple[list[str], list[str]]:
    train = [d for i, d in enumerate(docs) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held = [d for i, d in enumerate(docs) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return train, held


# --------------------------------------------------------------------------------------
# 2. tokenizer


def train_tokenizer(train_docs: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(train_docs, trainer=trainer)
    if tok.get_vocab_size() != vocab_size - 2:
        sys.exit(f"BPE trainer gave {tok.get_vocab_size()} tokens, wanted {vocab_size - 2}")
    tok.add_special_tokens([BOS, EOS])
    bos = tok.token_to_id(BOS)
    assert bos == vocab_size - 2 and tok.token_to_id(EOS) == vocab_size - 1
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS}:1 $B:1",
        special_tokens=[(BOS, bos)],
    )
    # make sure the serialized file says exactly what Tern checks
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    assert j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == LLAMA3_PATTERN
    return Tokenizer.from_str(json.dumps(j))


# --------------------------------------------------------------------------------------
# 3. model (quantization-aware training form)


def weight_quant(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmean ternarization: (T in {-1,0,1}, alpha) with W ~ T * alpha."""
    alpha = w.abs().mean().clamp(min=1e-5)
    t = (w / alpha).round().clamp(-1, 1)
    return t, alpha


def act_quant(x: torch.Tensor) -> torch.Tensor:
    """Per-token absmax int8 fake quantization (dequantized back to float)."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    """BitNet b1.58 linear layer for training: ternary weights, int8 activations, STE."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        t, alpha = weight_quant(w)
        w_q = w + (t * alpha - w).detach()
        x_q = x + (act_quant(x) - x).detach()
        return F.linear(x_q, w_q)


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cos_sin(cfg: Config, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # as transformers' LlamaRotaryEmbedding, rope_type "default"
    inv_freq = 1.0 / (
        cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).float() / cfg.head_dim)
    )
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.head_dim
        self.cfg = cfg
        self.input_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = BitLinear(d, cfg.num_attention_heads * hd)
        self.k_proj = BitLinear(d, cfg.num_key_value_heads * hd)
        self.v_proj = BitLinear(d, cfg.num_key_value_heads * hd)
        self.attn_sub_norm = RMSNorm(cfg.num_attention_heads * hd, cfg.rms_norm_eps)
        self.o_proj = BitLinear(cfg.num_attention_heads * hd, d)
        self.post_attention_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.gate_proj = BitLinear(d, cfg.intermediate_size)
        self.up_proj = BitLinear(d, cfg.intermediate_size)
        self.ffn_sub_norm = RMSNorm(cfg.intermediate_size, cfg.rms_norm_eps)
        self.down_proj = BitLinear(cfg.intermediate_size, d)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, n, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, n, cfg.num_attention_heads, cfg.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, n, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, n, cfg.num_key_value_heads, cfg.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = cfg.num_attention_heads // cfg.num_key_value_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = a.transpose(1, 2).reshape(b, n, -1)
        x = x + self.o_proj(self.attn_sub_norm(a))
        h = self.post_attention_layernorm(x)
        f = F.relu(self.gate_proj(h)).square() * self.up_proj(h)
        return x + self.down_proj(self.ffn_sub_norm(f))


class BitNetLM(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        cos, sin = rope_cos_sin(self.cfg, torch.arange(n))
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x) @ self.embed_tokens.weight.t()  # tied, float LM head


# --------------------------------------------------------------------------------------
# 4. export (hf-packed, as microsoft/bitnet-b1.58-2B-4T)


def pack_ternary(t: torch.Tensor) -> torch.Tensor:
    """uint8 [out/4, in]: bits 2i..2i+1 of packed[r, c] = t[r + i*out/4, c] + 1."""
    out, _ = t.shape
    r = out // 4
    codes = (t.to(torch.int64) + 1).to(torch.uint8)
    packed = torch.zeros((r, t.shape[1]), dtype=torch.uint8)
    for i in range(4):
        packed |= codes[i * r : (i + 1) * r] << (2 * i)
    return packed


def unpack_ternary(p: torch.Tensor) -> torch.Tensor:
    parts = [((p >> (2 * i)) & 3).to(torch.float32) - 1.0 for i in range(4)]
    return torch.cat(parts, dim=0)


LINEARS = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
]


def export(model: BitNetLM, tok: Tokenizer, out: Path) -> None:
    cfg = model.cfg
    out.mkdir(parents=True, exist_ok=True)
    bf = torch.bfloat16
    sd: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        sd["model.embed_tokens.weight"] = model.embed_tokens.weight.to(bf).contiguous()
        sd["model.norm.weight"] = model.norm.weight.to(bf).contiguous()
        for n, layer in enumerate(model.layers):
            pre = f"model.layers.{n}."
            sd[pre + "input_layernorm.weight"] = layer.input_layernorm.weight.to(bf)
            sd[pre + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight.to(bf)
            sd[pre + "self_attn.attn_sub_norm.weight"] = layer.attn_sub_norm.weight.to(bf)
            sd[pre + "mlp.ffn_sub_norm.weight"] = layer.ffn_sub_norm.weight.to(bf)
            for group, name in LINEARS:
                t, alpha = weight_quant(getattr(layer, name).weight)
                sd[pre + f"{group}.{name}.weight"] = pack_ternary(t)
                # BitLinear divides by weight_scale: 1/alpha, stored (rounded) in bf16
                sd[pre + f"{group}.{name}.weight_scale"] = (1.0 / alpha).reshape(1).to(bf)
    sd = {k: v.contiguous() for k, v in sd.items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BitNetForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": cfg.vocab_size - 2,
        "eos_token_id": cfg.vocab_size - 1,
        "head_dim": cfg.head_dim,
        "hidden_act": "relu2",
        "hidden_size": cfg.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "model_type": "bitnet",
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_key_value_heads": cfg.num_key_value_heads,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": cfg.vocab_size,
        "quantization_config": {
            "modules_to_not_convert": None,
            "quant_method": "bitnet",
            "linear_class": "bitlinear",
            "quantization_mode": "offline",
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tok.save(str(out / "tokenizer.json"))
    tcfg = {
        "bos_token": BOS,
        "eos_token": EOS,
        "add_bos_token": True,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": cfg.max_position_embeddings,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=1) + "\n")


# --------------------------------------------------------------------------------------
# 5. reference forward on the exported files (float32, transformers' BitLinear numerics)


class Reference:
    """The exported checkpoint evaluated as transformers' `BitNetForCausalLM` does in float32.

    BitLinear: s_a = 127 * (1/clamp(max|x|, 1e-5)) (two roundings, as torch evaluates
    `127 / tensor`), x_q = clamp(round_half_even(x*s_a), -128, 127), acc = x_q @ T^T (exact
    in float32), y = acc / (weight_scale * s_a). RMSNorm/softmax in float32, LM head =
    float activations times the bf16 embedding.
    """

    def __init__(self, out: Path):
        c = json.loads((out / "config.json").read_text())
        self.cfg = Config(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=c["num_attention_heads"],
            num_key_value_heads=c["num_key_value_heads"],
            head_dim=c["head_dim"],
            rms_norm_eps=c["rms_norm_eps"],
            rope_theta=c["rope_theta"],
            max_position_embeddings=c["max_position_embeddings"],
        )
        sd = load_file(str(out / "model.safetensors"))
        self.w = {}
        for k, v in sd.items():
            if v.dtype == torch.uint8:
                self.w[k] = unpack_ternary(v)
            else:
                self.w[k] = v.to(torch.float32)

    def norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        var = x.pow(2).mean(-1, keepdim=True)
        return self.w[name] * (x * torch.rsqrt(var + self.cfg.rms_norm_eps))

    def bitlinear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        t, ws = self.w[name + ".weight"], self.w[name + ".weight_scale"]
        s_a = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5).reciprocal() * 127.0
        x_q = torch.round(x * s_a).clamp(-128, 127)
        acc = x_q @ t.t()
        return acc / (ws * s_a)

    def forward(self, ids: list[int], cache: list | None, pos0: int) -> tuple[torch.Tensor, list]:
        """Logits [len(ids), V] for `ids` at positions pos0.., with a KV cache (list per layer)."""
        cfg = self.cfg
        n = len(ids)
        if cache is None:
            cache = [(None, None) for _ in range(cfg.num_hidden_layers)]
        cos, sin = rope_cos_sin(cfg, torch.arange(pos0, pos0 + n))
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        hq, hk, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        for li in range(cfg.num_hidden_layers):
            p = f"model.layers.{li}."
            h = self.norm(x, p + "input_layernorm.weight")
            q = self.bitlinear(h, p + "self_attn.q_proj").view(n, hq, hd).transpose(0, 1)
            k = self.bitlinear(h, p + "self_attn.k_proj").view(n, hk, hd).transpose(0, 1)
            v = self.bitlinear(h, p + "self_attn.v_proj").view(n, hk, hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            pk, pv = cache[li]
            if pk is not None:
                k = torch.cat([pk, k], dim=1)
                v = torch.cat([pv, v], dim=1)
            cache[li] = (k, v)
            rep = hq // hk
            kk = k.repeat_interleave(rep, dim=0)
            vv = v.repeat_interleave(rep, dim=0)
            scores = (q @ kk.transpose(1, 2)) * (hd**-0.5)
            total = kk.shape[1]
            mask = torch.arange(total)[None, :] > (torch.arange(n)[:, None] + pos0)
            scores = scores.masked_fill(mask, float("-inf"))
            a = torch.softmax(scores, dim=-1, dtype=torch.float32) @ vv
            a = a.transpose(0, 1).reshape(n, hq * hd)
            x = x + self.bitlinear(self.norm(a, p + "self_attn.attn_sub_norm.weight"), p + "self_attn.o_proj")
            h = self.norm(x, p + "post_attention_layernorm.weight")
            g = self.bitlinear(h, p + "mlp.gate_proj")
            u = self.bitlinear(h, p + "mlp.up_proj")
            f = F.relu(g).square() * u
            x = x + self.bitlinear(self.norm(f, p + "mlp.ffn_sub_norm.weight"), p + "mlp.down_proj")
        x = self.norm(x, "model.norm.weight")
        return x @ self.w["model.embed_tokens.weight"].t(), cache

    def greedy(self, prompt: list[int], steps: int) -> tuple[list[int], list[float]]:
        logits, cache = self.forward(prompt, None, 0)
        last = logits[-1]
        toks, margins = [], []
        for i in range(steps):
            top = torch.topk(last, 2)
            nxt = int(top.indices[0])
            toks.append(nxt)
            margins.append(float(top.values[0] - top.values[1]))
            if i + 1 < steps:
                logits, cache = self.forward([nxt], cache, len(prompt) + i)
                last = logits[-1]
        return toks, margins


def reference_forward(out: Path, tok: Tokenizer, held_stream: list[int], ctx: int, n_greedy: int):
    ref = Reference(out)
    with torch.no_grad():
        nll, count = 0.0, 0
        for s in range(0, len(held_stream) - 1, ctx):
            chunk = held_stream[s : s + ctx + 1]
            if len(chunk) < 2:
                break
            logits, _ = ref.forward(chunk[:-1], None, 0)
            nll += float(F.cross_entropy(logits, torch.tensor(chunk[1:]), reduction="sum"))
            count += len(chunk) - 1
        ppl = math.exp(nll / count)
        prompts = []
        for name, text in PROMPTS:
            ids = tok.encode(text or "").ids
            toks, margins = ref.greedy(ids, n_greedy)
            prompts.append(
                {
                    "name": name,
                    "text": text,
                    "prompt_ids": ids,
                    "greedy_tokens": toks,
                    "top1_minus_top2_logit": [round(m, 6) for m in margins],
                    "greedy_text": tok.decode(toks),
                }
            )
    return ppl, count, prompts


# --------------------------------------------------------------------------------------
# training loop


def encode_docs(tok: Tokenizer, docs: list[str], eos: int) -> list[int]:
    stream: list[int] = []
    for enc in tok.encode_batch(docs):  # BOS + text
        stream.extend(enc.ids)
        stream.append(eos)
    return stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tools/train/out", help="export directory (HF safetensors)")
    ap.add_argument("--reference", default="tests/data/demo_reference.json", help="golden data to write")
    ap.add_argument("--corpus", default=None, help="KJV text as `bible -l0 Gen1:1-Rev22:21` prints it")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=256, help="training sequence length")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=300)
    ap.add_argument("--greedy", type=int, default=32)
    ap.add_argument("--time-steps", type=int, default=0, help="only time this many steps, then exit")
    ap.add_argument(
        "--export-only", action="store_true", help="skip training: export OUT/latent.pt (saved by a full run)"
    )
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()

    docs = read_kjv(args.corpus)
    train_docs, held_docs = split_docs(docs)
    cfg = Config(num_hidden_layers=args.layers)
    tok = train_tokenizer(train_docs, cfg.vocab_size)
    eos = tok.token_to_id(EOS)
    train_stream = torch.tensor(encode_docs(tok, train_docs, eos), dtype=torch.int64)
    held_list = encode_docs(tok, held_docs, eos)
    held_stream = torch.tensor(held_list, dtype=torch.int64)
    chars = sum(len(d) for d in train_docs)
    print(
        f"corpus: {len(train_docs)} train / {len(held_docs)} held-out chapters, "
        f"{len(train_stream)} / {len(held_stream)} tokens ({chars / len(train_stream):.2f} chars/token), "
        f"tokenizer {time.time() - t0:.1f}s",
        flush=True,
    )

    model = BitNetLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {asdict(cfg)}, {n_params} parameters", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(args.seed)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * p))

    def held_loss(n_windows: int = 16) -> float:
        model.eval()
        with torch.no_grad():
            starts = torch.linspace(0, len(held_stream) - args.ctx - 2, n_windows).long()
            x = torch.stack([held_stream[s : s + args.ctx] for s in starts])
            y = torch.stack([held_stream[s + 1 : s + args.ctx + 1] for s in starts])
            loss = F.cross_entropy(model(x).reshape(-1, cfg.vocab_size), y.reshape(-1))
        model.train()
        return float(loss)

    t_train = time.time()
    n_steps = 0 if args.export_only else (args.time_steps or args.steps)
    for step in range(n_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        starts = torch.randint(0, len(train_stream) - args.ctx - 1, (args.batch,), generator=gen)
        x = torch.stack([train_stream[s : s + args.ctx] for s in starts])
        y = torch.stack([train_stream[s + 1 : s + args.ctx + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == n_steps - 1:
            el = time.time() - t_train
            print(f"step {step:5d} loss {loss.item():.4f} lr {lr_at(step):.2e} {el:7.1f}s", flush=True)
        if (step + 1) % args.eval_every == 0:
            print(f"  held-out loss {held_loss():.4f}", flush=True)
    train_s = time.time() - t_train
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.export_only:
        model.load_state_dict(torch.load(out / "latent.pt"))
        train_s = json.loads(Path(args.reference).read_text())["training_seconds"] if Path(args.reference).exists() else 0
    elif not args.time_steps:
        torch.save(model.state_dict(), out / "latent.pt")  # float32 latent weights
    if args.time_steps:
        print(f"{args.time_steps} steps in {train_s:.1f}s: {train_s / args.time_steps:.3f} s/step")
        return
    print(f"training: {args.steps} steps in {train_s:.0f}s; held-out loss (QAT model) {held_loss():.4f}")

    export(model, tok, out)
    ppl, count, prompts = reference_forward(out, tok, held_list, cfg.max_position_embeddings, args.greedy)
    print(f"held-out perplexity per token (reference forward, exported weights): {ppl:.3f} over {count} tokens")
    for p in prompts:
        print(f"  {p['name']}: {p['text']!r} -> {p['greedy_text']!r} (min margin {min(p['top1_minus_top2_logit']):.3f})")
    sha = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    ref = {
        "source": "tools/train/train.py reference_forward (PyTorch float32, exported hf-packed weights)",
        "torch": torch.__version__,
        "args": {k: v for k, v in vars(args).items() if k not in ("export_only", "time_steps")},
        "config": asdict(cfg),
        "model_safetensors_sha256": sha,
        "held_out": {"tokens": count, "perplexity_per_token": round(ppl, 4), "window": cfg.max_position_embeddings},
        "training_seconds": round(train_s),
        "prompts": prompts,
        "tokenizer_checks": [
            {"text": t, "ids": tok.encode(t).ids}
            for t in TOKENIZER_STRINGS + held_docs[:3]
        ],
    }
    Path(args.reference).parent.mkdir(parents=True, exist_ok=True)
    Path(args.reference).write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {out}/ and {args.reference}; total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
