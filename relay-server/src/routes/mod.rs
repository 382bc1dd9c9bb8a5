//! HTTP routes: control routes under `/_hooktunnel/`, everything else is ingress.

mod connect;
mod guard;
pub mod ingress;

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
        .route("/_hooktunnel/metrics", get(metrics))
        .fallback(ingress::ingress)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": crate::protocol::PROTOCOL_VERSION,
        "tunnels": state.tunnel_count(),
    }))
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
         # TYPE hooktunnel_tunnel_busy_total counter\nhooktunnel_tunnel_busy_total {}\n",
        state.tunnel_count(),
        m.requests.load(Relaxed),
        m.queued.load(Relaxed),
        m.queue_full.load(Relaxed),
        m.acked.load(Relaxed),
        m.refused.load(Relaxed),
        m.rate_limited.load(Relaxed),
        m.overloaded.load(Relaxed),
    ) + &m.tunnels.render()
}

#[cfg(test)]
mod tests;
