//! Activation quantizers: f32 → int8, one scale per token (row).
//!
//! Source: BitNet b1.58 (Ma et al. 2024, arXiv:2402.17764 §2, "absmax" activation
//! quantization) as transformers `integrations/bitnet.py` `BitLinear.forward` evaluates it in
//! float32; the exact evaluation order is written down in `shared/fixtures/README.md`.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
