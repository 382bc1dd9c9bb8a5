//! History of exchanges in SQLite (WAL), so `listen`, `replay` and
//! `requests` can run at once from different terminals.
//!
//! [`Store`] is one connection for reads and direct writes; [`writer`] runs
//! the batching writer that the live path uses.

mod resolve;
mod schema;
pub mod stats;
pub mod writer;

use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use ulid::Ulid;

use crate::capture::Truncation;
use crate::exchange::{Exchange, ExchangeResponse, ExchangeSummary, Header, SignatureVerdict};

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("history database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer hooktunnel.
    #[error(
        "history database has schema version {found}, newer than this hooktunnel understands ({supported}); upgrade hooktunnel"
    )]
    TooNew { found: i64, supported: i64 },
    /// A stored row could not be decoded.
    #[error("corrupt history row {id}: {why}")]
    Corrupt { id: String, why: String },
    /// No exchange matched.
    #[error("no exchange {0} in history (see `hooktunnel requests`)")]
    NotFound(String),
    /// The history is empty.
    #[error("history is empty: nothing captured yet")]
    Empty,
    /// What the user typed is part of several ids.
    #[error("ambiguous: '{what}' matches {}{}; type more of the id", .ids.join(", "), more_note(*.more))]
    Ambiguous {
        /// What was typed.
        what: String,
        /// The first few matching ids, newest first.
        ids: Vec<String>,
        /// How many more match.
        more: u64,
    },
    /// The directory (or a database file) could not be created or made private.
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

fn more_note(more: u64) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(" (and {more} more)")
    }
}

/// One open connection to the history database.
pub struct Store {
    conn: Connection,
}

/// Which way a page of history runs from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Newest first: ids below the cursor.
    Older,
    /// Oldest first: ids above the cursor.
    Newer,
}

/// The pages of [`Store::walk`].
pub struct Walk<'a> {
    store: &'a Store,
    /// Where the next page starts; `None` once the walk is over.
    from: Option<Bound<Ulid>>,
    direction: Direction,
    chunk: usize,
}

impl Iterator for Walk<'_> {
    type Item = Result<Vec<ExchangeSummary>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let from = self.from.take()?;
        let page = match self.store.page(from, self.direction, self.chunk) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        if page.len() == self.chunk
            && let Some(last) = page.last()
        {
            self.from = Some(Bound::Excluded(last.id));
        }
        (!page.is_empty()).then_some(Ok(page))
    }
}

const SUMMARY_COLUMNS: &str = "id, received_at_ms, method, path, status, duration_us, request_bytes, response_bytes, error, replay_of, queued, signature, tunnel";
/// The columns every schema version since v1 has, in [`full_from_row`]'s order.
macro_rules! captured_columns {
    () => {
        "id, tunnel, received_at_ms, method, path, target, request_headers, request_body, status, response_headers, response_body, duration_us, error, replay_of, queued, peer, public_url, signature"
    };
}
/// What [`full_from_row`] reads, minus `attempts` (v4) and the capture
/// columns (v5): migrations before them select these and literals instead.
const CAPTURED_COLUMNS: &str = captured_columns!();
const FULL_COLUMNS: &str = concat!(
    captured_columns!(),
    ", attempts, request_truncated, response_truncated, capture_degraded"
);

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Captured headers hold credentials: the directory and every file
        // of the database (WAL and shared memory too) are the owner's only,
        // whatever the umask.
        if let Some(dir) = path.parent() {
            crate::private::ensure_dir(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let files = crate::private::sqlite_files(path);
        for file in &files {
            crate::private::touch(file).map_err(|source| StoreError::Dir {
                path: file.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        for file in &files {
            crate::private::restrict_file(file).map_err(|source| StoreError::Dir {
                path: file.display().to_string(),
                source,
            })?;
        }
        let mut store = Self { conn };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// Inserts exchanges in one transaction; ids already stored are left as they are.
    pub fn insert_many(&mut self, exchanges: &[Exchange]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO exchanges (id, tunnel, received_at_ms, method, path, target, request_headers, request_body, status, response_headers, response_body, duration_us, error, replay_of, queued, peer, public_url, signature, request_bytes, response_bytes, path_pattern, provider, event_type, cause, sig_valid, attempts, request_truncated, response_truncated, capture_degraded)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)",
            )?;
            for e in exchanges {
                let response = e.response.as_ref();
                let derived = crate::stats::derive(e);
                let (pattern, provider, event_type, cause, sig_valid) =
                    stats::derived_params(&derived);
                stmt.execute(params![
                    e.id.to_string(),
                    e.tunnel,
                    e.received_at_ms as i64,
                    e.method,
                    e.path,
                    e.target,
                    headers_to_json(&e.request_headers),
                    &e.request_body[..],
                    response.map(|r| r.status),
                    response.map(|r| headers_to_json(&r.headers)),
                    response.map(|r| &r.body[..]),
                    e.duration_us as i64,
                    e.error,
                    e.replay_of.map(|id| id.to_string()),
                    e.queued,
                    e.peer,
                    e.public_url,
                    e.signature
                        .as_ref()
                        .and_then(|s| serde_json::to_string(s).ok()),
                    e.request_body.len() as i64,
                    response.map_or(0, |r| r.body.len() as i64),
                    pattern,
                    provider,
                    event_type,
                    cause,
                    sig_valid,
                    e.attempts.max(1),
                    truncation_to_json(e.request_truncated.as_ref()),
                    truncation_to_json(response.and_then(|r| r.truncated.as_ref())),
                    e.capture_degraded,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Inserts one exchange.
    pub fn insert(&mut self, exchange: &Exchange) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(exchange))
    }

    /// True when an exchange with this id is stored.
    pub fn contains(&self, id: &Ulid) -> Result<bool, StoreError> {
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM exchanges WHERE id = ?1")?
            .exists([id.to_string()])?;
        Ok(found)
    }

    /// Number of stored exchanges.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Newest first: `limit` summaries after skipping `offset`.
    ///
    /// For a window at an arbitrary position (the inspector's list); to walk
    /// the history use [`Store::page`] or [`Store::walk`], which rows
    /// inserted meanwhile cannot shift.
    pub fn list(&self, limit: usize, offset: usize) -> Result<Vec<ExchangeSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM exchanges ORDER BY id DESC LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], summary_from_row)?;
        collect(rows)
    }

    /// Up to `limit` summaries on `direction`'s side of `from`: newest first
    /// below it for [`Direction::Older`], oldest first above it for
    /// [`Direction::Newer`].
    ///
    /// Keyset paging by id (`WHERE id < ?`): pass the last id of one page as
    /// `Bound::Excluded` to get the next, and rows inserted in between
    /// neither repeat nor hide a row.
    pub fn page(
        &self,
        from: Bound<Ulid>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<ExchangeSummary>, StoreError> {
        let (below, above, order) = match direction {
            Direction::Older => ("<", "<=", "DESC"),
            Direction::Newer => (">", ">=", "ASC"),
        };
        let (condition, id) = match from {
            Bound::Excluded(id) => (format!("WHERE id {below} ?2"), Some(id)),
            Bound::Included(id) => (format!("WHERE id {above} ?2"), Some(id)),
            Bound::Unbounded => (String::new(), None),
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM exchanges {condition} ORDER BY id {order} LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match id {
            Some(id) => stmt.query_map(params![limit, id.to_string()], summary_from_row)?,
            None => stmt.query_map(params![limit], summary_from_row)?,
        };
        collect(rows)
    }

    /// Pages of up to `chunk` summaries from `from` in `direction`, each
    /// starting after the last row of the one before (see [`Store::page`]);
    /// ends after the first short page.
    pub fn walk(&self, from: Bound<Ulid>, direction: Direction, chunk: usize) -> Walk<'_> {
        Walk {
            store: self,
            from: Some(from),
            direction,
            chunk: chunk.max(1),
        }
    }

    /// One exchange by id.
    pub fn get(&self, id: &Ulid) -> Result<Option<Exchange>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FULL_COLUMNS} FROM exchanges WHERE id = ?1"
        ))?;
        let row = stmt.query_row([id.to_string()], full_from_row).optional()?;
        row.transpose()
    }

    /// The newest exchange.
    pub fn last(&self) -> Result<Option<Exchange>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FULL_COLUMNS} FROM exchanges ORDER BY id DESC LIMIT 1"
        ))?;
        let row = stmt.query_row([], full_from_row).optional()?;
        row.transpose()
    }

    /// Deletes everything (exchanges and relay refusals); returns how many
    /// exchanges were removed.
    pub fn clear(&mut self) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM exchanges", [])?;
        tx.execute("DELETE FROM relay_refusals", [])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Evicts the oldest exchanges beyond `max_count` rows or `max_bytes` of bodies.
    pub fn enforce_retention(&mut self, max_count: u64, max_bytes: u64) -> Result<u64, StoreError> {
        self.evict_slice(max_count, max_bytes, u64::MAX, u64::MAX)
    }

    /// Like [`Store::enforce_retention`], but removes at most `slice_rows`
    /// exchanges and (beyond the first) `slice_bytes` of bodies, oldest
    /// first, so one call never holds the database for long; call again to
    /// go on. Returns how many were removed.
    pub fn evict_slice(
        &mut self,
        max_count: u64,
        max_bytes: u64,
        slice_rows: u64,
        slice_bytes: u64,
    ) -> Result<u64, StoreError> {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let removed = self.conn.execute(
            "WITH ranked AS (
                 SELECT id, request_bytes + response_bytes AS size,
                        ROW_NUMBER() OVER (ORDER BY id DESC) AS newer_rows,
                        SUM(request_bytes + response_bytes) OVER (ORDER BY id DESC) AS newer_bytes
                 FROM exchanges
             ), doomed AS (
                 SELECT id, size FROM ranked WHERE newer_rows > ?1 OR newer_bytes > ?2
             ), sliced AS (
                 SELECT id,
                        ROW_NUMBER() OVER (ORDER BY id) AS n,
                        SUM(size) OVER (ORDER BY id) AS freed
                 FROM doomed
             )
             DELETE FROM exchanges WHERE id IN (
                 SELECT id FROM sliced WHERE n = 1 OR (n <= ?3 AND freed <= ?4)
             )",
            rusqlite::params![
                clamp(max_count),
                clamp(max_bytes),
                clamp(slice_rows),
                clamp(slice_bytes)
            ],
        )?;
        Ok(removed as u64)
    }
}

fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, StoreError>>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn headers_to_json(headers: &[Header]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

fn headers_from_json(id: &str, json: &str) -> Result<Vec<Header>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        why: format!("headers: {e}"),
    })
}

fn parse_id(id: &str) -> Result<Ulid, StoreError> {
    Ulid::from_string(id).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        why: e.to_string(),
    })
}

fn parse_opt_id(id: &str, value: Option<String>) -> Result<Option<Ulid>, StoreError> {
    value
        .map(|v| parse_id(&v))
        .transpose()
        .map_err(|_| StoreError::Corrupt {
            id: id.to_owned(),
            why: "replay_of is not an id".into(),
        })
}

fn truncation_to_json(t: Option<&Truncation>) -> Option<String> {
    t.and_then(|t| serde_json::to_string(t).ok())
}

fn truncation_from_json(id: &str, json: Option<String>) -> Result<Option<Truncation>, StoreError> {
    json.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            id: id.to_owned(),
            why: format!("truncation: {e}"),
        })
}

fn parse_signature(json: Option<String>) -> Option<SignatureVerdict> {
    json.and_then(|s| serde_json::from_str(&s).ok())
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ExchangeSummary, StoreError>> {
    let id: String = row.get(0)?;
    let duration_us: i64 = row.get(5)?;
    let replay_of: Option<String> = row.get(9)?;
    let signature: Option<String> = row.get(11)?;
    let partial = ExchangeSummary {
        id: Ulid::nil(),
        tunnel: row.get(12)?,
        received_at_ms: row.get::<_, i64>(1)?.max(0) as u64,
        method: row.get(2)?,
        path: row.get(3)?,
        status: row.get(4)?,
        duration_ms: (duration_us as f64 / 100.0).round() / 10.0,
        request_bytes: row.get::<_, i64>(6)?.max(0) as u64,
        response_bytes: row.get::<_, i64>(7)?.max(0) as u64,
        error: row.get(8)?,
        replay_of: None,
        queued: row.get(10)?,
        signature: parse_signature(signature),
    };
    Ok((|| {
        Ok(ExchangeSummary {
            id: parse_id(&id)?,
            replay_of: parse_opt_id(&id, replay_of)?,
            ..partial
        })
    })())
}

fn full_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Exchange, StoreError>> {
    let id: String = row.get(0)?;
    let request_headers: String = row.get(6)?;
    let request_body: Vec<u8> = row.get(7)?;
    let status: Option<u16> = row.get(8)?;
    let response_headers: Option<String> = row.get(9)?;
    let response_body: Option<Vec<u8>> = row.get(10)?;
    let replay_of: Option<String> = row.get(13)?;
    let signature: Option<String> = row.get(17)?;
    let tunnel: String = row.get(1)?;
    let received_at_ms = row.get::<_, i64>(2)?.max(0) as u64;
    let method: String = row.get(3)?;
    let path: String = row.get(4)?;
    let target: String = row.get(5)?;
    let duration_us = row.get::<_, i64>(11)?.max(0) as u64;
    let error: Option<String> = row.get(12)?;
    let queued: bool = row.get(14)?;
    let peer: Option<String> = row.get(15)?;
    let public_url: Option<String> = row.get(16)?;
    let attempts: i64 = row.get(18)?;
    let request_truncated: Option<String> = row.get(19)?;
    let response_truncated: Option<String> = row.get(20)?;
    let capture_degraded: bool = row.get(21)?;
    Ok((|| {
        let response = match (status, response_headers) {
            (Some(status), Some(headers)) => Some(ExchangeResponse {
                status,
                headers: headers_from_json(&id, &headers)?,
                body: Bytes::from(response_body.unwrap_or_default()),
                truncated: truncation_from_json(&id, response_truncated)?,
            }),
            _ => None,
        };
        Ok(Exchange {
            id: parse_id(&id)?,
            tunnel,
            received_at_ms,
            method,
            path,
            target,
            request_headers: headers_from_json(&id, &request_headers)?,
            request_body: Bytes::from(request_body),
            request_truncated: truncation_from_json(&id, request_truncated)?,
            capture_degraded,
            response,
            duration_us,
            error,
            replay_of: parse_opt_id(&id, replay_of)?,
            queued,
            peer,
            public_url,
            signature: parse_signature(signature),
            attempts: attempts.clamp(1, i64::from(u32::MAX)) as u32,
        })
    })())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A plausible exchange for tests.
    pub fn sample(n: u8) -> Exchange {
        Exchange {
            request_truncated: None,
            capture_degraded: false,
            attempts: 1,
            id: hooktunnel_protocol::next_id(),
            tunnel: "demo".into(),
            received_at_ms: 1_700_000_000_000 + u64::from(n),
            method: "POST".into(),
            path: format!("/hooks/{n}?a=1"),
            target: "http://localhost:3000".into(),
            request_headers: vec![Header::new("x-dup", "1"), Header::new("x-dup", vec![0xff])],
            request_body: Bytes::from(vec![n, 0, 13, 10]),
            response: Some(ExchangeResponse {
                truncated: None,
                status: 200,
                headers: vec![Header::new("content-type", "text/plain")],
                body: Bytes::from_static(b"ok"),
            }),
            duration_us: 1234,
            error: None,
            replay_of: None,
            queued: false,
            peer: Some("127.0.0.1:1".into()),
            public_url: None,
            signature: Some(SignatureVerdict {
                provider: "github".into(),
                valid: false,
                reason: Some("mismatch".into()),
            }),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.sqlite3")).unwrap();
        (dir, store)
    }

    #[test]
    fn round_trip_keeps_every_byte() {
        let (_dir, mut store) = open();
        let e = sample(7);
        store.insert(&e).unwrap();
        assert_eq!(store.get(&e.id).unwrap(), Some(e.clone()));
        assert_eq!(store.last().unwrap(), Some(e.clone()));
        assert_eq!(store.resolve(&e.id.to_string()[20..]).unwrap(), e);
        assert!(matches!(
            store.resolve("nope"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn truncations_and_the_degraded_flag_round_trip() {
        let (_dir, mut store) = open();
        let mut e = sample(3);
        e.request_truncated = Some(Truncation {
            total_bytes: 52 * 1024 * 1024,
            sha256: "ab".repeat(32),
            limit: 10 * 1024 * 1024,
        });
        e.capture_degraded = true;
        if let Some(r) = e.response.as_mut() {
            r.truncated = Some(Truncation {
                total_bytes: 9,
                sha256: "cd".repeat(32),
                limit: 2,
            });
        }
        store.insert(&e).unwrap();
        assert_eq!(store.get(&e.id).unwrap(), Some(e.clone()));
        // A whole capture reads back with no truncation.
        let whole = sample(4);
        store.insert(&whole).unwrap();
        let back = store.get(&whole.id).unwrap().unwrap();
        assert!(!back.truncated() && !back.capture_degraded);
    }

    #[test]
    fn list_is_newest_first_and_duplicates_are_ignored() {
        let (_dir, mut store) = open();
        let batch: Vec<Exchange> = (0..5).map(sample).collect();
        store.insert_many(&batch).unwrap();
        store.insert(&batch[0]).unwrap();
        let ids: Vec<Ulid> = store.list(10, 0).unwrap().iter().map(|s| s.id).collect();
        let mut expected: Vec<Ulid> = batch.iter().map(|e| e.id).collect();
        expected.reverse();
        assert_eq!(ids, expected);
        assert_eq!(store.count().unwrap(), 5);
        assert_eq!(store.list(2, 1).unwrap().len(), 2);
    }

    #[test]
    fn paging_older_has_no_repeats_or_gaps_while_rows_arrive() {
        let (_dir, mut store) = open();
        let first: Vec<Exchange> = (0..7).map(sample).collect();
        store.insert_many(&first).unwrap();
        let mut seen = Vec::new();
        let mut from = Bound::Unbounded;
        loop {
            let page = store.page(from, Direction::Older, 3).unwrap();
            // A running `listen` keeps writing between pages: with OFFSET
            // paging each insert would push a row seen already into the next page.
            store.insert(&sample(99)).unwrap();
            let Some(last) = page.last() else { break };
            from = Bound::Excluded(last.id);
            seen.extend(page.iter().map(|s| s.id));
        }
        let want: Vec<Ulid> = first.iter().rev().map(|e| e.id).collect();
        assert_eq!(seen, want);
        let upto: Vec<Ulid> = store
            .page(Bound::Included(first[3].id), Direction::Older, 10)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(upto, want[3..]);
    }

    #[test]
    fn walking_newer_sees_rows_that_arrive_and_stops_on_a_short_page() {
        let (dir, store) = open();
        let mut writer = Store::open(&dir.path().join("h.sqlite3")).unwrap();
        let first: Vec<Exchange> = (0..4).map(sample).collect();
        writer.insert_many(&first).unwrap();
        let (mut seen, mut late) = (Vec::new(), Vec::new());
        for page in store.walk(Bound::Included(first[1].id), Direction::Newer, 2) {
            seen.extend(page.unwrap().iter().map(|s| s.id));
            if late.len() < 2 {
                let e = sample(50);
                writer.insert(&e).unwrap();
                late.push(e.id);
            }
        }
        let want: Vec<Ulid> = first[1..].iter().map(|e| e.id).chain(late).collect();
        assert_eq!(seen, want);
        // Six rows: two full pages; the empty third one is not yielded.
        assert_eq!(store.walk(Bound::Unbounded, Direction::Older, 3).count(), 2);
    }

    #[test]
    fn retention_evicts_oldest_first() {
        let (_dir, mut store) = open();
        let batch: Vec<Exchange> = (0..10).map(sample).collect();
        store.insert_many(&batch).unwrap();
        assert_eq!(store.enforce_retention(6, u64::MAX).unwrap(), 4);
        assert_eq!(store.last().unwrap().unwrap().id, batch[9].id);
        // Each exchange holds 4 + 2 body bytes: 13 bytes keep two.
        assert_eq!(store.enforce_retention(100, 13).unwrap(), 4);
        let left: Vec<Ulid> = store.list(10, 0).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(left, vec![batch[9].id, batch[8].id]);
        assert_eq!(store.clear().unwrap(), 2);
        assert!(matches!(store.resolve("last"), Err(StoreError::Empty)));
    }

    #[test]
    fn eviction_slices_are_bounded_and_oldest_first() {
        let (_dir, mut store) = open();
        let batch: Vec<Exchange> = (0..10).map(sample).collect();
        store.insert_many(&batch).unwrap();
        let oldest =
            |store: &Store| store.list(1, store.count().unwrap() as usize - 1).unwrap()[0].id;
        // Eight are over a bound of two rows; a slice takes three of them.
        assert_eq!(store.evict_slice(2, u64::MAX, 3, u64::MAX).unwrap(), 3);
        assert_eq!(oldest(&store), batch[3].id);
        // By bytes (6 per exchange): 13 bytes of slice take two more.
        assert_eq!(store.evict_slice(2, u64::MAX, 100, 13).unwrap(), 2);
        assert_eq!(oldest(&store), batch[5].id);
        // A slice smaller than one exchange still makes progress.
        assert_eq!(store.evict_slice(2, u64::MAX, 100, 1).unwrap(), 1);
        // Unbounded: the rest of what is over goes at once.
        assert_eq!(
            store.evict_slice(2, u64::MAX, u64::MAX, u64::MAX).unwrap(),
            2
        );
        assert_eq!(store.count().unwrap(), 2);
        assert_eq!(oldest(&store), batch[8].id);
        assert_eq!(store.evict_slice(2, u64::MAX, 100, 100).unwrap(), 0);
    }
}
