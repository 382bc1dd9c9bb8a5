//! Public ingress: find the tunnel, capture the request, wait for the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::relay_error;
use std::sync::atomic::Ordering;

use crate::durable::EnqueueError;
use crate::protocol::{self, Header, Mode, RelayMessage, Request};
use crate::state::{AppState, Tunnel};

/// Where a public request is headed.
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// The tunnel name.
    pub name: &'a str,
    /// Path and query for the local app.
    pub target: String,
}

/// Finds the tunnel for a request from its Host (subdomain form) or path (`/t/<name>/…`).
pub fn route<'a>(
    domain: Option<&str>,
    host: Option<&'a str>,
    path_and_query: &'a str,
) -> Option<Route<'a>> {
    if let (Some(domain), Some(host)) = (domain, host) {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if let Some(label) = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.'))
            && !label.contains('.')
        {
            return Some(Route {
                name: label,
                target: path_and_query.to_owned(),
            });
        }
    }
    let rest = path_and_query.strip_prefix("/t/")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    let target = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        format!("/{tail}")
    };
    Some(Route { name, target })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub async fn ingress(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let Some(route) = route(state.config.domain.as_deref(), host, path_and_query) else {
        if path_and_query.starts_with("/_hooktunnel/") {
            return relay_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such hooktunnel control route",
            );
        }
        return relay_error(
            StatusCode::NOT_FOUND,
            "no_tunnel",
            "no tunnel here: tunnel URLs look like /t/<name>/...",
        );
    };
    let live = state.tunnel(route.name);
    let needs_queue = match &live {
        Some(t) => t.mode == Mode::Ack,
        None => match state.registry.is_known(route.name) {
            Ok(known) => known,
            Err(e) => {
                tracing::error!(error = %e, "name registry failed");
                return relay_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "relay_storage",
                    "the relay cannot read its registry; try again",
                );
            }
        },
    };
    if live.is_none() && !needs_queue {
        return relay_error(
            StatusCode::NOT_FOUND,
            "unknown_tunnel",
            format!("no agent is connected for tunnel '{}'", route.name),
        );
    }
    let body = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return relay_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request body exceeds the relay's {}-byte limit",
                    state.config.max_body_bytes
                ),
            );
        }
    };
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let headers: Vec<Header> = parts
        .headers
        .iter()
        .map(|(name, value)| Header::new(name.as_str(), value.as_bytes()))
        .collect();
    let public_url = match host {
        Some(host) => format!(
            "{}://{host}{path_and_query}",
            if state.base_url.starts_with("https://") {
                "https"
            } else {
                "http"
            }
        ),
        None => format!("{}{path_and_query}", state.base_url),
    };
    let id = protocol::next_id();
    let request = Request {
        id,
        method: parts.method.as_str().to_owned(),
        target: route.target,
        headers,
        peer: Some(peer.to_string()),
        received_at_ms: now_ms(),
        public_url: Some(public_url),
        queued: live.is_none(),
        needs_ack: needs_queue,
        body,
    };
    match live {
        Some(tunnel) if !needs_queue => forward_live(&state, &tunnel, request).await,
        live => queue(&state, route.name, live.as_deref(), request).await,
    }
}

/// Proxy mode: hand the request to the agent and wait for the local app's answer.
async fn forward_live(state: &AppState, tunnel: &Tunnel, request: Request) -> Response {
    let id = request.id;
    let answer = tunnel.expect(id);
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let result = async {
        if tunnel
            .outbound
            .send(RelayMessage::Request(request).encode())
            .await
            .is_err()
        {
            return agent_gone();
        }
        match tokio::time::timeout(state.config.response_timeout, answer).await {
            Ok(Ok(response)) => to_http(response),
            Ok(Err(_)) => agent_gone(),
            Err(_) => relay_error(
                StatusCode::GATEWAY_TIMEOUT,
                "agent_timeout",
                "the hooktunnel agent did not answer in time",
            ),
        }
    }
    .await;
    tunnel.forget(&id);
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    result
}

/// Offline or ack mode: store durably (fsync'd), then answer 2xx naming the id.
async fn queue(
    state: &Arc<AppState>,
    name: &str,
    live: Option<&Tunnel>,
    request: Request,
) -> Response {
    let id = request.id;
    let frame = RelayMessage::Request(request).encode();
    let stored = {
        let state = state.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            state
                .queue
                .enqueue(&name, id, &frame, &state.config.queue_limits, now_ms())
        })
        .await
    };
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(EnqueueError::Full(reason))) => {
            state.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tunnel = %name, %reason, "queue full: request refused");
            return relay_error(
                StatusCode::INSUFFICIENT_STORAGE,
                "queue_full",
                format!("tunnel '{name}' cannot take more requests: {reason}"),
            );
        }
        Ok(Err(EnqueueError::Durable(e))) => {
            tracing::error!(tunnel = %name, error = %e, "cannot queue a request");
            return relay_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay_storage",
                "the relay could not store the request; try again",
            );
        }
        Err(e) => {
            tracing::error!(tunnel = %name, error = %e, "queue task failed");
            return relay_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay_storage",
                "the relay could not store the request; try again",
            );
        }
    }
    state.metrics.queued.fetch_add(1, Ordering::Relaxed);
    let (status, custom) = match live {
        Some(tunnel) => {
            tunnel.queued.notify_one();
            (state.config.ack_status, None)
        }
        None => match state.registry.queued_answer(name) {
            Ok(Some(answer)) => (answer.status, answer.body),
            _ => (state.config.queued_status, None),
        },
    };
    let body = match custom {
        Some(template) => template.replace("{id}", &id.to_string()),
        None if live.is_some() => format!("{{\"accepted\":true,\"id\":\"{id}\"}}"),
        None => format!("{{\"queued\":true,\"id\":\"{id}\"}}"),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-hooktunnel-id", value);
    }
    response
}

fn agent_gone() -> Response {
    relay_error(
        StatusCode::BAD_GATEWAY,
        "agent_disconnected",
        "the hooktunnel agent disconnected before answering",
    )
}

fn to_http(answer: protocol::Response) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::new(Body::from(Bytes::clone(&answer.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for h in protocol::strip_hop_by_hop(&answer.headers) {
        if h.name.eq_ignore_ascii_case("content-length") {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_routing_strips_the_prefix() {
        let r = route(None, Some("relay"), "/t/demo/hooks/x?a=1&a=2").map(|r| (r.name, r.target));
        assert_eq!(r, Some(("demo", "/hooks/x?a=1&a=2".into())));
        let r = route(None, None, "/t/demo?x=1").map(|r| (r.name, r.target));
        assert_eq!(r, Some(("demo", "/?x=1".into())));
        let r = route(None, None, "/t/demo").map(|r| (r.name, r.target));
        assert_eq!(r, Some(("demo", "/".into())));
        let r = route(None, None, "/t/demo//evil.example/x").map(|r| (r.name, r.target));
        assert_eq!(r, Some(("demo", "//evil.example/x".into())));
        assert_eq!(route(None, None, "/elsewhere"), None);
    }

    #[test]
    fn host_routing_uses_one_label() {
        let d = Some("hooks.example.com");
        let r = route(d, Some("demo.hooks.example.com:443"), "/x?y").map(|r| (r.name, r.target));
        assert_eq!(r, Some(("demo", "/x?y".into())));
        assert_eq!(route(d, Some("a.b.hooks.example.com"), "/x"), None);
        assert_eq!(route(d, Some("hooks.example.com"), "/x"), None);
    }
}
