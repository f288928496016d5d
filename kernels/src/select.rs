//! Kernel selection from plain CPU feature bools (detection is the platform's job).

use crate::layout::TernaryLayout;
use crate::{float, quant, ternary};

/// CPU features that matter to Tern's kernels, as plain bools filled in by the platform
/// (`is_x86_feature_detected!`, `is_aarch64_feature_detected!`, or a board's datasheet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// x86-64 AVX2.
    pub avx2: bool,
    /// x86-64 F16C (half-precision conversions; every AVX2 CPU Tern targets has it).
    pub f16c: bool,
    /// x86-64 AVX-512 F, BW and VL (all three).
    pub avx512: bool,
    /// x86-64 AVX-512 VNNI (`vpdpbusd`; AMD Zen 4 and later, Intel Ice Lake and later).
    pub avx512vnni: bool,
    /// AArch64 Advanced SIMD (NEON).
    pub neon: bool,
    /// AArch64 dot product (`sdot`), ARMv8.2 (e.g. Cortex-A76, Raspberry Pi 5).
    pub dotprod: bool,
}

/// Which family of implementations a [`KernelSet`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelVariant {
    /// Portable scalar reference.
    Scalar,
    /// x86-64 AVX2 (+ F16C).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI, on top of AVX2 (+ F16C).
    Avx512Vnni,
    /// AArch64 NEON without dotprod.
    Neon,
    /// AArch64 NEON with dotprod.
    NeonDot,
}

impl KernelVariant {
    /// All variants, best first.
    pub const ALL: [KernelVariant; 5] = [
        KernelVariant::NeonDot,
        KernelVariant::Neon,
        KernelVariant::Avx512Vnni,
        KernelVariant::Avx2,
        KernelVariant::Scalar,
    ];

    /// Name used by `TERN_KERNELS` and printed by the CLI.
    pub fn name(self) -> &'static str {
        match self {
            KernelVariant::Scalar => "scalar",
            KernelVariant::Avx2 => "avx2",
            KernelVariant::Avx512Vnni => "avx512-vnni",
            KernelVariant::Neon => "neon",
            KernelVariant::NeonDot => "neon-dot",
        }
    }
    /// Parse a `TERN_KERNELS` value.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "scalar" => KernelVariant::Scalar,
            "avx2" => KernelVariant::Avx2,
            "avx512-vnni" => KernelVariant::Avx512Vnni,
            "neon" => KernelVariant::Neon,
            "neon-dot" => KernelVariant::NeonDot,
            _ => return None,
        })
    }
    /// Whether this variant can run on a CPU with `f` (and this build's architecture).
    pub fn supported(self, f: CpuFeatures) -> bool {
        match self {
            KernelVariant::Scalar => true,
            KernelVariant::Avx2 => cfg!(target_arch = "x86_64") && f.avx2 && f.f16c,
            KernelVariant::Avx512Vnni => {
                cfg!(target_arch = "x86_64") && f.avx2 && f.f16c && f.avx512 && f.avx512vnni
            }
            KernelVariant::Neon => cfg!(target_arch = "aarch64") && f.neon,
            KernelVariant::NeonDot => cfg!(target_arch = "aarch64") && f.neon && f.dotprod,
        }
    }
}

/// A block-quantized LM-head matvec `(w, q, d, out)`, see
/// [`float::scalar::matvec_q4_0_q8_0`].
pub type MatvecQ8 = fn(&[u8], &[i8], &[f32], &mut [f32]);

/// The transposed BitLinear rescale `(a, rows, scale, s_a, o, o_stride)`, see
/// [`float::scalar::rescale_t_i32`].
pub type RescaleT = fn(&[i32], usize, f32, &[f32], &mut [f32], usize);

/// Dots of strided float rows `(w, stride_bytes, x: (n,), out: (rows,))`, see
/// [`float::scalar::dot_rows_f16`].
pub type DotRows = fn(&[u8], usize, &[f32], &mut [f32]);

/// Dots of the rows of an `F16_R8` matrix `(w, x: (cols,), out: (rows,))`, see
/// [`float::scalar::dot_panels_f16`].
pub type DotPanels = fn(&[u8], &[f32], &mut [f32]);

/// Weighted sums of strided float rows `(a: (rows,), x, stride_bytes, y: (n,))`, see
/// [`float::scalar::axpy_rows_f16`].
pub type AxpyRows = fn(&[f32], &[u8], usize, &mut [f32]);

/// Attention's row dots of several query heads over one KV head's F16 rows `(heads, w,
/// stride_bytes, q: (heads, n), out: (heads, rows))`, see
/// [`float::gqa::scalar::dot_rows_heads_f16`].
pub type DotRowsHeads = fn(usize, &[u8], usize, &[f32], &mut [f32]);

/// Attention's axpys of several query heads over one KV head's F16 rows `(heads, a: (heads,
/// rows), x, stride_bytes, y: (heads, n))`, see [`float::gqa::scalar::axpy_rows_heads_f16`].
pub type AxpyRowsHeads = fn(usize, &[f32], &[u8], usize, &mut [f32]);

/// Attention's weighted sum of consecutive Q8_0 KV rows `(a: (rows,), x, y: (n,))`, see
/// [`float::kv_q8_0::scalar::axpy_rows_q8_0`].
pub type AxpyRowsQ8 = fn(&[f32], &[u8], &mut [f32]);

/// A table of kernel entry points. Every slot is filled: unported variants point at scalar.
#[derive(Clone, Copy, Debug)]
pub struct KernelSet {
    /// The variant this set belongs to.
    pub variant: KernelVariant,
    /// Absmax int8 quantizer: `(x: (n,), q: (n,)) -> s_a`. See [`quant::scalar::quantize_row_i8_absmax`].
    pub quantize_i8: fn(&[f32], &mut [i8]) -> f32,
    /// Ternary matvec: `(w, cols, x: (cols,), out: (rows,))`. See [`ternary::scalar::matvec_t2_i8_scalar`].
    pub matvec_t2_i8: fn(&[u8], usize, &[i8], &mut [i32]),
    /// Ternary matmul (prefill): `(w, cols, x: (n_tok, cols), n_tok, out: (rows, n_tok))`.
    /// See [`ternary::scalar::matmul_t2_i8_scalar`].
    pub matmul_t2_i8: fn(&[u8], usize, &[i8], usize, &mut [i32]),
    /// Ternary matvec on `T1_160` weights: `(w, cols, x: (cols,), out: (rows,))`. See
    /// [`ternary::scalar::matvec_t1_i8_scalar`].
    pub matvec_t1_i8: fn(&[u8], usize, &[i8], &mut [i32]),
    /// Ternary matmul (prefill) on `T1_160` weights: `(w, cols, x: (n_tok, cols), n_tok,
    /// out: (rows, n_tok))`. See [`ternary::scalar::matmul_t1_i8_scalar`].
    pub matmul_t1_i8: fn(&[u8], usize, &[i8], usize, &mut [i32]),
    /// Dot of an F16 row (little-endian bytes) with f32 `x` (LM head).
    pub dot_f16: fn(&[u8], &[f32]) -> f32,
    /// Dot of a BF16 row with f32 `x`.
    pub dot_bf16: fn(&[u8], &[f32]) -> f32,
    /// Dot of an F32 row with f32 `x`.
    pub dot_f32: fn(&[u8], &[f32]) -> f32,
    /// Q8_0 activation quantizer: `(x: (n,), q: (n,), d: (n/32,))`. See
    /// [`float::scalar::quantize_q8_0_act`].
    pub quantize_q8_0: fn(&[f32], &mut [i8], &mut [f32]),
    /// Dot of a Q8_0 row with Q8_0-quantized activations `(w, q, d) -> f32`. See
    /// [`float::scalar::dot_q8_0_row`].
    pub dot_q8_0: fn(&[u8], &[i8], &[f32]) -> f32,
    /// Dots of strided F32 rows with `x` (attention scores): `(w, stride_bytes, x: (n,),
    /// out: (rows,))`. See [`float::scalar::dot_rows_f32`].
    pub dot_rows_f32: DotRows,
    /// Dots of strided F16 rows with `x`. See [`float::scalar::dot_rows_f16`].
    pub dot_rows_f16: DotRows,
    /// Dots of strided BF16 rows with `x` (a BF16 LM head). See
    /// [`float::scalar::dot_rows_bf16`].
    pub dot_rows_bf16: DotRows,
    /// Dots of the rows of an `F16_R8` matrix (an LM head stored row-interleaved) with `x`:
    /// `(w, x: (cols,), out: (rows,))`. See [`float::scalar::dot_panels_f16`].
    pub dot_panels_f16: DotPanels,
    /// `y += Σ_r a[r] · x_r` over strided F32 rows (attention values): `(a: (rows,), x,
    /// stride_bytes, y: (n,))`. See [`float::scalar::axpy_rows_f32`].
    pub axpy_rows_f32: AxpyRows,
    /// The same over F16 rows. See [`float::scalar::axpy_rows_f16`].
    pub axpy_rows_f16: AxpyRows,
    /// [`Self::dot_rows_f16`] for the query heads that share a KV head (GQA), each value
    /// converted once for all of them. See [`float::gqa::scalar::dot_rows_heads_f16`].
    pub dot_rows_heads_f16: DotRowsHeads,
    /// [`Self::axpy_rows_f16`] for the query heads that share a KV head. See
    /// [`float::gqa::scalar::axpy_rows_heads_f16`].
    pub axpy_rows_heads_f16: AxpyRowsHeads,
    /// BitLinear's transposed rescale of batched sums `(a, rows, scale, s_a, o, o_stride)`. See
    /// [`float::scalar::rescale_t_i32`].
    pub rescale_t_i32: RescaleT,
    /// Dot of a Q4_0 row with Q8_0-quantized activations `(w, q, d) -> f32`. See
    /// [`float::scalar::dot_q4_0_row`].
    pub dot_q4_0: fn(&[u8], &[i8], &[f32]) -> f32,
    /// LM-head matvec over Q4_0 rows `(w, q, d, out)`, `out: (rows,)`. See
    /// [`float::scalar::matvec_q4_0_q8_0`].
    pub matvec_q4_0_q8_0: MatvecQ8,
    /// LM-head matvec over `Q4_0_R8` rows `(w, q, d, out)`, `out: (rows,)`, rows a multiple
    /// of 8. See [`float::q4_0_r8::scalar::matvec_q4_0_r8_q8_0`].
    pub matvec_q4_0_r8_q8_0: MatvecQ8,
    /// Attention's `K·q` over consecutive Q8_0 KV rows with a Q8_0-quantized query `(w, q,
    /// d, out)`, `out: (rows,)`. See [`float::kv_q8_0::scalar::dot_rows_q8_0`].
    pub dot_rows_q8_0: MatvecQ8,
    /// Attention's `P·V` over consecutive Q8_0 KV rows `(a: (rows,), x, y: (n,))`. See
    /// [`float::kv_q8_0::scalar::axpy_rows_q8_0`].
    pub axpy_rows_q8_0: AxpyRowsQ8,
}

impl KernelSet {
    /// The matvec of ternary layout `l` (`(w, cols, x: (cols,), out: (rows,))`).
    pub fn matvec_ternary(&self, l: TernaryLayout) -> fn(&[u8], usize, &[i8], &mut [i32]) {
        match l {
            TernaryLayout::T2_128 => self.matvec_t2_i8,
            TernaryLayout::T1_160 => self.matvec_t1_i8,
        }
    }
    /// The prefill matmul of ternary layout `l` (`(w, cols, x: (n_tok, cols), n_tok,
    /// out: (rows, n_tok))`).
    pub fn matmul_ternary(&self, l: TernaryLayout) -> fn(&[u8], usize, &[i8], usize, &mut [i32]) {
        match l {
            TernaryLayout::T2_128 => self.matmul_t2_i8,
            TernaryLayout::T1_160 => self.matmul_t1_i8,
        }
    }
}

static SCALAR: KernelSet = KernelSet {
    variant: KernelVariant::Scalar,
    quantize_i8: quant::scalar::quantize_row_i8_absmax,
    matvec_t2_i8: ternary::scalar::matvec_t2_i8_scalar,
    matmul_t2_i8: ternary::scalar::matmul_t2_i8_scalar,
    matvec_t1_i8: ternary::scalar::matvec_t1_i8_scalar,
    matmul_t1_i8: ternary::scalar::matmul_t1_i8_scalar,
    dot_f16: float::scalar::dot_f16_row,
    dot_bf16: float::scalar::dot_bf16_row,
    dot_f32: float::scalar::dot_f32_row,
    quantize_q8_0: float::scalar::quantize_q8_0_act,
    dot_q8_0: float::scalar::dot_q8_0_row,
    dot_rows_f32: float::scalar::dot_rows_f32,
    dot_rows_f16: float::scalar::dot_rows_f16,
    dot_rows_bf16: float::scalar::dot_rows_bf16,
    dot_panels_f16: float::scalar::dot_panels_f16,
    axpy_rows_f32: float::scalar::axpy_rows_f32,
    axpy_rows_f16: float::scalar::axpy_rows_f16,
    dot_rows_heads_f16: float::gqa::scalar::dot_rows_heads_f16,
    axpy_rows_heads_f16: float::gqa::scalar::axpy_rows_heads_f16,
    rescale_t_i32: float::scalar::rescale_t_i32,
    dot_q4_0: float::scalar::dot_q4_0_row,
    matvec_q4_0_q8_0: float::scalar::matvec_q4_0_q8_0,
    matvec_q4_0_r8_q8_0: float::q4_0_r8::scalar::matvec_q4_0_r8_q8_0,
    dot_rows_q8_0: float::kv_q8_0::scalar::dot_rows_q8_0,
    axpy_rows_q8_0: float::kv_q8_0::scalar::axpy_rows_q8_0,
};

#[cfg(target_arch = "x86_64")]
static AVX2: KernelSet = KernelSet {
    variant: KernelVariant::Avx2,
    quantize_i8: quant::avx2::quantize_row_i8_absmax_avx2,
    matvec_t2_i8: ternary::avx2::matvec_t2_i8_avx2,
    matmul_t2_i8: ternary::avx2::matmul_t2_i8_avx2,
    matvec_t1_i8: ternary::avx2::matvec_t1_i8_avx2,
    matmul_t1_i8: ternary::avx2::matmul_t1_i8_avx2,
    dot_f16: float::avx2::dot_f16_row_avx2,
    dot_bf16: float::avx2::dot_bf16_row_avx2,
    dot_f32: float::avx2::dot_f32_row_avx2,
    quantize_q8_0: float::avx2::quantize_q8_0_act_avx2,
    dot_q8_0: float::avx2::dot_q8_0_row_avx2,
    dot_rows_f32: float::avx2::dot_rows_f32_avx2,
    dot_rows_f16: float::avx2::dot_rows_f16_avx2,
    dot_rows_bf16: float::avx2::dot_rows_bf16_avx2,
    dot_panels_f16: float::avx2::dot_panels_f16_avx2,
    axpy_rows_f32: float::avx2::axpy_rows_f32_avx2,
    axpy_rows_f16: float::avx2::axpy_rows_f16_avx2,
    dot_rows_heads_f16: float::gqa::avx2::dot_rows_heads_f16_avx2,
    axpy_rows_heads_f16: float::gqa::avx2::axpy_rows_heads_f16_avx2,
    rescale_t_i32: float::avx2::rescale_t_i32_avx2,
    dot_q4_0: float::avx2::dot_q4_0_row_avx2,
    matvec_q4_0_q8_0: float::avx2::matvec_q4_0_q8_0_avx2,
    matvec_q4_0_r8_q8_0: float::q4_0_r8::avx2::matvec_q4_0_r8_q8_0_avx2,
    dot_rows_q8_0: float::kv_q8_0::avx2::dot_rows_q8_0_avx2,
    axpy_rows_q8_0: float::kv_q8_0::avx2::axpy_rows_q8_0_avx2,
};

#[cfg(target_arch = "x86_64")]
static AVX512_VNNI: KernelSet = KernelSet {
    variant: KernelVariant::Avx512Vnni,
    matvec_t2_i8: ternary::avx512::matvec_t2_i8_avx512vnni,
    matvec_t1_i8: ternary::avx512::matvec_t1_i8_avx512vnni,
    dot_rows_f16: float::avx512::dot_rows_f16_avx512,
    dot_rows_bf16: float::avx512::dot_rows_bf16_avx512,
    dot_rows_f32: float::avx512::dot_rows_f32_avx512,
    dot_panels_f16: float::avx512::dot_panels_f16_avx512,
    dot_rows_heads_f16: float::gqa::avx512::dot_rows_heads_f16_avx512,
    axpy_rows_heads_f16: float::gqa::avx512::axpy_rows_heads_f16_avx512,
    matvec_q4_0_r8_q8_0: float::q4_0_r8::avx2::matvec_q4_0_r8_q8_0_avx512vnni,
    // The other slots share the AVX2 kernels.
    ..AVX2
};

#[cfg(target_arch = "aarch64")]
static NEON: KernelSet = KernelSet {
    variant: KernelVariant::Neon,
    quantize_i8: quant::neon::quantize_row_i8_absmax_neon,
    matvec_t2_i8: ternary::neon::matvec_t2_i8_neon,
    matmul_t2_i8: ternary::neon::matmul_t2_i8_neon,
    matvec_t1_i8: ternary::neon_t1::matvec_t1_i8_neon,
    matmul_t1_i8: ternary::neon_t1::matmul_t1_i8_neon,
    dot_f16: float::neon::dot_f16_row_neon,
    dot_bf16: float::neon::dot_bf16_row_neon,
    dot_f32: float::neon::dot_f32_row_neon,
    quantize_q8_0: float::neon::quantize_q8_0_act_neon,
    dot_q8_0: float::neon::dot_q8_0_row_neon,
    dot_q4_0: float::neon::dot_q4_0_row_neon,
    matvec_q4_0_q8_0: float::neon::matvec_q4_0_q8_0_neon,
    matvec_q4_0_r8_q8_0: float::q4_0_r8::neon::matvec_q4_0_r8_q8_0_neon,
    dot_rows_f32: float::neon::dot_rows_f32_neon,
    dot_rows_f16: float::neon::dot_rows_f16_neon,
    dot_rows_bf16: float::neon::dot_rows_bf16_neon,
    dot_panels_f16: float::neon::dot_panels_f16_neon,
    axpy_rows_f32: float::neon::axpy_rows_f32_neon,
    axpy_rows_f16: float::neon::axpy_rows_f16_neon,
    dot_rows_heads_f16: float::gqa::neon::dot_rows_heads_f16_neon,
    axpy_rows_heads_f16: float::gqa::neon::axpy_rows_heads_f16_neon,
    rescale_t_i32: float::neon::rescale_t_i32_neon,
    dot_rows_q8_0: float::kv_q8_0::neon::dot_rows_q8_0_neon,
    axpy_rows_q8_0: float::kv_q8_0::neon::axpy_rows_q8_0_neon,
};

#[cfg(target_arch = "aarch64")]
static NEON_DOT: KernelSet = KernelSet {
    variant: KernelVariant::NeonDot,
    matvec_t2_i8: ternary::neon_dot::matvec_t2_i8_neon_dot,
    matmul_t2_i8: ternary::neon_dot::matmul_t2_i8_neon_dot,
    dot_q8_0: float::neon_dot::dot_q8_0_row_neon_dot,
    dot_q4_0: float::neon_dot::dot_q4_0_row_neon_dot,
    matvec_q4_0_q8_0: float::neon_dot::matvec_q4_0_q8_0_neon_dot,
    matvec_q4_0_r8_q8_0: float::q4_0_r8::neon::matvec_q4_0_r8_q8_0_neon_dot,
    matvec_t1_i8: ternary::neon_dot::matvec_t1_i8_neon_dot,
    matmul_t1_i8: ternary::neon_dot::matmul_t1_i8_neon_dot,
    dot_rows_q8_0: float::kv_q8_0::neon::dot_rows_q8_0_neon_dot,
    // dotprod only helps the int8 kernels; the other slots share the NEON kernels.
    ..NEON
};

/// The portable scalar kernel set (always safe to use).
pub fn select_scalar() -> &'static KernelSet {
    &SCALAR
}

/// The kernel set of one variant. Returns `None` if `f` (or this build's target) cannot run it.
///
/// # Safety
/// Every feature `f` claims must be present on the CPU that will call the returned kernels
/// (the SIMD variants execute those instructions; a wrong claim is undefined behaviour).
pub unsafe fn select_variant(v: KernelVariant, f: CpuFeatures) -> Option<&'static KernelSet> {
    if !v.supported(f) {
        return None;
    }
    Some(match v {
        KernelVariant::Scalar => &SCALAR,
        #[cfg(target_arch = "x86_64")]
        KernelVariant::Avx2 => &AVX2,
        #[cfg(target_arch = "x86_64")]
        KernelVariant::Avx512Vnni => &AVX512_VNNI,
        #[cfg(target_arch = "aarch64")]
        KernelVariant::Neon => &NEON,
        #[cfg(target_arch = "aarch64")]
        KernelVariant::NeonDot => &NEON_DOT,
        // Variants of other architectures: `supported` already returned false above.
        _ => &SCALAR,
    })
}

/// The best kernel set for a CPU with features `f`.
///
/// # Safety
/// As [`select_variant`]: every feature `f` claims must be present on the running CPU.
pub unsafe fn select(f: CpuFeatures) -> &'static KernelSet {
    for v in KernelVariant::ALL {
        // SAFETY: forwarded from this function's contract.
        if let Some(k) = unsafe { select_variant(v, f) } {
            return k;
        }
    }
    &SCALAR
}

#[cfg(test)]
mod tests;
