//! Escaping of captured text before it reaches a terminal.
//!
//! Everything shown from a captured exchange (paths, header values, bodies,
//! error messages) came from a stranger on the internet. Printed raw, an ESC
//! byte can rewrite the terminal title, move the cursor or hide text, a C1
//! control can do the same on terminals that honour 8-bit controls, and a
//! bidi override can make text read differently from what it is ("Trojan
//! Source"). These functions make every such character visible instead:
//!
//! | input | shown as |
//! | --- | --- |
//! | ESC (U+001B) | `\e` |
//! | tab, line feed, carriage return | `\t`, `\n`, `\r` (single-line mode) |
//! | other C0 controls (U+0000–U+001F) | `\x00`…`\x1f` |
//! | DEL (U+007F) | `\x7f` |
//! | C1 controls (U+0080–U+009F) | `\u{80}`…`\u{9f}` |
//! | bidi controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) | `\u{202e}` etc. |
//! | line/paragraph separators (U+2028, U+2029) | `\u{2028}`, `\u{2029}` |
//! | invalid UTF-8 bytes ([`escape_bytes`]) | `\xNN` |
//!
//! A backslash in the input is kept as is: the output is for reading, not a
//! reversible encoding.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Escapes every control character in `s` so it can be printed on one line.
///
/// Borrows when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_str(s, false)
}

/// Like [`escape`], but keeps line feeds and tabs so multi-line text (a body)
/// keeps its shape. Carriage returns are still escaped.
pub fn escape_multiline(s: &str) -> Cow<'_, str> {
    escape_str(s, true)
}

/// Escapes bytes for one line of display: valid UTF-8 as in [`escape`],
/// every byte of an invalid sequence as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    escape_bytes_impl(bytes, false)
}

/// Escapes bytes for multi-line display: as [`escape_multiline`], with every
/// byte of an invalid UTF-8 sequence as `\xNN`.
pub fn escape_bytes_multiline(bytes: &[u8]) -> String {
    escape_bytes_impl(bytes, true)
}

/// True when `c` would be escaped by [`escape`] (single-line mode).
pub fn needs_escape(c: char) -> bool {
    needs_escape_in(c, false)
}

fn needs_escape_in(c: char, multiline: bool) -> bool {
    match c {
        '\n' | '\t' => !multiline,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

fn escape_str(s: &str, multiline: bool) -> Cow<'_, str> {
    let Some(first) = s.find(|c| needs_escape_in(c, multiline)) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    push_str_escaped(&mut out, &s[first..], multiline);
    Cow::Owned(out)
}

fn push_str_escaped(out: &mut String, s: &str, multiline: bool) {
    for c in s.chars() {
        if needs_escape_in(c, multiline) {
            push_escaped(out, c);
        } else {
            out.push(c);
        }
    }
}

fn escape_bytes_impl(bytes: &[u8], multiline: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_str_escaped(&mut out, chunk.valid(), multiline);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    fn is_dangerous(c: char, multiline: bool) -> bool {
        let u = u32::from(c);
        if multiline && c == '\n' {
            return false;
        }
        if multiline && c == '\t' {
            return false;
        }
        u < 0x20
            || u == 0x7f
            || (0x80..=0x9f).contains(&u)
            || (0x202a..=0x202e).contains(&u)
            || (0x2066..=0x2069).contains(&u)
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("/hooks/github?x=1 é ✓"), Cow::Borrowed(_)));
        assert!(matches!(escape_multiline("a\n\tb"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_controls() {
        assert_eq!(escape("a\u{1b}[31mred"), "a\\e[31mred");
        assert_eq!(escape("a\tb\nc\rd"), "a\\tb\\nc\\rd");
        assert_eq!(escape("\0\u{7}\u{7f}"), "\\x00\\x07\\x7f");
        assert_eq!(escape("x\u{85}y\u{9b}"), "x\\u{85}y\\u{9b}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\u{2066}\u{2069}"), "\\u{2066}\\u{2069}");
        assert_eq!(escape("a\\eb"), "a\\eb");
    }

    #[test]
    fn multiline_keeps_newlines_and_tabs() {
        assert_eq!(escape_multiline("a\n\tb\r\n\u{1b}"), "a\n\tb\\r\n\\e");
    }

    #[test]
    fn bytes_show_invalid_utf8() {
        assert_eq!(escape_bytes(b"ok\xff\xfe\x1b!"), "ok\\xff\\xfe\\e!");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
        assert_eq!(escape_bytes(b"\xc3"), "\\xc3");
        assert_eq!(escape_bytes_multiline(b"a\nb\x80"), "a\nb\\x80");
    }

    proptest! {
        #[test]
        fn escape_output_is_safe(s in any::<String>()) {
            let out = escape(&s);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, false)), "{out:?}");
        }

        #[test]
        fn multiline_output_is_safe(s in any::<String>()) {
            let out = escape_multiline(&s);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, true)), "{out:?}");
        }

        #[test]
        fn bytes_output_is_safe(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let out = escape_bytes(&b);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, false)), "{out:?}");
            let out = escape_bytes_multiline(&b);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, true)), "{out:?}");
        }

        #[test]
        fn controls_heavy_strings_are_safe(
            s in proptest::collection::vec(
                prop_oneof![
                    (0u32..0x40).prop_map(|u| char::from_u32(u).unwrap()),
                    (0x7fu32..0xa0).prop_map(|u| char::from_u32(u).unwrap()),
                    (0x2020u32..0x2070).prop_map(|u| char::from_u32(u).unwrap()),
                ],
                0..32,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            let out = escape(&s);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, false)), "{out:?}");
            let out = escape_multiline(&s);
            prop_assert!(!out.chars().any(|c| is_dangerous(c, true)), "{out:?}");
        }
    }
}
