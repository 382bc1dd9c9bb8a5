//! Ownership of a live tunnel: a lease `{node, session, epoch}` in Redis
//! with a TTL renewed by heartbeat. Every claim bumps the tunnel's epoch
//! (a counter that outlives the lease), and everything a session does for
//! the tunnel (deliveries, acks) names its epoch, so a node that was paused
//! past its lease cannot act once a newer claim exists.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use super::keys;
use super::scripts;
use crate::durable::{DurableError, Stored};

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The tunnel.
    pub name: String,
    /// The claim's epoch: the fence.
    pub epoch: u64,
    /// The node that held it before, when another one did.
    pub previous_node: Option<String>,
}

/// Outcome of a lease claim.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The tunnel is this session's.
    Granted(Lease),
    /// Another session holds a live lease.
    Held {
        /// The node holding it.
        node: String,
        /// Its epoch.
        epoch: u64,
    },
}

/// Who owns a tunnel right now, as the lease says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The node.
    pub node: String,
    /// Its internal address (`--internal-advertise`), empty when it has none.
    pub addr: String,
    /// The claim's epoch.
    pub epoch: u64,
    /// The tunnel's mode (ack-mode requests are queued, never streamed).
    pub mode: crate::protocol::Mode,
}

/// How a kept lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEnd {
    /// A newer claim (another node, or this run reconnecting) holds it.
    Taken,
    /// Redis could not confirm it for a whole TTL: others may claim it.
    Unreachable,
}

/// Lease operations for one node; cheap to clone.
#[derive(Clone)]
pub struct Leases {
    conn: ConnectionManager,
    node: String,
    addr: String,
    ttl: Duration,
    claim: std::sync::Arc<(Script, Script, Script)>,
}

fn redis_err(e: redis::RedisError) -> DurableError {
    DurableError::Redis(e.to_string())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Leases {
    /// Leases for `node` (reachable at `addr` by peers), lasting `ttl` unless renewed.
    pub fn new(conn: ConnectionManager, node: &str, addr: &str, ttl: Duration) -> Self {
        Self {
            conn,
            node: node.to_owned(),
            addr: addr.to_owned(),
            ttl,
            claim: std::sync::Arc::new((
                Script::new(scripts::CLAIM_LEASE),
                Script::new(scripts::RENEW_LEASE),
                Script::new(scripts::RELEASE_LEASE),
            )),
        }
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Claims `name` for `session` (the agent run's id). A live lease of
    /// another session wins unless `takeover`. Atomic: of two concurrent
    /// claims on different nodes exactly one is granted.
    pub async fn claim(
        &self,
        name: &str,
        session: &str,
        takeover: bool,
        mode: crate::protocol::Mode,
    ) -> Stored<LeaseClaim> {
        let k = keys::Tunnel::new(name);
        let reply: Vec<String> = self
            .claim
            .0
            .key(&k.lease)
            .key(&k.epoch)
            .arg(&self.node)
            .arg(session)
            .arg(&self.addr)
            .arg(ms(self.ttl))
            .arg(if takeover { "1" } else { "0" })
            .arg(serde_json::to_string(&mode).unwrap_or_default())
            .arg(name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        let epoch = |s: Option<&String>| s.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        match reply.first().map(String::as_str) {
            Some("granted") => Ok(LeaseClaim::Granted(Lease {
                name: name.to_owned(),
                epoch: epoch(reply.get(1)),
                previous_node: reply
                    .get(2)
                    .filter(|n| !n.is_empty() && **n != self.node)
                    .cloned(),
            })),
            Some("held") => Ok(LeaseClaim::Held {
                node: reply.get(1).cloned().unwrap_or_default(),
                epoch: epoch(reply.get(2)),
            }),
            _ => Err(DurableError::Redis(format!(
                "unexpected lease reply {reply:?}"
            ))),
        }
    }

    /// Extends the lease; false once a newer claim (or expiry) ended it.
    pub async fn renew(&self, lease: &Lease) -> Stored<bool> {
        let k = keys::Tunnel::new(&lease.name);
        let renewed: i64 = self
            .claim
            .1
            .key(&k.lease)
            .arg(lease.epoch)
            .arg(ms(self.ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(renewed == 1)
    }

    /// Gives the lease up (clean disconnect); a no-op when it is no longer ours.
    pub async fn release(&self, lease: &Lease) -> Stored<bool> {
        let k = keys::Tunnel::new(&lease.name);
        let released: i64 = self
            .claim
            .2
            .key(&k.lease)
            .arg(lease.epoch)
            .arg(&lease.name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(released == 1)
    }

    /// The tunnel's current owner, if any session holds a live lease.
    pub async fn owner(&self, name: &str) -> Stored<Option<Owner>> {
        let k = keys::Tunnel::new(name);
        let (node, addr, epoch, mode): (
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<String>,
        ) = redis::cmd("HMGET")
            .arg(&k.lease)
            .arg("node")
            .arg("addr")
            .arg("epoch")
            .arg("mode")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(match (node, epoch) {
            (Some(node), Some(epoch)) => Some(Owner {
                node,
                addr: addr.unwrap_or_default(),
                epoch,
                mode: mode
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or_default(),
            }),
            _ => None,
        })
    }

    /// Renews `lease` every third of its TTL; returns once it is lost (a
    /// newer claim, or Redis unreachable for longer than the TTL).
    pub async fn keep(&self, lease: &Lease) -> LeaseEnd {
        let every = self.ttl / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.renew(lease).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::info!(tunnel = %lease.name, epoch = lease.epoch, "lease taken by a newer claim");
                    return LeaseEnd::Taken;
                }
                Err(e) => {
                    tracing::warn!(tunnel = %lease.name, error = %e, "cannot renew the lease");
                    if last_ok.elapsed() >= self.ttl {
                        return LeaseEnd::Unreachable;
                    }
                }
            }
        }
    }
}
