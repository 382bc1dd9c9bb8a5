//! The agent's WebSocket: authenticate, upgrade, handshake, register; the
//! registered session's traffic is `link.rs`.
//!
//! The upgrade is done here rather than by axum's extractor so the socket can
//! be read through a byte budget: until the tunnel is registered an agent may
//! send at most [`MAX_HELLO_BYTES`], whatever it declares in frame headers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::budget::{Budget, Budgeted};
use super::link::{Stop, deliver_queue, pump};
use crate::config::{HANDSHAKE_TIMEOUT, MAX_HELLO_BYTES};
use crate::durable::{self, Claim};
use crate::error::RelayError;
use crate::name;
use crate::protocol::{
    AgentMessage, ErrorCode, ErrorMessage, Hello, MAX_HEADER_BYTES, PROTOCOL_VERSION, RelayMessage,
    Release, Welcome,
};
use crate::session::{self, Claimant};
use crate::state::{AppState, RegisterError, Tunnel};

pub(super) type WebSocket = WebSocketStream<Budgeted<TokioIo<hyper::upgrade::Upgraded>>>;

/// Read buffer per agent WebSocket. tungstenite's default (128 KiB) is
/// allocated eagerly and zero-filled, so it stays resident for every idle
/// agent; larger messages still grow the buffer as they arrive.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// How long a claim for a tunnel held by another run of the same key waits
/// for that run to go away (a graceful stop closes its socket within moments).
const STOPPING_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// The close reason agents see when the relay shuts down.
pub const SHUTDOWN_REASON: &str = "relay restarting";

/// `GET /_hooktunnel/connect`: token check (401), upgrade check (400), then 101.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    mut req: axum::extract::Request,
) -> Response {
    // Only the Authorization header counts: a `?token=` in the URL is ignored.
    if !state.tokens.authorizes(req.headers()) {
        state.metrics.refused.fetch_add(1, Ordering::Relaxed);
        return RelayError::Unauthorized.into_response();
    }
    let Some(accept) = websocket_accept(req.headers()) else {
        return RelayError::NotWebsocket.into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // Tracked, so shutdown can wait for the close frames it sends.
    state.sessions.clone().spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "agent upgrade failed");
                return;
            }
        };
        let budget = Budget::new(MAX_HELLO_BYTES);
        let io = Budgeted {
            inner: TokioIo::new(upgraded),
            budget: budget.clone(),
        };
        // Responses stream as HTTP/2 in small messages; only control frames
        // (acks, notes) travel whole, and none comes near this.
        let max_message = MAX_HEADER_BYTES + 4 + crate::protocol::stream::MAX_STREAM_CHUNK;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        session(socket, state, budget).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `Sec-WebSocket-Accept` value when the request is a WebSocket upgrade.
fn websocket_accept(headers: &HeaderMap) -> Option<HeaderValue> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()
}

async fn send(socket: &mut WebSocket, msg: &RelayMessage) -> bool {
    socket.send(Message::Binary(msg.encode())).await.is_ok()
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    // Debug formatting escapes anything the agent put in the message.
    tracing::info!(?code, ?message, "agent handshake refused");
    let _ = send(
        &mut socket,
        &RelayMessage::Error(ErrorMessage { code, message }),
    )
    .await;
    let _ = socket.close(None).await;
}

/// What an agent opens its socket for.
enum First {
    /// A tunnel session.
    Hello(Box<Hello>),
    /// Freeing a name (`hooktunnel release`).
    Release(Release),
}

/// Reads the agent's `hello` within the handshake deadline (one deadline for
/// the whole wait: pings do not extend it).
async fn read_hello(socket: &mut WebSocket) -> Result<First, (ErrorCode, String)> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let first = loop {
        match timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Binary(frame)))) => break frame,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(_))) => {
                return Err((
                    ErrorCode::BadHandshake,
                    "expected a binary hello frame".into(),
                ));
            }
            Ok(Some(Err(e))) => {
                return Err((
                    ErrorCode::BadHandshake,
                    format!("unreadable hello ({e}); it must fit in {MAX_HELLO_BYTES} bytes"),
                ));
            }
            Ok(None) => {
                return Err((
                    ErrorCode::BadHandshake,
                    "connection closed before hello".into(),
                ));
            }
            Err(_) => {
                return Err((
                    ErrorCode::BadHandshake,
                    "no hello within the handshake deadline".into(),
                ));
            }
        }
    };
    match AgentMessage::decode(&first) {
        Ok(AgentMessage::Hello(hello)) if hello.version == PROTOCOL_VERSION => {
            Ok(First::Hello(Box::new(hello)))
        }
        Ok(AgentMessage::Release(release)) => Ok(First::Release(release)),
        Ok(AgentMessage::Hello(hello)) => Err((
            ErrorCode::UnsupportedVersion,
            if hello.version < PROTOCOL_VERSION {
                format!(
                    "this hooktunnel is too old for this relay: it speaks protocol {} and the relay speaks {PROTOCOL_VERSION} (streaming); upgrade hooktunnel",
                    hello.version
                )
            } else {
                format!(
                    "this relay is older than your hooktunnel: the relay speaks protocol {PROTOCOL_VERSION} and hooktunnel {}; upgrade the relay (hooktunnel-relay) or use an older hooktunnel",
                    hello.version
                )
            },
        )),
        Ok(_) => Err((
            ErrorCode::BadHandshake,
            "the first message must be hello".into(),
        )),
        Err(e) => Err((ErrorCode::MalformedFrame, e.to_string())),
    }
}

async fn session(mut socket: WebSocket, state: Arc<AppState>, budget: Budget) {
    let hello = match read_hello(&mut socket).await {
        Ok(First::Hello(hello)) => hello,
        Ok(First::Release(release)) => {
            return match super::release::release_name(&state, &release).await {
                Ok(released) => {
                    tracing::info!(tunnel = %released.name, queued = released.queued, released = released.released, "name release");
                    let _ = send(&mut socket, &RelayMessage::Released(released)).await;
                    let _ = socket.close(None).await;
                }
                Err((code, message)) => refuse(socket, code, message).await,
            };
        }
        Err((code, message)) => {
            state.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return refuse(socket, code, message).await;
        }
    };
    let asked = hello.tunnels();
    if let Err(message) = distinct_names(&asked) {
        state.metrics.refused.fetch_add(1, Ordering::Relaxed);
        return refuse(socket, ErrorCode::BadHandshake, message).await;
    }
    // Every tunnel of the hello is granted, or none: the agent asked for a
    // set, and half of it would look like the rest had failed silently.
    let several = asked.len() > 1;
    let mut members: Vec<Member> = Vec::with_capacity(asked.len());
    let mut outbound = None;
    for wanted in asked {
        let first = members.first().map(|m| m.tunnel.clone());
        match join(&state, wanted, first.as_deref()).await {
            Ok((member, rx)) => {
                outbound = outbound.or(rx);
                members.push(member);
            }
            Err((name, code, message)) => {
                state.metrics.refused.fetch_add(1, Ordering::Relaxed);
                leave(&state, members).await;
                let message = match name {
                    Some(name) if several => format!("tunnel '{name}': {message}"),
                    _ => message,
                };
                return refuse(socket, code, message).await;
            }
        }
    }
    let (Some(first), Some(outbound)) = (members.first().map(|m| m.tunnel.clone()), outbound)
    else {
        return refuse(
            socket,
            ErrorCode::BadHandshake,
            "hello names no tunnel".into(),
        )
        .await;
    };
    budget.lift();
    // Protocol v2: live requests are HTTP/2 streams over this socket; the
    // HTTP/2 connection starts with the first one (idle agents cost less).
    let (h2_io, pipe) = crate::wire::stream_pipe();
    first.attach_pipe(h2_io);
    let mut welcomes = members.iter().map(|m| welcome(&state, m));
    let welcome = welcomes.next().map(|first| Welcome {
        more: welcomes.collect(),
        ..first
    });
    if let Some(welcome) = welcome
        && send(&mut socket, &RelayMessage::Welcome(welcome)).await
    {
        for m in &members {
            tracing::info!(tunnel = %m.tunnel.name, mode = ?m.tunnel.mode, host = ?m.tunnel.host, "agent connected");
        }
        let stop = async {
            let replaced = members
                .iter()
                .map(|m| Box::pin(m.tunnel.replaced.cancelled()));
            let lost = members
                .iter()
                .map(|m| Box::pin(lease_lost(m.held.as_ref())));
            tokio::select! {
                ((), i, _) = futures_util::future::select_all(replaced) => {
                    let tunnel = &members[i].tunnel;
                    tracing::info!(tunnel = %tunnel.name, "session replaced by a newer one");
                    Stop::Replaced(tunnel.replaced_because())
                }
                () = state.closing.cancelled() => Stop::Closing,
                (end, _, _) = futures_util::future::select_all(lost) => match end {
                    crate::cluster::lease::LeaseEnd::Taken => {
                        Stop::Replaced(Some(crate::cluster::session::LEASE_LOST.into()))
                    }
                    // Redis is away: the agent reconnects (maybe elsewhere).
                    crate::cluster::lease::LeaseEnd::Unreachable => Stop::Closing,
                }
            }
        };
        let queues = members
            .iter()
            .map(|m| Box::pin(deliver_queue(&state, &m.tunnel, m.held.as_ref())));
        tokio::select! {
            () = pump(socket, &state, &members, outbound, pipe, stop) => {}
            _ = futures_util::future::select_all(queues) => {}
        }
        for m in &members {
            tracing::info!(tunnel = %m.tunnel.name, "agent disconnected");
        }
    }
    leave(&state, members).await;
}

/// One tunnel of an agent session: the hello's own, or one of its `more`.
pub(super) struct Member {
    pub(super) tunnel: Arc<Tunnel>,
    /// Its cluster lease (`--cluster`), fencing what is done for it.
    pub(super) held: Option<crate::cluster::session::Held>,
    rules_enforced: bool,
}

/// Refuses a hello that names one tunnel twice, or too many.
fn distinct_names(asked: &[Hello]) -> Result<(), String> {
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
async fn join(
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
async fn leave(state: &AppState, members: Vec<Member>) {
    for m in members {
        state.unregister(&m.tunnel);
        if let Some(held) = m.held {
            held.release().await;
        }
    }
}

/// What the agent is told about one granted tunnel.
fn welcome(state: &AppState, m: &Member) -> Welcome {
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

/// Resolves once the session's cluster lease is lost; never without a cluster.
async fn lease_lost(
    held: Option<&crate::cluster::session::Held>,
) -> crate::cluster::lease::LeaseEnd {
    match held {
        Some(held) => held.lost().await,
        None => std::future::pending().await,
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
