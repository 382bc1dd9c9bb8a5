//! Refusal notes across nodes: a request refused on one node (413, 429, an
//! edge rule's 401/403, …) for a tunnel whose agent is on another must reach
//! that agent's `relay refused` notes like a local refusal.
//!
//! The refusing node gathers them per tunnel for [`SEND_WINDOW`] and then
//! `PUBLISH`es one note (count and a few examples, never bodies) on
//! [`REFUSED_CHANNEL`]; every node is subscribed (with the lease changes),
//! and the one holding the tunnel's agent merges the note into its own
//! window (`crate::refusals`). Nodes without the agent ignore it.
//!
//! Lossy by design, as local notes are (they are dropped when the agent's
//! socket is backed up): Redis pub/sub does not keep a message for a node
//! that is resubscribing, a note published while the agent moves between
//! nodes reaches nobody, and a node gathering notes for more than
//! [`MAX_TUNNELS`] tunnels at once drops the excess. Notes are a courtesy;
//! the refusals themselves were answered to their senders.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::protocol::{Refused, RefusedRequest};
use crate::refusals::Pending;
use crate::state::AppState;

/// Where refusal notes for tunnels held elsewhere are published.
pub const REFUSED_CHANNEL: &str = "ht:refused";
/// How long a node gathers refusals for one tunnel before publishing them:
/// short, since the agent's node adds its own window ([`crate::refusals::WINDOW`]).
pub const SEND_WINDOW: Duration = Duration::from_millis(250);
/// Most tunnels with notes being gathered at once on one node (a flood of
/// refusals for many names costs at most this many publishes per window).
pub const MAX_TUNNELS: usize = 4096;

/// One published note.
#[derive(Debug, Serialize, Deserialize)]
struct Published {
    /// The tunnel's name.
    tunnel: String,
    /// The refusals.
    note: Refused,
}

/// This node's side of the refusal notes: gathers and publishes its own,
/// hands those of other nodes to the agents it holds.
pub struct Notes {
    conn: ConnectionManager,
    pending: Mutex<HashMap<String, Pending>>,
    /// The node's state, for its live tunnels (set once serving).
    state: std::sync::OnceLock<Weak<AppState>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Notes {
    /// Notes publishing on `conn`.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            pending: Mutex::new(HashMap::new()),
            state: std::sync::OnceLock::new(),
        }
    }

    /// Lets notes from other nodes reach `state`'s agents.
    pub fn attach(&self, state: &Arc<AppState>) {
        let _ = self.state.set(Arc::downgrade(state));
    }

    /// A refusal for `name`, whose agent is not on this node: published
    /// (coalesced) for the node that holds it.
    pub fn refused(self: &Arc<Self>, name: &str, refused: RefusedRequest) {
        let first = {
            let mut pending = lock(&self.pending);
            if !pending.contains_key(name) && pending.len() >= MAX_TUNNELS {
                return;
            }
            pending.entry(name.to_owned()).or_default().add(refused)
        };
        if !first {
            return;
        }
        let (notes, name) = (self.clone(), name.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(SEND_WINDOW).await;
            let note = lock(&notes.pending)
                .remove(&name)
                .and_then(|mut p| p.take());
            let Some(note) = note else {
                return;
            };
            let Ok(payload) = serde_json::to_vec(&Published {
                tunnel: name.clone(),
                note,
            }) else {
                return;
            };
            let published: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(REFUSED_CHANNEL)
                .arg(payload)
                .query_async(&mut notes.conn.clone())
                .await;
            if let Err(e) = published {
                tracing::debug!(tunnel = %name, error = %e, "a refusal note for another node was lost");
            }
        });
    }

    /// A note another node published: merged into the agent's next note
    /// when this node holds the tunnel, else ignored.
    pub fn arrived(&self, payload: &[u8]) {
        let Ok(published) = serde_json::from_slice::<Published>(payload) else {
            tracing::debug!("unreadable refusal note on {REFUSED_CHANNEL}");
            return;
        };
        let Some(state) = self.state.get().and_then(Weak::upgrade) else {
            return;
        };
        if let Some(tunnel) = state.tunnel(&published.tunnel) {
            // Whoever can publish in Redis wrote this: keep it as small as
            // a local note.
            let mut note = published.note;
            for e in &mut note.examples {
                e.path = crate::refusals::short_path(&e.path);
                e.method = crate::refusals::short_path(&e.method);
                e.reason = crate::refusals::short_path(&e.reason);
            }
            tunnel.refused_elsewhere(note);
        }
    }
}
