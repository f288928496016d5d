//! AVX2 + F16C float row dots, bit-identical to [`super::scalar`]: lane `l` of accumulator
//! `k` (of four) holds exactly scalar's partial sum `acc[8k + l]` (separate multiply and add,
//! no FMA), and the final reduction is scalar's [`reduce32`].

use core::arch::x86_64::*;

use super::scalar::{DOT_LANES, reduce32};

pub(crate) fn dot_f16_row_avx2(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; lengths checked above.
    unsafe { dot_impl::<false>(w, x) }
}

pub(crate) fn dot_bf16_row_avx2(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: as for `dot_f16_row_avx2`.
    unsafe { dot_impl::<true>(w, x) }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_impl<const BF16: bool>(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let n8 = n / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); 4];
    let prod = |i: usize| -> __m256 {
        // SAFETY: callers pass i + 8 <= n, so 16 bytes of w and 8 f32 of x are readable; the
        // enclosing function enables avx2 and f16c.
        unsafe {
            let h = _mm_loadu_si128(w.as_ptr().add(2 * i).cast());
            let wv = if BF16 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                _mm256_cvtph_ps(h)
            };
            _mm256_mul_ps(wv, _mm256_loadu_ps(x.as_ptr().add(i)))
        }
    };
    let mut i = 0;
    while i + DOT_LANES <= n {
        acc[0] = _mm256_add_ps(acc[0], prod(i));
        acc[1] = _mm256_add_ps(acc[1], prod(i + 8));
        acc[2] = _mm256_add_ps(acc[2], prod(i + 16));
        acc[3] = _mm256_add_ps(acc[3], prod(i + 24));
        i += DOT_LANES;
    }
    while i < n8 {
        let k = (i % DOT_LANES) / 8;
        acc[k] = _mm256_add_ps(acc[k], prod(i));
        i += 8;
    }
    let mut lanes = [0f32; DOT_LANES];
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: `lanes[8k..8k + 8]` is in bounds (k < 4).
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * k), *a) };
    }
    for k in n8..n {
        let b = [w[2 * k], w[2 * k + 1]];
        let wv = if BF16 {
            f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
        } else {
            half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
        };
        lanes[k % DOT_LANES] += wv * x[k];
    }
    reduce32(&lanes)
}
