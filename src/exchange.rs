//! The domain record: one request and what came back, as stored and shown.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::capture::Truncation;

pub use hooktunnel_protocol::Header;

// Re-exported for existing callers; the clock lives in `crate::clock`.

/// The local app's answer (or hooktunnel's own 502/504 when it had none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers in order, duplicates kept.
    pub headers: Vec<Header>,
    /// Body bytes as captured: the whole body, or its head when `truncated`.
    pub body: Bytes,
    /// Set when the history holds only the head of the body (see [`crate::capture`]).
    pub truncated: Option<Truncation>,
}

/// A signature check's outcome, stored with the exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureVerdict {
    /// Provider name as used on the command line (`github`, `stripe`, …).
    pub provider: String,
    /// Whether the signature verified.
    pub valid: bool,
    /// Why it did not verify (or a note when it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One captured request and its outcome; everything needed to replay it exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// Relay-assigned ULID (replays get a fresh one).
    pub id: Ulid,
    /// Tunnel name the request arrived on (empty for replays sent elsewhere).
    pub tunnel: String,
    /// Receive time, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query as sent to the local app.
    pub path: String,
    /// Base URL of the local app it was forwarded to, e.g. `http://127.0.0.1:3000`.
    pub target: String,
    /// Request headers in arrival order.
    pub request_headers: Vec<Header>,
    /// Request body bytes as captured: the whole body, or its head when
    /// `request_truncated`.
    pub request_body: Bytes,
    /// Set when the history holds only the head of the request body.
    pub request_truncated: Option<Truncation>,
    /// True when the history store fell behind and this exchange was
    /// recorded without its bodies (heads, sizes and SHA-256 kept).
    pub capture_degraded: bool,
    /// The answer, when one came back.
    pub response: Option<ExchangeResponse>,
    /// Time from forwarding to the last response byte, microseconds.
    pub duration_us: u64,
    /// What went wrong, when something did (connection refused, timeout, …).
    pub error: Option<String>,
    /// For replays: the exchange this one re-sent.
    pub replay_of: Option<Ulid>,
    /// True when the request waited in the relay's queue.
    pub queued: bool,
    /// Sender address seen by the relay.
    pub peer: Option<String>,
    /// Full public URL the sender used.
    pub public_url: Option<String>,
    /// Signature verdict, when verification is configured.
    pub signature: Option<SignatureVerdict>,
    /// Times the request was sent to the local app: 1, or more when a
    /// durable delivery was retried against a failing app.
    pub attempts: u32,
}

impl Exchange {
    /// Response status, if any.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// Duration in milliseconds, for display and JSON.
    pub fn duration_ms(&self) -> f64 {
        (self.duration_us as f64 / 100.0).round() / 10.0
    }

    /// Whether a body is held only in part (request or response).
    pub fn truncated(&self) -> bool {
        self.request_truncated.is_some()
            || self
                .response
                .as_ref()
                .is_some_and(|r| r.truncated.is_some())
    }

    /// Why this exchange cannot be replayed as it was sent: its request
    /// body is not held whole. The message names the limit and the flag.
    pub fn replay_refusal(&self) -> Option<String> {
        let t = self.request_truncated.as_ref()?;
        Some(if self.capture_degraded {
            format!(
                "cannot replay {}: its request body ({}) was not recorded because the history store fell behind; only its size and SHA-256 ({}…) were kept",
                self.id,
                crate::output::size(t.total_bytes),
                t.short_sha()
            )
        } else {
            format!(
                "cannot replay {}: its request body was truncated at {} of {} (--capture-max); raise --capture-max to capture it whole",
                self.id,
                crate::output::size(t.limit),
                crate::output::size(t.total_bytes)
            )
        })
    }

    /// The light view used by lists.
    pub fn summary(&self) -> ExchangeSummary {
        ExchangeSummary {
            id: self.id,
            tunnel: self.tunnel.clone(),
            received_at_ms: self.received_at_ms,
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status(),
            duration_ms: self.duration_ms(),
            request_bytes: self.request_body.len() as u64,
            response_bytes: self.response.as_ref().map_or(0, |r| r.body.len() as u64),
            error: self.error.clone(),
            replay_of: self.replay_of,
            queued: self.queued,
            signature: self.signature.clone(),
        }
    }
}

/// What a list row needs: no headers, no bodies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExchangeSummary {
    /// Exchange id.
    pub id: Ulid,
    /// The tunnel it came through (its name).
    pub tunnel: String,
    /// Receive time, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Request body size.
    pub request_bytes: u64,
    /// Response body size.
    pub response_bytes: u64,
    /// Error, if any.
    pub error: Option<String>,
    /// Original exchange, for replays.
    pub replay_of: Option<Ulid>,
    /// Delivered from the relay's offline queue.
    pub queued: bool,
    /// Signature verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureVerdict>,
}
