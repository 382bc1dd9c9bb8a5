//! The single writer: batches inserts on its own thread so capture never
//! waits for SQLite.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};
use crate::exchange::Exchange;

/// Most exchanges written in one transaction.
const MAX_BATCH: usize = 256;
/// Writes queued before senders wait.
const QUEUE_CAPACITY: usize = 4096;

struct Job {
    exchange: Exchange,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Cheap handle to the writer thread.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Job>,
}

impl StoreWriter {
    /// Opens the database and starts the writer thread.
    pub fn spawn(path: PathBuf) -> Result<Self, StoreError> {
        let store = Store::open(&path)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("hooktunnel-store".into())
            .spawn(move || run(store, rx))
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
                exchange,
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
                exchange,
                done: Some(done),
            })
            .await
            .map_err(|_| "store writer stopped".to_owned())?;
        wait.await.map_err(|_| "store writer stopped".to_owned())?
    }
}

fn run(mut store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut exchanges = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            exchanges.push(job.exchange);
            waiters.extend(job.done);
            if exchanges.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let result = store.insert_many(&exchanges).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, count = exchanges.len(), "could not store exchanges");
        }
        exchanges.clear();
        for done in waiters.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}
