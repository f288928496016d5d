//! Unit tests: small hand-made vocabularies, blob validation, corruption never panics.

extern crate std;

use std::vec;
use std::vec::Vec;

use super::writer::{TokenSpec, VocabSpec, write_blob};
use super::*;

fn tok(bytes: &[u8], ty: TokenType, score: f32) -> TokenSpec {
    TokenSpec {
        bytes: bytes.to_vec(),
        ty,
        score,
        mergeable: true,
    }
}

/// Bytes 0..=255 are ids 0..=255; 256 "ab", 257 "abc", 258 " a", 259 `<|eot|>` (control),
/// 260 `<u>` (user-defined).
fn bpe_spec() -> VocabSpec {
    let mut tokens: Vec<TokenSpec> = (0..=255u8)
        .map(|b| tok(&[b], TokenType::Normal, 0.0))
        .collect();
    tokens.push(tok(b"ab", TokenType::Normal, 0.0));
    tokens.push(tok(b"abc", TokenType::Normal, 0.0));
    tokens.push(tok(b" a", TokenType::Normal, 0.0));
    tokens.push(tok(b"<|eot|>", TokenType::Control, 0.0));
    tokens.push(tok(b"<u>", TokenType::UserDefined, 0.0));
    let (a, b, c, sp) = (
        u32::from(b'a'),
        u32::from(b'b'),
        u32::from(b'c'),
        u32::from(b' '),
    );
    VocabSpec {
        kind: TokenizerKind::Bpe,
        tokens,
        merges: vec![[a, b, 256], [256, c, 257], [sp, a, 258]],
        ignore_merges: true,
        add_space_prefix: false,
        bos: Some(259),
        eos: Some(259),
        unk: None,
    }
}

/// `<unk>` 0, `<s>` 1, `</s>` 2, `<0x00>`..`<0xFF>` 3..=258, then a few pieces.
fn spm_spec() -> VocabSpec {
    let mut tokens = vec![
        tok(b"<unk>", TokenType::Unknown, 0.0),
        tok(b"<s>", TokenType::Control, 0.0),
        tok(b"</s>", TokenType::Control, 0.0),
    ];
    tokens.extend((0..=255u8).map(|b| tok(&[b], TokenType::Byte, 0.0)));
    for (t, s) in [
        (" ", -5.0),
        ("h", -5.0),
        ("e", -5.0),
        ("l", -5.0),
        ("o", -5.0),
        (" h", -1.0),
        ("ll", -2.0),
        ("llo", -1.5),
        (" he", -0.5),
        (" hello", -0.1),
    ] {
        tokens.push(tok(t.as_bytes(), TokenType::Normal, s));
    }
    VocabSpec {
        kind: TokenizerKind::Spm,
        tokens,
        merges: vec![],
        ignore_merges: false,
        add_space_prefix: true,
        bos: Some(1),
        eos: Some(2),
        unk: Some(0),
    }
}

fn enc(t: &Tokenizer<'_>, text: &str, bos: bool, special: bool) -> Vec<u32> {
    let mut out = vec![0; text.len() + 2];
    let mut scratch = vec![0; scratch_elems(text.len())];
    let n = t
        .encode(text, bos, special, &mut out, &mut scratch)
        .unwrap();
    out.truncate(n);
    out
}

#[test]
fn bpe_merges_and_specials() {
    let blob = write_blob(&bpe_spec()).unwrap();
    let t = Tokenizer::from_blob(TokenizerKind::Bpe, &blob).unwrap();
    assert_eq!(enc(&t, "abc", false, false), [257]);
    assert_eq!(enc(&t, "abd", true, false), [259, 256, u32::from(b'd')]);
    // " abc" is one pre-token: " a" (rank 2) loses to "ab" (rank 0), then "abc".
    assert_eq!(enc(&t, " abc", false, false), [u32::from(b' '), 257]);
    assert_eq!(enc(&t, "ab<|eot|>", false, true), [256, 259]);
    let plain = enc(&t, "ab<|eot|>", false, false);
    assert!(plain.len() > 2 && !plain.contains(&259));
    // User-defined tokens are matched even without parse_special.
    assert_eq!(enc(&t, "<u>", false, false), [260]);
    assert_eq!(t.piece(259, false), Some(&b""[..]));
    assert_eq!(t.piece(259, true), Some(&b"<|eot|>"[..]));
    assert_eq!(t.token_bytes(257), Some(&b"abc"[..]));
    assert_eq!(t.token_bytes(261), None);
    assert_eq!(t.special_id("<|eot|>"), Some(259));
}

#[test]
fn spm_scores_and_byte_fallback() {
    let blob = write_blob(&spm_spec()).unwrap();
    let t = Tokenizer::from_blob(TokenizerKind::Spm, &blob).unwrap();
    let id = |s: &str| t.lookup(s.as_bytes()).unwrap();
    assert_eq!(enc(&t, "hello", true, false), [1, id(" hello")]);
    assert_eq!(enc(&t, "hé", false, false), [id(" h"), 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(enc(&t, "", false, false), []);
    // `<s>` in text: a control token, only with parse_special; the space prefix comes back after it.
    assert_eq!(enc(&t, "<s>hello", false, true), [1, id(" hello")]);
    assert_eq!(t.token_bytes(3 + 0x41), Some(&b"A"[..]));
    assert!(t.add_space_prefix());
}

#[test]
fn small_buffers_are_errors() {
    let blob = write_blob(&bpe_spec()).unwrap();
    let t = Tokenizer::from_blob(TokenizerKind::Bpe, &blob).unwrap();
    let mut out = [0u32; 1];
    let mut scratch = vec![0u32; scratch_elems(8)];
    assert_eq!(
        t.encode("abd abd", false, false, &mut out, &mut scratch),
        Err(Error::OutputTooSmall { have_elems: 1 })
    );
    let mut out = [0u32; 16];
    let mut tiny = [0u32; 2];
    assert!(matches!(
        t.encode("xyzw", false, false, &mut out, &mut tiny),
        Err(Error::ArenaTooSmall { .. })
    ));
}

#[test]
fn wrong_kind_and_bad_header_are_rejected() {
    let blob = write_blob(&bpe_spec()).unwrap();
    assert!(matches!(
        Tokenizer::from_blob(TokenizerKind::Spm, &blob),
        Err(Error::BadTokenizer { .. })
    ));
    let mut b = blob.clone();
    b[0] = b'X';
    assert!(matches!(
        Tokenizer::from_blob(TokenizerKind::Bpe, &b),
        Err(Error::BadTokenizer { .. })
    ));
    let mut b = blob.clone();
    b.push(0);
    assert!(Tokenizer::from_blob(TokenizerKind::Bpe, &b).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for spec in [bpe_spec(), spm_spec()] {
        let blob = write_blob(&spec).unwrap();
        for len in 0..blob.len() {
            assert!(
                Tokenizer::from_blob(spec.kind, &blob[..len]).is_err(),
                "len {len}"
            );
        }
    }
}

#[test]
fn corrupt_bytes_never_panic() {
    for spec in [bpe_spec(), spm_spec()] {
        let blob = write_blob(&spec).unwrap();
        for i in 0..blob.len() {
            for x in [0x01u8, 0x80, 0xFF] {
                let mut b = blob.clone();
                b[i] ^= x;
                if let Ok(t) = Tokenizer::from_blob(spec.kind, &b) {
                    let mut out = [0u32; 64];
                    let mut scratch = vec![0u32; scratch_elems(32)];
                    let _ = t.encode(
                        "hello <s> abc <|eot|> é😀",
                        true,
                        true,
                        &mut out,
                        &mut scratch,
                    );
                    for id in 0..t.n_tokens() + 1 {
                        let _ = t.piece(id, true);
                    }
                }
            }
        }
    }
}

/// Pins the version-1 layout (`core/FORMAT.md`, "Tokenizer blob") byte for byte.
#[test]
fn golden_bytes() {
    let spec = VocabSpec {
        kind: TokenizerKind::Bpe,
        tokens: vec![
            tok(b"a", TokenType::Normal, 0.0),
            tok(b"b", TokenType::Normal, 0.0),
            tok(b"ab", TokenType::Normal, 0.0),
            tok(b"<e>", TokenType::Control, 0.0),
        ],
        merges: vec![[0, 1, 2]],
        ignore_merges: true,
        add_space_prefix: false,
        bos: Some(3),
        eos: None,
        unk: None,
    };
    let blob = write_blob(&spec).unwrap();
    let hex: std::string::String = blob.iter().map(|b| std::format!("{b:02x}")).collect();
    let mut want = std::string::String::new();
    // header: magic, version 1, kind BPE, flags ignore_merges, 4 tokens, bos 3, eos none, unk none
    want += "54544f4b";
    want += "01000000";
    want += "00000000";
    want += "01000000";
    want += "04000000";
    want += "03000000";
    want += "ffffffff";
    want += "ffffffff";
    // section table (offset, len): offsets, text, types, scores, index, merges, byte_ids, specials
    want += "6000000014000000";
    want += "7400000007000000";
    want += "7c00000004000000";
    want += "8000000000000000";
    want += "800000000c000000";
    want += "8c00000010000000";
    want += "9c00000000040000";
    want += "9c04000004000000";
    // offsets 0 1 2 4 7; text "a" "b" "ab" "<e>" + pad; types 1 1 1 3
    want += "0000000001000000020000000400000007000000";
    want += "616261623c653e00";
    want += "01010103";
    // index: ids sorted by bytes: a(0) ab(2) b(1); merge (0,1) rank 0 -> 2
    want += "000000000200000001000000";
    want += "00000000010000000000000002000000";
    for b in 0..256 {
        want += match b {
            0x61 => "00000000",
            0x62 => "01000000",
            _ => "ffffffff",
        };
    }
    want += "03000000";
    assert_eq!(hex, want);
    assert!(Tokenizer::from_blob(TokenizerKind::Bpe, &blob).is_ok());
}
