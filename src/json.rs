//! JSON output that is safe to print on a terminal.
//!
//! serde_json escapes only C0 controls, `"` and `\`. Captured headers and
//! bodies can hold DEL and C1 controls (U+007F–U+009F), which a terminal
//! acts on when `jq` or `cat` prints the decoded string, and U+2028/U+2029,
//! which end a line in JavaScript. Every JSON line or document hooktunnel
//! writes (`--json`, `show --json`, HAR and JSON export) goes through here,
//! so those characters leave as `\u00XX` escapes and parse back unchanged.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// Whether `c` is written as a `\uXXXX` escape beyond what serde_json does.
fn needs_escape(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

/// Wraps a formatter and escapes [`needs_escape`] characters in strings.
struct Escaping<F>(F);

impl<F: Formatter> Formatter for Escaping<F> {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // Everything else is the wrapped formatter's (indentation for pretty).
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Writes `value` as compact JSON with terminal-safe strings.
pub fn to_writer<W: io::Write, T: Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, Escaping(CompactFormatter));
    value.serialize(&mut ser)
}

/// Compact JSON with terminal-safe strings.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    to_writer(&mut out, value)?;
    // The serializer writes UTF-8 only; a failure here would be a serde_json bug.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Pretty JSON (two-space indent) with terminal-safe strings.
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, Escaping(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn c1_del_and_line_separators_are_escaped() {
        let value = json!({"h": "a\u{1b}[31m\u{9b}31m\u{85}\u{7f}\u{2028}z\u{a0}é"});
        let out = to_string(&value).unwrap();
        let expected = r#"{"h":"a\u001b[31m\u009b31m\u0085\u007f\u2028zNBSPé"}"#;
        assert_eq!(out, expected.replace("NBSP", "\u{a0}"));
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        let pretty = to_string_pretty(&value).unwrap();
        assert!(
            pretty.contains("\\u009b") && pretty.contains("\n  \"h\""),
            "{pretty}"
        );
    }

    proptest! {
        #[test]
        fn output_has_no_control_characters_and_round_trips(s in any::<String>()) {
            let out = to_string(&json!([s.clone()])).unwrap();
            let unsafe_char = |c: char| c.is_control() || needs_escape(c);
            prop_assert!(!out.chars().any(unsafe_char), "{:?}", out);
            let back: Vec<String> = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, vec![s]);
        }
    }
}
