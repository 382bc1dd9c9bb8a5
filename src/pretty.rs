//! Bounded JSON pretty-printing, a pure function shared by the inspector and
//! `show`.
//!
//! The printer re-indents tokens rather than re-serialising, so key order,
//! number spelling and duplicate keys stay as received. Indentation grows
//! with nesting, so a small hostile body (`[`×50,000 `]`×50,000 is 98 KiB)
//! would indent to gigabytes: nesting and output size are bounded, and past
//! either bound the caller shows the raw text with [`NotPretty`]'s note.

use std::fmt;

/// Bounds on one pretty-printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of objects and arrays printed.
    pub depth: usize,
    /// Most output bytes, indentation and newlines included.
    pub bytes: usize,
    /// Lines after which printing stops with [`Pretty::cut`] set (not an error).
    pub lines: usize,
}

impl Limits {
    /// Generous for webhooks (GitHub's deepest payloads nest about 8 levels).
    pub const DEFAULT: Self = Self {
        depth: 64,
        bytes: 2 * 1024 * 1024,
        lines: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a body was not pretty-printed; its `Display` is the note to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotPretty {
    /// Not valid JSON.
    #[error("not pretty-printed: not valid JSON")]
    Invalid,
    /// Nested deeper than [`Limits::depth`].
    #[error("not pretty-printed: nesting deeper than {0}")]
    TooDeep(usize),
    /// Indented, larger than [`Limits::bytes`].
    #[error("not pretty-printed: larger than {} when indented", crate::output::size(*.0 as u64))]
    TooLarge(usize),
}

/// What a piece of output is, for styling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// Brackets, braces and commas.
    Punct,
    /// The `: ` after a key.
    Colon,
    /// An object key (with its quotes).
    Key,
    /// A string value (with its quotes).
    String,
    /// A number, `true`, `false` or `null`.
    Literal,
}

/// One output line: its nesting depth (two spaces each) and its pieces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrettyLine<'a> {
    /// Indentation level.
    pub depth: usize,
    /// The pieces, in order; the text is the source's (or fixed punctuation).
    pub pieces: Vec<(Token, &'a str)>,
}

impl fmt::Display for PrettyLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.depth {
            f.write_str("  ")?;
        }
        self.pieces
            .iter()
            .try_for_each(|(_, text)| f.write_str(text))
    }
}

/// Pretty-printed JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pretty<'a> {
    /// The lines.
    pub lines: Vec<PrettyLine<'a>>,
    /// True when [`Limits::lines`] stopped the printing early.
    pub cut: bool,
}

impl fmt::Display for Pretty<'_> {
    /// The lines joined with `\n` (no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Pretty-prints `src` (two spaces per level), within `limits`. Text that is
/// not JSON, nests too deep or grows too large is refused with the reason.
pub fn json<'a>(src: &'a str, limits: &Limits) -> Result<Pretty<'a>, NotPretty> {
    // `IgnoredAny` walks the input without recursion, so any depth is safe here.
    serde_json::from_str::<serde::de::IgnoredAny>(src).map_err(|_| NotPretty::Invalid)?;
    Printer {
        limits,
        out: Pretty::default(),
        cur: PrettyLine::default(),
        bytes: 0,
    }
    .run(src)
}

/// [`json`] as one string, for plain output such as `show`.
pub fn json_text(src: &str, limits: &Limits) -> Result<String, NotPretty> {
    json(src, limits).map(|p| p.to_string())
}

struct Printer<'l, 'a> {
    limits: &'l Limits,
    out: Pretty<'a>,
    cur: PrettyLine<'a>,
    bytes: usize,
}

impl<'a> Printer<'_, 'a> {
    /// Ends the current line; the next starts at `depth`.
    fn newline(&mut self, depth: usize) -> Result<(), NotPretty> {
        let line = std::mem::replace(
            &mut self.cur,
            PrettyLine {
                depth,
                pieces: Vec::new(),
            },
        );
        self.bytes += 2 * line.depth + line.pieces.iter().map(|(_, t)| t.len()).sum::<usize>() + 1;
        if self.bytes > self.limits.bytes {
            return Err(NotPretty::TooLarge(self.limits.bytes));
        }
        self.out.lines.push(line);
        if self.out.lines.len() >= self.limits.lines {
            self.out.cut = true;
        }
        Ok(())
    }

    fn push(&mut self, token: Token, text: &'a str) {
        self.cur.pieces.push((token, text));
    }

    fn run(mut self, src: &'a str) -> Result<Pretty<'a>, NotPretty> {
        let b = src.as_bytes();
        let mut stack: Vec<u8> = Vec::new();
        let mut expect_key = false;
        let mut i = 0;
        while i < b.len() && !self.out.cut {
            match b[i] {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                open @ (b'{' | b'[') => {
                    let close = if open == b'{' { b'}' } else { b']' };
                    let j = skip_ws(b, i + 1);
                    if j < b.len() && b[j] == close {
                        self.push(Token::Punct, if open == b'{' { "{}" } else { "[]" });
                        i = j + 1;
                        continue;
                    }
                    if stack.len() >= self.limits.depth {
                        return Err(NotPretty::TooDeep(self.limits.depth));
                    }
                    self.push(Token::Punct, if open == b'{' { "{" } else { "[" });
                    stack.push(open);
                    expect_key = open == b'{';
                    self.newline(stack.len())?;
                    i += 1;
                }
                close @ (b'}' | b']') => {
                    stack.pop();
                    self.newline(stack.len())?;
                    self.push(Token::Punct, if close == b'}' { "}" } else { "]" });
                    i += 1;
                }
                b',' => {
                    self.push(Token::Punct, ",");
                    expect_key = stack.last() == Some(&b'{');
                    self.newline(stack.len())?;
                    i += 1;
                }
                b':' => {
                    self.push(Token::Colon, ": ");
                    expect_key = false;
                    i += 1;
                }
                b'"' => {
                    let end = string_end(b, i);
                    let token = if expect_key {
                        Token::Key
                    } else {
                        Token::String
                    };
                    self.push(token, src.get(i..end).unwrap_or_default());
                    i = end;
                }
                _ => {
                    let start = i;
                    while i < b.len()
                        && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                    {
                        i += 1;
                    }
                    self.push(Token::Literal, src.get(start..i).unwrap_or_default());
                }
            }
        }
        if !self.cur.pieces.is_empty() {
            let depth = self.cur.depth;
            self.newline(depth)?;
        }
        Ok(self.out)
    }
}

/// Index just past the JSON string starting at `start` (a `"`).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reindents_keeping_order_numbers_and_duplicates() {
        let src = r#"{"z":1,"a":[true,null,{}],"n":1.50e3,"z":"x\"y","e":[ ]}"#;
        assert_eq!(
            json_text(src, &Limits::DEFAULT).unwrap(),
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    {}\n  ],\n  \"n\": 1.50e3,\n  \"z\": \"x\\\"y\",\n  \"e\": []\n}"
        );
        assert_eq!(json_text(" 42 ", &Limits::DEFAULT).unwrap(), "42");
        let p = json(r#"{"k":"v"}"#, &Limits::DEFAULT).unwrap();
        assert_eq!(
            p.lines[1].pieces,
            [
                (Token::Key, "\"k\""),
                (Token::Colon, ": "),
                (Token::String, "\"v\"")
            ]
        );
    }

    #[test]
    fn invalid_json_is_refused() {
        assert_eq!(json("{\"a\":", &Limits::DEFAULT), Err(NotPretty::Invalid));
    }

    #[test]
    fn nesting_is_bounded() {
        let limits = Limits {
            depth: 3,
            ..Limits::DEFAULT
        };
        assert!(json("[[[1]]]", &limits).is_ok());
        assert!(
            json("[[[[]]]]", &limits).is_ok(),
            "an empty pair adds no level"
        );
        let err = json("[[[[1]]]]", &limits).unwrap_err();
        assert_eq!(err, NotPretty::TooDeep(3));
        assert_eq!(err.to_string(), "not pretty-printed: nesting deeper than 3");
    }

    #[test]
    fn the_hostile_body_fails_fast_and_small() {
        let body = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        let started = std::time::Instant::now();
        assert_eq!(json(&body, &Limits::DEFAULT), Err(NotPretty::TooDeep(64)));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn output_size_is_bounded() {
        let src = format!("[{}1]", "1,".repeat(1000));
        let limits = Limits {
            bytes: 1000,
            ..Limits::DEFAULT
        };
        let err = json(&src, &limits).unwrap_err();
        assert_eq!(err, NotPretty::TooLarge(1000));
        assert_eq!(
            err.to_string(),
            "not pretty-printed: larger than 1000 B when indented"
        );
        assert!(json(&src, &Limits::DEFAULT).is_ok());
    }

    #[test]
    fn a_line_limit_cuts_without_failing() {
        let src = format!("[{}1]", "1,".repeat(100));
        let limits = Limits {
            lines: 10,
            ..Limits::DEFAULT
        };
        let p = json(&src, &limits).unwrap();
        assert!(p.cut);
        assert_eq!(p.lines.len(), 10);
    }
}
