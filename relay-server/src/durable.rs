//! The relay's durable state: which key owns which tunnel name, and the
//! queue of requests accepted for agents that have not acknowledged them.
//!
//! Both sit behind small synchronous traits so a cluster backend (e.g. Redis
//! registry entries with an epoch, Redis Streams for the queue) can replace
//! the single-node SQLite implementation without touching the routes. Routes
//! never call a backend directly: [`Durable`] owns it on a dedicated thread
//! and hands it jobs over a channel, so an fsync never stalls a runtime worker
//! (and with it unrelated requests).

pub mod policy;
mod sqlite;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

pub use crate::protocol::QueuedResponse as QueuedAnswer;
pub use sqlite::SqliteDurable;

/// Jobs queued for the database thread before callers wait.
const JOB_CAPACITY: usize = 1024;

/// Why durable state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// SQLite failed.
    #[error("relay database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis failed (cluster mode).
    #[error("redis error: {0}")]
    Redis(String),
    /// The data directory is unusable.
    #[error("cannot use data dir {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database thread could not start.
    #[error("cannot start the relay's database thread: {0}")]
    Thread(std::io::Error),
    /// The database thread has stopped.
    #[error("the relay's database thread has stopped")]
    Stopped,
}

/// Outcome of claiming a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The name is now (or already was) bound to this key.
    Granted,
    /// Another key owns the name.
    Taken,
    /// The name is free but the key already holds `held` names, the most allowed.
    TooMany {
        /// Names the key holds.
        held: u64,
    },
}

/// Outcome of releasing a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Release {
    /// The name is (or, on a dry run, would be) free; `queued` requests
    /// waiting for it are (would be) deleted.
    Released {
        /// Queued requests deleted with the name.
        queued: u64,
    },
    /// No key holds the name.
    Unknown,
    /// Another key owns the name.
    NotOwner,
}

/// Limits on one tunnel's queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Most queued requests.
    pub max_count: u64,
    /// Most queued bytes (encoded frames).
    pub max_bytes: u64,
    /// Oldest entry kept; older ones are dropped (and logged) on the next enqueue.
    pub max_age: Duration,
}

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The tunnel's queue is at a limit.
    #[error("queue for this tunnel is full ({0}); deliver or clear it by connecting the agent")]
    Full(String),
    /// Storage failed.
    #[error(transparent)]
    Durable(#[from] DurableError),
}

/// One queued entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Position in commit order.
    pub seq: i64,
    /// Request id.
    pub id: Ulid,
    /// The encoded request frame.
    pub frame: Bytes,
}

/// What a backend call returns.
pub type Stored<T> = Result<T, DurableError>;

/// Which key owns which name. Calls block; they run on the database thread.
pub trait NameRegistry {
    /// Binds `name` to `key` unless another key holds it. Atomic.
    fn claim(&self, name: &str, key: &str) -> Stored<Claim> {
        self.claim_within(name, key, u64::MAX)
    }
    /// [`NameRegistry::claim`], refusing a new name to a key that already
    /// holds `max_names`. Atomic.
    fn claim_within(&self, name: &str, key: &str, max_names: u64) -> Stored<Claim>;
    /// Frees `name` when `key` owns it, deleting its queue (nothing changes
    /// when `dry_run`). Atomic.
    fn release(&self, name: &str, key: &str, dry_run: bool) -> Stored<Release>;
    /// True when the name has ever been claimed.
    fn is_known(&self, name: &str) -> Stored<bool>;
    /// Stores the answer senders get while the agent is away.
    fn set_queued_answer(&self, name: &str, answer: Option<&QueuedAnswer>) -> Stored<()>;
    /// The answer senders get while the agent is away, when customised.
    fn queued_answer(&self, name: &str) -> Stored<Option<QueuedAnswer>>;
    /// Stores a name's edge rules as JSON, without signing secrets (`None`: no rules).
    fn set_edge_rules(&self, name: &str, rules: Option<&str>) -> Stored<()>;
    /// Every name's stored edge rules, loaded at start.
    fn all_edge_rules(&self) -> Stored<Vec<(String, String)>>;
}

/// One request to queue, with the bounds it must fit in.
#[derive(Clone, Debug)]
pub struct Enqueue {
    /// The tunnel.
    pub name: String,
    /// The request id.
    pub id: Ulid,
    /// The sender's address key (see `limit::ip_key`), for its share of the queue.
    pub client: String,
    /// The encoded request frame.
    pub frame: Bytes,
    /// The tunnel's queue bounds (shares: [`policy`]).
    pub limits: QueueLimits,
    /// When it was received (also the clock for expiring old entries).
    pub now_ms: u64,
}

/// Requests accepted with a 2xx and not yet acknowledged by the agent.
/// Calls block; they run on the database thread.
pub trait DeliveryQueue {
    /// Stores a frame durably (fsync'd) before returning.
    fn enqueue(&self, entry: &Enqueue) -> Result<(), EnqueueError>;
    /// Up to `limit` entries stored after position `after`, in commit order
    /// (ids are assigned before bodies arrive, so id order can differ).
    fn pending(&self, name: &str, after: Option<i64>, limit: usize) -> Stored<Vec<Pending>>;
    /// Deletes an acknowledged entry; false when it was not queued for this tunnel.
    fn ack(&self, name: &str, id: Ulid) -> Stored<bool>;
    /// Queued entries for a tunnel.
    fn depth(&self, name: &str) -> Stored<u64>;
}

/// A complete durable backend.
pub trait Backend: NameRegistry + DeliveryQueue + Send + 'static {}

impl<T: NameRegistry + DeliveryQueue + Send + 'static> Backend for T {}

type Job = Box<dyn FnOnce(&dyn Backend) + Send>;

/// The stored fingerprint of an agent key (never the key itself).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The async face of the durable state: every call is a job for the one
/// thread that owns the backend (cheap to clone).
#[derive(Clone)]
pub struct Durable {
    jobs: mpsc::Sender<Job>,
}

impl Durable {
    /// Opens SQLite state in `dir` (in memory when `None`) on a new database
    /// thread; the open itself runs there too.
    pub async fn open(dir: Option<&Path>) -> Stored<Self> {
        let dir: Option<PathBuf> = dir.map(Path::to_path_buf);
        Self::start(move || SqliteDurable::open(dir.as_deref())).await
    }

    /// Starts the database thread with the backend `open` makes there.
    pub async fn start<B: Backend>(
        open: impl FnOnce() -> Stored<B> + Send + 'static,
    ) -> Stored<Self> {
        let (jobs, mut queue) = mpsc::channel::<Job>(JOB_CAPACITY);
        let (opened, ready) = oneshot::channel();
        std::thread::Builder::new()
            .name("relay-db".into())
            .spawn(move || {
                let backend = match open() {
                    Ok(backend) => {
                        let _ = opened.send(Ok(()));
                        backend
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                // Ends once every handle is dropped.
                while let Some(job) = queue.blocking_recv() {
                    job(&backend);
                }
            })
            .map_err(DurableError::Thread)?;
        ready.await.map_err(|_| DurableError::Stopped)??;
        Ok(Self { jobs })
    }

    /// Runs `job` on the database thread and waits for its result.
    async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&dyn Backend) -> T + Send + 'static,
    ) -> Stored<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            let _ = tx.send(job(backend));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| DurableError::Stopped)?;
        rx.await.map_err(|_| DurableError::Stopped)
    }

    /// See [`NameRegistry::claim`].
    pub async fn claim(&self, name: &str, key: &str) -> Stored<Claim> {
        let (name, key) = (name.to_owned(), key.to_owned());
        self.call(move |b| b.claim(&name, &key)).await?
    }

    /// See [`NameRegistry::claim_within`].
    pub async fn claim_within(&self, name: &str, key: &str, max_names: u64) -> Stored<Claim> {
        let (name, key) = (name.to_owned(), key.to_owned());
        self.call(move |b| b.claim_within(&name, &key, max_names))
            .await?
    }

    /// See [`NameRegistry::release`].
    pub async fn release(&self, name: &str, key: &str, dry_run: bool) -> Stored<Release> {
        let (name, key) = (name.to_owned(), key.to_owned());
        self.call(move |b| b.release(&name, &key, dry_run)).await?
    }

    /// See [`NameRegistry::is_known`].
    pub async fn is_known(&self, name: &str) -> Stored<bool> {
        let name = name.to_owned();
        self.call(move |b| b.is_known(&name)).await?
    }

    /// See [`NameRegistry::set_queued_answer`].
    pub async fn set_queued_answer(&self, name: &str, answer: Option<QueuedAnswer>) -> Stored<()> {
        let name = name.to_owned();
        self.call(move |b| b.set_queued_answer(&name, answer.as_ref()))
            .await?
    }

    /// See [`NameRegistry::set_edge_rules`].
    pub async fn set_edge_rules(&self, name: &str, rules: Option<String>) -> Stored<()> {
        let name = name.to_owned();
        self.call(move |b| b.set_edge_rules(&name, rules.as_deref()))
            .await?
    }

    /// See [`NameRegistry::all_edge_rules`].
    pub async fn all_edge_rules(&self) -> Stored<Vec<(String, String)>> {
        self.call(|b| b.all_edge_rules()).await?
    }

    /// See [`NameRegistry::queued_answer`].
    pub async fn queued_answer(&self, name: &str) -> Stored<Option<QueuedAnswer>> {
        let name = name.to_owned();
        self.call(move |b| b.queued_answer(&name)).await?
    }

    /// See [`DeliveryQueue::enqueue`].
    pub async fn enqueue(&self, entry: Enqueue) -> Result<(), EnqueueError> {
        self.call(move |b| b.enqueue(&entry)).await?
    }

    /// See [`DeliveryQueue::pending`].
    pub async fn pending(
        &self,
        name: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Stored<Vec<Pending>> {
        let name = name.to_owned();
        self.call(move |b| b.pending(&name, after, limit)).await?
    }

    /// See [`DeliveryQueue::ack`].
    pub async fn ack(&self, name: &str, id: Ulid) -> Stored<bool> {
        let name = name.to_owned();
        self.call(move |b| b.ack(&name, id)).await?
    }

    /// See [`DeliveryQueue::depth`].
    pub async fn depth(&self, name: &str) -> Stored<u64> {
        let name = name.to_owned();
        self.call(move |b| b.depth(&name)).await?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn calls_run_on_the_database_thread() {
        let durable = tokio::time::timeout(Duration::from_secs(10), Durable::open(None))
            .await
            .unwrap()
            .unwrap();
        let thread = durable
            .call(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(thread.as_deref(), Some("relay-db"));
        // The backend asserts (in debug builds) that no runtime is current;
        // these calls would panic if they ran on this test's runtime.
        assert_eq!(durable.claim("demo", "k").await.unwrap(), Claim::Granted);
        assert!(durable.is_known("demo").await.unwrap());
        let entry = Enqueue {
            name: "demo".into(),
            id: crate::protocol::next_id(),
            client: "192.0.2.1".into(),
            frame: Bytes::from_static(b"frame"),
            limits: QueueLimits {
                max_count: 10,
                max_bytes: 1000,
                max_age: Duration::from_secs(60),
            },
            now_ms: 1_000,
        };
        durable.enqueue(entry.clone()).await.unwrap();
        let pending = durable.pending("demo", None, 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert!(durable.ack("demo", entry.id).await.unwrap());
        assert_eq!(durable.depth("demo").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failed_open_is_reported() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A regular file where the data directory should be.
        let opened = Durable::open(Some(&file.path().join("sub"))).await;
        assert!(
            matches!(opened, Err(DurableError::Dir { .. })),
            "{:?}",
            opened.err()
        );
    }
}
