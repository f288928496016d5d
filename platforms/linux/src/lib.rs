//! # tern-linux
//!
//! Tern on Linux SBCs and edge boxes: memory-mapped `.tern` models (packing GGUF and
//! safetensors inputs once into a cache) or weights streamed with `pread` and a read-ahead
//! thread ([`stream`]), runtime CPU feature detection feeding
//! [`tern_kernels::select`], the arena allocation, and the pieces of the `tern` CLI.
#![warn(missing_docs)]

pub mod arena;
pub mod bench;
pub mod cpu;
pub mod generate;
pub mod model_file;
pub mod perplexity;
pub mod pool;
pub mod stream;
