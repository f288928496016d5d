//! Streaming UTF-8 decoding of token bytes.
//!
//! A token may end in the middle of a multi-byte character (byte-level BPE splits emoji and
//! CJK characters, SPM falls back to `<0xNN>` tokens). [`StreamDecoder`] holds at most 3
//! pending bytes of an incomplete character and emits only complete characters; invalid
//! sequences become U+FFFD, one per maximal invalid subpart (as `String::from_utf8_lossy`).
//!
//! Source: llama.cpp `common/common.cpp` / `tools/server` `validate_utf8` (hold back an
//! incomplete trailing character while streaming); Unicode §3.9 "U+FFFD substitution of
//! maximal subparts" as implemented by `core::str::Utf8Error::error_len`.

/// The replacement character, emitted for invalid bytes.
pub const REPLACEMENT: &str = "\u{FFFD}";

/// Incremental UTF-8 decoder over a stream of token pieces. Allocation-free: complete text is
/// handed to a callback as `&str` pieces borrowed from the input (or from a 4-byte buffer
/// for a character that straddles two pushes).
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: heapless::Vec<u8, 4>,
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub const fn new() -> Self {
        StreamDecoder {
            pending: heapless::Vec::new(),
        }
    }

    /// Bytes of an incomplete character held back (0..=3).
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Feeds `bytes` (e.g. one token's piece) and calls `emit` with each complete run of text,
    /// in order. An incomplete character at the end is held until a later push completes it.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&str)) {
        // First finish a character left over from the previous push.
        while !self.pending.is_empty() {
            if bytes.is_empty() {
                return;
            }
            let p = self.pending.len();
            let mut buf = [0u8; 4];
            buf[..p].copy_from_slice(&self.pending);
            let take = (4 - p).min(bytes.len());
            buf[p..p + take].copy_from_slice(&bytes[..take]);
            let cand = &buf[..p + take];
            match core::str::from_utf8(cand) {
                Ok(s) => {
                    let Some(c) = s.chars().next() else { return };
                    let l = c.len_utf8();
                    emit(s.get(..l).unwrap_or(""));
                    bytes = bytes.get(l.saturating_sub(p)..).unwrap_or(&[]);
                    self.pending.clear();
                }
                Err(e) if e.valid_up_to() > 0 => {
                    let s = core::str::from_utf8(&cand[..e.valid_up_to()]).unwrap_or("");
                    let l = s.chars().next().map_or(1, char::len_utf8);
                    emit(s.get(..l).unwrap_or(""));
                    bytes = bytes.get(l.saturating_sub(p)..).unwrap_or(&[]);
                    self.pending.clear();
                }
                Err(e) => match e.error_len() {
                    None => {
                        // Still incomplete; everything fitted into `cand` (a character is
                        // at most 4 bytes).
                        self.pending.clear();
                        for &b in cand {
                            let _ = self.pending.push(b);
                        }
                        return;
                    }
                    Some(bad) => {
                        emit(REPLACEMENT);
                        if bad >= p {
                            bytes = bytes.get(bad - p..).unwrap_or(&[]);
                            self.pending.clear();
                        } else {
                            let keep: heapless::Vec<u8, 4> =
                                self.pending.iter().skip(bad).copied().collect();
                            self.pending = keep;
                        }
                    }
                },
            }
        }
        // Then the rest, borrowed in place.
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    if !s.is_empty() {
                        emit(s);
                    }
                    return;
                }
                Err(e) => {
                    let v = e.valid_up_to();
                    if v > 0 {
                        emit(core::str::from_utf8(&bytes[..v]).unwrap_or(""));
                    }
                    match e.error_len() {
                        None => {
                            for &b in &bytes[v..] {
                                let _ = self.pending.push(b);
                            }
                            return;
                        }
                        Some(bad) => {
                            emit(REPLACEMENT);
                            bytes = bytes.get(v + bad..).unwrap_or(&[]);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete character still pending becomes one U+FFFD.
    pub fn finish(&mut self, emit: &mut impl FnMut(&str)) {
        if !self.pending.is_empty() {
            self.pending.clear();
            emit(REPLACEMENT);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn run(chunks: &[&[u8]]) -> (String, std::vec::Vec<usize>) {
        let mut d = StreamDecoder::new();
        let mut s = String::new();
        let mut lens = std::vec::Vec::new();
        for c in chunks {
            let before = s.len();
            d.push(c, &mut |p| s.push_str(p));
            lens.push(s.len() - before);
        }
        d.finish(&mut |p| s.push_str(p));
        (s, lens)
    }

    #[test]
    fn holds_incomplete_characters() {
        let e = "é😀".as_bytes();
        let (s, lens) = run(&[&e[..1], &e[1..3], &e[3..4], &e[4..5], &e[5..]]);
        assert_eq!(s, "é😀");
        assert_eq!(lens, [0, 2, 0, 0, 4]);
    }

    #[test]
    fn invalid_bytes_become_replacement() {
        assert_eq!(run(&[b"a\xffb"]).0, "a\u{FFFD}b");
        assert_eq!(run(&[b"\xe4", b"A"]).0, "\u{FFFD}A");
        assert_eq!(run(&[b"x\xf0\x9f"]).0, "x\u{FFFD}");
        assert_eq!(run(&[b"\xf0", b"\x9f", b"\x98", b"\x80!"]).0, "😀!");
        assert_eq!(run(&[b"\xc3", b"\xc3\xa9"]).0, "\u{FFFD}é");
    }
}
