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

/// The names of the features in `f` that are present, e.g. `avx2 f16c avx512 avx512vnni`
/// (`CpuFeatures`' field names; empty when none is).
pub fn feature_names(f: CpuFeatures) -> String {
    let all = [
        ("avx2", f.avx2),
        ("f16c", f.f16c),
        ("avx512", f.avx512),
        ("avx512vnni", f.avx512vnni),
        ("neon", f.neon),
        ("dotprod", f.dotprod),
    ];
    let names: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    names.join(" ")
}

/// The CPU as `/proc/cpuinfo` names it (llama-bench's `cpu_info`): the first processor's
/// `model name`, with its `cpu family` and `model` numbers where given (they tell CPU
/// generations apart where a VM's model name does not: AMD family 25 is Zen 3 at model 1 and
/// Zen 4 at model 17); on ARM, which has no model name, its `CPU implementer` and `CPU part`
/// (`0x41` / `0xd0b`: Arm Cortex-A76). `unknown` where the file is unreadable.
pub fn cpu_info() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| parse_cpu_info(&s))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// [`cpu_info`] of the text of a `/proc/cpuinfo`.
fn parse_cpu_info(text: &str) -> String {
    // the first processor's block only
    let block = text.split("\n\n").next().unwrap_or("");
    let field = |key: &str| {
        block.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(fam), Some(model)) => format!("{name} (family {fam}, model {model})"),
        (Some(name), _, _) => name,
        _ => match (field("CPU implementer"), field("CPU part")) {
            (Some(imp), Some(part)) => format!("CPU implementer {imp}, part {part}"),
            _ => "unknown".to_string(),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_info_from_x86_and_arm_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
                   model name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(parse_cpu_info(x86), "AMD EPYC (family 25, model 17)");
        let arm = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\n\
                   CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\n\n";
        assert_eq!(parse_cpu_info(arm), "CPU implementer 0x41, part 0xd0b");
        assert_eq!(parse_cpu_info(""), "unknown");
    }

    #[test]
    fn feature_names_list_the_present_ones() {
        let f = CpuFeatures {
            avx2: true,
            f16c: true,
            avx512vnni: true,
            ..CpuFeatures::default()
        };
        assert_eq!(feature_names(f), "avx2 f16c avx512vnni");
        assert_eq!(feature_names(CpuFeatures::default()), "");
    }
}
