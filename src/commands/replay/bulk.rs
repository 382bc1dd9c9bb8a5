//! Bulk replay: every stored request matching the filter flags, oldest first.

use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

use anyhow::Context as _;
use hooktunnel_protocol::HttpErrorCode;
use serde_json::json;

use super::{Plan, failure, note, replay_json};
use crate::cli::ReplayArgs;
use crate::clock::now_ms;
use crate::commands::trigger::hooktunnel_error;
use crate::output;
use crate::replay::{self, ReplayRequest};
use crate::sanitize;
use crate::store::Store;

/// Outcome counts for the bulk summary line.
#[derive(Default)]
struct Tally {
    sent: usize,
    by_class: [usize; 6],
    failed: usize,
    skipped: usize,
    /// Not sent: the request body was captured only in part.
    refused: usize,
}

pub(super) async fn bulk(
    args: &ReplayArgs,
    plan: &Plan<'_>,
    store: &mut Store,
) -> anyhow::Result<()> {
    let filter = args.filter.to_filter(now_ms())?;
    let include_replays = args.include_replays;
    let mut rows = crate::commands::requests::scan(store, &filter, usize::MAX, |s| {
        include_replays || s.replay_of.is_none()
    })?;
    rows.reverse();
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(
            out,
            "Nothing to replay: no stored request matches {filter}{}.",
            if include_replays {
                ""
            } else {
                " (replays are left out; add --include-replays)"
            }
        )?;
        return Ok(());
    }
    let color = output::color_enabled(std::io::stdout().is_terminal());
    if args.dry_run {
        for row in &rows {
            let Some(original) = store.get(&row.id)? else {
                continue;
            };
            let target = replay::destination(&original, &plan.opts)?;
            if args.json {
                let line = json!({
                    "id": original.id.to_string(),
                    "method": original.method,
                    "path": original.path,
                    "url": target.url_for(&original.path),
                });
                writeln!(out, "{line}")?;
                continue;
            }
            writeln!(
                out,
                "{}  →  {}{}",
                output::exchange_line(row, color),
                sanitize::escape(&target.base_url()),
                if original.request_truncated.is_some() {
                    "  (refused: request body truncated)"
                } else {
                    ""
                }
            )?;
        }
        if args.json {
            return Ok(());
        }
        writeln!(
            out,
            "Would replay {} request{} matching {filter}, oldest first; nothing sent (--dry-run).",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        )?;
        return Ok(());
    }

    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(rows.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} replaying [{bar:30}] {pos}/{len} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut stopped = None;
    for row in &rows {
        let Some(original) = store.get(&row.id)? else {
            // Evicted or cleared since the scan.
            tally.skipped += 1;
            bar.inc(1);
            continue;
        };
        if let Some(why) = original.replay_refusal() {
            tally.refused += 1;
            bar.suspend(|| note(&why));
            bar.inc(1);
            continue;
        }
        let mut request = ReplayRequest::original(&original);
        match plan.resign(&original, &mut request) {
            Ok(Some(message)) => bar.suspend(|| note(&format!("{}: {message}", original.id))),
            Ok(None) => {}
            Err(e) => {
                tally.failed += 1;
                bar.suspend(|| note(&format!("{}: not sent: {e:#}", original.id)));
                bar.inc(1);
                continue;
            }
        }
        bar.set_message(format!(
            "{} {}",
            sanitize::escape(&original.method),
            sanitize::escape(&original.path)
        ));
        let replay = replay::send(&original, request, &plan.opts).await?;
        store
            .insert(&replay)
            .context("a replay was sent but could not be stored")?;
        tally.sent += 1;
        let failed = failure(&replay);
        match (&failed, replay.status()) {
            (None, Some(status)) => {
                tally.by_class[usize::from(status / 100).min(5)] += 1;
            }
            _ => tally.failed += 1,
        }
        let line = if args.json {
            replay_json(&replay, failed.as_deref()).to_string()
        } else {
            format!(
                "{}  ↻ {}",
                output::exchange_line(&replay.summary(), color),
                original.id
            )
        };
        bar.suspend(|| writeln!(out, "{line}"))?;
        bar.inc(1);
        let unreachable = replay.response.as_ref().and_then(hooktunnel_error);
        if failed.is_some()
            && unreachable.is_some_and(|c| c.parse() == Ok(HttpErrorCode::LocalUnreachable))
        {
            stopped = Some(format!(
                "stopped: {} is unreachable",
                sanitize::escape(&replay.target)
            ));
            break;
        }
    }
    bar.finish_and_clear();
    let mut summary = format!(
        "Replayed {} of {} in {:.1} s: ",
        tally.sent,
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    let answered: Vec<String> = tally
        .by_class
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(class, n)| format!("{n} × {class}xx"))
        .collect();
    summary.push_str(&if answered.is_empty() {
        "no answers".to_owned()
    } else {
        format!("answered {}", answered.join(", "))
    });
    if tally.failed > 0 {
        summary.push_str(&format!(", {} failed", tally.failed));
    }
    if tally.skipped > 0 {
        summary.push_str(&format!(", {} gone from history", tally.skipped));
    }
    if tally.refused > 0 {
        summary.push_str(&format!(
            ", {} refused (request body truncated, see --capture-max)",
            tally.refused
        ));
    }
    if let Some(why) = &stopped {
        summary.push_str(&format!("; {why}"));
    }
    summary.push('.');
    if args.json {
        note(&summary);
    } else {
        writeln!(out, "{summary}")?;
    }
    if tally.failed > 0 {
        anyhow::bail!(
            "{} of {} replays got no answer from the app{}",
            tally.failed,
            rows.len(),
            stopped.map_or_else(String::new, |s| format!(
                " ({s}; start the app and run the same command again, or use --to)"
            ))
        );
    }
    if tally.refused > 0 {
        anyhow::bail!(
            "{} of {} requests were not replayed: their request bodies were captured only in part; raise --capture-max on `listen` to capture them whole",
            tally.refused,
            rows.len()
        );
    }
    Ok(())
}
