//! # tern-pack
//!
//! Host-side tooling: importers (GGUF, HF safetensors), packing into `.tern`, synthetic models.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod gguf;
pub mod import;
pub mod pack;
pub mod synth;
pub mod tokenizer;
