//! The cluster's part of one agent session: the tunnel's lease (claimed
//! after the local registration, kept by heartbeat, released on a clean
//! end) and the queue calls fenced by its epoch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ulid::Ulid;

use super::{Cluster, Fenced, Lease, LeaseClaim};
use crate::durable::{Pending, Stored};
use crate::protocol::{ErrorCode, Hello};

/// How often a session looks at its queue without being woken: other nodes
/// announce what they queue (`ht:queued`), this catches a missed message.
pub const QUEUE_POLL: Duration = Duration::from_secs(5);

/// What the agent is told when another node's claim ended this session.
pub const LEASE_LOST: &str = "this tunnel was claimed through another relay node";

/// A session's hold on its tunnel.
pub struct Held {
    cluster: Arc<Cluster>,
    lease: Lease,
    /// Woken when another node queues for the tunnel.
    queued: Arc<tokio::sync::Notify>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cluster
            .wakers
            .unregister(&self.lease.name, &self.queued);
    }
}

impl Held {
    /// Claims `name`'s lease for the agent run that sent `hello`: granted
    /// unless another run holds a live lease (then `already_online`), or
    /// with `--takeover`.
    pub async fn claim(
        cluster: &Arc<Cluster>,
        name: &str,
        hello: &Hello,
    ) -> Result<Self, (ErrorCode, String)> {
        let session = hello
            .instance
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| crate::protocol::next_id().to_string());
        match cluster
            .leases
            .claim(name, &session, hello.takeover, hello.mode)
            .await
        {
            Ok(LeaseClaim::Granted(lease)) => {
                if let Some(previous) = &lease.previous_node {
                    tracing::info!(tunnel = %name, epoch = lease.epoch, %previous, "tunnel moved here from another node");
                }
                Ok(Self {
                    queued: cluster.wakers.register(name),
                    cluster: cluster.clone(),
                    lease,
                })
            }
            Ok(LeaseClaim::Held { node, epoch }) => {
                tracing::info!(tunnel = %name, %node, epoch, "tunnel held on another node");
                Err((
                    ErrorCode::AlreadyOnline,
                    format!(
                        "tunnel '{name}' is already online through relay node {node}; stop that agent first, or pass --takeover to move the tunnel here"
                    ),
                ))
            }
            Err(e) => {
                tracing::error!(tunnel = %name, error = %e, "cannot claim the tunnel's lease");
                Err((
                    ErrorCode::Unknown,
                    "the relay could not reach its cluster store; try again".into(),
                ))
            }
        }
    }

    /// Resolves when another node queued something for the tunnel.
    pub async fn queued_elsewhere(&self) {
        self.queued.notified().await;
    }

    /// The lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Renews the lease until it is lost; then says how.
    pub async fn lost(&self) -> super::lease::LeaseEnd {
        let end = self.cluster.leases.keep(&self.lease).await;
        self.cluster
            .metrics
            .leases_lost
            .fetch_add(1, Ordering::Relaxed);
        end
    }

    /// Counts a fence refusal.
    fn count<T>(&self, result: Stored<Fenced<T>>) -> Stored<Fenced<T>> {
        if matches!(result, Ok(Fenced::Refused)) {
            self.cluster.metrics.fenced.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Queue entries after `after`, only while the lease is ours.
    pub async fn pending(&self, after: Option<i64>, limit: usize) -> Stored<Fenced<Vec<Pending>>> {
        let fenced = self
            .cluster
            .store
            .pending_fenced(&self.lease.name, after, limit, Some(self.lease.epoch))
            .await;
        self.count(fenced)
    }

    /// Deletes an acked entry, only while the lease is ours.
    pub async fn ack(&self, id: Ulid) -> Stored<Fenced<bool>> {
        let fenced = self
            .cluster
            .store
            .ack_fenced(&self.lease.name, id, Some(self.lease.epoch))
            .await;
        self.count(fenced)
    }

    /// Gives the lease up (a no-op when a newer claim took it).
    pub async fn release(self) {
        if let Err(e) = self.cluster.leases.release(&self.lease).await {
            tracing::warn!(tunnel = %self.lease.name, error = %e, "cannot release the lease; it expires by itself");
        }
    }
}
