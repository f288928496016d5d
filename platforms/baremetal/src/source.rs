//! Models resident in memory: flash mapped for execute-in-place, a blob loaded into RAM by a
//! bootloader or debugger, or bytes linked into the image.

use tern_core::format::{Model, TernFile};

use crate::Error;

/// Find the `.tern` file at the start of `region` (e.g. the whole flash partition or the RAM
/// window a loader wrote it into) and return exactly its bytes. The length comes from the
/// file itself: the end of its last section (tensor data or tokenizer blob). The header CRC
/// is checked; tensor CRCs are not (call `Model::verify_checksums` if the board can afford
/// reading every weight once).
///
/// # Errors
/// [`Error::Core`] with `BadMagic` when no model is there, or the first malformed part.
pub fn find_model(region: &[u8]) -> Result<&[u8], Error> {
    let file = TernFile::parse(region, region.len() as u64)?;
    let t = &file.header.tokenizer;
    let mut end = t.offset + t.len;
    for e in file.entries() {
        end = end.max(e.offset + e.len);
    }
    // TernFile::parse checked every section against region.len(), so `end` fits.
    let bytes = &region[..end as usize];
    Model::parse(bytes)?;
    Ok(bytes)
}

/// The `len` bytes at physical address `addr` as a slice (flash XIP window, or RAM a loader
/// filled before the program started).
///
/// # Safety
/// `addr..addr + len` must be readable memory that nothing writes for the rest of the
/// program (no arena, stack or DMA buffer overlaps it).
pub unsafe fn region_at(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: forwarded from this function's contract.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}
