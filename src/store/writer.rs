//! The single writer: batches inserts on its own thread so capture never
//! waits for SQLite.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};
use crate::config::{ConfigFile, DEFAULT_KEEP, DEFAULT_KEEP_BYTES};
use crate::exchange::Exchange;

/// Most exchanges written in one transaction.
const MAX_BATCH: usize = 256;
/// Writes queued before senders wait.
const QUEUE_CAPACITY: usize = 4096;

/// A write, or (`exchange: None`) a barrier that completes once everything
/// queued before it is committed.
struct Job {
    exchange: Option<Exchange>,
    done: Option<oneshot::Sender<Result<(), String>>>,
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

    /// Bounds to evict down to once a bound is crossed: about 1% under each,
    /// so a full history is not scanned again on every following batch.
    fn low_water(self) -> (u64, u64) {
        (
            self.keep - self.keep / 100,
            self.keep_bytes - self.keep_bytes / 100,
        )
    }
}

/// Cheap handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
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
        let mut store = Store::open(&path)?;
        let kept = Kept::enforce(&mut store, retention)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("hooktunnel-store".into())
            .spawn(move || run(store, rx, retention, kept))
            .map_err(|source| StoreError::Dir {
                path: "store writer thread".into(),
                source,
            })?;
        Ok(Self { tx })
    }

    /// Queues an exchange; returns once it is queued, not written.
    pub async fn record(&self, exchange: Exchange) -> bool {
        self.tx
            .send(Job {
                exchange: Some(exchange),
                done: None,
            })
            .await
            .is_ok()
    }

    /// Queues an exchange and waits until it is committed.
    pub async fn record_durably(&self, exchange: Exchange) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                exchange: Some(exchange),
                done: Some(done),
            })
            .await
            .map_err(|_| "store writer stopped".to_owned())?;
        wait.await.map_err(|_| "store writer stopped".to_owned())?
    }

    /// Waits until everything queued so far is committed, so a stopping
    /// agent never leaves a forwarded exchange unrecorded.
    pub async fn flush(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                exchange: None,
                done: Some(done),
            })
            .await
            .map_err(|_| "store writer stopped".to_owned())?;
        wait.await.map_err(|_| "store writer stopped".to_owned())?
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

    /// Evicts down to the low-water marks when over a bound; returns the new totals.
    fn enforce(store: &mut Store, retention: Retention) -> Result<Self, StoreError> {
        let kept = Self::read(store)?;
        if !kept.over(retention) {
            return Ok(kept);
        }
        let (rows, bytes) = retention.low_water();
        let removed = store.enforce_retention(rows, bytes)?;
        tracing::debug!(removed, "history retention evicted the oldest exchanges");
        Self::read(store)
    }
}

fn run(mut store: Store, mut rx: mpsc::Receiver<Job>, retention: Retention, mut kept: Kept) {
    let mut exchanges = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            exchanges.extend(job.exchange);
            waiters.extend(job.done);
            if exchanges.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let result = if exchanges.is_empty() {
            Ok(())
        } else {
            store.insert_many(&exchanges).map_err(|e| e.to_string())
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, count = exchanges.len(), "could not store exchanges");
        } else {
            kept.rows += exchanges.len() as u64;
            kept.bytes += exchanges
                .iter()
                .map(|e| {
                    e.request_body.len() as u64
                        + e.response.as_ref().map_or(0, |r| r.body.len() as u64)
                })
                .sum::<u64>();
            if kept.over(retention) {
                match Kept::enforce(&mut store, retention) {
                    Ok(now) => kept = now,
                    Err(e) => tracing::error!(error = %e, "could not enforce history retention"),
                }
            }
        }
        exchanges.clear();
        for done in waiters.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}
