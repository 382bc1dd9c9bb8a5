//! A filter's matches: the rows a background scan ([`Effect::Scan`]) found,
//! plus live rows that match as they arrive. Only matching summaries are
//! kept (never bodies).
//!
//! [`Effect::Scan`]: super::events::Effect::Scan

use std::collections::HashSet;

use ulid::Ulid;

use crate::exchange::ExchangeSummary;
use crate::filter::Filter;

/// The filtered list.
#[derive(Clone, Debug, PartialEq)]
pub struct Filtered {
    /// The query as typed.
    pub query: String,
    /// The parsed filter.
    pub filter: Filter,
    /// The scan's generation.
    pub generation: u64,
    /// Matches, newest first.
    pub rows: Vec<ExchangeSummary>,
    ids: HashSet<Ulid>,
    /// Rows looked at so far.
    pub scanned: u64,
    /// True when the scan finished.
    pub done: bool,
}

impl Filtered {
    /// An empty list for a new scan.
    pub fn new(query: String, filter: Filter, generation: u64) -> Self {
        Self {
            query,
            filter,
            generation,
            rows: Vec::new(),
            ids: HashSet::new(),
            scanned: 0,
            done: false,
        }
    }

    /// Appends a scan chunk (older than what is held), skipping rows held.
    pub fn extend(&mut self, rows: Vec<ExchangeSummary>, scanned: u64, done: bool) {
        for r in rows {
            if self.ids.insert(r.id) {
                self.rows.push(r);
            }
        }
        self.scanned = scanned;
        self.done = done;
    }

    /// Puts a matching row in its place (newest first); returns where, or
    /// `None` when it is already held.
    pub fn insert(&mut self, s: ExchangeSummary) -> Option<usize> {
        if !self.ids.insert(s.id) {
            return None;
        }
        let pos = self
            .rows
            .iter()
            .position(|r| r.id < s.id)
            .unwrap_or(self.rows.len());
        self.rows.insert(pos, s);
        Some(pos)
    }
}
