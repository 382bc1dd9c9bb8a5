//! The agent's WebSocket: authenticate, handshake, then pump frames.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::timeout;

use super::relay_error;
use crate::config::HANDSHAKE_TIMEOUT;
use crate::durable::{self, Claim};
use crate::name;
use crate::protocol::{
    AgentMessage, ErrorCode, ErrorMessage, Hello, MAX_HEADER_BYTES, MAX_RESPONSE_BYTES,
    PING_INTERVAL, PROTOCOL_VERSION, RelayMessage, Welcome,
};
use crate::state::{AppState, Tunnel};
use std::sync::atomic::Ordering;

pub async fn connect(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
) -> Response {
    if !authorized(&state.config.tokens, &headers) {
        return relay_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong relay token: set --token or HOOKTUNNEL_TOKEN to a token this relay accepts",
        );
    }
    let max_message = MAX_RESPONSE_BYTES + MAX_HEADER_BYTES + 4;
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| session(socket, state))
}

/// True when no tokens are configured or the bearer token matches one of them.
fn authorized(tokens: &[String], headers: &HeaderMap) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(presented) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Check every token without early exit so timing reveals nothing.
    tokens.iter().fold(false, |found, t| {
        found | constant_time_eq(t.as_bytes(), presented.as_bytes())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn send(socket: &mut WebSocket, msg: &RelayMessage) -> bool {
    socket.send(Message::Binary(msg.encode())).await.is_ok()
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    tracing::info!(?code, %message, "agent handshake refused");
    let _ = send(
        &mut socket,
        &RelayMessage::Error(ErrorMessage { code, message }),
    )
    .await;
    let _ = socket.close().await;
}

/// Reads the agent's `hello` within the handshake deadline.
async fn read_hello(socket: &mut WebSocket) -> Result<Hello, (ErrorCode, String)> {
    let first = match timeout(HANDSHAKE_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Binary(frame)))) => frame,
        Ok(Some(Ok(_))) => {
            return Err((
                ErrorCode::BadHandshake,
                "expected a binary hello frame".into(),
            ));
        }
        Ok(_) => {
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
    };
    match AgentMessage::decode(&first) {
        Ok(AgentMessage::Hello(hello)) if hello.version == PROTOCOL_VERSION => Ok(hello),
        Ok(AgentMessage::Hello(hello)) => Err((
            ErrorCode::UnsupportedVersion,
            format!(
                "agent speaks protocol {} but this relay speaks {PROTOCOL_VERSION}; upgrade the older side",
                hello.version
            ),
        )),
        Ok(_) => Err((
            ErrorCode::BadHandshake,
            "the first message must be hello".into(),
        )),
        Err(e) => Err((ErrorCode::MalformedFrame, e.to_string())),
    }
}

async fn session(mut socket: WebSocket, state: Arc<AppState>) {
    let hello = match read_hello(&mut socket).await {
        Ok(hello) => hello,
        Err((code, message)) => {
            state.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return refuse(socket, code, message).await;
        }
    };
    let (name, key_hash) = match admit(&state, &hello) {
        Ok(admitted) => admitted,
        Err((code, message)) => {
            state.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return refuse(socket, code, message).await;
        }
    };
    let Ok((tunnel, outbound)) = state.register(&name, hello.mode, key_hash) else {
        let message =
            format!("tunnel '{name}' is held by another agent right now; pick another --name");
        return refuse(socket, ErrorCode::NameTaken, message).await;
    };
    let welcome = RelayMessage::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        name: name.clone(),
        public_urls: state.public_urls(&name),
        mode: hello.mode,
    });
    if send(&mut socket, &welcome).await {
        tracing::info!(tunnel = %name, mode = ?hello.mode, "agent connected");
        tokio::select! {
            () = pump(socket, &state, &tunnel, outbound) => {}
            () = deliver_queue(&state, &tunnel) => {}
            () = tunnel.replaced.cancelled() => tracing::info!(tunnel = %name, "session replaced by a newer one"),
            () = state.closing.cancelled() => {}
        }
        tracing::info!(tunnel = %name, "agent disconnected");
    }
    state.unregister(&tunnel);
}

/// Decides the tunnel name and claims it for the agent's key.
fn admit(state: &AppState, hello: &Hello) -> Result<(String, Option<String>), (ErrorCode, String)> {
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
    match state.registry.claim(&name, key).map_err(internal)? {
        Claim::Granted => {}
        Claim::Taken => {
            return Err((
                ErrorCode::NameTaken,
                format!("tunnel name '{name}' belongs to another agent key; pick another --name"),
            ));
        }
    }
    state
        .registry
        .set_queued_answer(&name, hello.queued_response.as_ref())
        .map_err(internal)?;
    Ok((name, Some(durable::key_hash(key))))
}

/// Sends everything queued for the tunnel, oldest first, then waits for more.
/// Entries stay queued until the agent acks them, so a dropped link loses nothing.
async fn deliver_queue(state: &AppState, tunnel: &Tunnel) {
    const PAGE: usize = 64;
    let mut last = None;
    loop {
        let batch = match state.queue.pending(&tunnel.name, last, PAGE) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(tunnel = %tunnel.name, error = %e, "cannot read the queue; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let full_page = batch.len() == PAGE;
        for entry in batch {
            if tunnel.outbound.send(entry.frame).await.is_err() {
                return;
            }
            last = Some(entry.seq);
        }
        if !full_page {
            tunnel.queued.notified().await;
        }
    }
}

/// Moves frames both ways until either side goes away.
async fn pump(
    socket: WebSocket,
    state: &AppState,
    tunnel: &Tunnel,
    mut outbound: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            let msg = tokio::select! {
                frame = outbound.recv() => match frame {
                    Some(frame) => Message::Binary(frame),
                    None => break,
                },
                _ = ping.tick() => Message::Ping(bytes::Bytes::new()),
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut last_seen = tokio::time::Instant::now();
        loop {
            let next = timeout(PING_INTERVAL * 2 + PING_INTERVAL / 2, stream.next()).await;
            let msg = match next {
                Ok(Some(Ok(msg))) => msg,
                Ok(_) => break,
                Err(_) => {
                    tracing::warn!(tunnel = %tunnel.name, idle = ?last_seen.elapsed(), "agent silent for two ping intervals; dropping");
                    break;
                }
            };
            last_seen = tokio::time::Instant::now();
            match msg {
                Message::Binary(frame) => match AgentMessage::decode(&frame) {
                    Ok(AgentMessage::Response(response)) => {
                        if !tunnel.complete(response) {
                            tracing::debug!(tunnel = %tunnel.name, "answer for an unknown or expired request ignored");
                        }
                    }
                    Ok(AgentMessage::Ack(ack)) => match state.queue.ack(&tunnel.name, ack.id) {
                        Ok(true) => {
                            state.metrics.acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            tracing::debug!(tunnel = %tunnel.name, id = %ack.id, "ack for an id not queued here ignored")
                        }
                        Err(e) => {
                            tracing::error!(tunnel = %tunnel.name, error = %e, "cannot delete an acked entry; it will be redelivered")
                        }
                    },
                    Ok(AgentMessage::Error(e)) => {
                        tracing::warn!(tunnel = %tunnel.name, code = ?e.code, message = %e.message, "agent reported an error")
                    }
                    Ok(AgentMessage::Hello(_)) => {
                        tracing::debug!(tunnel = %tunnel.name, "repeated hello ignored")
                    }
                    Err(e) => {
                        tracing::warn!(tunnel = %tunnel.name, error = %e, "malformed frame from agent ignored")
                    }
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = writer => {},
        () = reader => {},
    }
}
