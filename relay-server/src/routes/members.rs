//! The tunnels of one agent session (its hello's own and the `more` it
//! lists): each admitted (name claimed for the key), registered beside the
//! first and, in a cluster, leased; undone together.

use std::sync::Arc;

use tokio::time::timeout;

use crate::durable::{self, Claim};
use crate::name;
use crate::protocol::{ErrorCode, Hello, PROTOCOL_VERSION, Welcome};
use crate::session::{self, Claimant};
use crate::state::{AppState, RegisterError, Tunnel};

/// How long a claim for a tunnel held by another run of the same key waits
/// for that run to go away (a graceful stop closes its socket within moments).
const STOPPING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// One tunnel of an agent session: the hello's own, or one of its `more`.
pub(super) struct Member {
    pub(super) tunnel: Arc<Tunnel>,
    /// Its cluster lease (`--cluster`), fencing what is done for it.
    pub(super) held: Option<crate::cluster::session::Held>,
    rules_enforced: bool,
}

/// Refuses a hello that names one tunnel twice, or too many.
pub(super) fn distinct_names(asked: &[Hello]) -> Result<(), String> {
    let max = crate::protocol::MAX_TUNNELS_PER_SESSION;
    if asked.len() > max {
        return Err(format!(
            "one connection carries at most {max} tunnels; this hello asks for {}",
            asked.len()
        ));
    }
    for (i, h) in asked.iter().enumerate() {
        if let Some(name) = &h.name
            && asked[..i].iter().any(|o| o.name.as_ref() == Some(name))
        {
            return Err(format!("tunnel '{name}' is asked for twice"));
        }
    }
    Ok(())
}

/// Admits, registers and (in a cluster) leases one tunnel of the session;
/// beside `first` when there is one. The refusal names the tunnel when known.
pub(super) async fn join(
    state: &Arc<AppState>,
    hello: Hello,
    first: Option<&Tunnel>,
) -> Result<
    (Member, Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>),
    (Option<String>, ErrorCode, String),
> {
    let asked = hello.name.clone();
    if let Err(e) = hello.rules.validate() {
        return Err((
            asked,
            ErrorCode::BadHandshake,
            format!("unusable edge rules: {e}"),
        ));
    }
    let (name, key_hash) = admit(state, &hello)
        .await
        .map_err(|(code, message)| (asked, code, message))?;
    let claimant = Claimant {
        mode: hello.mode,
        key_hash,
        host: session::clean_host(hello.host.as_deref()),
        instance: hello.instance.clone(),
        takeover: hello.takeover,
    };
    let named = |(code, message)| (Some(name.clone()), code, message);
    let (tunnel, rx) = register(state, &name, claimant, first)
        .await
        .map_err(named)?;
    state.set_edge_rules(&name, hello.rules.clone());
    if hello.key.is_some() {
        // Claimed names queue while their agent is away: their rules must
        // survive a relay restart. One node: without the signing secret
        // (signed requests wait for the agent). Cluster: the secret sealed
        // with the cluster's key, so any node can verify what it queues.
        let stored = match &state.cluster {
            Some(cluster) => cluster.store.store_edge_rules(&name, &hello.rules).await,
            None => {
                let json = (!hello.rules.is_empty())
                    .then(|| serde_json::to_string(&hello.rules.without_secret()).ok())
                    .flatten();
                state.durable.set_edge_rules(&name, json).await
            }
        };
        if let Err(e) = stored {
            tracing::error!(tunnel = %name, error = %e, "cannot store edge rules");
        }
    }
    // Cluster (#15): the tunnel's lease; everything below is fenced by its epoch.
    let held = match &state.cluster {
        Some(cluster) => match crate::cluster::session::Held::claim(cluster, &name, &hello).await {
            Ok(held) => Some(held),
            Err(refused) => {
                state.unregister(&tunnel);
                return Err(named(refused));
            }
        },
        None => None,
    };
    let member = Member {
        tunnel,
        held,
        rules_enforced: !hello.rules.is_empty(),
    };
    Ok((member, rx))
}

/// Unregisters the session's tunnels and releases their leases.
pub(super) async fn leave(state: &AppState, members: Vec<Member>) {
    for m in members {
        state.unregister(&m.tunnel);
        if let Some(held) = m.held {
            held.release().await;
        }
    }
}

/// What the agent is told about one granted tunnel.
pub(super) fn welcome(state: &AppState, m: &Member) -> Welcome {
    let name = &m.tunnel.name;
    Welcome {
        version: PROTOCOL_VERSION,
        name: name.clone(),
        public_urls: state.public_urls(name),
        mode: m.tunnel.mode,
        rules_enforced: m.rules_enforced,
        max_body_bytes: Some(state.config.max_body_bytes as u64),
        max_queued_bytes: Some(
            state
                .config
                .queue_max_entry
                .min(state.config.max_body_bytes) as u64,
        ),
        more: Vec::new(),
    }
}

/// Registers the live session, giving a stopping run of the same key a moment to go.
async fn register(
    state: &AppState,
    name: &str,
    claimant: Claimant,
    first: Option<&Tunnel>,
) -> Result<
    (
        Arc<Tunnel>,
        Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ),
    (ErrorCode, String),
> {
    let mut waited = false;
    loop {
        let registered = match first {
            Some(first) => state
                .register_beside(name, claimant.clone(), first)
                .map(|t| (t, None)),
            None => state
                .register_session(name, claimant.clone())
                .map(|(t, rx)| (t, Some(rx))),
        };
        match registered {
            Ok(registered) => return Ok(registered),
            Err(RegisterError::Busy) => {
                return Err((
                    ErrorCode::NameTaken,
                    format!(
                        "tunnel '{name}' is held by another agent right now; pick another --name"
                    ),
                ));
            }
            Err(RegisterError::AlreadyOnline { ended, .. }) if !waited => {
                waited = true;
                let _ = timeout(STOPPING_GRACE, ended.cancelled()).await;
            }
            Err(RegisterError::AlreadyOnline { host, since_ms, .. }) => {
                return Err((
                    ErrorCode::AlreadyOnline,
                    session::already_online(name, host.as_deref(), since_ms),
                ));
            }
        }
    }
}

/// Decides the tunnel name and claims it for the agent's key.
async fn admit(
    state: &AppState,
    hello: &Hello,
) -> Result<(String, Option<String>), (ErrorCode, String)> {
    let Some(key) = hello.key.as_deref().filter(|k| !k.is_empty()) else {
        // Keyless agents get a fresh, unbound name: nothing to take over, nothing queued.
        if hello.name.is_some() {
            return Err((
                ErrorCode::BadHandshake,
                "asking for a tunnel name needs an agent key".into(),
            ));
        }
        return Ok((name::random(), None));
    };
    let name = match &hello.name {
        Some(name) => {
            name::validate(name).map_err(|e| (ErrorCode::InvalidName, e.to_string()))?;
            name.clone()
        }
        None => name::random(),
    };
    let internal = |e: crate::durable::DurableError| {
        tracing::error!(error = %e, "name registry failed");
        (
            ErrorCode::Unknown,
            "the relay could not record the tunnel name; try again".to_owned(),
        )
    };
    let max_names = state.config.max_names_per_key;
    match state
        .durable
        .claim_within(&name, key, max_names)
        .await
        .map_err(internal)?
    {
        Claim::Granted => {}
        Claim::TooMany { held } => {
            return Err((
                ErrorCode::TooManyNames,
                format!(
                    "this agent key already holds {held} tunnel names, the most this relay allows (--max-names-per-key {max_names}); free one with `hooktunnel release NAME`, or reuse a name with --name"
                ),
            ));
        }
        Claim::Taken => {
            return Err((
                ErrorCode::NameTaken,
                format!("tunnel name '{name}' belongs to another agent key; pick another --name"),
            ));
        }
    }
    state
        .durable
        .set_queued_answer(&name, hello.queued_response.clone())
        .await
        .map_err(internal)?;
    Ok((name, Some(durable::key_hash(key))))
}
