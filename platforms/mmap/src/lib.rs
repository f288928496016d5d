//! # tern-mmap
//!
//! Read-only, whole-file memory maps for Tern's host crates: `tern-linux` maps `.tern` models
//! (weights read in place), `tern-pack` maps GGUF and safetensors inputs. Mapping a file is
//! `unsafe` in [`memmap2`] because the bytes can change under the map if another process writes
//! or truncates the file; the rule that `unsafe` lives in `kernels/` and `platforms/` puts that
//! one call here, so `tern-pack` can forbid `unsafe` outright.
#![warn(missing_docs)]

use std::fs::File;
use std::io;
use std::path::Path;

pub use memmap2::{Mmap, MmapMut};

/// Map all of `file` read-only and private to this process.
///
/// On Linux the map is advised `MADV_HUGEPAGE` (a hint, see [`ignore_hint`]): where the
/// kernel and file system support transparent huge pages for the page cache, the pages it
/// reads in for this map are 2 MiB folios, each mapped by one page-table entry. Decode streams
/// the weights once per token; on Zen 3 (2026-11-30, 1 GiB, 1 thread) a plain read through
/// 2 MiB pages ran at 0.9-1.35x (median about 1.15x) one through 4 KiB pages, and a C copy of
/// the F16 LM-head loop at about 1.15-1.2x (one TLB entry per 2 MiB). Pages already in the
/// page cache keep their size: a file just written is usually cached in small pages until it
/// is evicted.
///
/// # Errors
/// The OS's error when the file cannot be mapped (for example a directory or a pipe).
pub fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private, and Tern never writes through it. Its bytes
    // can only change if another process writes the file meanwhile; a truncation makes reads
    // past the new end fault (SIGBUS) rather than return wrong data. Tern treats its input and
    // model files as immutable while mapped, the contract of memmap2 and of every mmap-based
    // model loader (llama.cpp, bitnet.cpp); every reader bounds-checks against the map's
    // length.
    let m = unsafe { Mmap::map(file) }?;
    #[cfg(target_os = "linux")]
    ignore_hint(m.advise(memmap2::Advice::HugePage));
    Ok(m)
}

/// An anonymous read-write map of `len_bytes` (zero-filled, page-aligned), advised
/// `MADV_HUGEPAGE` on Linux like [`map`]: the memory bandwidth probe of `tern bench
/// --roofline` reads one, so its ceiling is that of the fastest pages the weights can have.
///
/// # Errors
/// The OS's error when the memory cannot be mapped.
pub fn map_anon_huge(len_bytes: usize) -> io::Result<MmapMut> {
    let m = MmapMut::map_anon(len_bytes)?;
    #[cfg(target_os = "linux")]
    ignore_hint(m.advise(memmap2::Advice::HugePage));
    Ok(m)
}

/// Open `path` and map it whole, read-only ([`map`]).
///
/// # Errors
/// The OS's error from opening or mapping the file.
pub fn map_path(path: &Path) -> io::Result<Mmap> {
    map(&File::open(path)?)
}

/// Drop the result of the `madvise(MADV_HUGEPAGE)` hint of [`map`] and [`map_anon_huge`]
/// (Linux only). Where THP is off (`/sys/kernel/mm/transparent_hugepage/enabled` is `never`),
/// unsupported for the map's file system, or not built into the kernel, the kernel refuses or
/// ignores the hint and the map keeps 4 KiB pages, which is not an error.
#[cfg(target_os = "linux")]
fn ignore_hint(_: io::Result<()>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_the_file_bytes() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"GGUF\x03\x00\x00\x00tern").unwrap();
        f.flush().unwrap();
        let m = map_path(f.path()).unwrap();
        assert_eq!(&m[..], b"GGUF\x03\x00\x00\x00tern");
    }

    #[test]
    fn anonymous_maps_are_zeroed_and_writable() {
        for len in [1, 4096, (2 << 20) + 3] {
            let mut m = map_anon_huge(len).unwrap();
            assert_eq!(m.len(), len);
            assert!(m.iter().all(|&b| b == 0));
            m[len - 1] = 7;
            assert_eq!(m[len - 1], 7);
        }
    }

    #[test]
    fn an_empty_file_maps_empty() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(map_path(f.path()).unwrap().is_empty());
    }

    #[test]
    fn a_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(map_path(d.path()).is_err());
        assert!(map_path(&d.path().join("missing")).is_err());
    }
}
