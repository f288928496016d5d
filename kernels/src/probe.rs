//! Memory read-bandwidth probe for the decode roofline (`tern bench --roofline`).
//!
//! It reads a buffer with full-width loads, in one of two [`ReadMethod`]s: plain loads, or
//! with software prefetch one page ahead (as the decode kernels read weights; hardware
//! prefetchers stop at 4 KiB page boundaries). Which is faster depends on the host: the probe
//! prefetched only, chosen when prefetching read faster on this project's 2-vCPU Zen 3 VM,
//! until on 2026-11-30 it read slower there (1 GiB, best of 6 interleaved passes at 17:30
//! UTC: 24.1 GB/s plain, 19.3 prefetched, 1 thread). So a ceiling is the faster of the two
//! (`tern bench --roofline` times both).
//!
//! On x86-64 it reads with 256-bit AVX2 loads even where AVX-512 runs: on this project's VM,
//! when it ran on a Zen 4 host (2026-11-30), 512-bit loads read no faster (1 GiB in 2 MiB pages,
//! 6 alternating passes at 1 thread: 27.3-28.7 GB/s plain and prefetched, AVX2's 27.8-30.8,
//! leaving out one pass at 15.4).
//!
//! The result is a wrapping sum of the buffer as little-endian `u64` words (the tail bytes
//! that do not fill a word are added as single bytes), so the reads cannot be optimized away
//! and every variant and method returns the same value.

use crate::CpuFeatures;

/// How [`read_sum`] reads its buffer (the result does not depend on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMethod {
    /// Full-width loads, no software prefetch.
    Plain,
    /// Full-width loads and a software prefetch (into L1) 4 KiB ahead of them.
    Prefetch,
}

impl ReadMethod {
    /// Both methods, in the order `tern bench` times them.
    pub const ALL: [ReadMethod; 2] = [ReadMethod::Plain, ReadMethod::Prefetch];
}

/// Wrapping sum of `buf` read as little-endian `u64` words, plus its trailing bytes, read by
/// `method` (the SIMD variant for `f`; without one, the scalar loop for either method).
///
/// # Safety
/// The features claimed in `f` must be present on the running CPU (as for [`crate::select`]).
pub unsafe fn read_sum(buf: &[u8], f: CpuFeatures, method: ReadMethod) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if f.avx2 {
        // SAFETY: the caller guarantees AVX2 (this function's contract).
        return unsafe {
            match method {
                ReadMethod::Plain => avx2::read_sum::<false>(buf),
                ReadMethod::Prefetch => avx2::read_sum::<true>(buf),
            }
        };
    }
    let _ = (f, method);
    read_sum_scalar(buf)
}

/// The reference: [`read_sum`] without SIMD or prefetch.
pub fn read_sum_scalar(buf: &[u8]) -> u64 {
    let words = buf.chunks_exact(8);
    let tail = words.remainder();
    let mut acc = [0u64; 8];
    for (i, w) in words.enumerate() {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc[i % 8] = acc[i % 8].wrapping_add(v);
    }
    let t = tail.iter().fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
    acc.iter().fold(t, |a, &b| a.wrapping_add(b))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    /// Bytes ahead of the current read that are prefetched.
    const AHEAD: usize = 4096;

    /// With `PF`, prefetches [`AHEAD`] bytes ahead of the loads.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn read_sum<const PF: bool>(buf: &[u8]) -> u64 {
        let n = buf.len() / 128 * 128;
        let p = buf.as_ptr();
        let mut a = [_mm256_setzero_si256(); 4];
        let mut i = 0;
        while i < n {
            // SAFETY: i + 128 <= n <= buf.len(): the four 32-byte loads are in bounds;
            // prefetch never faults, even past the end.
            unsafe {
                if PF {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i + AHEAD).cast());
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i + AHEAD + 64).cast());
                }
                for (k, acc) in a.iter_mut().enumerate() {
                    let v = _mm256_loadu_si256(p.add(i + 32 * k).cast());
                    *acc = _mm256_add_epi64(*acc, v);
                }
            }
            i += 128;
        }
        let mut lanes = [0u64; 16];
        for (k, acc) in a.iter().enumerate() {
            // SAFETY: 4 u64 lanes written into lanes[4k..4k + 4], in bounds.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().add(4 * k).cast(), *acc) };
        }
        let t = super::read_sum_scalar(&buf[n..]);
        lanes.iter().fold(t, |s, &v| s.wrapping_add(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_sums_the_same() {
        let buf: [u8; 1000] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        #[allow(unused_mut)]
        let mut f = CpuFeatures::default();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx2 = std::arch::is_x86_feature_detected!("avx2");
        }
        for len in [0, 1, 7, 8, 127, 128, 129, 999, 1000] {
            let b = &buf[..len];
            let words: u64 = b
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                .fold(0, u64::wrapping_add);
            let tail: u64 = b[len / 8 * 8..].iter().map(|&x| u64::from(x)).sum();
            let want = words.wrapping_add(tail);
            assert_eq!(read_sum_scalar(b), want, "len {len}");
            for m in ReadMethod::ALL {
                // SAFETY: `f` comes from runtime detection.
                assert_eq!(unsafe { read_sum(b, f, m) }, want, "len {len}, {m:?}");
            }
        }
    }
}
