//! The Llama-3 pre-tokenizer, written out by hand (no regex engine in core).
//!
//! It splits text exactly like the `Split` pre-tokenizer (behaviour `Isolated`) of Meta's
//! Llama-3 `tokenizer.json`, whose pattern is
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! Alternatives are tried in order at each position (leftmost-first), each one greedy with the
//! backtracking a regex engine would do; every character is matched by some alternative, so
//! the chunks tile the text.
//!
//! Source: llama.cpp `src/unicode.cpp` `unicode_regex_split_custom_llama3`, and the pattern in
//! `llama-vocab.cpp` (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`). `\p{L}` / `\p{N}` are the Unicode general
//! categories (tables in `unicode_tables.rs`), `\s` is the Unicode `White_Space` property.

use super::unicode_tables::{LETTER, NUMBER};

/// Character class used by the pre-tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// General category L.
    Letter,
    /// General category N.
    Number,
    /// `White_Space`.
    Space,
    /// Anything else.
    Other,
}

fn in_ranges(table: &[(u32, u32)], cp: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                core::cmp::Ordering::Less
            } else if lo > cp {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` has the Unicode `White_Space` property.
pub(crate) fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// The pre-tokenizer class of `c`.
pub(crate) fn class(c: char) -> Class {
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Number
        } else if is_white_space(c) {
            Class::Space
        } else {
            Class::Other
        };
    }
    let cp = c as u32;
    if in_ranges(&LETTER, cp) {
        Class::Letter
    } else if in_ranges(&NUMBER, cp) {
        Class::Number
    } else if is_white_space(c) {
        Class::Space
    } else {
        Class::Other
    }
}

/// Iterator over the Llama-3 pre-tokens of a string (each a non-empty sub-slice, in order,
/// covering the whole input).
#[derive(Clone, Debug)]
pub struct Llama3Split<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Llama3Split<'t> {
    /// Splits `text`.
    pub fn new(text: &'t str) -> Self {
        Llama3Split { text, pos: 0 }
    }
}

/// A cursor over the characters after a position.
struct Cur<'t> {
    s: &'t str,
    at: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.at..).and_then(|r| r.chars().next())
    }
    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.at += c.len_utf8();
        }
    }
    /// Advances over characters while `f` holds; returns how many.
    fn eat_while(&mut self, mut f: impl FnMut(char) -> bool) -> usize {
        let mut k = 0;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.at += c.len_utf8();
            k += 1;
        }
        k
    }
}

fn is_nl(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// `[^\s\p{L}\p{N}]`
fn is_other(c: char) -> bool {
    class(c) == Class::Other
}

/// Length in bytes of the match at the start of `s` (non-empty `s`).
fn match_len(s: &str) -> usize {
    let mut chars = s.chars();
    let Some(c0) = chars.next() else { return 0 };
    let c1 = chars.next();
    let c2 = chars.next();

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c0 == '\'' {
        let l1 = c1.map(|c| c.to_ascii_lowercase());
        let l2 = c2.map(|c| c.to_ascii_lowercase());
        match (l1, l2) {
            (Some('s' | 't' | 'm' | 'd'), _) => return 2,
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => return 3,
            _ => {}
        }
    }
    let k0 = class(c0);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    {
        let mut cur = Cur { s, at: 0 };
        if k0 != Class::Letter
            && k0 != Class::Number
            && !is_nl(c0)
            && c1.map(class) == Some(Class::Letter)
        {
            cur.bump();
        }
        if cur.eat_while(|c| class(c) == Class::Letter) > 0 {
            return cur.at;
        }
    }
    // \p{N}{1,3}
    if k0 == Class::Number {
        let mut cur = Cur { s, at: 0 };
        let mut k = 0;
        cur.eat_while(|c| {
            k += 1;
            k <= 3 && class(c) == Class::Number
        });
        return cur.at;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    {
        let mut cur = Cur { s, at: 0 };
        if c0 == ' ' && c1.is_some_and(is_other) {
            cur.bump();
        }
        if cur.eat_while(is_other) > 0 {
            cur.eat_while(is_nl);
            return cur.at;
        }
    }
    // Whitespace run [0, end), and the end of its last newline.
    let mut cur = Cur { s, at: 0 };
    let mut last_nl_end = None;
    let mut last_start = 0;
    let mut n_chars = 0;
    while let Some(c) = cur.peek() {
        if !is_white_space(c) {
            break;
        }
        last_start = cur.at;
        cur.bump();
        n_chars += 1;
        if is_nl(c) {
            last_nl_end = Some(cur.at);
        }
    }
    if n_chars > 0 {
        // \s*[\r\n]+
        if let Some(e) = last_nl_end {
            return e;
        }
        // \s+(?!\S)
        if cur.peek().is_none() {
            return cur.at;
        }
        if n_chars >= 2 {
            return last_start;
        }
        // \s+
        return cur.at;
    }
    // Unreachable (every character matches an alternative above); advance one char.
    c0.len_utf8()
}

impl<'t> Iterator for Llama3Split<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let rest = self.text.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let n = match_len(rest).clamp(1, rest.len());
        // `n` is always a char boundary (sum of char lengths); fall back to the rest if not.
        let chunk = rest.get(..n).unwrap_or(rest);
        self.pos += chunk.len();
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> heapless::Vec<&str, 64> {
        let mut v = heapless::Vec::new();
        for c in Llama3Split::new(s) {
            v.push(c).unwrap();
        }
        v
    }

    #[test]
    fn splits_like_the_regex() {
        assert_eq!(split("Hello world"), ["Hello", " world"]);
        assert_eq!(
            split("I've 12345 ok"),
            ["I", "'ve", " ", "123", "45", " ok"]
        );
        assert_eq!(split("a  b"), ["a", " ", " b"]);
        assert_eq!(split("a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(split("  "), ["  "]);
        assert_eq!(split("x!!\n\ny"), ["x", "!!\n\n", "y"]);
        assert_eq!(split(" (normal)"), [" (", "normal", ")"]);
        assert_eq!(split("Äpfel Cửa"), ["Äpfel", " Cửa"]);
        assert_eq!(split("\t\n"), ["\t\n"]);
    }

    #[test]
    fn classes() {
        assert_eq!(class('Ä'), Class::Letter);
        assert_eq!(class('中'), Class::Letter);
        assert_eq!(class('½'), Class::Number);
        assert_eq!(class('\u{3000}'), Class::Space);
        assert_eq!(class('🚀'), Class::Other);
        assert_eq!(class('\u{17B6}'), Class::Other); // Khmer vowel sign (Mc)
    }
}
