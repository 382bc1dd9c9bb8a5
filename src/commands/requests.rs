//! `hooktunnel requests`: the history, newest first, optionally filtered.
//!
//! [`scan`] is the filtered walk over the history shared with bulk `replay`.

use std::io::{IsTerminal as _, Write as _};
use std::ops::Bound;

use anyhow::Context as _;

use crate::cli::RequestsArgs;
use crate::clock::now_ms;
use crate::config::Paths;
use crate::exchange::ExchangeSummary;
use crate::filter::Filter;
use crate::output;
use crate::store::{Direction, Store, StoreError};

/// Rows read per page while scanning: bounds memory whatever the history size.
const PAGE: usize = 500;

/// Runs `requests`.
pub fn run(args: &RequestsArgs, paths: &Paths) -> anyhow::Result<()> {
    let filter = args.filter.to_filter(now_ms())?;
    let store = Store::open(&paths.db()).context("cannot open the history")?;
    let rows = scan(&store, &filter, args.limit, |_| true)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = rows.iter().map(crate::export::summary_json).collect();
        writeln!(out, "{}", crate::json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    if rows.is_empty() {
        if args.limit == 0 {
            // `-n 0` asked for no rows; the history may well have some.
            return Ok(());
        }
        if filter.is_empty() {
            writeln!(
                out,
                "No requests captured yet. Run `hooktunnel listen <PORT>` and send one."
            )?;
        } else {
            writeln!(out, "No stored request matches {filter}.")?;
        }
        return Ok(());
    }
    let color = output::color_enabled(std::io::stdout().is_terminal());
    // Rows of several tunnels (one agent serving several) name theirs.
    let tunnels = output::tunnel_column(&rows);
    for row in &rows {
        writeln!(out, "{}", output::exchange_line_in(row, color, tunnels))?;
    }
    Ok(())
}

/// Up to `limit` summaries matching `filter` and `keep`, newest first.
///
/// Walks the history a page of summaries at a time ([`Store::walk`], keyed
/// by id, so rows a running `listen` inserts meanwhile are neither seen nor
/// make a row repeat); only rows that pass the cheap parts of the filter and
/// need a grep are loaded in full, one at a time, so memory stays bounded
/// whatever the history holds.
pub fn scan(
    store: &Store,
    filter: &Filter,
    limit: usize,
    mut keep: impl FnMut(&ExchangeSummary) -> bool,
) -> Result<Vec<ExchangeSummary>, StoreError> {
    let mut found = Vec::new();
    for page in store.walk(Bound::Unbounded, Direction::Older, PAGE) {
        let page = page?;
        let mut all_older = true;
        for row in &page {
            if found.len() >= limit {
                return Ok(found);
            }
            if filter.since_ms.is_none_or(|t| row.received_at_ms >= t) {
                all_older = false;
            }
            if !keep(row) {
                continue;
            }
            let matched = match filter.matches_summary(row) {
                Some(m) => m,
                None => store.get(&row.id)?.is_some_and(|e| filter.matches(&e)),
            };
            if matched {
                found.push(row.clone());
            }
        }
        // Ids follow arrival time, so a page entirely before `since` ends the walk.
        if found.len() >= limit || (filter.since_ms.is_some() && all_older) {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use ulid::Ulid;

    use super::*;
    use crate::store::tests::sample;

    #[test]
    fn scan_crosses_pages_newest_first_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.sqlite3")).unwrap();
        let rows: Vec<_> = (0..1200u32).map(|n| sample((n % 200) as u8)).collect();
        store.insert_many(&rows).unwrap();
        let wanted: HashSet<Ulid> = rows.iter().step_by(3).map(|e| e.id).collect();
        let got = scan(&store, &Filter::default(), 350, |s| wanted.contains(&s.id)).unwrap();
        let want: Vec<Ulid> = rows
            .iter()
            .rev()
            .filter(|e| wanted.contains(&e.id))
            .take(350)
            .map(|e| e.id)
            .collect();
        assert_eq!(got.iter().map(|s| s.id).collect::<Vec<_>>(), want);
    }
}
