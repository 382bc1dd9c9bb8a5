//! The stats view on the app (`s`): the same table as `hooktunnel stats`
//! over the last hour, refreshed while it shows. Pure: the query runs on
//! the store worker ([`Effect::LoadStats`]), the answer comes back as
//! [`Event::Stats`].

use crate::stats::{Report, table};

use ratatui::layout::Rect;

use super::app::App;
use super::events::Effect;
use super::layout::layout;
use super::text;

/// How often the stats view asks for a fresh report while it shows.
pub const STATS_EVERY_MS: u64 = 2_000;
/// The window the view covers.
pub const STATS_WINDOW_MS: u64 = 60 * 60 * 1000;
/// Sparkline buckets over the window (3 minutes each).
pub const STATS_BUCKETS: usize = 20;
/// Columns the table takes besides a row's name (numbers, sparkline,
/// a short errors list).
const TABLE_COLUMNS: usize = 90;
/// Row names are never shortened below this.
const KEY_MIN: usize = 16;
/// What the summary line calls the window.
pub const STATS_LABEL: &str = "in the last 1h";

/// The stats view's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsView {
    /// The latest report, once one arrived.
    pub report: Option<Report>,
    /// Why the last query failed, if it did.
    pub error: Option<String>,
    /// First line shown.
    pub scroll: usize,
    /// A query is on the worker.
    pub in_flight: bool,
    /// When the last query was asked for.
    pub asked_ms: u64,
}

impl StatsView {
    /// The table's lines for a screen `cols` wide (plain; the view styles
    /// them): row names longer than the screen leaves them are shortened
    /// with `…`, so the numbers stay in view.
    pub fn lines(&self, cols: u16) -> Vec<String> {
        let Some(report) = &self.report else {
            return Vec::new();
        };
        let room = usize::from(cols).saturating_sub(TABLE_COLUMNS).max(KEY_MIN);
        let mut report = report.clone();
        for row in report.sections.iter_mut().flat_map(|s| s.rows.iter_mut()) {
            row.key = text::truncate(&row.key, room);
        }
        table::render(&report, STATS_LABEL, false)
    }
}

impl App {
    /// The stats view, when it shows.
    pub fn stats(&self) -> Option<&StatsView> {
        self.stats.as_ref()
    }

    /// `s`: opens the stats view (asking for a report at once) or closes it.
    pub(super) fn toggle_stats(&mut self) -> Option<Effect> {
        if self.stats.take().is_some() {
            return None;
        }
        self.stats = Some(StatsView::default());
        self.ask_stats()
    }

    /// Asks for a report unless one is on the way.
    fn ask_stats(&mut self) -> Option<Effect> {
        let now_ms = self.now_ms;
        let view = self.stats.as_mut()?;
        if view.in_flight {
            return None;
        }
        view.in_flight = true;
        view.asked_ms = now_ms;
        Some(Effect::LoadStats { now_ms })
    }

    /// On a tick: a fresh report every [`STATS_EVERY_MS`] while the view shows.
    pub(super) fn stats_due(&mut self) -> Option<Effect> {
        let view = self.stats.as_ref()?;
        if self.now_ms.saturating_sub(view.asked_ms) < STATS_EVERY_MS {
            return None;
        }
        self.ask_stats()
    }

    /// A report (or why there is none) from the worker.
    pub(super) fn on_stats(&mut self, report: Result<Box<Report>, String>) {
        let Some(view) = self.stats.as_mut() else {
            return;
        };
        view.in_flight = false;
        match report {
            Ok(report) => {
                view.report = Some(*report);
                view.error = None;
            }
            Err(why) => view.error = Some(why),
        }
        self.scroll_stats(0);
    }

    /// Scrolls the stats table by `delta` lines, within its length.
    pub(super) fn scroll_stats(&mut self, delta: isize) {
        let rows = self.stats_rows();
        let Some(view) = self.stats.as_mut() else {
            return;
        };
        let max = view.lines(self.width).len().saturating_sub(rows);
        view.scroll = view.scroll.saturating_add_signed(delta).min(max);
    }

    /// Lines of the table the screen shows at once (under the view's title).
    pub(super) fn stats_rows(&self) -> usize {
        stats_area(Rect::new(0, 0, self.width, self.height))
            .map_or(1, |r| usize::from(r.height.saturating_sub(1)).max(1))
    }
}

/// Where the stats table goes on a screen of `area`: the list's place and
/// the detail's together.
pub fn stats_area(area: Rect) -> Option<Rect> {
    layout(area, false).list
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use crossterm::event::KeyCode;

    use super::*;
    use crate::event::AgentEvent;
    use crate::stats::alert::Transition;
    use crate::tui::events::Event;
    use crate::tui::keymap::Context;
    use crate::tui::testing::{app_with, ch, key, stats_report};

    #[test]
    fn s_opens_the_view_asks_the_worker_and_refreshes_while_it_shows() {
        let mut app = app_with(50);
        let t = app.now_ms;
        assert_eq!(app.handle(ch('s')), Some(Effect::LoadStats { now_ms: t }));
        assert_eq!(app.context(), Context::Stats);
        // One query at a time: no new one while the first is on the worker.
        assert_eq!(
            app.handle(Event::Tick { now_ms: t + 2_500 }),
            Some(Effect::Poll)
        );
        app.handle(Event::Polled(Vec::new()));
        assert_eq!(app.handle(Event::Tick { now_ms: t + 2_600 }), None);
        app.handle(Event::Stats(Ok(stats_report(3))));
        assert_eq!(app.stats().unwrap().report.as_ref().unwrap().total.count, 3);
        assert_eq!(
            app.handle(Event::Tick { now_ms: t + 2_700 }),
            Some(Effect::LoadStats { now_ms: t + 2_700 })
        );
        app.handle(Event::Stats(Err("disk I/O error".into())));
        let view = app.stats().unwrap();
        assert_eq!(view.error.as_deref(), Some("disk I/O error"));
        assert!(view.report.is_some(), "the last report stays");
        assert_eq!(app.handle(Event::Tick { now_ms: t + 3_000 }), None);

        // Keys bound only in the list do nothing here; s and Esc close it.
        let selected = app.selected();
        assert_eq!(app.handle(ch('r')), None);
        assert_eq!(app.handle(key(KeyCode::Enter)), None);
        assert!(app.detail().is_none());
        assert_eq!(app.selected(), selected);
        assert_eq!(app.handle(ch('s')), None);
        assert!(app.stats().is_none());
        assert_eq!(app.context(), Context::List);
        assert_eq!(
            app.handle(Event::Tick { now_ms: t + 9_000 }),
            Some(Effect::Poll)
        );
        app.handle(ch('s'));
        app.handle(key(KeyCode::Esc));
        assert!(app.stats().is_none());
        // A late answer for a closed view is dropped.
        app.handle(Event::Stats(Ok(stats_report(1))));
        assert!(app.stats().is_none());
    }

    #[test]
    fn the_table_scrolls_within_its_length() {
        let mut app = app_with(50);
        app.handle(ch('s'));
        app.handle(Event::Stats(Ok(stats_report(60))));
        let lines = app.stats().unwrap().lines(app.width).len();
        let rows = app.stats_rows();
        assert!(lines > rows, "{lines} lines, {rows} rows");
        app.handle(ch('j'));
        assert_eq!(app.stats().unwrap().scroll, 1);
        app.handle(ch('G'));
        assert_eq!(app.stats().unwrap().scroll, lines - rows);
        app.handle(ch('j'));
        assert_eq!(app.stats().unwrap().scroll, lines - rows);
        app.handle(ch('g'));
        assert_eq!(app.stats().unwrap().scroll, 0);
    }

    fn transition(firing: bool) -> String {
        Transition {
            rule: "error-rate>5%/5m".into(),
            firing,
            value: "40.0% errors".into(),
            samples: 10,
            window: Duration::from_secs(300),
            at_ms: 0,
        }
        .to_string()
    }

    #[test]
    fn an_alert_that_fires_rings_the_bell_and_shows_the_line() {
        let mut app = app_with(5);
        let fired = transition(true);
        assert_eq!(
            app.handle(Event::Agent(AgentEvent::Notice(fired.clone()))),
            Some(Effect::Bell)
        );
        let notice = app.notice().unwrap();
        assert_eq!(notice.text, fired);
        assert!(notice.error);

        let recovered = transition(false);
        assert_eq!(
            app.handle(Event::Agent(AgentEvent::Notice(recovered.clone()))),
            None
        );
        assert_eq!(app.notice().unwrap().text, recovered);
        assert!(!app.notice().unwrap().error);
        assert_eq!(
            app.handle(Event::Agent(AgentEvent::Notice("reconnected".into()))),
            None
        );
    }
}
