//! The stats side of the store: derived columns (filled at insert, backfilled
//! by the migration that adds them) and the scan that feeds an
//! [`Aggregator`] from the covering `exchanges_stats` index, never the bodies.

use rusqlite::{Row, Transaction, params};

use super::{CAPTURED_COLUMNS, Store, StoreError, full_from_row};
use crate::filter::Filter;
use crate::stats::{Aggregator, Cause, Derived, Refusal, RefusedSample, Sample};

/// Exchanges read per backfill step.
const BACKFILL_PAGE: i64 = 256;

/// Shown for rows written by an older hooktunnel after the migration (no pattern).
pub const NOT_DERIVED: &str = "(not derived)";

/// Relay refusal rows kept: the oldest beyond this are deleted as new ones
/// arrive (a note is at most six rows, about one a second while a relay is
/// refusing, so this is hours of a flood).
pub const MAX_REFUSAL_ROWS: u64 = 20_000;

/// Derived values as SQL parameters: `path_pattern, provider, event_type, cause, sig_valid`.
pub(super) fn derived_params(
    d: &Derived,
) -> (&str, Option<&str>, Option<&str>, Option<&str>, Option<bool>) {
    (
        &d.path_pattern,
        d.provider.as_deref(),
        d.event_type.as_deref(),
        d.cause.map(Cause::as_str),
        d.sig_valid,
    )
}

/// Fills the derived columns of every stored exchange, in id order, a page at
/// a time (each row's headers and body are read once, here, and never by stats).
pub(super) fn backfill(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let mut ids = tx.prepare("SELECT id FROM exchanges WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    // `attempts` (v4) may not exist yet; derived columns do not use it.
    let mut select = tx.prepare(&format!(
        "SELECT {CAPTURED_COLUMNS}, 1, NULL, NULL, 0 FROM exchanges WHERE id = ?1"
    ))?;
    let mut update = tx.prepare(
        "UPDATE exchanges SET path_pattern = ?2, provider = ?3, event_type = ?4, cause = ?5, sig_valid = ?6 WHERE id = ?1",
    )?;
    let mut after = String::new();
    let mut done = 0;
    loop {
        let page: Vec<String> = ids
            .query_map(params![after, BACKFILL_PAGE], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = last.clone();
        for id in &page {
            // A row that does not decode keeps NULLs; stats shows it as not derived.
            let Ok(e) = select.query_row([id], full_from_row)? else {
                continue;
            };
            let d = crate::stats::derive(&e);
            let (pattern, provider, event, cause, sig) = derived_params(&d);
            update.execute(params![id, pattern, provider, event, cause, sig])?;
            done += 1;
        }
    }
}

fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(row.get_ref(i)?.as_str_or_null().ok().flatten())
}

impl Store {
    /// Stores relay refusals in one transaction and deletes the oldest
    /// beyond [`MAX_REFUSAL_ROWS`].
    pub fn insert_refusals(&mut self, rows: &[Refusal]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO relay_refusals (received_at_ms, method, path, status, reason, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in rows {
                insert.execute(params![
                    r.received_at_ms.min(i64::MAX as u64) as i64,
                    r.method,
                    r.path,
                    r.status,
                    r.reason,
                    r.count.min(i64::MAX as u64) as i64,
                ])?;
            }
            tx.prepare_cached(
                "DELETE FROM relay_refusals WHERE id <= (
                     SELECT id FROM relay_refusals ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            )?
            .execute([MAX_REFUSAL_ROWS as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Feeds every exchange received in `[since_ms, until_ms)` that passes
    /// `filter`'s method, status and path parts (the path glob is matched
    /// against the folded pattern) into `agg`, then the relay's refusals in
    /// the same span that pass them (refusals the relay did not name pass
    /// only when the filter has none of these parts). Returns how many
    /// exchanges matched.
    ///
    /// One range scan of the covering `exchanges_stats` index: no table
    /// row, header or body is read. Refusals come from their own small
    /// table, by its time index.
    pub fn stats_scan(
        &self,
        since_ms: u64,
        until_ms: u64,
        filter: &Filter,
        agg: &mut Aggregator,
    ) -> Result<u64, StoreError> {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT received_at_ms, method, path_pattern, provider, event_type, status,
                    duration_us, cause, sig_valid, queued, replay_of IS NOT NULL, attempts
             FROM exchanges INDEXED BY exchanges_stats
             WHERE received_at_ms >= ?1 AND received_at_ms < ?2",
        )?;
        let mut rows = stmt.query(params![clamp(since_ms), clamp(until_ms)])?;
        let mut matched = 0;
        while let Some(row) = rows.next()? {
            let method = text(row, 1)?.unwrap_or_default();
            let path_pattern = text(row, 2)?.unwrap_or(NOT_DERIVED);
            let status: Option<u16> = row.get(5)?;
            let cause = text(row, 7)?.and_then(Cause::parse);
            if filter
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
                || filter
                    .path
                    .as_ref()
                    .is_some_and(|g| !g.matches(path_pattern))
                || filter.status.is_some_and(|s| {
                    !s.matches(
                        status,
                        matches!(cause, Some(Cause::Unreachable | Cause::Timeout)),
                    )
                })
            {
                continue;
            }
            agg.add(&Sample {
                received_at_ms: row.get::<_, i64>(0)?.max(0) as u64,
                method,
                path_pattern,
                provider: text(row, 3)?,
                event_type: text(row, 4)?,
                status,
                duration_us: row.get::<_, i64>(6)?.max(0) as u64,
                cause,
                sig_valid: row.get(8)?,
                queued: row.get(9)?,
                replay: row.get(10)?,
                retried: row.get::<_, i64>(11)? > 1,
            });
            matched += 1;
        }
        self.refusals_scan(since_ms, until_ms, filter, agg)?;
        Ok(matched)
    }

    /// The refusal half of [`Store::stats_scan`].
    fn refusals_scan(
        &self,
        since_ms: u64,
        until_ms: u64,
        filter: &Filter,
        agg: &mut Aggregator,
    ) -> Result<(), StoreError> {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT received_at_ms, method, path, status, count
             FROM relay_refusals INDEXED BY relay_refusals_time
             WHERE received_at_ms >= ?1 AND received_at_ms < ?2",
        )?;
        let mut rows = stmt.query(params![clamp(since_ms), clamp(until_ms)])?;
        while let Some(row) = rows.next()? {
            let method = text(row, 1)?;
            let pattern = text(row, 2)?.map(crate::stats::path::fold);
            let status: Option<u16> = row.get(3)?;
            let passes = filter
                .method
                .as_deref()
                .is_none_or(|m| method.is_some_and(|have| m.eq_ignore_ascii_case(have)))
                && filter
                    .path
                    .as_ref()
                    .is_none_or(|g| pattern.as_deref().is_some_and(|p| g.matches(p)))
                // The relay answered these itself: an error, like hooktunnel's own 502/504.
                && filter
                    .status
                    .is_none_or(|s| status.is_some() && s.matches(status, true));
            if !passes {
                continue;
            }
            agg.add_refused(&RefusedSample {
                received_at_ms: row.get::<_, i64>(0)?.max(0) as u64,
                method,
                path_pattern: pattern.as_deref(),
                count: row.get::<_, i64>(4)?.max(0) as u64,
            });
        }
        Ok(())
    }
}
