//! AVX-512 VNNI ternary × int8 matvec on the `T2_128` layout (decode), for x86-64 CPUs with
//! AVX-512 F/BW/VL and VNNI (AMD Zen 4 and later, Intel Ice Lake and later).
//!
//! `vpdpbusd` (unsigned × signed bytes, four products summed into each int32 lane, no
//! saturation) replaces AVX2's `vpmaddubsw` + `vpaddw` + widening, and its int32 sums leave
//! room for codes that are not shifted down at all: each of a byte's four 2-bit codes is
//! masked in place (`q & 0xC0`, `0x30`, `0x0C`, `0x03`), so it enters as `64 c`, `16 c`, `4 c`
//! or `c`, into its own int32 sums, which are shifted back right by 6, 4, 2 or 0 bits at the
//! end (exact: every product in them is a multiple of that power of two). Per block of 128
//! weights and row: one load, four `vpand`, four `vpdpbusd` — 8 vector instructions where
//! the AVX2 tile takes 13 — on 256-bit registers (EVEX-encoded, all 32 of them). The row
//! driver (4-row tiles, `Σ x` correction, the partial last block) is the AVX2 one.

use core::arch::x86_64::*;

use super::avx2::{MATVEC_PREFETCH_BYTES, hsum_epi32, matvec_rows};
use crate::layout::t2_row_bytes;

/// Blocks summed into a tile's int32 lanes before they are shifted back and combined. A lane
/// of the `64 c` sums gains at most `4 · 64 · 3 · 128 = 98304` per block (the invalid code 3
/// included, see the AVX2 module's `I16_BLOCKS`), so 16384 blocks stay below 2^31; real rows
/// (≤ 54 blocks in 2B4T) never reach the window's end.
const I32_BLOCKS: usize = 16384;

/// Safe wrapper: lengths are checked here, the CPU features by the caller of
/// [`crate::select`] (whose contract guarantees AVX-512 F/BW/VL and VNNI before this can be
/// reached).
pub(crate) fn matvec_t2_i8_avx512vnni(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    let rb = t2_row_bytes(cols);
    assert_eq!(x.len(), cols, "matvec_t2_i8: x must have cols elements");
    assert_eq!(
        w.len(),
        out.len() * rb,
        "matvec_t2_i8: w must hold rows * row_bytes"
    );
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted AVX-512 F/BW/VL and VNNI (their
    // `# Safety` contract); the lengths were checked above.
    unsafe { matvec_rows(w, cols, x, out, tile4, tile1) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile4(w: [*const u8; 4], x: *const i8, full: usize) -> [i32; 4] {
    // SAFETY: forwarded from `Tile4`'s contract.
    unsafe { tile::<4, MATVEC_PREFETCH_BYTES>(w, x, full) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile1(w: *const u8, x: *const i8, full: usize) -> i32 {
    // SAFETY: forwarded from `Tile1`'s contract.
    let s = unsafe { tile::<1, MATVEC_PREFETCH_BYTES>([w], x, full) };
    s[0]
}

/// One register tile: `R` weight rows over all full blocks; returns Σ c·x for each row.
///
/// A block's byte `j` holds the codes of columns `j, 32 + j, 64 + j, 96 + j` in bits 6-7, 4-5,
/// 2-3 and 0-1 (see [`crate::layout::BlockT2`]). With `PF > 0` it prefetches the tile's
/// weights `PF` bytes ahead as one linear stream, as the AVX2 tile does (hints only: addresses
/// past the end of `w` are never dereferenced).
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI must be available; `w[i]` must point at `full * 32` readable bytes
/// and `x` at `full * 128`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const R: usize, const PF: usize>(
    w: [*const u8; R],
    x: *const i8,
    full: usize,
) -> [i32; R] {
    // mask k selects the codes of columns 32k + j, scaled by 4^(3-k)
    let masks = [
        _mm256_set1_epi8(0xC0u8 as i8),
        _mm256_set1_epi8(0x30),
        _mm256_set1_epi8(0x0C),
        _mm256_set1_epi8(0x03),
    ];
    let mut total = [_mm256_setzero_si256(); R];
    let mut b = 0;
    while b < full {
        let bend = (b + I32_BLOCKS).min(full);
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for bb in b..bend {
            if PF > 0 {
                // `wrapping_add`: the address may lie past the allocation; it is only a hint.
                let p = w[0].wrapping_add(PF + bb * R * 32);
                let mut o = 0;
                while o < R * 32 {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o).cast());
                    o += 64;
                }
            }
            // SAFETY: bb < full: 32 bytes at w[i] + 32 bb and 128 at x + 128 bb (contract).
            unsafe {
                let q: [__m256i; R] =
                    core::array::from_fn(|i| _mm256_loadu_si256(w[i].add(bb * 32).cast()));
                let xb = x.add(bb * 128);
                let xv: [__m256i; 4] =
                    core::array::from_fn(|k| _mm256_loadu_si256(xb.add(32 * k).cast()));
                for i in 0..R {
                    for k in 0..4 {
                        acc[i][k] =
                            _mm256_dpbusd_epi32(acc[i][k], _mm256_and_si256(q[i], masks[k]), xv[k]);
                    }
                }
            }
        }
        for i in 0..R {
            // every lane of acc[i][k] is a multiple of 4^(3-k): the shifts are exact
            let s = _mm256_add_epi32(
                _mm256_add_epi32(
                    _mm256_srai_epi32::<6>(acc[i][0]),
                    _mm256_srai_epi32::<4>(acc[i][1]),
                ),
                _mm256_add_epi32(_mm256_srai_epi32::<2>(acc[i][2]), acc[i][3]),
            );
            total[i] = _mm256_add_epi32(total[i], s);
        }
        b = bend;
    }
    // SAFETY: register arithmetic under the enabled features.
    core::array::from_fn(|i| unsafe { hsum_epi32(total[i]) })
}
