//! AVX2 + F16C float row dots and axpys, bit-identical to [`super::scalar`]: lane `l` of accumulator
//! `k` (of four) holds exactly scalar's partial sum `acc[8k + l]` (separate multiply and add,
//! no FMA), and the final reduction is scalar's [`reduce32`].

use core::arch::x86_64::*;

use super::reduce8::reduce8_accs;
use super::scalar::{DOT_LANES, reduce32};
use crate::layout::{F16_R8_COLS, F16_R8_ROWS};

pub(crate) fn dot_f16_row_avx2(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; lengths checked above.
    unsafe { dot_impl::<F16>(w, x) }
}

pub(crate) fn dot_bf16_row_avx2(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 2, "dot: row and x lengths differ");
    // SAFETY: as for `dot_f16_row_avx2`.
    unsafe { dot_impl::<BF16>(w, x) }
}

pub(crate) fn dot_f32_row_avx2(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), x.len() * 4, "dot: row and x lengths differ");
    // SAFETY: as for `dot_f16_row_avx2`.
    unsafe { dot_impl::<F32>(w, x) }
}

/// AVX2 [`super::scalar::dot_rows_f32`], bit-identical.
pub(crate) fn dot_rows_f32_avx2(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    super::scalar::check_rows(w.len(), stride_bytes, out.len(), x.len() * 4);
    // SAFETY: as for `dot_f16_row_avx2`; shape checked above.
    unsafe { dot_rows_impl::<F32>(w, stride_bytes, x, out) }
}

/// AVX2 + F16C [`super::scalar::dot_rows_f16`], bit-identical.
pub(crate) fn dot_rows_f16_avx2(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    super::scalar::check_rows(w.len(), stride_bytes, out.len(), x.len() * 2);
    // SAFETY: as for `dot_f16_row_avx2`; shape checked above.
    unsafe { dot_rows_impl::<F16>(w, stride_bytes, x, out) }
}

/// AVX2 + F16C [`super::scalar::dot_rows_bf16`], bit-identical.
pub(crate) fn dot_rows_bf16_avx2(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    super::scalar::check_rows(w.len(), stride_bytes, out.len(), x.len() * 2);
    // SAFETY: as for `dot_f16_row_avx2`; shape checked above.
    unsafe { dot_rows_impl::<BF16>(w, stride_bytes, x, out) }
}

/// AVX2 [`super::scalar::axpy_rows_f32`], bit-identical (the same multiply and add per
/// element, rows in order).
pub(crate) fn axpy_rows_f32_avx2(a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
    super::scalar::check_rows(x.len(), stride_bytes, a.len(), y.len() * 4);
    // SAFETY: as for `dot_f16_row_avx2`; shape checked above.
    unsafe { axpy_rows_impl::<F32>(a, x, stride_bytes, y) }
}

/// AVX2 + F16C [`super::scalar::axpy_rows_f16`], bit-identical.
pub(crate) fn axpy_rows_f16_avx2(a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
    super::scalar::check_rows(x.len(), stride_bytes, a.len(), y.len() * 2);
    // SAFETY: as for `dot_f16_row_avx2`; shape checked above.
    unsafe { axpy_rows_impl::<F16>(a, x, stride_bytes, y) }
}

/// Row element formats of [`dot_impl`] and [`axpy_rows_impl`].
pub(super) const F16: u8 = 0;
pub(super) const BF16: u8 = 1;
pub(super) const F32: u8 = 2;

/// Elements `i .. i + 8` of a row of format `FMT` as f32 (exact conversions).
///
/// # Safety
/// AVX2 and F16C must be available; the row at `w` must hold 8 elements from element `i`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn load8<const FMT: u8>(w: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees 8 readable elements at element `i`.
    unsafe {
        match FMT {
            F32 => _mm256_loadu_ps(w.add(4 * i).cast()),
            BF16 => {
                let h = _mm_loadu_si128(w.add(2 * i).cast());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            }
            _ => _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * i).cast())),
        }
    }
}

/// Element `k` of a row of format `FMT`, as scalar converts it.
fn elem<const FMT: u8>(w: &[u8], k: usize) -> f32 {
    match FMT {
        F32 => f32::from_le_bytes([w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3]]),
        BF16 => f32::from_bits((u16::from_le_bytes([w[2 * k], w[2 * k + 1]]) as u32) << 16),
        _ => half::f16::from_bits(u16::from_le_bytes([w[2 * k], w[2 * k + 1]])).to_f32(),
    }
}

/// How far ahead (bytes) the float row dots prefetch the weight row. LM-head rows (the last
/// `rows % 8`, after the 8-row blocks) are consecutive, so the last prefetches of a row warm
/// the start of the next one; the hardware prefetchers stop at every 4 KiB page
/// (measured on Zen 3 over 512 B - 8 KiB: 1 KiB best).
const DOT_PREFETCH_BYTES: usize = 1024;

/// Scalar's 32 partial sums of the first `n / 8 * 8` elements of the row at `w` with `x: (n,)`,
/// lane `l` of accumulator `k` holding `acc[8k + l]`; the row is prefetched
/// [`DOT_PREFETCH_BYTES`] ahead (rows read once from memory).
///
/// # Safety
/// AVX2 and F16C must be available; `w` must hold `n / 8 * 8` readable elements of format
/// `FMT`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn row_accs<const FMT: u8>(w: *const u8, x: &[f32]) -> [__m256; 4] {
    let eb = if FMT == F32 { 4 } else { 2 };
    let n8 = x.len() / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); 4];
    let prod = |i: usize| -> __m256 {
        // SAFETY: callers pass i + 8 <= n8, so 8 elements of w (the caller's guarantee) and 8 f32
        // of x are readable; the enclosing function enables avx2 and f16c.
        unsafe { _mm256_mul_ps(load8::<FMT>(w, i), _mm256_loadu_ps(x.as_ptr().add(i))) }
    };
    let mut i = 0;
    while i + DOT_LANES <= n8 {
        // One 64-byte line per step; `wrapping_add`: past the row it is only a hint (a
        // prefetch never faults).
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(eb * i + DOT_PREFETCH_BYTES).cast());
        if FMT == F32 {
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(eb * i + DOT_PREFETCH_BYTES + 64).cast());
        }
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
    acc
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_impl<const FMT: u8>(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    let n8 = n / 8 * 8;
    // SAFETY: the wrapper checked that w holds n elements.
    let acc = unsafe { row_accs::<FMT>(w.as_ptr(), x) };
    let mut lanes = [0f32; DOT_LANES];
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: `lanes[8k..8k + 8]` is in bounds (k < 4).
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * k), *a) };
    }
    for k in n8..n {
        lanes[k % DOT_LANES] += elem::<FMT>(w, k) * x[k];
    }
    reduce32(&lanes)
}

/// Columns per step of [`rows8_accs`]: one step reads this many elements of each of the 8
/// rows in turn (64 bytes of an F16 row, one cache line), so one piece of `x` (128 bytes)
/// serves all eight. Measured on Zen 3 with F16 LM-head rows (128256 × 2560, from DRAM), 1 and
/// 2 threads, alternating with the bandwidth probe:
/// - whole rows one after another ([`dot_impl`]): 82-98 % of the probe's bandwidth, while a
///   test version whose `x` loads stayed within 1 KiB read at 94-101 %;
/// - steps of 512 / 256 / 128 / 32 columns (with a linear prefetch of the next 8 rows):
///   79-86 / 89-98 / 96-102 / 90-94 %;
/// - steps of 64 columns: 99-105 % with that prefetch, 97-105 % with the prefetch into L1 of
///   the same columns 8 rows on.
///
/// On a host of the same VM type with faster memory (2026-11-30, probe 26-29 GB/s at 1 thread,
/// 33-35 at 2, where the same VM read 8-11 / 13-20 that morning), that L1 prefetch read at 54-57 %
/// (1 thread) and 65-80 % (2 threads), and no software prefetch at all about the same: lines
/// fetched into L1 40 KiB ahead are evicted before use. With [`ROWS_PREFETCH_ROWS`] instead,
/// steps of 32 columns read at 79-86 % / 90-94 % and steps of 64 at 74-78 % / 91-96 % (3
/// alternating rounds); rows one after another ([`dot_impl`]) with an L1 prefetch 1 / 2 / 4
/// KiB ahead, at 61-66 / 74-78 / 77-92 % (1 thread).
pub(super) const ROWS_STEP: usize = 32;

/// How many rows ahead [`rows8_accs`] prefetches, into L2 (`_MM_HINT_T1`): the same columns
/// of the row this far on, two calls ahead. On the faster host above, 8 rows read at 71-78 %,
/// 12 at 74 %, 16 at 75-84 %, 24 at 75 % and 32 at 76-79 % (1 thread, steps of 64 columns but
/// for 16 and 32 rows, measured with both); prefetching into L1 (8 rows on, or 256-512 bytes
/// on in the same row, or linearly 8 rows on) read at 41-56 %.
pub(super) const ROWS_PREFETCH_ROWS: usize = 16;

/// How far ahead in an `F16_R8` head's single stream [`rows8_accs`] prefetches into L2, once
/// per 64-byte piece row. Without it the AVX2 loop (twice the AVX-512 one's instructions per
/// byte) read at 0.64-1.02x the row-major head's rate (4 runs, 2B4T head in huge pages, 1
/// thread, each the median of 15 alternating passes); with it, 0.83-1.03x (6 runs; 2 / 8 / 16
/// / 64 / 128 KiB ahead: 0.52 / 0.95 / 0.85 / 1.01 / 0.83x, one run each). The AVX-512 loop
/// reads faster without one (0.86x with it).
const PANEL_PREFETCH_BYTES: usize = 32 << 10;

/// Scalar's 32 partial sums (as [`row_accs`]) of each of the 8 rows at `w`, `stride` bytes
/// apart, with `x: (n,)`, `n` a multiple of 8: [`ROWS_STEP`] columns of each row in turn,
/// prefetching into L2 the same columns of the row [`ROWS_PREFETCH_ROWS`] on (LM-head rows
/// are consecutive, attention's keys the next positions). Every lane adds its elements in
/// column order, so the sums are those of [`row_accs`].
///
/// With `PANEL`, `w` is instead one group of 8 rows in [`crate::layout::Layout::F16R8`] order
/// (`stride` unused, `n` a multiple of 32): the same pieces in the same order, read as one
/// sequential stream, prefetched [`PANEL_PREFETCH_BYTES`] ahead.
///
/// # Safety
/// AVX2 and F16C must be available; `n` must be a multiple of 8 (of 32 with `PANEL`), and each
/// of the 8 rows must hold `n` readable elements of format `FMT`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn rows8_accs<const FMT: u8, const PANEL: bool>(
    w: *const u8,
    stride: usize,
    x: &[f32],
) -> [[__m256; 4]; 8] {
    const { assert!(ROWS_STEP == F16_R8_COLS) };
    let eb = if FMT == F32 { 4 } else { 2 };
    let n = x.len();
    let full = n / ROWS_STEP * ROWS_STEP;
    let mut acc = [[_mm256_setzero_ps(); 4]; 8];
    let prod = |row: *const u8, wi: usize, xi: usize| {
        // SAFETY: callers pass xi + 8 <= n and 8 readable elements of the row at `wi` (the
        // caller's guarantee); the enclosing function enables avx2 and f16c.
        unsafe { _mm256_mul_ps(load8::<FMT>(row, wi), _mm256_loadu_ps(x.as_ptr().add(xi))) }
    };
    let mut c = 0;
    while c < full {
        for (i, a) in acc.iter_mut().enumerate() {
            // row i's elements c.. : at `row`, from element `c0`
            let (row, c0) = if PANEL {
                (w.wrapping_add((F16_R8_ROWS * c + F16_R8_COLS * i) * eb), 0)
            } else {
                (w.wrapping_add(i * stride), c)
            };
            if !PANEL {
                for l in (0..ROWS_STEP * eb).step_by(64) {
                    // A hint only (`wrapping_add`; it never faults).
                    _mm_prefetch::<_MM_HINT_T1>(
                        row.wrapping_add(ROWS_PREFETCH_ROWS * stride + c * eb + l)
                            .cast(),
                    );
                }
            } else {
                // A hint only (`wrapping_add`; it never faults).
                _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(PANEL_PREFETCH_BYTES).cast());
            }
            let mut v = *a;
            for j in (0..ROWS_STEP).step_by(DOT_LANES) {
                for (k, vk) in v.iter_mut().enumerate() {
                    *vk = _mm256_add_ps(*vk, prod(row, c0 + j + 8 * k, c + j + 8 * k));
                }
            }
            *a = v;
        }
        c += ROWS_STEP;
    }
    if !PANEL {
        for (i, a) in acc.iter_mut().enumerate() {
            let row = w.wrapping_add(i * stride);
            for j in (full..n).step_by(8) {
                let k = (j % DOT_LANES) / 8;
                a[k] = _mm256_add_ps(a[k], prod(row, j, j));
            }
        }
    }
    acc
}

/// [`super::scalar::dot_rows_f16`] and kin: eight rows at a time, their partial sums from
/// [`rows8_accs`] (a piece of every row at a time, so a piece of `x` serves all eight: the LM
/// head's F16, BF16 and F32 rows take this path) reduced together by [`reduce8_accs`]. Rows of
/// a length that is not a multiple of 8, and the last `rows % 8`, go through [`dot_impl`].
///
/// # Safety
/// AVX2 and F16C; the shape as checked by [`super::scalar::check_rows`].
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_rows_impl<const FMT: u8>(w: &[u8], stride: usize, x: &[f32], out: &mut [f32]) {
    // SAFETY: forwarded from this function's contract; `rows8_accs` needs AVX2 and F16C.
    unsafe {
        dot_rows_by8::<FMT>(w, stride, x, out, |p, s, x| {
            rows8_accs::<FMT, false>(p, s, x)
        })
    }
}

/// AVX2 + F16C [`super::scalar::dot_panels_f16`], bit-identical: [`dot_rows_by8`] over the
/// 8-row groups, each read in `F16_R8` order ([`rows8_accs`] with `PANEL`).
pub(crate) fn dot_panels_f16_avx2(w: &[u8], x: &[f32], out: &mut [f32]) {
    super::scalar::check_panels(w.len(), x.len(), out.len());
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`. The shape is checked: rows are a multiple of 8 and columns of 32, so
    // `dot_rows_by8` takes only its 8-row path, and the group of rows r.. starts at byte
    // r · 2·cols (its `stride`), 8 · 2·cols bytes of pieces.
    unsafe { panels_impl(w, x, out) }
}

/// [`dot_panels_f16_avx2`] under its target features (so that [`dot_rows_by8`] and
/// [`rows8_accs`] inline into one loop).
///
/// # Safety
/// AVX2 and F16C; the shape as checked by [`super::scalar::check_panels`].
#[target_feature(enable = "avx2,f16c")]
unsafe fn panels_impl(w: &[u8], x: &[f32], out: &mut [f32]) {
    // SAFETY: forwarded (the caller's contract covers `rows8_accs`'s with PANEL: every group
    // holds 8 rows of x.len() values, a multiple of 32).
    unsafe {
        dot_rows_by8::<F16>(w, 2 * x.len(), x, out, |p, s, x| {
            rows8_accs::<F16, true>(p, s, x)
        })
    }
}

/// [`dot_rows_impl`] with the 8-row sums of `rows8`: `(w, stride_bytes, x: (n,))` to scalar's
/// 32 partial sums of each of the 8 rows at `w`, as [`rows8_accs`] defines them (AVX2's, or a
/// wider variant's with the same lanes): shared by the AVX2 and AVX-512 variants. Inlined into
/// each entry point with `rows8` inlined in turn, so a group's sums stay in registers: as a
/// call per 8-row group (a function pointer), the `F16_R8` head read at 0.75-0.8x the rate of
/// one loop (same instructions otherwise, 1 thread, alternating passes).
///
/// # Safety
/// AVX2 and F16C, and whatever `rows8` needs; the shape as checked by
/// [`super::scalar::check_rows`].
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_rows_by8<const FMT: u8>(
    w: &[u8],
    stride: usize,
    x: &[f32],
    out: &mut [f32],
    rows8: impl Fn(*const u8, usize, &[f32]) -> [[__m256; 4]; 8],
) {
    let eb = if FMT == F32 { 4 } else { 2 };
    let (n, rows) = (x.len(), out.len());
    let mut r = 0;
    if n.is_multiple_of(8) {
        while r + 8 <= rows {
            // SAFETY: n is a multiple of 8 (tested above); rows r..r + 8 <= rows hold n
            // elements each, `stride` bytes apart (checked by the wrapper).
            let acc = rows8(unsafe { w.as_ptr().add(r * stride) }, stride, x);
            // SAFETY: out[r..r + 8] is in bounds (r + 8 <= rows).
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(r), reduce8_accs(&acc)) };
            r += 8;
        }
    }
    for (i, o) in out.iter_mut().enumerate().skip(r) {
        // SAFETY: as above, one row.
        *o = unsafe { dot_impl::<FMT>(&w[i * stride..i * stride + n * eb], x) };
    }
}

/// [`super::scalar::axpy_rows_f16`] and kin: 64 elements of `y` stay in eight registers while
/// every row adds into them (the same multiply and add per element, in row order), then 8 at a
/// time, then the tail element by element.
///
/// # Safety
/// AVX2 and F16C; the shape as checked by [`super::scalar::check_rows`].
#[target_feature(enable = "avx2,f16c")]
unsafe fn axpy_rows_impl<const FMT: u8>(a: &[f32], x: &[u8], stride: usize, y: &mut [f32]) {
    let n = y.len();
    let mut i = 0;
    macro_rules! stretch {
        ($regs:expr) => {{
            const R: usize = $regs;
            // SAFETY: i + 8R <= n, so y holds 8R elements from i.
            let yp = unsafe { y.as_mut_ptr().add(i) };
            let mut acc: [__m256; R] = core::array::from_fn(|k| {
                // SAFETY: as above (k < R).
                unsafe { _mm256_loadu_ps(yp.add(8 * k)) }
            });
            for (r, &ar) in a.iter().enumerate() {
                let av = _mm256_set1_ps(ar);
                let row = x.as_ptr().wrapping_add(r * stride);
                for (k, s) in acc.iter_mut().enumerate() {
                    // SAFETY: row r < rows holds n >= i + 8R elements at byte r * stride (shape
                    // checked by the wrapper).
                    let xv = unsafe { load8::<FMT>(row, i + 8 * k) };
                    *s = _mm256_add_ps(*s, _mm256_mul_ps(av, xv));
                }
            }
            for (k, s) in acc.iter().enumerate() {
                // SAFETY: as the loads of y above.
                unsafe { _mm256_storeu_ps(yp.add(8 * k), *s) };
            }
            i += 8 * R;
        }};
    }
    while i + 64 <= n {
        stretch!(8);
    }
    while i + 8 <= n {
        stretch!(1);
    }
    for (k, yk) in y.iter_mut().enumerate().skip(i) {
        for (r, &ar) in a.iter().enumerate() {
            *yk += ar * elem::<FMT>(&x[r * stride..], k);
        }
    }
}

/// AVX2 [`super::scalar::quantize_q8_0_act`], bit-identical (same f32 operations per block).
pub(crate) fn quantize_q8_0_act_avx2(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        x.len().is_multiple_of(QK) && q.len() == x.len() && d.len() == x.len() / QK,
        "quantize_q8_0_act: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of
    // `select`; shapes checked above.
    unsafe { quantize_q8_0_impl(x, q, d) }
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_q8_0_impl(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let lim = _mm256_set1_ps(127.0);
    let nlim = _mm256_set1_ps(-127.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (b, db) in d.iter_mut().enumerate() {
        // SAFETY: block b covers x[32b..32b+32] and q[32b..32b+32] (shapes checked by caller).
        unsafe {
            let p = x.as_ptr().add(32 * b);
            let v: [__m256; 4] = core::array::from_fn(|k| _mm256_loadu_ps(p.add(8 * k)));
            let mut m = _mm256_setzero_ps();
            for vk in v {
                // max(|v|, m): a NaN lane returns m, as scalar's `a > amax` ignores NaN
                m = _mm256_max_ps(_mm256_and_ps(vk, abs_mask), m);
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), m);
            let amax = lanes.iter().fold(0.0f32, |a, &l| if l > a { l } else { a });
            let dd = amax / 127.0;
            let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
            let s = _mm256_set1_ps(id);
            let conv = |vk: __m256| -> __m256i {
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(vk, s),
                );
                let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
                _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, nlim), lim))
            };
            let ab = _mm256_packs_epi32(conv(v[0]), conv(v[1]));
            let cd = _mm256_packs_epi32(conv(v[2]), conv(v[3]));
            let out = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
            _mm256_storeu_si256(q.as_mut_ptr().add(32 * b).cast(), out);
            *db = dd;
        }
    }
}

/// AVX2 [`super::scalar::dot_q8_0_row`], bit-identical: exact integer block sums (sign trick:
/// activations are in [-127, 127]), eight blocks per step so lane `j` is scalar's `acc[b % 8]`.
pub(crate) fn dot_q8_0_row_avx2(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        w.len() == d.len() * 34 && q.len() == d.len() * QK,
        "dot_q8_0: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; shapes checked above.
    unsafe { dot_blocks_impl::<false>(w, q, d) }
}

/// AVX2 [`super::scalar::dot_q4_0_row`], bit-identical: the 16 code bytes of a block expand to
/// 32 signed weights `q − 8` (low nibbles then high nibbles, the activations' order), then the
/// same exact block sums and float steps as [`dot_q8_0_row_avx2`].
pub(crate) fn dot_q4_0_row_avx2(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    assert!(
        w.len() == d.len() * BB && q.len() == d.len() * QK,
        "dot_q4_0: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; shapes checked above.
    unsafe { dot_blocks_impl::<true>(w, q, d) }
}

/// AVX2 [`super::scalar::matvec_q4_0_q8_0`], bit-identical. The activations' block sums
/// `Σ x` are computed once per call, so a block needs no sign trick: `Σ (c − 8)·x =
/// Σ c·x − 8 Σ x` with the unsigned codes `c` straight into `vpmaddubsw` (|pair| ≤ 2·15·128);
/// the integer block sums are exact either way, and the float steps are `dot_q4_0_row`'s.
pub(crate) fn matvec_q4_0_q8_0_avx2(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    let nb = d.len();
    assert!(
        q.len() == nb * QK && w.len() == out.len() * nb * BB,
        "matvec_q4_0: shapes"
    );
    if nb > Q4_ROWS_MAX_BLOCKS {
        return super::scalar::rows_by(dot_q4_0_row_avx2, w, q, d, out);
    }
    // SAFETY: reachable only through a KernelSet selected under the AVX2+F16C contract of
    // `select`; shapes checked above.
    unsafe { q4_rows_impl(w, q, d, out) }
}

/// Most blocks per row [`q4_rows_impl`] prepares on the stack (rows of up to 32768 values).
const Q4_ROWS_MAX_BLOCKS: usize = 1024;

/// How far ahead (bytes) [`q4_rows_impl`] prefetches its rows into L1 (they are consecutive,
/// so this runs into the next rows). The Q4_0 LM head (128256 × 2560, 185 MB, from DRAM) on
/// Zen 3 (2026-11-30, alternating with the bandwidth probe at 26-29 GB/s with 1 thread, 28-35
/// with 2): 1 KiB ([`DOT_PREFETCH_BYTES`]) read at 49-51 % / 79-96 %, 2 KiB at 57 % (1
/// thread), 4 KiB at 59-64 % / 90 %, 6 KiB at 59-64 % / 87-89 %, 8-16 KiB at 54-63 %; prefetching
/// into L2 instead, 2-8 KiB ahead, at 39-55 %. With 1 thread the kernel is then near its
/// compute rate (22 GB/s on rows that stay in L2).
const Q4_PREFETCH_BYTES: usize = 4096;

#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_rows_impl(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    const BB: usize = crate::layout::Q4_0_BLOCK_BYTES;
    let nb = d.len();
    let rb = nb * BB;
    let ones8 = _mm256_set1_epi8(1);
    let ones = _mm256_set1_epi16(1);
    // 8 · Σ x of every block (the codes' offset), exact in i32
    let mut sx8 = [0i32; Q4_ROWS_MAX_BLOCKS];
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
    let nib = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * rb..(r + 1) * rb];
        let wp = row.as_ptr();
        let block_sum = |b: usize| -> __m256i {
            // SAFETY: b < nb: block b's 18 bytes are in the row, its 32 activations in q.
            unsafe {
                let c = _mm256_broadcastsi128_si256(_mm_loadu_si128(wp.add(BB * b + 2).cast()));
                // low lane: low nibbles (values 0..16), high lane: high nibbles (16..32)
                let wv = _mm256_and_si256(_mm256_srlv_epi32(c, nib), low4);
                let xv = _mm256_loadu_si256(q.as_ptr().add(32 * b).cast());
                _mm256_maddubs_epi16(wv, xv)
            }
        };
        let mut acc = _mm256_setzero_ps();
        let mut b = 0;
        while b + 8 <= nb {
            let p = wp.wrapping_add(BB * b + Q4_PREFETCH_BYTES);
            for l in 0..(8 * BB).div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * l).cast());
            }
            let s: [__m256i; 8] = core::array::from_fn(|j| block_sum(b + j));
            // SAFETY: b + 8 <= nb <= Q4_ROWS_MAX_BLOCKS: sx8[b..b + 8], d[b..b + 8] and the
            // row's blocks b..b + 8 (144 bytes from BB * b) exist.
            let (off, dw, dx) = unsafe {
                (
                    _mm256_loadu_si256(sx8.as_ptr().add(b).cast()),
                    q4_scales8(wp.add(BB * b)),
                    _mm256_loadu_ps(d.as_ptr().add(b)),
                )
            };
            acc = scaled8(acc, dw, dx, _mm256_sub_epi32(hsum8_i16(s), off));
            b += 8;
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        super::scalar::block_dots::<true>(row, q, d, b, &mut lanes);
        *o = super::scalar::reduce8(&lanes);
    }
}

/// Lane `j` = the sum of the eight int32 lanes of `s[j]` (a `hadd` tree): the integer sums of
/// eight consecutive blocks.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum8(s: [__m256i; 8]) -> __m256i {
    let h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    let h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(h0123, h4567),
        _mm256_permute2x128_si256::<0x31>(h0123, h4567),
    )
}

/// Lane `j` = the sum of the sixteen int16 lanes of `s[j]`, sign-extended: the integer sums of
/// eight consecutive blocks from their `vpmaddubsw` pairs, by three in-lane `vphaddw` levels
/// (each level's words sum 2, 4, then 8 pairs) and one widening add of the two lanes.
/// Exact when every word is at most 4095 in magnitude (8 · 4095 < 2^15): Q4_0 codes `0..=15`
/// times activations in `-128..=127` give pairs of at most 2 · 15 · 128 = 3840.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8_i16(s: [__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi16(s[0], s[1]);
    let h23 = _mm256_hadd_epi16(s[2], s[3]);
    let h45 = _mm256_hadd_epi16(s[4], s[5]);
    let h67 = _mm256_hadd_epi16(s[6], s[7]);
    // word j of each lane: block j's sum over that lane's eight pairs
    let h = _mm256_hadd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_hadd_epi16(h45, h67));
    _mm256_add_epi32(
        _mm256_cvtepi16_epi32(_mm256_castsi256_si128(h)),
        _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(h)),
    )
}

/// `acc[j] + (d_w · d[b + j]) · sums[j]` for blocks `b .. b + 8` of `row` (`bb`-byte blocks,
/// each starting with its little-endian f16 scale `d_w`): scalar's per-block product, lane `j`
/// holding partial sum `(b + j) % 8`.
///
/// # Panics
/// If block `b + 7` or `d[b + 7]` is out of range (caller bug).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn add_scaled8(acc: __m256, row: &[u8], bb: usize, d: &[f32], b: usize, sums: __m256i) -> __m256 {
    let dw: [u16; 8] = core::array::from_fn(|j| {
        let o = bb * (b + j);
        u16::from_le_bytes([row[o], row[o + 1]])
    });
    let dx = &d[b..b + 8];
    // SAFETY: `dw` and `dx` hold 8 values each.
    let (dwv, dxv) = unsafe {
        (
            _mm256_cvtph_ps(_mm_loadu_si128(dw.as_ptr().cast())),
            _mm256_loadu_ps(dx.as_ptr()),
        )
    };
    scaled8(acc, dwv, dxv, sums)
}

/// `acc + (dw · dx) · sums` lane by lane, in scalar's order of operations (no FMA).
#[inline]
#[target_feature(enable = "avx2")]
fn scaled8(acc: __m256, dw: __m256, dx: __m256, sums: __m256i) -> __m256 {
    _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(sums)),
    )
}

/// The f16 scales of eight consecutive Q4_0 blocks (18 bytes each, scale first) at `p`, as f32,
/// from four 32-byte loads and word blends instead of eight scalar loads. Block `j`'s scale
/// lies at byte `18j`: in load `j / 2` (bytes `32 * (j / 2)..`) it is word `j` of the low lane
/// for even `j` (byte `4j` of the load) and of the high lane for odd `j` (byte `16 + 2j`).
///
/// # Safety
/// `p..p + 128` must be readable (the eight blocks span 144 bytes); AVX2 and F16C available.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_scales8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees bytes p..p + 128.
    let [l0, l1, l2, l3] =
        core::array::from_fn(|i| unsafe { _mm256_loadu_si256(p.add(32 * i).cast::<__m256i>()) });
    let w0123 = _mm256_blend_epi16::<0b0000_1100>(l0, l1);
    let w4567 = _mm256_blend_epi16::<0b1100_0000>(l2, l3);
    // low lane: even blocks' scales in words 0, 2, 4, 6; high lane: odd blocks' in 1, 3, 5, 7
    let w = _mm256_blend_epi16::<0b1111_0000>(w0123, w4567);
    let h =
        _mm_blend_epi16::<0b1010_1010>(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
    _mm256_cvtph_ps(h)
}

/// Q8_0 (`Q4 = false`, 34-byte blocks) or Q4_0 (`Q4 = true`, 18-byte blocks) row dot.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_blocks_impl<const Q4: bool>(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    let bb = if Q4 { 18 } else { 34 };
    let nb = d.len();
    let ones = _mm256_set1_epi16(1);
    let low4 = _mm_set1_epi8(0x0F);
    let eight = _mm256_set1_epi8(8);
    let block_sum = |b: usize| -> __m256i {
        // SAFETY: callers pass b < nb, so block b's `bb` bytes and 32 activations exist; the
        // enclosing function enables avx2.
        unsafe {
            let wv = if Q4 {
                let c = _mm_loadu_si128(w.as_ptr().add(bb * b + 2).cast());
                let lo = _mm_and_si128(c, low4);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(c), low4);
                _mm256_sub_epi8(_mm256_set_m128i(hi, lo), eight)
            } else {
                _mm256_loadu_si256(w.as_ptr().add(bb * b + 2).cast())
            };
            let xv = _mm256_loadu_si256(q.as_ptr().add(32 * b).cast());
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            _mm256_madd_epi16(p, ones)
        }
    };
    let mut acc = _mm256_setzero_ps();
    let mut b = 0;
    while b + 8 <= nb {
        // Eight blocks are 272 (Q8_0) or 144 (Q4_0) bytes: prefetch the lines that hold the
        // bytes `DOT_PREFETCH_BYTES` ahead (a hint; `wrapping_add` as it may pass the row's end).
        let p = w.as_ptr().wrapping_add(bb * b + DOT_PREFETCH_BYTES);
        for l in 0..(8 * bb).div_ceil(64) {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * l).cast());
        }
        let s: [__m256i; 8] = core::array::from_fn(|j| block_sum(b + j));
        acc = add_scaled8(acc, w, bb, d, b, hsum8(s));
        b += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    super::scalar::block_dots::<Q4>(w, q, d, b, &mut lanes);
    super::scalar::reduce8(&lanes)
}

/// AVX2 [`super::scalar::rescale_t_i32`], bit-identical (same f32 divisor and division): 8 rows
/// × 8 tokens at a time through an in-register 8 × 8 transpose; edges as scalar.
pub(crate) fn rescale_t_i32_avx2(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
) {
    super::scalar::rescale_t_shape(a, rows, s_a.len(), o, o_stride);
    // SAFETY: reachable only through a KernelSet selected under the AVX2 contract of `select`;
    // shapes checked above.
    unsafe { rescale_t_impl(a, rows, scale, s_a, o, o_stride) }
}

#[target_feature(enable = "avx2")]
unsafe fn rescale_t_impl(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
) {
    let nt = s_a.len();
    let (r8, t8) = (rows / 8 * 8, nt / 8 * 8);
    // Rows outer, tokens inner: the 8 rows' accumulators (8 · nt · 4 contiguous bytes) are
    // read once, whole lines at a time; the other order swept all of `a` (MiBs at prefill
    // shapes, past L2) once per 8 tokens, using half of every line it fetched.
    for r0 in (0..r8).step_by(8) {
        for t0 in (0..t8).step_by(8) {
            let d: [__m256; 8] = core::array::from_fn(|j| _mm256_set1_ps(scale * s_a[t0 + j]));
            // SAFETY: rows r0..r0+8 < rows and tokens t0..t0+8 <= nt of a: (rows, nt).
            let v: [__m256i; 8] = core::array::from_fn(|i| unsafe {
                _mm256_loadu_si256(a.as_ptr().add((r0 + i) * nt + t0).cast())
            });
            // 8 × 8 transpose: t[j] = token t0 + j of rows r0..r0+8
            let p0 = _mm256_unpacklo_epi32(v[0], v[1]);
            let p1 = _mm256_unpackhi_epi32(v[0], v[1]);
            let p2 = _mm256_unpacklo_epi32(v[2], v[3]);
            let p3 = _mm256_unpackhi_epi32(v[2], v[3]);
            let p4 = _mm256_unpacklo_epi32(v[4], v[5]);
            let p5 = _mm256_unpackhi_epi32(v[4], v[5]);
            let p6 = _mm256_unpacklo_epi32(v[6], v[7]);
            let p7 = _mm256_unpackhi_epi32(v[6], v[7]);
            let q0 = _mm256_unpacklo_epi64(p0, p2);
            let q1 = _mm256_unpackhi_epi64(p0, p2);
            let q2 = _mm256_unpacklo_epi64(p1, p3);
            let q3 = _mm256_unpackhi_epi64(p1, p3);
            let q4 = _mm256_unpacklo_epi64(p4, p6);
            let q5 = _mm256_unpackhi_epi64(p4, p6);
            let q6 = _mm256_unpacklo_epi64(p5, p7);
            let q7 = _mm256_unpackhi_epi64(p5, p7);
            let t = [
                _mm256_permute2x128_si256::<0x20>(q0, q4),
                _mm256_permute2x128_si256::<0x20>(q1, q5),
                _mm256_permute2x128_si256::<0x20>(q2, q6),
                _mm256_permute2x128_si256::<0x20>(q3, q7),
                _mm256_permute2x128_si256::<0x31>(q0, q4),
                _mm256_permute2x128_si256::<0x31>(q1, q5),
                _mm256_permute2x128_si256::<0x31>(q2, q6),
                _mm256_permute2x128_si256::<0x31>(q3, q7),
            ];
            for j in 0..8 {
                let y = _mm256_div_ps(_mm256_cvtepi32_ps(t[j]), d[j]);
                // SAFETY: token t0 + j < nt, rows r0..r0+8 <= rows <= o_stride: in o (checked).
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add((t0 + j) * o_stride + r0), y) };
            }
        }
    }
    // edges: the last nt % 8 tokens for every row, the last rows % 8 rows for the first t8
    super::scalar::rescale_t_rest(a, rows, scale, s_a, o, o_stride, (r8, t8));
}
