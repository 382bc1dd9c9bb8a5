//! Drawing: `render(&App, &mut Frame)`, a pure function of the state.
//!
//! Every captured string is escaped here or in [`super::body`] before it is
//! put in the frame; nothing reads the store or the network.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::sanitize::escape;

use super::app::App;
use super::body::Tab;
use super::keymap::{self, Context};
use super::layout::layout;
use super::status::{Link, Mode};
use super::text::{self, thousands, width};
use super::tunnels::MAX_COLUMN;

mod list;
mod stats;

/// `1 request`, `2 requests`, with thousands separators.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// Draws the whole inspector.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let areas = layout(area, app.detail.is_some());
    render_header(app, frame, areas.header);
    if let Some(view) = &app.stats {
        if let Some(r) = super::stats::stats_area(area) {
            stats::render_stats(app, view, frame, r);
        }
    } else if let Some(r) = areas.list {
        list::render_list(app, frame, r);
    }
    if let Some(r) = areas.detail.filter(|_| app.stats.is_none()) {
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
            if !h.more.is_empty() {
                let names: Vec<_> = h.more.iter().map(|n| escape(n)).collect();
                first.push(Span::styled(
                    format!("  +{} more: {}", h.more.len(), names.join(", ")),
                    t.dim(),
                ));
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
        if let Some(web) = &app.header.web_url {
            second.push(Span::styled(" · web ", t.dim()));
            second.push(Span::raw(escape(web).into_owned()));
        }
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
    let mut title = vec![
        Span::raw(" "),
        tab("Request", app.tab == Tab::Request),
        Span::raw(" "),
        tab("Response", app.tab == Tab::Response),
        Span::styled(format!(" {} ", text::short_id(&d.id)), t.dim()),
    ];
    // With several tunnels in the history, say which one this came through.
    if let Some(ex) = d.exchange.as_ref().filter(|_| app.tunnels.several()) {
        title.push(Span::styled("tunnel ", t.dim()));
        title.push(Span::styled(
            format!("{} ", text::truncate(&escape(&ex.tunnel), MAX_COLUMN)),
            t.key(),
        ));
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(t.dim())
        .title(Line::from(title))
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
        None => {
            let context = if app.stats.is_some() {
                Context::Stats
            } else if app.detail.is_some() {
                Context::Detail
            } else {
                Context::List
            };
            let cols = usize::from(area.width.saturating_sub(1));
            let hints = keymap::footer(context, app.filtered.is_some(), cols);
            Line::styled(format!(" {hints}"), t.dim())
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_help(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let mut lines: Vec<Line<'static>> = keymap::help_rows()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<11}"), t.key()),
                Span::raw(what),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::styled(
        " Filter (as `hooktunnel requests`):",
        t.bold(),
    ));
    lines.push(Line::raw("  method:POST path:/hooks/* status:4xx|error"));
    lines.push(Line::raw("  since:10m tunnel:NAME (several: any of them)"));
    lines.push(Line::raw("  and any text to search for"));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use crossterm::event::KeyCode;

    use super::*;
    use crate::event::{AgentEvent, ConnectionState};
    use crate::exchange::{Exchange, Header as HttpHeader};
    use crate::tui::events::{Effect, Event};
    use crate::tui::testing::{
        T0, assert_harmless, ch, draw, ex, history, hostile, key, open_detail, sample_app, screen,
        text,
    };

    #[test]
    fn snapshot_empty_live() {
        let app = sample_app(Mode::Live, &[], 100, 16);
        insta::assert_snapshot!("empty_live", screen(&app));
    }

    #[test]
    fn snapshot_empty_inspect() {
        let app = sample_app(Mode::Inspect, &[], 80, 10);
        insta::assert_snapshot!("empty_inspect", screen(&app));
    }

    #[test]
    fn snapshot_list() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 16);
        app.handle(ch('j'));
        insta::assert_snapshot!("list", screen(&app));
    }

    #[test]
    fn snapshot_list_reconnecting() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 8);
        app.handle(Event::Agent(AgentEvent::Connection(
            ConnectionState::Reconnecting {
                attempt: 3,
                retry_at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(T0 + 14_200),
                reason: "connection reset".into(),
            },
        )));
        insta::assert_snapshot!("list_reconnecting", screen(&app));
    }

    #[test]
    fn snapshot_detail_request() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 30);
        open_detail(&mut app, &rows);
        insta::assert_snapshot!("detail_request", screen(&app));
    }

    #[test]
    fn snapshot_detail_response() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 30);
        open_detail(&mut app, &rows);
        app.handle(key(KeyCode::Tab));
        insta::assert_snapshot!("detail_response", screen(&app));
    }

    #[test]
    fn snapshot_detail_failed_response() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 100, 20);
        for _ in 0..2 {
            app.handle(ch('j'));
        }
        open_detail(&mut app, &rows);
        app.handle(key(KeyCode::Tab));
        insta::assert_snapshot!("detail_failed_response", screen(&app));
    }

    #[test]
    fn snapshot_detail_truncated() {
        let mut big = ex(1, "POST", "/upload", Some(200));
        big.request_truncated = Some(crate::capture::Truncation {
            total_bytes: 1_288_490_189,
            sha256: format!("ab12{}", "0".repeat(60)),
            limit: 10 * 1024 * 1024,
        });
        let rows = vec![big];
        let mut app = sample_app(Mode::Inspect, &rows, 100, 24);
        open_detail(&mut app, &rows);
        insta::assert_snapshot!("detail_truncated", screen(&app));
    }

    #[test]
    fn snapshot_detail_websocket_messages() {
        // Frames as recorded: masked from the sender, plain from the app.
        let frame = |opcode: u8, payload: &[u8], mask: Option<[u8; 4]>| {
            crate::websocket::tests::frame(true, opcode, payload, mask)
        };
        let mut ws = ex(1, "GET", "/socket", Some(101));
        ws.request_headers = vec![
            HttpHeader::new("connection", "upgrade"),
            HttpHeader::new("upgrade", "websocket"),
        ];
        let key = Some([9, 8, 7, 6]);
        let mut sent = frame(0x1, b"{\"subscribe\":\"orders\"}", key);
        sent.extend(frame(0x9, b"", key));
        sent.extend(frame(0x8, &[0x03, 0xe8], key));
        ws.request_body = Bytes::from(sent);
        let mut received = frame(0x1, b"{\"order\":42}", None);
        received.extend(frame(0x2, &[0xde, 0xad, 0xbe, 0xef], None));
        received.extend(frame(0xA, b"", None));
        if let Some(r) = ws.response.as_mut() {
            r.body = Bytes::from(received);
        }
        let rows = vec![ws];
        let mut app = sample_app(Mode::Inspect, &rows, 90, 40);
        open_detail(&mut app, &rows);
        let screen = screen(&app);
        assert!(
            screen.contains("WebSocket messages, sender → app (3)"),
            "{screen}"
        );
        assert!(screen.contains("deadbeef"), "{screen}");
        insta::assert_snapshot!("detail_websocket", screen);
    }

    #[test]
    fn snapshot_detail_form_and_hex() {
        let mut form = ex(1, "POST", "/hooks/slack", Some(200));
        form.request_headers = vec![HttpHeader::new(
            "content-type",
            "application/x-www-form-urlencoded",
        )];
        form.request_body =
            Bytes::from_static(b"token=abc&text=hello+world&user_name=%E2%9C%93bob");
        let mut binary = ex(2, "PUT", "/upload", Some(201));
        binary.request_headers = vec![HttpHeader::new("content-type", "application/octet-stream")];
        binary.request_body = Bytes::from((0u8..=40).collect::<Vec<u8>>());
        let rows = vec![form, binary];
        let mut app = sample_app(Mode::Inspect, &rows, 90, 26);
        app.handle(ch('j'));
        open_detail(&mut app, &rows);
        let form_screen = screen(&app);
        let id = app.handle(ch('p'));
        let Some(Effect::LoadDetail(id)) = id else {
            panic!("{id:?}")
        };
        app.handle(Event::Detail {
            id,
            exchange: Some(Box::new(rows[1].clone())),
        });
        insta::assert_snapshot!("detail_form", form_screen);
        insta::assert_snapshot!("detail_hex", screen(&app));
    }

    #[test]
    fn snapshot_detail_secrets_masked_then_revealed() {
        let mut secret = ex(1, "POST", "/hooks/secret", Some(200));
        secret.request_headers = vec![
            HttpHeader::new("content-type", "application/json"),
            HttpHeader::new("authorization", "Bearer sk_live_51HxYzAbCdEf3f9a"),
            HttpHeader::new("cookie", "session=0123456789abcdefWXYZ; theme=dark"),
            HttpHeader::new("x-api-key", "abc123"),
            HttpHeader::new("x-gitlab-token", "glpat-0123456789abcdef"),
        ];
        if let Some(r) = secret.response.as_mut() {
            r.headers
                .push(HttpHeader::new("set-cookie", "id=a3fWa; Path=/; HttpOnly"));
        }
        let rows = vec![secret];
        let mut app = sample_app(Mode::Inspect, &rows, 100, 26);
        open_detail(&mut app, &rows);
        let masked = screen(&app);
        for real in [
            "sk_live",
            "0123456789abcdefWXYZ",
            "dark",
            "abc123",
            "glpat-",
        ] {
            assert!(!masked.contains(real), "{real} shows:\n{masked}");
        }
        app.handle(key(KeyCode::Tab));
        let response = screen(&app);
        assert!(!response.contains("a3fWa"), "{response}");
        app.handle(key(KeyCode::Tab));
        app.handle(ch('m'));
        assert!(!app.masks_secrets());
        let revealed = screen(&app);
        assert!(
            revealed.contains("authorization: Bearer sk_live_51HxYzAbCdEf3f9a"),
            "{revealed}"
        );
        // Display only: the exchange itself was never changed.
        let held = &app
            .detail()
            .unwrap()
            .exchange
            .as_ref()
            .unwrap()
            .request_headers;
        assert_eq!(held[1].value, "Bearer sk_live_51HxYzAbCdEf3f9a".as_bytes());
        app.handle(ch('m'));
        assert!(app.masks_secrets());
        assert!(screen(&app).contains("authorization: Bearer ••••••••3f9a"));
        insta::assert_snapshot!("detail_secrets_masked", masked);
        insta::assert_snapshot!("detail_secrets_masked_response", response);
        insta::assert_snapshot!("detail_secrets_revealed", revealed);
    }

    #[test]
    fn masking_can_be_off_from_the_start() {
        let mut secret = ex(1, "POST", "/hooks/secret", Some(200));
        secret
            .request_headers
            .push(HttpHeader::new("x-api-key", "abc123"));
        let rows = vec![secret];
        let mut app = sample_app(Mode::Inspect, &rows, 100, 26);
        app.set_mask_secrets(false);
        open_detail(&mut app, &rows);
        let shown = screen(&app);
        assert!(shown.contains("x-api-key: abc123"), "{shown}");
        assert!(shown.contains("secrets shown · m: mask"), "{shown}");
    }

    /// The sample history as if served by three tunnels of one agent.
    fn three_tunnels() -> Vec<Exchange> {
        let mut rows = history();
        for (i, e) in rows.iter_mut().enumerate() {
            e.tunnel = ["shop", "billing", "payments-sandbox-eu"][i % 3].into();
        }
        rows
    }

    #[test]
    fn snapshot_list_of_several_tunnels() {
        let rows = three_tunnels();
        let mut app = sample_app(Mode::Live, &rows, 120, 12);
        app.handle(ch('j'));
        let shown = screen(&app);
        // The longest name is cut to the column's bound.
        assert!(shown.contains(" payments-sandbo… POST"), "{shown}");
        insta::assert_snapshot!("list_tunnels", shown);
        // Narrow: other columns drop first, the tunnel stays.
        let app = sample_app(Mode::Live, &rows, 60, 12);
        insta::assert_snapshot!("narrow_list_tunnels", screen(&app));
    }

    #[test]
    fn snapshot_detail_names_the_tunnel_when_there_are_several() {
        let rows = three_tunnels();
        let mut app = sample_app(Mode::Live, &rows, 120, 24);
        open_detail(&mut app, &rows);
        insta::assert_snapshot!("detail_tunnels", screen(&app));
        // One tunnel: no column and no name in the detail (as before).
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 24);
        open_detail(&mut app, &rows);
        let shown = screen(&app);
        assert!(
            !shown.contains("TUNNEL") && !shown.contains("tunnel demo"),
            "{shown}"
        );
    }

    #[test]
    fn an_agent_serving_several_tunnels_shows_them_from_the_start() {
        let mut app = sample_app(Mode::Live, &[], 120, 8);
        let mut ready = crate::tui::testing::ready();
        ready.more = vec![crate::event::TunnelUrl {
            name: "billing".into(),
            public_url: "http://127.0.0.1:7070/t/billing".into(),
            target: "http://127.0.0.1:4000".into(),
        }];
        app.handle(Event::Agent(AgentEvent::Ready(ready)));
        assert_eq!(app.tunnels().names(), ["brave-otter", "billing"]);
        let shown = screen(&app);
        assert!(
            shown.contains("→ http://127.0.0.1:3000  +1 more: billing"),
            "{shown}"
        );
        assert!(shown.contains("TIME     TUNNEL"), "{shown}");
    }

    #[test]
    fn a_second_tunnel_arriving_live_adds_the_column() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 12);
        assert!(!screen(&app).contains("TUNNEL"));
        let mut other = ex(9, "POST", "/hooks/other", Some(200));
        other.tunnel = "billing".into();
        app.handle(Event::Agent(AgentEvent::Exchange(other.summary())));
        let shown = screen(&app);
        assert!(shown.contains("TIME     TUNNEL  METHOD"), "{shown}");
        assert!(shown.contains("billing POST    /hooks/other"), "{shown}");
        assert!(shown.contains(" demo    POST"), "{shown}");
        // The start-up walk of the history may find them too.
        let mut app = sample_app(Mode::Inspect, &rows, 120, 12);
        app.handle(Event::Tunnels(vec!["demo".into(), "old-one".into()]));
        assert!(screen(&app).contains("TUNNEL"));
    }

    #[test]
    fn snapshot_narrow() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 60, 20);
        insta::assert_snapshot!("narrow_list", screen(&app));
        open_detail(&mut app, &rows);
        insta::assert_snapshot!("narrow_detail", screen(&app));
    }

    #[test]
    fn snapshot_tiny_terminal_does_not_panic() {
        let rows = history();
        for (w, h) in [(1, 1), (10, 3), (20, 5), (30, 12)] {
            let mut app = sample_app(Mode::Live, &rows, w, h);
            screen(&app);
            open_detail(&mut app, &rows);
            screen(&app);
            app.handle(ch('?'));
            screen(&app);
        }
    }

    #[test]
    fn snapshot_help() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 100, 30);
        app.handle(ch('?'));
        insta::assert_snapshot!("help", screen(&app));
    }

    #[test]
    fn snapshot_filter_prompt_and_results() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 100, 12);
        app.handle(ch('/'));
        for c in "status:4x".chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Enter));
        insta::assert_snapshot!("filter_error", screen(&app));
        app.handle(key(KeyCode::Backspace));
        for c in "xx".chars() {
            app.handle(ch(c));
        }
        let Some(Effect::Scan {
            generation, filter, ..
        }) = app.handle(key(KeyCode::Enter))
        else {
            panic!("no scan")
        };
        let matches: Vec<_> = rows
            .iter()
            .rev()
            .map(Exchange::summary)
            .filter(|s| filter.matches_summary(s) == Some(true))
            .collect();
        app.handle(Event::FilterChunk {
            generation,
            rows: matches,
            scanned: 7,
            done: true,
        });
        insta::assert_snapshot!("filter_results", screen(&app));
    }

    #[test]
    fn snapshot_hostile_escapes_are_shown_harmlessly() {
        let rows = vec![hostile()];
        let mut app = sample_app(Mode::Live, &rows, 120, 30);
        let list = draw(&app);
        assert_harmless(&list);
        open_detail(&mut app, &rows);
        let request = draw(&app);
        assert_harmless(&request);
        app.handle(ch('v'));
        let raw = draw(&app);
        assert_harmless(&raw);
        app.handle(key(KeyCode::Tab));
        let response_raw = draw(&app);
        assert_harmless(&response_raw);
        app.handle(ch('v'));
        assert_harmless(&draw(&app));
        app.handle(ch('v'));
        let response = draw(&app);
        assert_harmless(&response);
        app.handle(Event::Notice {
            text: "notice \u{1b}[2J".into(),
            error: true,
        });
        assert_harmless(&draw(&app));
        insta::assert_snapshot!("hostile_request", text(&request));
        insta::assert_snapshot!("hostile_request_raw", text(&raw));
        insta::assert_snapshot!("hostile_response", text(&response));
        insta::assert_snapshot!("hostile_response_raw", text(&response_raw));
    }

    #[test]
    fn follow_mode_shows_new_rows_on_screen() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 100, 14);
        let new = ex(9, "POST", "/hooks/new-arrival", Some(201));
        app.handle(Event::Agent(AgentEvent::Exchange(new.summary())));
        let s = screen(&app);
        let first_row = s.lines().nth(3).unwrap();
        assert!(
            first_row.starts_with("▶") && first_row.contains("/hooks/new-arrival"),
            "{s}"
        );
    }
}
