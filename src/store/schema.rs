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
];

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
}
