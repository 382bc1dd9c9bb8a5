//! HTTP routes: control routes under `/_hooktunnel/`, everything else is ingress.

mod connect;
pub mod ingress;

use std::net::SocketAddr;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::protocol::{CONNECT_PATH, ERROR_HEADER};
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
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(CONNECT_PATH, get(connect::connect))
        .route("/_hooktunnel/health", get(health))
        .route("/_hooktunnel/metrics", get(metrics))
        .fallback(ingress::ingress)
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
    )
}

/// An answer produced by the relay itself, marked so nobody mistakes it for the app's.
pub fn relay_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(ERROR_HEADER, HeaderValue::from_static(code));
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Marks an answer as the last on its connection (the request body may be
/// unread or the framing untrustworthy).
pub fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    response
}
