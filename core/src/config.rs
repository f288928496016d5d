//! Model hyper-parameters and graph choice.
//!
//! Source: microsoft/bitnet-b1.58-2B-4T `config.json` fields (2B4T report, arXiv:2504.12285 §2)
//! and the Llama-style 1.58-bit models (Falcon3-1.58bit, Llama3-8B-1.58).

use serde::{Deserialize, Serialize};

use crate::Error;

/// The feed-forward activation `act(gate(x)) * up(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FfnAct {
    /// Squared ReLU, `relu(x)^2` (BitNet b1.58 2B4T, `hidden_act: "relu2"`).
    Relu2,
    /// SiLU, `x * sigmoid(x)` (1bitLLM, Falcon3-1.58bit, Llama3-8B-1.58).
    Silu,
}

/// How the importer decided the FFN activation (recorded so `tern inspect` can say why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FfnActSource {
    /// Stated by the source metadata (`hidden_act`, or arch `bitnet-b1.58`/`bitnet-25`).
    Metadata,
    /// Inferred by the documented rule (see `tools/pack` README: GGUF arch `bitnet`).
    Rule,
    /// Forced by the user (`--ffn-act`).
    Override,
}

/// Model hyper-parameters. Shapes below use these names: `dim` (hidden size), `hidden_dim`
/// (FFN intermediate size), `q_dim = n_heads * head_dim`, `kv_dim = n_kv_heads * head_dim`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelConfig {
    /// FFN activation.
    pub ffn_act: FfnAct,
    /// Where `ffn_act` came from.
    pub ffn_act_source: FfnActSource,
    /// BitNet 2B4T sub-norms (`attn_sub_norm` before `o_proj`, `ffn_sub_norm` before `down_proj`).
    pub sub_norms: bool,
    /// LM head tied to the token embedding (no separate `output` tensor).
    pub tied_embedding: bool,
    /// Hidden size.
    pub dim: u32,
    /// FFN intermediate size.
    pub hidden_dim: u32,
    /// Decoder layers.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (GQA: `n_heads` must be a multiple).
    pub n_kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Vocabulary size (rows of the embedding / LM head).
    pub vocab_size: u32,
    /// Context length the model was trained for, tokens.
    pub max_ctx: u32,
    /// RoPE base frequency (theta).
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
}

impl ModelConfig {
    /// `n_heads * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_heads as usize * self.head_dim as usize
    }
    /// `n_kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads as usize * self.head_dim as usize
    }

    /// Check the config for zero, overflowing or inconsistent dims.
    ///
    /// # Errors
    /// [`Error::BadConfig`] naming the violated rule.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what| Err(Error::BadConfig { what });
        const LIMIT: u32 = 1 << 20;
        if self.dim == 0 || self.hidden_dim == 0 || self.n_layers == 0 || self.n_heads == 0 {
            return bad("dim, hidden_dim, n_layers and n_heads must be non-zero");
        }
        if self.n_kv_heads == 0 || self.head_dim == 0 || self.vocab_size == 0 || self.max_ctx == 0 {
            return bad("n_kv_heads, head_dim, vocab_size and max_ctx must be non-zero");
        }
        if self.dim > LIMIT
            || self.hidden_dim > LIMIT
            || self.head_dim > 4096
            || self.n_heads > 4096
        {
            return bad("a dimension exceeds the supported range");
        }
        if self.n_layers > 1024 || self.vocab_size > (1 << 24) || self.max_ctx > (1 << 24) {
            return bad("n_layers, vocab_size or max_ctx exceeds the supported range");
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad("n_heads must be a multiple of n_kv_heads (GQA)");
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad("head_dim must be even (RoPE rotates pairs)");
        }
        if self.q_dim() > LIMIT as usize {
            return bad("n_heads * head_dim exceeds the supported range");
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad("rope_theta must be finite and positive");
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return bad("norm_eps must be finite and non-negative");
        }
        Ok(())
    }
}
