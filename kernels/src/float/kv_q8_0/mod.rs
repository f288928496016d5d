//! Attention's row kernels over one KV head's rows in a Q8_0 KV cache (llama.cpp's
//! `--cache-type-k q8_0 --cache-type-v q8_0`: GGUF `block_q8_0`, an f16 scale and 32 int8
//! values per 32 elements, 34 bytes): [`scalar`] (the spec) and its SIMD variants, each
//! bit-identical to it.
//!
//! - `dot_rows_q8_0`: `K·q`, the query quantized to Q8_0 like the LM head's activations, exact
//!   integer block sums, one f32 sum per row in block order (so SIMD lanes can be rows);
//! - `axpy_rows_q8_0`: `y += Σ_r a[r] · v_r`, row after row.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub mod scalar;
