//! Float kernels: row decoding and dot products over F32 / F16 / BF16 rows stored as
//! little-endian bytes (and F16 rows interleaved as `F16_R8`), and over Q8_0 / Q4_0 block rows
//! (and Q4_0 rows interleaved as `Q4_0_R8`) with int8 activations (embedding lookup and the LM
//! head), and attention's row kernels over F16 and Q8_0 KV caches.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub mod gqa;
pub mod kv_q8_0;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_dot;
pub mod q4_0_r8;
#[cfg(target_arch = "x86_64")]
mod reduce8;
pub mod scalar;
