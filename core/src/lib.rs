//! # tern-core
//!
//! The device side of Tern, `no_std`, allocation-free and `#![forbid(unsafe_code)]`:
//!
//! * [`format`]: the `.tern` packed model format (zero-copy reader; writer behind `std`),
//!   specified in `core/FORMAT.md`.
//! * [`config`]: model hyper-parameters and the two supported graphs.
//! * [`plan`]: the [`plan::MemoryPlan`] that sizes the one arena a session runs in.
//! * [`forward`]: the BitNet b1.58 forward pass (2B4T graph and the Llama-style 1.58-bit graph).
//! * [`tokenizer`]: Llama-3 byte-level BPE and Llama-2 SentencePiece, read in place from the file.
//! * [`sampler`]: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded RNG.
//! * [`session`]: the decode loop state over an arena.
//!
//! * [`source`]: the weight-source seam for streamed weights.
//!
//! Platforms implement the seams: [`exec::Exec`] (parallel rows) and the weight source
//! (a resident `&[u8]`, mmap or flash, or a [`source::WeightSource`] streaming from storage).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(all(feature = "defmt", feature = "std"))]
compile_error!("features `defmt` and `std` are mutually exclusive");

pub mod attention;
pub mod config;
mod embed;
pub mod error;
pub mod exec;
pub mod format;
pub mod forward;
pub mod plan;
pub mod sampler;
pub mod session;
pub mod source;
pub mod tokenizer;

pub use error::Error;
pub use tern_kernels as kernels;
