//! Names and the durable queue in Redis (see [`super::scripts`] for the
//! layout). [`RedisStore`] is async; [`RedisDurable`] puts it behind the
//! blocking [`NameRegistry`]/[`DeliveryQueue`] traits, so the routes keep
//! talking to [`crate::durable::Durable`] whichever backend runs.

use std::sync::Arc;

use bytes::Bytes;
use redis::Script;
use redis::aio::ConnectionManager;
use ulid::Ulid;

use super::keys;
use super::scripts;
use super::seal::Sealer;
use crate::durable::policy::{self, Usage};
use crate::durable::{
    Claim, DeliveryQueue, DurableError, Enqueue, EnqueueError, NameRegistry, Pending, QueuedAnswer,
    Release, Stored, key_hash,
};
use crate::protocol::rules::EdgeRules;

/// The scripts, loaded once (`EVALSHA`, reloaded after a Redis restart).
struct Scripts {
    claim_name: Script,
    release_name: Script,
    enqueue: Script,
    pending: Script,
    ack: Script,
    set_answer: Script,
    set_rules: Script,
}

/// Names and queues in Redis; cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    /// This node's consumer name in every tunnel's group.
    consumer: String,
    /// Seals edge-rule signing secrets with the cluster's key.
    sealer: Arc<Sealer>,
}

/// Outcome of a fenced queue call.
#[derive(Debug, PartialEq, Eq)]
pub enum Fenced<T> {
    /// The lease's epoch matched (or no fence was asked for).
    Done(T),
    /// A newer claim holds the tunnel: this session must stop acting for it.
    Refused,
}

fn redis_err(e: redis::RedisError) -> DurableError {
    DurableError::Redis(e.to_string())
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl RedisStore {
    /// A store on `conn`; `node` names this node's consumer; `sealer`
    /// protects signing secrets at rest.
    pub fn new(conn: ConnectionManager, node: &str, sealer: Arc<Sealer>) -> Self {
        Self {
            conn,
            scripts: Arc::new(Scripts {
                claim_name: Script::new(scripts::CLAIM_NAME),
                release_name: Script::new(scripts::RELEASE_NAME),
                enqueue: Script::new(&scripts::enqueue()),
                pending: Script::new(&scripts::pending()),
                ack: Script::new(&scripts::ack()),
                set_answer: Script::new(scripts::SET_ANSWER),
                set_rules: Script::new(scripts::SET_RULES),
            }),
            consumer: format!("node:{node}"),
            sealer,
        }
    }

    /// See [`NameRegistry::claim_within`].
    pub async fn claim_within(&self, name: &str, key: &str, max_names: u64) -> Stored<Claim> {
        let hash = key_hash(key);
        let k = keys::Tunnel::new(name);
        let reply: Vec<Vec<u8>> = self
            .scripts
            .claim_name
            .key(&k.name)
            .key(keys::key_names(&hash))
            .arg(&hash)
            .arg(max_names.to_string())
            .arg(name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"granted") => Ok(Claim::Granted),
            Some(b"taken") => Ok(Claim::Taken),
            Some(b"too_many") => Ok(Claim::TooMany {
                held: reply.get(1).and_then(|h| text(h).parse().ok()).unwrap_or(0),
            }),
            _ => Err(DurableError::Redis(format!(
                "unexpected claim reply {reply:?}"
            ))),
        }
    }

    /// See [`NameRegistry::release`].
    pub async fn release(&self, name: &str, key: &str, dry_run: bool) -> Stored<Release> {
        let hash = key_hash(key);
        let k = keys::Tunnel::new(name);
        let reply: Vec<Vec<u8>> = self
            .scripts
            .release_name
            .key(&k.name)
            .key(keys::key_names(&hash))
            .key(&k.stream)
            .key(&k.stats)
            .key(&k.ids)
            .key(keys::RULES)
            .arg(&hash)
            .arg(if dry_run { "1" } else { "0" })
            .arg(name)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"released") => Ok(Release::Released {
                queued: reply.get(1).and_then(|h| text(h).parse().ok()).unwrap_or(0),
            }),
            Some(b"unknown") => Ok(Release::Unknown),
            Some(b"not_owner") => Ok(Release::NotOwner),
            _ => Err(DurableError::Redis(format!(
                "unexpected release reply {reply:?}"
            ))),
        }
    }

    /// See [`NameRegistry::is_known`].
    pub async fn is_known(&self, name: &str) -> Stored<bool> {
        let k = keys::Tunnel::new(name);
        redis::cmd("EXISTS")
            .arg(&k.name)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)
    }

    /// See [`NameRegistry::set_queued_answer`].
    pub async fn set_queued_answer(&self, name: &str, answer: Option<&QueuedAnswer>) -> Stored<()> {
        let k = keys::Tunnel::new(name);
        let value = match answer {
            Some(a) => serde_json::to_string(a)
                .map_err(|e| DurableError::Redis(format!("cannot encode an answer: {e}")))?,
            None => String::new(),
        };
        // Only on a claimed name (like the SQLite UPDATE).
        let _: i64 = self
            .scripts
            .set_answer
            .key(&k.name)
            .arg(value)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// See [`NameRegistry::set_edge_rules`]: rules as JSON, without a
    /// signing secret (any sealed one stored before is dropped with them).
    pub async fn set_edge_rules(&self, name: &str, rules: Option<&str>) -> Stored<()> {
        self.write_rules(name, rules.unwrap_or_default(), "").await
    }

    /// Stores a tunnel's edge rules for every node: the rules as JSON
    /// without the signing secret, the secret sealed for this name with the
    /// cluster's key (never in clear), in one script. Empty rules clear both.
    pub async fn store_edge_rules(&self, name: &str, rules: &EdgeRules) -> Stored<()> {
        if rules.is_empty() {
            return self.write_rules(name, "", "").await;
        }
        let json = serde_json::to_string(&rules.without_secret())
            .map_err(|e| DurableError::Redis(format!("cannot encode edge rules: {e}")))?;
        let sealed = match rules.verify.as_ref().filter(|v| !v.secret.is_empty()) {
            Some(v) => self
                .sealer
                .seal(name, &v.secret)
                .map_err(|e| DurableError::Redis(format!("cannot seal the signing secret: {e}")))?,
            None => String::new(),
        };
        self.write_rules(name, &json, &sealed).await
    }

    async fn write_rules(&self, name: &str, json: &str, sealed: &str) -> Stored<()> {
        let k = keys::Tunnel::new(name);
        let _: i64 = self
            .scripts
            .set_rules
            .key(&k.name)
            .key(keys::RULES)
            .arg(name)
            .arg(json)
            .arg(sealed)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// The stored edge rules of one name, with the signing secret opened.
    /// A secret that does not open (another `--cluster-secret` on this node,
    /// a tampered value) is logged and left out: this node then refuses the
    /// tunnel's signed requests it would queue, as it would without rules
    /// from the agent, and never lets one through unchecked.
    pub async fn edge_rules(&self, name: &str) -> Stored<Option<EdgeRules>> {
        let k = keys::Tunnel::new(name);
        let (json, sealed): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&k.name)
            .arg("rules")
            .arg("sealed")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        let Some(json) = json.filter(|j| !j.is_empty()) else {
            return Ok(None);
        };
        let mut rules: EdgeRules = match serde_json::from_str(&json) {
            Ok(rules) => rules,
            Err(e) => {
                tracing::error!(tunnel = %name, error = %e, "unreadable edge rules in Redis");
                return Ok(None);
            }
        };
        if let (Some(verify), Some(sealed)) = (rules.verify.as_mut(), sealed) {
            match self.sealer.open(name, &sealed) {
                Ok(secret) => verify.secret = secret,
                Err(e) => tracing::error!(
                    tunnel = %name,
                    error = %e,
                    "cannot open the tunnel's signing secret stored in Redis: is --cluster-secret the same on every node? \
                     This node refuses the tunnel's signed requests it would queue until it can"
                ),
            }
        }
        Ok(Some(rules))
    }

    /// Every stored rule set (names in [`keys::RULES`]), secrets opened.
    pub async fn all_edge_rules(&self) -> Stored<Vec<(String, EdgeRules)>> {
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::RULES)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(rules) = self.edge_rules(&name).await? {
                out.push((name, rules));
            }
        }
        Ok(out)
    }

    /// See [`NameRegistry::queued_answer`].
    pub async fn queued_answer(&self, name: &str) -> Stored<Option<QueuedAnswer>> {
        let k = keys::Tunnel::new(name);
        let value: Option<String> = redis::cmd("HGET")
            .arg(&k.name)
            .arg("answer")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(value
            .filter(|v| !v.is_empty())
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// See [`DeliveryQueue::enqueue`]. Expiry, the quota check
    /// ([`policy::admit`], mirrored in the script) and the append are one
    /// script, so concurrent enqueues on several nodes never pass a quota.
    /// Redis acknowledges a write once it is in the AOF buffer; how soon it
    /// reaches the disk is `appendfsync` (see `deploy/cluster.md`).
    pub async fn enqueue(&self, entry: &Enqueue) -> Result<(), EnqueueError> {
        let k = keys::Tunnel::new(&entry.name);
        let max_age_ms = u64::try_from(entry.limits.max_age.as_millis()).unwrap_or(u64::MAX);
        let cutoff = entry.now_ms.saturating_sub(max_age_ms);
        let reply: Vec<redis::Value> = self
            .scripts
            .enqueue
            .key(&k.stream)
            .key(&k.stats)
            .key(&k.ids)
            .arg(entry.id.to_string())
            .arg(&entry.client)
            .arg(entry.now_ms)
            .arg(&entry.frame[..])
            .arg(&entry.name)
            .arg(cutoff)
            .arg(entry.limits.max_count)
            .arg(entry.limits.max_bytes)
            .arg(policy::CLIENT_SHARE)
            .arg(policy::MIN_CLIENT_COUNT)
            .arg(policy::SMALL_RESERVE)
            .arg(policy::SMALL_ENTRY)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        let unexpected = || DurableError::Redis(format!("unexpected enqueue reply {reply:?}"));
        let number = |i: usize| -> Result<u64, DurableError> {
            reply
                .get(i)
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .ok_or_else(unexpected)
        };
        let tag: String = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(unexpected)?;
        let expired = match tag.as_str() {
            "queued" => number(2)?,
            "full" => number(1)?,
            _ => return Err(unexpected().into()),
        };
        if expired > 0 {
            tracing::warn!(tunnel = %entry.name, expired, "dropped queued requests older than the queue's max age");
        }
        if tag == "queued" {
            return Ok(());
        }
        let usage = Usage {
            count: number(2)?,
            bytes: number(3)?,
            client_count: number(4)?,
            client_bytes: number(5)?,
        };
        // The script decided; the policy words the reason from the usage it saw.
        let reason = policy::admit(&entry.limits, usage, entry.frame.len() as u64)
            .err()
            .unwrap_or_else(|| "the queue is full".to_owned());
        Err(EnqueueError::Full(reason))
    }

    /// Up to `limit` entries after `after` for this node's consumer: first
    /// those another consumer read and never acked, then new ones. With
    /// `epoch`, only while the tunnel's lease carries that epoch.
    pub async fn pending_fenced(
        &self,
        name: &str,
        after: Option<i64>,
        limit: usize,
        epoch: Option<u64>,
    ) -> Stored<Fenced<Vec<Pending>>> {
        let k = keys::Tunnel::new(name);
        let reply: Vec<Vec<u8>> = self
            .scripts
            .pending
            .key(&k.stream)
            .key(&k.lease)
            .arg(&self.consumer)
            .arg(after.unwrap_or(0).max(0))
            .arg(limit.max(1))
            .arg(epoch.map(|e| e.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"fenced") => return Ok(Fenced::Refused),
            Some(b"ok") => {}
            _ => return Err(DurableError::Redis("unexpected queue reply".into())),
        }
        let mut out = Vec::new();
        for entry in reply[1..].chunks(3) {
            let [seq, id, frame] = entry else {
                return Err(DurableError::Redis("truncated queue reply".into()));
            };
            let (Ok(seq), Ok(id)) = (text(seq).parse::<i64>(), Ulid::from_string(&text(id))) else {
                tracing::error!(tunnel = %name, "queue entry with a corrupt id skipped");
                continue;
            };
            out.push(Pending {
                seq,
                id,
                frame: Bytes::copy_from_slice(frame),
            });
        }
        Ok(Fenced::Done(out))
    }

    /// Deletes an acknowledged entry (`XACK` + `XDEL`); with `epoch`, only
    /// while the tunnel's lease carries that epoch.
    pub async fn ack_fenced(
        &self,
        name: &str,
        id: Ulid,
        epoch: Option<u64>,
    ) -> Stored<Fenced<bool>> {
        let k = keys::Tunnel::new(name);
        let reply: Vec<Vec<u8>> = self
            .scripts
            .ack
            .key(&k.stream)
            .key(&k.stats)
            .key(&k.ids)
            .key(&k.lease)
            .arg(id.to_string())
            .arg(epoch.map(|e| e.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"acked") => Ok(Fenced::Done(true)),
            Some(b"unknown") => Ok(Fenced::Done(false)),
            Some(b"fenced") => Ok(Fenced::Refused),
            _ => Err(DurableError::Redis(format!(
                "unexpected ack reply {reply:?}"
            ))),
        }
    }

    /// See [`DeliveryQueue::depth`].
    pub async fn depth(&self, name: &str) -> Stored<u64> {
        let k = keys::Tunnel::new(name);
        redis::cmd("XLEN")
            .arg(&k.stream)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)
    }
}

/// [`RedisStore`] behind the blocking traits: each call blocks the database
/// thread on the runtime that owns the connection (that thread is not a
/// runtime worker, so this never stalls one).
pub struct RedisDurable {
    store: RedisStore,
    runtime: tokio::runtime::Handle,
}

impl RedisDurable {
    /// Wraps `store`; `runtime` drives its connection.
    pub fn new(store: RedisStore, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }

    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

impl NameRegistry for RedisDurable {
    fn claim_within(&self, name: &str, key: &str, max_names: u64) -> Stored<Claim> {
        self.run(self.store.claim_within(name, key, max_names))
    }
    fn release(&self, name: &str, key: &str, dry_run: bool) -> Stored<Release> {
        self.run(self.store.release(name, key, dry_run))
    }
    fn is_known(&self, name: &str) -> Stored<bool> {
        self.run(self.store.is_known(name))
    }
    fn set_queued_answer(&self, name: &str, answer: Option<&QueuedAnswer>) -> Stored<()> {
        self.run(self.store.set_queued_answer(name, answer))
    }
    fn queued_answer(&self, name: &str) -> Stored<Option<QueuedAnswer>> {
        self.run(self.store.queued_answer(name))
    }
    fn set_edge_rules(&self, name: &str, rules: Option<&str>) -> Stored<()> {
        self.run(self.store.set_edge_rules(name, rules))
    }
    fn all_edge_rules(&self) -> Stored<Vec<(String, String)>> {
        // JSON for the trait (as SQLite stores it); with the opened secret,
        // in memory only, so every node can verify what it queues.
        let rules = self.run(self.store.all_edge_rules())?;
        Ok(rules
            .into_iter()
            .filter_map(|(name, rules)| Some((name, serde_json::to_string(&rules).ok()?)))
            .collect())
    }
}

impl DeliveryQueue for RedisDurable {
    fn enqueue(&self, entry: &Enqueue) -> Result<(), EnqueueError> {
        self.run(self.store.enqueue(entry))
    }
    fn pending(&self, name: &str, after: Option<i64>, limit: usize) -> Stored<Vec<Pending>> {
        match self.run(self.store.pending_fenced(name, after, limit, None))? {
            Fenced::Done(entries) => Ok(entries),
            Fenced::Refused => Ok(Vec::new()),
        }
    }
    fn ack(&self, name: &str, id: Ulid) -> Stored<bool> {
        match self.run(self.store.ack_fenced(name, id, None))? {
            Fenced::Done(acked) => Ok(acked),
            Fenced::Refused => Ok(false),
        }
    }
    fn depth(&self, name: &str) -> Stored<u64> {
        self.run(self.store.depth(name))
    }
}
