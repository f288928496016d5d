//! AVX2 and AVX-512 VNNI [`super::scalar::matvec_q4_0_r8_q8_0`], bit-identical. In a group
//! block each 32-bit lane of a chunk's 32 bytes is one row's 4 code bytes, so with 4
//! activations broadcast to every lane (the low nibbles against activations `4c..4c + 4`, the
//! high nibbles against `16 + 4c..`) one instruction adds to 8 rows' sums at once:
//!
//! - AVX2: `vpmaddubsw` (unsigned codes `0..=15`) into int16, added over the block's 4 chunks
//!   (8 products of at most 2 · 15 · 128 = 3840, so at most 30720 < 2^15: exact), then one
//!   `vpmaddwd` into the 8 rows' int32 sums;
//! - AVX-512 VNNI: `vpdpbusd` straight into the int32 sums, on 256-bit registers (Zen 4 runs
//!   512-bit ones as two halves). With the rows in L2, 1.13× the AVX2 kernel; from DRAM
//!   1.02–1.10× (2026-12-01, a standalone copy, 2B4T's head).
//!
//! Either way the sums start from the block's `− 8 · Σ x` (once per call), so they end as the
//! exact block sums of `c − 8`. The float steps are scalar's, lane `i` for row `i`, with
//! partial sum `b % 8` in accumulator `b % 8`. The rows are read in order, one stream the
//! hardware prefetchers follow: no software prefetch (1–8 KiB ahead read 0.8–1.05× as fast).

use core::arch::x86_64::*;

use crate::layout::{Q4_0_R8_BLOCK_BYTES as GB, Q4_0_R8_ROWS};

use super::scalar::{MAX_BLOCKS, block_offsets};

/// AVX2 [`super::scalar::matvec_q4_0_r8_q8_0`] (same arguments, result and panics).
pub(crate) fn matvec_q4_0_r8_q8_0_avx2(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::check_shapes(w.len(), q.len(), d.len(), out.len());
    if d.len() > MAX_BLOCKS {
        return super::scalar::matvec_q4_0_r8_q8_0(w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; shapes checked above.
    unsafe { avx2_impl(w, q, d, out) }
}

/// AVX-512 VNNI [`super::scalar::matvec_q4_0_r8_q8_0`] (same arguments, result and panics).
pub(crate) fn matvec_q4_0_r8_q8_0_avx512vnni(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::check_shapes(w.len(), q.len(), d.len(), out.len());
    if d.len() > MAX_BLOCKS {
        return super::scalar::matvec_q4_0_r8_q8_0(w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX-512 F/BW/VL + VNNI
    // (+ AVX2, F16C) contract of `select`; shapes checked above.
    unsafe { vnni_impl(w, q, d, out) }
}

/// Chunk `c` (0..4) of the group block at `p`, the 4 code bytes of row `i` in dword lane `i`:
/// the low and the high nibbles as bytes `0..=15`.
///
/// # Safety
/// AVX2 must be available; the 144-byte group block at `p` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn codes(p: *const u8, c: usize) -> (__m256i, __m256i) {
    let low4 = _mm256_set1_epi8(0x0F);
    // SAFETY: 16 + 32c + 32 <= 144 for c < 4 (the caller's block).
    let v = unsafe { _mm256_loadu_si256(p.add(16 + 32 * c).cast()) };
    (
        _mm256_and_si256(v, low4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4),
    )
}

/// The 4 activations at `p` broadcast to every 32-bit lane.
///
/// # Safety
/// AVX2 must be available; the 4 bytes at `p` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bcast4(p: *const i8) -> __m256i {
    // SAFETY: the caller's guarantee (an unaligned read).
    _mm256_set1_epi32(unsafe { p.cast::<i32>().read_unaligned() })
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn avx2_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let ones = _mm256_set1_epi16(1);
    let sums = |p: *const u8, xb: *const i8, corr: __m256i| -> __m256i {
        let mut s16 = _mm256_setzero_si256();
        for c in 0..4 {
            // SAFETY: p is a whole group block and xb its block's 32 activations (`groups`'
            // contract); AVX2 is enabled here.
            let ((lo, hi), xl, xh) = unsafe {
                (
                    codes(p, c),
                    bcast4(xb.add(4 * c)),
                    bcast4(xb.add(16 + 4 * c)),
                )
            };
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, xl));
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, xh));
        }
        _mm256_add_epi32(corr, _mm256_madd_epi16(s16, ones))
    };
    // SAFETY: forwarded (AVX2 + F16C enabled here; the wrapper checked the shapes).
    unsafe { groups(w, q, d, out, sums) }
}

#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    let sums = |p: *const u8, xb: *const i8, corr: __m256i| -> __m256i {
        let mut s = corr;
        for c in 0..4 {
            // SAFETY: as in `avx2_impl`'s `sums`; AVX-512 VL + VNNI are enabled here.
            let ((lo, hi), xl, xh) = unsafe {
                (
                    codes(p, c),
                    bcast4(xb.add(4 * c)),
                    bcast4(xb.add(16 + 4 * c)),
                )
            };
            s = _mm256_dpbusd_epi32(s, lo, xl);
            s = _mm256_dpbusd_epi32(s, hi, xh);
        }
        s
    };
    // SAFETY: forwarded (AVX2 + F16C enabled here; the wrapper checked the shapes).
    unsafe { groups(w, q, d, out, sums) }
}

/// The group and block loops shared by both variants. `sums(p, xb, corr)` returns the 8 rows'
/// exact block sums `corr + Σ c·x` (row `i` in lane `i`) of the group block at `p` with its
/// activations at `xb`, `corr` the block's `− 8 · Σ x` in every lane.
///
/// # Safety
/// AVX2 and F16C (and what `sums` needs) must be available; the shapes as `check_shapes`
/// checks, with at most [`MAX_BLOCKS`] blocks per row.
#[inline(always)]
unsafe fn groups(
    w: &[u8],
    q: &[i8],
    d: &[f32],
    out: &mut [f32],
    sums: impl Fn(*const u8, *const i8, __m256i) -> __m256i,
) {
    let nb = d.len();
    let corr = block_offsets(q);
    for (g, o) in out.chunks_exact_mut(Q4_0_R8_ROWS).enumerate() {
        let gp = w[g * nb * GB..(g + 1) * nb * GB].as_ptr();
        // SAFETY: AVX2 and F16C are available (the contract); block b < nb of the group is
        // the 144 bytes at gp + 144 b and its activations q[32 b..32 b + 32] (the checked
        // shape); `o` holds 8 f32.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (b, (&db, &cb)) in d.iter().zip(&corr[..nb]).enumerate() {
                let p = gp.add(GB * b);
                let s = sums(p, q.as_ptr().add(32 * b), _mm256_set1_epi32(cb));
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(db));
                let a = &mut acc[b % 8];
                *a = _mm256_add_ps(*a, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(s)));
            }
            // scalar's reduce8, lane by lane
            let r = _mm256_add_ps(
                _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])),
            );
            _mm256_storeu_ps(o.as_mut_ptr(), r);
        }
    }
}
