//! Every kernel variant this CPU can run against the scalar reference: bit-identical int32
//! accumulators, int8 activations and f32 dots, on proptest inputs and edge lengths.

use super::*;
use crate::layout::TernaryLayout;

mod float;
mod gqa;
mod kv_q8_0;
mod q4_0_r8;
mod ternary;

/// `v` rounded to F16, as little-endian bytes.
pub(super) fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect()
}

/// The tests' xorshift64 stream (shifts 13, 7, 17) from state `s` (nonzero).
fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn detected() -> CpuFeatures {
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

/// The SIMD sets this machine can run (the scalar set is the reference).
fn variants() -> Vec<&'static KernelSet> {
    let f = detected();
    let v: Vec<_> = KernelVariant::ALL
        .iter()
        .filter(|&&v| v != KernelVariant::Scalar)
        // SAFETY: `f` comes from runtime detection on this CPU.
        .filter_map(|&v| unsafe { select_variant(v, f) })
        .collect();
    if v.is_empty() {
        std::eprintln!(
            "note: no SIMD kernel variant runs on this CPU/build; only scalar is tested"
        );
    }
    v
}

/// Which SIMD variants this run diffs against scalar. Always printed (`--nocapture` shows it);
/// with `TERN_EXPECT_VARIANTS=a,b` (names as `TERN_KERNELS`, `none` for an empty set) CI asserts
/// the exact set, so a detection slip (e.g. qemu without dotprod) cannot skip a variant quietly.
#[test]
fn report_tested_variants() {
    let names: Vec<&str> = variants().iter().map(|k| k.variant.name()).collect();
    std::eprintln!(
        "kernel variants tested against scalar: {names:?} (detected {:?})",
        detected()
    );
    for k in variants() {
        assert!(
            !std::ptr::eq(k, &SCALAR),
            "{} must have its own table",
            k.variant.name()
        );
    }
    if let Ok(want) = std::env::var("TERN_EXPECT_VARIANTS") {
        let want: Vec<&str> = want
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "none")
            .collect();
        assert_eq!(names, want, "TERN_EXPECT_VARIANTS");
    }
}
