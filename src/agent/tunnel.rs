//! Starting a tunnel: settings resolved against the config file, an embedded
//! relay when none is configured, the first connection, and the background
//! task that serves (see [`super::supervisor`]) until cancelled.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use hooktunnel_protocol::{Mode, QueuedResponse};

use super::events::{self, EVENT_CAPACITY};
use super::{AgentOptions, Pipeline, handle, supervisor};
use crate::config::{ConfigFile, EMBEDDED_RELAY_ADDR, Paths};
use crate::event::{AgentEvent, Ready};
use crate::forward::{ForwardOptions, Forwarder, Target};
use crate::store::writer::{Retention, StoreWriter};
use crate::verify::SecretSpec;

/// Everything a tunnel needs, resolved from flags, env and the config file.
#[derive(Clone, Debug)]
pub struct ListenSettings {
    /// The local app.
    pub target: Target,
    /// TLS and `Host` choices for the local app.
    pub forward: ForwardOptions,
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
    /// Signature secrets for verdicts (in addition to the configured ones).
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
    /// Replace a live session of the same tunnel instead of being refused.
    pub takeover: bool,
    /// Traffic rules from the flags (merged with the config's `[[tunnel]]`).
    pub rules: crate::rules::RulesConfig,
    /// Seed for fault injection's draws (reproducible runs).
    pub inject_seed: Option<u64>,
    /// Body bytes kept per body in history (`None`: config file, then
    /// [`crate::capture::DEFAULT_CAPTURE_MAX`]).
    pub capture_max: Option<usize>,
    /// Further tunnels over the same connection (`listen --all`), each a
    /// `[[tunnel]]` table of the config: its name, rules and target.
    pub also: Vec<AlsoTunnel>,
}

/// A further tunnel of one `listen`: a named `[[tunnel]]` table and the
/// local app it forwards to.
#[derive(Clone, Debug)]
pub struct AlsoTunnel {
    /// The table's (and the tunnel's) name.
    pub name: String,
    /// Its local app.
    pub target: Target,
}

/// A tunnel that is up and serving in the background.
pub struct Running {
    /// Agent events, starting with [`AgentEvent::Ready`]; bounded, so a
    /// consumer that falls behind loses events (reported by a notice).
    pub events: mpsc::Receiver<AgentEvent>,
    /// Completes when the tunnel stops (cancelled, or refused for good).
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The public URL.
    pub public_url: String,
    /// Every tunnel served, the first one first: name, public URL, target.
    pub tunnels: Vec<crate::event::TunnelUrl>,
}

/// Starts the relay library in this process; returns its base URL.
async fn start_embedded_relay(
    addr: SocketAddr,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
) -> anyhow::Result<String> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        // The preferred port is taken (another listen?): any free port will do.
        Err(_) if addr.port() == EMBEDDED_RELAY_ADDR.port() => {
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

/// Connects (starting an embedded relay when none is set) and serves in the
/// background until `cancel` fires. Errors here are the first connection's.
pub async fn start(settings: ListenSettings, cancel: CancellationToken) -> anyhow::Result<Running> {
    let config_path = settings.paths.config_file();
    let mut config = ConfigFile::load(&config_path)?;
    if config.agent_key.is_none() {
        config.agent_key = Some(new_agent_key());
        config.save(&config_path)?;
    }
    let verify: Vec<SecretSpec> =
        crate::secrets::resolve(&settings.verify, "--verify", &settings.paths)?
            .into_iter()
            .map(|(spec, _)| spec)
            .collect();
    // Rules are checked before anything connects: a typo never goes live.
    let rules = crate::rules::select(&settings.rules, settings.name.as_deref(), &config.tunnels)
        .with_context(|| format!("in the [[tunnel]] tables of {}", config_path.display()))?;
    let (edge, agent_rules) = crate::rules::compile(&rules, &verify)?;
    let mut also = Vec::with_capacity(settings.also.len());
    for t in &settings.also {
        let rules = crate::rules::select(&settings.rules, Some(&t.name), &config.tunnels)
            .with_context(|| format!("in the [[tunnel]] tables of {}", config_path.display()))?;
        let (edge, agent_rules) = crate::rules::compile(&rules, &verify)
            .with_context(|| format!("in [[tunnel]] '{}'", t.name))?;
        also.push((t, edge, agent_rules));
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
    let relay_key = crate::config::relay_key(&relay, embedded);
    let relays = super::relay_list(&relay);
    let mut opts = AgentOptions {
        relay: relays.first().cloned().unwrap_or_else(|| relay.clone()),
        relays,
        token: settings.token.clone().or_else(|| config.token.clone()),
        name: settings
            .name
            .clone()
            .or_else(|| rules.name.clone())
            .or_else(|| config.name_for(&relay_key).map(str::to_owned)),
        key: config.agent_key.clone(),
        mode: settings.mode,
        queued_response: settings.queued_response.clone(),
        ca_cert: settings.ca_cert.clone(),
        ping_interval: settings.ping_interval,
        host: super::host_name(),
        instance: super::new_instance_id(),
        takeover: settings.takeover,
        rules: edge,
        more: also
            .iter()
            .map(|(t, edge, _)| super::MoreTunnel {
                name: Some(t.name.clone()),
                mode: settings.mode,
                queued_response: settings.queued_response.clone(),
                rules: edge.clone(),
            })
            .collect(),
    };
    let hint = config_path.display().to_string();
    // Several relays (one cluster): the first that answers.
    let session = loop {
        match super::connect(&opts, &hint).await {
            Ok(session) => break session,
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(e) => {
                let first = opts.relays.first().cloned().unwrap_or_default();
                if !opts.next_relay() || opts.relay == first {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, next = %opts.relay, "relay unreachable; trying the next");
            }
        }
    };
    // Taking over is for the first connection: a reconnect replaces only
    // this run's own session, so two runs never keep taking turns.
    opts.takeover = false;
    // Reconnects ask for the granted names, so the URLs survive a dropped link.
    opts.name = Some(session.welcome.name.clone());
    for (more, granted) in opts.more.iter_mut().zip(&session.welcome.more) {
        more.name = Some(granted.name.clone());
    }
    // Remember the name for this relay so the next run gets the same URL.
    if config.remember_name(&relay_key, &session.welcome.name) {
        config.save(&config_path)?;
    }
    if config.keep == Some(0) {
        anyhow::bail!(
            "`keep = 0` in {} would keep no history; set it to 1 or more (or run `hooktunnel clear` to empty the history)",
            config_path.display()
        );
    }
    let retention = Retention::resolve(settings.keep, settings.keep_bytes, &config);
    let store = StoreWriter::spawn_with_retention(settings.paths.db(), retention)?;
    let (events, events_rx) = events::channel(EVENT_CAPACITY);
    let shared = Shared {
        store,
        events: Arc::new(events),
        verify,
        settings: &settings,
        capture_max: settings
            .capture_max
            .or(config.capture_max.map(|c| c.0))
            .unwrap_or(crate::capture::DEFAULT_CAPTURE_MAX),
        cancel: &cancel,
    };
    let mut workers = Vec::with_capacity(1 + also.len());
    let mut pipelines = Vec::with_capacity(1 + also.len());
    let granted = std::iter::once(&session.welcome).chain(&session.welcome.more);
    let targets = std::iter::once((&settings.target, agent_rules))
        .chain(also.into_iter().map(|(t, _, rules)| (&t.target, rules)));
    for (welcome, (target, rules)) in granted.zip(targets) {
        let (pipeline, worker) = shared.pipeline(&welcome.name, target, rules);
        pipelines.push(pipeline);
        workers.push(worker);
    }
    let store = shared.store;
    let tunnels = super::Tunnels::new(pipelines).context("no tunnel to serve")?;
    let pipeline = tunnels.first().clone();
    let urls: Vec<crate::event::TunnelUrl> = std::iter::once(&session.welcome)
        .chain(&session.welcome.more)
        .zip(tunnels.iter())
        .map(|(w, p)| crate::event::TunnelUrl {
            name: w.name.clone(),
            public_url: w.public_urls.first().cloned().unwrap_or_default(),
            target: p.forwarder.target().base_url(),
        })
        .collect();
    let public_url = session
        .welcome
        .public_urls
        .first()
        .cloned()
        .unwrap_or_default();
    // One state file per tunnel, so `status` lists each of them.
    let since_ms = crate::clock::now_ms();
    let published = urls
        .iter()
        .map(|t| {
            crate::running::publish(
                &settings.paths,
                &crate::running::TunnelState {
                    pid: std::process::id(),
                    name: t.name.clone(),
                    public_url: t.public_url.clone(),
                    relay: relay.clone(),
                    embedded,
                    target: t.target.clone(),
                    since_ms,
                    web_url: None,
                },
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    pipeline.events.send(AgentEvent::Ready(Ready {
        public_url: public_url.clone(),
        target: settings.target.base_url(),
        relay,
        embedded,
        // Filled in by the web inspector's tee when it runs.
        web_url: None,
        more: urls.iter().skip(1).cloned().collect(),
    }));
    let pipeline_for_stop = pipeline.clone();
    let task = tokio::spawn(async move {
        let served = supervisor::supervise(session, &opts, &hint, tunnels, cancel.clone()).await;
        // Stopped or refused for good: let the ordered workers finish their deliveries.
        cancel.cancel();
        futures_util::future::join_all(workers).await;
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "could not finish writing the history");
        }
        if !pipeline_for_stop.events.report_dropped() {
            tracing::warn!(
                dropped = pipeline_for_stop.events.dropped_total(),
                "agent events were dropped because the display fell behind"
            );
        }
        // `status` and `trigger --tunnel` see the tunnel as gone.
        drop(published);
        served
    });
    Ok(Running {
        events: events_rx,
        task,
        public_url,
        tunnels: urls,
    })
}

/// What every tunnel of one `listen` shares: the history, the event
/// channel, the secrets and the settings.
struct Shared<'a> {
    store: StoreWriter,
    events: Arc<events::EventSender>,
    verify: Vec<SecretSpec>,
    settings: &'a ListenSettings,
    capture_max: usize,
    cancel: &'a CancellationToken,
}

impl Shared<'_> {
    /// One tunnel's pipeline and its ordered-delivery worker (which runs
    /// until the tunnel stops).
    fn pipeline(
        &self,
        name: &str,
        target: &Target,
        rules: crate::rules::AgentRules,
    ) -> (Arc<Pipeline>, tokio::task::JoinHandle<()>) {
        let settings = self.settings;
        let (ordered, ordered_rx) = handle::ordered_channel();
        let pipeline = Arc::new(Pipeline {
            forwarder: Forwarder::with_options(target.clone(), settings.timeout, &settings.forward),
            store: self.store.clone(),
            events: self.events.clone(),
            tunnel: RwLock::new(name.to_owned()),
            verify: self.verify.clone(),
            ordered,
            max_attempts: settings.max_attempts.max(1),
            rules: crate::rules::apply::RuleSet::new(
                rules,
                settings.timeout,
                &settings.forward,
                settings.inject_seed,
            ),
            capture_max: self.capture_max,
            live: tokio_util::task::TaskTracker::new(),
        });
        let worker = {
            let pipeline = pipeline.clone();
            let db = settings.paths.db();
            let stop = self.cancel.clone();
            tokio::spawn(async move { pipeline.run_ordered(ordered_rx, db, stop).await })
        };
        (pipeline, worker)
    }
}
