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

pub use memmap2::Mmap;

/// Map all of `file` read-only and private to this process.
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
    unsafe { Mmap::map(file) }
}

/// Open `path` and map it whole, read-only ([`map`]).
///
/// # Errors
/// The OS's error from opening or mapping the file.
pub fn map_path(path: &Path) -> io::Result<Mmap> {
    map(&File::open(path)?)
}

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
    fn a_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(map_path(d.path()).is_err());
        assert!(map_path(&d.path().join("missing")).is_err());
    }
}
