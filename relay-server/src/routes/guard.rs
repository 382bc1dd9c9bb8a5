//! Checks every request passes before routing: URL length (414), exactly one
//! `Host` on HTTP/1.1 (400), unambiguous framing (400) and the per-IP rate (429).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::ConnInfo;
use crate::config::MAX_URI_BYTES;
use crate::error::RelayError;
use crate::state::AppState;
use crate::{forwarded, limit};

/// Middleware: refuses what [`check`] refuses, else runs the route.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    Extension(info): Extension<ConnInfo>,
    req: Request,
    next: Next,
) -> Response {
    let host_required = req.version() == axum::http::Version::HTTP_11;
    match check(&state, info, req.uri(), req.headers(), host_required) {
        Err(refused) => refused.into_response(),
        Ok(()) => next.run(req).await,
    }
}

fn check(
    state: &AppState,
    info: ConnInfo,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    host_required: bool,
) -> Result<(), RelayError> {
    let target_len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URI_BYTES {
        return Err(RelayError::UriTooLong(target_len));
    }
    match headers.get_all(header::HOST).iter().count() {
        // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
        0 if host_required => return Err(RelayError::MissingHost),
        0 | 1 => {}
        _ => return Err(RelayError::AmbiguousHost),
    }
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return Err(RelayError::AmbiguousLength);
    }
    if let Some(limiter) = &state.ip_limiter {
        let ip = forwarded::client_ip(headers, info.peer.ip(), state.config.trust_proxy);
        if let Err(wait) = limiter.check(&limit::ip_key(ip)) {
            state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(RelayError::RateLimited {
                what: "from this address",
                wait,
            });
        }
    }
    Ok(())
}
