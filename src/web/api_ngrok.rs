//! The subset of ngrok's agent API (`http://127.0.0.1:4040/api`) that
//! scripts use, with ngrok's paths and JSON shapes, so
//! `curl -s localhost:4040/api/tunnels | jq -r '.tunnels[0].public_url'` works.
//!
//! Differences: ids are hooktunnel's ULIDs; `metrics` counts requests since
//! start (`http.count`) and leaves rates and percentiles at 0; `raw` is the
//! message as hooktunnel rebuilt it from what it stored (HTTP/1.1 framing).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::rfc3339_ms;
use crate::exchange::{Exchange, Header};

use super::service::{self, ServiceError};
use super::{TunnelInfo, WebState};

type AppState = Arc<WebState>;

/// Default and largest `limit` of `GET /api/requests/http`.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// The routes under `/api`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api", get(root))
        .route("/api/", get(root))
        .route("/api/tunnels", get(tunnels))
        .route("/api/tunnels/{name}", get(tunnel))
        .route(
            "/api/requests/http",
            get(requests).post(replay).delete(clear),
        )
        .route("/api/requests/http/{id}", get(request))
}

/// An error in ngrok's shape.
struct NgrokError(StatusCode, String);

impl IntoResponse for NgrokError {
    fn into_response(self) -> Response {
        let body = json!({
            "error_code": 100 + u32::from(self.0.as_u16() / 100),
            "status_code": self.0.as_u16(),
            "msg": self.1,
            "details": {},
        });
        (self.0, Json(body)).into_response()
    }
}

impl From<ServiceError> for NgrokError {
    fn from(e: ServiceError) -> Self {
        Self(e.status(), e.to_string())
    }
}

async fn root() -> Json<Value> {
    Json(json!({
        "uri": "/api",
        "tunnels": "/api/tunnels",
        "requests": "/api/requests/http",
        "v1": "/api/v1/openapi.json",
    }))
}

fn zero_metrics() -> Value {
    json!({ "count": 0, "rate1": 0.0, "rate5": 0.0, "rate15": 0.0,
            "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0 })
}

/// One tunnel as ngrok describes it.
pub fn tunnel_json(t: &TunnelInfo, http_count: u64) -> Value {
    let proto = if t.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut conns = zero_metrics();
    conns["gauge"] = json!(0);
    let mut http = zero_metrics();
    http["count"] = json!(http_count);
    json!({
        "ID": t.name,
        "name": t.name,
        "uri": format!("/api/tunnels/{}", t.name),
        "public_url": t.public_url,
        "proto": proto,
        "config": { "addr": t.target, "inspect": true },
        "metrics": { "conns": conns, "http": http },
    })
}

async fn tunnels(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = state
        .tunnels()
        .iter()
        .map(|t| tunnel_json(t, state.http_count_of(&t.name)))
        .collect();
    Json(json!({ "tunnels": list, "uri": "/api/tunnels" }))
}

async fn tunnel(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, NgrokError> {
    match state.find_tunnel(&name) {
        Some(t) => Ok(Json(tunnel_json(&t, state.http_count_of(&t.name)))),
        None => Err(NgrokError(
            StatusCode::NOT_FOUND,
            format!("tunnel not found: {name}"),
        )),
    }
}

/// Go's canonical header key (`content-type` → `Content-Type`), as ngrok prints them.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn headers_map(headers: &[Header]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in headers {
        map.entry(canonical(&h.name))
            .or_default()
            .push(h.value_lossy().into_owned());
    }
    map
}

fn push_head(out: &mut Vec<u8>, first: &str, headers: &[Header]) {
    out.extend_from_slice(first.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The request as an HTTP/1.1 message: request line, headers in order, body.
pub fn raw_request(e: &Exchange) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.request_body.len() + 256);
    push_head(
        &mut out,
        &format!("{} {} HTTP/1.1", e.method, e.path),
        &e.request_headers,
    );
    out.extend_from_slice(&e.request_body);
    out
}

fn status_text(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_owned()
}

/// One captured request as ngrok's `/api/requests/http/{id}` returns it.
pub fn request_json(e: &Exchange) -> Value {
    let id = e.id.to_string();
    let response = e.response.as_ref().map_or(Value::Null, |r| {
        let mut raw = Vec::with_capacity(r.body.len() + 256);
        push_head(
            &mut raw,
            &format!("HTTP/1.1 {}", status_text(r.status)),
            &r.headers,
        );
        raw.extend_from_slice(&r.body);
        json!({
            "status": status_text(r.status),
            "status_code": r.status,
            "proto": "HTTP/1.1",
            "headers": headers_map(&r.headers),
            "raw": BASE64_STANDARD.encode(raw),
            "truncated": crate::export::truncation_json(r.truncated.as_ref()),
        })
    });
    json!({
        "uri": format!("/api/requests/http/{id}"),
        "id": id,
        "tunnel_name": e.tunnel,
        "remote_addr": e.peer.clone().unwrap_or_default(),
        "start": rfc3339_ms(e.received_at_ms),
        "duration": e.duration_us.saturating_mul(1000),
        "request": {
            "method": e.method,
            "proto": "HTTP/1.1",
            "headers": headers_map(&e.request_headers),
            "uri": e.path,
            "raw": BASE64_STANDARD.encode(raw_request(e)),
            "truncated": crate::export::truncation_json(e.request_truncated.as_ref()),
        },
        "response": response,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    tunnel_name: Option<String>,
}

async fn requests(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, NgrokError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let rows = match q.tunnel_name.as_deref().filter(|n| !n.is_empty()) {
        None => service::list_full(&state.db, limit).await?,
        // The newest `limit` of that tunnel, however far back they are;
        // a name no tunnel can have matches nothing.
        Some(name) => match crate::filter::Filter::default().with_tunnels([name]) {
            Ok(filter) => {
                let rows = service::list(&state.db, filter, None, limit).await?;
                service::get_many(&state.db, rows.iter().map(|r| r.id).collect()).await?
            }
            Err(_) => Vec::new(),
        },
    };
    let list: Vec<Value> = rows.iter().map(request_json).collect();
    Ok(Json(
        json!({ "uri": "/api/requests/http", "requests": list }),
    ))
}

async fn request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, NgrokError> {
    let e = service::get(&state.db, service::parse_id(&id)?).await?;
    Ok(Json(request_json(&e)))
}

#[derive(Deserialize)]
struct ReplayBody {
    id: String,
}

async fn replay(
    State(state): State<AppState>,
    body: Result<Json<ReplayBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, NgrokError> {
    let Json(body) = body.map_err(|e| NgrokError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let id = service::parse_id(&body.id)?;
    service::replay(&state, id, service::ReplaySpec::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clear(State(state): State<AppState>) -> Result<StatusCode, NgrokError> {
    service::clear(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}
