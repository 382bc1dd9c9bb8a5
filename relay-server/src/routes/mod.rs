//! HTTP routes: control routes under `/_hooktunnel/`, everything else is ingress.

pub(crate) mod body;
mod budget;
mod connect;
pub(crate) mod edge;
mod guard;
pub mod ingress;
mod link;
mod live;
mod members;
mod release;

use std::net::SocketAddr;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::protocol::CONNECT_PATH;
use crate::state::AppState;

/// What the relay knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// True when the relay terminated TLS for it.
    pub tls: bool,
}

/// The router behind every connection; expects a [`ConnInfo`] extension.
///
/// Every request, routed or not, passes the [`guard`] first.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(CONNECT_PATH, get(connect::connect))
        .route("/_hooktunnel/health", get(health))
        .route("/_hooktunnel/metrics", get(guarded_metrics))
        .fallback(ingress::ingress)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut report = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": crate::protocol::PROTOCOL_VERSION,
        "tunnels": state.tunnel_count(),
        // One agent may serve several tunnels over one connection.
        "agent_connections": state.sessions.len(),
    });
    // Cluster (#15): this node's view of Redis.
    if let Some(cluster) = &state.cluster {
        report["cluster"] = cluster.health().await;
        if report["cluster"]["redis"]["ok"] != serde_json::Value::Bool(true) {
            report["status"] = "degraded".into();
        }
    }
    Json(report)
}

/// The router for `--metrics-listen`: metrics only, no token (the address is the guard).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_hooktunnel/metrics", get(metrics))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Metrics on the public listener: only with `--metrics-token` and the right
/// bearer token (else 401). Without a token they are not served here at all
/// (404, as for any unknown control route), so nothing about the relay's
/// traffic is public by default.
async fn guarded_metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(token) = &state.config.metrics_token else {
        return crate::error::RelayError::NotFound.into_response();
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same: bool = subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), token.as_bytes()).into();
    if !same {
        return crate::error::RelayError::MetricsUnauthorized.into_response();
    }
    metrics(State(state)).await.into_response()
}

/// Prometheus text format counters.
async fn metrics(State(state): State<Arc<AppState>>) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &state.metrics;
    format!(
        "# TYPE hooktunnel_tunnels_connected gauge\nhooktunnel_tunnels_connected {}\n\
         # TYPE hooktunnel_requests_total counter\nhooktunnel_requests_total {}\n\
         # TYPE hooktunnel_queued_total counter\nhooktunnel_queued_total {}\n\
         # TYPE hooktunnel_queue_full_total counter\nhooktunnel_queue_full_total {}\n\
         # TYPE hooktunnel_acked_total counter\nhooktunnel_acked_total {}\n\
         # TYPE hooktunnel_handshakes_refused_total counter\nhooktunnel_handshakes_refused_total {}\n\
         # TYPE hooktunnel_rate_limited_total counter\nhooktunnel_rate_limited_total {}\n\
         # TYPE hooktunnel_tunnel_busy_total counter\nhooktunnel_tunnel_busy_total {}\n\
         # TYPE hooktunnel_client_busy_total counter\nhooktunnel_client_busy_total {}\n\
         # TYPE hooktunnel_body_too_slow_total counter\nhooktunnel_body_too_slow_total {}\n\
         # TYPE hooktunnel_conns_refused_total counter\nhooktunnel_conns_refused_total {}\n\
         # TYPE hooktunnel_accept_errors_total counter\nhooktunnel_accept_errors_total {}\n\
         # TYPE hooktunnel_protocol_errors_total counter\nhooktunnel_protocol_errors_total {}\n\
         # TYPE hooktunnel_edge_refused_total counter\nhooktunnel_edge_refused_total {}\n\
         # TYPE hooktunnel_relay_busy_total counter\nhooktunnel_relay_busy_total {}\n\
         # TYPE hooktunnel_memory_reserved_bytes gauge\nhooktunnel_memory_reserved_bytes {}\n",
        state.tunnel_count(),
        m.requests.load(Relaxed),
        m.queued.load(Relaxed),
        m.queue_full.load(Relaxed),
        m.acked.load(Relaxed),
        m.refused.load(Relaxed),
        m.rate_limited.load(Relaxed),
        m.overloaded.load(Relaxed),
        m.client_busy.load(Relaxed),
        m.body_too_slow.load(Relaxed),
        m.conns_refused.load(Relaxed),
        m.accept_errors.load(Relaxed),
        m.protocol_errors.load(Relaxed),
        m.edge_refused.load(Relaxed),
        m.relay_busy.load(Relaxed),
        state.memory.used(),
    ) + &m.tunnels.render()
        // Cluster (#15): this node's counters.
        + &state
            .cluster
            .as_ref()
            .map(|c| c.metrics.render(&c.config.node_id))
            .unwrap_or_default()
}

#[cfg(test)]
mod tests;
