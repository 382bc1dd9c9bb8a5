//! The detail pane's content: one exchange as styled lines, per tab.
//!
//! Bodies are shown pretty-printed when they are JSON (key order, numbers and
//! duplicates kept: the printer re-indents tokens rather than re-serialising)
//! or form-urlencoded (decoded pairs), as a hex dump when binary, and as
//! escaped text otherwise; `v` cycles to the raw and hex views. Huge bodies
//! are cut with a note; JSON that nests too deep or indents too large (see
//! [`crate::pretty`]) is shown raw with a note. Every captured byte goes through [`crate::sanitize`].

use std::borrow::Cow;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::capture::Truncation;
use crate::exchange::{Exchange, Header};
use crate::export::http_message::is_text_body;
use crate::mask;
use crate::output::size;
use crate::pretty::{self, NotPretty, Token};
use crate::sanitize;

use super::text::{self, expand_tabs, line};
use super::theme::Theme;

/// Bodies above this many bytes are shown cut (text and raw views).
pub const TEXT_LIMIT: usize = 256 * 1024;
/// Bodies above this many bytes are shown cut in the hex view.
pub const HEX_LIMIT: usize = 64 * 1024;
/// At most this many body lines are built.
pub const LINE_LIMIT: usize = 20_000;

/// Which half of the exchange the detail pane shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tab {
    /// The captured request.
    #[default]
    Request,
    /// The local app's answer.
    Response,
}

impl Tab {
    /// The other tab.
    pub fn toggle(self) -> Self {
        match self {
            Self::Request => Self::Response,
            Self::Response => Self::Request,
        }
    }
}

/// How bodies are shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyView {
    /// Pretty JSON or decoded form when it parses, hex when binary, else text.
    #[default]
    Auto,
    /// Escaped text, as received.
    Raw,
    /// Offsets, hex bytes and ASCII.
    Hex,
}

impl BodyView {
    /// The next view for the `v` key.
    pub fn next(self) -> Self {
        match self {
            Self::Auto => Self::Raw,
            Self::Raw => Self::Hex,
            Self::Hex => Self::Auto,
        }
    }
}

/// All lines of one tab of the detail pane, unwrapped; with `mask`, secret
/// header values are masked (see [`crate::mask`]).
pub fn detail_lines(
    ex: &Exchange,
    tab: Tab,
    view: BodyView,
    theme: Theme,
    mask: bool,
) -> Vec<Line<'static>> {
    match tab {
        Tab::Request => request_lines(ex, view, theme, mask),
        Tab::Response => response_lines(ex, view, theme, mask),
    }
}

fn field(name: &str, value: impl Into<String>, theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{name:<10}"), theme.dim()),
        Span::raw(value.into()),
    ])
}

fn request_lines(ex: &Exchange, view: BodyView, theme: Theme, mask: bool) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(vec![
        Span::styled(sanitize::escape(&ex.method).into_owned(), theme.bold()),
        Span::raw(" "),
        Span::raw(sanitize::escape(&ex.path).into_owned()),
    ])];
    out.push(field("id", ex.id.to_string(), theme));
    out.push(field(
        "received",
        crate::clock::rfc3339_ms(ex.received_at_ms),
        theme,
    ));
    if let Some(url) = &ex.public_url {
        out.push(field("url", sanitize::escape(url).into_owned(), theme));
    }
    if let Some(peer) = &ex.peer {
        out.push(field("from", sanitize::escape(peer).into_owned(), theme));
    }
    out.push(field(
        "target",
        sanitize::escape(&ex.target).into_owned(),
        theme,
    ));
    if let Some(orig) = ex.replay_of {
        out.push(Line::from(vec![
            Span::styled(format!("{:<10}", "replay of"), theme.dim()),
            Span::styled(format!("↻ {orig}"), theme.key()),
        ]));
    }
    if ex.queued {
        out.push(field(
            "queued",
            "delivered from the relay's queue (the agent was offline)",
            theme,
        ));
    }
    if let Some(sig) = &ex.signature {
        let provider = sanitize::escape(&sig.provider).into_owned();
        let verdict = if sig.valid {
            Span::styled(format!("✓ {provider}"), theme.ok())
        } else {
            let reason = sanitize::escape(sig.reason.as_deref().unwrap_or("invalid")).into_owned();
            Span::styled(format!("✗ {provider}: {reason}"), theme.error())
        };
        out.push(Line::from(vec![
            Span::styled(format!("{:<10}", "signature"), theme.dim()),
            verdict,
        ]));
    }
    push_headers(&mut out, &ex.request_headers, theme, mask);
    if crate::websocket::is_websocket(ex) {
        // Both directions' frames, as messages, in place of raw bodies.
        for text in crate::websocket::describe(ex) {
            let title = !text.starts_with(' ');
            if title {
                out.push(Line::default());
            }
            let style = if title {
                theme.bold()
            } else {
                Style::default()
            };
            out.push(line(sanitize::escape(&text).into_owned(), style));
        }
        return out;
    }
    let capture = Kept {
        truncated: ex.request_truncated.as_ref(),
        degraded: ex.capture_degraded,
    };
    push_body(
        &mut out,
        &ex.request_headers,
        &ex.request_body,
        capture,
        view,
        &ex.id,
        theme,
    );
    out
}

fn response_lines(ex: &Exchange, view: BodyView, theme: Theme, mask: bool) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    match &ex.response {
        Some(resp) => {
            let reason = http::StatusCode::from_u16(resp.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            out.push(Line::from(vec![
                Span::styled(
                    format!("{} {reason}", resp.status),
                    theme.status(Some(resp.status)),
                ),
                Span::styled(
                    format!(
                        " · {} · {}",
                        text::duration(ex.duration_ms()),
                        size(resp.body.len() as u64)
                    ),
                    theme.dim(),
                ),
            ]));
        }
        None => out.push(line("No response", theme.status(None))),
    }
    if let Some(err) = &ex.error {
        out.push(Line::from(vec![
            Span::styled(format!("{:<10}", "error"), theme.dim()),
            Span::styled(sanitize::escape(err).into_owned(), theme.error()),
        ]));
    }
    if let Some(resp) = &ex.response {
        push_headers(&mut out, &resp.headers, theme, mask);
        if !crate::websocket::is_websocket(ex) {
            let capture = Kept {
                truncated: resp.truncated.as_ref(),
                degraded: ex.capture_degraded,
            };
            push_body(
                &mut out,
                &resp.headers,
                &resp.body,
                capture,
                view,
                &ex.id,
                theme,
            );
        }
    }
    out
}

fn push_headers(out: &mut Vec<Line<'static>>, headers: &[Header], theme: Theme, mask: bool) {
    out.push(Line::default());
    let secrets = headers.iter().filter(|h| mask::is_secret(&h.name)).count();
    let mut title = vec![Span::styled(
        format!("Headers ({})", headers.len()),
        theme.bold(),
    )];
    if secrets > 0 {
        let note = if mask {
            format!(" · {secrets} masked · m: reveal")
        } else {
            " · secrets shown · m: mask".to_owned()
        };
        title.push(Span::styled(note, theme.dim()));
    }
    out.push(Line::from(title));
    for h in headers {
        let value = if mask {
            mask::header_value(&h.name, &h.value)
        } else {
            Cow::Borrowed(&h.value[..])
        };
        out.push(Line::from(vec![
            Span::styled(sanitize::escape(&h.name).into_owned(), theme.key()),
            Span::styled(": ", theme.dim()),
            Span::raw(sanitize::escape_bytes(&value)),
        ]));
    }
}

fn content_type(headers: &[Header]) -> String {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
        .map(|h| String::from_utf8_lossy(&h.value).to_ascii_lowercase())
        .unwrap_or_default()
}

/// How a body will actually be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shown {
    Json,
    Form,
    Text,
    Hex,
}

fn choose(body: &[u8], ctype: &str, view: BodyView) -> Shown {
    match view {
        BodyView::Raw => Shown::Text,
        BodyView::Hex => Shown::Hex,
        BodyView::Auto if !is_text_body(body) => Shown::Hex,
        BodyView::Auto if body.len() > TEXT_LIMIT => Shown::Text,
        BodyView::Auto => {
            let trimmed = body.trim_ascii_start();
            let jsonish =
                ctype.contains("json") || trimmed.starts_with(b"{") || trimmed.starts_with(b"[");
            if jsonish && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                Shown::Json
            } else if ctype.contains("application/x-www-form-urlencoded") {
                Shown::Form
            } else {
                Shown::Text
            }
        }
    }
}

/// What the history holds of a body: all of it, or (`truncated`) its head.
#[derive(Clone, Copy)]
struct Kept<'a> {
    truncated: Option<&'a Truncation>,
    degraded: bool,
}

impl Kept<'_> {
    /// The warning line under the body's title when it is held in part.
    fn note(self, theme: Theme) -> Option<Line<'static>> {
        let t = self.truncated?;
        Some(line(
            sanitize::escape(&crate::capture::note(t, self.degraded)).into_owned(),
            theme.warn(),
        ))
    }
}

fn push_body(
    out: &mut Vec<Line<'static>>,
    headers: &[Header],
    body: &[u8],
    kept: Kept<'_>,
    view: BodyView,
    id: &ulid::Ulid,
    theme: Theme,
) {
    out.push(Line::default());
    if body.is_empty() {
        out.push(Line::from(vec![
            Span::styled("Body", theme.bold()),
            Span::styled(
                if kept.truncated.is_some() {
                    " · none kept"
                } else {
                    " · empty"
                },
                theme.dim(),
            ),
        ]));
        out.extend(kept.note(theme));
        return;
    }
    let ctype = content_type(headers);
    let shown = choose(body, &ctype, view);
    let limit = if shown == Shown::Hex {
        HEX_LIMIT
    } else {
        TEXT_LIMIT
    };
    let cut = &body[..body.len().min(limit)];
    let mut not_pretty = None;
    let mut lines = match shown {
        Shown::Json => std::str::from_utf8(cut)
            .map_err(|_| NotPretty::Invalid)
            .and_then(|s| json_lines(s, theme))
            .unwrap_or_else(|why| {
                not_pretty = Some(why);
                text_lines(cut, theme)
            }),
        Shown::Form => form_lines(cut, theme),
        Shown::Text => text_lines(cut, theme),
        Shown::Hex => hex_lines(cut, theme),
    };
    let label = match (shown, view) {
        (Shown::Json, _) if not_pretty.is_some() => "JSON, raw",
        (Shown::Json, _) => "JSON, pretty-printed",
        (Shown::Form, _) => "form, decoded",
        (Shown::Hex, BodyView::Auto) => "binary, hex",
        (Shown::Hex, _) => "hex",
        (Shown::Text, BodyView::Raw) => "raw",
        (Shown::Text, _) => "text",
    };
    out.push(Line::from(vec![
        Span::styled("Body", theme.bold()),
        Span::styled(
            format!(" · {} · {label} · v: change view", size(body.len() as u64)),
            theme.dim(),
        ),
    ]));
    out.extend(kept.note(theme));
    if let Some(why) = not_pretty {
        out.push(line(format!("{why}; showing the raw text"), theme.warn()));
    }
    let mut note = None;
    if lines.len() > LINE_LIMIT {
        lines.truncate(LINE_LIMIT);
        note = Some(format!(
            "… cut at {} lines",
            text::thousands(LINE_LIMIT as u64)
        ));
    } else if cut.len() < body.len() {
        note = Some(format!(
            "… cut: showing the first {} of {}",
            size(cut.len() as u64),
            size(body.len() as u64)
        ));
    }
    out.extend(lines);
    if let Some(note) = note {
        out.push(line(
            format!("{note}; the whole body: `hooktunnel show {id} --json`"),
            theme.warn(),
        ));
    }
}

fn text_lines(body: &[u8], _theme: Theme) -> Vec<Line<'static>> {
    let escaped = sanitize::escape_bytes_multiline(body);
    escaped
        .split('\n')
        .take(LINE_LIMIT + 1)
        .map(|l| Line::raw(expand_tabs(l).into_owned()))
        .collect()
}

fn hex_lines(body: &[u8], theme: Theme) -> Vec<Line<'static>> {
    body.chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut hex = String::with_capacity(50);
            for (j, b) in chunk.iter().enumerate() {
                if j == 8 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{b:02x} "));
            }
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '.'
                    }
                })
                .collect();
            Line::from(vec![
                Span::styled(format!("{:08x}  ", i * 16), theme.dim()),
                Span::raw(format!("{hex:<50}")),
                Span::styled(format!("│{ascii}│"), theme.dim()),
            ])
        })
        .collect()
}

fn form_lines(body: &[u8], theme: Theme) -> Vec<Line<'static>> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], Some(&pair[i + 1..])),
                None => (pair, None),
            };
            let mut spans = vec![Span::styled(
                sanitize::escape_bytes(&crate::form::decode(k)),
                theme.key(),
            )];
            if let Some(v) = v {
                spans.push(Span::styled(" = ", theme.dim()));
                spans.push(Span::raw(sanitize::escape_bytes(&crate::form::decode(v))));
            }
            Line::from(spans)
        })
        .collect()
}

/// The pretty-printer's bounds in the detail pane: one line past the pane's
/// line limit, so [`push_body`] sees the cut and says so.
const PRETTY: pretty::Limits = pretty::Limits {
    depth: pretty::Limits::DEFAULT.depth,
    bytes: pretty::Limits::DEFAULT.bytes,
    lines: LINE_LIMIT + 1,
};

/// Valid JSON, re-indented with [`pretty::json`] and styled; the reason
/// when it is not pretty-printed.
fn json_lines(src: &str, theme: Theme) -> Result<Vec<Line<'static>>, NotPretty> {
    let printed = pretty::json(src, &PRETTY)?;
    Ok(printed
        .lines
        .into_iter()
        .map(|l| {
            let mut spans = Vec::with_capacity(l.pieces.len() + 1);
            if l.depth > 0 {
                spans.push(Span::raw("  ".repeat(l.depth)));
            }
            spans.extend(l.pieces.into_iter().map(|(token, text)| {
                let style = match token {
                    Token::Punct => Style::new(),
                    Token::Colon => theme.dim(),
                    Token::Key => theme.key(),
                    Token::String => theme.string(),
                    Token::Literal => theme.literal(),
                };
                Span::styled(sanitize::escape(text).into_owned(), style)
            }));
            Line::from(spans)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn texts(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    const PLAIN: Theme = Theme { color: false };

    #[test]
    fn json_is_reindented_keeping_order_and_tokens() {
        let src = r#"{"z":1,"a":[true,null,{}],"n":1.50e3,"s":"x\"y","e":[]}"#;
        assert_eq!(
            texts(&json_lines(src, PLAIN).unwrap()),
            [
                "{",
                "  \"z\": 1,",
                "  \"a\": [",
                "    true,",
                "    null,",
                "    {}",
                "  ],",
                "  \"n\": 1.50e3,",
                "  \"s\": \"x\\\"y\",",
                "  \"e\": []",
                "}",
            ]
        );
        assert_eq!(texts(&json_lines("42", PLAIN).unwrap()), ["42"]);
    }

    #[test]
    fn json_keys_and_values_are_styled_apart() {
        let theme = Theme { color: true };
        let lines = json_lines(r#"{"k":"v"}"#, theme).unwrap();
        let spans = &lines[1].spans;
        assert_eq!(spans[1].style, theme.key());
        assert_eq!(spans[3].style, theme.string());
    }

    #[test]
    fn form_bodies_are_decoded() {
        assert_eq!(
            texts(&form_lines(
                b"a=1&b=two+words&c=%E2%9C%93&d&e=%1b%5B31m&bad=%zz",
                PLAIN
            )),
            [
                "a = 1",
                "b = two words",
                "c = ✓",
                "d",
                "e = \\e[31m",
                "bad = %zz"
            ]
        );
    }

    #[test]
    fn hex_dump_layout() {
        let lines = hex_lines(b"0123456789abcdef\x00\x1b", PLAIN);
        assert_eq!(
            texts(&lines),
            [
                "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  │0123456789abcdef│",
                "00000010  00 1b                                             │..│",
            ]
        );
    }

    #[test]
    fn choice_of_view() {
        assert_eq!(choose(b"{\"a\":1}", "", BodyView::Auto), Shown::Json);
        assert_eq!(
            choose(b"{\"a\":", "application/json", BodyView::Auto),
            Shown::Text
        );
        assert_eq!(
            choose(
                b"a=1",
                "application/x-www-form-urlencoded; charset=utf-8",
                BodyView::Auto
            ),
            Shown::Form
        );
        assert_eq!(choose(b"\x00\x01", "", BodyView::Auto), Shown::Hex);
        assert_eq!(choose(b"{}", "", BodyView::Raw), Shown::Text);
        assert_eq!(choose(b"{}", "", BodyView::Hex), Shown::Hex);
    }

    /// Issue 14 row 5: `[`×50,000 `]`×50,000 (98 KiB) once grew the
    /// inspector to 1.24 GB (an indented line per bracket).
    #[test]
    fn deeply_nested_json_is_shown_raw_with_a_note_and_stays_small() {
        use crate::tui::events::Event;
        use crate::tui::status::Mode;
        use crate::tui::testing::{ex, open_detail, sample_app, screen};

        let mut deep = ex(1, "POST", "/hooks/deep", Some(200));
        deep.request_body = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into();
        let rows = vec![deep];
        let started = std::time::Instant::now();
        let mut app = sample_app(Mode::Inspect, &rows, 120, 30);
        open_detail(&mut app, &rows);
        app.handle(Event::Resize {
            width: 80,
            height: 24,
        });
        let shown = screen(&app);
        let lines = &app.detail().unwrap().lines;
        let chars: usize = lines.iter().map(Line::width).sum();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // The raw text is 100,000 characters: about that many on screen lines, no more.
        assert!(
            chars < 110_000,
            "{chars} characters in {} lines",
            lines.len()
        );
        assert!(lines.len() < 2_000, "{} lines", lines.len());
        assert!(
            shown.contains("not pretty-printed: nesting deeper than 64"),
            "{shown}"
        );
        assert!(
            lines.iter().any(|l| l.to_string().starts_with("[[[[[[[[")),
            "the raw text follows"
        );
    }

    const WHOLE: Kept<'static> = Kept {
        truncated: None,
        degraded: false,
    };

    #[test]
    fn a_body_held_in_part_says_so_under_its_title() {
        let t = Truncation {
            total_bytes: 1_288_490_189,
            sha256: "ab12cd34ef56aa".into(),
            limit: 10 * 1024 * 1024,
        };
        let kept = Kept {
            truncated: Some(&t),
            degraded: false,
        };
        let mut out = Vec::new();
        push_body(
            &mut out,
            &[],
            b"head",
            kept,
            BodyView::Auto,
            &ulid::Ulid::nil(),
            PLAIN,
        );
        assert_eq!(
            out[2].to_string(),
            "truncated: 10.0 MiB of 1.2 GiB kept · sha256 ab12cd34ef56…"
        );
        let mut out = Vec::new();
        let kept = Kept {
            truncated: Some(&t),
            degraded: true,
        };
        push_body(
            &mut out,
            &[],
            b"",
            kept,
            BodyView::Auto,
            &ulid::Ulid::nil(),
            PLAIN,
        );
        assert!(out[1].to_string().contains("none kept"), "{:?}", out[1]);
        assert!(
            out[2].to_string().contains("store fell behind"),
            "{:?}",
            out[2]
        );
    }

    #[test]
    fn huge_bodies_are_cut_with_a_note() {
        let mut out = Vec::new();
        let body = vec![b'a'; TEXT_LIMIT * 2];
        push_body(
            &mut out,
            &[],
            &body,
            WHOLE,
            BodyView::Auto,
            &ulid::Ulid::nil(),
            PLAIN,
        );
        let last = out.last().unwrap().to_string();
        assert!(
            last.contains("cut: showing the first 256.0 KiB of 512.0 KiB"),
            "{last}"
        );
        let many = "x\n".repeat(LINE_LIMIT + 5);
        let mut out = Vec::new();
        push_body(
            &mut out,
            &[],
            many.as_bytes(),
            WHOLE,
            BodyView::Raw,
            &ulid::Ulid::nil(),
            PLAIN,
        );
        assert!(
            out.last()
                .unwrap()
                .to_string()
                .contains("cut at 20,000 lines")
        );
    }
}
