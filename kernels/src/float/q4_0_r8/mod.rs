//! The LM-head matvec over `Q4_0_R8` rows: [`scalar`] (the spec) and its SIMD variants
//! (see `layout::q4_0_r8_block_offset` for the byte order they read).

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
