//! Attention's row kernels over one KV head's F16 rows for all the query heads that share it
//! (GQA): [`scalar`] (the spec: exactly the per-head `dot_rows_f16` / `axpy_rows_f16`, head
//! after head) and its SIMD variants, which convert each cached value to f32 once for every
//! head instead of once per head.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
