//! Float kernels: row decoding and dot products over F32 / F16 / BF16 rows stored as
//! little-endian bytes (embedding lookup and the LM head).

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
