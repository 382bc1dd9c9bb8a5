//! Replaying one request by id, optionally edited first ([`crate::editor`]).

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use serde_json::json;

use super::{Plan, difference, failure, note, replay_json};
use crate::cli::ReplayArgs;
use crate::editor::{self, EditOutcome};
use crate::exchange::Exchange;
use crate::output;
use crate::replay::{self, ReplayRequest};
use crate::sanitize;
use crate::store::Store;

pub(super) async fn single(
    args: &ReplayArgs,
    plan: &Plan<'_>,
    store: &mut Store,
    id: &str,
) -> anyhow::Result<()> {
    let original = store.resolve(id)?;
    if let Some(why) = original.replay_refusal() {
        anyhow::bail!(why);
    }
    let mut request = ReplayRequest::original(&original);
    if args.edit {
        let Some((edited, message)) = edit(&original).await? else {
            anyhow::bail!(
                "the edited file is empty: replay cancelled, nothing sent (an emptied file cancels)"
            );
        };
        request = edited;
        note(&message);
    }
    if let Some(message) = plan.resign(&original, &mut request)? {
        note(&message);
    }
    let target = replay::destination(&original, &plan.opts)?;
    if args.dry_run && args.json {
        let line = json!({
            "id": original.id.to_string(),
            "method": request.method,
            "path": request.path,
            "url": target.url_for(&request.path),
        });
        writeln!(std::io::stdout(), "{line}")?;
        return Ok(());
    }
    if args.dry_run {
        writeln!(
            std::io::stdout(),
            "Would replay {} → {} {} ({}, body {}); nothing sent (--dry-run).",
            original.id,
            sanitize::escape(&request.method),
            sanitize::escape(&target.url_for(&request.path)),
            output::plural(request.headers.len() as u64, "header", "headers"),
            output::size(request.body.len() as u64),
        )?;
        return Ok(());
    }
    let replay = replay::send(&original, request, &plan.opts).await?;
    store
        .insert(&replay)
        .context("the replay was sent but could not be stored")?;
    let failed = failure(&replay);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", replay_json(&replay, failed.as_deref()))?;
    } else if failed.is_none() {
        let status = replay.status().unwrap_or_default();
        writeln!(
            out,
            "Replayed {} → {} {}\n{} {}  in {:.1} ms  ·  response {}  ·  stored as {}",
            original.id,
            sanitize::escape(&replay.method),
            sanitize::escape(&target.url_for(&replay.path)),
            status,
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or(""),
            replay.duration_us as f64 / 1000.0,
            output::size(replay.response.as_ref().map_or(0, |r| r.body.len() as u64)),
            replay.id,
        )?;
        if std::io::stdout().is_terminal()
            && let Some(response) = &replay.response
        {
            writeln!(
                out,
                "vs original: {}",
                difference(original.response.as_ref(), response)
            )?;
        }
    }
    match failed {
        Some(why) => Err(anyhow::anyhow!(
            "{why}\n  {} (This attempt is recorded as {}.)",
            super::advice(&replay, &original.id.to_string()),
            replay.id
        )),
        None => Ok(()),
    }
}

/// Opens the original request in the user's editor and reads back what to
/// send, with a note saying what happened; `None` when the user cancelled.
async fn edit(original: &Exchange) -> anyhow::Result<Option<(ReplayRequest, String)>> {
    let copy = original.clone();
    let outcome =
        tokio::task::spawn_blocking(move || editor::edit_request(&copy, &std::env::temp_dir()))
            .await
            .context("the editor task failed")??;
    Ok(match outcome {
        EditOutcome::Unchanged => Some((
            ReplayRequest::original(original),
            "the request was not changed in the editor; sending it as captured".to_owned(),
        )),
        EditOutcome::Cancelled => None,
        EditOutcome::Edited(request) => {
            let message = format!(
                "sending the edited request ({} {}, {}, body {})",
                sanitize::escape(&request.method),
                sanitize::escape(&request.path),
                output::plural(request.headers.len() as u64, "header", "headers"),
                output::size(request.body.len() as u64)
            );
            Some((request, message))
        }
    })
}
