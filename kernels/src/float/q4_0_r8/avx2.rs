//! AVX2 [`super::scalar::matvec_q4_0_r8_q8_0`], bit-identical. Per block of a group of 8 rows,
//! each 32-bit lane of a chunk's 32 bytes is one row's 4 code bytes: the low nibbles against 4
//! broadcast activations and the high nibbles against the 4 that are 16 on, by `vpmaddubsw` (unsigned
//! codes `0..=15`), added as int16 over the block's 4 chunks (8 products of at most
//! 2 · 15 · 128 = 3840, so at most 30720 < 2^15: exact), then one `vpmaddwd` gives the 8 rows'
//! `Σ c·x`; `− 8 Σ x` (computed once per call) makes them the exact block sums. The float steps
//! are scalar's, lane `i` for row `i`, with partial sum `b % 8` in accumulator `b % 8`.

use core::arch::x86_64::*;

use crate::layout::{Q4_0_R8_BLOCK_BYTES as GB, Q4_0_R8_ROWS};

/// Most blocks per row prepared on the stack (rows of up to 32768 values); longer rows take
/// the scalar spec.
const MAX_BLOCKS: usize = 1024;

/// AVX2 [`super::scalar::matvec_q4_0_r8_q8_0`] (same arguments, result and panics).
pub(crate) fn matvec_q4_0_r8_q8_0_avx2(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::check_shapes(w.len(), q.len(), d.len(), out.len());
    if d.len() > MAX_BLOCKS {
        return super::scalar::matvec_q4_0_r8_q8_0(w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; shapes checked above.
    unsafe { matvec_impl(w, q, d, out) }
}

/// # Safety
/// AVX2 and F16C must be available; the shapes as checked by `check_shapes`, with at most
/// [`MAX_BLOCKS`] blocks per row.
#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let nb = d.len();
    let ones8 = _mm256_set1_epi8(1);
    let ones = _mm256_set1_epi16(1);
    // 8 · Σ x of every block (the codes' offset), exact in i32
    let mut sx8 = [0i32; MAX_BLOCKS];
    for (b, s) in sx8.iter_mut().enumerate().take(nb) {
        // SAFETY: block b < nb has 32 activations.
        let xv = unsafe { _mm256_loadu_si256(q.as_ptr().add(32 * b).cast()) };
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xv), ones);
        let mut l = [0i32; 8];
        // SAFETY: `l` holds 8 i32.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), p) };
        *s = 8 * l.iter().sum::<i32>();
    }
    let low4 = _mm256_set1_epi8(0x0F);
    for (g, o) in out.chunks_exact_mut(Q4_0_R8_ROWS).enumerate() {
        let gp = w[g * nb * GB..(g + 1) * nb * GB].as_ptr();
        let mut acc = [_mm256_setzero_ps(); 8];
        for (b, (&db, &sx)) in d.iter().zip(&sx8[..nb]).enumerate() {
            // SAFETY: block b < nb of the group is the 144 bytes at gp + 144 b (checked
            // shape); its 32 activations are q[32 b..32 b + 32].
            unsafe {
                let p = gp.add(GB * b);
                let xb = q.as_ptr().add(32 * b);
                let mut s16 = _mm256_setzero_si256();
                for c in 0..4 {
                    let v = _mm256_loadu_si256(p.add(16 + 32 * c).cast());
                    let lo = _mm256_and_si256(v, low4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4);
                    let xl = _mm256_set1_epi32(xb.add(4 * c).cast::<i32>().read_unaligned());
                    let xh = _mm256_set1_epi32(xb.add(16 + 4 * c).cast::<i32>().read_unaligned());
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, xl));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, xh));
                }
                let s = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones), _mm256_set1_epi32(sx));
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
                let a = &mut acc[b % 8];
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(db));
                *a = _mm256_add_ps(*a, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(s)));
            }
        }
        // scalar's reduce8, lane by lane
        let r = _mm256_add_ps(
            _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
            _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])),
        );
        // SAFETY: `o` holds 8 f32.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), r) };
    }
}
