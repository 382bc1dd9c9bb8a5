//! Several relay nodes sharing one Redis (`--cluster redis://…`): names and
//! the durable queue live in Redis ([`redis_backend`]), each live tunnel is
//! leased to the node holding its agent ([`lease`]). Without `--cluster`
//! nothing here runs and the relay keeps its SQLite state.

pub mod internal;
pub mod lease;
pub mod notes;
pub mod redis_backend;
pub mod routing;
mod scripts;
pub mod seal;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use lease::{Lease, LeaseClaim, Leases, Owner};
pub use redis_backend::{Fenced, RedisDurable, RedisStore};

/// Default lease lifetime; renewed every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Key names. Every key of one tunnel carries the hash tag `{name}`.
pub mod keys {
    /// The keys of one tunnel.
    pub struct Tunnel {
        /// Hash: `key` (owner's key hash), `answer` (JSON).
        pub name: String,
        /// Stream: the durable queue, group `g`.
        pub stream: String,
        /// Hash: queue accounting and the seq counter.
        pub stats: String,
        /// Hash: request id → stream id.
        pub ids: String,
        /// Hash with a TTL: `node`, `session`, `addr`, `epoch`.
        pub lease: String,
        /// Counter: the last epoch granted (never expires).
        pub epoch: String,
    }

    impl Tunnel {
        /// The keys for `name` (names are DNS labels: no braces).
        pub fn new(name: &str) -> Self {
            let base = format!("ht:{{{name}}}");
            Self {
                name: format!("{base}:name"),
                stream: format!("{base}:q"),
                stats: format!("{base}:qs"),
                ids: format!("{base}:qi"),
                lease: format!("{base}:lease"),
                epoch: format!("{base}:epoch"),
            }
        }
    }

    /// Set of the names that carry edge rules (read at start).
    pub const RULES: &str = "ht:rules";

    /// Set of the names one agent key holds.
    pub fn key_names(key_hash: &str) -> String {
        format!("ht:key:{{{key_hash}}}:names")
    }
}

/// Cluster settings (`--cluster` and friends).
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT/DB`.
    pub redis_url: String,
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// Shared secret for node-to-node requests; never an agent token.
    pub secret: String,
    /// Lease lifetime (heartbeat: a third of it).
    pub lease_ttl: Duration,
    /// Where this node listens for its peers (HTTP/2, in clear text unless
    /// `internal_tls`); `None`: nobody forwards to it (requests for its
    /// tunnels that reach other nodes are queued).
    pub internal_listen: Option<std::net::SocketAddr>,
    /// The address peers dial, when it differs from `internal_listen`.
    pub internal_advertise: Option<String>,
    /// TLS on the internal listener and towards peers (`--internal-tls`).
    /// Every node of a cluster needs the same choice: a node speaking TLS
    /// and one that does not cannot reach each other (requests are queued).
    pub internal_tls: Option<crate::config::InternalTls>,
}

impl ClusterConfig {
    /// Settings for `redis_url` with defaults for the rest.
    pub fn new(redis_url: &str, secret: &str) -> Self {
        Self {
            redis_url: redis_url.to_owned(),
            node_id: Self::default_node_id(),
            secret: secret.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            internal_listen: None,
            internal_advertise: None,
            internal_tls: None,
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &redacted(&self.redis_url))
            .field("node_id", &self.node_id)
            .field("secret", &"[redacted]")
            .field("lease_ttl", &self.lease_ttl)
            .field("internal_listen", &self.internal_listen)
            .field("internal_advertise", &self.internal_advertise)
            .field("internal_tls", &self.internal_tls)
            .finish()
    }
}

impl ClusterConfig {
    /// A node id from the host name plus a random suffix.
    pub fn default_node_id() -> String {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "relay".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    }
}

/// Drops cached owners as leases change (claims and releases are announced
/// on [`scripts::OWNERS_CHANNEL`]); everything after a lost subscription.
/// Ends once the node's routes are gone.
/// Also wakes this node's sessions when another node queues for their
/// tunnel ([`scripts::QUEUED_CHANNEL`]), and hands refusal notes from
/// other nodes to the agents this node holds ([`notes::REFUSED_CHANNEL`]).
async fn watch_owners(
    client: redis::Client,
    routes: std::sync::Weak<routing::Routes>,
    wakers: std::sync::Weak<Wakers>,
    notes: std::sync::Weak<notes::Notes>,
) {
    use futures_util::StreamExt as _;
    loop {
        if routes.strong_count() == 0 {
            return;
        }
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub
                    .subscribe(&[
                        scripts::OWNERS_CHANNEL,
                        scripts::QUEUED_CHANNEL,
                        notes::REFUSED_CHANNEL,
                    ])
                    .await
                {
                    tracing::warn!(error = %e, "cannot subscribe to lease changes");
                } else {
                    // Whatever was announced while unsubscribed is unknown.
                    let forget_all = || {
                        if let Some(routes) = routes.upgrade() {
                            routes.forget_all();
                        }
                        if let Some(wakers) = wakers.upgrade() {
                            wakers.wake_all();
                        }
                    };
                    forget_all();
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(routes) = routes.upgrade() else {
                            return;
                        };
                        if message.get_channel_name() == notes::REFUSED_CHANNEL {
                            if let Some(notes) = notes.upgrade() {
                                notes.arrived(message.get_payload_bytes());
                            }
                            continue;
                        }
                        let name = String::from_utf8_lossy(message.get_payload_bytes());
                        if message.get_channel_name() == scripts::QUEUED_CHANNEL {
                            if let Some(wakers) = wakers.upgrade() {
                                wakers.wake(&name);
                            }
                        } else {
                            routes.changed(&name);
                        }
                    }
                    forget_all();
                    tracing::warn!("lost the lease-change subscription; resubscribing");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot open a Redis subscription"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// This node's sessions waiting for their tunnel's queue, by name.
#[derive(Default)]
pub struct Wakers(std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>);

impl Wakers {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<tokio::sync::Notify>>>
    {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The notify a session for `name` waits on (replacing an older session's).
    pub fn register(&self, name: &str) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.map().insert(name.to_owned(), notify.clone());
        notify
    }

    /// Forgets `notify` when it is still the one registered for `name`.
    pub fn unregister(&self, name: &str, notify: &Arc<tokio::sync::Notify>) {
        let mut map = self.map();
        if map.get(name).is_some_and(|n| Arc::ptr_eq(n, notify)) {
            map.remove(name);
        }
    }

    fn wake(&self, name: &str) {
        if let Some(notify) = self.map().get(name) {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self.map().values() {
            notify.notify_one();
        }
    }
}

/// The internal address peers dial to reach this node ('' without one).
pub fn advertised(config: &ClusterConfig) -> String {
    config
        .internal_advertise
        .clone()
        .or_else(|| config.internal_listen.map(|a| a.to_string()))
        .unwrap_or_default()
}

/// This node's cluster counters (metrics are per node: sum them across nodes).
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Requests this node streamed to the node holding their tunnel.
    pub routed_to_peers: AtomicU64,
    /// Streams other nodes sent here for tunnels this node holds.
    pub served_for_peers: AtomicU64,
    /// Deliveries and acks refused by the lease fence.
    pub fenced: AtomicU64,
    /// Sessions ended because their lease was lost.
    pub leases_lost: AtomicU64,
}

impl ClusterMetrics {
    /// Prometheus text, labelled with the node id.
    pub fn render(&self, node: &str) -> String {
        let node = node.replace(['\\', '"', '\n'], "_");
        let mut out = String::new();
        for (name, value) in [
            (
                "hooktunnel_cluster_routed_to_peers_total",
                &self.routed_to_peers,
            ),
            (
                "hooktunnel_cluster_served_for_peers_total",
                &self.served_for_peers,
            ),
            ("hooktunnel_cluster_fenced_total", &self.fenced),
            ("hooktunnel_cluster_leases_lost_total", &self.leases_lost),
        ] {
            out.push_str(&format!(
                "# TYPE {name} counter\n{name}{{node=\"{node}\"}} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Why the cluster backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached or answered an error.
    #[error("cannot use Redis at {url}: {source}")]
    Redis {
        /// The URL (without a password).
        url: String,
        /// The cause.
        source: redis::RedisError,
    },
    /// Redis is configured so accepted webhooks could be lost.
    #[error("{0}")]
    Unsafe(String),
    /// The node-to-node TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// No key for sealing secrets could be derived from `--cluster-secret`.
    #[error("cluster secret: {0}")]
    Seal(#[from] seal::SealError),
}

/// This node's handles to the cluster state.
#[derive(Clone)]
pub struct Cluster {
    /// Names and queues.
    pub store: RedisStore,
    /// Tunnel ownership.
    pub leases: Leases,
    /// Streams to tunnels held by other nodes.
    pub routes: Arc<routing::Routes>,
    /// Counters.
    pub metrics: Arc<ClusterMetrics>,
    /// Sessions to wake when another node queues for their tunnel.
    pub wakers: Arc<Wakers>,
    /// Refusal notes for tunnels held on other nodes, both ways.
    pub notes: Arc<notes::Notes>,
    /// Settings.
    pub config: ClusterConfig,
    /// Node-to-node TLS (`config.internal_tls`), ready to use.
    pub internal_tls: Option<crate::tls::Internal>,
    conn: ConnectionManager,
}

/// `url` with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => match scheme_user.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{host}"),
            None => format!("***@{host}"),
        },
        None => url.to_owned(),
    }
}

/// The value of `field` in an `INFO` section.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

impl Cluster {
    /// Connects to Redis and checks it is safe to keep webhooks in: refuses
    /// any eviction policy but `noeviction`, warns when the AOF is off.
    /// `internal_addr` is what peers dial to reach this node ('' for none).
    pub async fn connect(config: ClusterConfig, internal_addr: &str) -> Result<Self, ClusterError> {
        // The files first: a certificate peers would refuse stops the node
        // before it touches Redis.
        let internal_tls = match &config.internal_tls {
            Some(settings) => Some(crate::tls::internal(settings, internal_addr)?),
            None => None,
        };
        let url = redacted(&config.redis_url);
        let fail = |source| ClusterError::Redis {
            url: url.clone(),
            source,
        };
        let sealer = Arc::new(seal::Sealer::new(&config.secret)?);
        let client = redis::Client::open(config.redis_url.as_str()).map_err(fail)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client.clone(), manager)
            .await
            .map_err(fail)?;
        let memory: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn.clone())
            .await
            .map_err(fail)?;
        let policy = info_field(&memory, "maxmemory_policy").unwrap_or("unknown");
        if policy != "noeviction" {
            return Err(ClusterError::Unsafe(format!(
                "Redis at {url} has maxmemory-policy {policy}: under memory pressure it would evict queued webhooks and tunnel names. \
                 Set `maxmemory-policy noeviction` in redis.conf (or run `CONFIG SET maxmemory-policy noeviction` and `CONFIG REWRITE`), then start the relay again"
            )));
        }
        let persistence: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn.clone())
            .await
            .map_err(fail)?;
        if info_field(&persistence, "aof_enabled") != Some("1") {
            tracing::warn!(
                redis = %url,
                "Redis runs without the append-only file (appendonly no): a Redis restart loses every write since its last snapshot, queued webhooks included. \
                 Set `appendonly yes`; with `appendfsync everysec` (the default) a crash of the Redis host loses at most about one second of accepted requests, \
                 with `appendfsync always` none (every write waits for fsync), with `appendfsync no` whatever the OS had not flushed (up to ~30 s)"
            );
        } else {
            let fsync: Result<Vec<String>, _> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("appendfsync")
                .query_async(&mut conn.clone())
                .await;
            if let Ok(fsync) = fsync {
                let mode = fsync.get(1).map_or("unknown", String::as_str);
                tracing::info!(redis = %url, appendfsync = mode, "Redis persistence: append-only file on");
            }
        }
        let leases = Leases::new(
            conn.clone(),
            &config.node_id,
            internal_addr,
            config.lease_ttl,
        );
        let metrics = Arc::new(ClusterMetrics::default());
        let routes = Arc::new(routing::Routes::new(
            leases.clone(),
            &config.node_id,
            &config.secret,
            metrics.clone(),
            RedisStore::new(conn.clone(), &config.node_id, sealer.clone()),
            internal_tls.as_ref().map(|tls| tls.connector.clone()),
        ));
        let wakers = Arc::new(Wakers::default());
        let notes = Arc::new(notes::Notes::new(conn.clone()));
        tokio::spawn(watch_owners(
            client,
            Arc::downgrade(&routes),
            Arc::downgrade(&wakers),
            Arc::downgrade(&notes),
        ));
        Ok(Self {
            wakers,
            notes,
            store: RedisStore::new(conn.clone(), &config.node_id, sealer),
            routes,
            leases,
            metrics,
            config,
            internal_tls,
            conn,
        })
    }

    /// This node's view of the cluster for `/_hooktunnel/health`: its id,
    /// whether Redis answers (and how fast).
    pub async fn health(&self) -> serde_json::Value {
        let redis = match tokio::time::timeout(Duration::from_secs(2), self.ping()).await {
            Ok(Ok(rtt)) => serde_json::json!({
                "ok": true,
                "rtt_ms": rtt.as_secs_f64() * 1000.0,
            }),
            Ok(Err(e)) => serde_json::json!({ "ok": false, "error": e }),
            Err(_) => serde_json::json!({ "ok": false, "error": "no answer within 2 s" }),
        };
        serde_json::json!({
            "node": self.config.node_id,
            "internal": advertised(&self.config),
            "internal_tls": self.internal_tls.is_some(),
            "lease_ttl_ms": self.config.lease_ttl.as_millis() as u64,
            "redis": redis,
        })
    }

    /// Round trip to Redis, for health reports.
    pub async fn ping(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut self.conn.clone()).await;
        pong.map(|_| started.elapsed()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redacted("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redacted("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn keys_share_the_tunnel_hash_tag() {
        let k = keys::Tunnel::new("demo");
        for key in [&k.name, &k.stream, &k.stats, &k.ids, &k.lease, &k.epoch] {
            assert!(key.starts_with("ht:{demo}:"), "{key}");
        }
    }

    #[test]
    fn info_fields_are_read() {
        let info = "# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n";
        assert_eq!(info_field(info, "maxmemory_policy"), Some("noeviction"));
        assert_eq!(info_field(info, "maxmemory"), Some("0"));
    }
}
