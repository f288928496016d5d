//! A static arena: `N` bytes in `.bss`, 64-byte aligned, handed out at most once.

use core::cell::{Cell, UnsafeCell};

use critical_section::Mutex;

#[repr(C, align(64))]
struct Aligned<const N: usize>([u8; N]);

/// `N` zero-initialized bytes (in `.bss`), 64-byte aligned as `Session::new` requires.
/// [`StaticArena::take`] returns the buffer once; the flag is checked and set inside a
/// critical section, so an interrupt or a second core cannot get a second `&mut`.
///
/// ```
/// static ARENA: tern_baremetal::StaticArena<4096> = tern_baremetal::StaticArena::new();
/// let a = ARENA.take().unwrap();
/// assert_eq!(a.len(), 4096);
/// assert_eq!(a.as_ptr() as usize % 64, 0);
/// assert!(ARENA.take().is_none());
/// ```
pub struct StaticArena<const N: usize> {
    buf: UnsafeCell<Aligned<N>>,
    taken: Mutex<Cell<bool>>,
}

// SAFETY: the only access to `buf` is through `take`, which hands out one `&mut` for the
// program's lifetime (guarded by `taken` inside a critical section).
unsafe impl<const N: usize> Sync for StaticArena<N> {}

impl<const N: usize> StaticArena<N> {
    /// An arena not yet taken.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        StaticArena {
            buf: UnsafeCell::new(Aligned([0; N])),
            taken: Mutex::new(Cell::new(false)),
        }
    }

    /// Size in bytes.
    pub const fn len_bytes(&self) -> usize {
        N
    }

    /// The buffer, the first time; `None` afterwards.
    // One `&mut` from `&self` is the point: `taken` makes it unique.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut [u8]> {
        let first = critical_section::with(|cs| !self.taken.borrow(cs).replace(true));
        if !first {
            return None;
        }
        // SAFETY: `taken` was false and is now true, set atomically in the critical section,
        // so this is the only reference to `buf` ever created; it lives as long as `self`.
        Some(unsafe { &mut (&mut (*self.buf.get()).0)[..] })
    }
}

impl<const N: usize> core::fmt::Debug for StaticArena<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StaticArena").field("bytes", &N).finish()
    }
}
