//! Small text helpers: display widths, truncation, wrapping and number formats.
//!
//! Everything here works on text that is already escaped (see
//! [`crate::sanitize`]), so every character is printable.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Columns `c` takes on a terminal (0 for combining marks, 2 for wide CJK).
pub fn char_width(c: char) -> usize {
    if c.is_ascii() {
        return 1;
    }
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// Columns `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char_width).sum()
    }
}

/// `s` cut to at most `max` columns, ending in `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `s` truncated or padded with spaces to exactly `cols` columns.
pub fn fit(s: &str, cols: usize) -> String {
    let mut out = truncate(s, cols);
    let w = width(&out);
    out.extend(std::iter::repeat_n(' ', cols.saturating_sub(w)));
    out
}

/// `s` right-aligned in `cols` columns (truncated when longer).
pub fn fit_right(s: &str, cols: usize) -> String {
    let t = truncate(s, cols);
    let w = width(&t);
    let mut out: String = std::iter::repeat_n(' ', cols.saturating_sub(w)).collect();
    out.push_str(&t);
    out
}

/// Replaces tabs with spaces up to the next multiple of 4 columns.
pub fn expand_tabs(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\t') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut col = 0;
    for c in s.chars() {
        if c == '\t' {
            let n = 4 - col % 4;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += char_width(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Splits a styled line into lines of at most `cols` columns (hard wrap).
pub fn wrap(line: Line<'static>, cols: usize) -> Vec<Line<'static>> {
    let cols = cols.max(1);
    if line.width() <= cols {
        return vec![line];
    }
    let mut out = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in line.spans {
        let style = span.style;
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = char_width(c);
            if used + w > cols && used > 0 {
                if !piece.is_empty() {
                    current.push(Span::styled(std::mem::take(&mut piece), style));
                }
                out.push(Line::from(std::mem::take(&mut current)));
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            current.push(Span::styled(piece, style));
        }
    }
    if !current.is_empty() {
        out.push(Line::from(current));
    }
    out
}

/// `12345678` as `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in milliseconds for a column: `0.4 ms`, `312 ms`, `2.35 s`.
pub fn duration(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 100_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{:.0} s", ms / 1000.0)
    }
}

/// The last 8 characters of an id: unique enough to read and to type
/// (`hooktunnel show` accepts id suffixes).
pub fn short_id(id: &ulid::Ulid) -> String {
    let s = id.to_string();
    format!("…{}", &s[s.len().saturating_sub(8)..])
}

/// A one-span line.
pub fn line(s: impl Into<String>, style: Style) -> Line<'static> {
    Line::from(Span::styled(s.into(), style))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn truncation_and_padding_count_columns() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit_right("ab", 4), "  ab");
        assert_eq!(width("日本"), 4);
        assert_eq!(truncate("日本語", 5), "日本…");
    }

    #[test]
    fn wrap_splits_on_columns_and_keeps_styles() {
        let l = Line::from(vec![
            Span::raw("abc"),
            Span::styled("defg", Style::new().bold()),
        ]);
        let lines = wrap(l, 3);
        let texts: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["abc", "def", "g"]);
        assert_eq!(lines[1].spans[0].style, Style::new().bold());
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(3.04), "3.0 ms");
        assert_eq!(duration(312.4), "312 ms");
        assert_eq!(duration(2345.0), "2.35 s");
        assert_eq!(expand_tabs("a\tb"), "a   b");
    }
}
