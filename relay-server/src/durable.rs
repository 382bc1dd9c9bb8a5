//! The relay's durable state: which key owns which tunnel name, and the
//! queue of requests accepted for agents that have not acknowledged them.
//!
//! Both sit behind small traits so a cluster backend (e.g. Redis registry
//! entries with an epoch, Redis Streams for the queue) can replace the
//! single-node SQLite implementation without touching the routes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};
use ulid::Ulid;

pub use crate::protocol::QueuedResponse as QueuedAnswer;

/// Why durable state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// SQLite failed.
    #[error("relay database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory is unusable.
    #[error("cannot use data dir {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Outcome of claiming a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The name is now (or already was) bound to this key.
    Granted,
    /// Another key owns the name.
    Taken,
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

/// Which key owns which name.
pub trait NameRegistry: Send + Sync {
    /// Binds `name` to `key` unless another key holds it. Atomic.
    fn claim(&self, name: &str, key: &str) -> Result<Claim, DurableError>;
    /// True when the name has ever been claimed.
    fn is_known(&self, name: &str) -> Result<bool, DurableError>;
    /// Stores the answer senders get while the agent is away.
    fn set_queued_answer(
        &self,
        name: &str,
        answer: Option<&QueuedAnswer>,
    ) -> Result<(), DurableError>;
    /// The answer senders get while the agent is away, when customised.
    fn queued_answer(&self, name: &str) -> Result<Option<QueuedAnswer>, DurableError>;
}

/// Requests accepted with a 2xx and not yet acknowledged by the agent.
pub trait DeliveryQueue: Send + Sync {
    /// Stores a frame durably (fsync'd) before returning.
    fn enqueue(
        &self,
        name: &str,
        id: Ulid,
        frame: &[u8],
        limits: &QueueLimits,
        now_ms: u64,
    ) -> Result<(), EnqueueError>;
    /// Up to `limit` entries stored after position `after`, in commit order
    /// (ids are assigned before bodies arrive, so id order can differ).
    fn pending(
        &self,
        name: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Pending>, DurableError>;
    /// Deletes an acknowledged entry; false when it was not queued for this tunnel.
    fn ack(&self, name: &str, id: Ulid) -> Result<bool, DurableError>;
    /// Queued entries for a tunnel.
    fn depth(&self, name: &str) -> Result<u64, DurableError>;
}

/// Single-node implementation on SQLite.
pub struct SqliteDurable {
    conn: Mutex<Connection>,
}

/// The stored fingerprint of an agent key (never the key itself).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl SqliteDurable {
    /// Opens `<dir>/relay.sqlite3`, or an in-memory database when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> Result<Self, DurableError> {
        let conn = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| DurableError::Dir {
                    path: dir.display().to_string(),
                    source,
                })?;
                Connection::open(dir.join("relay.sqlite3"))?
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A 2xx promises durability: every commit reaches the disk.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS names (
                name TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL,
                queued_status INTEGER,
                queued_body TEXT
            );
            CREATE TABLE IF NOT EXISTS queue (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                received_at_ms INTEGER NOT NULL,
                frame BLOB NOT NULL
            );
            CREATE INDEX IF NOT EXISTS queue_by_name ON queue(name, seq);",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl NameRegistry for SqliteDurable {
    fn claim(&self, name: &str, key: &str) -> Result<Claim, DurableError> {
        let hash = key_hash(key);
        let conn = self.conn();
        // One statement: concurrent claims cannot both win.
        conn.execute(
            "INSERT OR IGNORE INTO names (name, key_hash) VALUES (?1, ?2)",
            params![name, hash],
        )?;
        let owner: String =
            conn.query_row("SELECT key_hash FROM names WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
        let same: bool = subtle::ConstantTimeEq::ct_eq(owner.as_bytes(), hash.as_bytes()).into();
        Ok(if same { Claim::Granted } else { Claim::Taken })
    }

    fn is_known(&self, name: &str) -> Result<bool, DurableError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM names WHERE name = ?1")?
            .exists([name])?)
    }

    fn set_queued_answer(
        &self,
        name: &str,
        answer: Option<&QueuedAnswer>,
    ) -> Result<(), DurableError> {
        self.conn().execute(
            "UPDATE names SET queued_status = ?2, queued_body = ?3 WHERE name = ?1",
            params![
                name,
                answer.map(|a| a.status),
                answer.and_then(|a| a.body.clone())
            ],
        )?;
        Ok(())
    }

    fn queued_answer(&self, name: &str) -> Result<Option<QueuedAnswer>, DurableError> {
        let row: Option<(Option<u16>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT queued_status, queued_body FROM names WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(status, body)| status.map(|status| QueuedAnswer { status, body })))
    }
}

impl DeliveryQueue for SqliteDurable {
    fn enqueue(
        &self,
        name: &str,
        id: Ulid,
        frame: &[u8],
        limits: &QueueLimits,
        now_ms: u64,
    ) -> Result<(), EnqueueError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(DurableError::from)?;
        let cutoff =
            now_ms.saturating_sub(u64::try_from(limits.max_age.as_millis()).unwrap_or(u64::MAX));
        let expired = tx
            .execute(
                "DELETE FROM queue WHERE name = ?1 AND received_at_ms < ?2",
                params![name, cutoff as i64],
            )
            .map_err(DurableError::from)?;
        if expired > 0 {
            tracing::warn!(tunnel = %name, expired, "dropped queued requests older than the queue's max age");
        }
        let (count, bytes): (i64, i64) = tx
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(frame)), 0) FROM queue WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(DurableError::from)?;
        if count as u64 >= limits.max_count {
            return Err(EnqueueError::Full(format!(
                "{count} requests waiting, limit {}",
                limits.max_count
            )));
        }
        if bytes as u64 + frame.len() as u64 > limits.max_bytes {
            return Err(EnqueueError::Full(format!(
                "{bytes} bytes waiting, limit {}",
                limits.max_bytes
            )));
        }
        tx.execute(
            "INSERT INTO queue (id, name, received_at_ms, frame) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), name, now_ms as i64, frame],
        )
        .map_err(DurableError::from)?;
        tx.commit().map_err(DurableError::from)?;
        Ok(())
    }

    fn pending(
        &self,
        name: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Pending>, DurableError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, frame FROM queue WHERE name = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![name, after.unwrap_or(0), limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, id, frame) = row?;
            match Ulid::from_string(&id) {
                Ok(id) => out.push(Pending {
                    seq,
                    id,
                    frame: Bytes::from(frame),
                }),
                Err(_) => tracing::error!(%id, "queue entry with a corrupt id skipped"),
            }
        }
        Ok(out)
    }

    fn ack(&self, name: &str, id: Ulid) -> Result<bool, DurableError> {
        let n = self.conn().execute(
            "DELETE FROM queue WHERE id = ?1 AND name = ?2",
            params![id.to_string(), name],
        )?;
        Ok(n > 0)
    }

    fn depth(&self, name: &str) -> Result<u64, DurableError> {
        let n: i64 =
            self.conn()
                .query_row("SELECT COUNT(*) FROM queue WHERE name = ?1", [name], |r| {
                    r.get(0)
                })?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: QueueLimits = QueueLimits {
        max_count: 3,
        max_bytes: 1000,
        max_age: Duration::from_secs(60),
    };

    #[test]
    fn names_bind_to_the_first_key() {
        let d = SqliteDurable::open(None).unwrap();
        assert!(!d.is_known("demo").unwrap());
        assert_eq!(d.claim("demo", "k1").unwrap(), Claim::Granted);
        assert_eq!(d.claim("demo", "k1").unwrap(), Claim::Granted);
        assert_eq!(d.claim("demo", "k2").unwrap(), Claim::Taken);
        assert!(d.is_known("demo").unwrap());
        let answer = QueuedAnswer {
            status: 200,
            body: Some("ok {id}".into()),
        };
        d.set_queued_answer("demo", Some(&answer)).unwrap();
        assert_eq!(d.queued_answer("demo").unwrap(), Some(answer));
    }

    #[test]
    fn queue_is_ordered_bounded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<Ulid> = (0..4).map(|_| crate::protocol::next_id()).collect();
        {
            let d = SqliteDurable::open(Some(dir.path())).unwrap();
            for id in &ids[..3] {
                d.enqueue("demo", *id, b"frame", &LIMITS, 1_000).unwrap();
            }
            assert!(matches!(
                d.enqueue("demo", ids[3], b"frame", &LIMITS, 1_000),
                Err(EnqueueError::Full(_))
            ));
            assert!(matches!(
                d.enqueue("other", ids[3], &[0; 1001], &LIMITS, 1_000),
                Err(EnqueueError::Full(_))
            ));
        }
        let d = SqliteDurable::open(Some(dir.path())).unwrap();
        let pending = d.pending("demo", None, 10).unwrap();
        let pending_ids: Vec<Ulid> = pending.iter().map(|p| p.id).collect();
        assert_eq!(pending_ids, ids[..3]);
        assert_eq!(
            d.pending("demo", Some(pending[0].seq), 10).unwrap().len(),
            2
        );
        assert!(
            !d.ack("other", ids[0]).unwrap(),
            "another tunnel cannot ack"
        );
        assert!(d.ack("demo", ids[0]).unwrap());
        assert_eq!(d.depth("demo").unwrap(), 2);
        // Entries older than max_age go on the next enqueue.
        d.enqueue("demo", ids[3], b"frame", &LIMITS, 1_000 + 61_000)
            .unwrap();
        assert_eq!(d.depth("demo").unwrap(), 1);
    }
}
