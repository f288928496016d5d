//! Streamed weights on Linux: the header and tokenizer are read once; the weights are read
//! with `pread` (`FileExt::read_exact_at`) every token into the arena's two staging slots by a
//! read-ahead thread, so reading tensor `i + 1` overlaps computing with tensor `i`
//! (see `tern_core::source`). No weight page is ever mapped in or cached by Tern (`tern run`
//! parses the header through a map of which it touches only the header pages): resident
//! memory is the arena.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use tern_core::Error as CoreError;
use tern_core::format::{PREAMBLE_BYTES, Preamble, TernFile};
use tern_core::source::WeightSource;

/// Something weights can be read from at an offset, from any thread.
pub trait PosRead: Sync {
    /// Fill `buf` with the bytes at `offset_bytes`.
    ///
    /// # Errors
    /// I/O errors, or `UnexpectedEof` past the end.
    fn read_exact_at(&self, offset_bytes: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Drop `offset_bytes..offset_bytes + len_bytes` from any cache (the kernel's page cache
    /// for a file), so the next read goes to storage. Default: nothing to drop.
    fn evict(&self, _offset_bytes: u64, _len_bytes: usize) {}
}

impl PosRead for File {
    fn read_exact_at(&self, offset_bytes: u64, buf: &mut [u8]) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset_bytes)
    }
    fn evict(&self, offset_bytes: u64, len_bytes: usize) {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads its integer arguments; an invalid range or
        // descriptor makes it return an error code (ignored: eviction is advice).
        unsafe {
            libc::posix_fadvise(
                self.as_raw_fd(),
                offset_bytes as libc::off_t,
                len_bytes as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

impl PosRead for &[u8] {
    fn read_exact_at(&self, offset_bytes: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let src = usize::try_from(offset_bytes)
            .ok()
            .and_then(|s| self.get(s..s.checked_add(buf.len())?))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A `.tern` file opened for streaming: its header and tokenizer blob in memory, the weights
/// left on storage.
#[derive(Debug)]
pub struct StreamedModel {
    /// The file's path.
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    /// File length, bytes.
    pub file_len: u64,
    prefix: Vec<u8>,
    tokenizer: Vec<u8>,
}

impl StreamedModel {
    /// Open `path`, read and validate its preamble, header and tensor table, and read its
    /// tokenizer blob (the weights are not read).
    ///
    /// # Errors
    /// I/O errors and format errors, naming the file.
    pub fn open(path: &Path) -> Result<StreamedModel> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let file_len = file.metadata()?.len();
        let mut pre = [0u8; PREAMBLE_BYTES];
        let rd = |buf: &mut [u8], off: u64| {
            FileExt::read_exact_at(&file, buf, off).with_context(|| {
                format!("{}: reading {} bytes at {off}", path.display(), buf.len())
            })
        };
        let n = (file_len as usize).min(PREAMBLE_BYTES);
        rd(&mut pre[..n], 0)?;
        let p = Preamble::parse(&pre[..n]).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let hend = PREAMBLE_BYTES as u64 + u64::from(p.header_len);
        if hend > file_len {
            return Err(anyhow!(
                "{}: {}",
                path.display(),
                CoreError::Truncated {
                    section: tern_core::error::Section::Header
                }
            ));
        }
        let mut prefix = vec![0u8; hend as usize];
        rd(&mut prefix, 0)?;
        let mut m = StreamedModel {
            path: path.to_path_buf(),
            file_len,
            prefix,
            tokenizer: Vec::new(),
            file: File::open(path)?,
        };
        let t = m.tern_file()?.header.tokenizer;
        let mut tok = vec![0u8; t.len as usize];
        rd(&mut tok, t.offset)?;
        m.tokenizer = tok;
        Ok(m)
    }

    /// The parsed header and tensor table (bounds checked against the file length).
    ///
    /// # Errors
    /// Format errors, naming the file and tensor.
    pub fn tern_file(&self) -> Result<TernFile<'_>> {
        TernFile::parse(&self.prefix, self.file_len)
            .map_err(|e| crate::model_file::describe(&self.path, &self.prefix, e))
    }

    /// The tokenizer blob.
    pub fn tokenizer_blob(&self) -> &[u8] {
        &self.tokenizer
    }
}

/// What a streamed run read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamStats {
    /// Bytes read from storage (staging reads and embedding rows).
    pub bytes_read: u64,
    /// Read calls.
    pub reads: u64,
    /// Seconds the forward pass waited for a read to finish (I/O not hidden by compute).
    pub wait_secs: f64,
}

type Request<'x> = (u64, usize, &'x mut [u8]);
type Done<'x> = (std::io::Result<()>, u64, usize, &'x mut [u8]);

/// A [`WeightSource`] whose reads run on a read-ahead thread (spawned in a
/// [`std::thread::scope`]) into two staging slots borrowed from the arena.
pub struct ReadAhead<'x> {
    reader: &'x dyn PosRead,
    req: SyncSender<Request<'x>>,
    done: Receiver<Done<'x>>,
    free: Vec<&'x mut [u8]>,
    current: Option<&'x mut [u8]>,
    current_len: usize,
    outstanding: usize,
    /// Counters.
    pub stats: StreamStats,
    /// The last I/O error (the core error only carries offset and length).
    pub last_error: Option<std::io::Error>,
}

impl std::fmt::Debug for ReadAhead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("outstanding", &self.outstanding)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'x> ReadAhead<'x> {
    /// Spawn the read-ahead thread in `scope`, reading from `reader` into `slots`.
    pub fn spawn<'scope>(
        scope: &'scope Scope<'scope, '_>,
        reader: &'x dyn PosRead,
        slots: [&'x mut [u8]; 2],
    ) -> ReadAhead<'x>
    where
        'x: 'scope,
    {
        Self::spawn_with(scope, reader, slots, false)
    }

    /// As [`ReadAhead::spawn`]; with `evict`, every range read is then dropped from the page
    /// cache ([`PosRead::evict`]): each token reads the weights from storage, and the page
    /// cache never holds the model (what a device whose RAM is smaller than the model sees).
    pub fn spawn_with<'scope>(
        scope: &'scope Scope<'scope, '_>,
        reader: &'x dyn PosRead,
        slots: [&'x mut [u8]; 2],
        evict: bool,
    ) -> ReadAhead<'x>
    where
        'x: 'scope,
    {
        let (req, rx) = sync_channel::<Request<'x>>(2);
        let (tx, done) = sync_channel::<Done<'x>>(2);
        scope.spawn(move || {
            for (off, len, slot) in rx {
                let r = reader.read_exact_at(off, &mut slot[..len]);
                if evict {
                    reader.evict(off, len);
                }
                if tx.send((r, off, len, slot)).is_err() {
                    break;
                }
            }
        });
        let [a, b] = slots;
        ReadAhead {
            reader,
            req,
            done,
            free: vec![a, b],
            current: None,
            current_len: 0,
            outstanding: 0,
            stats: StreamStats::default(),
            last_error: None,
        }
    }
}

impl WeightSource for ReadAhead<'_> {
    fn begin(&mut self, offset_bytes: u64, len_bytes: usize) -> Result<(), CoreError> {
        let err = CoreError::WeightRead {
            offset_bytes,
            len_bytes: len_bytes as u64,
        };
        // The slot `wait` returned last is free again: the caller's borrow of it has ended.
        let slot = self
            .free
            .pop()
            .or_else(|| self.current.take())
            .ok_or(CoreError::StreamProtocol)?;
        if slot.len() < len_bytes {
            self.free.push(slot);
            return Err(err);
        }
        self.req
            .send((offset_bytes, len_bytes, slot))
            .map_err(|_| err)?;
        self.outstanding += 1;
        Ok(())
    }

    fn wait(&mut self) -> Result<&[u8], CoreError> {
        if self.outstanding == 0 {
            return Err(CoreError::StreamProtocol);
        }
        let t = Instant::now();
        let (r, off, len, slot) = self.done.recv().map_err(|_| CoreError::StreamProtocol)?;
        self.stats.wait_secs += t.elapsed().as_secs_f64();
        self.outstanding -= 1;
        if let Some(c) = self.current.take() {
            self.free.push(c);
        }
        if let Err(e) = r {
            self.free.push(slot);
            self.last_error = Some(e);
            return Err(CoreError::WeightRead {
                offset_bytes: off,
                len_bytes: len as u64,
            });
        }
        self.stats.bytes_read += len as u64;
        self.stats.reads += 1;
        self.current_len = len;
        let c = self.current.insert(slot);
        Ok(&c[..len])
    }

    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), CoreError> {
        // (embedding rows: small, left in the page cache)
        self.reader.read_exact_at(offset_bytes, buf).map_err(|e| {
            self.last_error = Some(e);
            CoreError::WeightRead {
                offset_bytes,
                len_bytes: buf.len() as u64,
            }
        })?;
        self.stats.bytes_read += buf.len() as u64;
        self.stats.reads += 1;
        Ok(())
    }
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parse a byte size: a number with an optional `K`, `M`, `G` (powers of 1024) or `KB`, `MB`,
/// `GB` (powers of 1000) suffix, e.g. `300M`, `1.5G`, `4000000`.
///
/// # Errors
/// Text that is not such a size.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KIB" => 1024.0,
        "M" | "MIB" => 1024.0 * 1024.0,
        "G" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => {
            return Err(anyhow!(
                "'{s}': unknown size unit '{u}' (use K, M, G, KB, MB, GB)"
            ));
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow!("'{s}' is not a byte size (e.g. 300M, 1.5G)"))?;
    Ok((v * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("300M").unwrap(), 300 << 20);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4000000").unwrap(), 4_000_000);
        assert_eq!(parse_bytes("2 MB").unwrap(), 2_000_000);
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
