//! Weights streamed from storage through `embedded_io::{Read, Seek}` (an SPI/QSPI flash, an
//! SD card, a file system driver): for boards whose RAM is smaller than the model.
//!
//! [`EioReader`] turns a `Read + Seek` driver into core's [`tern_core::source::ReadAt`];
//! [`crate::generate_greedy_streamed`] reads the header and tokenizer into the arena, then
//! streams every tensor once per token through core's [`tern_core::source::SyncSource`] (two
//! staging slots; on one core the read is synchronous).

use embedded_io::{Read, Seek, SeekFrom};
use tern_core::Error as CoreError;
use tern_core::source::ReadAt;

/// A `Read + Seek` storage driver as a positional reader.
#[derive(Debug)]
pub struct EioReader<R> {
    /// The driver.
    pub inner: R,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// `read_at` calls so far.
    pub reads: u64,
}

impl<R: Read + Seek> EioReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        EioReader {
            inner,
            bytes_read: 0,
            reads: 0,
        }
    }
    /// The length of the storage (seek to its end).
    ///
    /// # Errors
    /// [`CoreError::WeightRead`] (offset 0, length 0) if the driver cannot seek.
    pub fn len_bytes(&mut self) -> Result<u64, CoreError> {
        self.inner
            .seek(SeekFrom::End(0))
            .map_err(|_| CoreError::WeightRead {
                offset_bytes: 0,
                len_bytes: 0,
            })
    }
}

impl<R: Read + Seek> ReadAt for EioReader<R> {
    fn read_at(&mut self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), CoreError> {
        let err = CoreError::WeightRead {
            offset_bytes,
            len_bytes: buf.len() as u64,
        };
        self.inner
            .seek(SeekFrom::Start(offset_bytes))
            .map_err(|_| err)?;
        self.inner.read_exact(buf).map_err(|_| err)?;
        self.bytes_read += buf.len() as u64;
        self.reads += 1;
        Ok(())
    }
}

/// Bytes in memory as an `embedded_io::{Read, Seek}` device that returns at most
/// `max_read_bytes` per `read` call, like a block driver (a flash page, an SD sector). Runs the
/// streamed path where the model is memory-mapped (qemu's loader, XIP flash), and stands in for
/// a storage driver in tests.
#[derive(Debug)]
pub struct MemStorage<'b> {
    data: &'b [u8],
    pos: u64,
    max_read_bytes: usize,
}

impl<'b> MemStorage<'b> {
    /// `data` read at most `max_read_bytes` (at least 1) per call.
    pub fn new(data: &'b [u8], max_read_bytes: usize) -> Self {
        MemStorage {
            data,
            pos: 0,
            max_read_bytes: max_read_bytes.max(1),
        }
    }
}

impl embedded_io::ErrorType for MemStorage<'_> {
    type Error = embedded_io::ErrorKind;
}

impl Read for MemStorage<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let start = usize::try_from(self.pos)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let n = buf
            .len()
            .min(self.max_read_bytes)
            .min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for MemStorage<'_> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, Self::Error> {
        let base = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => (self.data.len() as u64).checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = base.ok_or(embedded_io::ErrorKind::InvalidInput)?;
        Ok(self.pos)
    }
}
