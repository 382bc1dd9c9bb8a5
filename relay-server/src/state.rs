//! Live state of one relay process: connected tunnels, requests waiting for
//! answers, counters; plus handles to the durable registry and queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::auth::Tokens;
use crate::config::RelayConfig;
use crate::durable::Durable;
use crate::limit::Limiter;
use crate::protocol::{Mode, Response};

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
    /// Requests refused by a rate limit (429).
    pub rate_limited: AtomicU64,
    /// Requests refused because a tunnel had too many in flight (503).
    pub overloaded: AtomicU64,
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
    tunnels: Mutex<HashMap<String, Arc<Tunnel>>>,
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
    /// Woken when something is queued for this tunnel.
    pub queued: Notify,
    /// Fires when a newer session with the same key takes over.
    pub replaced: CancellationToken,
    /// Requests waiting for this agent's answer right now.
    pub in_flight: AtomicUsize,
    pending: Mutex<HashMap<Ulid, oneshot::Sender<Response>>>,
}

/// Why a live registration was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Another agent (another key) holds the name right now.
    Busy,
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
            tunnels: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// Counts one request in [`AppState::in_flight`] until the guard drops,
    /// however the request ends (answered, timed out, or its sender gone and
    /// its future dropped mid-await).
    pub fn begin_waiting(&self) -> Waiting<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Waiting(&self.in_flight)
    }

    /// The live tunnel called `name`, if an agent holds it.
    pub fn tunnel(&self, name: &str) -> Option<Arc<Tunnel>> {
        lock(&self.tunnels).get(name).cloned()
    }

    /// Number of connected agents.
    pub fn tunnel_count(&self) -> usize {
        lock(&self.tunnels).len()
    }

    /// Binds `name` to a new connection. A live session with the same key is
    /// replaced (the agent reconnected before the relay noticed the old link died).
    pub fn register(
        &self,
        name: &str,
        mode: Mode,
        key_hash: Option<String>,
    ) -> Result<(Arc<Tunnel>, mpsc::Receiver<Bytes>), RegisterError> {
        let mut tunnels = lock(&self.tunnels);
        if let Some(old) = tunnels.get(name) {
            if old.key_hash.is_none() || old.key_hash != key_hash {
                return Err(RegisterError::Busy);
            }
            old.replaced.cancel();
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let tunnel = Arc::new(Tunnel {
            name: name.to_owned(),
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            mode,
            key_hash,
            outbound: tx,
            queued: Notify::new(),
            replaced: CancellationToken::new(),
            in_flight: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
        });
        tunnels.insert(name.to_owned(), tunnel.clone());
        Ok((tunnel, rx))
    }

    /// Removes the tunnel if it still belongs to this connection.
    pub fn unregister(&self, tunnel: &Tunnel) {
        let mut tunnels = lock(&self.tunnels);
        if tunnels.get(&tunnel.name).map(|t| t.conn_id) == Some(tunnel.conn_id) {
            tunnels.remove(&tunnel.name);
        }
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
pub struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One slot of a tunnel's in-flight budget; released on drop.
pub struct InFlight(Arc<Tunnel>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Tunnel {
    /// Takes an in-flight slot, or `None` when `max` requests already wait.
    pub fn try_begin(self: &Arc<Self>, max: usize) -> Option<InFlight> {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InFlight(self.clone()))
    }

    /// Registers interest in the answer to `id`.
    pub fn expect(&self, id: Ulid) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        rx
    }

    /// Stops waiting for `id` (timeout or sender gone).
    pub fn forget(&self, id: &Ulid) {
        lock(&self.pending).remove(id);
    }

    /// Hands an agent's answer to the waiting sender. Answers for ids this
    /// tunnel never issued are ignored, so one agent cannot answer for another.
    pub fn complete(&self, response: Response) -> bool {
        let waiter = lock(&self.pending).remove(&response.id);
        match waiter {
            Some(tx) => tx.send(response).is_ok(),
            None => false,
        }
    }
}
