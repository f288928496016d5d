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
