//! The stats view: the `hooktunnel stats` table over the last hour, its
//! sparklines moving as the report refreshes.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Text};
use ratatui::widgets::Paragraph;

use crate::sanitize::escape;
use crate::stats::Dimension;

use super::super::app::App;
use super::super::stats::{STATS_EVERY_MS, StatsView};

/// Draws the stats view in `area`: a title line, then the table from the
/// view's scroll position (the table escapes captured text itself).
pub(super) fn render_stats(app: &App, view: &StatsView, frame: &mut Frame<'_>, area: Rect) {
    let t = app.theme;
    let mut lines = vec![Line::styled(
        format!(
            " stats · by path, provider, event · refreshed every {}s",
            STATS_EVERY_MS / 1000
        ),
        t.bold(),
    )];
    if let Some(why) = &view.error {
        lines.push(Line::styled(
            format!(" ✕ cannot compute stats: {}", escape(why)),
            t.error(),
        ));
    }
    match &view.report {
        None => lines.push(Line::styled(" computing…", t.dim())),
        Some(r) if r.is_empty() => lines.push(Line::styled(
            " No requests in the last 1h: stats fill in as webhooks arrive.",
            t.dim(),
        )),
        Some(_) => {
            let table = view.lines(area.width.saturating_sub(1));
            for line in table.into_iter().skip(view.scroll) {
                let is_title = Dimension::ALL.iter().any(|d| line.starts_with(d.title()));
                let style = if is_title {
                    t.bold()
                } else {
                    Default::default()
                };
                lines.push(Line::styled(format!(" {line}"), style));
            }
        }
    }
    frame.render_widget(Paragraph::new(Text::from(lines)), area);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ulid::Ulid;

    use crate::store::Store;
    use crate::tui::events::{Effect, Event};
    use crate::tui::status::Mode;
    use crate::tui::testing::{ch, history, sample_app, screen};
    use crate::tui::worker::stats_report;

    /// The fixture history in a real store, its report computed as the
    /// worker does, at a fixed clock.
    #[test]
    fn snapshot_stats_view() {
        let rows = history();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("history.sqlite3")).unwrap();
        // Each exchange again every 7 minutes back, more for later ones, so
        // the sparklines have a shape.
        let mut stored = 0;
        for (k, ex) in rows.iter().enumerate() {
            for m in 0..=(k as u64 % 4) {
                let mut copy = ex.clone();
                copy.received_at_ms -= m * 7 * 60_000;
                copy.id = Ulid::from_parts(copy.received_at_ms, (k as u128) << 8 | u128::from(m));
                store.insert(&copy).unwrap();
                stored += 1;
            }
        }
        let mut app = sample_app(Mode::Inspect, &rows, 110, 30);
        let Some(Effect::LoadStats { now_ms }) = app.handle(ch('s')) else {
            panic!("no stats load")
        };
        let computing = screen(&app);
        assert!(computing.contains("computing…"), "{computing}");
        let report = stats_report(&store, now_ms).unwrap();
        assert_eq!(report.total.count, stored);
        app.handle(Event::Stats(Ok(Box::new(report))));
        insta::assert_snapshot!("stats", screen(&app));
    }

    /// A window whose only traffic the relay refused still shows a table,
    /// with the refusals on the path the relay named.
    #[test]
    fn relay_refusals_alone_show_in_the_stats_view() {
        let rows = history();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("history.sqlite3")).unwrap();
        let mut app = sample_app(Mode::Inspect, &rows, 140, 30);
        let Some(Effect::LoadStats { now_ms }) = app.handle(ch('s')) else {
            panic!("no stats load")
        };
        store
            .insert_refusals(&[crate::stats::Refusal {
                received_at_ms: now_ms - 1_000,
                method: Some("POST".into()),
                path: Some("/orders/42".into()),
                status: Some(413),
                reason: Some("body_too_large".into()),
                count: 4,
            }])
            .unwrap();
        let report = stats_report(&store, now_ms).unwrap();
        app.handle(Event::Stats(Ok(Box::new(report))));
        let shown = screen(&app);
        assert!(!shown.contains("No requests"), "{shown}");
        assert!(
            shown.contains("0 requests in the last 1h · relay refused 4"),
            "the summary line: {shown}"
        );
        let row = shown
            .lines()
            .find(|l| l.contains("POST /orders/:n"))
            .unwrap_or_else(|| panic!("no path row: {shown}"));
        assert!(row.contains("relay refused 4"), "{row}");
    }
}
