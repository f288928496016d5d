//! AArch64 NEON float row dots and axpys, bit-identical to [`super::scalar`]: vector accumulator `k`,
//! lane `l` holds exactly scalar's partial sum `acc[4k + l]` (partial sum `i % DOT_LANES` of
//! element `i`, eight `float32x4_t` for the 32 sums), updated by a separate multiply and add
//! (no FMA), and the final reduction is scalar's own [`super::scalar::reduce32`].
//!
//! F16 → f32 uses integer bit manipulation (the stable `vcvt_f32_f16` needs the unstable
//! `f16` types): exact for every half value, normals, subnormals, zeros and infinities
//! included; NaN becomes a quiet f32 NaN with the payload shifted up, as `half` converts it.

use core::arch::aarch64::*;

use super::scalar::{DOT_LANES as LANES, reduce32};

/// NEON accumulators (4 f32 lanes each) holding scalar's `LANES` partial sums.
const VECS: usize = LANES / 4;

/// Safe wrapper: lengths are checked here, the CPU feature by the caller of [`crate::select`].
pub(crate) fn dot_f16_row_neon(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; lengths checked above.
    unsafe { dot_impl::<F16>(w, x) }
}

/// Safe wrapper: as [`dot_f16_row_neon`].
pub(crate) fn dot_bf16_row_neon(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: as for `dot_f16_row_neon`.
    unsafe { dot_impl::<BF16>(w, x) }
}

/// Safe wrapper: as [`dot_f16_row_neon`].
pub(crate) fn dot_f32_row_neon(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 4, "dot: row and x lengths differ");
    // SAFETY: as for `dot_f16_row_neon`.
    unsafe { dot_impl::<F32>(w, x) }
}

/// Safe wrapper of [`super::scalar::axpy_f32_row`]: lengths are checked here.
pub(crate) fn axpy_f32_row_neon(a: f32, x: &[u8], y: &mut [f32]) {
    assert_eq!(x.len(), y.len() * 4, "axpy: row and y lengths differ");
    // SAFETY: as for `dot_f16_row_neon`.
    unsafe { axpy_impl::<F32>(a, x, y) }
}

/// Safe wrapper of [`super::scalar::axpy_f16_row`]: lengths are checked here.
pub(crate) fn axpy_f16_row_neon(a: f32, x: &[u8], y: &mut [f32]) {
    assert_eq!(x.len(), y.len() * 2, "axpy: row and y lengths differ");
    // SAFETY: as for `dot_f16_row_neon`.
    unsafe { axpy_impl::<F16>(a, x, y) }
}

#[target_feature(enable = "neon")]
unsafe fn axpy_impl<const FMT: u8>(a: f32, x: &[u8], y: &mut [f32]) {
    let n = y.len();
    let av = vdupq_n_f32(a);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n: 4 elements of x (length checked by the wrapper) and of y.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            vst1q_f32(
                p,
                vaddq_f32(vld1q_f32(p), vmulq_f32(av, load4::<FMT>(x.as_ptr(), i))),
            );
        }
        i += 4;
    }
    for k in i..n {
        y[k] += a * scalar_elem::<FMT>(x, k);
    }
}

const F16: u8 = 0;
const BF16: u8 = 1;
const F32: u8 = 2;

/// Exact f16 → f32 of 4 half bit patterns (zero-extended into u32 lanes).
#[inline]
#[target_feature(enable = "neon")]
fn f16x4_to_f32(h: uint32x4_t) -> float32x4_t {
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let em = vandq_u32(h, vdupq_n_u32(0x7FFF));
    let shifted = vshlq_n_u32::<13>(em);
    // normal: rebias the exponent (15 → 127)
    let normal = vaddq_u32(shifted, vdupq_n_u32(0x3800_0000));
    // inf / NaN: all-ones exponent; NaN also gets the quiet bit
    let is_nan = vcgtq_u32(em, vdupq_n_u32(0x7C00));
    let special = vorrq_u32(
        vorrq_u32(shifted, vdupq_n_u32(0x7F80_0000)),
        vandq_u32(is_nan, vdupq_n_u32(0x0040_0000)),
    );
    // zero / subnormal: mantissa · 2^-24, exact (≤ 10 significant bits, result is normal)
    let sub = vreinterpretq_u32_f32(vmulq_f32(
        vcvtq_f32_u32(em),
        vdupq_n_f32(1.0 / 16_777_216.0),
    ));
    let is_special = vcgeq_u32(em, vdupq_n_u32(0x7C00));
    let is_sub = vcltq_u32(em, vdupq_n_u32(0x0400));
    let mag = vbslq_u32(is_special, special, vbslq_u32(is_sub, sub, normal));
    vreinterpretq_f32_u32(vorrq_u32(mag, sign))
}

/// 4 row elements starting at element `i`.
///
/// # Safety
/// `w` must hold 4 readable elements of format `FMT` at element `i`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load4<const FMT: u8>(w: *const u8, i: usize) -> float32x4_t {
    // SAFETY: the caller guarantees 4 readable elements at element `i`.
    unsafe {
        match FMT {
            F32 => vreinterpretq_f32_u8(vld1q_u8(w.add(4 * i))),
            BF16 => vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(w.add(2 * i).cast()))),
            _ => f16x4_to_f32(vmovl_u16(vld1_u16(w.add(2 * i).cast()))),
        }
    }
}

fn scalar_elem<const FMT: u8>(w: &[u8], k: usize) -> f32 {
    match FMT {
        F32 => f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]]),
        BF16 => f32::from_bits((u16::from_le_bytes([w[2 * k], w[2 * k + 1]]) as u32) << 16),
        _ => half::f16::from_bits(u16::from_le_bytes([w[2 * k], w[2 * k + 1]])).to_f32(),
    }
}

#[target_feature(enable = "neon")]
unsafe fn dot_impl<const FMT: u8>(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let nfull = n / LANES * LANES;
    let mut acc = [vdupq_n_f32(0.0); VECS];
    let mut i = 0;
    while i < nfull {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + LANES <= n: elements i + 4k .. i + 4k + 4 of w and x are readable
            // (the wrapper checked w's length against x's).
            unsafe {
                let wv = load4::<FMT>(w.as_ptr(), i + 4 * k);
                let xv = vld1q_f32(x.as_ptr().add(i + 4 * k));
                *a = vaddq_f32(*a, vmulq_f32(wv, xv));
            }
        }
        i += LANES;
    }
    let mut lanes = [0f32; LANES];
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: `lanes` holds LANES = 4 * VECS f32, so 4k .. 4k + 4 is in bounds.
        unsafe { vst1q_f32(lanes.as_mut_ptr().add(4 * k), *a) };
    }
    for k in nfull..n {
        lanes[k % LANES] += scalar_elem::<FMT>(w, k) * x[k];
    }
    reduce32(&lanes)
}
