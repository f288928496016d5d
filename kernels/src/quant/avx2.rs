//! AVX2 absmax int8 quantizer, bit-identical to [`super::scalar::quantize_row_i8_absmax`]:
//! the same float32 operations (`|x|` max, `127 * (1/amax)`, `x * s_a`, round half to even,
//! clamp), 8 lanes at a time, NaN mapped to 0 as scalar's saturating cast does.

use core::arch::x86_64::*;

use super::scalar::ABSMAX_EPS;

pub(crate) fn quantize_row_i8_absmax_avx2(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(
        x.len(),
        q.len(),
        "quantize_row_i8_absmax: x and q lengths differ"
    );
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of
    // `select`; lengths checked above.
    unsafe { quantize_impl(x, q) }
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_impl(x: &[f32], q: &mut [i8]) -> f32 {
    let n = x.len();
    let n32 = n / 32 * 32;
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let mut m = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n = x.len().
        let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        // max(v, m): if v is NaN the second operand (m) is returned, so NaN is ignored as in scalar.
        m = _mm256_max_ps(_mm256_and_ps(v, abs_mask), m);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` has 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
    let mut amax = 0.0f32;
    for &l in &lanes {
        amax = amax.max(l);
    }
    for &v in &x[i..] {
        amax = amax.max(v.abs());
    }
    let s_a = 127.0f32 * (1.0f32 / amax.max(ABSMAX_EPS));
    let s = _mm256_set1_ps(s_a);
    let lo = _mm256_set1_ps(-128.0);
    let hi = _mm256_set1_ps(127.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let conv = |p: *const f32| -> __m256i {
        // SAFETY: callers pass pointers with 8 readable f32; AVX2 is enabled in this function.
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(p), s);
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r)); // NaN → 0
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi))
        }
    };
    let mut j = 0;
    while j < n32 {
        // SAFETY: j + 32 <= n32 <= n for all four loads and the store.
        unsafe {
            let p = x.as_ptr().add(j);
            let ab = _mm256_packs_epi32(conv(p), conv(p.add(8)));
            let cd = _mm256_packs_epi32(conv(p.add(16)), conv(p.add(24)));
            let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
            _mm256_storeu_si256(q.as_mut_ptr().add(j).cast(), b);
        }
        j += 32;
    }
    for (qi, &v) in q[n32..].iter_mut().zip(&x[n32..]) {
        *qi = libm::rintf(v * s_a).clamp(-128.0, 127.0) as i8;
    }
    s_a
}
