//! The work behind both APIs: reading the history, replaying, exporting.
//! Everything calls the code the CLI and TUI use (`requests::scan`,
//! `replay::send`, `export::*`); store access runs on the blocking pool.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use serde::Deserialize;
use ulid::Ulid;

use crate::cli::StatsArgs;
use crate::clock::now_ms;
use crate::commands::stats::StatsError;
use crate::exchange::{Exchange, ExchangeSummary, Header};
use crate::filter::Filter;
use crate::forward::Target;
use crate::replay::{self, ReplayOptions, ReplayRequest};
use crate::stats::Report;
use crate::store::{Direction, Store, StoreError};

use super::{WebEvent, WebState};

/// What went wrong, mapped to a status by the handlers.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such exchange.
    #[error("no exchange {0} in the history")]
    NotFound(String),
    /// The caller asked for something malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The store or the replay failed.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl ServiceError {
    /// The HTTP status both APIs answer this error with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            other => Self::Internal(other.into()),
        }
    }
}

/// Runs `f` with a fresh read connection on the blocking pool.
pub async fn with_store<T: Send + 'static>(
    db: &Path,
    f: impl FnOnce(&mut Store) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let db: PathBuf = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&db)
            .context("cannot open the history")
            .map_err(ServiceError::Internal)?;
        f(&mut store)
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
}

/// Parses an id from a path or body.
pub fn parse_id(id: &str) -> Result<Ulid, ServiceError> {
    Ulid::from_string(id).map_err(|_| ServiceError::NotFound(id.to_owned()))
}

/// Parses the `requests` filter syntax.
pub fn parse_filter(query: &str) -> Result<Filter, ServiceError> {
    Filter::parse(query, now_ms()).map_err(|e| ServiceError::BadRequest(e.to_string()))
}

/// Up to `limit` rows matching `filter`, newest first, strictly older than `before`.
pub async fn list(
    db: &Path,
    filter: Filter,
    before: Option<Ulid>,
    limit: usize,
) -> Result<Vec<ExchangeSummary>, ServiceError> {
    with_store(db, move |store| {
        Ok(crate::commands::requests::scan(
            store,
            &filter,
            limit,
            |row| before.is_none_or(|b| row.id < b),
        )?)
    })
    .await
}

/// Full exchanges, newest first (for the ngrok list, which carries raw messages).
pub async fn list_full(db: &Path, limit: usize) -> Result<Vec<Exchange>, ServiceError> {
    with_store(db, move |store| {
        let mut full = Vec::new();
        for row in store.page(Bound::Unbounded, Direction::Older, limit)? {
            // A row evicted between the two reads is simply left out.
            if let Some(ex) = store.get(&row.id)? {
                full.push(ex);
            }
        }
        Ok(full)
    })
    .await
}

/// One exchange.
pub async fn get(db: &Path, id: Ulid) -> Result<Exchange, ServiceError> {
    with_store(db, move |store| {
        store
            .get(&id)?
            .ok_or_else(|| ServiceError::NotFound(id.to_string()))
    })
    .await
}

/// Several exchanges, in the order given; unknown ids are skipped.
pub async fn get_many(db: &Path, ids: Vec<Ulid>) -> Result<Vec<Exchange>, ServiceError> {
    with_store(db, move |store| {
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(e) = store.get(id)? {
                out.push(e);
            }
        }
        Ok(out)
    })
    .await
}

/// The stats report `args` ask for, as `stats --json` prints it; a window
/// or filter that does not parse is a [`ServiceError::BadRequest`].
pub async fn stats(db: &Path, args: StatsArgs) -> Result<Report, ServiceError> {
    let db: PathBuf = db.to_owned();
    tokio::task::spawn_blocking(move || {
        crate::commands::stats::compute_at(&db, &args, now_ms()).map_err(|e| match e {
            StatsError::BadInput(e) => ServiceError::BadRequest(e.to_string()),
            StatsError::History(e) => ServiceError::Internal(e),
        })
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
}

/// Deletes the history; returns how many exchanges went.
pub async fn clear(db: &Path) -> Result<u64, ServiceError> {
    with_store(db, |store| Ok(store.clear()?)).await
}

/// A replay as asked for over the API: every field optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// Send here instead of the captured target (a port or URL).
    #[serde(default)]
    pub to: Option<String>,
    /// Re-sign with a configured secret for the provider the headers name.
    #[serde(default)]
    pub resign: bool,
    /// Replacement method.
    #[serde(default)]
    pub method: Option<String>,
    /// Replacement path and query.
    #[serde(default)]
    pub path: Option<String>,
    /// Replacement headers, `[[name, value], …]`, in order.
    #[serde(default)]
    pub headers: Option<Vec<(String, String)>>,
    /// Replacement body (UTF-8 text).
    #[serde(default)]
    pub body: Option<String>,
}

/// The outcome of a replay.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// The stored replay.
    pub exchange: Exchange,
    /// Re-signing note, when it applied.
    pub note: Option<String>,
}

/// Replays `id` as `spec` says, stores the result and tells open pages.
pub async fn replay(
    state: &WebState,
    id: Ulid,
    spec: ReplaySpec,
) -> Result<Replayed, ServiceError> {
    let original = get(&state.db, id).await?;
    let mut request = ReplayRequest::original(&original);
    if let Some(method) = spec.method.filter(|m| !m.trim().is_empty()) {
        request.method = method.trim().to_ascii_uppercase();
    }
    if let Some(path) = spec.path {
        if !path.starts_with('/') {
            return Err(ServiceError::BadRequest(format!(
                "path must start with '/': {path:?}"
            )));
        }
        request.path = path;
    }
    if let Some(headers) = spec.headers {
        request.headers = headers
            .into_iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
    }
    if let Some(body) = spec.body {
        request.body = Bytes::from(body);
        for h in &mut request.headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                h.value = request.body.len().to_string().into_bytes();
            }
        }
    }
    let mut note = None;
    if spec.resign {
        note = match replay::resign_if_configured(
            &state.secrets,
            &original,
            &mut request,
            now_ms() / 1000,
        ) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return Err(ServiceError::BadRequest(e)),
            None => {
                Some("not re-signed: no configured secret for this request's provider".to_owned())
            }
        };
    }
    let opts = ReplayOptions {
        to: spec
            .to
            .as_deref()
            .map(Target::parse)
            .transpose()
            .map_err(|e| ServiceError::BadRequest(format!("bad `to`: {e}")))?,
        timeout: None,
        insecure_local: false,
    };
    let exchange = replay::send(&original, request, &opts)
        .await
        .map_err(|e| ServiceError::BadRequest(format!("{e:#}")))?;
    let stored = exchange.clone();
    with_store(&state.db, move |store| {
        store
            .insert(&stored)
            .context("the replay was sent but could not be stored")
            .map_err(ServiceError::Internal)
    })
    .await?;
    let _ = state.events.send(WebEvent::Replayed {
        summary: exchange.summary(),
        note: note.clone(),
    });
    Ok(Replayed { exchange, note })
}
