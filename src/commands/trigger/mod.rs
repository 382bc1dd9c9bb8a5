//! `hooktunnel trigger`: send a realistic sample event with a fresh signature.

pub mod samples;

use std::io::Write as _;

use anyhow::Context as _;
use serde_json::json;

use hooktunnel_protocol::{ERROR_HEADER, HttpErrorCode};

use crate::cli::TriggerArgs;
use crate::clock::now_ms;
use crate::config::{self, ConfigFile, Paths};
use crate::exchange::ExchangeResponse;
use crate::forward::{Forwarder, Outgoing, Target};
use crate::sanitize;
use crate::secrets::{self, SecretSource};
use crate::verify;

/// The value of `x-hooktunnel-error`, when hooktunnel (not the app) answered.
pub fn hooktunnel_error(response: &ExchangeResponse) -> Option<String> {
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(ERROR_HEADER))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
}

/// Runs `trigger`.
pub async fn run(args: &TriggerArgs, paths: &Paths) -> anyhow::Result<()> {
    if args.list {
        return list();
    }
    let timeout = super::timeout(args.timeout)?;
    let Some(event) = args.event.as_deref() else {
        anyhow::bail!("name an event to send; `hooktunnel trigger --list` shows them");
    };
    let sample = samples::find(event).with_context(|| {
        format!(
            "no sample event '{}'; `hooktunnel trigger --list` shows them",
            sanitize::escape(event)
        )
    })?;
    let now = now_ms() / 1000;
    let seed = hooktunnel_protocol::next_id().to_string();
    let (method, path, headers, body) = samples::build(sample.name, now, &seed)
        .with_context(|| format!("sample {} could not be built", sample.name))?;

    let (target, send_path, via) = destination(args, paths, &path)?;
    let url = target.url_for(&send_path);

    let signer = match &args.sign {
        Some(spec) if spec.provider != sample.provider => anyhow::bail!(
            "--sign is for {} but {} is a {} event; pass --sign {}:SECRET",
            spec.provider,
            sample.name,
            sample.provider,
            sample.provider
        ),
        Some(spec) => Some((spec.clone(), SecretSource::Flag("--sign"))),
        None => secrets::configured_for(paths, sample.provider)?,
    };
    let headers = match &signer {
        Some((spec, _)) => verify::resign(
            spec.provider,
            &spec.secret,
            &headers,
            &body,
            now,
            false,
            Some(&url),
        )
        .with_context(|| format!("cannot sign with the {} secret", spec.provider))?,
        None => headers,
    };
    let signed_note = match &signer {
        Some((spec, source)) => {
            format!("signed for {} with the secret from {source}", spec.provider)
        }
        None => format!(
            "unsigned: no {p} secret configured (pass --sign {p}:SECRET, or set `verify` in config.toml / HOOKTUNNEL_VERIFY)",
            p = sample.provider
        ),
    };

    let forwarder = Forwarder::new(target.clone(), timeout);
    let forwarded = forwarder
        .forward(Outgoing {
            method,
            path: &send_path,
            headers: &headers,
            body: body.clone().into(),
        })
        .await;
    let response = &forwarded.response;
    let duration_ms = forwarded.duration_us as f64 / 1000.0;

    // Our own failure to connect, or the relay saying the event went nowhere.
    let failure = if let Some(err) = &forwarded.error {
        Some(match via {
            Via::Tunnel => format!(
                "could not reach the relay at {}: {}; is `hooktunnel listen` running?",
                target.base_url(),
                err.rsplit(": ").next().unwrap_or(err)
            ),
            Via::Direct => err.clone(),
        })
    } else {
        hooktunnel_error(response).map(|code| {
            let said = String::from_utf8_lossy(&response.body).trim().to_owned();
            let hint = match code.parse() {
                Ok(HttpErrorCode::UnknownTunnel) => {
                    " (is `hooktunnel listen` running for this tunnel?)"
                }
                Ok(HttpErrorCode::LocalUnreachable | HttpErrorCode::LocalTimeout) => {
                    " (the event was captured: start the app, then `hooktunnel replay last`)"
                }
                _ => "",
            };
            format!(
                "{} answered {} ({code}): {}{hint}",
                match via {
                    Via::Tunnel => "the tunnel",
                    Via::Direct => "the target",
                },
                response.status,
                sanitize::escape(&said)
            )
        })
    };

    if args.json {
        let value = json!({
            "event": sample.name,
            "provider": sample.provider.name(),
            "url": url,
            "signed": signer.is_some(),
            "status": response.status,
            "duration_ms": (duration_ms * 10.0).round() / 10.0,
            "error": failure,
        });
        writeln!(std::io::stdout(), "{value}")?;
    } else if forwarded.error.is_none() {
        eprintln!("hooktunnel: {signed_note}");
        writeln!(
            std::io::stdout(),
            "Sent {} → {method} {}\n{} {}  in {duration_ms:.1} ms  ·  response {}",
            sample.name,
            sanitize::escape(&url),
            response.status,
            http::StatusCode::from_u16(response.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or(""),
            crate::output::size(response.body.len() as u64),
        )?;
        if let Some(id) = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("x-hooktunnel-id"))
        {
            writeln!(
                std::io::stdout(),
                "The relay queued it as {} (no agent online); it is delivered when `listen` reconnects.",
                sanitize::escape_bytes(&id.value)
            )?;
        }
    }
    match failure {
        Some(message) => Err(anyhow::anyhow!(message)),
        None => Ok(()),
    }
}

/// How the event travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Direct,
    Tunnel,
}

/// The target and request path for `--to` or `--tunnel`.
fn destination(
    args: &TriggerArgs,
    paths: &Paths,
    sample_path: &str,
) -> anyhow::Result<(Target, String, Via)> {
    if let Some(to) = &args.to {
        return Ok((Target::parse(to)?, sample_path.to_owned(), Via::Direct));
    }
    if !args.tunnel {
        anyhow::bail!(
            "say where to send it: --to PORT|URL (your app directly) or --tunnel (through this machine's tunnel)"
        );
    }
    // The running tunnel knows its real public URL (any port, https, a
    // subdomain); without one, the remembered name on the configured relay
    // still reaches the relay's queue.
    if let Some(live) = crate::running::live(paths) {
        let target = Target::parse(&live.public_url)
            .with_context(|| format!("the running tunnel's URL {} is unusable", live.public_url))?;
        return Ok((target, sample_path.to_owned(), Via::Tunnel));
    }
    let config_path = paths.config_file();
    let config = ConfigFile::load(&config_path)?;
    let configured = std::env::var("HOOKTUNNEL_RELAY")
        .ok()
        .filter(|r| !r.is_empty())
        .or(config.relay.clone());
    let key = config::relay_key(
        configured.as_deref().unwrap_or_default(),
        configured.is_none(),
    );
    let relay = configured.unwrap_or_else(config::default_relay_url);
    let Some(name) = config.name_for(&key) else {
        anyhow::bail!(
            "this machine has no tunnel yet: none is running and {} names none for {relay}; start `hooktunnel listen <PORT>`, or use --to",
            config_path.display()
        );
    };
    let target = Target::parse(&relay).context("the configured relay URL is unusable")?;
    Ok((target, format!("/t/{name}{sample_path}"), Via::Tunnel))
}

fn list() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let width = samples::SAMPLES
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    for s in samples::SAMPLES {
        writeln!(
            out,
            "{:<width$}  {:<17}  {}",
            s.name,
            s.provider.name(),
            s.description
        )?;
    }
    writeln!(
        out,
        "\nSend one: hooktunnel trigger <EVENT> --to 3000 [--sign PROVIDER:SECRET]"
    )?;
    Ok(())
}
