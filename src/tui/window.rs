//! The held run of the virtual list: a [`Window`] of at most [`MAX_WINDOW`]
//! summaries around the viewport, which pages of the store join or replace.

use ulid::Ulid;

use crate::exchange::ExchangeSummary;

/// Rows asked for per page load beyond what the viewport needs.
pub const PAGE: usize = 200;
/// Most summaries held for the unfiltered list.
pub const MAX_WINDOW: usize = 2_000;

/// A contiguous run of the unfiltered list, `rows[i]` being row `start + i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Index of the first row held.
    pub start: usize,
    /// The rows held.
    pub rows: Vec<ExchangeSummary>,
}

impl Window {
    pub(super) fn end(&self) -> usize {
        self.start + self.rows.len()
    }

    pub(super) fn get(&self, index: usize) -> Option<&ExchangeSummary> {
        index.checked_sub(self.start).and_then(|i| self.rows.get(i))
    }

    pub(super) fn position(&self, id: &Ulid) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| r.id == *id)
            .map(|i| i + self.start)
    }

    /// Puts `rows` at `offset`, joining them to the held run when they touch
    /// or overlap it, replacing it otherwise.
    pub(super) fn merge(&mut self, offset: usize, rows: Vec<ExchangeSummary>) {
        if rows.is_empty() {
            return;
        }
        let (ws, we) = (self.start, self.end());
        let (ps, pe) = (offset, offset + rows.len());
        if self.rows.is_empty() || pe < ws || ps > we {
            self.start = ps;
            self.rows = rows;
            return;
        }
        let mut held = std::mem::take(&mut self.rows);
        let tail = if we > pe {
            held.split_off(pe - ws)
        } else {
            Vec::new()
        };
        held.truncate(ps.saturating_sub(ws));
        held.extend(rows);
        held.extend(tail);
        self.start = ws.min(ps);
        self.rows = held;
    }

    /// Keeps at most `max` rows, centred on `around`.
    pub(super) fn trim(&mut self, around: usize, max: usize) {
        if self.rows.len() <= max {
            return;
        }
        let start = around
            .saturating_sub(max / 2)
            .clamp(self.start, self.end() - max);
        let skip = start - self.start;
        self.rows.drain(..skip);
        self.rows.truncate(max);
        self.start = start;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::tui::testing::page;

    #[test]
    fn window_merge_joins_and_replaces() {
        let mut w = Window {
            start: 10,
            rows: page(100, 10, 10),
        };
        w.merge(15, page(100, 15, 10));
        assert_eq!((w.start, w.rows.len()), (10, 15));
        w.merge(5, page(100, 5, 5));
        assert_eq!((w.start, w.rows.len()), (5, 20));
        for i in 5..25 {
            assert_eq!(w.get(i).unwrap().id, page(100, i, 1)[0].id);
        }
        w.merge(50, page(100, 50, 3));
        assert_eq!((w.start, w.rows.len()), (50, 3));
        w.trim(51, 2);
        assert_eq!((w.start, w.rows.len()), (50, 2));
    }
}
