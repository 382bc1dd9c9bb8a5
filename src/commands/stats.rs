//! `hooktunnel stats`: delivery health over a window of the history.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;

use crate::cli::{StatsArgs, StatsBy};
use crate::config::Paths;
use crate::exchange::now_ms;
use crate::filter::Filter;
use crate::output;
use crate::stats::{Aggregator, Dimension, Report, Window, table};
use crate::store::Store;

/// Runs `stats`.
pub fn run(args: &StatsArgs, paths: &Paths) -> anyhow::Result<()> {
    let now = now_ms();
    let report = compute(args, paths, now)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let label = window_label(&args.since);
    if report.total.count == 0 {
        writeln!(
            out,
            "No requests {label}{}. Try a longer window (--since 1d) or fewer filters.",
            if filtered(args) {
                " match these filters"
            } else {
                ""
            }
        )?;
        return Ok(());
    }
    let color = output::color_enabled(std::io::stdout().is_terminal());
    for line in table::render(&report, &label, color) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The report `args` ask for, as of `now_ms`.
pub fn compute(args: &StatsArgs, paths: &Paths, now_ms: u64) -> anyhow::Result<Report> {
    let filter = Filter::from_parts(
        args.method.as_deref(),
        args.path.as_deref(),
        args.status.as_deref(),
        Some(&args.since),
        None,
        now_ms,
    )?;
    let since = filter.since_ms.unwrap_or(0);
    let window = Window::new(since, now_ms.saturating_add(1), usize::from(args.buckets));
    let by: Vec<Dimension> = match args.by {
        None => Dimension::ALL.to_vec(),
        Some(StatsBy::Path) => vec![Dimension::Path],
        Some(StatsBy::Provider) => vec![Dimension::Provider],
        Some(StatsBy::Event) => vec![Dimension::Event],
    };
    let store = Store::open(&paths.db()).context("cannot open the history")?;
    let mut agg = Aggregator::new(window, &by, args.top);
    store
        .stats_scan(window.since_ms, window.until_ms, &filter, &mut agg)
        .context("cannot read the history")?;
    Ok(agg.finish())
}

fn filtered(args: &StatsArgs) -> bool {
    args.method.is_some() || args.path.is_some() || args.status.is_some()
}

/// `in the last 1h`, or `since 2026-…` for an absolute time.
fn window_label(since: &str) -> String {
    if humantime::parse_duration(since.trim()).is_ok() {
        format!("in the last {}", since.trim())
    } else {
        format!("since {}", since.trim())
    }
}
