//! Schema versions and migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE exchanges (
        id TEXT PRIMARY KEY,
        tunnel TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        request_headers TEXT NOT NULL,
        request_body BLOB NOT NULL,
        status INTEGER,
        response_headers TEXT,
        response_body BLOB,
        duration_us INTEGER NOT NULL,
        error TEXT,
        replay_of TEXT,
        queued INTEGER NOT NULL DEFAULT 0,
        peer TEXT,
        public_url TEXT,
        signature TEXT,
        request_bytes INTEGER NOT NULL,
        response_bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX exchanges_received_at ON exchanges(received_at_ms);",
    // Retention sums body sizes over the whole history after every batch
    // that crosses a bound. Without this covering index each sum walked
    // every row's overflow pages (the sizes sit after the bodies): 60% of
    // the agent's CPU once a history was full.
    "CREATE INDEX exchanges_sizes ON exchanges(id, request_bytes, response_bytes);",
    // Stats group by these, computed once per exchange (see `stats::derive`;
    // older rows are backfilled by `stats::backfill` in the same step). The
    // index covers every column `stats` reads, in time order, so a window of
    // a million exchanges is one range scan that never touches a body.
    "ALTER TABLE exchanges ADD COLUMN path_pattern TEXT;
    ALTER TABLE exchanges ADD COLUMN provider TEXT;
    ALTER TABLE exchanges ADD COLUMN event_type TEXT;
    ALTER TABLE exchanges ADD COLUMN cause TEXT;
    ALTER TABLE exchanges ADD COLUMN sig_valid INTEGER;
    CREATE INDEX exchanges_stats ON exchanges(received_at_ms, method, path_pattern, provider,
        event_type, status, duration_us, cause, sig_valid, queued, replay_of);",
    // How many times a durable delivery was sent to the app (stats'
    // `retried`; older rows were single attempts), covered by a rebuilt
    // stats index; and the requests the relay refused for this tunnel
    // (`relay_refused`), from its coalesced notes: one row per distinct
    // example, plus one without method/path for the rest of a note.
    "ALTER TABLE exchanges ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    DROP INDEX exchanges_stats;
    CREATE INDEX exchanges_stats ON exchanges(received_at_ms, method, path_pattern, provider,
        event_type, status, duration_us, cause, sig_valid, queued, replay_of, attempts);
    CREATE TABLE relay_refusals (
        id INTEGER PRIMARY KEY,
        received_at_ms INTEGER NOT NULL,
        method TEXT,
        path TEXT,
        status INTEGER,
        reason TEXT,
        count INTEGER NOT NULL
    );
    CREATE INDEX relay_refusals_time ON relay_refusals(received_at_ms);",
    // The capture limit (`crate::capture`): a body kept only in part has its
    // whole size and SHA-256 here, as JSON; `capture_degraded` marks an
    // exchange recorded without bodies because the writer fell behind.
    "ALTER TABLE exchanges ADD COLUMN request_truncated TEXT;
    ALTER TABLE exchanges ADD COLUMN response_truncated TEXT;
    ALTER TABLE exchanges ADD COLUMN capture_degraded INTEGER NOT NULL DEFAULT 0;",
];

/// The version whose migration adds the derived stats columns.
const STATS_COLUMNS_VERSION: usize = 3;

/// Brings the database up to the newest schema.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if version + 1 == STATS_COLUMNS_VERSION {
            super::stats::backfill(&tx)?;
        }
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn retention_scans_read_the_size_index_not_the_bodies() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let sum = plan(
            &conn,
            "SELECT COALESCE(SUM(request_bytes + response_bytes), 0) FROM exchanges",
        );
        assert!(sum.contains("COVERING INDEX exchanges_sizes"), "{sum}");
        let by_count = plan(
            &conn,
            "SELECT id FROM exchanges ORDER BY id DESC LIMIT -1 OFFSET 5",
        );
        assert!(by_count.contains("COVERING INDEX"), "{by_count}");
        // Migrating again is a no-op.
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn stats_scan_reads_only_the_stats_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let scan = plan(
            &conn,
            "SELECT received_at_ms, method, path_pattern, provider, event_type, status,
                    duration_us, cause, sig_valid, queued, replay_of IS NOT NULL, attempts
             FROM exchanges WHERE received_at_ms >= 1 AND received_at_ms < 2",
        );
        assert!(scan.contains("COVERING INDEX exchanges_stats"), "{scan}");
    }

    #[test]
    fn the_stats_migration_backfills_older_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        let mut old = super::super::tests::sample(4);
        old.path = "/orders/42?x=1".into();
        old.request_headers = vec![crate::exchange::Header::new("x-github-event", "push")];
        {
            // A history as version 2 left it, with one row.
            let mut conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..2] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 2).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute(
                "INSERT INTO exchanges (id, tunnel, received_at_ms, method, path, target, request_headers, request_body, status, response_headers, response_body, duration_us, signature, request_bytes, response_bytes)
                 VALUES (?1, 't', 1, 'POST', ?2, 'http://x', ?3, x'7b7d', 503, '[]', x'', 5, ?4, 2, 0)",
                rusqlite::params![
                    old.id.to_string(),
                    old.path,
                    serde_json::to_string(&old.request_headers).unwrap(),
                    serde_json::to_string(&old.signature).unwrap(),
                ],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = super::super::Store::open(&path).unwrap();
        let derived: (String, String, String, String, bool) = store
            .conn
            .query_row(
                "SELECT path_pattern, provider, event_type, cause, sig_valid FROM exchanges",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            derived,
            (
                "/orders/:n".into(),
                "github".into(),
                "push".into(),
                "app_5xx".into(),
                false
            )
        );
        // v4: the old row was one attempt, and reads back whole.
        let back = store.get(&old.id).unwrap().unwrap();
        assert_eq!(back.attempts, 1);
        assert_eq!(back.path, old.path);
    }

    #[test]
    fn refusals_are_stored_capped_and_counted_by_the_stats_scan() {
        use crate::filter::Filter;
        use crate::stats::{Aggregator, Dimension, Refusal, Window};
        let dir = tempfile::tempdir().unwrap();
        let mut store = super::super::Store::open(&dir.path().join("h.sqlite3")).unwrap();
        let named = |t, path: &str, status| Refusal {
            received_at_ms: t,
            method: Some("POST".into()),
            path: Some(path.into()),
            status: Some(status),
            reason: Some("body_too_large".into()),
            count: 2,
        };
        let unnamed = Refusal {
            received_at_ms: 11,
            method: None,
            path: None,
            status: None,
            reason: None,
            count: 5,
        };
        store
            .insert_refusals(&[
                named(10, "/orders/7?x=1", 413),
                named(12, "/big", 429),
                unnamed,
                named(99, "/late", 413),
            ])
            .unwrap();
        let mut retried = super::super::tests::sample(1);
        retried.received_at_ms = 10;
        retried.path = "/orders/8".into();
        retried.attempts = 3;
        store.insert(&retried).unwrap();
        let report = |store: &super::super::Store, filter: &Filter| {
            let mut agg = Aggregator::new(Window::new(0, 50, 5), &[Dimension::Path], 10);
            store.stats_scan(0, 50, filter, &mut agg).unwrap();
            agg.finish()
        };
        let all = report(&store, &Filter::default());
        assert_eq!(all.total.errors.relay_refused, 9);
        assert_eq!(all.total.retried, 1);
        let orders = &all.sections[0].rows[0];
        assert_eq!(orders.key, "POST /orders/:n");
        assert_eq!(
            (orders.count, orders.retried, orders.errors.relay_refused),
            (1, 1, 2)
        );
        // Filters apply to named refusals; unnamed ones cannot match a filter.
        let only_429 = report(&store, &Filter::parse("status:429", 0).unwrap());
        assert_eq!(only_429.total.errors.relay_refused, 2);
        assert_eq!(only_429.total.count, 0);
        let orders_only = report(&store, &Filter::parse("path:/orders/*", 0).unwrap());
        assert_eq!(orders_only.total.errors.relay_refused, 2);
        assert_eq!(
            report(&store, &Filter::parse("method:GET", 0).unwrap())
                .total
                .errors
                .relay_refused,
            0
        );
        // Clearing the history clears refusals too.
        store.clear().unwrap();
        assert!(report(&store, &Filter::default()).is_empty());
    }

    #[test]
    fn refusal_rows_are_capped_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = super::super::Store::open(&dir.path().join("h.sqlite3")).unwrap();
        let row = |t| crate::stats::Refusal {
            received_at_ms: t,
            method: None,
            path: None,
            status: None,
            reason: None,
            count: 1,
        };
        let cap = super::super::stats::MAX_REFUSAL_ROWS;
        let many: Vec<_> = (0..cap + 10).map(row).collect();
        store.insert_refusals(&many).unwrap();
        let (n, oldest): (i64, i64) = store
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(received_at_ms) FROM relay_refusals",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n as u64, oldest), (cap, 10));
    }
}
