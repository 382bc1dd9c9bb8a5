//! The list as shown, on the [`App`]: the virtual list over the whole
//! history (the app knows the total and holds a [`Window`] of at most
//! [`MAX_WINDOW`] summaries around the viewport, asking for pages as it
//! moves; new rows go on top without moving the selection off its
//! exchange), and the filter flow (`/` prompt, scan, live matches).

use crossterm::event::KeyEvent;
use ulid::Ulid;

use crate::exchange::ExchangeSummary;
use crate::filter::Filter;

use super::app::{App, is_error};
use super::events::{Effect, Page, PageRequest};
use super::filtered::Filtered;
use super::prompt::{Edit, Prompt};
use super::window::{MAX_WINDOW, PAGE, Window};

/// Rows kept loaded beyond each edge of the viewport.
const MARGIN: usize = 100;
/// Ids remembered to drop an exchange reported twice (event and poll).
const RECENT_IDS: usize = 512;

impl App {
    /// Starts from the history: its row count and its newest rows.
    pub fn load(&mut self, total: u64, newest_rows: Vec<ExchangeSummary>) {
        self.total = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .max(newest_rows.len());
        self.newest = newest_rows.first().map(|r| r.id);
        self.tunnels
            .note_all(newest_rows.iter().map(|r| r.tunnel.as_str()));
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
        self.tunnels
            .note_all(page.rows.iter().map(|r| r.tunnel.as_str()));
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
        self.tunnels.note(&s.tunnel);
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

    /// Opens the prompt with the current query.
    pub(super) fn open_prompt(&mut self) {
        let input = self
            .filtered
            .as_ref()
            .map(|f| f.query.clone())
            .unwrap_or_default();
        self.prompt = Some(Prompt::with(input));
    }

    pub(super) fn on_prompt_key(&mut self, key: &KeyEvent) -> Option<Effect> {
        match self.prompt.as_mut()?.key(key) {
            Edit::Cancel => self.prompt = None,
            Edit::Submit => return self.apply_filter(),
            Edit::Changed | Edit::Ignored => {}
        }
        None
    }

    fn apply_filter(&mut self) -> Option<Effect> {
        let query = self.prompt.as_ref()?.input.trim().to_owned();
        let filter = match Filter::parse(&query, self.now_ms) {
            Ok(f) => f,
            Err(e) => {
                if let Some(p) = &mut self.prompt {
                    p.error = Some(e.to_string());
                }
                return None;
            }
        };
        self.prompt = None;
        self.detail = None;
        if filter.is_empty() {
            return self.clear_filter();
        }
        self.generation += 1;
        self.filtered = Some(Filtered::new(query, filter.clone(), self.generation));
        self.selected = 0;
        self.top = 0;
        self.follow = true;
        Some(Effect::Scan {
            generation: self.generation,
            filter: Box::new(filter),
            upto: self.newest,
        })
    }

    /// Back to the whole history; stops the scan if it still runs.
    pub(super) fn clear_filter(&mut self) -> Option<Effect> {
        let scanning = self.filtered.take().is_some_and(|f| !f.done);
        self.selected = 0;
        self.top = 0;
        self.follow = true;
        self.clamp();
        scanning.then_some(Effect::StopScan)
    }

    /// The filtered list, if it is still the one of `generation` (answers
    /// for an older filter are dropped).
    fn filtered_at(&mut self, generation: u64) -> Option<&mut Filtered> {
        self.filtered
            .as_mut()
            .filter(|f| f.generation == generation)
    }

    /// Adds a chunk of scan results, if from the current scan.
    pub(super) fn on_filter_chunk(
        &mut self,
        generation: u64,
        rows: Vec<ExchangeSummary>,
        scanned: u64,
        done: bool,
    ) {
        // Rows of the history either way, even from an older scan.
        self.tunnels
            .note_all(rows.iter().map(|r| r.tunnel.as_str()));
        if let Some(f) = self.filtered_at(generation) {
            f.extend(rows, scanned, done);
        }
    }

    /// Matches a new row against the filter: adds it when its summary
    /// matches, asks for a full check when the filter needs its bodies.
    pub(super) fn offer_to_filter(&mut self, s: &ExchangeSummary) -> Option<Effect> {
        let f = self.filtered.as_ref()?;
        match f.filter.matches_summary(s) {
            Some(true) => {
                let generation = f.generation;
                self.insert_filtered(generation, s.clone());
                None
            }
            Some(false) => None,
            None => Some(Effect::CheckLive {
                generation: f.generation,
                summary: Box::new(s.clone()),
                filter: Box::new(f.filter.clone()),
            }),
        }
    }

    /// Puts a matching row in its place (newest first) in the filtered list.
    pub(super) fn insert_filtered(&mut self, generation: u64, s: ExchangeSummary) {
        let Some(pos) = self.filtered_at(generation).and_then(|f| f.insert(s)) else {
            return;
        };
        self.shift_for_insert(pos);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crossterm::event::KeyCode;

    use super::*;
    use crate::event::AgentEvent;
    use crate::tui::events::Event;
    use crate::tui::testing::{app_with, ch, drive, key, page, row};

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

    fn type_text(app: &mut App, s: &str) -> Option<Effect> {
        app.handle(ch('/'));
        for c in s.chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Enter))
    }

    #[test]
    fn filter_prompt_scans_and_shows_matches() {
        let mut app = app_with(100);
        let Some(Effect::Scan {
            generation,
            filter,
            upto,
        }) = type_text(&mut app, "status:5xx")
        else {
            panic!("no scan")
        };
        assert_eq!(upto, Some(row(99).id));
        assert_eq!(filter.to_string(), "status:5xx");
        assert!(app.is_empty());
        let matches: Vec<_> = page(100, 0, 100)
            .into_iter()
            .filter(|r| r.status == Some(500))
            .collect();
        app.handle(Event::FilterChunk {
            generation: generation - 1,
            rows: page(100, 0, 3),
            scanned: 3,
            done: false,
        });
        assert!(app.is_empty(), "an older scan's rows are ignored");
        app.handle(Event::FilterChunk {
            generation,
            rows: matches.clone(),
            scanned: 100,
            done: true,
        });
        assert_eq!(app.len(), 20);
        // Live rows are matched on arrival.
        let mut failing = row(100);
        failing.status = Some(503);
        app.handle(Event::Agent(AgentEvent::Exchange(row(101))));
        app.handle(Event::Agent(AgentEvent::Exchange(failing.clone())));
        assert_eq!(app.len(), 21);
        assert_eq!(app.selected_id(), Some(failing.id));
        // Esc clears the filter and shows everything again.
        app.handle(key(KeyCode::Esc));
        assert!(app.filtered().is_none());
        assert_eq!(app.len(), 102);
        // / reopens with the last query; bad queries stay in the prompt.
        assert_eq!(type_text(&mut app, "status:abc"), None);
        assert!(
            app.prompt()
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .contains("bad status")
        );
        app.handle(key(KeyCode::Esc));
        assert!(app.prompt().is_none());
    }

    #[test]
    fn tunnel_filter_matches_live_rows_by_their_summary() {
        let mut app = app_with(3);
        let Some(Effect::Scan { filter, .. }) = type_text(&mut app, "tunnel:shop") else {
            panic!("no scan")
        };
        assert_eq!(filter.to_string(), "tunnel:shop");
        let mut shop = row(7);
        shop.tunnel = "shop".into();
        // Decided on the row alone: no full check is asked for.
        assert_eq!(app.handle(Event::Agent(AgentEvent::Exchange(row(6)))), None);
        assert_eq!(
            app.handle(Event::Agent(AgentEvent::Exchange(shop.clone()))),
            None
        );
        assert_eq!(app.len(), 1);
        assert_eq!(app.selected_id(), Some(shop.id));
        assert!(app.tunnels().several(), "demo and shop");
        // The prompt reopens with the query: this makes it `tunnel:shop,x/y`.
        assert_eq!(type_text(&mut app, ",x/y"), None);
        let error = app.prompt().unwrap().error.clone().unwrap();
        assert!(
            error.starts_with("bad tunnel \"shop,x/y\": '/' is in no tunnel name"),
            "{error}"
        );
    }

    #[test]
    fn grep_filters_check_live_rows_in_full() {
        let mut app = app_with(3);
        let Some(Effect::Scan { generation, .. }) = type_text(&mut app, "needle") else {
            panic!("no scan")
        };
        let effect = app.handle(Event::Agent(AgentEvent::Exchange(row(7))));
        assert!(matches!(effect, Some(Effect::CheckLive { generation: g, .. }) if g == generation));
        app.handle(Event::LiveChecked {
            generation,
            summary: row(7),
            matched: true,
        });
        assert_eq!(app.len(), 1);
    }

    #[test]
    fn prompt_editing_keys() {
        let mut app = app_with(3);
        app.handle(ch('/'));
        for c in "méthod".chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Left));
        app.handle(key(KeyCode::Left));
        app.handle(key(KeyCode::Backspace));
        app.handle(key(KeyCode::Home));
        app.handle(key(KeyCode::Delete));
        app.handle(Event::Paste("x\ny".into()));
        assert_eq!(app.prompt().unwrap().input, "x yétod");
        // q types in the prompt instead of quitting.
        assert_eq!(app.handle(ch('q')), None);
    }
}
