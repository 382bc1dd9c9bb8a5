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
use tokio::time::timeout_at;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::budget::{Budget, Budgeted};
use super::link::{Stop, deliver_queue, pump};
use super::members::{Member, distinct_names, join, leave, welcome};
use crate::config::{HANDSHAKE_TIMEOUT, MAX_HELLO_BYTES};
use crate::error::RelayError;
use crate::protocol::{
    AgentMessage, ErrorCode, ErrorMessage, Hello, MAX_HEADER_BYTES, PROTOCOL_VERSION, RelayMessage,
    Release, Welcome,
};
use crate::state::AppState;

pub(super) type WebSocket = WebSocketStream<Budgeted<TokioIo<hyper::upgrade::Upgraded>>>;

/// Read buffer per agent WebSocket. tungstenite's default (128 KiB) is
/// allocated eagerly and zero-filled, so it stays resident for every idle
/// agent; larger messages still grow the buffer as they arrive.
const READ_BUFFER_BYTES: usize = 8 * 1024;
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

/// Resolves once the session's cluster lease is lost; never without a cluster.
async fn lease_lost(
    held: Option<&crate::cluster::session::Held>,
) -> crate::cluster::lease::LeaseEnd {
    match held {
        Some(held) => held.lost().await,
        None => std::future::pending().await,
    }
}
