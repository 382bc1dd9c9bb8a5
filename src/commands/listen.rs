//! `hooktunnel listen`: arguments → [`ListenSettings`] → [`start`] → print
//! (or the inspector) until Ctrl-C. The tunnel itself lives in
//! [`crate::agent::tunnel`].

use std::io::{IsTerminal as _, Write as _};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hooktunnel_protocol::{Mode, QueuedResponse};

pub use crate::agent::tunnel::{AlsoTunnel, ListenSettings, Running, start};
use crate::cli::{ListenArgs, ModeArg};
use crate::config::Paths;
use crate::event::AgentEvent;
use crate::forward::{ForwardOptions, Target};
use crate::output::{self, Format};
use anyhow::Context as _;

/// Runs `listen`.
pub async fn run(args: ListenArgs, paths: Paths) -> anyhow::Result<()> {
    let timeout = super::timeout(args.timeout)?;
    // `--all` / `--tunnel`: several [[tunnel]] tables, the first one leading.
    let (name, target, also) = if args.all || !args.tunnel.is_empty() {
        let config = crate::config::ConfigFile::load(&paths.config_file())?;
        let tables = crate::rules::several(&config.tunnels, &args.tunnel, args.target.as_deref())
            .with_context(|| format!("in {}", paths.config_file().display()))?;
        let mut served = Vec::with_capacity(tables.len());
        for (name, target) in tables {
            let target = Target::parse(&target)
                .with_context(|| format!("the target of [[tunnel]] '{name}'"))?;
            served.push(AlsoTunnel { name, target });
        }
        let first = served.remove(0);
        (Some(first.name), first.target, served)
    } else {
        let target = args.target.as_deref().unwrap_or_default();
        (args.name.clone(), Target::parse(target)?, Vec::new())
    };
    let settings = ListenSettings {
        target,
        forward: ForwardOptions {
            insecure_local: args.insecure_local,
            host_header: args.host_header.clone(),
        },
        // `HOOKTUNNEL_RELAY=` (set but empty) means "not set", as in most tools.
        relay: args.relay.clone().filter(|r| !r.trim().is_empty()),
        token: args.token.clone().filter(|t| !t.is_empty()),
        name,
        mode: match args.mode {
            ModeArg::Proxy => Mode::Proxy,
            ModeArg::Ack => Mode::Ack,
        },
        timeout,
        embedded_listen: args.embedded_listen,
        paths,
        verify: args.verify.clone(),
        max_attempts: args.retries.saturating_add(1),
        queued_response: args.queued_status.map(|status| QueuedResponse {
            status,
            body: args.queued_body.clone(),
        }),
        ca_cert: args.ca_cert.clone(),
        keep: args.keep,
        keep_bytes: args.keep_bytes,
        ping_interval: hooktunnel_protocol::PING_INTERVAL,
        takeover: args.takeover,
        rules: args.rules.to_config(),
        inject_seed: args.rules.inject_seed,
        capture_max: args.capture_max.map(|c| c.0),
        also,
    };
    let tui = !args.json && !args.no_tui && std::io::stdout().is_terminal();
    let format = if args.json {
        Format::Json
    } else {
        Format::Lines {
            color: output::color_enabled(std::io::stdout().is_terminal()),
        }
    };
    let cancel = CancellationToken::new();
    // Ctrl-C stops the tunnel cleanly. The handler is in place before the
    // tunnel starts, so an interrupt right after the "ready" line is never
    // the default (a kill).
    let interrupted = interrupt_handler()?;
    let paths_for_ui = settings.paths.clone();
    let mut running = start(settings, cancel.clone()).await?;
    let web_secrets = crate::secrets::with_sources(&args.verify, "--verify", &paths_for_ui);
    crate::web::attach(
        &mut running,
        &args.web,
        &paths_for_ui,
        web_secrets,
        cancel.clone(),
    )
    .await?;
    let events = super::stats::watch_alerts(running.events, args.alert.clone());
    let stop = cancel.clone();
    tokio::spawn(async move {
        interrupted.await;
        stop.cancel();
    });
    let mut task = running.task;
    if tui {
        // The inspector owns the terminal until the user quits; a tunnel that
        // stops on its own shows as offline there, and its error is printed
        // once the terminal is restored.
        let secrets = crate::secrets::with_sources(&args.verify, "--verify", &paths_for_ui);
        let options = crate::tui::Options {
            secrets,
            mask_secrets: crate::config::ConfigFile::masks_secrets(&paths_for_ui),
        };
        let shown = crate::tui::run_live(paths_for_ui, events, options).await;
        cancel.cancel();
        let stopped = (&mut task)
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the tunnel task failed: {e}")));
        shown?;
        return stopped;
    }
    let printer = tokio::spawn(print_events(format, events));
    let result = match task.await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!("the tunnel task failed: {e}")),
    };
    cancel.cancel();
    let _ = printer.await;
    result
}

async fn print_events(format: Format, mut rx: mpsc::Receiver<AgentEvent>) {
    // Lines are buffered while more events wait and flushed once the channel
    // is empty: one write per burst instead of one per exchange under load,
    // and still immediate when traffic is light.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let mut err = std::io::stderr();
    while let Some(event) = rx.recv().await {
        if let (AgentEvent::Ready(ready), Format::Lines { .. }) = (&event, format)
            && ready.embedded
        {
            let _ = writeln!(
                err,
                "hooktunnel: no relay configured, so an embedded relay runs on {} (reachable from this machine only).\n  For a public URL, run `hooktunnel-relay` on a server and pass --relay https://your.server (README: Running a public relay).",
                ready.relay
            );
        }
        if !matches!(event, AgentEvent::Exchange(_)) {
            // Stderr news stays in order with the lines before it.
            let _ = out.flush();
        }
        let printed = output::print_event(format, &event, &mut out, &mut err)
            .and_then(|()| if rx.is_empty() { out.flush() } else { Ok(()) });
        if printed.is_err() {
            // stdout closed (e.g. piped into `head`): keep serving silently.
            break;
        }
    }
    let _ = out.flush();
}

/// A future that resolves on Ctrl-C, with the handler registered now.
fn interrupt_handler() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = anyhow::Context::context(
            signal(SignalKind::interrupt()),
            "cannot install the Ctrl-C handler",
        )?;
        Ok(async move {
            sigint.recv().await;
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
