//! The tunnel registry and the requests waiting for an agent's answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use crate::config::RelayConfig;
use crate::protocol::Response;

/// Frames queued for one agent's socket before senders wait.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// Shared state of one relay process.
pub struct AppState {
    pub config: RelayConfig,
    /// Base for public URLs, without a trailing slash.
    pub base_url: String,
    tunnels: Mutex<HashMap<String, Arc<Tunnel>>>,
    next_conn: AtomicU64,
}

/// One connected agent.
pub struct Tunnel {
    pub name: String,
    pub conn_id: u64,
    /// Encoded frames for the agent's socket writer.
    pub outbound: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<Ulid, oneshot::Sender<Response>>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    pub fn new(config: RelayConfig, local_addr: SocketAddr) -> Self {
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        Self {
            config,
            base_url,
            tunnels: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The live tunnel called `name`, if an agent holds it.
    pub fn tunnel(&self, name: &str) -> Option<Arc<Tunnel>> {
        lock(&self.tunnels).get(name).cloned()
    }

    /// Number of connected agents.
    pub fn tunnel_count(&self) -> usize {
        lock(&self.tunnels).len()
    }

    /// Binds `name` to a new connection; `None` when another agent holds it.
    pub fn register(&self, name: &str) -> Option<(Arc<Tunnel>, mpsc::Receiver<Bytes>)> {
        let mut tunnels = lock(&self.tunnels);
        if tunnels.contains_key(name) {
            return None;
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let tunnel = Arc::new(Tunnel {
            name: name.to_owned(),
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            outbound: tx,
            pending: Mutex::new(HashMap::new()),
        });
        tunnels.insert(name.to_owned(), tunnel.clone());
        Some((tunnel, rx))
    }

    /// Removes the tunnel if it still belongs to `conn_id`.
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

impl Tunnel {
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
