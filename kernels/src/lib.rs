//! # tern-kernels
//!
//! Ternary × int8 compute kernels for BitNet b1.58 inference, `no_std` and allocation-free.
//!
//! * [`layout`]: packed weight block layouts (`#[repr(C)]` structs with size asserts) and the
//!   table of layouts the `.tern` format refers to by id.
//! * [`quant`]: the per-token absmax activation quantizer (f32 → int8), bit-exact with the
//!   reference definition (BitNet b1.58, arXiv:2402.17764 §2; transformers `BitLinear`).
//! * [`ternary`]: ternary weight × int8 activation matrix-vector kernels.
//! * [`probe`]: the memory read-bandwidth probe behind the decode roofline.
//! * [`select`]: choose a [`KernelSet`] from plain [`CpuFeatures`] bools. Feature *detection*
//!   belongs to the platform crates; this crate never touches the OS.
//!
//! Every SIMD variant is tested bit-exact (int32 accumulators) against the scalar reference,
//! which is the specification. An unported variant points at scalar: no table slot is empty.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod float;
pub mod layout;
pub mod probe;
pub mod quant;
mod select;
pub mod ternary;

pub use select::{
    AxpyRows, AxpyRowsHeads, CpuFeatures, DotPanels, DotRows, DotRowsHeads, KernelSet,
    KernelVariant, MatvecQ8, RescaleT, select, select_scalar, select_variant,
};
