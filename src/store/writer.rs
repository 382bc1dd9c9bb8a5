//! The single writer: batches inserts on its own thread so capture never
//! waits for SQLite.

use std::path::PathBuf;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

use super::{Store, StoreError};
use crate::capture::{Capture, Truncation};
use crate::config::{ConfigFile, DEFAULT_KEEP, DEFAULT_KEEP_BYTES};
use crate::exchange::Exchange;
use crate::stats::{Refusal, refusal};
use hooktunnel_protocol::Refused;

/// Most exchanges written in one transaction.
const MAX_BATCH: usize = 256;
/// How long a batch nobody waits for may wait for company before it is
/// committed.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);
/// Writes queued: beyond it a durable write waits and a live one is counted
/// as lost (see [`Recorded::Lost`]).
const QUEUE_CAPACITY: usize = 4096;
/// Fewest exchanges one eviction pass may remove.
const EVICT_ROWS: u64 = 1024;
/// Body bytes one eviction pass may free (beyond its first exchange), at least.
const EVICT_BYTES: u64 = 16 * 1024 * 1024;
/// Body bytes (request + response) queued: with bodies of up to the capture
/// limit a bound by count alone could hold gigabytes. Beyond it a durable
/// write waits and a live one is queued without its bodies
/// ([`Recorded::Degraded`]). One exchange larger than this is let through on
/// its own.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// A write, or (`exchange: None`, no refusals) a barrier that completes
/// once everything queued before it is committed.
struct Job {
    exchange: Option<Exchange>,
    /// Rows of one relay refusal note.
    refusals: Vec<Refusal>,
    done: Option<oneshot::Sender<Result<(), String>>>,
    /// The exchange's share of [`QUEUE_BYTES`], given back once it is committed.
    bytes: Option<OwnedSemaphorePermit>,
}

/// Body bytes an exchange holds while queued.
fn body_bytes(exchange: &Exchange) -> usize {
    exchange.request_body.len() + exchange.response.as_ref().map_or(0, |r| r.body.len())
}

/// How much history to keep: the oldest exchanges beyond either bound are
/// evicted after each batch that crosses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most exchanges kept.
    pub keep: u64,
    /// Most body bytes (request + response) kept.
    pub keep_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: DEFAULT_KEEP,
            keep_bytes: DEFAULT_KEEP_BYTES,
        }
    }
}

impl Retention {
    /// Flags first (`None` when not given), then `keep` / `keep_bytes` from
    /// the config file, then the defaults. Zero is raised to one, so the
    /// newest exchange always survives a count bound.
    pub fn resolve(keep: Option<u64>, keep_bytes: Option<u64>, config: &ConfigFile) -> Self {
        Self {
            keep: keep.or(config.keep).unwrap_or(DEFAULT_KEEP).max(1),
            keep_bytes: keep_bytes
                .or(config.keep_bytes)
                .unwrap_or(DEFAULT_KEEP_BYTES),
        }
    }

    /// Bounds to evict down to once a bound is crossed: 5% under each, so a
    /// full history is scanned once per 5% of new traffic, not per batch
    /// (with 1% retention was a fifth of the agent's CPU under load).
    fn low_water(self) -> (u64, u64) {
        (
            self.keep - self.keep / 20,
            self.keep_bytes - self.keep_bytes / 20,
        )
    }
}

/// What became of an exchange given to [`StoreWriter::record`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Queued with its bodies (as captured).
    Whole,
    /// The queue's body budget was full: queued without bodies, with their
    /// sizes and SHA-256s, flagged `capture_degraded`.
    Degraded,
    /// The queue's row bound was full too (the writer is stalled): not
    /// recorded, counted in [`StoreWriter::behind`].
    Lost,
    /// The writer has stopped.
    Stopped,
}

/// How often the live path fell back, since the writer started.
#[derive(Default)]
struct Behind {
    degraded: AtomicU64,
    lost: AtomicU64,
    /// `now_ms` of the last notice, for [`StoreWriter::behind_notice`].
    noticed_ms: AtomicU64,
}

/// Least time between two "store fell behind" notices.
const NOTICE_EVERY_MS: u64 = 5_000;

/// Cheap handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
    /// Permits are body bytes; see [`QUEUE_BYTES`].
    budget: Arc<Semaphore>,
    queue_bytes: usize,
    behind: Arc<Behind>,
}

impl StoreWriter {
    /// Opens the database and starts the writer thread with the default
    /// [`Retention`].
    pub fn spawn(path: PathBuf) -> Result<Self, StoreError> {
        Self::spawn_with_retention(path, Retention::default())
    }

    /// Opens the database, evicts what is over `retention`, and starts the
    /// writer thread, which keeps the history within `retention`.
    pub fn spawn_with_retention(path: PathBuf, retention: Retention) -> Result<Self, StoreError> {
        Self::spawn_bounded(path, retention, QUEUE_CAPACITY, QUEUE_BYTES)
    }

    fn spawn_bounded(
        path: PathBuf,
        retention: Retention,
        queue_rows: usize,
        queue_bytes: usize,
    ) -> Result<Self, StoreError> {
        let mut store = Store::open(&path)?;
        // At start-up nobody waits yet: catch up on the whole backlog.
        let kept = Kept::enforce(&mut store, retention, (u64::MAX / 2, u64::MAX / 2))?;
        let (tx, rx) = mpsc::channel(queue_rows.max(1));
        std::thread::Builder::new()
            .name("hooktunnel-store".into())
            .spawn(move || run(store, rx, retention, kept))
            .map_err(|source| StoreError::Dir {
                path: "store writer thread".into(),
                source,
            })?;
        Ok(Self {
            tx,
            budget: Arc::new(Semaphore::new(queue_bytes)),
            queue_bytes,
            behind: Arc::default(),
        })
    }

    /// Permits for `exchange`'s bodies (see [`QUEUE_BYTES`]).
    fn permits(&self, exchange: &Exchange) -> u32 {
        let bytes = body_bytes(exchange).min(self.queue_bytes);
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    /// Waits until the exchange's bodies fit in the queue's byte budget
    /// (`None`: the writer is gone).
    async fn reserve(&self, exchange: &Exchange) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits(exchange);
        self.budget.clone().acquire_many_owned(permits).await.ok()
    }

    /// Queues a live exchange without ever waiting, so the live path is
    /// never held by the store. When the queue's body budget is full the
    /// exchange is queued [degraded](degrade) (heads, sizes and SHA-256s;
    /// no bodies); when its row bound is full too, it is counted as lost.
    /// Either way [`StoreWriter::behind_notice`] reports it.
    pub fn record(&self, exchange: Exchange) -> Recorded {
        let (exchange, bytes, outcome) = match self
            .budget
            .clone()
            .try_acquire_many_owned(self.permits(&exchange))
        {
            Ok(bytes) => (exchange, Some(bytes), Recorded::Whole),
            Err(TryAcquireError::Closed) => return Recorded::Stopped,
            Err(TryAcquireError::NoPermits) => (degrade(exchange), None, Recorded::Degraded),
        };
        let job = Job {
            exchange: Some(exchange),
            refusals: Vec::new(),
            done: None,
            bytes,
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                if outcome == Recorded::Degraded {
                    self.behind.degraded.fetch_add(1, Ordering::Relaxed);
                }
                outcome
            }
            Err(TrySendError::Full(_)) => {
                self.behind.lost.fetch_add(1, Ordering::Relaxed);
                Recorded::Lost
            }
            Err(TrySendError::Closed(_)) => Recorded::Stopped,
        }
    }

    /// `(degraded, lost)`: live exchanges recorded without bodies, and not
    /// recorded at all, because the store was behind (see [`Recorded`]).
    pub fn behind(&self) -> (u64, u64) {
        (
            self.behind.degraded.load(Ordering::Relaxed),
            self.behind.lost.load(Ordering::Relaxed),
        )
    }

    /// A notice for the user after a [`Recorded::Degraded`] or
    /// [`Recorded::Lost`], at most one per 5 s (totals so far); `None`
    /// otherwise.
    pub fn behind_notice(&self, recorded: Recorded) -> Option<String> {
        if !matches!(recorded, Recorded::Degraded | Recorded::Lost) {
            return None;
        }
        let now = crate::clock::now_ms();
        let last = self.behind.noticed_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < NOTICE_EVERY_MS {
            return None;
        }
        self.behind
            .noticed_ms
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        let (degraded, lost) = self.behind();
        Some(format!(
            "the history store fell behind: {degraded} exchanges recorded without bodies (sizes and SHA-256 kept), {lost} not recorded, so far; live traffic was not slowed"
        ))
    }

    /// Queues the rows of a relay's refusal note, received now, for `stats`.
    /// Never waits: when the queue is full the note is dropped (and logged),
    /// so the session reading from the relay is never held up. Returns
    /// whether it was queued.
    pub fn record_refused(&self, note: &Refused) -> bool {
        let rows = refusal::from_note(note, crate::clock::now_ms());
        if rows.is_empty() {
            return true;
        }
        let queued = self
            .tx
            .try_send(Job {
                exchange: None,
                refusals: rows,
                done: None,
                bytes: None,
            })
            .is_ok();
        if !queued {
            tracing::warn!(
                count = note.count,
                "history queue full or closed: a relay refusal note is not stored"
            );
        }
        queued
    }

    /// Queues an exchange and waits until it is committed.
    pub async fn record_durably(&self, exchange: Exchange) -> Result<(), String> {
        self.commit(Some(exchange)).await
    }

    /// Waits until everything queued so far is committed, so a stopping
    /// agent never leaves a forwarded exchange unrecorded.
    pub async fn flush(&self) -> Result<(), String> {
        self.commit(None).await
    }

    /// Queues `exchange` (or, with `None`, a barrier) and waits for its commit.
    async fn commit(&self, exchange: Option<Exchange>) -> Result<(), String> {
        let stopped = || "store writer stopped".to_owned();
        let bytes = match &exchange {
            Some(e) => Some(self.reserve(e).await.ok_or_else(stopped)?),
            None => None,
        };
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                exchange,
                refusals: Vec::new(),
                done: Some(done),
                bytes,
            })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// `exchange` without its bodies, for a queue that has no room for them:
/// each dropped body becomes a [`Truncation`] with limit 0 (its size and
/// SHA-256; a body already truncated keeps the whole body's), and the
/// exchange is flagged `capture_degraded`.
pub fn degrade(mut exchange: Exchange) -> Exchange {
    fn drop_body(body: &mut bytes::Bytes, truncated: &mut Option<Truncation>) {
        let whole = match truncated.take() {
            Some(t) => Some(Truncation { limit: 0, ..t }),
            None => Capture::whole(body, 0).1,
        };
        *truncated = whole;
        *body = bytes::Bytes::new();
    }
    drop_body(&mut exchange.request_body, &mut exchange.request_truncated);
    if let Some(r) = exchange.response.as_mut() {
        drop_body(&mut r.body, &mut r.truncated);
    }
    exchange.capture_degraded = true;
    exchange
}

/// What the writer believes the history holds. Other processes (`replay`,
/// `clear`) also write, so this is re-read from the database after every
/// eviction; between evictions it only grows with this writer's inserts.
#[derive(Clone, Copy, Debug)]
struct Kept {
    rows: u64,
    bytes: u64,
}

impl Kept {
    /// Exact totals from the database.
    fn read(store: &Store) -> Result<Self, StoreError> {
        let (rows, bytes): (i64, i64) = store.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(request_bytes + response_bytes), 0) FROM exchanges",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Self {
            rows: rows.max(0) as u64,
            bytes: bytes.max(0) as u64,
        })
    }

    fn over(self, retention: Retention) -> bool {
        self.rows > retention.keep || self.bytes > retention.keep_bytes
    }

    /// Evicts towards the low-water marks when over a bound; returns the new
    /// totals. One call removes at most a slice (twice what the last batch
    /// added, and at least [`EVICT_ROWS`] / [`EVICT_BYTES`]), so the writer
    /// is never stuck for long deleting a backlog of big bodies, yet eviction
    /// always outpaces inserts.
    fn enforce(
        store: &mut Store,
        retention: Retention,
        added: (u64, u64),
    ) -> Result<Self, StoreError> {
        let kept = Self::read(store)?;
        if !kept.over(retention) {
            return Ok(kept);
        }
        let (rows, bytes) = retention.low_water();
        let removed = store.evict_slice(
            rows,
            bytes,
            EVICT_ROWS.max(added.0.saturating_mul(2)),
            EVICT_BYTES.max(added.1.saturating_mul(2)),
        )?;
        tracing::debug!(removed, "history retention evicted the oldest exchanges");
        Self::read(store)
    }
}

fn run(mut store: Store, mut rx: mpsc::Receiver<Job>, retention: Retention, mut kept: Kept) {
    let mut exchanges = Vec::with_capacity(MAX_BATCH);
    let mut refusals = Vec::new();
    let mut waiters = Vec::new();
    let mut budget = Vec::with_capacity(MAX_BATCH);
    let mut added = (0u64, 0u64);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut lingered = false;
        loop {
            while let Some(job) = next.take() {
                exchanges.extend(job.exchange);
                refusals.extend(job.refusals);
                waiters.extend(job.done);
                budget.extend(job.bytes);
                if exchanges.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            // Nobody waits for this batch (live captures are answered
            // before they are recorded): give it a moment to fill, so a
            // trickle of requests does not pay one commit each.
            if lingered || !waiters.is_empty() || exchanges.len() >= MAX_BATCH {
                break;
            }
            lingered = true;
            std::thread::sleep(BATCH_WINDOW);
            next = rx.try_recv().ok();
        }
        let result = if exchanges.is_empty() {
            Ok(())
        } else {
            store.insert_many(&exchanges).map_err(|e| e.to_string())
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, count = exchanges.len(), "could not store exchanges");
        } else {
            added = (
                exchanges.len() as u64,
                exchanges.iter().map(|e| body_bytes(e) as u64).sum::<u64>(),
            );
            kept.rows += added.0;
            kept.bytes += added.1;
        }
        exchanges.clear();
        if !refusals.is_empty() {
            if let Err(e) = store.insert_refusals(&refusals) {
                tracing::error!(error = %e, count = refusals.len(), "could not store relay refusals");
            }
            refusals.clear();
        }
        // The bodies are written (or given up on) and dropped: room for more.
        budget.clear();
        // Answer before evicting: a durable delivery never waits on retention.
        for done in waiters.drain(..) {
            let _ = done.send(result.clone());
        }
        if result.is_ok() && kept.over(retention) {
            match Kept::enforce(&mut store, retention, added) {
                Ok(now) => kept = now,
                Err(e) => tracing::error!(error = %e, "could not enforce history retention"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    /// The shared fixture with a request body of `body_len` bytes.
    fn exchange(body_len: usize) -> Exchange {
        let mut e = crate::export::fixtures::text_exchange();
        e.request_body = Bytes::from(vec![b'x'; body_len]);
        e
    }

    #[tokio::test]
    async fn refusal_notes_are_stored_without_waiting_and_flushed() {
        use hooktunnel_protocol::RefusedRequest;
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let writer = StoreWriter::spawn(db.clone()).unwrap();
        let note = Refused {
            count: 7,
            tunnel: None,
            examples: vec![RefusedRequest {
                method: "POST".into(),
                path: "/orders/1".into(),
                status: 413,
                reason: "body_too_large".into(),
            }],
        };
        assert!(writer.record_refused(&note));
        tokio::time::timeout(Duration::from_secs(30), writer.flush())
            .await
            .unwrap()
            .unwrap();
        let store = Store::open(&db).unwrap();
        let now = crate::clock::now_ms();
        let window = crate::stats::Window::new(now - 60_000, now + 1, 1);
        let mut agg = crate::stats::Aggregator::new(window, &[crate::stats::Dimension::Path], 10);
        store
            .stats_scan(
                window.since_ms,
                window.until_ms,
                &Default::default(),
                &mut agg,
            )
            .unwrap();
        let report = agg.finish();
        assert_eq!(report.total.errors.relay_refused, 7);
        assert_eq!(report.sections[0].rows[0].key, "POST /orders/:n");
        assert_eq!(report.sections[0].rows[0].errors.relay_refused, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_writes_wait_for_the_body_budget() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let writer =
            StoreWriter::spawn_bounded(db.clone(), Retention::default(), QUEUE_CAPACITY, 1000)
                .unwrap();
        let run = async {
            // Each 600-byte exchange waits for the one before to be committed.
            for _ in 0..20 {
                writer.record_durably(exchange(600)).await.unwrap();
            }
            // Larger than the whole budget: let through on its own.
            writer.record_durably(exchange(5000)).await.unwrap();
            writer.flush().await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap();
        assert_eq!(writer.budget.available_permits(), 1000);
        assert_eq!(Store::open(&db).unwrap().count().unwrap(), 21);
        assert_eq!(writer.behind(), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_records_never_wait_a_full_budget_degrades_them_with_sizes_and_hashes() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let writer =
            StoreWriter::spawn_bounded(db.clone(), Retention::default(), QUEUE_CAPACITY, 1000)
                .unwrap();
        // Bodies queued but not yet written fill the budget.
        let held = writer.budget.clone().try_acquire_many_owned(1000).unwrap();
        let whole = exchange(600);
        let Recorded::Degraded = writer.record(whole.clone()) else {
            panic!("a full budget must degrade, not wait")
        };
        assert!(writer.behind_notice(Recorded::Degraded).is_some());
        assert!(
            writer.behind_notice(Recorded::Degraded).is_none(),
            "rate-limited"
        );
        drop(held);
        let later = exchange(600);
        assert_eq!(writer.record(later.clone()), Recorded::Whole);
        tokio::time::timeout(Duration::from_secs(30), writer.flush())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(writer.behind(), (1, 0));

        let store = Store::open(&db).unwrap();
        let degraded = store.get(&whole.id).unwrap().unwrap();
        assert!(degraded.capture_degraded);
        assert!(degraded.request_body.is_empty());
        let t = degraded.request_truncated.clone().unwrap();
        assert_eq!((t.total_bytes, t.limit), (600, 0));
        assert_eq!(t, Capture::whole(&whole.request_body, 0).1.unwrap());
        let response = degraded.response.clone().unwrap();
        assert!(response.body.is_empty() && response.truncated.is_some());
        assert_eq!(response.headers, whole.response.clone().unwrap().headers);
        assert_eq!(degraded.request_headers, whole.request_headers);
        assert!(degraded.replay_refusal().unwrap().contains("fell behind"));
        let kept = store.get(&later.id).unwrap().unwrap();
        assert_eq!(kept, later);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_writer_with_a_full_row_bound_counts_what_it_loses() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let writer =
            StoreWriter::spawn_bounded(db.clone(), Retention::default(), 1, 1 << 20).unwrap();
        // Another process holds the write lock: the writer stalls on its insert.
        let blocker = rusqlite::Connection::open(&db).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert_eq!(writer.record(exchange(10)), Recorded::Whole);
        // The writer has taken it and waits on the lock; one more fits the queue.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(writer.record(exchange(10)), Recorded::Whole);
        let started = std::time::Instant::now();
        let outcomes: Vec<Recorded> = (0..4).map(|_| writer.record(exchange(10))).collect();
        assert!(started.elapsed() < Duration::from_secs(1), "never waits");
        assert_eq!(outcomes, vec![Recorded::Lost; 4]);
        assert!(
            writer
                .behind_notice(Recorded::Lost)
                .unwrap()
                .contains("4 not recorded")
        );
        blocker.execute_batch("COMMIT").unwrap();
        tokio::time::timeout(Duration::from_secs(30), writer.flush())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Store::open(&db).unwrap().count().unwrap(), 2);
        assert_eq!(writer.behind(), (0, 4));
    }
}
