//! Tern on bare metal: the pieces a board needs to run a packed `.tern` model with no OS and
//! no allocator.
//!
//! - [`source`]: a model resident in flash or RAM (`&'static [u8]`, XIP), found by its
//!   preamble at a known address.
//! - [`stream`]: weights streamed from storage through `embedded_io::{Read, Seek}`, for
//!   models larger than RAM ([`generate_greedy_streamed`]).
//! - [`arena`]: a static, 64-byte-aligned arena handed out once (`critical-section` guarded).
//! - [`SingleCore`]: the single-core [`tern_core::exec::Exec`] (core's `SingleThread`).
//! - [`generate`]: tokenize → prefill → greedy decode with streaming UTF-8 text, the same
//!   tokens as `tern run --temp 0`.
//!
//! The board supplies the `critical-section` implementation, the kernel set (from its
//! datasheet: e.g. NEON + dotprod on a Cortex-A76), and the output channel (semihosting, UART).
//! Example boards under `examples/` boot under qemu-system (see the README, "Bare metal").
#![no_std]
#![warn(missing_docs)]

pub mod arena;
pub mod generate;
pub mod source;
pub mod stream;

pub use arena::StaticArena;
pub use generate::{GenStats, arena_bytes_for, generate_greedy, generate_greedy_streamed};
pub use source::find_model;
/// Runs every row chunk on the calling core, in order (bare metal uses one core): core's
/// [`tern_core::exec::SingleThread`] under the name the board crates use.
pub use tern_core::exec::SingleThread as SingleCore;

/// Everything that can go wrong on the bare-metal path.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The core rejected the model or the run (parse, plan, tokenizer, forward); see the inner
    /// error.
    Core(tern_core::Error),
    /// The arena given to [`generate_greedy`] is shorter than [`arena_bytes_for`] says; give a
    /// bigger one (or a shorter prompt / fewer tokens).
    ArenaTooSmall {
        /// Bytes needed.
        need_bytes: usize,
        /// Bytes given.
        have_bytes: usize,
    },
    /// The arena does not start on a 64-byte boundary; use [`StaticArena`].
    ArenaMisaligned,
    /// The prompt tokenized to nothing and the model's tokenizer adds no BOS; give a prompt.
    EmptyPrompt,
    /// The prompt has more tokens than the model's context; shorten it.
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// Context length, tokens.
        ctx_len: usize,
    },
}

impl From<tern_core::Error> for Error {
    fn from(e: tern_core::Error) -> Self {
        Error::Core(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Core(e) => write!(f, "core: {e:?}"),
            Error::ArenaTooSmall {
                need_bytes,
                have_bytes,
            } => write!(
                f,
                "arena too small: need {need_bytes} bytes, have {have_bytes}"
            ),
            Error::ArenaMisaligned => write!(f, "arena is not 64-byte aligned"),
            Error::EmptyPrompt => write!(f, "empty prompt and the tokenizer adds no BOS"),
            Error::PromptTooLong { tokens, ctx_len } => {
                write!(f, "prompt has {tokens} tokens, context is {ctx_len}")
            }
        }
    }
}
