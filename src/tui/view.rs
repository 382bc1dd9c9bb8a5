//! Drawing: `render(&App, &mut Frame)`, a pure function of the state.
//!
//! Every captured string is escaped here or in [`super::body`] before it is
//! put in the frame; nothing reads the store or the network.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::exchange::ExchangeSummary;
use crate::output::{clock, size};
use crate::sanitize::escape;

use super::app::{App, Link, Mode, is_error, layout};
use super::body::Tab;
use super::text::{self, fit, fit_right, thousands, width};
use super::theme::Theme;

/// Keys and what they do, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move (in the detail: scroll)"),
    ("PgUp PgDn", "page up / down"),
    ("g G", "first / last (g follows new requests again)"),
    ("Enter", "open / close the detail"),
    ("Tab", "request / response"),
    ("v", "body view: pretty, raw, hex"),
    ("n p", "next / previous request (in the detail)"),
    ("r", "replay (re-signed if a secret fits; new row ↻)"),
    ("e", "edit in $EDITOR, then replay"),
    ("c", "copy as curl (clipboard via OSC 52, and a file)"),
    ("/", "filter; Enter applies, empty clears"),
    ("Esc", "close the detail, clear the filter"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
];

/// `1 request`, `2 requests`, with thousands separators.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// Draws the whole inspector.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let areas = layout(area, app.detail.is_some());
    render_header(app, frame, areas.header);
    if let Some(r) = areas.list {
        render_list(app, frame, r);
    }
    if let Some(r) = areas.detail {
        render_detail(app, frame, r);
    }
    render_footer(app, frame, areas.footer);
    if app.help {
        render_help(app, frame, area);
    }
}

/// Renders `left` from the left edge and `right` flush right, the right side
/// winning when both do not fit (up to half the width).
fn two_sided(frame: &mut Frame<'_>, rect: Rect, left: Line<'static>, right: Line<'static>) {
    if rect.height == 0 {
        return;
    }
    let right_w = u16::try_from(right.width())
        .unwrap_or(u16::MAX)
        .min(rect.width / 2);
    let left_w = rect.width.saturating_sub(right_w + u16::from(right_w > 0));
    frame.render_widget(
        Paragraph::new(left),
        Rect {
            width: left_w,
            ..rect
        },
    );
    if right_w > 0 {
        let r = Rect {
            x: rect.x + rect.width - right_w,
            width: right_w,
            ..rect
        };
        frame.render_widget(Paragraph::new(right).alignment(Alignment::Right), r);
    }
}

fn link_line(app: &App) -> Line<'static> {
    let t = app.theme;
    match &app.link {
        Link::Connecting => Line::styled("◌ connecting", t.warn()),
        Link::Online => Line::styled("● online", t.ok()),
        Link::Reconnecting {
            attempt,
            retry_at_ms,
            reason,
        } => {
            let wait = retry_at_ms.saturating_sub(app.now_ms).div_ceil(1000);
            let when = if wait == 0 {
                "now".to_owned()
            } else {
                format!("in {wait}s")
            };
            Line::styled(
                format!(
                    "◌ reconnecting {when} (attempt {attempt}: {})",
                    escape(reason)
                ),
                t.warn(),
            )
        }
        Link::Offline(why) => Line::styled(format!("✕ offline: {}", escape(why)), t.error()),
    }
}

fn render_header(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let mut first = vec![Span::styled(" hooktunnel ", t.badge()), Span::raw(" ")];
    let right = match app.mode {
        Mode::Live => {
            let h = &app.header;
            match &h.public_url {
                Some(url) => first.push(Span::styled(escape(url).into_owned(), t.bold())),
                None => first.push(Span::styled("starting the tunnel…", t.dim())),
            }
            if let Some(target) = &h.target {
                first.push(Span::styled(" → ", t.dim()));
                first.push(Span::raw(escape(target).into_owned()));
            }
            if h.embedded {
                first.push(Span::styled(
                    "  (embedded relay: this machine only)",
                    t.dim(),
                ));
            }
            link_line(app)
        }
        Mode::Inspect => {
            first.push(Span::styled("inspect", t.bold()));
            first.push(Span::styled(" · stored history", t.dim()));
            Line::default()
        }
    };
    two_sided(frame, Rect { height: 1, ..area }, Line::from(first), right);
    if area.height < 2 {
        return;
    }

    let errors = app.history_errors.map_or_else(
        || "… errors".to_owned(),
        |h| count(h + app.new_errors, "error", "errors"),
    );
    let mut second = vec![
        Span::raw(format!(
            " {}",
            count(app.total as u64, "request", "requests")
        )),
        Span::styled(" · ", t.dim()),
        Span::styled(
            errors,
            if app.new_errors > 0 {
                t.error()
            } else {
                Style::new()
            },
        ),
    ];
    if app.mode == Mode::Live {
        second.push(Span::styled(" · ", t.dim()));
        second.push(Span::raw(format!(
            "{} this session",
            thousands(app.session)
        )));
    }
    let position = if app.is_empty() {
        String::new()
    } else {
        format!(
            "{}/{} · ",
            thousands(app.selected as u64 + 1),
            thousands(app.len() as u64)
        )
    };
    let right = match &app.filtered {
        Some(f) => {
            let mut s = format!(
                "{position}filter: {} · {}",
                escape(&f.query),
                count(f.rows.len() as u64, "match", "matches")
            );
            if !f.done {
                let pct = (f.scanned * 100)
                    .checked_div(app.total as u64)
                    .unwrap_or(0)
                    .min(99);
                s.push_str(&format!(" · searching {pct}%"));
            }
            Line::styled(s, t.warn())
        }
        None if app.follow && app.detail.is_none() => Line::from(vec![
            Span::raw(position),
            Span::styled("following new", t.ok()),
        ]),
        None => Line::from(vec![
            Span::raw(position),
            Span::styled("paused · g to follow", t.dim()),
        ]),
    };
    two_sided(
        frame,
        Rect {
            y: area.y + 1,
            height: 1,
            ..area
        },
        Line::from(second),
        right,
    );
}

/// List columns, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Time,
    Method,
    Path,
    Status,
    Flags,
    Duration,
    Req,
    Resp,
}

impl Col {
    const ALL: [Col; 8] = [
        Col::Time,
        Col::Method,
        Col::Path,
        Col::Status,
        Col::Flags,
        Col::Duration,
        Col::Req,
        Col::Resp,
    ];
    /// Dropped first to last as the terminal narrows.
    const DROP_ORDER: [Col; 5] = [Col::Resp, Col::Req, Col::Time, Col::Flags, Col::Duration];

    fn width(self) -> usize {
        match self {
            Col::Time => 8,
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

/// The columns that fit in `cols`, with the path's width.
fn columns(cols: usize) -> (Vec<Col>, usize) {
    let mut shown: Vec<Col> = Col::ALL.to_vec();
    let fixed = |shown: &[Col]| {
        MARKER + shown.iter().map(|c| c.width()).sum::<usize>() + shown.len().saturating_sub(1)
    };
    for drop in Col::DROP_ORDER {
        if cols >= fixed(&shown) + MIN_PATH {
            break;
        }
        shown.retain(|c| *c != drop);
    }
    let path = cols.saturating_sub(fixed(&shown)).max(4);
    (shown, path)
}

fn cell(col: Col, s: &ExchangeSummary, t: Theme) -> Span<'static> {
    match col {
        Col::Time => Span::styled(clock(s.received_at_ms), t.dim()),
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

fn render_list(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let (cols, path_w) = columns(usize::from(area.width));
    let width_of = |c: Col| if c == Col::Path { path_w } else { c.width() };
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

fn render_detail(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let Some(d) = &app.detail else { return };
    let tab = |label: &'static str, active: bool| {
        if active {
            Span::styled(format!("[{label}]"), t.selected())
        } else {
            Span::styled(format!(" {label} "), t.dim())
        }
    };
    let rows = usize::from(area.height.saturating_sub(1));
    let total = d.lines.len();
    let position = if total > rows {
        format!(
            " lines {}–{} of {} ",
            d.scroll + 1,
            (d.scroll + rows).min(total),
            thousands(total as u64)
        )
    } else {
        String::new()
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(t.dim())
        .title(Line::from(vec![
            Span::raw(" "),
            tab("Request", app.tab == Tab::Request),
            Span::raw(" "),
            tab("Response", app.tab == Tab::Response),
            Span::styled(format!(" {} ", text::short_id(&d.id)), t.dim()),
        ]))
        .title(Line::styled(position, t.dim()).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let body: Vec<Line<'static>> = if d.exchange.is_some() {
        d.lines.iter().skip(d.scroll).take(rows).cloned().collect()
    } else if d.missing {
        vec![Line::styled(
            "This exchange is no longer in the history.",
            t.warn(),
        )]
    } else {
        vec![Line::styled("Loading…", t.dim())]
    };
    frame.render_widget(Paragraph::new(Text::from(body)), inner);
}

fn hints(app: &App) -> &'static str {
    match (app.detail.is_some(), app.filtered.is_some()) {
        (true, _) => {
            "Tab req/resp  v view  ↑↓ scroll  n/p next/prev  r replay  e edit  c curl  Enter close  ? help"
        }
        (false, true) => {
            "Enter open  r replay  e edit  c curl  / filter  Esc clear filter  ? help  q quit"
        }
        (false, false) => "Enter open  r replay  e edit  c curl  / filter  ? help  q quit",
    }
}

fn render_footer(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let t = app.theme;
    if let Some(p) = &app.prompt {
        let mut spans = vec![
            Span::styled("/", t.key()),
            Span::raw(escape(&p.input).into_owned()),
        ];
        if let Some(err) = &p.error {
            spans.push(Span::styled(format!("  ✕ {}", escape(err)), t.error()));
        }
        let right = if p.error.is_some() {
            Line::default()
        } else {
            Line::styled("Enter apply · Esc cancel", t.dim())
        };
        two_sided(frame, area, Line::from(spans), right);
        let cursor = width(&escape(&p.input[..p.cursor]));
        let x = area.x
            + u16::try_from(1 + cursor)
                .unwrap_or(u16::MAX)
                .min(area.width.saturating_sub(1));
        frame.set_cursor_position((x, area.y));
        return;
    }
    let line = match &app.notice {
        Some(n) => Line::styled(
            format!(" {}", escape(&n.text)),
            if n.error { t.error() } else { t.ok() },
        ),
        None => Line::styled(format!(" {}", hints(app)), t.dim()),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_help(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let mut lines: Vec<Line<'static>> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<11}"), t.key()),
                Span::raw((*what).to_owned()),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::styled(
        " Filter (as `hooktunnel requests`):",
        t.bold(),
    ));
    lines.push(Line::raw("  method:POST path:/hooks/* status:4xx|error"));
    lines.push(Line::raw("  since:10m  and any text to search for"));
    lines.push(Line::default());
    lines.push(Line::styled(
        " Errors count 4xx, 5xx and failed requests.",
        t.dim(),
    ));
    lines.push(Line::styled(" Any key closes this help.", t.dim()));
    let w = area.width.min(64);
    let h = area
        .height
        .min(u16::try_from(lines.len() + 2).unwrap_or(u16::MAX));
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(Block::bordered().title(" Keys ").border_style(t.dim())),
        rect,
    );
}
