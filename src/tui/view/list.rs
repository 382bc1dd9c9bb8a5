//! The list: columns that drop as the terminal narrows, one line a row,
//! and what an empty list says. A tunnel column joins them once the history
//! holds more than one tunnel (see [`super::super::tunnels`]).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::Paragraph;

use crate::exchange::ExchangeSummary;
use crate::output::{clock, size};
use crate::sanitize::escape;

use super::super::app::{App, is_error};
use super::super::status::Mode;
use super::super::text::{self, fit, fit_right, thousands};
use super::super::theme::Theme;

/// List columns, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Time,
    Tunnel,
    Method,
    Path,
    Status,
    Flags,
    Duration,
    Req,
    Resp,
}

impl Col {
    const ALL: [Col; 9] = [
        Col::Time,
        Col::Tunnel,
        Col::Method,
        Col::Path,
        Col::Status,
        Col::Flags,
        Col::Duration,
        Col::Req,
        Col::Resp,
    ];
    /// Dropped first to last as the terminal narrows; the tunnel goes last,
    /// since with several tunnels it tells rows apart.
    const DROP_ORDER: [Col; 6] = [
        Col::Resp,
        Col::Req,
        Col::Time,
        Col::Flags,
        Col::Duration,
        Col::Tunnel,
    ];

    /// The width of a fixed column; the path and the tunnel are sized by
    /// [`columns`].
    fn width(self) -> usize {
        match self {
            Col::Time => 8,
            Col::Tunnel => 0,
            Col::Method => 7,
            Col::Path => 0,
            Col::Status => 6,
            Col::Flags => 2,
            Col::Duration => 8,
            Col::Req | Col::Resp => 10,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Col::Time => "TIME",
            Col::Tunnel => "TUNNEL",
            Col::Method => "METHOD",
            Col::Path => "PATH",
            Col::Status => "STATUS",
            Col::Flags => "",
            Col::Duration => "DURATION",
            Col::Req => "REQ",
            Col::Resp => "RESP",
        }
    }

    fn right_aligned(self) -> bool {
        matches!(self, Col::Duration | Col::Req | Col::Resp)
    }
}

/// Width of the selection marker before each row.
const MARKER: usize = 2;
/// The path column never gets narrower than this while others can drop.
const MIN_PATH: usize = 20;

/// The columns shown and their widths.
#[derive(Debug, PartialEq, Eq)]
struct Columns {
    shown: Vec<Col>,
    path: usize,
    tunnel: usize,
}

impl Columns {
    fn width(&self, c: Col) -> usize {
        match c {
            Col::Path => self.path,
            Col::Tunnel => self.tunnel,
            c => c.width(),
        }
    }
}

/// The columns that fit in `cols`, with the path's width; `tunnel` is the
/// tunnel column's width when it shows (several tunnels), else `None`.
fn columns(cols: usize, tunnel: Option<usize>) -> Columns {
    let mut shown: Vec<Col> = Col::ALL.to_vec();
    if tunnel.is_none() {
        shown.retain(|c| *c != Col::Tunnel);
    }
    let tunnel = tunnel.unwrap_or(0);
    let fixed = |shown: &[Col]| {
        MARKER
            + shown
                .iter()
                .map(|c| if *c == Col::Tunnel { tunnel } else { c.width() })
                .sum::<usize>()
            + shown.len().saturating_sub(1)
    };
    for drop in Col::DROP_ORDER {
        if cols >= fixed(&shown) + MIN_PATH {
            break;
        }
        shown.retain(|c| *c != drop);
    }
    let path = cols.saturating_sub(fixed(&shown)).max(4);
    Columns {
        shown,
        path,
        tunnel,
    }
}

fn cell(col: Col, s: &ExchangeSummary, t: Theme) -> Span<'static> {
    match col {
        Col::Time => Span::styled(clock(s.received_at_ms), t.dim()),
        Col::Tunnel => Span::styled(escape(&s.tunnel).into_owned(), t.key()),
        Col::Method => Span::styled(escape(&s.method).into_owned(), t.bold()),
        Col::Path => Span::raw(escape(&s.path).into_owned()),
        Col::Status => Span::styled(
            s.status.map_or_else(|| "---".to_owned(), |c| c.to_string()),
            t.status(s.status),
        ),
        Col::Flags => {
            let mut f = String::new();
            if s.replay_of.is_some() {
                f.push('↻');
            }
            if s.queued {
                f.push('⏸');
            }
            match &s.signature {
                Some(sig) if sig.valid => f.push('✓'),
                Some(_) => f.push('✗'),
                None => {}
            }
            let style = if s.signature.as_ref().is_some_and(|sig| !sig.valid) {
                t.error()
            } else {
                t.key()
            };
            Span::styled(f, style)
        }
        Col::Duration => Span::styled(text::duration(s.duration_ms), t.dim()),
        Col::Req => Span::raw(size(s.request_bytes)),
        Col::Resp => Span::raw(size(s.response_bytes)),
    }
}

pub(super) fn render_list(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let layout = columns(usize::from(area.width), app.tunnels.column());
    let cols = &layout.shown;
    let width_of = |c: Col| layout.width(c);
    let pad = |c: Col, s: &str| {
        if c.right_aligned() {
            fit_right(s, width_of(c))
        } else {
            fit(s, width_of(c))
        }
    };

    let mut title = vec![Span::raw(" ".repeat(MARKER))];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            title.push(Span::raw(" "));
        }
        title.push(Span::raw(pad(*c, c.title())));
    }
    let mut lines =
        vec![Line::from(title).style(t.dim().add_modifier(ratatui::style::Modifier::BOLD))];

    let rows = usize::from(area.height.saturating_sub(1));
    if app.is_empty() {
        lines.extend(empty_message(app));
    }
    for index in app.top..(app.top + rows).min(app.len()) {
        let selected = index == app.selected;
        let marker = if selected { "▶ " } else { "  " };
        let mut spans = vec![Span::raw(marker)];
        match app.row(index) {
            Some(s) => {
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        spans.push(Span::raw(" "));
                    }
                    let span = cell(*c, s, t);
                    let content = pad(*c, &span.content);
                    let style = if *c == Col::Path && is_error(s) && s.status.is_none() {
                        t.error()
                    } else {
                        span.style
                    };
                    spans.push(Span::styled(content, style));
                }
            }
            None => spans.push(Span::styled("…", t.dim())),
        }
        let mut line = Line::from(spans);
        if selected {
            line = line.style(t.selected());
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(Text::from(lines)), area);
}

fn empty_message(app: &App) -> Vec<Line<'static>> {
    let t = app.theme;
    let mut out = vec![Line::default()];
    match (&app.filtered, app.mode) {
        (Some(f), _) if !f.done => out.push(Line::styled(
            format!(
                "  Searching… {} of {} looked at",
                thousands(f.scanned),
                thousands(app.total as u64)
            ),
            t.dim(),
        )),
        (Some(f), _) => {
            out.push(Line::raw(format!(
                "  No requests match {}",
                escape(&f.query)
            )));
            out.push(Line::styled(
                "  Esc clears the filter, / changes it.",
                t.dim(),
            ));
        }
        (None, Mode::Live) => {
            out.push(Line::raw("  Waiting for requests…"));
            if let Some(url) = &app.header.public_url {
                out.push(Line::default());
                out.push(Line::styled("  Try:", t.dim()));
                out.push(Line::raw(format!(
                    "  curl -d '{{\"hello\":\"world\"}}' {}",
                    escape(url)
                )));
            }
        }
        (None, Mode::Inspect) => {
            out.push(Line::raw("  No requests stored yet."));
            out.push(Line::styled(
                "  Run `hooktunnel listen <PORT>` and send some.",
                t.dim(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_column_shows_only_when_sized() {
        let one = columns(120, None);
        assert!(!one.shown.contains(&Col::Tunnel));
        let several = columns(120, Some(10));
        assert_eq!(&several.shown[..3], [Col::Time, Col::Tunnel, Col::Method]);
        assert_eq!(several.width(Col::Tunnel), 10);
        // The path gives up what the tunnel takes (and its separator).
        assert_eq!(one.path - several.path, 11);
    }

    #[test]
    fn the_tunnel_column_is_the_last_to_drop() {
        let narrow = columns(50, Some(8));
        assert_eq!(
            narrow.shown,
            [Col::Tunnel, Col::Method, Col::Path, Col::Status]
        );
        assert!(narrow.path >= MIN_PATH, "{narrow:?}");
        let tiny = columns(30, Some(8));
        assert_eq!(tiny.shown, [Col::Method, Col::Path, Col::Status]);
    }
}
