//! The decode roofline's measurements (`tern bench --roofline`): the memory read bandwidth
//! probe, and how much of the weights and of the probe's buffer the kernel mapped with huge
//! pages.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, anyhow};
use tern_kernels::probe::ReadMethod;

use crate::pool::ThreadPool;

/// How much of the model's map and of the bandwidth probe's buffer the kernel mapped with
/// huge pages after the tests ([`huge_page_bytes`]): with `--roofline`, where the share of
/// the ceiling depends on it (the weights stream through 2 MiB pages faster than through
/// 4 KiB ones, see [`tern_mmap::map`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HugePages {
    /// Bytes of the model file's map.
    pub weights_bytes: u64,
    /// Of which mapped with huge pages.
    pub weights_huge_bytes: u64,
    /// Bytes of the probe buffer.
    pub probe_bytes: u64,
    /// Of which mapped with huge pages.
    pub probe_huge_bytes: u64,
}

impl HugePages {
    /// One line for the roofline: how much of each is in huge pages.
    pub fn summary(&self) -> String {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        format!(
            "in huge pages: weights {:.2} of {:.2} GiB, probe buffer {:.2} of {:.2} GiB",
            gib(self.weights_huge_bytes),
            gib(self.weights_bytes),
            gib(self.probe_huge_bytes),
            gib(self.probe_bytes),
        )
    }
}

/// Bytes of `region` that this process maps with huge pages: the `FilePmdMapped` and
/// `AnonHugePages` fields (Linux `proc(5)`, `/proc/self/smaps`) of the mappings that overlap
/// it, at most its length. `None` where `/proc/self/smaps` cannot be read or parsed (not
/// Linux).
pub fn huge_page_bytes(region: &[u8]) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    huge_page_bytes_in(&smaps, region.as_ptr() as u64, region.len() as u64)
}

/// [`huge_page_bytes`] of the region `start .. start + len` in the text of an smaps file.
fn huge_page_bytes_in(smaps: &str, start: u64, len: u64) -> Option<u64> {
    let end = start + len;
    let mut overlaps = false;
    let mut seen_vma = false;
    let mut kb = 0u64;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            seen_vma = true;
            overlaps = a < end && start < b;
        } else if overlaps && matches!(first, "FilePmdMapped:" | "AnonHugePages:") {
            kb += words.next()?.parse::<u64>().ok()?;
        }
    }
    seen_vma.then_some((kb * 1024).min(len))
}

/// The bandwidth probe's buffer: `bytes` (rounded down to 64, at least 64) of little-endian
/// `u64` words `0, 1, 2, …`, every page written (so reads hit DRAM, not the shared zero page),
/// in an anonymous map advised to transparent huge pages ([`tern_mmap::map_anon_huge`], as
/// the model's map): the ceiling is that of the fastest pages the weights can have. On Zen 3
/// (2026-11-30, 1 thread) a plain read of 1 GiB through 2 MiB pages ran at 0.9-1.35x (median
/// about 1.15x) one through 4 KiB pages (a `Vec`, which the default THP mode `madvise` leaves
/// in 4 KiB pages).
///
/// # Errors
/// The OS's error when the memory cannot be mapped.
pub fn bandwidth_buffer(bytes: usize) -> Result<tern_mmap::MmapMut> {
    let len = (bytes / 64).max(1) * 64;
    let mut m = tern_mmap::map_anon_huge(len)
        .map_err(|e| anyhow!("bandwidth probe: cannot map {len} bytes: {e}"))?;
    for (i, w) in m.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i as u64).to_le_bytes());
    }
    Ok(m)
}

/// Wrapping sum of `s` read as little-endian `u64` words (plus trailing bytes) through the
/// bandwidth probe kernel (`tern_kernels::probe`: full-width loads, read by `method`: plain,
/// or with software prefetch one page ahead).
fn probe_sum(s: &[u8], method: ReadMethod) -> u64 {
    let f = crate::cpu::detect();
    // SAFETY: `f` comes from runtime feature detection on this CPU.
    unsafe { tern_kernels::probe::read_sum(s, f, method) }
}

/// STREAM-like read bandwidth of `pool`: every thread sums its contiguous share of `buf`;
/// bytes per second of the fastest of `reps` rounds, each one pass per [`ReadMethod`] (plain
/// loads, and loads with software prefetch: which is faster depends on the host, see
/// `tern_kernels::probe`, and a ceiling must not be the slower one).
pub fn measure_read_bandwidth(pool: &ThreadPool, buf: &[u8], reps: usize) -> f64 {
    let n = pool.n_threads();
    let per = buf.len().div_ceil(n).div_ceil(64) * 64;
    let sink = AtomicU64::new(0);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        for method in ReadMethod::ALL {
            let t0 = Instant::now();
            pool.run(&|i| {
                let lo = (i * per).min(buf.len());
                let hi = ((i + 1) * per).min(buf.len());
                sink.fetch_add(
                    probe_sum(black_box(&buf[lo..hi]), method),
                    Ordering::Relaxed,
                );
            });
            best = best.min(t0.elapsed().as_secs_f64());
        }
    }
    black_box(sink.load(Ordering::Relaxed));
    std::mem::size_of_val(buf) as f64 / best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_counted_from_the_overlapping_mappings() {
        let smaps = "\
00400000-00600000 r-xp 00000000 fd:01 12 /usr/bin/tern
Rss:                2048 kB
FilePmdMapped:      2048 kB
7f0000000000-7f0040000000 r--s 00000000 fd:01 34 /models/m.tern
Rss:             1048576 kB
AnonHugePages:         0 kB
FilePmdMapped:    522240 kB
7f0040000000-7f0040200000 rw-p 00000000 00:00 0
AnonHugePages:      2048 kB
FilePmdMapped:         0 kB
";
        // the model's mapping only: 522240 kB
        assert_eq!(
            huge_page_bytes_in(smaps, 0x7f00_0000_0000, 1 << 30),
            Some(522240 * 1024)
        );
        // a region reaching into the next mapping counts its 2 MiB too
        assert_eq!(
            huge_page_bytes_in(smaps, 0x7f00_3ff0_0000, 2 << 20),
            Some(2 << 20)
        );
        // the binary: 2048 kB, capped at the region's length
        assert_eq!(huge_page_bytes_in(smaps, 0x0040_0000, 4096), Some(4096));
        // outside every mapping
        assert_eq!(huge_page_bytes_in(smaps, 0x1000, 4096), Some(0));
        assert_eq!(huge_page_bytes_in("", 0x1000, 4096), None);
        assert_eq!(
            huge_page_bytes_in(smaps.replace("522240", "x").as_str(), 0x7f00_0000_0000, 1),
            None
        );
        // this process's own smaps parses
        let v = vec![1u8; 1 << 20];
        assert!(huge_page_bytes(&v).is_some_and(|b| b <= 1 << 20));
    }

    #[test]
    fn bandwidth_sum_is_exact() {
        let buf = bandwidth_buffer(4096 + 64 + 63).unwrap();
        assert_eq!(buf.len(), 4160);
        for t in [1, 3] {
            let pool = ThreadPool::new(t);
            assert!(measure_read_bandwidth(&pool, &buf, 1) > 0.0);
        }
        for m in ReadMethod::ALL {
            // words 0..13 (their sum is 78), then word 13's low 5 bytes as trailing bytes
            assert_eq!(probe_sum(&buf[..13 * 8], m), 78, "{m:?}");
            assert_eq!(probe_sum(&buf[..13 * 8 + 5], m), 78 + 13, "{m:?}");
            assert_eq!(probe_sum(&buf[8 * 519..], m), 519, "{m:?}");
        }
    }
}
