//! Rendering snapshots (TestBackend + insta), the loop over a test backend,
//! and an ignored measurement over 100k stored exchanges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use tokio::sync::mpsc;
use ulid::Ulid;

use crate::event::{AgentEvent, ConnectionState, Ready};
use crate::exchange::{Exchange, ExchangeResponse, Header as HttpHeader, SignatureVerdict};

use super::app::tests::{ch, key};
use super::app::{App, Effect, Event, Mode, Page};
use super::runtime::{Flow, Host, run_loop};
use super::view::render;

/// Ms since the epoch of the first sample: 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn ex(n: u64, method: &str, path: &str, status: Option<u16>) -> Exchange {
    Exchange {
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
fn history() -> Vec<Exchange> {
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

fn ready() -> Ready {
    Ready {
        public_url: "http://127.0.0.1:7070/t/brave-otter".into(),
        target: "http://127.0.0.1:3000".into(),
        relay: "http://127.0.0.1:7070".into(),
        embedded: true,
    }
}

/// A live app over `rows` (oldest first), sized `w`×`h`.
fn app(mode: Mode, rows: &[Exchange], w: u16, h: u16) -> App {
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
        rows.iter()
            .filter(|e| super::app::is_error(&e.summary()))
            .count() as u64,
    ));
    app
}

/// The buffer as text: one line per row, trailing spaces trimmed.
fn text(buffer: &Buffer) -> String {
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

fn draw(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).unwrap();
    terminal.draw(|f| render(app, f)).unwrap();
    terminal.backend().buffer().clone()
}

fn screen(app: &App) -> String {
    text(&draw(app))
}

/// Opens the detail of the selected row, answering the load from `rows`.
fn open_detail(app: &mut App, rows: &[Exchange]) {
    let effect = app.handle(key(crossterm::event::KeyCode::Enter));
    let Some(Effect::LoadDetail(id)) = effect else {
        panic!("no detail load: {effect:?}")
    };
    let found = rows.iter().find(|e| e.id == id).cloned().map(Box::new);
    app.handle(Event::Detail {
        id,
        exchange: found,
    });
}

#[test]
fn snapshot_empty_live() {
    let app = app(Mode::Live, &[], 100, 16);
    insta::assert_snapshot!("empty_live", screen(&app));
}

#[test]
fn snapshot_empty_inspect() {
    let app = app(Mode::Inspect, &[], 80, 10);
    insta::assert_snapshot!("empty_inspect", screen(&app));
}

#[test]
fn snapshot_list() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 120, 16);
    app.handle(ch('j'));
    insta::assert_snapshot!("list", screen(&app));
}

#[test]
fn snapshot_list_reconnecting() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 120, 8);
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
    let mut app = app(Mode::Live, &rows, 120, 30);
    open_detail(&mut app, &rows);
    insta::assert_snapshot!("detail_request", screen(&app));
}

#[test]
fn snapshot_detail_response() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 120, 30);
    open_detail(&mut app, &rows);
    app.handle(key(crossterm::event::KeyCode::Tab));
    insta::assert_snapshot!("detail_response", screen(&app));
}

#[test]
fn snapshot_detail_failed_response() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 100, 20);
    for _ in 0..2 {
        app.handle(ch('j'));
    }
    open_detail(&mut app, &rows);
    app.handle(key(crossterm::event::KeyCode::Tab));
    insta::assert_snapshot!("detail_failed_response", screen(&app));
}

#[test]
fn snapshot_detail_form_and_hex() {
    let mut form = ex(1, "POST", "/hooks/slack", Some(200));
    form.request_headers = vec![HttpHeader::new(
        "content-type",
        "application/x-www-form-urlencoded",
    )];
    form.request_body = Bytes::from_static(b"token=abc&text=hello+world&user_name=%E2%9C%93bob");
    let mut binary = ex(2, "PUT", "/upload", Some(201));
    binary.request_headers = vec![HttpHeader::new("content-type", "application/octet-stream")];
    binary.request_body = Bytes::from((0u8..=40).collect::<Vec<u8>>());
    let rows = vec![form, binary];
    let mut app = app(Mode::Inspect, &rows, 90, 26);
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
fn snapshot_narrow() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 60, 20);
    insta::assert_snapshot!("narrow_list", screen(&app));
    open_detail(&mut app, &rows);
    insta::assert_snapshot!("narrow_detail", screen(&app));
}

#[test]
fn snapshot_tiny_terminal_does_not_panic() {
    let rows = history();
    for (w, h) in [(1, 1), (10, 3), (20, 5), (30, 12)] {
        let mut app = app(Mode::Live, &rows, w, h);
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
    let mut app = app(Mode::Live, &rows, 100, 30);
    app.handle(ch('?'));
    insta::assert_snapshot!("help", screen(&app));
}

#[test]
fn snapshot_filter_prompt_and_results() {
    let rows = history();
    let mut app = app(Mode::Live, &rows, 100, 12);
    app.handle(ch('/'));
    for c in "status:4x".chars() {
        app.handle(ch(c));
    }
    app.handle(key(crossterm::event::KeyCode::Enter));
    insta::assert_snapshot!("filter_error", screen(&app));
    app.handle(key(crossterm::event::KeyCode::Backspace));
    for c in "xx".chars() {
        app.handle(ch(c));
    }
    let Some(Effect::Scan {
        generation, filter, ..
    }) = app.handle(key(crossterm::event::KeyCode::Enter))
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

/// Every captured field full of terminal escapes.
fn hostile() -> Exchange {
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
fn assert_harmless(buffer: &Buffer) {
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

#[test]
fn snapshot_hostile_escapes_are_shown_harmlessly() {
    let rows = vec![hostile()];
    let mut app = app(Mode::Live, &rows, 120, 30);
    let list = draw(&app);
    assert_harmless(&list);
    open_detail(&mut app, &rows);
    let request = draw(&app);
    assert_harmless(&request);
    app.handle(ch('v'));
    let raw = draw(&app);
    assert_harmless(&raw);
    app.handle(key(crossterm::event::KeyCode::Tab));
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
    let mut app = app(Mode::Live, &rows, 100, 14);
    let new = ex(9, "POST", "/hooks/new-arrival", Some(201));
    app.handle(Event::Agent(AgentEvent::Exchange(new.summary())));
    let s = screen(&app);
    let first_row = s.lines().nth(3).unwrap();
    assert!(
        first_row.starts_with("▶") && first_row.contains("/hooks/new-arrival"),
        "{s}"
    );
}

/// Answers effects from a list of exchanges (oldest first), in process.
struct FakeHost {
    rows: Vec<Exchange>,
    events: mpsc::UnboundedSender<Event>,
    performed: Vec<Effect>,
}

impl Host<TestBackend> for FakeHost {
    async fn perform(
        &mut self,
        effect: Effect,
        _terminal: &mut Terminal<TestBackend>,
    ) -> anyhow::Result<Flow> {
        self.performed.push(effect.clone());
        let newest_first: Vec<_> = self.rows.iter().rev().collect();
        match effect {
            Effect::Quit => return Ok(Flow::Quit),
            Effect::LoadPage {
                offset,
                limit,
                epoch,
            } => {
                let rows = newest_first
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|e| e.summary())
                    .collect();
                let _ = self.events.send(Event::Page(Page {
                    offset,
                    limit,
                    epoch,
                    rows,
                }));
            }
            Effect::LoadDetail(id) => {
                let exchange = self.rows.iter().find(|e| e.id == id).cloned().map(Box::new);
                let _ = self.events.send(Event::Detail { id, exchange });
            }
            Effect::Replay(id) => {
                let mut copy = self.rows.iter().find(|e| e.id == id).cloned().unwrap();
                copy.id = Ulid::from_parts(T0 + 99_000, 1);
                copy.replay_of = Some(id);
                self.rows.push(copy.clone());
                let _ = self.events.send(Event::Replayed {
                    original: id,
                    result: Ok(copy.summary()),
                    note: None,
                });
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

#[tokio::test]
async fn loop_runs_over_a_test_backend() {
    let rows = history();
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut app = App::new(Mode::Inspect, false, T0);
    app.load(
        rows.len() as u64,
        rows.iter().rev().map(Exchange::summary).collect(),
    );
    let mut host = FakeHost {
        rows: rows.clone(),
        events: tx.clone(),
        performed: Vec::new(),
    };
    for ev in [
        ch('j'),
        key(crossterm::event::KeyCode::Enter),
        ch('r'),
        Event::Tick { now_ms: T0 + 100 },
    ] {
        tx.send(ev).unwrap();
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let quitter = tx.clone();
    tokio::spawn(async move {
        let _ = done_rx.await;
        let _ = quitter.send(ch('q'));
    });
    let _ = done_tx.send(());
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        run_loop(&mut terminal, &mut app, &mut rx, &mut host),
    )
    .await
    .expect("the loop ends on q")
    .unwrap();
    assert_eq!(host.performed[0], Effect::LoadDetail(rows[5].id));
    assert!(host.performed.contains(&Effect::Replay(rows[5].id)));
    assert_eq!(host.performed.last(), Some(&Effect::Quit));
    assert_eq!(app.len(), rows.len() + 1);
    assert_eq!(app.row(0).unwrap().replay_of, Some(rows[5].id));
    let s = text(terminal.backend().buffer());
    assert!(s.contains("replayed"), "{s}");
    assert!(s.contains("[Request]"), "{s}");
}

/// Times opening and scrolling a 100k-row history through the store, as the
/// runtime does it. Run with `cargo test --release --lib tui::tests::measure -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; slow in debug builds"]
fn measure_100k_history() {
    use std::time::{Duration, Instant};

    use crate::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let mut store = Store::open(&db).unwrap();
    let t = Instant::now();
    let template = ex(0, "POST", "/hooks/github", Some(200));
    for chunk in 0..100u64 {
        let batch: Vec<Exchange> = (0..1000u64)
            .map(|i| {
                let n = chunk * 1000 + i;
                let mut e = template.clone();
                e.id = Ulid::from_parts(T0 + n, u128::from(n));
                e.received_at_ms = T0 + n;
                e.path = format!("/hooks/{n}");
                e.request_body = Bytes::from(vec![b'x'; 1024]);
                e.response.as_mut().unwrap().status = if n % 7 == 0 { 500 } else { 200 };
                e
            })
            .collect();
        store.insert_many(&batch).unwrap();
    }
    eprintln!("insert 100k rows (1 KiB bodies): {:?}", t.elapsed());
    drop(store);

    // Opening: what `run` does before the first frame, then the first frame.
    let t = Instant::now();
    let store = Store::open(&db).unwrap();
    let total = store.count().unwrap();
    let newest = store.list(super::app::PAGE, 0).unwrap();
    let mut app = App::new(Mode::Inspect, false, T0);
    app.handle(Event::Resize {
        width: 120,
        height: 40,
    });
    app.load(total, newest);
    let buffer = draw(&app);
    let open = t.elapsed();
    assert!(text(&buffer).contains("100,000 requests"));
    eprintln!("open (store open + count + first page + first frame): {open:?}");

    // Scrolling: keys through the app, pages from the store, a frame per key.
    let mut loads: Vec<Duration> = Vec::new();
    let mut frames = Duration::ZERO;
    let mut keys = 0u32;
    let press = |app: &mut App, ev: Event, loads: &mut Vec<Duration>| {
        let mut effect = app.handle(ev);
        while let Some(e) = effect {
            if let Effect::LoadPage {
                offset,
                limit,
                epoch,
            } = e
            {
                let t = Instant::now();
                let rows = store.list(limit, offset).unwrap();
                loads.push(t.elapsed());
                app.handle(Event::Page(Page {
                    offset,
                    limit,
                    epoch,
                    rows,
                }));
            }
            effect = app.next_effect();
        }
    };
    let t = Instant::now();
    for _ in 0..5_000 {
        press(&mut app, ch('j'), &mut loads);
        let f = Instant::now();
        draw(&app);
        frames += f.elapsed();
        keys += 1;
    }
    let scroll = t.elapsed();
    eprintln!(
        "j ×5000 (one row each): {scroll:?} total, {} page loads, mean frame {:?}",
        loads.len(),
        frames / keys
    );
    for (name, ev) in [("G (to the oldest)", ch('G')), ("g (back on top)", ch('g'))] {
        loads.clear();
        let t = Instant::now();
        press(&mut app, ev, &mut loads);
        draw(&app);
        eprintln!(
            "{name}: {:?} including {} page load(s) {:?}",
            t.elapsed(),
            loads.len(),
            loads
        );
    }
    loads.clear();
    press(&mut app, ch('G'), &mut loads);
    let t = Instant::now();
    for _ in 0..2_000 {
        press(&mut app, ch('k'), &mut loads);
        draw(&app);
    }
    let max = loads.iter().max().copied().unwrap_or_default();
    eprintln!(
        "k ×2000 from the bottom: {:?} total, {} page loads, slowest {max:?}",
        t.elapsed(),
        loads.len()
    );
    assert!(app.window().rows.len() <= super::app::MAX_WINDOW);
    assert!(open < Duration::from_secs(1), "open took {open:?}");

    // Background work: the header's error count and filter scans.
    let t = Instant::now();
    let errors =
        super::runtime::count_errors(&db, Some(Ulid::from_parts(T0 + 99_999, 99_999))).unwrap();
    eprintln!(
        "error count over 100k (background): {errors} in {:?}",
        t.elapsed()
    );
    assert_eq!(errors, 14_286);
    for query in ["status:5xx", "path:/hooks/9999*", "xxxxxxxxxx", "octocat"] {
        let filter = crate::filter::Filter::parse(query, T0).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let current = std::sync::atomic::AtomicU64::new(1);
        let t = Instant::now();
        super::runtime::scan(&db, 1, &filter, None, &current, &tx).unwrap();
        let elapsed = t.elapsed();
        let (mut matches, mut first) = (0, None);
        while let Ok(Event::FilterChunk { rows, .. }) = rx.try_recv() {
            if first.is_none() && !rows.is_empty() {
                first = Some(());
            }
            matches += rows.len();
        }
        eprintln!("filter scan {query:?} over 100k: {matches} matches in {elapsed:?}");
    }
}
