//! `hooktunnel replay`: send stored requests again, one by id or in bulk.
//!
//! Every replay goes through the same forwarder as the live path
//! ([`crate::replay::send`]) and is stored as a new exchange whose
//! `replay_of` names the original.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hooktunnel_relay::protocol::HttpErrorCode;
use serde_json::json;

use crate::cli::ReplayArgs;
use crate::config::{ConfigFile, Paths};
use crate::exchange::{Exchange, ExchangeResponse, Header, now_ms};
use crate::export::http_message;
use crate::forward::Target;
use crate::output;
use crate::replay::{self, ReplayOptions, ReplayRequest};
use crate::sanitize;
use crate::store::Store;
use crate::store::writer::Retention;
use crate::verify::{self, Provider, SecretSpec};

use super::trigger::{SecretSource, configured_secret, configured_secrets, hooktunnel_error};

/// What `--resign` asked for.
#[derive(Clone, Debug)]
enum Resign {
    /// `--resign PROVIDER:SECRET`.
    Explicit(SecretSpec),
    /// `--resign` or `--resign PROVIDER`: a configured secret, for this
    /// provider or the one detected from the headers.
    Configured(Option<Provider>),
}

impl Resign {
    fn parse(value: &str) -> anyhow::Result<Self> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::Configured(None));
        }
        if value.contains(':') {
            return Ok(Self::Explicit(value.parse()?));
        }
        Ok(Self::Configured(Some(value.parse()?)))
    }

    /// The secret to sign `headers` with, and where it came from.
    fn signer(
        &self,
        headers: &[Header],
        paths: &Paths,
    ) -> anyhow::Result<(SecretSpec, SecretSource)> {
        let provider = match self {
            Self::Explicit(spec) => return Ok((spec.clone(), SecretSource::Flag("--resign"))),
            Self::Configured(Some(p)) => *p,
            Self::Configured(None) => match verify::detect(headers) {
                Some(p) => p,
                // Unsigned request: one configured secret leaves no doubt.
                None => match configured_secrets(paths)?.as_slice() {
                    [only] => return Ok(only.clone()),
                    _ => anyhow::bail!(
                        "cannot tell which provider signs this request (it has no signature \
                         header); pass --resign PROVIDER:SECRET or --resign PROVIDER"
                    ),
                },
            },
        };
        configured_secret(paths, provider)?.with_context(|| {
            format!(
                "no {provider} secret configured; pass --resign {provider}:SECRET, or add \
                 \"{provider}:SECRET\" to `verify` in config.toml or HOOKTUNNEL_VERIFY"
            )
        })
    }
}

/// Everything one replay needs besides the original.
struct Plan<'a> {
    opts: ReplayOptions,
    resign: Option<Resign>,
    new_id: bool,
    paths: &'a Paths,
}

impl Plan<'_> {
    /// Applies `--resign` to `request`; returns a note for the user.
    fn resign(
        &self,
        original: &Exchange,
        request: &mut ReplayRequest,
    ) -> anyhow::Result<Option<String>> {
        let Some(resign) = &self.resign else {
            return Ok(None);
        };
        let (spec, source) = resign.signer(&request.headers, self.paths)?;
        request.headers = verify::resign(
            spec.provider,
            &spec.secret,
            &request.headers,
            &request.body,
            now_ms() / 1000,
            self.new_id,
            original.public_url.as_deref(),
        )
        .with_context(|| format!("cannot re-sign for {}", spec.provider))?;
        Ok(Some(format!(
            "re-signed for {} with the secret from {source}{}",
            spec.provider,
            if self.new_id && spec.provider == Provider::StandardWebhooks {
                " (new message id)"
            } else {
                ""
            }
        )))
    }
}

/// Runs `replay`.
pub async fn run(args: &ReplayArgs, paths: &Paths) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let mut id = args.id.clone();
    let mut resign = args.resign.clone();
    // `replay --resign last`: the word after --resign was the id, not a secret.
    if let Some(value) = &resign
        && id.is_none()
        && args.filter.is_empty()
        && !value.contains(':')
        && value.parse::<Provider>().is_err()
        && !value.trim().is_empty()
    {
        id = Some(value.clone());
        resign = Some(String::new());
    }
    let plan = Plan {
        opts: ReplayOptions {
            to: args.to.as_deref().map(Target::parse).transpose()?,
            timeout: Some(Duration::from_secs_f64(args.timeout)),
        },
        resign: resign.as_deref().map(Resign::parse).transpose()?,
        new_id: args.new_id,
        paths,
    };
    let mut store = Store::open(&paths.db()).context("cannot open the history")?;
    let result = match id {
        Some(id) => single(args, &plan, &mut store, &id).await,
        None if args.filter.is_empty() => Err(anyhow::anyhow!(
            "say what to replay: an ID (or `last`), or filters for a bulk replay such as \
             --since 10m, --path '/webhooks/**', --method POST, --status 5xx, --grep TEXT \
             (see `hooktunnel replay --help`)"
        )),
        None => bulk(args, &plan, &mut store).await,
    };
    if !args.dry_run {
        enforce_retention(&mut store, paths);
    }
    result
}

/// Keeps the history within the configured bounds after adding replays.
fn enforce_retention(store: &mut Store, paths: &Paths) {
    let config = ConfigFile::load(&paths.config_file()).unwrap_or_default();
    let r = Retention::resolve(None, None, &config);
    if let Err(e) = store.enforce_retention(r.keep, r.keep_bytes) {
        tracing::warn!(error = %e, "could not enforce history retention");
    }
}

/// Why a replay did not get an answer from the app, if it did not.
fn failure(replay: &Exchange) -> Option<String> {
    let Some(response) = &replay.response else {
        return Some(
            replay
                .error
                .clone()
                .unwrap_or_else(|| "no response".to_owned()),
        );
    };
    if let Some(err) = &replay.error {
        return Some(err.clone());
    }
    // Sent to something that is itself a hooktunnel (a tunnel URL): its own
    // 502/504 means the app behind it did not answer either.
    let code = hooktunnel_error(response)?;
    match code.parse() {
        Ok(HttpErrorCode::LocalUnreachable | HttpErrorCode::LocalTimeout) => Some(format!(
            "{} answered {} ({code}): {}",
            replay.target,
            response.status,
            sanitize::escape(String::from_utf8_lossy(&response.body).trim())
        )),
        _ => None,
    }
}

fn replay_json(replay: &Exchange, error: Option<&str>) -> serde_json::Value {
    json!({
        "id": replay.id.to_string(),
        "replay_of": replay.replay_of.map(|u| u.to_string()),
        "status": replay.status(),
        "duration_ms": replay.duration_ms(),
        "error": error,
    })
}

fn note(text: &str) {
    eprintln!("hooktunnel: {text}");
}

async fn single(
    args: &ReplayArgs,
    plan: &Plan<'_>,
    store: &mut Store,
    id: &str,
) -> anyhow::Result<()> {
    let original = store.resolve(id)?;
    let mut request = ReplayRequest::original(&original);
    if args.edit {
        let (edited, message) = edit(&original).await?;
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
            "Would replay {} → {} {} ({} headers, body {}); nothing sent (--dry-run).",
            original.id,
            sanitize::escape(&request.method),
            sanitize::escape(&target.url_for(&request.path)),
            request.headers.len(),
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
            "{why}\n  Is the app running? Start it and run `hooktunnel replay {}` again, or send elsewhere with --to PORT|URL. (This attempt is recorded as {}.)",
            original.id,
            replay.id
        )),
        None => Ok(()),
    }
}

/// Outcome counts for the bulk summary line.
#[derive(Default)]
struct Tally {
    sent: usize,
    by_class: [usize; 6],
    failed: usize,
    skipped: usize,
}

async fn bulk(args: &ReplayArgs, plan: &Plan<'_>, store: &mut Store) -> anyhow::Result<()> {
    let filter = args.filter.to_filter(now_ms())?;
    let include_replays = args.include_replays;
    let mut rows = super::requests::scan(store, &filter, usize::MAX, |s| {
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
                "{}  →  {}",
                output::exchange_line(row, color),
                sanitize::escape(&target.base_url())
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
    Ok(())
}

/// A short description of how `after` differs from `before`.
pub fn difference(before: Option<&ExchangeResponse>, after: &ExchangeResponse) -> String {
    let Some(before) = before else {
        return "the original got no response".to_owned();
    };
    let mut parts = Vec::new();
    if before.status == after.status {
        parts.push(format!("same status ({})", after.status));
    } else {
        parts.push(format!("status {} → {}", before.status, after.status));
    }
    let changed = changed_headers(&before.headers, &after.headers);
    if changed.is_empty() {
        parts.push("same headers".to_owned());
    } else {
        const SHOWN: usize = 6;
        let mut list = changed
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if changed.len() > SHOWN {
            list.push_str(&format!(" and {} more", changed.len() - SHOWN));
        }
        parts.push(format!("headers changed: {list}"));
    }
    if before.body == after.body {
        parts.push("same body".to_owned());
    } else {
        parts.push(format!(
            "body changed ({} → {})",
            output::size(before.body.len() as u64),
            output::size(after.body.len() as u64)
        ));
    }
    parts.join("; ")
}

/// Header names whose values differ, as `name` (changed), `+name` (new) or
/// `-name` (gone); `date` is ignored since it always changes.
fn changed_headers(before: &[Header], after: &[Header]) -> Vec<String> {
    let values = |hs: &[Header], name: &str| -> Vec<Vec<u8>> {
        hs.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
            .collect()
    };
    let mut names: Vec<String> = Vec::new();
    for h in before.iter().chain(after) {
        let lower = h.name.to_ascii_lowercase();
        if lower != "date" && !names.contains(&lower) {
            names.push(lower);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (values(before, &name), values(after, &name));
            let shown = sanitize::escape(&name);
            match (b.is_empty(), a.is_empty()) {
                _ if a == b => None,
                (true, _) => Some(format!("+{shown}")),
                (_, true) => Some(format!("-{shown}")),
                _ => Some(shown.into_owned()),
            }
        })
        .collect()
}

/// A private temp directory for the edit session, removed on drop unless kept.
struct EditDir {
    path: PathBuf,
    keep: bool,
}

impl EditDir {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "hooktunnel-edit-{}",
            hooktunnel_relay::protocol::next_id()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .with_context(|| format!("cannot create {} for editing", path.display()))?;
        Ok(Self { path, keep: false })
    }
}

impl Drop for EditDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The editor command: `$EDITOR`, else `$VISUAL`, else `vi`, split on
/// whitespace so `code --wait` works.
fn editor_command() -> Vec<String> {
    for var in ["EDITOR", "VISUAL"] {
        if let Ok(value) = std::env::var(var) {
            let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
            if !words.is_empty() {
                return words;
            }
        }
    }
    vec!["vi".to_owned()]
}

async fn run_editor(file: &Path) -> anyhow::Result<()> {
    let words = editor_command();
    let (program, rest) = words
        .split_first()
        .context("no editor configured; set EDITOR")?;
    let status = tokio::process::Command::new(program)
        .args(rest)
        .arg(file)
        .status()
        .await
        .with_context(|| {
            format!(
                "cannot start the editor `{}`; set EDITOR (e.g. EDITOR=nano or EDITOR=\"code --wait\")",
                words.join(" ")
            )
        })?;
    if !status.success() {
        anyhow::bail!(
            "the editor `{}` exited with {status}; nothing sent",
            words.join(" ")
        );
    }
    Ok(())
}

/// Opens the original request in the editor and reads back what to send,
/// with a note saying what happened.
async fn edit(original: &Exchange) -> anyhow::Result<(ReplayRequest, String)> {
    let mut dir = EditDir::create()?;
    let message_path = dir.path.join(format!("hooktunnel-{}.http", original.id));
    let body_path = dir.path.join(format!("hooktunnel-{}.body", original.id));
    let (text, binary) = http_message::render(original, Some(&body_path));
    std::fs::write(&message_path, &text)
        .with_context(|| format!("cannot write {}", message_path.display()))?;
    if let Some(bytes) = &binary {
        std::fs::write(&body_path, bytes)
            .with_context(|| format!("cannot write {}", body_path.display()))?;
    }
    run_editor(&message_path).await?;
    let edited = std::fs::read(&message_path)
        .with_context(|| format!("cannot read back {}", message_path.display()))?;
    let body_untouched = match &binary {
        Some(bytes) => std::fs::read(&body_path).is_ok_and(|now| &now == bytes),
        None => true,
    };
    if edited == text.as_bytes() && body_untouched {
        return Ok((
            ReplayRequest::original(original),
            "the request was not changed in the editor; sending it as captured".to_owned(),
        ));
    }
    let mut parsed = match http_message::parse(&edited) {
        Ok(p) => p,
        Err(http_message::MessageError::Empty) => {
            return Ok((
                ReplayRequest::original(original),
                "the edited file is empty; sending the request as captured".to_owned(),
            ));
        }
        Err(e) => {
            dir.keep = true;
            anyhow::bail!(
                "cannot read the edited request: {e}; nothing sent. Your edit is kept in {}",
                message_path.display()
            );
        }
    };
    if let Some(file) = parsed.body_file.take() {
        let body = std::fs::read(&file).with_context(|| {
            dir.keep = true;
            format!(
                "cannot read the body file {} named in the edited request; nothing sent",
                file.display()
            )
        })?;
        parsed.set_body(body.into());
    }
    let message = format!(
        "sending the edited request ({} {}, {} headers, body {})",
        sanitize::escape(&parsed.method),
        sanitize::escape(&parsed.path),
        parsed.headers.len(),
        output::size(parsed.body.len() as u64)
    );
    Ok((
        ReplayRequest {
            method: parsed.method,
            path: parsed.path,
            headers: parsed.headers,
            body: parsed.body,
        },
        message,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> ExchangeResponse {
        ExchangeResponse {
            status,
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn difference_names_what_changed() {
        let a = response(
            200,
            &[("date", "x"), ("content-type", "text/plain"), ("x-a", "1")],
            b"ok",
        );
        let b = response(
            200,
            &[("date", "y"), ("content-type", "text/plain"), ("x-a", "1")],
            b"ok",
        );
        assert_eq!(
            difference(Some(&a), &b),
            "same status (200); same headers; same body"
        );
        let c = response(
            500,
            &[("content-type", "application/json"), ("x-b", "2")],
            b"{\"e\":1}",
        );
        assert_eq!(
            difference(Some(&a), &c),
            "status 200 → 500; headers changed: content-type, -x-a, +x-b; body changed (2 B → 7 B)"
        );
        assert_eq!(difference(None, &c), "the original got no response");
    }

    #[test]
    fn resign_argument_forms() {
        assert!(matches!(
            Resign::parse("").unwrap(),
            Resign::Configured(None)
        ));
        assert!(matches!(
            Resign::parse("stripe").unwrap(),
            Resign::Configured(Some(Provider::Stripe))
        ));
        match Resign::parse("stripe:whsec_a:b").unwrap() {
            Resign::Explicit(spec) => assert_eq!(spec.secret, "whsec_a:b"),
            other => panic!("{other:?}"),
        }
        assert!(Resign::parse("gitlab").is_err());
    }
}
