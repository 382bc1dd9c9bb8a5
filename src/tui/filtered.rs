//! The list under a filter: the `/` prompt parses a query, a background scan
//! ([`Effect::Scan`]) sends the matches in chunks, and live rows are matched
//! as they arrive. Only matching summaries are kept (never bodies).

use std::collections::HashSet;

use crossterm::event::KeyEvent;
use ulid::Ulid;

use crate::exchange::ExchangeSummary;
use crate::filter::Filter;

use super::app::App;
use super::events::Effect;
use super::prompt::{Edit, Prompt};

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

impl App {
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
        self.filtered = Some(Filtered {
            query,
            filter: filter.clone(),
            generation: self.generation,
            rows: Vec::new(),
            ids: HashSet::new(),
            scanned: 0,
            done: false,
        });
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
        let Some(f) = self.filtered_at(generation) else {
            return;
        };
        for r in rows {
            if f.ids.insert(r.id) {
                f.rows.push(r);
            }
        }
        f.scanned = scanned;
        f.done = done;
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
                summary: s.clone(),
                filter: Box::new(f.filter.clone()),
            }),
        }
    }

    /// Puts a matching row in its place (newest first) in the filtered list.
    pub(super) fn insert_filtered(&mut self, generation: u64, s: ExchangeSummary) {
        let Some(f) = self.filtered_at(generation) else {
            return;
        };
        if !f.ids.insert(s.id) {
            return;
        }
        let pos = f
            .rows
            .iter()
            .position(|r| r.id < s.id)
            .unwrap_or(f.rows.len());
        f.rows.insert(pos, s);
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
    use crate::tui::testing::{app_with, ch, key, page, row};

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
