//! AArch64 NEON absmax int8 quantizer, bit-identical to
//! [`super::scalar::quantize_row_i8_absmax`].
//!
//! * absmax: `|x|` as bits (`x & 0x7FFF_FFFF`) compared as unsigned integers, which orders
//!   non-negative floats exactly as float compares do; NaN lanes (bits above `0x7F80_0000`)
//!   are zeroed first, so NaN is ignored as scalar's `f32::max` ignores it (whatever the NaN's
//!   payload or signalling bit, unlike `fmax`/`fmaxnm`).
//! * `s_a` is computed by the scalar expression.
//! * `x * s_a` is one IEEE multiply per lane (as scalar); `vcvtnq_s32_f32` (FCVTNS) rounds half
//!   to even, saturates to int32 and maps NaN to 0; the two saturating narrows then clamp to
//!   [-128, 127]. That equals scalar's `rintf` → clamp → saturating `as i8` for every input,
//!   infinities and NaN included.

use core::arch::aarch64::*;

use super::scalar::ABSMAX_EPS;

/// Safe wrapper: lengths are checked here, the CPU feature by the caller of
/// [`crate::select`].
pub(crate) fn quantize_row_i8_absmax_neon(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(
        x.len(),
        q.len(),
        "quantize_row_i8_absmax: x and q lengths differ"
    );
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; lengths checked above.
    unsafe { quantize_impl(x, q) }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_impl(x: &[f32], q: &mut [i8]) -> f32 {
    let n = x.len();
    let abs_mask = vdupq_n_u32(0x7FFF_FFFF);
    let inf_bits = vdupq_n_u32(0x7F80_0000);
    let mut m = vdupq_n_u32(0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n = x.len().
        let v = unsafe { vld1q_f32(x.as_ptr().add(i)) };
        let a = vandq_u32(vreinterpretq_u32_f32(v), abs_mask);
        // keep lanes that are not NaN (|x| bits <= +inf bits), zero the rest
        let a = vandq_u32(a, vcleq_u32(a, inf_bits));
        m = vmaxq_u32(m, a);
        i += 4;
    }
    let mut amax = f32::from_bits(vmaxvq_u32(m));
    for &v in &x[i..] {
        amax = amax.max(v.abs());
    }
    let s_a = 127.0f32 * (1.0f32 / amax.max(ABSMAX_EPS));
    let s = vdupq_n_f32(s_a);
    let n16 = n / 16 * 16;
    let mut j = 0;
    while j < n16 {
        // SAFETY: j + 16 <= n16 <= n = x.len() = q.len() for the four loads and the store.
        unsafe {
            let p = x.as_ptr().add(j);
            let c0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(p), s));
            let c1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(p.add(4)), s));
            let c2 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(p.add(8)), s));
            let c3 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(p.add(12)), s));
            let h0 = vqmovn_high_s32(vqmovn_s32(c0), c1);
            let h1 = vqmovn_high_s32(vqmovn_s32(c2), c3);
            vst1q_s8(q.as_mut_ptr().add(j), vqmovn_high_s16(vqmovn_s16(h0), h1));
        }
        j += 16;
    }
    for (qi, &v) in q[n16..].iter_mut().zip(&x[n16..]) {
        *qi = libm::rintf(v * s_a).clamp(-128.0, 127.0) as i8;
    }
    s_a
}
