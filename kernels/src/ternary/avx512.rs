//! AVX-512 VNNI ternary × int8 matvecs (decode) on the `T2_128` and `T1_160` layouts, for
//! x86-64 CPUs with AVX-512 F/BW/VL and VNNI (AMD Zen 4 and later, Intel Ice Lake and later).
//! The prefill matmuls stay AVX2's (lookup tables, where VNNI has nothing to replace).
//!
//! `T2_128`:
//! `vpdpbusd` (unsigned × signed bytes, four products summed into each int32 lane, no
//! saturation) replaces AVX2's `vpmaddubsw` + `vpaddw` + widening, and its int32 sums leave
//! room for codes that are not shifted down at all: each of a byte's four 2-bit codes is
//! masked in place (`q & 0xC0`, `0x30`, `0x0C`, `0x03`), so it enters as `64 c`, `16 c`, `4 c`
//! or `c`, into its own int32 sums, which are shifted back right by 6, 4, 2 or 0 bits at the
//! end (exact: every product in them is a multiple of that power of two). Per block of 128
//! weights and row: one load, four `vpand`, four `vpdpbusd` — 8 vector instructions where
//! the AVX2 tile takes 13 — on 256-bit registers (EVEX-encoded, all 32 of them). The row
//! driver (4-row tiles, `Σ x` correction, the partial last block) is the AVX2 one.
//!
//! `T1_160`: AVX2's base-3 decode, then one `vpdpbusd` per trit into its own int32 sums
//! ([`tile_t1`]), on 512-bit registers two blocks at a time ([`tile_t1_z`]: tg64 with
//! `T1_160` + Q4_0 at 1 thread 1.02-1.04x the 256-bit tile in three alternating pairs, the
//! matvec compute-bound here; a C copy read 1.0-1.25x, more when the VM's core was shared).

use core::arch::x86_64::*;

use super::avx2::t1::{T1_MV_ROWS, T1Consts, matvec_t1_rows, t1_codes4, t1_last, t1_pair};
use super::avx2::{MATVEC_PREFETCH_BYTES, hsum_epi32, matvec_rows, prefetch_tile};
use crate::layout::T1_BLOCK_ELEMS;

/// Blocks summed into a tile's int32 lanes before they are shifted back and combined. A lane
/// of the `64 c` sums gains at most `4 · 64 · 3 · 128 = 98304` per block (the invalid code 3
/// included, see the AVX2 module's `I16_BLOCKS`), so 16384 blocks stay below 2^31; real rows
/// (≤ 54 blocks in 2B4T) never reach the window's end.
const I32_BLOCKS: usize = 16384;

/// Safe wrapper: lengths are checked by the shared row driver, the CPU features by the caller
/// of [`crate::select`] (whose contract guarantees AVX-512 F/BW/VL and VNNI before this can be
/// reached).
pub(crate) fn matvec_t2_i8_avx512vnni(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: this function is only reachable through a KernelSet that `select`/
    // `select_variant` hands out when the caller asserted AVX-512 F/BW/VL and VNNI (their
    // `# Safety` contract).
    unsafe { matvec_vnni(w, cols, x, out) }
}

/// [`matvec_t2_i8_avx512vnni`] under its target features, so that the shared driver and the
/// tiles inline into one loop.
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI must be available.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn matvec_vnni(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: `matvec_rows` gives each tile row pointers with `full * 32` readable bytes and
    // `x` with `full * 128` (its contract), and the features are enabled here.
    unsafe {
        matvec_rows(
            w,
            cols,
            x,
            out,
            |w, x, full| tile::<4, MATVEC_PREFETCH_BYTES>(w, x, full),
            |w, x, full| tile::<1, MATVEC_PREFETCH_BYTES>([w], x, full)[0],
        )
    }
}

/// One register tile: `R` weight rows over all full blocks; returns Σ c·x for each row.
///
/// A block's byte `j` holds the codes of columns `j, 32 + j, 64 + j, 96 + j` in bits 6-7, 4-5,
/// 2-3 and 0-1 (see [`crate::layout::BlockT2`]). With `PF > 0` it prefetches the tile's
/// weights `PF` bytes ahead ([`prefetch_tile`]).
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
            prefetch_tile::<R, PF>(w[0], bb);
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

/// Safe wrapper of the `T1_160` matvec (`w: (rows, cols)`, `x: (cols,)`, `out: (rows,)`; see
/// [`super::scalar::matvec_t1_i8_scalar`]): lengths are checked by the shared row driver, the
/// CPU features by the caller of [`crate::select`].
pub(crate) fn matvec_t1_i8_avx512vnni(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: as for `matvec_t2_i8_avx512vnni`.
    unsafe { matvec_t1_vnni(w, cols, x, out) }
}

/// [`matvec_t1_i8_avx512vnni`] under its target features (see [`matvec_vnni`]).
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI must be available.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn matvec_t1_vnni(w: &[u8], cols: usize, x: &[i8], out: &mut [i32]) {
    // SAFETY: `matvec_t1_rows` gives each tile arguments that meet [`tile_t1`]'s contract, and
    // the features are enabled here.
    unsafe {
        matvec_t1_rows(
            w,
            cols,
            x,
            out,
            |w, x, full, tv| tile_t1_z::<T1_MV_ROWS, MATVEC_PREFETCH_BYTES>(w, x, full, tv),
            |w, x, full, tv| tile_t1_z::<1, MATVEC_PREFETCH_BYTES>(w, x, full, tv),
        )
    }
}

/// [`tile_t1`] on 512-bit registers, two blocks of a row per register: a row's blocks `bb` and
/// `bb + 1` are 64 consecutive bytes, decoded as AVX2's `t1_pair` / `t1_last` do (the odd
/// bytes picked by a mask blend instead of `vpblendvb`), and the activations of trit `t` for
/// the pair are the 32 of block `bb` then the 32 of block `bb + 1` (two loads and an insert,
/// shared by the tile's rows). Trits 0, 2, 4 and trits 1, 3 go into two int32 sums per row
/// (codes ≤ 2: a lane gains at most `3 · 4 · 2 · 128 = 3072` per pair, no window below 2^19
/// pairs). The same sums, half the instructions per byte; an odd last block and the partial
/// block's vectors go through [`tile_t1`].
///
/// # Safety
/// As [`tile_t1`].
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_t1_z<const R: usize, const PF: usize>(
    w: [*const u8; R],
    x: *const i8,
    full: usize,
    tail_vecs: usize,
) -> [i32; R] {
    /// The odd bytes of a 512-bit register.
    const ODD: __mmask64 = 0xAAAA_AAAA_AAAA_AAAA;
    let k = T1Consts::new();
    let z = |v: __m256i| _mm512_broadcast_i64x4(v);
    let (by9, odd9, by3, div3, mod3) = (z(k.by9), z(k.odd9), z(k.by3), z(k.div3), z(k.mod3));
    let pair = |e: &mut __m512i, o: &mut __m512i, first: bool| {
        *e = _mm512_maddubs_epi16(*e, by9);
        *o = _mm512_maddubs_epi16(*o, if first { odd9 } else { by9 });
        let p = _mm512_mask_blend_epi8(ODD, _mm512_srli_epi16::<8>(*e), *o);
        (_mm512_shuffle_epi8(div3, p), _mm512_shuffle_epi8(mod3, p))
    };
    let pairs = full / 2;
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    for pp in 0..pairs {
        let bb = 2 * pp;
        prefetch_tile::<R, PF>(w[0], bb);
        prefetch_tile::<R, PF>(w[0], bb + 1);
        // SAFETY: bb + 1 < full: 64 bytes at w[i] + 32 bb and 320 at x + 160 bb (contract).
        unsafe {
            let xb = x.add(bb * T1_BLOCK_ELEMS);
            let xv: [__m512i; 5] = core::array::from_fn(|t| {
                let lo = _mm256_loadu_si256(xb.add(32 * t).cast());
                let hi = _mm256_loadu_si256(xb.add(T1_BLOCK_ELEMS + 32 * t).cast());
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
            });
            for (a, wi) in acc.iter_mut().zip(w) {
                let mut e = _mm512_loadu_si512(wi.add(bb * 32).cast());
                let mut o = e;
                let (c0, c1) = pair(&mut e, &mut o, true);
                a[0] = _mm512_dpbusd_epi32(a[0], c0, xv[0]);
                a[1] = _mm512_dpbusd_epi32(a[1], c1, xv[1]);
                let (c2, c3) = pair(&mut e, &mut o, false);
                a[0] = _mm512_dpbusd_epi32(a[0], c2, xv[2]);
                a[1] = _mm512_dpbusd_epi32(a[1], c3, xv[3]);
                let c4 = _mm512_mask_blend_epi8(
                    ODD,
                    _mm512_srli_epi16::<8>(_mm512_maddubs_epi16(e, by3)),
                    _mm512_maddubs_epi16(o, by3),
                );
                a[0] = _mm512_dpbusd_epi32(a[0], c4, xv[4]);
            }
        }
    }
    // SAFETY: the blocks from 2 · pairs on (at most one whole block, and the partial block's
    // `tail_vecs` vectors) as the contract provides them.
    let rest = unsafe {
        tile_t1::<R, 0>(
            core::array::from_fn(|i| w[i].add(64 * pairs)),
            x.add(2 * pairs * T1_BLOCK_ELEMS),
            full - 2 * pairs,
            tail_vecs,
        )
    };
    core::array::from_fn(|i| {
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc[i][0], acc[i][1])) + rest[i]
    })
}

/// The AVX2 `T1_160` tile (`tile_t1` in `avx2/t1.rs`: same decode, same contract and result)
/// with the codes dotted by `vpdpbusd` into one int32 sum per trit and row, where AVX2 takes a
/// `vpmaddubsw` and a `vpaddw` per trit and widens every 12 blocks. Codes are ≤ 2 for any
/// byte, so a lane gains at most `4 · 2 · 128 = 1024` per block: no window is needed below
/// 2^21 blocks.
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI must be available; `w[i]` must point at `full * 32` readable bytes
/// (`(full + 1) * 32` if `tail_vecs > 0`) and `x` at `full * 160 + 32 * tail_vecs`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_t1<const R: usize, const PF: usize>(
    w: [*const u8; R],
    x: *const i8,
    full: usize,
    tail_vecs: usize,
) -> [i32; R] {
    let k = T1Consts::new();
    let mut acc = [[_mm256_setzero_si256(); 5]; R];
    for bb in 0..full {
        prefetch_tile::<R, PF>(w[0], bb);
        // SAFETY: bb < full: 32 bytes at w[i] + 32 bb and 160 at x + 160 bb (contract).
        unsafe {
            let mut e: [__m256i; R] =
                core::array::from_fn(|i| _mm256_loadu_si256(w[i].add(bb * 32).cast()));
            let mut o = e;
            let xb = x.add(bb * T1_BLOCK_ELEMS);
            let xv: [__m256i; 5] =
                core::array::from_fn(|t| _mm256_loadu_si256(xb.add(32 * t).cast()));
            for i in 0..R {
                let (c0, c1) = t1_pair::<true>(&k, &mut e[i], &mut o[i]);
                acc[i][0] = _mm256_dpbusd_epi32(acc[i][0], c0, xv[0]);
                acc[i][1] = _mm256_dpbusd_epi32(acc[i][1], c1, xv[1]);
                let (c2, c3) = t1_pair::<false>(&k, &mut e[i], &mut o[i]);
                acc[i][2] = _mm256_dpbusd_epi32(acc[i][2], c2, xv[2]);
                acc[i][3] = _mm256_dpbusd_epi32(acc[i][3], c3, xv[3]);
                acc[i][4] = _mm256_dpbusd_epi32(acc[i][4], t1_last(&k, e[i], o[i]), xv[4]);
            }
        }
    }
    if tail_vecs > 0 {
        for (a, wi) in acc.iter_mut().zip(w) {
            // SAFETY: block `full` of the row (32 bytes) and x columns full * 160 ..
            // full * 160 + 32 * tail_vecs are readable (contract).
            unsafe {
                let xb = x.add(full * T1_BLOCK_ELEMS);
                let codes = t1_codes4(&k, wi.add(full * 32));
                for (t, c) in codes.into_iter().enumerate().take(tail_vecs) {
                    let xv = _mm256_loadu_si256(xb.add(32 * t).cast());
                    a[t] = _mm256_dpbusd_epi32(a[t], c, xv);
                }
            }
        }
    }
    core::array::from_fn(|i| {
        let a = &acc[i];
        let s = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_add_epi32(a[0], a[1]), _mm256_add_epi32(a[2], a[3])),
            a[4],
        );
        // SAFETY: register arithmetic under the enabled features.
        unsafe { hsum_epi32(s) }
    })
}
