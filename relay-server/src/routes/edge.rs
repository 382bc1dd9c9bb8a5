//! A tunnel's edge rules at ingress: who may call is decided here, so a
//! refused request never crosses the tunnel. The checks themselves are pure
//! (`protocol::rules`); this glues them to the relay's state, errors and
//! counters. Refusals reach the agent through the usual refusal notes
//! (`ingress::tell_agent`) and count in the tunnel's `refused` metric.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::body::{BodyLimits, declared_length, read_body};
use crate::error::RelayError;
use crate::memory::Reservation;
use crate::protocol::rules::{EdgeRefusal, EdgeRules};
use crate::protocol::{ERROR_HEADER, HttpErrorCode};
use crate::state::AppState;

/// Checks what is known before the body (client address as the relay
/// trusts it, credentials, required headers). Returns the tunnel's rules
/// for [`verify_body`] and [`offline_answer`].
pub fn admit(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Option<Arc<EdgeRules>>, RelayError> {
    let Some(rules) = state.edge_rules(name) else {
        return Ok(None);
    };
    rules
        .check_head(headers, client)
        .map_err(|refusal| refused(state, name, refusal))?;
    Ok(Some(rules))
}

/// The tunnel's `when-offline` answer, given instead of queueing while its
/// agent is away (nothing is stored).
pub fn offline_answer(rules: Option<&EdgeRules>) -> Option<Response> {
    let answer = rules?.offline.as_ref()?;
    let mut response = Response::new(Body::from(answer.body.clone()));
    *response.status_mut() = StatusCode::from_u16(answer.status).ok()?;
    if let Ok(value) = HeaderValue::from_str(&answer.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        ERROR_HEADER,
        HeaderValue::from_static(HttpErrorCode::Mocked.as_str()),
    );
    Some(response)
}

/// Checks the signature over the whole body, when the tunnel asked for it.
pub fn verify_body(
    state: &AppState,
    name: &str,
    rules: Option<&EdgeRules>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), RelayError> {
    let Some(rules) = rules.filter(|r| r.needs_body()) else {
        return Ok(());
    };
    let now = crate::protocol::now_ms() / 1000;
    rules
        .check_body(headers, body, now)
        .map_err(|refusal| refused(state, name, refusal))
}

fn refused(state: &AppState, name: &str, refusal: EdgeRefusal) -> RelayError {
    state.metrics.edge_refused.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(tunnel = %name, rule = refusal.label(), "edge rule refused a request");
    RelayError::Edge(refusal)
}

/// For a tunnel that verifies signatures at the edge: reads the whole body
/// (memory reserved, bounded by `limits`), checks it, and hands it on as a
/// body to stream; other tunnels' bodies pass untouched. An upgrade carries
/// no body: it is checked as an empty one.
pub async fn read_verified(
    state: &AppState,
    name: &str,
    rules: Option<&EdgeRules>,
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    upgrade: bool,
) -> Result<(Body, Option<Reservation>), RelayError> {
    let Some(rules) = rules.filter(|r| r.needs_body()) else {
        return Ok((body, None));
    };
    if upgrade {
        verify_body(state, name, Some(rules), headers, &[])?;
        return Ok((body, None));
    }
    let wanted = declared_length(headers)
        .unwrap_or(limits.max as u64)
        .min(limits.max as u64);
    let Some(reservation) = state.memory.try_reserve(wanted) else {
        state.metrics.relay_busy.fetch_add(1, Ordering::Relaxed);
        return Err(RelayError::RelayBusy(state.memory.limit()));
    };
    let whole = read_body(limits, headers, body).await?;
    verify_body(state, name, Some(rules), headers, &whole)?;
    Ok((Body::from(whole), Some(reservation)))
}
