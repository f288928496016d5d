//! A binary min-heap of fixed-width `u32` records stored in a caller's scratch slice.
//!
//! Records compare lexicographically on their first two words (`key`, then `left` symbol
//! index), which gives exactly the tie-breaking of llama.cpp's `std::priority_queue`s
//! (lowest rank, or highest score, first; then leftmost).

/// A heap of `W`-word records in `buf`.
#[derive(Debug)]
pub(crate) struct Heap<'s, const W: usize> {
    buf: &'s mut [u32],
    len: usize,
}

impl<'s, const W: usize> Heap<'s, W> {
    /// An empty heap over `buf` (capacity `buf.len() / W` records).
    pub fn new(buf: &'s mut [u32]) -> Self {
        Heap { buf, len: 0 }
    }

    fn key(&self, i: usize) -> (u32, u32) {
        let b = i * W;
        (
            self.buf.get(b).copied().unwrap_or(0),
            self.buf.get(b + 1).copied().unwrap_or(0),
        )
    }

    fn swap(&mut self, i: usize, j: usize) {
        for k in 0..W {
            self.buf.swap(i * W + k, j * W + k);
        }
    }

    /// Pushes a record; returns `false` (and drops it) when full, which callers size against.
    pub fn push(&mut self, rec: [u32; W]) -> bool {
        let at = self.len * W;
        let Some(slot) = self.buf.get_mut(at..at + W) else {
            return false;
        };
        slot.copy_from_slice(&rec);
        let mut i = self.len;
        self.len += 1;
        while i > 0 {
            let p = (i - 1) / 2;
            if self.key(i) < self.key(p) {
                self.swap(i, p);
                i = p;
            } else {
                break;
            }
        }
        true
    }

    /// Pops the smallest record.
    pub fn pop(&mut self) -> Option<[u32; W]> {
        if self.len == 0 {
            return None;
        }
        let mut out = [0u32; W];
        out.copy_from_slice(self.buf.get(0..W)?);
        self.len -= 1;
        if self.len > 0 {
            self.swap(0, self.len);
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < self.len && self.key(l) < self.key(m) {
                    m = l;
                }
                if r < self.len && self.key(r) < self.key(m) {
                    m = r;
                }
                if m == i {
                    break;
                }
                self.swap(i, m);
                i = m;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order() {
        let mut buf = [0u32; 32];
        let mut h = Heap::<2>::new(&mut buf);
        for (k, l) in [(5, 1), (3, 9), (3, 2), (7, 0), (1, 4)] {
            assert!(h.push([k, l]));
        }
        let mut got = [(0, 0); 5];
        for g in got.iter_mut() {
            let [k, l] = h.pop().unwrap();
            *g = (k, l);
        }
        assert_eq!(got, [(1, 4), (3, 2), (3, 9), (5, 1), (7, 0)]);
        assert!(h.pop().is_none());
    }
}
