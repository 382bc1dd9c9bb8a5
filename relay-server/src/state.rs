//! Live state of one relay process: connected tunnels, requests waiting for
//! answers, counters; plus handles to the durable registry and queue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::config::RelayConfig;
use crate::durable::Durable;
use crate::limit::Limiter;
use crate::memory::MemoryBudget;
use crate::protocol::Mode;
use crate::session::{self, Claimant, Replace};

/// Frames queued for one agent's socket before senders wait.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// Counters exposed on `/_hooktunnel/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Requests that reached a tunnel.
    pub requests: AtomicU64,
    /// Requests stored in the durable queue.
    pub queued: AtomicU64,
    /// Requests refused because a queue was full.
    pub queue_full: AtomicU64,
    /// Acks received.
    pub acked: AtomicU64,
    /// Agent handshakes refused.
    pub refused: AtomicU64,
    /// Requests refused by a tunnel's edge rules (basic auth, IP, header, signature).
    pub edge_refused: AtomicU64,
    /// Requests refused by a rate limit (429).
    pub rate_limited: AtomicU64,
    /// Requests refused because a tunnel had too many in flight (503).
    pub overloaded: AtomicU64,
    /// Requests refused because their address held its share of a tunnel's slots (429).
    pub client_busy: AtomicU64,
    /// Bodies cut for arriving slower than the minimum rate (408).
    pub body_too_slow: AtomicU64,
    /// Connections closed at accept: their address held `max_conns_per_ip`.
    pub conns_refused: AtomicU64,
    /// Failed accepts (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
    /// Agent answers that broke the protocol (502).
    pub protocol_errors: AtomicU64,
    /// Requests refused because the memory budget was spent (503).
    pub relay_busy: AtomicU64,
    /// Per-tunnel counters and latency (see [`crate::metrics`]).
    pub tunnels: crate::metrics::TunnelMetrics,
}

/// Shared state of one relay process.
pub struct AppState {
    pub config: RelayConfig,
    /// Base for public URLs, without a trailing slash.
    pub base_url: String,
    /// Which key owns which name, and accepted requests awaiting an agent's ack.
    pub durable: Durable,
    /// Counters.
    pub metrics: Metrics,
    /// Fires when the relay shuts down; agent sessions end.
    pub closing: CancellationToken,
    /// Ingress requests currently waiting for an agent.
    pub in_flight: AtomicU64,
    /// Accepted agent tokens.
    pub tokens: Tokens,
    /// Per-client-IP rate limit.
    pub ip_limiter: Option<Limiter<std::net::IpAddr>>,
    /// Per-tunnel rate limit.
    pub tunnel_limiter: Option<Limiter<String>>,
    /// Agent session tasks, so shutdown can wait for their goodbyes.
    pub sessions: tokio_util::task::TaskTracker,
    /// Body bytes held in memory, over all tunnels (`--memory-budget`).
    pub memory: Arc<MemoryBudget>,
    /// This node's handles to the cluster (`--cluster`), else `None`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    tunnels: Mutex<HashMap<String, Arc<Tunnel>>>,
    /// Each tunnel's edge rules, from its agent's last `hello`; kept while
    /// the agent is away so queued requests pass the same checks.
    edge_rules: Mutex<HashMap<String, Arc<crate::protocol::rules::EdgeRules>>>,
    next_conn: AtomicU64,
}

/// One connected agent.
pub struct Tunnel {
    pub name: String,
    pub conn_id: u64,
    pub mode: Mode,
    /// Fingerprint of the agent key (None for keyless, ephemeral tunnels).
    key_hash: Option<String>,
    /// Encoded frames for the agent's socket writer.
    pub outbound: mpsc::Sender<Bytes>,
    /// The HTTP/2 connection to the agent, shared by every tunnel of the
    /// session (an agent may serve several over one socket).
    link: Arc<StreamLink>,
    /// Woken when something is queued for this tunnel.
    pub queued: Notify,
    /// Fires when a newer session with the same key takes over.
    pub replaced: CancellationToken,
    /// What to tell this agent when it was replaced by another run (`--takeover`).
    replaced_because: Mutex<Option<String>>,
    /// Fires once this session is unregistered.
    pub ended: CancellationToken,
    /// The agent's host name, as it said in `hello` (cleaned).
    pub host: Option<String>,
    /// The agent run's id (see [`Claimant::instance`]).
    instance: Option<String>,
    /// When the session started, milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// When anything last arrived from the agent (pongs included).
    last_seen_ms: AtomicU64,
    /// Refused requests waiting to be noted to the agent.
    refusals: Mutex<crate::refusals::Pending>,
    /// Requests waiting for this agent's answer right now.
    pub in_flight: AtomicUsize,
    /// The same, per client address (IPv6: per /64); entries at zero are removed.
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Opens HTTP/2 streams to one agent session (protocol v2); started by the
/// first live request on the session's stream pipe, whichever of its
/// tunnels that request is for.
#[derive(Default)]
pub struct StreamLink {
    streams: tokio::sync::OnceCell<crate::streams::Streams>,
    /// The HTTP/2 end of the session's stream pipe until the connection starts.
    pipe: Mutex<Option<tokio::io::DuplexStream>>,
}

/// Why a live registration was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another agent (another key) holds the name right now.
    Busy,
    /// Another run with the same key holds it and is alive.
    AlreadyOnline {
        /// Its host name, when it said.
        host: Option<String>,
        /// When its session started (ms since the epoch).
        since_ms: u64,
        /// Fires when that session ends (a graceful stop racing this claim).
        ended: CancellationToken,
    },
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    /// State for a relay on `local_addr`; `tls` when it terminates TLS itself.
    pub fn new(config: RelayConfig, local_addr: SocketAddr, tls: bool, durable: Durable) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let config_memory_budget = config.memory_budget;
        Self {
            tokens: Tokens::new(&config.tokens, &config.token_hashes),
            ip_limiter: config.rate_per_ip.as_ref().map(Limiter::new),
            tunnel_limiter: config.rate_per_tunnel.as_ref().map(Limiter::new),
            config,
            base_url,
            durable,
            metrics: Metrics::default(),
            closing: CancellationToken::new(),
            in_flight: AtomicU64::new(0),
            sessions: tokio_util::task::TaskTracker::new(),
            memory: MemoryBudget::new(config_memory_budget),
            cluster: None,
            tunnels: Mutex::new(HashMap::new()),
            edge_rules: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// Counts one request in [`AppState::in_flight`] until the guard drops,
    /// however the request ends (answered, timed out, or its sender gone and
    /// its future dropped mid-await).
    pub fn begin_waiting(self: &Arc<Self>) -> Waiting {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Waiting(self.clone())
    }

    /// The live tunnel called `name`, if an agent holds it.
    pub fn tunnel(&self, name: &str) -> Option<Arc<Tunnel>> {
        lock(&self.tunnels).get(name).cloned()
    }

    /// The edge rules of tunnel `name`, when its agent declared any.
    pub fn edge_rules(&self, name: &str) -> Option<Arc<crate::protocol::rules::EdgeRules>> {
        lock(&self.edge_rules).get(name).cloned()
    }

    /// Records the rules an agent declared for `name` (empty: none).
    pub fn set_edge_rules(&self, name: &str, rules: crate::protocol::rules::EdgeRules) {
        let mut all = lock(&self.edge_rules);
        if rules.is_empty() {
            all.remove(name);
        } else {
            all.insert(name.to_owned(), Arc::new(rules));
        }
    }

    /// Number of connected agents.
    pub fn tunnel_count(&self) -> usize {
        lock(&self.tunnels).len()
    }

    /// Binds `name` to a new connection of an agent that sends no host or
    /// run id (a live session with the same key is replaced).
    #[cfg(test)]
    pub fn register(
        &self,
        name: &str,
        mode: Mode,
        key_hash: Option<String>,
    ) -> Result<(Arc<Tunnel>, mpsc::Receiver<Bytes>), RegisterError> {
        let claimant = Claimant {
            mode,
            key_hash,
            ..Claimant::default()
        };
        self.register_session(name, claimant)
    }

    /// Binds `name` to a new connection, replacing a live session of the same
    /// key only as [`session::may_replace`] allows.
    pub fn register_session(
        &self,
        name: &str,
        claimant: Claimant,
    ) -> Result<(Arc<Tunnel>, mpsc::Receiver<Bytes>), RegisterError> {
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let tunnel = self.register_on(name, claimant, tx, Arc::default())?;
        Ok((tunnel, rx))
    }

    /// Binds `name` as a further tunnel of `first`'s session: the same
    /// socket and HTTP/2 connection, the same rules for replacing.
    pub fn register_beside(
        &self,
        name: &str,
        claimant: Claimant,
        first: &Tunnel,
    ) -> Result<Arc<Tunnel>, RegisterError> {
        self.register_on(name, claimant, first.outbound.clone(), first.link.clone())
    }

    fn register_on(
        &self,
        name: &str,
        claimant: Claimant,
        outbound: mpsc::Sender<Bytes>,
        link: Arc<StreamLink>,
    ) -> Result<Arc<Tunnel>, RegisterError> {
        let now = crate::protocol::now_ms();
        let mut tunnels = lock(&self.tunnels);
        if let Some(old) = tunnels.get(name) {
            if old.key_hash.is_none() || old.key_hash != claimant.key_hash {
                return Err(RegisterError::Busy);
            }
            let silent_for = std::time::Duration::from_millis(
                now.saturating_sub(old.last_seen_ms.load(Ordering::Relaxed)),
            );
            match session::may_replace(old.instance.as_deref(), silent_for, &claimant) {
                None => {
                    return Err(RegisterError::AlreadyOnline {
                        host: old.host.clone(),
                        since_ms: old.since_ms,
                        ended: old.ended.clone(),
                    });
                }
                Some(Replace::TakeOver) => {
                    *lock(&old.replaced_because) =
                        Some(session::taken_over(claimant.host.as_deref()));
                    tracing::info!(tunnel = %name, old_host = ?old.host, new_host = ?claimant.host, "tunnel taken over by another agent run");
                }
                Some(Replace::Stale) => {
                    tracing::info!(tunnel = %name, ?silent_for, "replacing a silent session of the same key");
                }
                Some(Replace::Own) => {}
            }
            old.replaced.cancel();
        }
        let tunnel = Arc::new(Tunnel {
            name: name.to_owned(),
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            mode: claimant.mode,
            key_hash: claimant.key_hash,
            outbound,
            link,
            queued: Notify::new(),
            replaced: CancellationToken::new(),
            replaced_because: Mutex::new(None),
            ended: CancellationToken::new(),
            host: claimant.host,
            instance: claimant.instance,
            since_ms: now,
            last_seen_ms: AtomicU64::new(now),
            refusals: Mutex::new(crate::refusals::Pending::default()),
            in_flight: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        });
        tunnels.insert(name.to_owned(), tunnel.clone());
        Ok(tunnel)
    }

    /// Cluster (#15): a tunnel whose agent is on another node, reached
    /// through `streams` to that node. Never registered in the live map; it
    /// only carries this node's in-flight slots for it and the streams.
    pub fn remote_tunnel(
        &self,
        name: &str,
        mode: Mode,
        streams: crate::streams::Streams,
    ) -> Arc<Tunnel> {
        let now = crate::protocol::now_ms();
        // Nobody reads these frames: refusal notes stay with the owner node.
        let (tx, _rx) = mpsc::channel(1);
        Arc::new(Tunnel {
            name: name.to_owned(),
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            mode,
            key_hash: None,
            outbound: tx,
            link: Arc::new(StreamLink {
                streams: tokio::sync::OnceCell::from(streams),
                pipe: Mutex::new(None),
            }),
            queued: Notify::new(),
            replaced: CancellationToken::new(),
            replaced_because: Mutex::new(None),
            ended: CancellationToken::new(),
            host: None,
            instance: None,
            since_ms: now,
            last_seen_ms: AtomicU64::new(now),
            refusals: Mutex::new(crate::refusals::Pending::default()),
            in_flight: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    /// Removes the tunnel if it still belongs to this connection.
    pub fn unregister(&self, tunnel: &Tunnel) {
        let mut tunnels = lock(&self.tunnels);
        if tunnels.get(&tunnel.name).map(|t| t.conn_id) == Some(tunnel.conn_id) {
            tunnels.remove(&tunnel.name);
            // Keyless names are never queued for, so their rules go with them.
            if tunnel.key_hash.is_none() {
                lock(&self.edge_rules).remove(&tunnel.name);
            }
        }
        tunnel.ended.cancel();
    }

    /// Public URLs for a tunnel name, preferred first.
    pub fn public_urls(&self, name: &str) -> Vec<String> {
        let mut urls = Vec::new();
        if let Some(domain) = &self.config.domain {
            let scheme = if self.base_url.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            urls.push(format!("{scheme}://{name}.{domain}"));
        }
        urls.push(format!("{}/t/{name}", self.base_url));
        urls
    }
}

/// One request counted in [`AppState::in_flight`]; released on drop.
pub struct Waiting(Arc<AppState>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One slot of a tunnel's in-flight budget, held by one client address;
/// released on drop.
pub struct InFlight {
    tunnel: Arc<Tunnel>,
    client: IpAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut per_client = lock(&self.tunnel.per_client);
        if let Some(held) = per_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                per_client.remove(&self.client);
            }
        }
        drop(per_client);
        self.tunnel.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why no in-flight slot was given.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The tunnel holds its whole budget.
    Tunnel,
    /// This client address holds its share.
    Client,
}

impl Tunnel {
    /// Gives the tunnel the HTTP/2 end of its session's stream pipe.
    pub fn attach_pipe(&self, io: tokio::io::DuplexStream) {
        *lock(&self.link.pipe) = Some(io);
    }

    /// The agent's HTTP/2 streams, starting the connection on first use;
    /// `None` when the session has no pipe or the connection cannot start.
    /// The connection lives until the session ends (then every open stream
    /// fails at once).
    pub async fn streams(&self) -> Option<crate::streams::Streams> {
        let started = self
            .link
            .streams
            .get_or_try_init(|| async {
                let io = lock(&self.link.pipe).take().ok_or(())?;
                let (streams, driver) = crate::streams::connect(io).await.map_err(|e| {
                    tracing::warn!(tunnel = %self.name, error = %e, "cannot start the stream connection");
                })?;
                let ended = self.ended.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = driver => {}
                        () = ended.cancelled() => {}
                    }
                });
                Ok::<_, ()>(streams)
            })
            .await;
        started.ok().cloned()
    }

    /// The HTTP/2 streams when their connection has started.
    pub fn started_streams(&self) -> Option<&crate::streams::Streams> {
        self.link.streams.get()
    }

    /// Notes that the agent was heard from just now.
    pub fn heard_from(&self) {
        self.last_seen_ms
            .store(crate::protocol::now_ms(), Ordering::Relaxed);
    }

    /// Notes a request the relay refused, for the agent (coalesced).
    pub fn refused(self: &Arc<Self>, refused: crate::protocol::RefusedRequest) {
        crate::refusals::note(self, &self.refusals, refused);
    }

    /// Notes requests refused for this tunnel on another node (coalesced
    /// with this node's own).
    pub fn refused_elsewhere(self: &Arc<Self>, note: crate::protocol::Refused) {
        crate::refusals::note_many(self, &self.refusals, note);
    }

    /// The refusals gathered since the last note.
    pub fn take_refusals(&self) -> Option<crate::protocol::Refused> {
        lock(&self.refusals).take()
    }

    /// Why this session was replaced, when another run took it over.
    pub fn replaced_because(&self) -> Option<String> {
        lock(&self.replaced_because).clone()
    }

    /// Takes an in-flight slot for `client` (a [`crate::limit::ip_key`]):
    /// refused when `max` requests already wait, or `client` holds `per_client` of them.
    pub fn try_begin(
        self: &Arc<Self>,
        client: IpAddr,
        max: usize,
        per_client: usize,
    ) -> Result<InFlight, SlotRefused> {
        let mut held = lock(&self.per_client);
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(SlotRefused::Tunnel);
        }
        let mine = held.get(&client).copied().unwrap_or(0);
        if mine >= per_client {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(SlotRefused::Client);
        }
        held.insert(client, mine + 1);
        Ok(InFlight {
            tunnel: self.clone(),
            client,
        })
    }
}
