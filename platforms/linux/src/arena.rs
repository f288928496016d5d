//! The one arena a session runs in: a zeroed, 64-byte-aligned heap buffer, allocated once.

use tern_core::plan::REGION_ALIGN;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);
const _: () = assert!(core::mem::align_of::<Line>() == REGION_ALIGN);

/// A 64-byte-aligned byte buffer of a fixed size.
pub struct Arena {
    lines: Vec<Line>,
    len: usize,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arena({} bytes)", self.len)
    }
}

impl Arena {
    /// Allocate `bytes` zeroed bytes.
    pub fn new(bytes: usize) -> Arena {
        Arena {
            lines: vec![Line([0; 64]); bytes.div_ceil(64)],
            len: bytes,
        }
    }
    /// The buffer.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        let flat: &mut [[u8; 64]] = bytemuck_lines(&mut self.lines);
        &mut flat.as_flattened_mut()[..len]
    }
}

fn bytemuck_lines(l: &mut [Line]) -> &mut [[u8; 64]] {
    // SAFETY: `Line` is `repr(C)` around `[u8; 64]` with no padding (size 64, checked by the
    // compiler through the array type), so a slice of `Line` is a valid slice of `[u8; 64]`
    // with the same length, and the borrow is carried over unchanged.
    unsafe { std::slice::from_raw_parts_mut(l.as_mut_ptr().cast::<[u8; 64]>(), l.len()) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned_and_sized() {
        let mut a = super::Arena::new(1000);
        let b = a.bytes_mut();
        assert_eq!(b.len(), 1000);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(b.iter().all(|&x| x == 0));
    }
}
