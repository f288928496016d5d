//! AVX2 + F16C float row dots, bit-identical to [`super::scalar`]: lane `l` of the 8-wide
//! accumulator holds exactly scalar's partial sum `acc[i % 8]` (separate multiply and add, no
//! FMA), and the final reduction uses scalar's pairwise order.

use core::arch::x86_64::*;

#[inline]
fn reduce8(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

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
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= n: 16 bytes of w and 8 f32 of x are readable.
        unsafe {
            let h = _mm_loadu_si128(w.as_ptr().add(2 * i).cast());
            let wv = if BF16 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                _mm256_cvtph_ps(h)
            };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(wv, _mm256_loadu_ps(x.as_ptr().add(i))));
        }
        i += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    for k in n8..n {
        let b = [w[2 * k], w[2 * k + 1]];
        let wv = if BF16 {
            f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
        } else {
            half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
        };
        lanes[k % 8] += wv * x[k];
    }
    reduce8(lanes)
}
