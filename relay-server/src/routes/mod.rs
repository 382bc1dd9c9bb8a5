//! HTTP routes: control routes under `/_hooktunnel/`, everything else is ingress.

mod connect;
mod ingress;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::protocol::{CONNECT_PATH, ERROR_HEADER};
use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(CONNECT_PATH, get(connect::connect))
        .route("/_hooktunnel/health", get(health))
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
