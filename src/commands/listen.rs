//! `hooktunnel listen`: open the tunnel and serve until Ctrl-C.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hooktunnel_relay::protocol::{Mode, QueuedResponse};

use crate::agent::{self, AgentOptions, Pipeline};
use crate::cli::{ListenArgs, ModeArg};
use crate::config::{ConfigFile, Paths};
use crate::event::{AgentEvent, ConnectionState, Ready};
use crate::forward::{Forwarder, Target};
use crate::output::{self, Format};
use crate::store::writer::{Retention, StoreWriter};
use crate::verify::SecretSpec;

/// Preferred port for the embedded relay, so its URL survives restarts.
pub const EMBEDDED_PORT: u16 = 7070;

/// Starts the relay library in this process; returns its base URL.
async fn start_embedded_relay(
    addr: SocketAddr,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
) -> anyhow::Result<String> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        // The preferred port is taken (another listen?): any free port will do.
        Err(_) if addr.port() == EMBEDDED_PORT => {
            tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))
                .await
                .context("cannot start the embedded relay")?
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot start the embedded relay on {addr}"));
        }
    };
    let local = listener.local_addr()?;
    let config = hooktunnel_relay::RelayConfig {
        data_dir: Some(data_dir),
        ..hooktunnel_relay::RelayConfig::default()
    };
    tokio::spawn(async move {
        if let Err(e) = hooktunnel_relay::serve(listener, config, cancel.cancelled_owned()).await {
            tracing::error!(error = %e, "embedded relay stopped");
        }
    });
    Ok(format!("http://{local}"))
}

/// A fresh secret agent key.
fn new_agent_key() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Everything `listen` needs, resolved from flags, env and the config file.
#[derive(Clone, Debug)]
pub struct ListenSettings {
    /// The local app.
    pub target: Target,
    /// Relay URL; `None` starts an embedded relay.
    pub relay: Option<String>,
    /// Relay token.
    pub token: Option<String>,
    /// Tunnel name to ask for (else the remembered one, else the relay picks).
    pub name: Option<String>,
    /// How senders are answered.
    pub mode: Mode,
    /// Local app timeout.
    pub timeout: Duration,
    /// Where the embedded relay listens.
    pub embedded_listen: SocketAddr,
    /// Config and data locations.
    pub paths: Paths,
    /// Signature secrets for verdicts (in addition to the config file's).
    pub verify: Vec<SecretSpec>,
    /// Attempts per durable delivery when the local app fails.
    pub max_attempts: u32,
    /// What senders get while this agent is away.
    pub queued_response: Option<QueuedResponse>,
    /// Extra CA certificate trusted for a `wss://` relay.
    pub ca_cert: Option<std::path::PathBuf>,
    /// History bounds from the command line (`None`: config file, then default).
    pub keep: Option<u64>,
    /// History byte bound from the command line.
    pub keep_bytes: Option<u64>,
    /// Keepalive ping interval (the protocol's default outside tests).
    pub ping_interval: Duration,
}

/// A tunnel that is up and serving in the background.
pub struct Running {
    /// Agent events, starting with [`AgentEvent::Ready`].
    pub events: mpsc::UnboundedReceiver<AgentEvent>,
    /// Completes when the tunnel stops (cancelled, or refused for good).
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The public URL.
    pub public_url: String,
}

/// Connects (starting an embedded relay when none is set) and serves in the
/// background until `cancel` fires. Errors here are the first connection's.
pub async fn start(settings: ListenSettings, cancel: CancellationToken) -> anyhow::Result<Running> {
    let config_path = settings.paths.config_file();
    let mut config = ConfigFile::load(&config_path)?;
    if config.agent_key.is_none() {
        config.agent_key = Some(new_agent_key());
        config.save(&config_path)?;
    }
    let (relay, embedded) = match settings.relay.clone().or_else(|| config.relay.clone()) {
        Some(relay) => (relay, false),
        None => (
            start_embedded_relay(
                settings.embedded_listen,
                settings.paths.data_dir.join("relay"),
                cancel.clone(),
            )
            .await?,
            true,
        ),
    };
    let mut opts = AgentOptions {
        relay: relay.clone(),
        token: settings.token.clone().or_else(|| config.token.clone()),
        name: settings.name.clone().or_else(|| config.name.clone()),
        key: config.agent_key.clone(),
        mode: settings.mode,
        queued_response: settings.queued_response.clone(),
        ca_cert: settings.ca_cert.clone(),
        ping_interval: settings.ping_interval,
    };
    let hint = config_path.display().to_string();
    let session = agent::connect(&opts, &hint).await?;
    // Reconnects ask for the granted name, so the URL survives a dropped link.
    opts.name = Some(session.welcome.name.clone());
    if settings.name.is_none() && config.name.as_deref() != Some(session.welcome.name.as_str()) {
        // Remember the name so the next run gets the same URL.
        config.name = Some(session.welcome.name.clone());
        config.save(&config_path)?;
    }
    let mut verify = settings.verify.clone();
    for spec in &config.verify {
        verify.push(
            spec.parse()
                .with_context(|| format!("bad `verify` entry in {}", config_path.display()))?,
        );
    }
    let retention = Retention::resolve(settings.keep, settings.keep_bytes, &config);
    let store = StoreWriter::spawn_with_retention(settings.paths.db(), retention)?;
    let (events, events_rx) = mpsc::unbounded_channel();
    let forwarder = Forwarder::new(settings.target.clone(), settings.timeout);
    let (ordered, ordered_rx) = mpsc::unbounded_channel();
    let pipeline = Arc::new(Pipeline {
        forwarder,
        store,
        events,
        tunnel: RwLock::new(session.welcome.name.clone()),
        verify,
        ordered,
        max_attempts: settings.max_attempts.max(1),
    });
    let worker = {
        let pipeline = pipeline.clone();
        let db = settings.paths.db();
        let stop = cancel.clone();
        tokio::spawn(async move { pipeline.run_ordered(ordered_rx, db, stop).await })
    };
    let public_url = session
        .welcome
        .public_urls
        .first()
        .cloned()
        .unwrap_or_default();
    let _ = pipeline.events.send(AgentEvent::Ready(Ready {
        public_url: public_url.clone(),
        target: settings.target.base_url(),
        relay,
        embedded,
    }));
    let pipeline_for_stop = pipeline.clone();
    let task = tokio::spawn(async move {
        let served = serve(session, &opts, &hint, pipeline, cancel.clone()).await;
        // Stopped or refused for good: let the ordered worker finish its delivery.
        cancel.cancel();
        let _ = worker.await;
        if let Err(e) = pipeline_for_stop.store.flush().await {
            tracing::error!(error = %e, "could not finish writing the history");
        }
        served
    });
    Ok(Running {
        events: events_rx,
        task,
        public_url,
    })
}

/// Runs `listen`.
pub async fn run(args: ListenArgs, paths: Paths) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let settings = ListenSettings {
        target: Target::parse(&args.target)?,
        relay: args.relay.clone(),
        token: args.token.clone(),
        name: args.name.clone(),
        mode: match args.mode {
            ModeArg::Proxy => Mode::Proxy,
            ModeArg::Ack => Mode::Ack,
        },
        timeout: Duration::from_secs_f64(args.timeout),
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
        ping_interval: hooktunnel_relay::protocol::PING_INTERVAL,
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
    let paths_for_ui = settings.paths.clone();
    let mut running = start(settings, cancel.clone()).await?;
    let web_secrets = super::trigger::secrets_with_sources(&args.verify, "--verify", &paths_for_ui);
    crate::web::attach(
        &mut running,
        &args.web,
        &paths_for_ui,
        web_secrets,
        cancel.clone(),
    )
    .await?;
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let mut task = running.task;
    if tui {
        // The inspector owns the terminal until the user quits; a tunnel that
        // stops on its own shows as offline there, and its error is printed
        // once the terminal is restored.
        let secrets = super::trigger::secrets_with_sources(&args.verify, "--verify", &paths_for_ui);
        let shown = crate::tui::run_live(paths_for_ui, running.events, secrets).await;
        cancel.cancel();
        let stopped = (&mut task)
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the tunnel task failed: {e}")));
        shown?;
        return stopped;
    }
    let printer = tokio::spawn(print_events(format, running.events));
    let result = match task.await {
        Ok(result) => result,
        Err(e) => Err(anyhow::anyhow!("the tunnel task failed: {e}")),
    };
    cancel.cancel();
    let _ = printer.await;
    result
}

/// Serves on `session`, reconnecting with backoff until cancelled or refused for good.
async fn serve(
    mut session: agent::Session,
    opts: &AgentOptions,
    hint: &str,
    pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let lost = match session.run(pipeline.clone(), cancel.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let mut reason = lost.to_string();
        let mut attempt = 0;
        let mut delays = agent::reconnect::delays();
        session = loop {
            attempt += 1;
            let delay = delays.next().unwrap_or(agent::reconnect::MAX_DELAY);
            let _ = pipeline
                .events
                .send(AgentEvent::Connection(ConnectionState::Reconnecting {
                    attempt,
                    retry_at: SystemTime::now() + delay,
                    reason: reason.clone(),
                }));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Ok(()),
            }
            match agent::connect(opts, hint).await {
                Ok(s) => break s,
                Err(e) if e.is_fatal() => {
                    let _ = pipeline
                        .events
                        .send(AgentEvent::Connection(ConnectionState::Offline(
                            e.to_string(),
                        )));
                    return Err(e.into());
                }
                Err(e) => reason = e.to_string(),
            }
        };
        if let Ok(mut name) = pipeline.tunnel.write() {
            name.clone_from(&session.welcome.name);
        }
        let _ = pipeline
            .events
            .send(AgentEvent::Connection(ConnectionState::Online));
    }
}

async fn print_events(format: Format, mut rx: mpsc::UnboundedReceiver<AgentEvent>) {
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
