//! Fixtures shared by the TUI's tests: summaries and exchanges, apps built
//! over them, key events, and drawing to a `TestBackend`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use bytes::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ulid::Ulid;

use crate::event::{AgentEvent, Ready};
use crate::exchange::{
    Exchange, ExchangeResponse, ExchangeSummary, Header as HttpHeader, SignatureVerdict,
};

use super::app::{App, is_error};
use super::events::{Effect, Event};
use super::status::Mode;
use super::view::render;
use super::window::PAGE;

/// A stats report with one `POST /pN` row per path, `rows` of them.
pub(crate) fn stats_report(rows: usize) -> Box<crate::stats::Report> {
    use crate::stats::{Aggregator, Dimension, Sample, Window};
    let mut agg = Aggregator::new(Window::new(0, 60, 3), &[Dimension::Path], 100);
    let paths: Vec<String> = (0..rows).map(|i| format!("/p{i}")).collect();
    for path in &paths {
        agg.add(&Sample {
            received_at_ms: 1,
            method: "POST",
            path_pattern: path,
            provider: None,
            event_type: None,
            status: Some(200),
            duration_us: 1000,
            cause: None,
            sig_valid: None,
            queued: false,
            replay: false,
            retried: false,
        });
    }
    Box::new(agg.finish())
}

pub(crate) fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent {
        code,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    })
}

pub(crate) fn ch(c: char) -> Event {
    key(KeyCode::Char(c))
}

/// Summaries with increasing ids; `row(n)` is older than `row(n + 1)`.
pub(crate) fn row(n: u64) -> ExchangeSummary {
    ExchangeSummary {
        id: Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)),
        tunnel: "demo".into(),
        received_at_ms: 1_700_000_000_000 + n * 1000,
        method: if n.is_multiple_of(3) {
            "GET".into()
        } else {
            "POST".into()
        },
        path: format!("/hooks/{n}"),
        status: Some(if n.is_multiple_of(5) { 500 } else { 200 }),
        duration_ms: 1.5,
        request_bytes: 10,
        response_bytes: 2,
        error: None,
        replay_of: None,
        queued: false,
        signature: None,
    }
}

/// The newest-first page of a history of `total` rows `row(0..total)`.
pub(crate) fn page(total: u64, offset: usize, limit: usize) -> Vec<ExchangeSummary> {
    (0..total).rev().skip(offset).take(limit).map(row).collect()
}

pub(crate) fn app_with(total: u64) -> App {
    let mut app = App::new(Mode::Inspect, false, 1_700_000_100_000);
    app.handle(Event::Resize {
        width: 100,
        height: 30,
    });
    app.load(total, page(total, 0, PAGE));
    app
}

/// Feeds events, answering page loads from a history of `total` rows.
pub(crate) fn drive(
    app: &mut App,
    total: u64,
    events: impl IntoIterator<Item = Event>,
) -> Vec<Effect> {
    let mut others = Vec::new();
    let mut queue: VecDeque<Event> = events.into_iter().collect();
    while let Some(ev) = queue.pop_front() {
        let mut effect = app.handle(ev);
        while let Some(e) = effect {
            match e {
                Effect::LoadPage(request) => {
                    queue.push_back(request.answer(page(total, request.offset, request.limit)));
                }
                other => others.push(other),
            }
            effect = app.next_effect();
        }
    }
    others
}

/// Ms since the epoch of the first sample: 2023-11-14T22:13:20Z.
pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) fn ex(n: u64, method: &str, path: &str, status: Option<u16>) -> Exchange {
    Exchange {
        request_truncated: None,
        capture_degraded: false,
        attempts: 1,
        id: Ulid::from_parts(T0 + n * 1000, u128::from(n) + 1),
        tunnel: "demo".into(),
        received_at_ms: T0 + n * 1000,
        method: method.into(),
        path: path.into(),
        target: "http://127.0.0.1:3000".into(),
        request_headers: vec![
            HttpHeader::new("content-type", "application/json"),
            HttpHeader::new("x-github-event", "push"),
        ],
        request_body: Bytes::from_static(br#"{"action":"opened","number":42,"ok":true,"tags":["a","b"],"sender":{"login":"octocat"}}"#),
        response: status.map(|status| ExchangeResponse {
            truncated: None,
            status,
            headers: vec![HttpHeader::new("content-type", "text/plain")],
            body: Bytes::from_static(b"ok\n"),
        }),
        duration_us: 1_234 + n * 10_000,
        error: status.is_none().then(|| "connection refused (is the app running on 127.0.0.1:3000?)".to_owned()),
        replay_of: None,
        queued: false,
        peer: Some("203.0.113.7:51000".into()),
        public_url: Some(format!("http://127.0.0.1:7070/t/demo{path}")),
        signature: None,
    }
}

/// A small varied history, oldest first.
pub(crate) fn history() -> Vec<Exchange> {
    let mut v = vec![
        ex(0, "POST", "/hooks/github", Some(200)),
        ex(1, "POST", "/hooks/stripe?livemode=false", Some(400)),
        ex(2, "GET", "/health", Some(204)),
        ex(3, "POST", "/hooks/github", Some(500)),
        ex(4, "DELETE", "/api/items/7", None),
        ex(
            5,
            "POST",
            "/hooks/very/long/path/that/goes/on/and/on/and/on/with/segments?and=a&long=query&string=too",
            Some(302),
        ),
        ex(6, "POST", "/hooks/github", Some(200)),
    ];
    v[1].signature = Some(SignatureVerdict {
        provider: "stripe".into(),
        valid: false,
        reason: Some("timestamp outside tolerance".into()),
    });
    v[3].queued = true;
    v[6].replay_of = Some(v[0].id);
    v[6].signature = Some(SignatureVerdict {
        provider: "github".into(),
        valid: true,
        reason: None,
    });
    v
}

pub(crate) fn ready() -> Ready {
    Ready {
        public_url: "http://127.0.0.1:7070/t/brave-otter".into(),
        target: "http://127.0.0.1:3000".into(),
        relay: "http://127.0.0.1:7070".into(),
        embedded: true,
        web_url: Some("http://127.0.0.1:4040".into()),
        more: Vec::new(),
    }
}

/// A live app over `rows` (oldest first), sized `w`×`h`.
pub(crate) fn sample_app(mode: Mode, rows: &[Exchange], w: u16, h: u16) -> App {
    let mut app = App::new(mode, false, T0 + 10_000);
    app.handle(Event::Resize {
        width: w,
        height: h,
    });
    if mode == Mode::Live {
        app.handle(Event::Agent(AgentEvent::Ready(ready())));
    }
    let newest: Vec<_> = rows.iter().rev().map(Exchange::summary).collect();
    app.load(newest.len() as u64, newest);
    app.handle(Event::HistoryErrors(
        rows.iter().filter(|e| is_error(&e.summary())).count() as u64,
    ));
    app
}

/// The buffer as text: one line per row, trailing spaces trimmed.
pub(crate) fn text(buffer: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..buffer.area.width {
            let cell = &buffer[(x, y)];
            if skip == 0 {
                line.push_str(cell.symbol());
            }
            skip = std::cmp::max(skip, ratatui::text::Span::raw(cell.symbol()).width())
                .saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn draw(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).unwrap();
    terminal.draw(|f| render(app, f)).unwrap();
    terminal.backend().buffer().clone()
}

pub(crate) fn screen(app: &App) -> String {
    text(&draw(app))
}

/// Opens the detail of the selected row, answering the load from `rows`.
pub(crate) fn open_detail(app: &mut App, rows: &[Exchange]) {
    let effect = app.handle(key(KeyCode::Enter));
    let Some(Effect::LoadDetail(id)) = effect else {
        panic!("no detail load: {effect:?}")
    };
    let found = rows.iter().find(|e| e.id == id).cloned().map(Box::new);
    app.handle(Event::Detail {
        id,
        exchange: found,
    });
}

/// Every captured field full of terminal escapes.
pub(crate) fn hostile() -> Exchange {
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mRED\u{9b}31m\u{202e}txt.exe\u{0}\r";
    let mut e = ex(1, "PO\u{1b}[5mST", &format!("/hooks/{evil}"), Some(200));
    e.request_headers = vec![
        HttpHeader::new("content-type", "text/plain"),
        HttpHeader::new(format!("x-{evil}"), evil.as_bytes().to_vec()),
        HttpHeader::new("x-bytes", vec![0xff, 0x1b, b'[', b'H', 0x9b]),
    ];
    e.request_body = Bytes::from(format!(
        "line one {evil}\n\u{1b}]52;c;ZXZpbA==\u{7}clipboard\n\u{1b}P+q544e\u{1b}\\dcs\n\ttabbed\u{85}next"
    ));
    e.response = Some(ExchangeResponse {
        truncated: None,
        status: 200,
        headers: vec![HttpHeader::new("x-evil", evil.as_bytes().to_vec())],
        body: Bytes::from(
            format!("{{\"k{evil}\":\"v{evil}\"}}")
                .replace('\u{0}', "")
                .replace('\r', ""),
        ),
    });
    e.error = Some(format!("oops {evil}"));
    e
}

/// No cell may hold a character a terminal would act on.
pub(crate) fn assert_harmless(buffer: &Buffer) {
    for cell in &buffer.content {
        for c in cell.symbol().chars() {
            let u = u32::from(c);
            assert!(
                !(u < 0x20
                    || (0x7f..=0x9f).contains(&u)
                    || (0x202a..=0x202e).contains(&u)
                    || (0x2066..=0x2069).contains(&u)),
                "control character {u:#x} on screen"
            );
        }
    }
}
