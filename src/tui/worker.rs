//! Store reads off the loop: a thread that owns a store connection and
//! answers [`Job`]s with events, and the background scans (filter matches,
//! the header's error count), each on its own connection.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use crate::exchange::{Exchange, ExchangeSummary};
use crate::filter::Filter;
use crate::store::{Direction, Store};

use crate::stats::{Aggregator, Dimension, Report, Window};

use super::app::is_error;
use super::events::{Event, PageRequest};
use super::stats::{STATS_BUCKETS, STATS_WINDOW_MS};
use super::text::short_id;
use super::tunnels::Tunnels;

/// Rows per section in the stats view.
const STATS_TOP: usize = 20;
/// Rows per chunk when a filter scans summaries.
const SCAN_CHUNK: usize = 5_000;
/// A text search reports progress every this many rows.
const GREP_PROGRESS: u64 = 500;

/// Work for the store thread.
pub(super) enum Job {
    /// A page of summaries; answers [`Event::Page`].
    Page(PageRequest),
    /// One exchange for the detail; answers [`Event::Detail`].
    Detail(Ulid),
    /// One exchange for the caller (replay, curl, editor).
    Get(Ulid, oneshot::Sender<Result<Option<Exchange>, String>>),
    /// Stores a replay's result; answers [`Event::Replayed`].
    InsertReplay {
        original: Ulid,
        exchange: Box<Exchange>,
        note: Option<String>,
    },
    /// The newest rows; answers [`Event::Polled`].
    Poll,
    /// The stats view's report as of `now_ms`; answers [`Event::Stats`].
    Stats { now_ms: u64 },
    /// Matches a live row in full; answers [`Event::LiveChecked`].
    CheckLive {
        generation: u64,
        summary: Box<ExchangeSummary>,
        filter: Box<Filter>,
        attempt: u32,
    },
}

/// A thread that owns a store connection and answers jobs with events.
#[derive(Clone)]
pub(super) struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread; it stops when every sender is gone or the loop's
    /// channel closes.
    pub(super) fn spawn(
        mut store: Store,
        events: mpsc::UnboundedSender<Event>,
    ) -> anyhow::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let again = jobs.clone();
        std::thread::Builder::new()
            .name("hooktunnel-tui-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let event = serve(&mut store, job, &again);
                    if let Some(event) = event
                        && events.send(event).is_err()
                    {
                        break;
                    }
                }
            })
            .context("cannot start the history reader")?;
        Ok(Self { jobs })
    }

    /// Queues a job.
    pub(super) fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Loads one exchange.
    pub(super) async fn get(&self, id: Ulid) -> anyhow::Result<Exchange> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Get(id, tx));
        match rx.await {
            Ok(Ok(Some(ex))) => Ok(ex),
            Ok(Ok(None)) => anyhow::bail!("{} is no longer in the history", short_id(&id)),
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(_) => anyhow::bail!("the history reader stopped"),
        }
    }
}

fn serve(store: &mut Store, job: Job, again: &std::sync::mpsc::Sender<Job>) -> Option<Event> {
    match job {
        Job::Page(request) => Some(match store.list(request.limit, request.offset) {
            Ok(rows) => request.answer(rows),
            Err(e) => Event::LoadFailed(e.to_string()),
        }),
        Job::Detail(id) => Some(match store.get(&id) {
            Ok(ex) => Event::Detail {
                id,
                exchange: ex.map(Box::new),
            },
            Err(e) => Event::LoadFailed(e.to_string()),
        }),
        Job::Get(id, reply) => {
            let _ = reply.send(store.get(&id).map_err(|e| e.to_string()));
            None
        }
        Job::InsertReplay {
            original,
            exchange,
            note,
        } => Some(Event::Replayed {
            original,
            result: store
                .insert(&exchange)
                .map(|()| exchange.summary())
                .map_err(|e| format!("the replay ran but could not be stored: {e}")),
            note,
        }),
        Job::Stats { now_ms } => Some(Event::Stats(
            stats_report(store, now_ms)
                .map(Box::new)
                .map_err(|e| e.to_string()),
        )),
        Job::Poll => Some(Event::Polled(
            store
                .page(Bound::Unbounded, Direction::Older, 50)
                .unwrap_or_default(),
        )),
        Job::CheckLive {
            generation,
            summary,
            filter,
            attempt,
        } => match store.get(&summary.id) {
            Ok(Some(ex)) => Some(Event::LiveChecked {
                generation,
                summary: *summary,
                matched: filter.matches(&ex),
            }),
            // The batching writer may not have stored it yet: look again soon.
            Ok(None) if attempt < 40 => {
                let again = again.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = again.send(Job::CheckLive {
                        generation,
                        summary,
                        filter,
                        attempt: attempt + 1,
                    });
                });
                None
            }
            Ok(None) | Err(_) => None,
        },
    }
}

/// Scans the history newest first for `filter`'s matches among rows up to
/// `upto`, sending chunks until done or until `current` moves on.
/// The stats view's report: the last hour up to `now_ms`, every dimension,
/// as `hooktunnel stats` computes it (one covering-index scan, no bodies).
pub(super) fn stats_report(store: &Store, now_ms: u64) -> Result<Report, crate::store::StoreError> {
    let window = Window::new(
        now_ms.saturating_sub(STATS_WINDOW_MS),
        now_ms.saturating_add(1),
        STATS_BUCKETS,
    );
    let mut agg = Aggregator::new(window, &Dimension::ALL, STATS_TOP);
    store.stats_scan(
        window.since_ms,
        window.until_ms,
        &Filter::default(),
        &mut agg,
    )?;
    Ok(agg.finish())
}

pub(super) fn scan(
    db: &Path,
    generation: u64,
    filter: &Filter,
    upto: Option<Ulid>,
    current: &AtomicU64,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let mut scanned = 0u64;
    let send = |rows: Vec<ExchangeSummary>, scanned: u64, done: bool| {
        events
            .send(Event::FilterChunk {
                generation,
                rows,
                scanned,
                done,
            })
            .is_ok()
    };
    // Paging by id: rows inserted meanwhile are above `upto` and never shift a page.
    let from = upto.map_or(Bound::Unbounded, Bound::Included);
    for batch in store.walk(from, Direction::Older, SCAN_CHUNK) {
        if current.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        let batch = batch?;
        let done = batch.len() < SCAN_CHUNK;
        let mut rows = Vec::new();
        for s in batch {
            scanned += 1;
            match filter.matches_summary(&s) {
                Some(true) => rows.push(s),
                Some(false) => {}
                // Text search: read this one exchange in full, by its key.
                None => {
                    if store.get(&s.id)?.is_some_and(|ex| filter.matches(&ex)) {
                        rows.push(s);
                    }
                    if scanned.is_multiple_of(GREP_PROGRESS)
                        && (current.load(Ordering::SeqCst) != generation
                            || !send(std::mem::take(&mut rows), scanned, false))
                    {
                        return Ok(());
                    }
                }
            }
        }
        if !send(rows, scanned, done) || done {
            return Ok(());
        }
    }
    // The walk ended on a full page (or found nothing): say the scan is over.
    send(Vec::new(), scanned, true);
    Ok(())
}

/// What one background walk of the history at start finds.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Overview {
    /// Error rows (see [`is_error`]).
    pub errors: u64,
    /// Tunnel names (see [`Tunnels`], which bounds them).
    pub tunnels: Tunnels,
}

/// Counts error rows and notes tunnel names, up to `upto`.
pub(super) fn overview(db: &Path, upto: Option<Ulid>) -> anyhow::Result<Overview> {
    let store = Store::open(db)?;
    let mut found = Overview::default();
    let Some(upto) = upto else { return Ok(found) };
    for batch in store.walk(Bound::Included(upto), Direction::Older, SCAN_CHUNK) {
        for s in batch? {
            found.errors += u64::from(is_error(&s));
            found.tunnels.note(&s.tunnel);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;

    use super::*;
    use crate::tui::app::App;
    use crate::tui::events::Effect;
    use crate::tui::status::Mode;
    use crate::tui::testing::{T0, ch, draw, ex, text};
    use crate::tui::window::{MAX_WINDOW, PAGE};

    /// Times opening and scrolling a 100k-row history through the store, as the
    /// runtime does it. Run with `cargo test --release --lib tui::worker::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement; slow in debug builds"]
    fn measure_100k_history() {
        use std::time::{Duration, Instant};

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
        let newest = store.list(PAGE, 0).unwrap();
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
                if let Effect::LoadPage(request) = e {
                    let t = Instant::now();
                    let rows = store.list(request.limit, request.offset).unwrap();
                    loads.push(t.elapsed());
                    app.handle(request.answer(rows));
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
        assert!(app.window().rows.len() <= MAX_WINDOW);
        assert!(open < Duration::from_secs(1), "open took {open:?}");

        // Background work: the header's error count and filter scans.
        let t = Instant::now();
        let errors = overview(&db, Some(Ulid::from_parts(T0 + 99_999, 99_999)))
            .unwrap()
            .errors;
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
            scan(&db, 1, &filter, None, &current, &tx).unwrap();
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

    #[test]
    fn the_start_walk_counts_errors_and_finds_the_tunnels() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let mut store = Store::open(&db).unwrap();
        assert_eq!(overview(&db, None).unwrap(), Overview::default());
        let mut newest = None;
        for (n, tunnel, status) in [
            (0, "shop", Some(200)),
            (1, "billing", Some(500)),
            (2, "shop", None),
        ] {
            let mut e = ex(n, "POST", "/hooks", status);
            e.tunnel = tunnel.into();
            store.insert(&e).unwrap();
            newest = Some(e.id);
        }
        let found = overview(&db, newest).unwrap();
        assert_eq!(found.errors, 2);
        assert_eq!(found.tunnels.names(), ["shop", "billing"]);
        assert!(found.tunnels.several());
    }
}
