//! The single-node backend: SQLite in the data dir (or in memory).
//!
//! Every call blocks (a commit waits for fsync), so it belongs on the
//! database thread [`super::Durable`] runs; debug builds assert that.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, params};
use ulid::Ulid;

use super::policy::{self, Usage};
use super::{
    Claim, DeliveryQueue, DurableError, Enqueue, EnqueueError, NameRegistry, Pending, QueuedAnswer,
    Release, Stored, key_hash,
};

/// Single-node implementation on SQLite; owned by one thread.
pub struct SqliteDurable {
    conn: Connection,
}

/// Blocking calls must not run on an async runtime's thread.
fn assert_off_runtime() {
    debug_assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "a blocking SQLite call ran on an async runtime thread; go through durable::Durable"
    );
}

impl SqliteDurable {
    /// Opens `<dir>/relay.sqlite3`, or an in-memory database when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> Result<Self, DurableError> {
        assert_off_runtime();
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
            CREATE INDEX IF NOT EXISTS queue_by_name ON queue(name, seq);
            CREATE INDEX IF NOT EXISTS names_by_key ON names(key_hash);",
        )?;
        // Databases from before per-client queue shares lack the column.
        let has_client = conn
            .prepare("SELECT 1 FROM pragma_table_info('queue') WHERE name = 'client'")?
            .exists([])?;
        if !has_client {
            conn.execute_batch("ALTER TABLE queue ADD COLUMN client TEXT NOT NULL DEFAULT ''")?;
        }
        // Databases from before edge rules (issue 17) lack their column.
        let has_rules = conn
            .prepare("SELECT 1 FROM pragma_table_info('names') WHERE name = 'edge_rules'")?
            .exists([])?;
        if !has_rules {
            conn.execute_batch("ALTER TABLE names ADD COLUMN edge_rules TEXT")?;
        }
        Ok(Self { conn })
    }

    fn conn(&self) -> &Connection {
        assert_off_runtime();
        &self.conn
    }
}

impl NameRegistry for SqliteDurable {
    fn claim_within(&self, name: &str, key: &str, max_names: u64) -> Stored<Claim> {
        let hash = key_hash(key);
        let conn = self.conn();
        let known = conn
            .prepare_cached("SELECT 1 FROM names WHERE name = ?1")?
            .exists([name])?;
        if !known {
            // This thread owns the connection: nothing claims between the count and the insert.
            let held: i64 = conn.query_row(
                "SELECT COUNT(*) FROM names WHERE key_hash = ?1",
                [&hash],
                |r| r.get(0),
            )?;
            let held = u64::try_from(held).unwrap_or(0);
            if held >= max_names {
                return Ok(Claim::TooMany { held });
            }
        }
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

    fn release(&self, name: &str, key: &str, dry_run: bool) -> Stored<Release> {
        let hash = key_hash(key);
        let tx = self.conn().unchecked_transaction()?;
        let owner: Option<String> = tx
            .query_row("SELECT key_hash FROM names WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(owner) = owner else {
            return Ok(Release::Unknown);
        };
        let same: bool = subtle::ConstantTimeEq::ct_eq(owner.as_bytes(), hash.as_bytes()).into();
        if !same {
            return Ok(Release::NotOwner);
        }
        let queued: i64 =
            tx.query_row("SELECT COUNT(*) FROM queue WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
        if !dry_run {
            tx.execute("DELETE FROM queue WHERE name = ?1", [name])?;
            tx.execute("DELETE FROM names WHERE name = ?1", [name])?;
            tx.commit()?;
        }
        Ok(Release::Released {
            queued: u64::try_from(queued).unwrap_or(0),
        })
    }

    fn is_known(&self, name: &str) -> Stored<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM names WHERE name = ?1")?
            .exists([name])?)
    }

    fn set_queued_answer(&self, name: &str, answer: Option<&QueuedAnswer>) -> Stored<()> {
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

    fn set_edge_rules(&self, name: &str, rules: Option<&str>) -> Stored<()> {
        self.conn().execute(
            "UPDATE names SET edge_rules = ?2 WHERE name = ?1",
            params![name, rules],
        )?;
        Ok(())
    }

    fn all_edge_rules(&self) -> Stored<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, edge_rules FROM names WHERE edge_rules IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn queued_answer(&self, name: &str) -> Stored<Option<QueuedAnswer>> {
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
    fn enqueue(&self, entry: &Enqueue) -> Result<(), EnqueueError> {
        let Enqueue {
            name,
            id,
            client,
            frame,
            limits,
            now_ms,
        } = entry;
        // The connection belongs to this thread alone, so no other
        // transaction can be open on it.
        let tx = self
            .conn()
            .unchecked_transaction()
            .map_err(DurableError::from)?;
        let max_age_ms = u64::try_from(limits.max_age.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        let expired = tx
            .execute(
                "DELETE FROM queue WHERE name = ?1 AND received_at_ms < ?2",
                params![name, cutoff as i64],
            )
            .map_err(DurableError::from)?;
        if expired > 0 {
            tracing::warn!(tunnel = %name, expired, "dropped queued requests older than the queue's max age");
        }
        let (count, bytes, client_count, client_bytes): (i64, i64, i64, i64) = tx
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(frame)), 0),
                        COALESCE(SUM(client = ?2), 0),
                        COALESCE(SUM(CASE WHEN client = ?2 THEN LENGTH(frame) ELSE 0 END), 0)
                 FROM queue WHERE name = ?1",
                params![name, client],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(DurableError::from)?;
        let usage = Usage {
            count: count as u64,
            bytes: bytes as u64,
            client_count: client_count as u64,
            client_bytes: client_bytes as u64,
        };
        policy::admit(limits, usage, frame.len() as u64).map_err(EnqueueError::Full)?;
        tx.execute(
            "INSERT INTO queue (id, name, received_at_ms, frame, client) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.to_string(), name, *now_ms as i64, &frame[..], client],
        )
        .map_err(DurableError::from)?;
        tx.commit().map_err(DurableError::from)?;
        Ok(())
    }

    fn pending(&self, name: &str, after: Option<i64>, limit: usize) -> Stored<Vec<Pending>> {
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

    fn ack(&self, name: &str, id: Ulid) -> Stored<bool> {
        let n = self.conn().execute(
            "DELETE FROM queue WHERE id = ?1 AND name = ?2",
            params![id.to_string(), name],
        )?;
        Ok(n > 0)
    }

    fn depth(&self, name: &str) -> Stored<u64> {
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
    use crate::durable::QueueLimits;

    const LIMITS: QueueLimits = QueueLimits {
        max_count: 3,
        max_bytes: 1000,
        max_age: Duration::from_secs(60),
    };

    /// An entry from a client of its own (shares are tested below).
    fn entry(name: &str, id: Ulid, frame: &'static [u8], now_ms: u64) -> Enqueue {
        Enqueue {
            name: name.into(),
            id,
            client: id.to_string(),
            frame: Bytes::from_static(frame),
            limits: LIMITS,
            now_ms,
        }
    }

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
        d.set_edge_rules("demo", Some("{\"allow_ip\":[\"10.0.0.0/8\"]}"))
            .unwrap();
        let all = d.all_edge_rules().unwrap();
        assert_eq!(
            all,
            [("demo".into(), "{\"allow_ip\":[\"10.0.0.0/8\"]}".into())]
        );
        d.set_edge_rules("demo", None).unwrap();
        assert!(d.all_edge_rules().unwrap().is_empty());
    }

    #[test]
    fn names_are_capped_per_key_and_released_with_their_queue() {
        let d = SqliteDurable::open(None).unwrap();
        assert_eq!(d.claim_within("a", "k1", 2).unwrap(), Claim::Granted);
        assert_eq!(d.claim_within("b", "k1", 2).unwrap(), Claim::Granted);
        assert_eq!(
            d.claim_within("c", "k1", 2).unwrap(),
            Claim::TooMany { held: 2 }
        );
        // A name the key holds stays claimable; other keys are not affected.
        assert_eq!(d.claim_within("a", "k1", 2).unwrap(), Claim::Granted);
        assert_eq!(d.claim_within("c", "k2", 2).unwrap(), Claim::Granted);
        let entry = Enqueue {
            name: "a".into(),
            id: crate::protocol::next_id(),
            client: "203.0.113.1".into(),
            frame: Bytes::from_static(b"frame"),
            limits: crate::durable::QueueLimits {
                max_count: 10,
                max_bytes: 1000,
                max_age: Duration::from_secs(60),
            },
            now_ms: crate::protocol::now_ms(),
        };
        d.enqueue(&entry).unwrap();
        assert_eq!(d.release("a", "k2", false).unwrap(), Release::NotOwner);
        assert_eq!(d.release("zz", "k1", false).unwrap(), Release::Unknown);
        assert_eq!(
            d.release("a", "k1", true).unwrap(),
            Release::Released { queued: 1 }
        );
        assert_eq!(d.depth("a").unwrap(), 1, "a dry run changes nothing");
        assert_eq!(
            d.release("a", "k1", false).unwrap(),
            Release::Released { queued: 1 }
        );
        assert_eq!(d.depth("a").unwrap(), 0);
        assert!(!d.is_known("a").unwrap());
        assert_eq!(d.claim_within("c", "k1", 2).unwrap(), Claim::Taken);
        assert_eq!(d.claim_within("d", "k1", 2).unwrap(), Claim::Granted);
    }

    #[test]
    fn queue_is_ordered_bounded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<Ulid> = (0..4).map(|_| crate::protocol::next_id()).collect();
        {
            let d = SqliteDurable::open(Some(dir.path())).unwrap();
            for id in &ids[..3] {
                d.enqueue(&entry("demo", *id, b"frame", 1_000)).unwrap();
            }
            assert!(matches!(
                d.enqueue(&entry("demo", ids[3], b"frame", 1_000)),
                Err(EnqueueError::Full(_))
            ));
            assert!(matches!(
                d.enqueue(&entry("other", ids[3], &[0; 1001], 1_000)),
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
        d.enqueue(&entry("demo", ids[3], b"frame", 1_000 + 61_000))
            .unwrap();
        assert_eq!(d.depth("demo").unwrap(), 1);
    }

    #[test]
    fn one_client_gets_its_share_and_others_still_get_in() {
        let d = SqliteDurable::open(None).unwrap();
        let limits = QueueLimits {
            max_count: 16,
            ..LIMITS
        };
        let from = |client: &str| Enqueue {
            client: client.into(),
            limits,
            ..entry("demo", crate::protocol::next_id(), b"frame", 1_000)
        };
        for _ in 0..4 {
            d.enqueue(&from("a")).unwrap();
        }
        let refused = d.enqueue(&from("a"));
        assert!(
            matches!(&refused, Err(EnqueueError::Full(why)) if why.contains("share")),
            "{refused:?}"
        );
        d.enqueue(&from("b")).unwrap();
        assert_eq!(d.depth("demo").unwrap(), 5);
    }

    #[test]
    fn an_old_database_gains_the_client_column() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("relay.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
             name TEXT NOT NULL, received_at_ms INTEGER NOT NULL, frame BLOB NOT NULL);",
        )
        .unwrap();
        drop(conn);
        let d = SqliteDurable::open(Some(dir.path())).unwrap();
        d.enqueue(&entry("demo", crate::protocol::next_id(), b"f", 1))
            .unwrap();
        drop(d);
        SqliteDurable::open(Some(dir.path())).unwrap();
    }

    /// The debug assertion that keeps SQLite off the runtime's threads.
    #[cfg(debug_assertions)]
    #[tokio::test]
    #[should_panic(expected = "blocking SQLite call ran on an async runtime thread")]
    async fn a_call_on_a_runtime_thread_is_caught() {
        let _ = SqliteDurable::open(None);
    }
}
