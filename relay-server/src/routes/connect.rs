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
use crate::name;
use crate::protocol::{
    AgentMessage, ErrorCode, ErrorMessage, Hello, MAX_HEADER_BYTES, MAX_RESPONSE_BYTES,
    PING_INTERVAL, PROTOCOL_VERSION, RelayMessage, Welcome,
};
use crate::state::{AppState, Tunnel};

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
        Err((code, message)) => return refuse(socket, code, message).await,
    };
    let name = match hello.name {
        Some(name) => {
            if let Err(e) = name::validate(&name) {
                return refuse(socket, ErrorCode::InvalidName, e.to_string()).await;
            }
            name
        }
        None => name::random(),
    };
    let Some((tunnel, outbound)) = state.register(&name) else {
        let message =
            format!("tunnel '{name}' is already held by another agent; pick another --name");
        return refuse(socket, ErrorCode::NameTaken, message).await;
    };
    let welcome = RelayMessage::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        name: name.clone(),
        public_urls: state.public_urls(&name),
        mode: hello.mode,
    });
    if send(&mut socket, &welcome).await {
        tracing::info!(tunnel = %name, "agent connected");
        pump(socket, &tunnel, outbound).await;
        tracing::info!(tunnel = %name, "agent disconnected");
    }
    state.unregister(&tunnel);
}

/// Moves frames both ways until either side goes away.
async fn pump(
    socket: WebSocket,
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
                    Ok(AgentMessage::Ack(_)) => {}
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
