//! Ternary weight × int8 activation kernels.
//!
//! `matvec_t2_i8*`: `out[r] = Σ_c w[r, c] · x[c]` as exact int32 sums, with `w: (rows, cols)`
//! in [`crate::layout::BlockT2`] layout (`rows * t2_row_bytes(cols)` bytes) and `x: (cols,)`.
//! The float rescale (`acc / (weight_scale * s_a)`) is the caller's, so that every variant
//! can be compared bit for bit on its int32 output.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon_dot;
pub mod scalar;
