//! Proxy mode over protocol v2: one HTTP/2 stream per public request, the
//! body streamed to the agent as it arrives and the answer streamed back as
//! the app writes it; an `Upgrade` (WebSocket and any other) switches both
//! connections and moves bytes each way until either side closes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::body::Verdict;
use crate::error::RelayError;
use crate::memory::Reservation;
use crate::protocol::{self, Request};
use crate::state::{AppState, InFlight, Tunnel, Waiting};

/// How long the app's side of an upgraded connection may go on after the
/// sender stopped sending (a peer that never closes cannot hold the slot).
const UPGRADE_LINGER: Duration = Duration::from_secs(10);
/// Bytes read from an upgraded public connection at once.
const UPGRADE_CHUNK: usize = 16 * 1024;

/// What one live request holds until its answer has been sent in full: the
/// tunnel's in-flight slot, its share of the memory budget and its place in
/// the relay's in-flight count (shutdown waits for it).
pub struct Hold {
    pub _slot: Option<InFlight>,
    pub _reservation: Reservation,
    pub _counted: Waiting,
}

/// A response body that keeps its request's [`Hold`] until it is dropped.
struct Holding {
    body: Incoming,
    _hold: Hold,
}

impl hyper::body::Body for Holding {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Sends `request` to the tunnel's agent on a new stream and answers the
/// sender with what comes back. `body` is `None` for an upgrade (the
/// stream's body then carries the upgraded connection's bytes).
pub async fn forward_live(
    state: &Arc<AppState>,
    tunnel: &Arc<Tunnel>,
    request: Request,
    body: Option<Body>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    verdict: Verdict,
    hold: Hold,
) -> Result<Response, RelayError> {
    let Some(streams) = tunnel.streams().await else {
        return Err(RelayError::AgentDisconnected);
    };
    let head = request.method == "HEAD";
    let (body, upstream) = match body {
        Some(body) => (body, None),
        None => {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, std::convert::Infallible>(Frame::data(chunk)), rx))
            });
            (Body::new(http_body_util::StreamBody::new(stream)), Some(tx))
        }
    };
    let opened = streams.open(&request, body);
    tokio::pin!(opened);
    let timeout = state.config.response_timeout;
    let (answer, incoming) = loop {
        // The agent's time to answer counts from the end of the request
        // body: a large upload may take longer than the answer timeout.
        let wait = verdict
            .ended_for()
            .map_or(timeout, |done| timeout.saturating_sub(done));
        tokio::select! {
            opened = &mut opened => match opened {
                Ok(answer) => break answer,
                Err(e) => {
                    if let Some(cut) = verdict.cut() {
                        return Err(cut.into());
                    }
                    tracing::debug!(tunnel = %tunnel.name, id = %request.id, error = %e, "stream failed before an answer");
                    return Err(match e {
                        crate::streams::StreamError::BadHead(e) => RelayError::ProtocolError(e.to_string()),
                        _ => RelayError::AgentDisconnected,
                    });
                }
            },
            () = tokio::time::sleep(wait) => {
                if verdict.ended_for().is_some_and(|done| done >= timeout) {
                    return Err(RelayError::AgentTimeout);
                }
            }
        }
    };
    let upgrading = on_upgrade.is_some();
    if let Err(violation) = protocol::check_response_head(&answer, upgrading) {
        state
            .metrics
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(tunnel = %tunnel.name, id = %request.id, %violation, "agent answer breaks the protocol");
        return Err(RelayError::ProtocolError(violation.to_string()));
    }
    let mut response = response_head(&answer);
    match (on_upgrade, upstream) {
        (Some(on_upgrade), Some(upstream)) if answer.status == 101 => {
            tokio::spawn(relay_upgraded(on_upgrade, upstream, incoming, hold));
        }
        _ if head || matches!(answer.status, 204 | 304) => {
            // No body follows; the hold ends with this answer.
        }
        _ => match declared_length(&answer) {
            // A short answer with a declared length is read whole before the
            // head goes out, so an agent whose body contradicts its length
            // is a 502 for the sender, not a cut-off response.
            Some(declared) if declared <= SMALL_ANSWER => {
                let read = http_body_util::Limited::new(incoming, SMALL_ANSWER as usize + 1)
                    .collect()
                    .await;
                let body = match read {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return Err(RelayError::AgentDisconnected),
                };
                if body.len() as u64 != declared {
                    state
                        .metrics
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let violation = protocol::Violation::LengthMismatch {
                        declared,
                        actual: body.len(),
                    };
                    tracing::warn!(tunnel = %tunnel.name, id = %request.id, %violation, "agent answer breaks the protocol");
                    return Err(RelayError::ProtocolError(violation.to_string()));
                }
                *response.body_mut() = Body::from(body);
            }
            // Longer or unsized answers stream; one cut short ends the
            // sender's connection early (hyper checks the length it sent).
            _ => {
                *response.body_mut() = Body::new(Holding {
                    body: incoming,
                    _hold: hold,
                });
            }
        },
    }
    Ok(response)
}

/// Answers declared at most this long are checked whole before they are sent.
const SMALL_ANSWER: u64 = crate::protocol::stream::STREAM_WINDOW as u64;

/// The answer's one `Content-Length` (the head check refused several).
fn declared_length(answer: &protocol::Response) -> Option<u64> {
    answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(&h.value).ok()?.trim().parse().ok())
}

/// The sender's response head from the agent's. `204` and `304` never carry
/// a `Content-Length` (RFC 9110 §8.6); a `HEAD` answer keeps the app's. A
/// `101` keeps `Upgrade` and `Connection`; other hop-by-hop fields go.
fn response_head(answer: &protocol::Response) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let bodyless = matches!(answer.status, 204 | 304);
    let switching = answer.status == 101;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let tokens = protocol::connection_tokens(&answer.headers);
    for h in &answer.headers {
        let keep_switch = switching
            && (h.name.eq_ignore_ascii_case("upgrade")
                || h.name.eq_ignore_ascii_case("connection"));
        if !keep_switch && protocol::is_hop_by_hop(&h.name, &tokens) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") && (bodyless || switching) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// Moves bytes between the sender's upgraded connection and the stream
/// until either side closes.
async fn relay_upgraded(
    on_upgrade: hyper::upgrade::OnUpgrade,
    upstream: mpsc::Sender<Bytes>,
    mut downstream: Incoming,
    hold: Hold,
) {
    let _hold = hold;
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "the sender's connection did not switch protocols");
            return;
        }
    };
    let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
    let up = async move {
        let mut buf = vec![0_u8; UPGRADE_CHUNK];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if upstream
                        .send(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let down = async move {
        while let Some(frame) = downstream.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data()
                && write.write_all(&data).await.is_err()
            {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        // The sender finished sending: the app may still answer.
        () = &mut up => {
            let _ = tokio::time::timeout(UPGRADE_LINGER, down).await;
        }
        // The app's side closed: nothing more can reach it.
        () = &mut down => {}
    }
}
