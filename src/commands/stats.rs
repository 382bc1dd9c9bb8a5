//! `hooktunnel stats`: delivery health over a window of the history.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc::{Receiver, channel};

use crate::cli::{StatsArgs, StatsBy};
use crate::clock::now_ms;
use crate::config::Paths;
use crate::event::AgentEvent;
use crate::filter::{Filter, FilterError};
use crate::output;
use crate::stats::alert::{Alert, AlertSample, Rule};
use crate::stats::{Aggregator, Dimension, Report, Window, table};
use crate::store::Store;

/// Runs `stats`.
pub fn run(args: &StatsArgs, paths: &Paths) -> anyhow::Result<()> {
    let now = now_ms();
    let report = compute(args, paths, now)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", crate::json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let label = window_label(&args.since);
    if report.is_empty() {
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

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The window or a filter did not parse (the message is for the user as is).
    #[error(transparent)]
    BadInput(#[from] FilterError),
    /// The history could not be opened or read.
    #[error("{0:#}")]
    History(anyhow::Error),
}

/// The report `args` ask for, as of `now_ms`.
pub fn compute(args: &StatsArgs, paths: &Paths, now_ms: u64) -> anyhow::Result<Report> {
    Ok(compute_at(&paths.db(), args, now_ms)?)
}

/// The report `args` ask for over the history at `db`, as of `now_ms`
/// (what `stats` and the web API's `/api/v1/stats` both run).
pub fn compute_at(db: &Path, args: &StatsArgs, now_ms: u64) -> Result<Report, StatsError> {
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
    let store = Store::open(db)
        .context("cannot open the history")
        .map_err(StatsError::History)?;
    let mut agg = Aggregator::new(window, &by, args.top);
    store
        .stats_scan(window.since_ms, window.until_ms, &filter, &mut agg)
        .context("cannot read the history")
        .map_err(StatsError::History)?;
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

/// How often `listen --alert` rules are evaluated (and so how soon a line
/// appears): once per exchange would cost a pass over the window each.
const ALERT_TICK: Duration = Duration::from_millis(500);

/// Passes `events` through unchanged, feeding every exchange to `rules`;
/// each rule that starts firing or recovers adds an [`AgentEvent::Notice`]
/// to the stream (a line on stderr, a notice object with `--json`, a
/// notice in the inspector). With no rules, `events` is returned as is.
pub fn watch_alerts(mut events: Receiver<AgentEvent>, rules: Vec<Rule>) -> Receiver<AgentEvent> {
    if rules.is_empty() {
        return events;
    }
    // Bounded like the agent's own channel: a slow consumer pushes back to
    // the agent, which drops and counts events rather than wait.
    let (tx, rx) = channel(crate::agent::events::EVENT_CAPACITY);
    tokio::spawn(async move {
        let mut alerts: Vec<Alert> = rules.into_iter().map(Alert::new).collect();
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + ALERT_TICK, ALERT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    if let AgentEvent::Exchange(summary) = &event {
                        let sample = AlertSample::from_summary(summary);
                        let now = now_ms();
                        alerts.iter_mut().for_each(|a| a.push(now, sample));
                    }
                    if tx.send(event).await.is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    let now = now_ms();
                    for transition in alerts.iter_mut().filter_map(|a| a.evaluate(now)) {
                        if tx.send(AgentEvent::Notice(transition.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn alerts_become_notices_in_the_event_stream() {
        let (tx, rx) = channel(16);
        let rule: Rule = "error-rate>50%/1m".parse().unwrap();
        let mut out = watch_alerts(rx, vec![rule]);
        let mut failed = crate::store::tests::sample(1).summary();
        failed.status = Some(503);
        for _ in 0..3 {
            tx.send(AgentEvent::Exchange(failed.clone())).await.unwrap();
        }
        let mut exchanges = 0;
        let notice = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match out.recv().await {
                    Some(AgentEvent::Exchange(_)) => exchanges += 1,
                    Some(AgentEvent::Notice(text)) => return text,
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(exchanges, 3, "exchanges pass through first");
        assert_eq!(
            notice,
            "ALERT error-rate>50%/1m: now 100.0% errors over the last 1m (3 requests)"
        );
        drop(tx);
        assert!(
            tokio::time::timeout(Duration::from_secs(10), out.recv())
                .await
                .unwrap()
                .is_none()
        );
    }
}
