//! hooktunnel's own API under `/api/v1/`; `openapi.json` documents every route.
//!
//! JSON shapes reuse the CLI's: a list row is `requests --json`'s row, one
//! exchange is `show --json`'s object.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::{self, ReplaySpec, ServiceError};
use super::{WebState, sse};
use crate::cli::{StatsArgs, StatsBy};

type AppState = Arc<WebState>;

/// Default and largest page of `GET /api/v1/exchanges`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The OpenAPI document, kept by hand next to the routes (a test checks
/// that both list the same paths).
pub const OPENAPI: &str = include_str!("assets/openapi.json");

/// Every route as (method, path), the list the OpenAPI test compares against.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/status"),
    ("get", "/api/v1/exchanges"),
    ("get", "/api/v1/exchanges/{id}"),
    ("get", "/api/v1/exchanges/{id}/request/body"),
    ("get", "/api/v1/exchanges/{id}/response/body"),
    ("post", "/api/v1/exchanges/{id}/replay"),
    ("get", "/api/v1/exchanges/{id}/curl"),
    ("get", "/api/v1/har"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/openapi.json"),
];

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/exchanges", get(list))
        .route("/api/v1/exchanges/{id}", get(one))
        .route("/api/v1/exchanges/{id}/request/body", get(request_body))
        .route("/api/v1/exchanges/{id}/response/body", get(response_body))
        .route("/api/v1/exchanges/{id}/replay", post(replay))
        .route("/api/v1/exchanges/{id}/curl", get(curl))
        .route("/api/v1/har", get(har))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/events", get(sse::events))
        .route("/api/v1/openapi.json", get(openapi))
}

/// An error as `{"error": message}` with a fitting status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e.status(), e.to_string())
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn status(State(state): State<AppState>) -> Json<Value> {
    let tunnels = state.tunnels();
    let info = |t: &super::TunnelInfo| json!({ "name": t.name, "public_url": t.public_url, "target": t.target });
    Json(json!({
        "tunnel": tunnels.first().map(info),
        "tunnels": tunnels.iter().map(info).collect::<Vec<_>>(),
        "connection": state.connection.read().map(|c| c.clone()).unwrap_or_default(),
        "requests_since_start": state.http_count.load(Ordering::Relaxed),
    }))
}

#[derive(Deserialize)]
struct ListQuery {
    /// The `requests` filter syntax (`method:POST status:4xx stripe`).
    #[serde(default)]
    filter: String,
    /// Cursor: only rows older than this id.
    before: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = service::parse_filter(&q.filter)?;
    let before = q
        .before
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| {
            ulid::Ulid::from_string(b)
                .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("bad cursor {b:?}")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let rows = service::list(&state.db, filter, before, limit).await?;
    let next = if rows.len() == limit {
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let rows: Vec<Value> = rows.iter().map(crate::export::summary_json).collect();
    Ok(Json(json!({ "exchanges": rows, "next": next })))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = service::get(&state.db, service::parse_id(&id)?).await?;
    let mut out = crate::export::json(&e);
    // A replay shows how its answer differs from the original's.
    if let (Some(original), Some(after)) = (e.replay_of, &e.response)
        && let Ok(before) = service::get(&state.db, original).await
    {
        out["difference"] = json!(crate::commands::replay::difference(
            before.response.as_ref(),
            after
        ));
    }
    Ok(Json(out))
}

/// A body as a download: never rendered in our origin, whatever it contains.
fn download(body: Bytes, name: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

async fn request_body(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let e = service::get(&state.db, service::parse_id(&id)?).await?;
    Ok(download(e.request_body, format!("{}-request.bin", e.id)))
}

async fn response_body(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let e = service::get(&state.db, service::parse_id(&id)?).await?;
    let Some(r) = e.response else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "no response was recorded".into(),
        ));
    };
    Ok(download(r.body, format!("{}-response.bin", e.id)))
}

async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<ReplaySpec>>,
) -> Result<Json<Value>, ApiError> {
    let id = service::parse_id(&id)?;
    let spec = body.map(|Json(s)| s).unwrap_or_default();
    let done = service::replay(&state, id, spec).await?;
    let e = &done.exchange;
    Ok(Json(json!({
        "exchange": crate::export::summary_json(&e.summary()),
        "note": done.note,
        "error": e.error,
    })))
}

#[derive(Deserialize)]
struct CurlQuery {
    /// Send to this port or URL instead of the captured target.
    to: Option<String>,
}

async fn curl(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CurlQuery>,
) -> Result<Response, ApiError> {
    let e = service::get(&state.db, service::parse_id(&id)?).await?;
    let base = match q.to.as_deref() {
        Some(to) => crate::forward::Target::parse(to)
            .map_err(|err| ApiError(StatusCode::BAD_REQUEST, format!("bad `to`: {err}")))?
            .base_url(),
        None => e.target.clone(),
    };
    let export = crate::export::curl(&e, &base, None);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        export.script,
    )
        .into_response())
}

#[derive(Deserialize)]
struct HarQuery {
    /// Comma-separated ids; without it, the rows matching `filter`.
    ids: Option<String>,
    #[serde(default)]
    filter: String,
    limit: Option<usize>,
}

async fn har(
    State(state): State<AppState>,
    Query(q): Query<HarQuery>,
) -> Result<Response, ApiError> {
    let exchanges = match q.ids.as_deref().filter(|s| !s.is_empty()) {
        Some(ids) => {
            let ids = ids
                .split(',')
                .map(service::parse_id)
                .collect::<Result<Vec<_>, _>>()?;
            service::get_many(&state.db, ids).await?
        }
        None => {
            let filter = service::parse_filter(&q.filter)?;
            let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
            let rows = service::list(&state.db, filter, None, limit).await?;
            service::get_many(&state.db, rows.into_iter().map(|r| r.id).collect()).await?
        }
    };
    let har = crate::export::har(&exchanges);
    let text = crate::json::to_string_pretty(&har)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"hooktunnel.har\"",
            ),
        ],
        text,
    )
        .into_response())
}

/// Query parameters `GET /api/v1/stats` takes: `stats`' flags by name.
const STATS_PARAMS: &str = "since, path, method, status, by, top, buckets";

/// `stats`' flags with their defaults (parsed from an empty command line,
/// so the API and the CLI cannot drift apart).
#[derive(clap::Parser)]
struct StatsDefaults {
    #[command(flatten)]
    args: StatsArgs,
}

/// `stats --json`'s arguments from a query string; anything unknown,
/// repeated or malformed is a 400 that says what was wrong.
fn stats_args(query: Option<&str>) -> Result<StatsArgs, ApiError> {
    use clap::{Parser as _, ValueEnum as _};
    let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message);
    let mut args = StatsDefaults::try_parse_from(["stats"])
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .args;
    args.json = true;
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if seen.iter().any(|k| *k == key) {
            return Err(bad(format!("parameter `{key}` is given more than once")));
        }
        let value = value.into_owned();
        match key.as_ref() {
            "since" => args.since = value,
            "path" => args.path = Some(value),
            "method" => args.method = Some(value),
            "status" => args.status = Some(value),
            "by" => {
                args.by = Some(StatsBy::from_str(&value, true).map_err(|_| {
                    bad(format!(
                        "bad by {value:?}: expected path, provider or event"
                    ))
                })?)
            }
            "top" => {
                args.top = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad(format!("bad top {value:?}: expected a number from 1")))?
            }
            "buckets" => {
                args.buckets = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=240).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "bad buckets {value:?}: expected a number from 1 to 240"
                        ))
                    })?
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{other}` (known: {STATS_PARAMS})"
                )));
            }
        }
        seen.push(key.into_owned());
    }
    Ok(args)
}

/// `stats --json` over the history: the same report, the same filters.
async fn stats(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::stats::Report>, ApiError> {
    let args = stats_args(query.as_deref())?;
    Ok(Json(service::stats(&state.db, args).await?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(query: &str) -> String {
        match stats_args(Some(query)) {
            Ok(args) => panic!("{query} parsed: {args:?}"),
            Err(ApiError(status, message)) => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
                message
            }
        }
    }

    #[test]
    fn stats_parameters_default_like_the_cli_and_reject_bad_input() {
        let args = stats_args(None).unwrap();
        assert_eq!(
            (args.since.as_str(), args.top, args.buckets, args.by),
            ("1h", 15, 30, None)
        );
        let args = stats_args(Some(
            "since=10m&path=%2Forders%2F**&method=post&status=5xx&by=Provider&top=3&buckets=12",
        ))
        .unwrap();
        assert_eq!(args.since, "10m");
        assert_eq!(args.path.as_deref(), Some("/orders/**"));
        assert_eq!(args.method.as_deref(), Some("post"));
        assert_eq!(args.status.as_deref(), Some("5xx"));
        assert_eq!(args.by, Some(StatsBy::Provider));
        assert_eq!((args.top, args.buckets), (3, 12));
        assert!(message("sinc=1h").contains("unknown parameter `sinc`"));
        assert!(message("since=1h&since=2h").contains("more than once"));
        assert!(message("by=host").contains("expected path, provider or event"));
        assert!(message("top=0").contains("bad top"));
        assert!(message("buckets=241").contains("bad buckets"));
    }
}
