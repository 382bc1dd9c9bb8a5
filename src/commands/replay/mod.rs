//! `hooktunnel replay`: send stored requests again, one by id
//! ([`single`], optionally edited in the user's editor) or in bulk
//! ([`bulk`]); [`diff`] describes how a replay's response differs.
//!
//! Every replay goes through the same forwarder as the live path
//! ([`crate::replay::send`]) and is stored as a new exchange whose
//! `replay_of` names the original.

mod bulk;
pub mod diff;
mod single;

use anyhow::Context as _;
use hooktunnel_protocol::HttpErrorCode;
use serde_json::json;

use crate::cli::ReplayArgs;
use crate::clock::now_ms;
use crate::config::{ConfigFile, Paths};
use crate::exchange::{Exchange, Header};
use crate::forward::Target;
use crate::replay::{ReplayOptions, ReplayRequest};
use crate::sanitize;
use crate::secrets::{self, SecretSource};
use crate::store::Store;
use crate::store::writer::Retention;
use crate::verify::{self, Provider, SecretSpec};

use super::trigger::hooktunnel_error;

pub use diff::difference;

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
                None => match secrets::configured(paths)?.as_slice() {
                    [only] => return Ok(only.clone()),
                    _ => anyhow::bail!(
                        "cannot tell which provider signs this request (it has no signature \
                         header); pass --resign PROVIDER:SECRET or --resign PROVIDER"
                    ),
                },
            },
        };
        secrets::configured_for(paths, provider)?.with_context(|| {
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
    /// `--force`: re-sign even for a provider other than the request's.
    force: bool,
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
        // Another provider's signature would be left stale next to the new
        // one, and the app would most likely check the stale one.
        if let Some(signed_by) = verify::detect(&request.headers)
            && signed_by != spec.provider
            && !self.force
        {
            anyhow::bail!(
                "--resign is for {} but this request is signed by {signed_by}; pass --resign {signed_by}:SECRET (or --force to add a {} signature anyway)",
                spec.provider,
                spec.provider
            );
        }
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
    let timeout = super::timeout(args.timeout)?;
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
            timeout: Some(timeout),
            insecure_local: args.insecure_local,
        },
        resign: resign.as_deref().map(Resign::parse).transpose()?,
        new_id: args.new_id,
        force: args.force,
        paths,
    };
    let mut store = Store::open(&paths.db()).context("cannot open the history")?;
    let result = match id {
        Some(id) => single::single(args, &plan, &mut store, &id).await,
        None if args.filter.is_empty() => Err(anyhow::anyhow!(
            "say what to replay: an ID (or `last`), or filters for a bulk replay such as \
             --since 10m, --path '/webhooks/**', --method POST, --status 5xx, --grep TEXT \
             (see `hooktunnel replay --help`)"
        )),
        None => bulk::bulk(args, &plan, &mut store).await,
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
/// What to do after a failed replay: a timeout means the app is up but
/// slow, anything else that it may not be running.
fn advice(replay: &Exchange, original: &str) -> String {
    let timed_out = replay
        .response
        .as_ref()
        .and_then(hooktunnel_error)
        .is_some_and(|code| code.parse() == Ok(HttpErrorCode::LocalTimeout));
    if timed_out {
        format!(
            "The app took longer than --timeout; make it answer sooner, or run `hooktunnel replay {original} --timeout SECS` with more time."
        )
    } else {
        format!(
            "Is the app running? Start it and run `hooktunnel replay {original}` again, or send elsewhere with --to PORT|URL."
        )
    }
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
