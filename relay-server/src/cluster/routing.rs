//! Reaching a tunnel whose agent is on another node: the owner comes from
//! the tunnel's lease (cached briefly), the request goes to the owner's
//! internal listener as one HTTP/2 stream carrying the same head as an
//! agent stream ([`crate::streams`]), and the owner forwards it to its agent.
//!
//! A new peer connection (TCP, TLS with `--internal-tls`, HTTP/2) is proven
//! with one authenticated probe stream before requests use it, so a peer
//! that speaks the other transport (a mixed TLS/clear-text cluster) or
//! holds another cluster secret fails here, with a log line saying which,
//! and the request is queued instead of failing on the stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Leases, Owner};
use crate::state::{AppState, Tunnel};
use crate::streams::Streams;

/// Header naming the tunnel on node-to-node streams.
pub const TUNNEL_HEADER: &str = "x-hooktunnel-tunnel";
/// How long an owner looked up in Redis is trusted. A newer claim (another
/// epoch) is seen at the next lookup; a failed connection drops it at once.
pub const OWNER_CACHE: Duration = Duration::from_secs(1);
/// Pings on peer connections; a peer silent this long is dropped (a paused
/// or partitioned node fails its streams instead of holding them).
const PEER_KEEPALIVE: Duration = Duration::from_secs(1);
/// Longest wait to open a connection to a peer.
const PEER_CONNECT: Duration = Duration::from_secs(2);
/// Path of the probe stream a node opens on a new peer connection; the peer
/// answers 204 to the cluster secret (401 without it).
pub const PROBE_PATH: &str = "/_hooktunnel/peer";

/// Why a connection to a peer could not be used (logged; the request is
/// queued).
#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("cannot reach the peer node: {0}")]
    Tcp(std::io::Error),
    #[error(transparent)]
    Name(#[from] crate::tls::TlsError),
    #[error(
        "the TLS handshake with the peer node failed: {0}. If that node runs without --internal-tls, \
         give every node the same setting; if its certificate was refused, it must be issued by a \
         certificate in this node's --tls-cert file or --internal-ca and name {1}"
    )]
    Tls(std::io::Error, String),
    #[error(
        "the peer node did not answer over HTTP/2{}: {error}",
        if *tls {
            " inside TLS (if it refused this node's certificate, its --tls-cert file or --internal-ca must hold this node's issuer)"
        } else { " in clear text (if it runs with --internal-tls, give every node the same setting)" }
    )]
    Http {
        error: crate::streams::StreamError,
        tls: bool,
    },
    #[error(
        "the peer node refused this node's cluster secret (401): every node needs the same --cluster-secret"
    )]
    Secret,
    #[error("the peer node did not answer within {} s", PEER_CONNECT.as_secs())]
    Timeout,
}

/// This node's routes to its peers; cheap to share.
pub struct Routes {
    leases: Leases,
    node: String,
    secret: String,
    owners: Mutex<HashMap<String, (Option<Owner>, Instant)>>,
    peers: tokio::sync::Mutex<HashMap<String, Streams>>,
    /// Per tunnel: the owner's epoch and this node's stand-in for it (its
    /// in-flight slots count here).
    remote: Mutex<HashMap<String, (u64, Arc<Tunnel>)>>,
    metrics: Arc<super::ClusterMetrics>,
    /// Where edge rules are read from when a tunnel changes hands.
    store: super::RedisStore,
    /// The node's state, for its copy of the edge rules (set once serving).
    state: std::sync::OnceLock<std::sync::Weak<AppState>>,
    /// Dials peers over TLS (`--internal-tls`); `None`: HTTP/2 in clear text.
    tls: Option<tokio_rustls::TlsConnector>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Routes {
    /// Routes for `node`, authenticating with `secret`, dialling peers
    /// over TLS with `tls` (else in clear text).
    pub fn new(
        leases: Leases,
        node: &str,
        secret: &str,
        metrics: Arc<super::ClusterMetrics>,
        store: super::RedisStore,
        tls: Option<tokio_rustls::TlsConnector>,
    ) -> Self {
        Self {
            leases,
            node: node.to_owned(),
            secret: secret.to_owned(),
            owners: Mutex::new(HashMap::new()),
            peers: tokio::sync::Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            metrics,
            store,
            state: std::sync::OnceLock::new(),
            tls,
        }
    }

    /// The tunnel's owner when it is another node with an internal address.
    async fn owner(&self, name: &str) -> Option<Owner> {
        if let Some((owner, at)) = lock(&self.owners).get(name)
            && at.elapsed() < OWNER_CACHE
        {
            return owner.clone();
        }
        let owner = match self.leases.owner(name).await {
            Ok(owner) => owner,
            Err(e) => {
                tracing::warn!(tunnel = %name, error = %e, "cannot look the tunnel's owner up");
                None
            }
        };
        let owner = owner.filter(|o| o.node != self.node && !o.addr.is_empty());
        let mut owners = lock(&self.owners);
        if owners.len() > 100_000 {
            owners.clear();
        }
        owners.insert(name.to_owned(), (owner.clone(), Instant::now()));
        owner
    }

    /// Lets lease changes refresh `state`'s copy of the tunnel's edge rules.
    pub fn attach(&self, state: &Arc<AppState>) {
        let _ = self.state.set(Arc::downgrade(state));
    }

    /// A tunnel changed hands (its agent connected somewhere, with the rules
    /// it sent stored first): forget its owner, reload its edge rules so this
    /// node enforces what the agent asked for.
    pub fn changed(&self, name: &str) {
        self.forget(name);
        let Some(state) = self.state.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        // The agent's own node keeps the rules from its hello.
        if state.tunnel(name).is_some() {
            return;
        }
        // The stored copy carries the signing secret sealed with the
        // cluster's key: this node can verify what it queues for the tunnel.
        let (store, name) = (self.store.clone(), name.to_owned());
        tokio::spawn(async move {
            match store.edge_rules(&name).await {
                Ok(rules) => state.set_edge_rules(&name, rules.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(tunnel = %name, error = %e, "cannot reload the tunnel's edge rules");
                }
            }
        });
    }

    /// Forgets everything cached (the announcements may have been missed),
    /// and reloads every stored rule set for the tunnels this node does not
    /// hold: a missed lease change must not leave this node verifying (or
    /// not) with rules the agent has since replaced.
    pub fn forget_all(&self) {
        lock(&self.owners).clear();
        lock(&self.remote).clear();
        let Some(state) = self.state.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            match store.all_edge_rules().await {
                Ok(all) => {
                    for (name, rules) in all {
                        if state.tunnel(&name).is_none() {
                            state.set_edge_rules(&name, rules);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reload the stored edge rules"),
            }
        });
    }

    /// Forgets what is known about `name`'s owner (a lease changed, or a
    /// connection failed).
    pub fn forget(&self, name: &str) {
        lock(&self.owners).remove(name);
        lock(&self.remote).remove(name);
    }

    /// An open connection to the peer at `addr`.
    async fn peer(&self, addr: &str) -> Option<Streams> {
        if let Some(streams) = self.peers.lock().await.get(addr)
            && !streams.is_closed()
        {
            return Some(streams.clone());
        }
        // Not under the lock: a stalled peer must not hold up the others.
        let streams = match tokio::time::timeout(PEER_CONNECT, self.dial(addr)).await {
            Ok(Ok(streams)) => streams,
            Ok(Err(e)) => {
                tracing::warn!(peer = %addr, tls = self.tls.is_some(), "{e}; requests for its tunnels are queued meanwhile");
                return None;
            }
            Err(_) => {
                tracing::warn!(peer = %addr, tls = self.tls.is_some(), "{}; requests for its tunnels are queued meanwhile", PeerError::Timeout);
                return None;
            }
        };
        self.peers
            .lock()
            .await
            .insert(addr.to_owned(), streams.clone());
        Some(streams)
    }

    /// Opens a connection to the peer at `addr` and proves it with a probe.
    async fn dial(&self, addr: &str) -> Result<Streams, PeerError> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(PeerError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let (streams, tls) = match &self.tls {
            Some(connector) => {
                let name = crate::tls::server_name(addr)?;
                let host = name.to_str().into_owned();
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| PeerError::Tls(e, host))?;
                (start(tls, true).await?, true)
            }
            None => (start(tcp, false).await?, false),
        };
        let mut auth = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {}", self.secret)) {
            auth.insert(http::header::AUTHORIZATION, value);
        }
        match streams.probe(PROBE_PATH, auth).await {
            Ok(status) if status == http::StatusCode::UNAUTHORIZED => Err(PeerError::Secret),
            Ok(_) => Ok(streams),
            Err(error) => Err(PeerError::Http { error, tls }),
        }
    }

    /// A stand-in for `name` when another node holds its agent and can be
    /// reached; `None` sends the request the usual way (queue or 404).
    pub async fn remote(&self, state: &AppState, name: &str) -> Option<Arc<Tunnel>> {
        let tunnel = self.remote_tunnel(state, name).await?;
        self.metrics
            .routed_to_peers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(tunnel)
    }

    async fn remote_tunnel(&self, state: &AppState, name: &str) -> Option<Arc<Tunnel>> {
        let owner = self.owner(name).await?;
        if let Some((epoch, tunnel)) = lock(&self.remote).get(name)
            && *epoch == owner.epoch
            && tunnel.started_streams().is_some_and(|s| !s.is_closed())
        {
            return Some(tunnel.clone());
        }
        let Some(streams) = self.peer(&owner.addr).await else {
            self.forget(name);
            return None;
        };
        let mut extra = http::HeaderMap::new();
        let (Ok(tunnel), Ok(auth)) = (
            http::HeaderValue::from_str(name),
            http::HeaderValue::from_str(&format!("Bearer {}", self.secret)),
        ) else {
            return None;
        };
        extra.insert(TUNNEL_HEADER, tunnel);
        extra.insert(http::header::AUTHORIZATION, auth);
        let tunnel = state.remote_tunnel(name, owner.mode, streams.with_headers(extra));
        let mut remote = lock(&self.remote);
        if remote.len() > 100_000 {
            remote.clear();
        }
        remote.insert(name.to_owned(), (owner.epoch, tunnel.clone()));
        Some(tunnel)
    }
}

/// Starts HTTP/2 on a peer connection, its driver on its own task.
async fn start<IO>(io: IO, tls: bool) -> Result<Streams, PeerError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (streams, driver) = crate::streams::connect_with(io, Some(PEER_KEEPALIVE))
        .await
        .map_err(|e| PeerError::Http {
            error: e.into(),
            tls,
        })?;
    tokio::spawn(driver);
    Ok(streams)
}
