//! The local web inspector and its HTTP API, served by `listen` (and by
//! `inspect --web` over the stored history alone).
//!
//! | module | role |
//! | --- | --- |
//! | [`api_ngrok`] | the ngrok-compatible subset (`/api/tunnels`, `/api/requests/http`) |
//! | [`api_v1`] | hooktunnel's own API under `/api/v1/` |
//! | [`service`] | store reads, replays and exports shared by both APIs |
//! | [`sse`] | live events for the page, bounded per tab |
//! | [`security`] | Host/Origin/token checks and response headers |
//! | `assets/` | the page (HTML, JS, CSS), embedded with `include_str!` |

pub mod api_ngrok;
pub mod api_v1;
mod assets;
pub mod security;
pub mod service;
pub mod sse;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cli::WebArgs;
use crate::commands::listen::Running;
use crate::config::{ConfigFile, Paths};
use crate::event::{AgentEvent, ConnectionState};
use crate::verify::SecretSpec;

/// The default address, like ngrok's.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4040);

/// How many later ports are tried when the wanted one is taken.
const PORT_TRIES: u16 = 16;

/// Events buffered per page; a tab further behind skips ahead (see [`sse`]).
const EVENT_BUFFER: usize = 256;

/// Where the inspector listens: `off`, `PORT`, or `ADDR:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebAddr {
    /// No web inspector.
    Off,
    /// Listen here (or on the next free port).
    At(SocketAddr),
}

impl Default for WebAddr {
    fn default() -> Self {
        Self::At(DEFAULT_ADDR)
    }
}

impl std::str::FromStr for WebAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        if let Ok(port) = s.parse::<u16>() {
            return Ok(Self::At(SocketAddr::new(DEFAULT_ADDR.ip(), port)));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port in {s:?}"))?;
            return Ok(Self::At(SocketAddr::new(DEFAULT_ADDR.ip(), port)));
        }
        s.parse::<SocketAddr>().map(Self::At).map_err(|_| {
            format!("bad web address {s:?}: expected `off`, a port (4040) or ADDR:PORT")
        })
    }
}

/// A tunnel the API describes (none for `inspect --web`; several when one
/// agent serves several, `listen --all`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Tunnel name (the label in the public URL).
    pub name: String,
    /// Public URL senders use.
    pub public_url: String,
    /// Local app base URL.
    pub target: String,
}

/// Something the page hears about live.
#[derive(Clone, Debug)]
pub enum WebEvent {
    /// An exchange was recorded (captured or replayed).
    Exchange(crate::exchange::ExchangeSummary),
    /// A replay finished: the new exchange's id, and the original's.
    Replayed {
        /// The new exchange.
        summary: crate::exchange::ExchangeSummary,
        /// A note (re-signed, …).
        note: Option<String>,
    },
    /// The tunnel's link changed state (`online`, `reconnecting: …`, `offline: …`).
    Connection(String),
}

/// Shared by every handler.
pub struct WebState {
    /// The history database.
    pub db: PathBuf,
    /// The live tunnels, in the order they came up (empty until one is up,
    /// and for `inspect --web`). See [`WebState::tunnels`].
    pub tunnels: RwLock<Vec<TunnelInfo>>,
    /// Live events to pages.
    pub events: broadcast::Sender<WebEvent>,
    /// Signature secrets (with where they came from) for re-signing replays.
    pub secrets: Vec<(SecretSpec, String)>,
    /// Bearer token required on every call, when set.
    pub token: Option<String>,
    /// `Host` values accepted (the loopback names with the bound port).
    pub hosts: Vec<String>,
    /// Requests seen through the tunnels since start (ngrok's `metrics.http.count`).
    pub http_count: AtomicU64,
    /// The same, per tunnel name (used when there are several tunnels).
    pub http_counts: Mutex<BTreeMap<String, u64>>,
    /// The link's state as the page shows it.
    pub connection: RwLock<String>,
}

impl WebState {
    /// State for a server bound at `addr`.
    pub fn new(
        db: PathBuf,
        addr: SocketAddr,
        token: Option<String>,
        secrets: Vec<(SecretSpec, String)>,
    ) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            db,
            tunnels: RwLock::new(Vec::new()),
            events,
            secrets,
            token,
            hosts: security::allowed_hosts(addr),
            http_count: AtomicU64::new(0),
            http_counts: Mutex::new(BTreeMap::new()),
            connection: RwLock::new("offline".to_owned()),
        }
    }

    /// The first tunnel, if one is up (the only one, unless several are
    /// served).
    pub fn tunnel(&self) -> Option<TunnelInfo> {
        self.tunnels.read().ok().and_then(|t| t.first().cloned())
    }

    /// Every tunnel up, in the order they came up.
    pub fn tunnels(&self) -> Vec<TunnelInfo> {
        self.tunnels.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Replaces the list of tunnels ([`observe`](Self::observe) does it
    /// with every tunnel a `Ready` names).
    pub fn set_tunnels(&self, tunnels: Vec<TunnelInfo>) {
        if let Ok(mut t) = self.tunnels.write() {
            *t = tunnels;
        }
    }

    /// Adds a tunnel, or replaces the one of the same name.
    pub fn set_tunnel(&self, tunnel: TunnelInfo) {
        if let Ok(mut list) = self.tunnels.write() {
            match list.iter_mut().find(|t| t.name == tunnel.name) {
                Some(t) => *t = tunnel,
                None => list.push(tunnel),
            }
        }
    }

    /// The tunnel named `name`, if it is up.
    pub fn find_tunnel(&self, name: &str) -> Option<TunnelInfo> {
        self.tunnels
            .read()
            .ok()
            .and_then(|t| t.iter().find(|t| t.name == name).cloned())
    }

    /// Requests seen through tunnel `name` since start. With one tunnel (or
    /// none) that is every request seen.
    pub fn http_count_of(&self, name: &str) -> u64 {
        let several = self.tunnels.read().map(|t| t.len() > 1).unwrap_or(false);
        if several {
            self.http_counts
                .lock()
                .ok()
                .and_then(|c| c.get(name).copied())
                .unwrap_or(0)
        } else {
            self.http_count.load(Ordering::Relaxed)
        }
    }

    /// Records what an agent event means for the page and tells open pages.
    pub fn observe(&self, event: &AgentEvent) {
        match event {
            AgentEvent::Ready(ready) => {
                // The first tunnel, then any further ones (`listen --all`).
                let first = TunnelInfo {
                    name: tunnel_name(&ready.public_url),
                    public_url: ready.public_url.clone(),
                    target: ready.target.clone(),
                };
                let more = ready.more.iter().map(|t| TunnelInfo {
                    name: t.name.clone(),
                    public_url: t.public_url.clone(),
                    target: t.target.clone(),
                });
                self.set_tunnels(std::iter::once(first).chain(more).collect());
                self.set_connection("online".to_owned());
            }
            AgentEvent::Connection(state) => self.set_connection(match state {
                ConnectionState::Online => "online".to_owned(),
                ConnectionState::Reconnecting {
                    attempt, reason, ..
                } => {
                    format!("reconnecting (attempt {attempt}): {reason}")
                }
                ConnectionState::Offline(why) => format!("offline: {why}"),
            }),
            AgentEvent::Exchange(summary) => {
                if summary.replay_of.is_none() {
                    self.http_count.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut counts) = self.http_counts.lock() {
                        // Bounded: one entry per tunnel that sent something.
                        let room = counts.len() < 1024;
                        match counts.get_mut(&summary.tunnel) {
                            Some(n) => *n += 1,
                            None if room => {
                                counts.insert(summary.tunnel.clone(), 1);
                            }
                            None => {}
                        }
                    }
                }
                // No receiver (no page open) is fine.
                let _ = self.events.send(WebEvent::Exchange(summary.clone()));
            }
            AgentEvent::Notice(_) => {}
        }
    }

    fn set_connection(&self, text: String) {
        if let Ok(mut c) = self.connection.write() {
            c.clone_from(&text);
        }
        let _ = self.events.send(WebEvent::Connection(text));
    }
}

/// The tunnel name in a public URL: the `/t/NAME` path segment, else the
/// first label of the host.
pub fn tunnel_name(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(name) = path.strip_prefix("t/") {
        return name.split('/').next().unwrap_or_default().to_owned();
    }
    host.split(['.', ':']).next().unwrap_or_default().to_owned()
}

/// The whole app: page, assets, both APIs, behind the security layer.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .merge(assets::routes())
        .merge(api_ngrok::routes())
        .merge(api_v1::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

/// Binds `addr`, or the next free port after it. Refuses a non-loopback
/// address without a token.
pub async fn bind(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<TcpListener> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        anyhow::bail!(
            "refusing to serve the web inspector on {addr} without --web-token: anyone who can \
             reach it could read and replay your webhooks. Pass --web-token SECRET, or use a \
             loopback address such as 127.0.0.1:4040"
        );
    }
    let mut last = None;
    for step in 0..PORT_TRIES {
        let Some(port) = addr.port().checked_add(step) else {
            break;
        };
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(l) => return Ok(l),
            // Port 0 asks the OS; no point trying 1, 2, ….
            Err(e) if addr.port() == 0 => return Err(e).context("cannot start the web inspector"),
            Err(e) => last = Some(e),
        }
    }
    // Sixteen busy ports in a row (parallel runs): any free port will do.
    TcpListener::bind(SocketAddr::new(addr.ip(), 0))
        .await
        .with_context(|| {
            format!(
                "cannot start the web inspector on {addr} ({}); pass --web-addr PORT or \
                 --web-addr off",
                last.map_or_else(|| "no port left".to_owned(), |e| e.to_string())
            )
        })
}

/// Serves `router(state)` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<WebState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A running inspector: where it listens and its state.
pub struct Web {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (feed it agent events with [`WebState::observe`]).
    pub state: Arc<WebState>,
}

impl Web {
    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// Binds and serves in the background until `cancel` fires. `None` when `addr` is `off`.
pub async fn start(
    addr: WebAddr,
    token: Option<String>,
    db: PathBuf,
    secrets: Vec<(SecretSpec, String)>,
    cancel: CancellationToken,
) -> anyhow::Result<Option<Web>> {
    let WebAddr::At(addr) = addr else {
        return Ok(None);
    };
    let listener = bind(addr, token.as_deref()).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(WebState::new(db, bound, token, secrets));
    let serving = state.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, serving, cancel.cancelled_owned()).await {
            tracing::error!(error = %e, "web inspector stopped");
        }
    });
    Ok(Some(Web { addr: bound, state }))
}

/// Passes every agent event on to the returned receiver after showing it to
/// the web state, so the TUI or printer sees the same stream as before.
/// The page's side is a lossy broadcast ring; the onward channel is bounded
/// like the agent's, so a slow consumer pushes back to the agent (which
/// drops and counts) instead of growing a queue here.
pub fn tee(
    mut events: mpsc::Receiver<AgentEvent>,
    state: Arc<WebState>,
    url: String,
) -> mpsc::Receiver<AgentEvent> {
    let (tx, rx) = mpsc::channel(crate::agent::events::EVENT_CAPACITY);
    tokio::spawn(async move {
        let mut consumer = Some(tx);
        while let Some(mut event) = events.recv().await {
            // The banner, the TUI header and --json name the inspector.
            if let AgentEvent::Ready(ready) = &mut event {
                ready.web_url = Some(url.clone());
            }
            state.observe(&event);
            // The consumer may have gone (TUI quit): keep feeding the page.
            if let Some(tx) = &consumer
                && tx.send(event).await.is_err()
            {
                consumer = None;
            }
        }
    });
    rx
}

/// The address to use: the flag, else `web_addr` in the config file, else 4040.
pub fn resolve_addr(args: &WebArgs, paths: &Paths) -> anyhow::Result<WebAddr> {
    if let Some(addr) = args.web_addr {
        return Ok(addr);
    }
    let config = ConfigFile::load(&paths.config_file())?;
    match config.web_addr.as_deref() {
        Some(text) => text.parse().map_err(|e: String| {
            anyhow::anyhow!("bad `web_addr` in {}: {e}", paths.config_file().display())
        }),
        None => Ok(WebAddr::default()),
    }
}

/// Starts the inspector for a running tunnel (what `listen` does) and routes
/// its events through it. Prints the address; `None` when turned off.
pub async fn attach(
    running: &mut Running,
    args: &WebArgs,
    paths: &Paths,
    secrets: Vec<(SecretSpec, String)>,
    cancel: CancellationToken,
) -> anyhow::Result<Option<Web>> {
    let addr = resolve_addr(args, paths)?;
    let Some(web) = start(addr, args.web_token.clone(), paths.db(), secrets, cancel).await? else {
        return Ok(None);
    };
    let (_, placeholder) = mpsc::channel(1);
    let events = std::mem::replace(&mut running.events, placeholder);
    running.events = tee(events, web.state.clone(), web.url());
    if let Err(e) = crate::running::note_web_url(paths, &web.url()) {
        tracing::warn!("cannot note the web inspector in the tunnel state: {e:#}");
    }
    eprintln!("hooktunnel: web inspector and API on {}", web.url());
    Ok(Some(web))
}

/// `hooktunnel inspect --web`: the inspector over the stored history, until Ctrl-C.
pub async fn inspect(args: &WebArgs, paths: &Paths) -> anyhow::Result<()> {
    let addr = match resolve_addr(args, paths)? {
        WebAddr::Off => WebAddr::default(),
        at => at,
    };
    let secrets = crate::secrets::with_sources(&[], "", paths);
    let cancel = CancellationToken::new();
    let Some(web) = start(
        addr,
        args.web_token.clone(),
        paths.db(),
        secrets,
        cancel.clone(),
    )
    .await?
    else {
        return Ok(());
    };
    web.state
        .set_connection("history only (no tunnel)".to_owned());
    println!(
        "hooktunnel: web inspector on {} (stored history; Ctrl-C stops)",
        web.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn web_addr_parses_off_ports_and_addresses() {
        assert_eq!("off".parse::<WebAddr>(), Ok(WebAddr::Off));
        assert_eq!(
            "4041".parse::<WebAddr>(),
            Ok(WebAddr::At("127.0.0.1:4041".parse().unwrap()))
        );
        assert_eq!(
            "localhost:5000".parse::<WebAddr>(),
            Ok(WebAddr::At("127.0.0.1:5000".parse().unwrap()))
        );
        assert_eq!(
            "0.0.0.0:4040".parse::<WebAddr>(),
            Ok(WebAddr::At("0.0.0.0:4040".parse().unwrap()))
        );
        assert!("nope".parse::<WebAddr>().is_err());
    }

    #[test]
    fn tunnel_name_comes_from_the_path_or_the_host() {
        assert_eq!(
            tunnel_name("http://127.0.0.1:7070/t/quiet-fox"),
            "quiet-fox"
        );
        assert_eq!(tunnel_name("https://my-app.hooks.example.com"), "my-app");
    }

    #[test]
    fn ready_adds_a_tunnel_and_counts_go_per_tunnel() {
        let state = WebState::new(
            PathBuf::from("/nonexistent/history.db"),
            DEFAULT_ADDR,
            None,
            Vec::new(),
        );
        assert!(state.tunnels().is_empty() && state.tunnel().is_none());
        let ready = |more: &[&str]| {
            AgentEvent::Ready(crate::event::Ready {
                public_url: "http://127.0.0.1:7070/t/shop".into(),
                target: "http://127.0.0.1:3000".into(),
                relay: "http://127.0.0.1:7070".into(),
                embedded: true,
                web_url: None,
                more: more
                    .iter()
                    .map(|n| crate::event::TunnelUrl {
                        name: (*n).into(),
                        public_url: format!("http://127.0.0.1:7070/t/{n}"),
                        target: "http://127.0.0.1:4000".into(),
                    })
                    .collect(),
            })
        };
        state.observe(&ready(&[]));
        state.observe(&ready(&[]));
        assert_eq!(
            state.tunnels().len(),
            1,
            "a second Ready replaces the first"
        );
        let exchange = |tunnel: &str| {
            let mut e = crate::export::fixtures::text_exchange();
            e.tunnel = tunnel.into();
            AgentEvent::Exchange(e.summary())
        };
        state.observe(&exchange("shop"));
        state.observe(&exchange("billing"));
        // One tunnel: its count is every request (as before).
        assert_eq!(state.http_count_of("shop"), 2);
        state.observe(&ready(&["billing"]));
        let names: Vec<String> = state.tunnels().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["shop", "billing"]);
        assert_eq!(state.tunnel().unwrap().name, "shop");
        assert_eq!(state.find_tunnel("billing").unwrap().name, "billing");
        assert!(state.find_tunnel("other").is_none());
        assert_eq!(state.http_count_of("shop"), 1);
        assert_eq!(state.http_count_of("billing"), 1);
        assert_eq!(state.http_count_of("other"), 0);
        state.set_tunnels(Vec::new());
        assert!(state.tunnels().is_empty());
    }

    #[tokio::test]
    async fn a_public_address_needs_a_token() {
        let e = bind("0.0.0.0:0".parse().unwrap(), None).await.unwrap_err();
        assert!(e.to_string().contains("--web-token"), "{e}");
        bind("0.0.0.0:0".parse().unwrap(), Some("s3cret"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_moves_to_the_next_free_one() {
        let first = bind("127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let taken = first.local_addr().unwrap();
        let next = bind(taken, None).await.unwrap();
        assert!(next.local_addr().unwrap().port() > taken.port());
    }
}
