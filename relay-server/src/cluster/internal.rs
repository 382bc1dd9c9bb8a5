//! The node-to-node listener (`--internal-listen`): HTTP/2, in clear text or
//! (`--internal-tls`) inside TLS that requires a client certificate the node
//! trusts, every stream authenticated with the cluster secret (compared in
//! constant time; agent tokens never count here). A stream names a tunnel
//! this node holds and carries the request head in [`META_HEADER`]; it is
//! forwarded into the agent's own streams and the answer streams back.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;

use super::routing::{PROBE_PATH, TUNNEL_HEADER};
use crate::protocol::stream::{
    CONNECTION_WINDOW, MAX_META_BYTES, META_HEADER, STREAM_WINDOW, decode_meta, encode_meta,
};
use crate::state::AppState;

/// Longest wait for a peer's TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The first byte of a TLS handshake record (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves peers on `listener` until the relay closes.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    let tls = state
        .cluster
        .as_ref()
        .and_then(|c| c.internal_tls.as_ref())
        .map(|tls| tls.acceptor.clone());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "internal accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = state.closing.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_h2(stream, state, peer).await,
                        Ok(Err(e)) => tracing::warn!(
                            %peer,
                            error = %e,
                            "refused a connection to the internal listener: its TLS handshake failed \
                             (a node without --internal-tls, or a client certificate this node does not trust)"
                        ),
                        Err(_) => tracing::warn!(
                            %peer,
                            "refused a connection to the internal listener: no TLS handshake within {} s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        ),
                    }
                }
                None => {
                    // A node with --internal-tls dialling this clear-text
                    // listener: say so, rather than an HTTP/2 error at debug.
                    let mut first = [0u8; 1];
                    if matches!(tcp.peek(&mut first).await, Ok(1))
                        && first[0] == TLS_HANDSHAKE_RECORD
                    {
                        tracing::warn!(
                            %peer,
                            "refused a TLS connection to the internal listener: this node runs without \
                             --internal-tls and the peer with it; give every node the same setting"
                        );
                        return;
                    }
                    serve_h2(tcp, state, peer).await;
                }
            }
        });
    }
}

/// Serves one peer connection's HTTP/2 streams until it ends.
async fn serve_h2<IO>(io: IO, state: Arc<AppState>, peer: std::net::SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_META_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "internal connection ended");
    }
}

fn refuse(status: u16, code: &str) -> http::Response<Body> {
    let mut answer = http::Response::new(Body::empty());
    *answer.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    if let Ok(code) = http::HeaderValue::from_str(code) {
        answer
            .headers_mut()
            .insert(crate::protocol::ERROR_HEADER, code);
    }
    answer
}

/// True when `headers` carry `Authorization: Bearer <secret>`.
fn authorized(headers: &http::HeaderMap, secret: &str) -> bool {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    presented.ct_eq(secret.as_bytes()).into()
}

async fn handle(
    state: Arc<AppState>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let Some(cluster) = &state.cluster else {
        return Ok(refuse(404, "not_found"));
    };
    if !authorized(req.headers(), &cluster.config.secret) {
        tracing::warn!("internal request without the cluster secret refused");
        return Ok(refuse(401, "unauthorized"));
    }
    if req.uri().path() == PROBE_PATH {
        let mut alive = http::Response::new(Body::empty());
        *alive.status_mut() = http::StatusCode::NO_CONTENT;
        return Ok(alive);
    }
    let Some(name) = req
        .headers()
        .get(TUNNEL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Ok(refuse(400, "bad_request"));
    };
    let head: crate::protocol::Request = match decode_meta(req.headers()) {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(tunnel = %name, error = %e, "internal request without a usable head");
            return Ok(refuse(400, "bad_request"));
        }
    };
    let streams = match state.tunnel(&name) {
        Some(tunnel) => tunnel.streams().await,
        None => None,
    };
    let Some(streams) = streams else {
        // The agent left this node after the peer looked its owner up: the
        // request is queued here, as ingress would have done (no 502 for a
        // request the queue can keep).
        return Ok(queue_here(&state, &name, head, req.into_body()).await);
    };
    // Signatures are verified here, where the agent's signing secret is.
    let (body, _whole) = match verify_here(&state, &name, &head, req.into_body()).await {
        Ok(verified) => verified,
        Err(refused) => {
            use axum::response::IntoResponse as _;
            // Refused here, where the agent is: its notes count it (the
            // node that took the request only relays this answer).
            if let Some(tunnel) = state.tunnel(&name) {
                tunnel.refused(crate::protocol::RefusedRequest {
                    method: head.method.clone(),
                    path: crate::refusals::short_path(&head.target),
                    status: refused.status().as_u16(),
                    reason: refused.code().as_str().to_owned(),
                });
            }
            return Ok(answer_as_meta(head.id, refused.into_response()).await);
        }
    };
    match streams.open(&head, body).await {
        Ok((answer, body)) => {
            cluster
                .metrics
                .served_for_peers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut out = http::Response::new(Body::new(body));
            out.headers_mut().insert(META_HEADER, encode_meta(&answer));
            Ok(out)
        }
        Err(e) => {
            tracing::debug!(tunnel = %name, error = %e, "a forwarded stream got no answer");
            Ok(refuse(502, "agent_disconnected"))
        }
    }
}

/// For a tunnel that verifies signatures at the edge: the forwarded body,
/// read whole and checked against the sender's headers (as ingress does on
/// the node that holds the agent); other bodies pass untouched.
async fn verify_here(
    state: &Arc<AppState>,
    name: &str,
    head: &crate::protocol::Request,
    body: Incoming,
) -> Result<(Body, Option<crate::memory::Reservation>), crate::error::RelayError> {
    let rules = state.edge_rules(name);
    let mut headers = http::HeaderMap::new();
    for h in &head.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(n, v);
        }
    }
    let config = &state.config;
    let limits = crate::routes::body::BodyLimits {
        max: config.max_body_bytes,
        timeout: config.body_read_timeout,
        min_rate: config.min_body_rate,
        grace: config.body_rate_grace,
    };
    let upgrade = crate::protocol::stream::upgrade_requested(&head.headers).is_some();
    crate::routes::edge::read_verified(
        state,
        name,
        rules.as_deref(),
        &headers,
        Body::new(body),
        limits,
        upgrade,
    )
    .await
}

/// Queues a forwarded request on this node and answers the peer with the
/// sender's answer (the usual 2xx naming the id, or the refusal).
async fn queue_here(
    state: &Arc<AppState>,
    name: &str,
    mut head: crate::protocol::Request,
    body: Incoming,
) -> http::Response<Body> {
    use axum::response::IntoResponse as _;
    use http_body_util::BodyExt as _;
    let max = state
        .config
        .queue_max_entry
        .min(state.config.max_body_bytes);
    let Some(_reserved) = state.memory.try_reserve(max as u64) else {
        return answer_as_meta(
            head.id,
            crate::error::RelayError::RelayBusy(state.memory.limit()).into_response(),
        )
        .await;
    };
    head.body = match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let refused = crate::error::RelayError::QueuedBodyTooLarge(max).into_response();
            return answer_as_meta(head.id, refused).await;
        }
    };
    head.queued = true;
    head.needs_ack = true;
    let client = head
        .peer
        .as_deref()
        .and_then(|p| p.parse::<std::net::SocketAddr>().ok())
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let id = head.id;
    let answer =
        crate::routes::ingress::queue(state, name, crate::limit::ip_key(client), None, head)
            .await
            .unwrap_or_else(|e| e.into_response());
    answer_as_meta(id, answer).await
}

/// A response this node made, as a stream answer: its head in [`META_HEADER`].
async fn answer_as_meta(
    id: ulid::Ulid,
    response: axum::response::Response,
) -> http::Response<Body> {
    let (parts, body) = response.into_parts();
    let head = crate::protocol::Response {
        id,
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| crate::protocol::Header::new(n.as_str(), v.as_bytes()))
            .collect(),
        body: bytes::Bytes::new(),
    };
    let mut out = http::Response::new(body);
    out.headers_mut().insert(META_HEADER, encode_meta(&head));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cluster_secret_is_accepted() {
        let mut h = http::HeaderMap::new();
        assert!(!authorized(&h, "s3cret-s3cret-s3cret"));
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer s3cret-s3cret-s3creX"),
        );
        assert!(!authorized(&h, "s3cret-s3cret-s3cret"));
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer s3cret-s3cret-s3cret"),
        );
        assert!(authorized(&h, "s3cret-s3cret-s3cret"));
    }
}
