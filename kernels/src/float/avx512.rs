//! AVX-512 float row dots (the LM head's F16 / BF16 / F32 rows and attention's keys),
//! bit-identical to [`super::scalar`] like the AVX2 ones they replace: lanes `0..16` of a row's
//! first 512-bit accumulator hold scalar's partial sums `acc[0..16]`, those of the second
//! `acc[16..32]` (separate multiply and add, no FMA), so one 16-element conversion and one
//! multiply and add do the work of two AVX2 steps. The access order, prefetch and reduction are
//! AVX2's (`rows8_accs`, `dot_rows_by8`), with half the instructions per cache line (the F16
//! LM head from DRAM: 1.14× AVX2's GB/s in one benchmark run, README "What made it fast").

use core::arch::x86_64::*;

use super::avx2::{BF16, F16, F32, ROWS_PREFETCH_ROWS, ROWS_STEP, dot_rows_by8, load8};
use super::scalar::{DOT_LANES, check_panels, check_rows};
use crate::layout::{F16_R8_COLS, F16_R8_ROWS};

/// AVX-512 [`super::scalar::dot_rows_f16`], bit-identical.
pub(crate) fn dot_rows_f16_avx512(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    check_rows(w.len(), stride_bytes, out.len(), x.len() * 2);
    // SAFETY: reachable only through a KernelSet selected under the AVX-512 F/BW/VL (+ AVX2,
    // F16C) contract of `select`; shape checked above.
    unsafe { rows_impl::<F16>(w, stride_bytes, x, out) }
}

/// AVX-512 [`super::scalar::dot_panels_f16`], bit-identical: AVX2's row-group driver
/// (`dot_rows_by8`) over the 8-row groups, each read in `F16_R8` order by [`panel8_accs`].
pub(crate) fn dot_panels_f16_avx512(w: &[u8], x: &[f32], out: &mut [f32]) {
    check_panels(w.len(), x.len(), out.len());
    // SAFETY: as for `dot_rows_f16_avx512`; with the shape checked (rows a multiple of 8,
    // columns of 32), `dot_rows_by8` takes only its 8-row path, and the group of rows r..
    // starts at byte r · 2·cols, 8 · 2·cols bytes of pieces.
    unsafe { panels_impl(w, x, out) }
}

/// The row dots under AVX-512's target features, so that AVX2's driver (`dot_rows_by8`) and
/// [`rows8_accs`] inline into one loop.
///
/// # Safety
/// As [`rows8_accs`]'s features; the shape as checked by [`check_rows`].
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn rows_impl<const FMT: u8>(w: &[u8], stride: usize, x: &[f32], out: &mut [f32]) {
    // SAFETY: forwarded.
    unsafe { dot_rows_by8::<FMT>(w, stride, x, out, |p, s, x| rows8_accs::<FMT>(p, s, x)) }
}

/// [`dot_panels_f16_avx512`] under its target features (see [`rows_impl`]).
///
/// # Safety
/// As [`panel8_accs`]'s features; the shape as checked by [`check_panels`].
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn panels_impl(w: &[u8], x: &[f32], out: &mut [f32]) {
    // SAFETY: forwarded (every group holds 8 rows of x.len() values, a multiple of 32).
    unsafe { dot_rows_by8::<F16>(w, 2 * x.len(), x, out, |p, s, x| panel8_accs(p, s, x)) }
}

/// AVX-512 [`super::scalar::dot_rows_bf16`], bit-identical.
pub(crate) fn dot_rows_bf16_avx512(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    check_rows(w.len(), stride_bytes, out.len(), x.len() * 2);
    // SAFETY: as for `dot_rows_f16_avx512`.
    unsafe { rows_impl::<BF16>(w, stride_bytes, x, out) }
}

/// AVX-512 [`super::scalar::dot_rows_f32`], bit-identical.
pub(crate) fn dot_rows_f32_avx512(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    check_rows(w.len(), stride_bytes, out.len(), x.len() * 4);
    // SAFETY: as for `dot_rows_f16_avx512`.
    unsafe { rows_impl::<F32>(w, stride_bytes, x, out) }
}

/// Elements `i .. i + 16` of a row of format `FMT` as f32 (exact conversions).
///
/// # Safety
/// AVX-512 F/BW/VL must be available; the row at `w` must hold 16 elements from element `i`.
#[inline]
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn load16<const FMT: u8>(w: *const u8, i: usize) -> __m512 {
    // SAFETY: the caller guarantees 16 readable elements at element `i`.
    unsafe {
        match FMT {
            F32 => _mm512_loadu_ps(w.add(4 * i).cast()),
            BF16 => {
                let h = _mm256_loadu_si256(w.add(2 * i).cast());
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
            _ => _mm512_cvtph_ps(_mm256_loadu_si256(w.add(2 * i).cast())),
        }
    }
}

/// AVX2's `rows8_accs` on 512-bit registers: scalar's 32 partial sums of each of the 8 rows
/// at `w`, `stride` bytes apart, with `x: (n,)`, `n` a multiple of 8, returned as AVX2's four
/// 8-lane accumulators per row. [`ROWS_STEP`] (32) columns of each row in turn, with the same
/// L2 prefetch [`ROWS_PREFETCH_ROWS`] rows on.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and F16C must be available; `n` must be a multiple of 8, and each of
/// the 8 rows must hold `n` readable elements of format `FMT`.
#[inline]
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn rows8_accs<const FMT: u8>(w: *const u8, stride: usize, x: &[f32]) -> [[__m256; 4]; 8] {
    const { assert!(ROWS_STEP == DOT_LANES) };
    let eb = if FMT == F32 { 4 } else { 2 };
    let n = x.len();
    let full = n / ROWS_STEP * ROWS_STEP;
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    let mut c = 0;
    while c < full {
        // SAFETY: c + 32 <= n: 32 elements of x from c.
        let xv = unsafe {
            [
                _mm512_loadu_ps(x.as_ptr().add(c)),
                _mm512_loadu_ps(x.as_ptr().add(c + 16)),
            ]
        };
        for (i, a) in acc.iter_mut().enumerate() {
            let row = w.wrapping_add(i * stride);
            for l in (0..ROWS_STEP * eb).step_by(64) {
                // A hint only (`wrapping_add`; it never faults).
                _mm_prefetch::<_MM_HINT_T1>(
                    row.wrapping_add(ROWS_PREFETCH_ROWS * stride + c * eb + l)
                        .cast(),
                );
            }
            for (k, ak) in a.iter_mut().enumerate() {
                // SAFETY: row i holds n >= c + 32 elements (contract).
                let p = _mm512_mul_ps(unsafe { load16::<FMT>(row, c + 16 * k) }, xv[k]);
                *ak = _mm512_add_ps(*ak, p);
            }
        }
        c += ROWS_STEP;
    }
    let mut out = split_accs(acc);
    for (i, a) in out.iter_mut().enumerate() {
        let row = w.wrapping_add(i * stride);
        for j in (full..n).step_by(8) {
            // SAFETY: j + 8 <= n (n is a multiple of 8): 8 elements of row i and of x.
            let p =
                unsafe { _mm256_mul_ps(load8::<FMT>(row, j), _mm256_loadu_ps(x.as_ptr().add(j))) };
            let k = (j % DOT_LANES) / 8;
            a[k] = _mm256_add_ps(a[k], p);
        }
    }
    out
}

/// Each row's two 16-lane accumulators as AVX2's four 8-lane ones (the same 32 lanes, in order).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn split_accs(acc: [[__m512; 2]; 8]) -> [[__m256; 4]; 8] {
    let half = |v: __m512, hi: bool| {
        if hi {
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
        } else {
            _mm512_castps512_ps256(v)
        }
    };
    core::array::from_fn(|i| core::array::from_fn(|k| half(acc[i][k / 2], k % 2 == 1)))
}

/// Scalar's 32 partial sums of each of the 8 rows of the `F16_R8` group at `w` (`stride`
/// unused: the group's pieces are consecutive) with `x: (n,)`, `n` a multiple of 32, as
/// [`rows8_accs`] returns them: piece after piece, one sequential stream that the hardware
/// prefetchers follow, so no software prefetch. Each 16 values are one `vcvtph2ps zmm, m256`
/// at a constant offset from the piece ([`cvt_at`]): 50 instructions per 512-byte piece.
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and F16C must be available; `n` must be a multiple of 32 and the group
/// must hold `8 · n` readable F16 values.
#[inline]
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn panel8_accs(w: *const u8, _stride: usize, x: &[f32]) -> [[__m256; 4]; 8] {
    const { assert!(F16_R8_ROWS == 8 && F16_R8_COLS == 32 && DOT_LANES == 32) };
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    for (k, xs) in x.chunks_exact(F16_R8_COLS).enumerate() {
        // SAFETY: xs holds 32 values; piece k of the group is the 512 bytes at w + 512 k
        // (contract), row i's 32 values at offset 64 i of it.
        unsafe {
            let xv = [
                _mm512_loadu_ps(xs.as_ptr()),
                _mm512_loadu_ps(xs.as_ptr().add(16)),
            ];
            let p = w.add(k * F16_R8_ROWS * 2 * F16_R8_COLS);
            macro_rules! row {
                ($i:literal) => {
                    let a = &mut acc[$i];
                    a[0] = _mm512_add_ps(a[0], _mm512_mul_ps(cvt_at::<{ 64 * $i }>(p), xv[0]));
                    a[1] = _mm512_add_ps(a[1], _mm512_mul_ps(cvt_at::<{ 64 * $i + 32 }>(p), xv[1]));
                };
            }
            row!(0);
            row!(1);
            row!(2);
            row!(3);
            row!(4);
            row!(5);
            row!(6);
            row!(7);
        }
    }
    split_accs(acc)
}

/// The 16 F16 values at `p + OFF` as f32, by `vcvtph2ps zmm, m256` (exact, as
/// `_mm512_cvtph_ps`). Written out because that intrinsic is emitted as a load and a
/// `vcvtph2ps {sae}` from a register (`{sae}` rules out a memory operand), and a pointer
/// operand alone costs an address computation per conversion: either way 66 instructions
/// per piece instead of 50, and the `F16_R8` head then read no faster than the row-major one.
///
/// # Safety
/// AVX-512 F must be available; the 32 bytes at `p + OFF` must be readable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn cvt_at<const OFF: usize>(p: *const u8) -> __m512 {
    let out: __m512;
    // SAFETY: reads the 32 bytes at p + OFF (the caller's guarantee) into one register; no
    // stack, no flags; the conversion is exact for every half value (MXCSR does not matter).
    unsafe {
        core::arch::asm!(
            "vcvtph2ps {o}, ymmword ptr [{p} + {off}]",
            o = lateout(zmm_reg) out,
            p = in(reg) p,
            off = const OFF,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    out
}
