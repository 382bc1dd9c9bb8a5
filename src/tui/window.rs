//! The virtual list: the app knows the total and holds a [`Window`] of at
//! most [`MAX_WINDOW`] summaries around the viewport, asking for pages of the
//! store as the viewport moves. New rows go on top without moving the
//! selection off its exchange.

use ulid::Ulid;

use crate::exchange::ExchangeSummary;

use super::app::{App, is_error};
use super::events::{Effect, Page, PageRequest};

/// Rows asked for per page load beyond what the viewport needs.
pub const PAGE: usize = 200;
/// Rows kept loaded beyond each edge of the viewport.
const MARGIN: usize = 100;
/// Most summaries held for the unfiltered list.
pub const MAX_WINDOW: usize = 2_000;
/// Ids remembered to drop an exchange reported twice (event and poll).
const RECENT_IDS: usize = 512;

/// A contiguous run of the unfiltered list, `rows[i]` being row `start + i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Index of the first row held.
    pub start: usize,
    /// The rows held.
    pub rows: Vec<ExchangeSummary>,
}

impl Window {
    fn end(&self) -> usize {
        self.start + self.rows.len()
    }

    pub(super) fn get(&self, index: usize) -> Option<&ExchangeSummary> {
        index.checked_sub(self.start).and_then(|i| self.rows.get(i))
    }

    fn position(&self, id: &Ulid) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| r.id == *id)
            .map(|i| i + self.start)
    }

    /// Puts `rows` at `offset`, joining them to the held run when they touch
    /// or overlap it, replacing it otherwise.
    fn merge(&mut self, offset: usize, rows: Vec<ExchangeSummary>) {
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
    fn trim(&mut self, around: usize, max: usize) {
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

impl App {
    /// Starts from the history: its row count and its newest rows.
    pub fn load(&mut self, total: u64, newest_rows: Vec<ExchangeSummary>) {
        self.total = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .max(newest_rows.len());
        self.newest = newest_rows.first().map(|r| r.id);
        self.window = Window {
            start: 0,
            rows: newest_rows,
        };
        self.clamp();
    }

    /// Rows in the list as shown (matches only, under a filter).
    pub fn len(&self) -> usize {
        self.filtered.as_ref().map_or(self.total, |f| f.rows.len())
    }

    /// True when the list shows nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `index` of the list as shown, when loaded.
    pub fn row(&self, index: usize) -> Option<&ExchangeSummary> {
        match &self.filtered {
            Some(f) => f.rows.get(index),
            None => self.window.get(index),
        }
    }

    /// Index of the selected row.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The selected row's id, when loaded.
    pub fn selected_id(&self) -> Option<Ulid> {
        self.row(self.selected).map(|r| r.id)
    }

    /// True while new rows take the selection.
    pub fn following(&self) -> bool {
        self.follow
    }

    /// The held window of the unfiltered list.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The page the viewport needs next, if none is in flight.
    pub(super) fn wanted_page(&mut self) -> Option<Effect> {
        if self.filtered.is_some() || self.page_in_flight || self.total == 0 {
            return None;
        }
        let h = self.list_rows();
        let vis_start = self.top.min(self.total - 1);
        let vis_end = (self.top + h).min(self.total);
        let (ws, we) = (self.window.start, self.window.end());
        let want_start = vis_start.saturating_sub(MARGIN);
        let want_end = (vis_end + MARGIN).min(self.total);
        let (offset, limit) = if self.window.rows.is_empty() || vis_end <= ws || vis_start >= we {
            (want_start, (want_end - want_start).max(PAGE))
        } else if want_start < ws {
            let offset = ws.saturating_sub(PAGE).min(want_start);
            (offset, ws - offset)
        } else if want_end > we {
            (we, PAGE)
        } else {
            return None;
        };
        self.page_in_flight = true;
        Some(Effect::LoadPage(PageRequest {
            offset,
            limit,
            epoch: self.epoch,
        }))
    }

    pub(super) fn on_page(&mut self, page: Page) {
        self.page_in_flight = false;
        let PageRequest {
            offset,
            limit,
            epoch,
        } = page.request;
        let shift = usize::try_from(self.epoch.saturating_sub(epoch)).unwrap_or(0);
        let mut offset = offset + shift;
        let n = page.rows.len();
        // Rows already held fix the page's place better than counting does.
        if let Some(first) = page.rows.first().and_then(|r| self.window.position(&r.id)) {
            offset = first;
        } else if let Some(last) = page.rows.last().and_then(|r| self.window.position(&r.id)) {
            offset = (last + 1).saturating_sub(n);
        }
        if n < limit && offset + n < self.total {
            // The history ends here (retention removed older rows).
            self.total = offset + n;
        }
        self.window.merge(offset, page.rows);
        self.window.trim(self.top, MAX_WINDOW);
        self.clamp();
    }

    /// Rows polled from the store: the ones newer than any seen go on top.
    pub(super) fn on_polled(&mut self, rows: Vec<ExchangeSummary>) -> Option<Effect> {
        self.poll_in_flight = false;
        let newest = self.newest;
        let mut effect = None;
        for row in rows.into_iter().rev() {
            if newest.is_none_or(|n| row.id > n) {
                effect = self.insert_new(row).or(effect);
            }
        }
        effect
    }

    /// A new exchange (live, replayed or polled) goes on top of the list.
    pub(super) fn insert_new(&mut self, s: ExchangeSummary) -> Option<Effect> {
        if self.recent.contains(&s.id) {
            return None;
        }
        if self.recent.len() == RECENT_IDS {
            self.recent.pop_front();
        }
        self.recent.push_back(s.id);
        if self.newest.is_none_or(|n| s.id > n) {
            self.newest = Some(s.id);
        }
        self.total += 1;
        self.epoch += 1;
        if is_error(&s) {
            self.new_errors += 1;
        }
        let effect = self.offer_to_filter(&s);
        if self.window.start == 0 {
            self.window.rows.insert(0, s);
            self.window.trim(self.top, MAX_WINDOW);
        } else {
            self.window.start += 1;
        }
        if self.filtered.is_none() {
            self.shift_for_insert(0);
        }
        effect
    }

    /// Keeps the selection on the same exchange (or on top when following)
    /// after a row was inserted at `pos`.
    pub(super) fn shift_for_insert(&mut self, pos: usize) {
        if self.follow && self.detail.is_none() {
            self.selected = 0;
            self.top = 0;
            return;
        }
        if pos <= self.selected && self.len() > 1 {
            self.selected += 1;
        }
        if self.top > 0 && pos <= self.top {
            self.top += 1;
        }
        self.clamp();
    }

    /// Keeps selection and scroll inside the list and the selection visible.
    pub(super) fn clamp(&mut self) {
        let len = self.len();
        let h = self.list_rows();
        self.selected = self.selected.min(len.saturating_sub(1));
        if self.selected < self.top {
            self.top = self.selected;
        }
        if self.selected >= self.top + h {
            self.top = self.selected + 1 - h;
        }
        self.top = self.top.min(len.saturating_sub(h));
    }

    /// Selects row `index` (clamped); following again on the first row.
    pub(super) fn select(&mut self, index: usize) {
        self.selected = index.min(self.len().saturating_sub(1));
        self.follow = self.selected == 0;
        self.clamp();
    }

    pub(super) fn move_by(&mut self, delta: isize) {
        let target = self.selected.saturating_add_signed(delta);
        self.select(target);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::event::AgentEvent;
    use crate::tui::events::Event;
    use crate::tui::testing::{app_with, ch, drive, page, row};

    #[test]
    fn follow_mode_keeps_new_rows_selected_until_you_move() {
        let mut app = app_with(5);
        app.handle(Event::Agent(AgentEvent::Exchange(row(5))));
        assert_eq!(app.selected_id(), Some(row(5).id));
        assert_eq!(app.len(), 6);
        // Move away: the selection stays on its exchange as rows arrive.
        app.handle(ch('j'));
        assert_eq!(app.selected_id(), Some(row(4).id));
        app.handle(Event::Agent(AgentEvent::Exchange(row(6))));
        app.handle(Event::Agent(AgentEvent::Exchange(row(7))));
        assert_eq!(app.selected(), 3);
        assert_eq!(app.selected_id(), Some(row(4).id));
        assert_eq!(app.row(0).unwrap().id, row(7).id);
        // g goes back on top and follows again.
        app.handle(ch('g'));
        app.handle(Event::Agent(AgentEvent::Exchange(row(8))));
        assert_eq!(app.selected_id(), Some(row(8).id));
        // A duplicate report (event and poll) is dropped.
        app.handle(Event::Polled(vec![row(8), row(7)]));
        assert_eq!(app.len(), 9);
    }

    #[test]
    fn selection_survives_rows_arriving_while_scrolled_deep() {
        let mut app = app_with(10_000);
        drive(&mut app, 10_000, (0..5000).map(|_| ch('j')));
        assert_eq!(app.selected(), 5000);
        let before = app.selected_id().unwrap();
        let top_before = app.top;
        app.handle(Event::Agent(AgentEvent::Exchange(row(10_000))));
        assert_eq!(app.selected_id(), Some(before));
        assert_eq!(app.top, top_before + 1);
        assert!(app.window().rows.len() <= MAX_WINDOW);
        // A page loaded before the insert lands where it belongs.
        let stale = PageRequest {
            offset: 6000,
            limit: 10,
            epoch: 0,
        };
        app.handle(stale.answer(page(10_000, 6000, 10)));
        assert_eq!(app.row(6001).unwrap().id, page(10_000, 6000, 1)[0].id);
    }

    #[test]
    fn virtual_list_holds_a_bounded_window() {
        let mut app = app_with(100_000);
        drive(&mut app, 100_000, [ch('G')]);
        assert_eq!(app.selected(), 99_999);
        assert_eq!(app.selected_id(), Some(row(0).id));
        assert!(app.window().rows.len() <= MAX_WINDOW);
        drive(&mut app, 100_000, (0..3000).map(|_| ch('k')));
        assert_eq!(app.selected_id(), Some(row(3000).id));
        assert!(app.window().rows.len() <= MAX_WINDOW);
        for i in app.top..app.top + app.list_rows() {
            assert_eq!(app.row(i).unwrap().id, row(99_999 - i as u64).id, "row {i}");
        }
    }

    #[test]
    fn retention_shortens_the_list() {
        let mut app = app_with(1000);
        // The store now holds only 500 rows.
        let effects = drive(&mut app, 500, [ch('G')]);
        assert!(effects.is_empty());
        assert_eq!(app.len(), 500);
        assert_eq!(app.selected(), 499);
    }

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
