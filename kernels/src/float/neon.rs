//! AArch64 NEON float row dots and axpys, bit-identical to [`super::scalar`]: vector accumulator `k`,
//! lane `l` holds exactly scalar's partial sum `acc[4k + l]` (partial sum `i % DOT_LANES` of
//! element `i`, eight `float32x4_t` for the 32 sums), updated by a separate multiply and add
//! (no FMA), and the final reduction is scalar's own [`super::scalar::reduce32`].
//!
//! F16 → f32 is `fcvtl` ([`f16x4_to_f32`]): exact for every half value, normals, subnormals,
//! zeros and infinities included; NaN becomes a quiet f32 NaN with the payload shifted up, as
//! `half` converts it.
//!
//! Also the LM head's int8 path: the Q8_0 activation quantizer and the Q8_0 / Q4_0 row dots
//! ([`dot_blocks`], shared with [`super::neon_dot`]), bit-identical to scalar as well.

use core::arch::aarch64::*;
use core::arch::asm;

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

/// NEON [`super::scalar::dot_rows_f16`] and kin for rows of format `FMT`: the row dot per row
/// (shape checked here).
fn dot_rows<const FMT: u8>(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    let rb = x.len() * if FMT == F32 { 4 } else { 2 };
    super::scalar::check_rows(w.len(), stride_bytes, out.len(), rb);
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: as for `dot_f16_row_neon`; the row is rb bytes (checked above).
        *o = unsafe { dot_impl::<FMT>(&w[r * stride_bytes..r * stride_bytes + rb], x) };
    }
}

/// NEON [`super::scalar::dot_rows_f32`] (see [`dot_rows`]).
pub(crate) fn dot_rows_f32_neon(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    dot_rows::<F32>(w, stride_bytes, x, out)
}

/// NEON [`super::scalar::dot_rows_f16`] (see [`dot_rows`]).
pub(crate) fn dot_rows_f16_neon(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    dot_rows::<F16>(w, stride_bytes, x, out)
}

/// NEON [`super::scalar::dot_rows_bf16`] (see [`dot_rows`]).
pub(crate) fn dot_rows_bf16_neon(w: &[u8], stride_bytes: usize, x: &[f32], out: &mut [f32]) {
    dot_rows::<BF16>(w, stride_bytes, x, out)
}

/// NEON [`super::scalar::axpy_rows_f32`]: the axpy row after row (shape checked here).
pub(crate) fn axpy_rows_f32_neon(a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
    let rb = y.len() * 4;
    super::scalar::check_rows(x.len(), stride_bytes, a.len(), rb);
    for (r, &ar) in a.iter().enumerate() {
        // SAFETY: as for `dot_f16_row_neon`; the row is rb bytes (checked above).
        unsafe { axpy_impl::<F32>(ar, &x[r * stride_bytes..r * stride_bytes + rb], y) };
    }
}

/// NEON [`super::scalar::axpy_rows_f16`]: the axpy row after row (shape checked here).
pub(crate) fn axpy_rows_f16_neon(a: &[f32], x: &[u8], stride_bytes: usize, y: &mut [f32]) {
    let rb = y.len() * 2;
    super::scalar::check_rows(x.len(), stride_bytes, a.len(), rb);
    for (r, &ar) in a.iter().enumerate() {
        // SAFETY: as for `dot_f16_row_neon`; the row is rb bytes (checked above).
        unsafe { axpy_impl::<F16>(ar, &x[r * stride_bytes..r * stride_bytes + rb], y) };
    }
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

/// Exact f16 → f32 of 4 half bit patterns by `fcvtl` (base AdvSIMD, ARMv8.0: every AArch64
/// core with NEON has it, FEAT_FP16 not needed). Every half value is exact in f32 (normals,
/// subnormals, zeros, infinities); conversions ignore FPCR.FZ16 (Arm ARM, `FPUnpackCV`), and a
/// NaN becomes the quiet f32 NaN with the payload shifted up (with FPCR.DN = 0, Linux's
/// default), as `half` converts it. `asm!` because the `vcvt_f32_f16` intrinsic takes the
/// unstable `f16` vector types on Rust 1.95.
///
/// It replaced an integer bit-manipulation conversion (about 25 instructions per 4 halves):
/// the F16 row dot's loop went from 210 instructions and 101 cycles per 32 elements to 37 and 20
/// by llvm-mca 19's Neoverse N1 model (the Cortex-A76 core of the Raspberry Pi 5; the BF16 loop,
/// a shift per 4 halves: 13 cycles).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` only reads and writes the two vector registers named here (no memory, no
    // stack, no condition flags; it may set FPSR's cumulative Invalid bit for a signalling
    // NaN, hence no `preserves_flags`); NEON is enabled on this function, and its callers are
    // only reached under the NEON contract of `select`.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            out = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack)
        );
    }
    out
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
            _ => f16x4_to_f32(vld1_u16(w.add(2 * i).cast())),
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
    let eb = if FMT == F32 { 4 } else { 2 };
    // SAFETY: the LANES elements of columns i.. (i < nfull) are at byte i · eb of the row,
    // which holds n elements (the wrapper checked w's length against x's).
    let mut lanes = unsafe { lane_sums::<FMT>(|i| w.as_ptr().wrapping_add(i * eb), &x[..nfull]) };
    for k in nfull..n {
        lanes[k % LANES] += scalar_elem::<FMT>(w, k) * x[k];
    }
    reduce32(&lanes)
}

/// Scalar's `LANES` partial sums of a row with `x: (n,)`, `n` a multiple of `LANES`, whose
/// elements of columns `i .. i + LANES` (`i` a multiple of `LANES`) are at `piece(i)`.
///
/// # Safety
/// `piece(i)` must point at `LANES` readable elements of format `FMT` for every such `i`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn lane_sums<const FMT: u8>(piece: impl Fn(usize) -> *const u8, x: &[f32]) -> [f32; LANES] {
    let mut acc = [vdupq_n_f32(0.0); VECS];
    for (i, xs) in x.chunks_exact(LANES).enumerate() {
        let p = piece(i * LANES);
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: elements 4k .. 4k + 4 of the piece (contract) and of `xs` (LANES long).
            unsafe {
                let wv = load4::<FMT>(p, 4 * k);
                let xv = vld1q_f32(xs.as_ptr().add(4 * k));
                *a = vaddq_f32(*a, vmulq_f32(wv, xv));
            }
        }
    }
    let mut lanes = [0f32; LANES];
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: `lanes` holds LANES = 4 * VECS f32, so 4k .. 4k + 4 is in bounds.
        unsafe { vst1q_f32(lanes.as_mut_ptr().add(4 * k), *a) };
    }
    lanes
}

/// NEON [`super::scalar::dot_panels_f16`], bit-identical: each row's sums over its pieces
/// ([`lane_sums`]), a row at a time.
pub(crate) fn dot_panels_f16_neon(w: &[u8], x: &[f32], out: &mut [f32]) {
    const { assert!(LANES == crate::layout::F16_R8_COLS) };
    let rows = out.len();
    super::scalar::check_panels(w.len(), x.len(), rows);
    // a row's piece k is 8 · 64 bytes after its piece k - 1, within its group
    let stride = crate::layout::F16_R8_ROWS * 2 * LANES;
    for (r, o) in out.iter_mut().enumerate() {
        let at = crate::layout::f16_r8_piece_offset(rows, x.len(), r, 0).expect("checked shape");
        let row = w[at..].as_ptr();
        // SAFETY: reachable only through a KernelSet selected under the NEON contract of
        // `select`; with the shape checked, piece k of row r (k < cols / 32) is the 64 bytes at
        // `at + k · stride`, inside `w`.
        *o = reduce32(&unsafe { lane_sums::<F16>(|i| row.wrapping_add(i / LANES * stride), x) });
    }
}

/// NEON [`super::scalar::quantize_q8_0_act`], bit-identical: per block of 32, `max |x|` over
/// the absolute values' bits compared as unsigned integers with NaN lanes zeroed first (the
/// order of non-negative floats; NaN ignored as scalar's `a > amax` ignores it); `d` and
/// `1/d` by the scalar expressions; `x · (1/d)` one IEEE multiply per lane; `vcvtnq_s32_f32`
/// rounds half to even and maps NaN to 0 (scalar: `rintf`, then `as i8` of NaN is 0), and an
/// integer clamp to [-127, 127] equals scalar's float clamp of an integral value.
pub(crate) fn quantize_q8_0_act_neon(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        x.len().is_multiple_of(QK) && q.len() == x.len() && d.len() == x.len() / QK,
        "quantize_q8_0_act: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; shapes checked above.
    unsafe { quantize_q8_0_impl(x, q, d) }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_0_impl(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let abs_mask = vdupq_n_u32(0x7FFF_FFFF);
    let inf_bits = vdupq_n_u32(0x7F80_0000);
    let (lo, hi) = (vdupq_n_s32(-127), vdupq_n_s32(127));
    for (b, db) in d.iter_mut().enumerate() {
        // SAFETY: block b covers x[32b..32b+32] and q[32b..32b+32] (shapes checked by caller).
        unsafe {
            let p = x.as_ptr().add(32 * b);
            let v: [float32x4_t; 8] = core::array::from_fn(|k| vld1q_f32(p.add(4 * k)));
            let mut m = vdupq_n_u32(0);
            for vk in v {
                let a = vandq_u32(vreinterpretq_u32_f32(vk), abs_mask);
                m = vmaxq_u32(m, vandq_u32(a, vcleq_u32(a, inf_bits)));
            }
            let amax = f32::from_bits(vmaxvq_u32(m));
            let dd = amax / 127.0;
            let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
            let s = vdupq_n_f32(id);
            let c: [int32x4_t; 8] = core::array::from_fn(|k| {
                vminq_s32(vmaxq_s32(vcvtnq_s32_f32(vmulq_f32(v[k], s)), lo), hi)
            });
            let n16 = |a: int32x4_t, b: int32x4_t| vqmovn_high_s32(vqmovn_s32(a), b);
            let out = q.as_mut_ptr().add(32 * b);
            vst1q_s8(
                out,
                vqmovn_high_s16(vqmovn_s16(n16(c[0], c[1])), n16(c[2], c[3])),
            );
            vst1q_s8(
                out.add(16),
                vqmovn_high_s16(vqmovn_s16(n16(c[4], c[5])), n16(c[6], c[7])),
            );
            *db = dd;
        }
    }
}

/// NEON [`super::scalar::dot_q8_0_row`], bit-identical (see [`dot_blocks`]).
pub(crate) fn dot_q8_0_row_neon(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::Q8_0_BLOCK_ELEMS as QK;
    assert!(
        w.len() == d.len() * 34 && q.len() == d.len() * QK,
        "dot_q8_0: shapes"
    );
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; shapes checked above.
    unsafe { dot_blocks_neon::<false>(w, q, d) }
}

/// NEON [`super::scalar::dot_q4_0_row`], bit-identical (see [`dot_blocks`]).
pub(crate) fn dot_q4_0_row_neon(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    use crate::layout::{Q4_0_BLOCK_BYTES as BB, Q4_0_BLOCK_ELEMS as QK};
    assert!(
        w.len() == d.len() * BB && q.len() == d.len() * QK,
        "dot_q4_0: shapes"
    );
    // SAFETY: as for `dot_q8_0_row_neon`.
    unsafe { dot_blocks_neon::<true>(w, q, d) }
}

#[target_feature(enable = "neon")]
unsafe fn dot_blocks_neon<const Q4: bool>(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    // Without dotprod: widening multiplies to int16 (two products per lane: at most
    // 2 · 128 · 127 = 32512 with activations in [-127, 127]), pairwise-added into int32.
    let sum = |_: usize, w0: int8x16_t, w1: int8x16_t, x0: int8x16_t, x1: int8x16_t| {
        let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)), w0, x0);
        let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(x1)), w1, x1);
        vpadalq_s16(vpaddlq_s16(p0), p1)
    };
    // SAFETY: forwarded (NEON enabled here; the wrapper checked the shapes).
    unsafe { dot_blocks::<Q4, false>(w, q, d, sum) }
}

/// The 32 signed weights of the block at `blk` as two vectors (values 0..16 and 16..32):
/// Q8_0's int8 `q`, or Q4_0's `code − 8` (low nibbles, then high nibbles); with `RAW`, Q4_0's
/// codes `0..16` themselves (the caller subtracts `8 · Σ x` per block).
///
/// # Safety
/// `blk` must point at one whole block (34 bytes for Q8_0, 18 for Q4_0).
#[inline(always)]
unsafe fn block_weights<const Q4: bool, const RAW: bool>(blk: *const u8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the caller guarantees the block's bytes are readable; NEON is baseline on
    // aarch64 and enabled on every caller.
    unsafe {
        if Q4 {
            let c = vld1q_u8(blk.add(2));
            let lo = vreinterpretq_s8_u8(vandq_u8(c, vdupq_n_u8(0x0F)));
            let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(c));
            if RAW {
                (lo, hi)
            } else {
                let eight = vdupq_n_s8(8);
                (vsubq_s8(lo, eight), vsubq_s8(hi, eight))
            }
        } else {
            (vld1q_s8(blk.add(2).cast()), vld1q_s8(blk.add(18).cast()))
        }
    }
}

/// The block loop shared by the NEON and NEON + dotprod Q8_0 / Q4_0 row dots. `sum(k, w0, w1,
/// x0, x1)` returns int32 lanes whose total is block `k`'s exact integer sum `Σ w·x` (with
/// `RAW`, the weights passed are Q4_0's codes, see [`block_weights`]). Eight
/// blocks per step: their sums go to two `float32x4_t` accumulators whose lane `j` (of 8) is
/// scalar's `acc[b % 8]`, updated by the same `(d_w · d_b) · s_b` multiplies and add (no FMA); the f16
/// scales convert exactly ([`f16x4_to_f32`]); the last `nb % 8` blocks and the final reduction
/// are scalar's ([`super::scalar::block_dots`], [`super::scalar::reduce8`]).
///
/// # Safety
/// NEON (and what `sum` needs) must be available; `w`, `q`, `d` must have the shapes the
/// wrappers check (`d.len()` blocks).
#[inline(always)]
pub(super) unsafe fn dot_blocks<const Q4: bool, const RAW: bool>(
    w: &[u8],
    q: &[i8],
    d: &[f32],
    sum: impl Fn(usize, int8x16_t, int8x16_t, int8x16_t, int8x16_t) -> int32x4_t,
) -> f32 {
    let bb = if Q4 { 18 } else { 34 };
    let nb = d.len();
    // SAFETY: NEON is available (this function's contract).
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; 2];
    let mut b = 0;
    while b + 8 <= nb {
        // SAFETY: blocks b..b + 8 < nb: their bytes and their 32 activations each are in
        // bounds (the wrappers' shape checks).
        let r: [int32x4_t; 8] = core::array::from_fn(|j| unsafe {
            let k = b + j;
            let (w0, w1) = block_weights::<Q4, RAW>(w.as_ptr().add(bb * k));
            let xp = q.as_ptr().add(32 * k);
            sum(k, w0, w1, vld1q_s8(xp), vld1q_s8(xp.add(16)))
        });
        // Lane j of s[h]: block b + 4h + j's exact sum, by pairwise adds (`addp`) instead of
        // a lane reduction and a store per block.
        // SAFETY: NEON is available (this function's contract).
        let s = unsafe {
            [
                vpaddq_s32(vpaddq_s32(r[0], r[1]), vpaddq_s32(r[2], r[3])),
                vpaddq_s32(vpaddq_s32(r[4], r[5]), vpaddq_s32(r[6], r[7])),
            ]
        };
        // SAFETY: as above: every block starts with its 2-byte scale.
        let dw: [u16; 8] = core::array::from_fn(|j| unsafe {
            u16::from_le_bytes(*w.as_ptr().add(bb * (b + j)).cast::<[u8; 2]>())
        });
        for (h, (a, sh)) in acc.iter_mut().zip(s).enumerate() {
            // SAFETY: `dw` holds 8 values, d[b..b + 8] exists (b + 8 <= nb).
            unsafe {
                let dwv = f16x4_to_f32(vld1_u16(dw.as_ptr().add(4 * h)));
                let dxv = vld1q_f32(d.as_ptr().add(b + 4 * h));
                *a = vaddq_f32(*a, vmulq_f32(vmulq_f32(dwv, dxv), vcvtq_f32_s32(sh)));
            }
        }
        b += 8;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe {
        vst1q_f32(lanes.as_mut_ptr(), acc[0]);
        vst1q_f32(lanes.as_mut_ptr().add(4), acc[1]);
    }
    super::scalar::block_dots::<Q4>(w, q, d, b, &mut lanes);
    super::scalar::reduce8(&lanes)
}

/// [`super::scalar::matvec_q4_0_q8_0`] row by row with the NEON dot. (The NEON + dotprod
/// variant's per-call `− 8 · Σ x` corrections gain nothing here: tried, its block loop took 60
/// cycles per 8 blocks against this one's 59 by llvm-mca 19's Neoverse N1 model, bound by the
/// 32 widening multiplies, which only one vector pipe executes.)
pub(crate) fn matvec_q4_0_q8_0_neon(w: &[u8], q: &[i8], d: &[f32], out: &mut [f32]) {
    super::scalar::rows_by(dot_q4_0_row_neon, w, q, d, out)
}

/// NEON [`super::scalar::rescale_t_i32`], bit-identical: 4 rows × 4 tokens per step, transposed
/// in registers (`trn1`/`trn2` on 32- then 64-bit lanes), converted by `scvtf` (round to
/// nearest, as `as f32`) and divided by `fdiv` (IEEE, as scalar's `/`) by the same f32 divisor
/// `scale * s_a[t]`; the last `rows % 4` rows and `nt % 4` tokens as scalar.
pub(crate) fn rescale_t_i32_neon(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
) {
    super::scalar::rescale_t_shape(a, rows, s_a.len(), o, o_stride);
    // SAFETY: reachable only through a KernelSet selected under the NEON contract of
    // `select`; shapes checked above.
    unsafe { rescale_t_impl(a, rows, scale, s_a, o, o_stride) }
}

#[target_feature(enable = "neon")]
unsafe fn rescale_t_impl(
    a: &[i32],
    rows: usize,
    scale: f32,
    s_a: &[f32],
    o: &mut [f32],
    o_stride: usize,
) {
    let nt = s_a.len();
    let (r4, t4) = (rows / 4 * 4, nt / 4 * 4);
    // Rows outer, tokens inner, as in the AVX2 version: each row's accumulators are read
    // once, whole lines at a time.
    for r0 in (0..r4).step_by(4) {
        for t0 in (0..t4).step_by(4) {
            let d: [float32x4_t; 4] = core::array::from_fn(|j| vdupq_n_f32(scale * s_a[t0 + j]));
            // SAFETY: rows r0..r0+4 < rows and tokens t0..t0+4 <= nt of a: (rows, nt).
            let v: [int32x4_t; 4] =
                core::array::from_fn(|i| unsafe { vld1q_s32(a.as_ptr().add((r0 + i) * nt + t0)) });
            // 4 × 4 transpose: t[j] = token t0 + j of rows r0..r0+4
            let (p0, p1) = (vtrn1q_s32(v[0], v[1]), vtrn2q_s32(v[0], v[1]));
            let (p2, p3) = (vtrn1q_s32(v[2], v[3]), vtrn2q_s32(v[2], v[3]));
            let w = |x: int32x4_t| vreinterpretq_s64_s32(x);
            let n = |x: int64x2_t| vreinterpretq_s32_s64(x);
            let t = [
                n(vtrn1q_s64(w(p0), w(p2))),
                n(vtrn1q_s64(w(p1), w(p3))),
                n(vtrn2q_s64(w(p0), w(p2))),
                n(vtrn2q_s64(w(p1), w(p3))),
            ];
            for j in 0..4 {
                let y = vdivq_f32(vcvtq_f32_s32(t[j]), d[j]);
                // SAFETY: token t0 + j < nt, rows r0..r0+4 <= rows <= o_stride: in o (checked).
                unsafe { vst1q_f32(o.as_mut_ptr().add((t0 + j) * o_stride + r0), y) };
            }
        }
    }
    // edges: the last nt % 4 tokens for every row, the last rows % 4 rows for the first t4
    super::scalar::rescale_t_rest(a, rows, scale, s_a, o, o_stride, (r4, t4));
}
