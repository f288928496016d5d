//! Runtime CPU feature detection and kernel selection (`TERN_KERNELS` override).

use anyhow::{Result, bail};
use tern_kernels::{CpuFeatures, KernelSet, KernelVariant, select, select_variant};

/// Features of the CPU this process runs on.
pub fn detect() -> CpuFeatures {
    #[allow(unused_mut)]
    let mut f = CpuFeatures::default();
    #[cfg(target_arch = "x86_64")]
    {
        f.avx2 = std::arch::is_x86_feature_detected!("avx2");
        f.f16c = std::arch::is_x86_feature_detected!("f16c");
        f.avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl");
        f.avx512vnni = std::arch::is_x86_feature_detected!("avx512vnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.neon = std::arch::is_aarch64_feature_detected!("neon");
        f.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    }
    f
}

/// The kernel set to use: `TERN_KERNELS=scalar|avx2|avx512-vnni|neon|neon-dot` forces one (an error if this
/// CPU cannot run it), otherwise the best for this CPU.
///
/// # Errors
/// An unknown `TERN_KERNELS` value, or a variant this CPU/build cannot run.
pub fn kernels() -> Result<&'static KernelSet> {
    let f = detect();
    match std::env::var("TERN_KERNELS") {
        Ok(v) if !v.is_empty() => {
            let Some(var) = KernelVariant::from_name(&v) else {
                bail!(
                    "TERN_KERNELS={v}: expected one of scalar, avx2, avx512-vnni, neon, neon-dot"
                );
            };
            // SAFETY: `f` comes from runtime detection on this CPU (`detect`).
            match unsafe { select_variant(var, f) } {
                Some(k) => Ok(k),
                None => bail!("TERN_KERNELS={v}: this CPU or build cannot run it (detected {f:?})"),
            }
        }
        // SAFETY: as above.
        _ => Ok(unsafe { select(f) }),
    }
}
