//! Attention's row kernels over one KV head's F16 rows for all the query heads that share it
//! (GQA): [`scalar`] (the spec: exactly the per-head `dot_rows_f16` / `axpy_rows_f16`, head
//! after head) and its SIMD variants, which convert each cached value to f32 once for every
//! head instead of once per head.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub mod scalar;

/// A variant built from its per-head row kernels (`$dots`, `$axpys`: the spec's loop over the
/// heads, with that variant's `dot_rows_f16` / `axpy_rows_f16`), for the variants without a
/// multi-head kernel of their own.
#[allow(unused_macros)]
macro_rules! by_head {
    ($dots_heads:ident, $axpys_heads:ident, $dots:path, $axpys:path, $doc:literal) => {
        #[doc = concat!("[`super::scalar::dot_rows_heads_f16`] with ", $doc, "'s `dot_rows_f16`, head")]
        /// after head (bit-identical).
        pub(crate) fn $dots_heads(
            heads: usize,
            w: &[u8],
            stride_bytes: usize,
            q: &[f32],
            out: &mut [f32],
        ) {
            $crate::float::gqa::scalar::dots_by_head(heads, w, stride_bytes, q, out, $dots)
        }
        #[doc = concat!("[`super::scalar::axpy_rows_heads_f16`] with ", $doc, "'s `axpy_rows_f16`, head")]
        /// after head (bit-identical).
        pub(crate) fn $axpys_heads(
            heads: usize,
            a: &[f32],
            x: &[u8],
            stride_bytes: usize,
            y: &mut [f32],
        ) {
            $crate::float::gqa::scalar::axpys_by_head(heads, a, x, stride_bytes, y, $axpys)
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    by_head!(
        dot_rows_heads_f16_avx2,
        axpy_rows_heads_f16_avx2,
        crate::float::avx2::dot_rows_f16_avx2,
        crate::float::avx2::axpy_rows_f16_avx2,
        "AVX2"
    );
}

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    by_head!(
        dot_rows_heads_f16_neon,
        axpy_rows_heads_f16_neon,
        crate::float::neon::dot_rows_f16_neon,
        crate::float::neon::axpy_rows_f16_neon,
        "NEON"
    );
}
