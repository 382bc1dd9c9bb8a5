//! The single writer: batches inserts on its own thread so capture never
//! waits for SQLite.

use std::path::PathBuf;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::{Store, StoreError};
use crate::config::{ConfigFile, DEFAULT_KEEP, DEFAULT_KEEP_BYTES};
use crate::exchange::Exchange;
use crate::stats::{Refusal, refusal};
use hooktunnel_protocol::Refused;

/// Most exchanges written in one transaction.
const MAX_BATCH: usize = 256;
/// How long a batch nobody waits for may wait for company before it is
/// committed.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);
/// Writes queued before senders wait.
const QUEUE_CAPACITY: usize = 4096;
/// Fewest exchanges one eviction pass may remove.
const EVICT_ROWS: u64 = 1024;
/// Body bytes one eviction pass may free (beyond its first exchange), at least.
const EVICT_BYTES: u64 = 16 * 1024 * 1024;
/// Body bytes (request + response) queued before senders wait: with bodies
/// of up to 32 MiB a bound by count alone could hold gigabytes. One exchange
/// larger than this is let through on its own.
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

/// Cheap handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
    /// Permits are body bytes; see [`QUEUE_BYTES`].
    budget: Arc<Semaphore>,
    queue_bytes: usize,
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
        Self::spawn_bounded(path, retention, QUEUE_BYTES)
    }

    fn spawn_bounded(
        path: PathBuf,
        retention: Retention,
        queue_bytes: usize,
    ) -> Result<Self, StoreError> {
        let mut store = Store::open(&path)?;
        // At start-up nobody waits yet: catch up on the whole backlog.
        let kept = Kept::enforce(&mut store, retention, (u64::MAX / 2, u64::MAX / 2))?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
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
        })
    }

    /// Waits until the exchange's bodies fit in the queue's byte budget
    /// (`None`: the writer is gone).
    async fn reserve(&self, exchange: &Exchange) -> Option<OwnedSemaphorePermit> {
        let bytes = body_bytes(exchange).min(self.queue_bytes);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.budget.clone().acquire_many_owned(bytes).await.ok()
    }

    /// Queues an exchange; returns once it is queued, not written. Waits
    /// while the queue is full, by count or by body bytes.
    pub async fn record(&self, exchange: Exchange) -> bool {
        let Some(bytes) = self.reserve(&exchange).await else {
            return false;
        };
        self.tx
            .send(Job {
                exchange: Some(exchange),
                refusals: Vec::new(),
                done: None,
                bytes: Some(bytes),
            })
            .await
            .is_ok()
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
    async fn the_queue_is_bounded_by_body_bytes() {
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("history.db");
        let writer = StoreWriter::spawn_bounded(db.clone(), Retention::default(), 1000).unwrap();
        let run = async {
            // Each 600-byte exchange waits for the one before to be committed.
            for _ in 0..20 {
                assert!(writer.record(exchange(600)).await);
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
    }
}
