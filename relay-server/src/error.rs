//! Every answer the relay produces itself, as one type.
//!
//! Each variant knows its status, its [`HttpErrorCode`] (sent in
//! `x-hooktunnel-error` so nobody mistakes it for the app's answer) and its
//! message; [`IntoResponse`] turns it into the response.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::MAX_URI_BYTES;
use crate::name::NameError;
use crate::protocol::rules::EdgeRefusal;
use crate::protocol::{ERROR_HEADER, HttpErrorCode};

/// An answer the relay gives instead of the app's.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The request target is longer than [`MAX_URI_BYTES`].
    #[error("the request target is {0} bytes; this relay accepts at most {MAX_URI_BYTES}")]
    UriTooLong(usize),
    /// More than one `Host` header.
    #[error("more than one Host header")]
    AmbiguousHost,
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding")]
    AmbiguousLength,
    /// An HTTP/1.1 request without `Host`.
    #[error("an HTTP/1.1 request must carry a Host header (RFC 9112 section 3.2)")]
    MissingHost,
    /// A rate limit; `what` names whose ("from this address", "for this tunnel").
    #[error("too many requests {what}; retry after {} s", retry_after_secs(*.wait))]
    RateLimited {
        /// Whose requests were limited.
        what: &'static str,
        /// How long until the next request may go ahead.
        wait: Duration,
    },
    /// The body exceeds the relay's limit (bytes).
    #[error("request body exceeds the relay's {0}-byte limit")]
    BodyTooLarge(usize),
    /// The body could not be read.
    #[error("the request body could not be read (connection cut or malformed chunked encoding)")]
    BadBody,
    /// The body did not arrive within the given time.
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    /// The body arrived slower than the minimum rate (bytes/s).
    #[error("the request body arrived slower than {0} bytes/s; send it at full speed")]
    BodyTooSlow(u64),
    /// A body too large to queue while the agent is away (bytes).
    #[error(
        "the tunnel's agent is not taking live requests, so this request would be queued, and queued bodies may be at most {0} bytes (relay: --queue-max-entry); retry when the agent is connected"
    )]
    QueuedBodyTooLarge(usize),
    /// The tunnel name breaks the naming rules.
    #[error("no such tunnel: {0}")]
    InvalidTunnelName(NameError),
    /// An unknown control route under `/_hooktunnel/`.
    #[error("no such hooktunnel control route")]
    NotFound,
    /// The URL names no tunnel.
    #[error("no tunnel here: tunnel URLs look like /t/<name>/...")]
    NoTunnel,
    /// The relay's own storage failed; the text says what could not be done.
    #[error("the relay {0}; try again")]
    Storage(&'static str),
    /// No agent holds the tunnel and nothing queues for it.
    #[error("no agent is connected for tunnel '{0}'")]
    UnknownTunnel(String),
    /// Too many requests already wait for the tunnel's agent.
    #[error("tunnel '{name}' already has {max} requests waiting for its agent; retry shortly")]
    TunnelBusy {
        /// The tunnel.
        name: String,
        /// Its in-flight limit.
        max: usize,
    },
    /// This client address already holds its share of the tunnel's in-flight slots.
    #[error(
        "tunnel '{name}' already has {max} requests from your address waiting for its agent; retry shortly"
    )]
    ClientBusy {
        /// The tunnel.
        name: String,
        /// The per-address limit.
        max: usize,
    },
    /// The agent's answer broke the protocol (the text says how).
    #[error("the hooktunnel agent sent an invalid answer: {0}")]
    ProtocolError(String),
    /// Metrics asked for without the metrics token.
    #[error("metrics need `Authorization: Bearer <token>` with the relay's --metrics-token")]
    MetricsUnauthorized,
    /// The tunnel's offline queue is at a limit.
    #[error("tunnel '{name}' cannot take more requests: {reason}")]
    QueueFull {
        /// The tunnel.
        name: String,
        /// Which limit.
        reason: String,
    },
    /// The agent went away before answering.
    #[error("the hooktunnel agent disconnected before answering")]
    AgentDisconnected,
    /// The agent did not answer in time.
    #[error("the hooktunnel agent did not answer in time")]
    AgentTimeout,
    /// The relay-wide budget for buffered bodies is spent.
    #[error(
        "the relay is at its memory budget for request and response bodies ({} MiB, --memory-budget); retry in a moment", .0 / (1024 * 1024)
    )]
    RelayBusy(u64),
    /// The agent connect request lacks a valid token.
    #[error(
        "missing or wrong relay token: the agent must send `Authorization: Bearer <token>` with a token this relay accepts (agent: --token or HOOKTUNNEL_TOKEN; relay: --token or --tokens-file)"
    )]
    Unauthorized,
    /// The tunnel's edge rules refused the request (basic auth, IP, header, signature).
    #[error("{0}")]
    Edge(crate::protocol::rules::EdgeRefusal),
    /// The agent endpoint was asked for something other than a WebSocket.
    #[error(
        "this is the hooktunnel agent endpoint: it takes a WebSocket upgrade (version 13) from `hooktunnel listen --relay URL`"
    )]
    NotWebsocket,
}

impl RelayError {
    /// The machine-readable code for `x-hooktunnel-error`.
    pub fn code(&self) -> HttpErrorCode {
        match self {
            Self::UriTooLong(_) => HttpErrorCode::UriTooLong,
            Self::AmbiguousHost => HttpErrorCode::AmbiguousHost,
            Self::AmbiguousLength => HttpErrorCode::AmbiguousLength,
            Self::MissingHost => HttpErrorCode::MissingHost,
            Self::BodyTooSlow(_) => HttpErrorCode::BodyTooSlow,
            Self::QueuedBodyTooLarge(_) => HttpErrorCode::BodyTooLarge,
            Self::ClientBusy { .. } => HttpErrorCode::ClientBusy,
            Self::ProtocolError(_) => HttpErrorCode::ProtocolError,
            Self::MetricsUnauthorized => HttpErrorCode::Unauthorized,
            Self::RateLimited { .. } => HttpErrorCode::RateLimited,
            Self::BodyTooLarge(_) => HttpErrorCode::BodyTooLarge,
            Self::BadBody => HttpErrorCode::BadBody,
            Self::BodyTimeout(_) => HttpErrorCode::BodyTimeout,
            Self::InvalidTunnelName(_) => HttpErrorCode::InvalidTunnelName,
            Self::NotFound => HttpErrorCode::NotFound,
            Self::NoTunnel => HttpErrorCode::NoTunnel,
            Self::Storage(_) => HttpErrorCode::RelayStorage,
            Self::UnknownTunnel(_) => HttpErrorCode::UnknownTunnel,
            Self::TunnelBusy { .. } => HttpErrorCode::TunnelBusy,
            Self::QueueFull { .. } => HttpErrorCode::QueueFull,
            Self::AgentDisconnected => HttpErrorCode::AgentDisconnected,
            Self::AgentTimeout => HttpErrorCode::AgentTimeout,
            Self::RelayBusy(_) => HttpErrorCode::RelayBusy,
            Self::Unauthorized => HttpErrorCode::Unauthorized,
            Self::NotWebsocket => HttpErrorCode::NotWebsocket,
            Self::Edge(refusal) => match refusal {
                EdgeRefusal::BasicAuth => HttpErrorCode::BasicAuth,
                EdgeRefusal::IpDenied(_) | EdgeRefusal::IpNotAllowed(_) => HttpErrorCode::IpRefused,
                EdgeRefusal::MissingHeader(_) => HttpErrorCode::HeaderRequired,
                EdgeRefusal::Signature { .. } => HttpErrorCode::SignatureRefused,
            },
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::AmbiguousHost
            | Self::AmbiguousLength
            | Self::MissingHost
            | Self::BadBody
            | Self::NotWebsocket => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } | Self::ClientBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge(_) | Self::QueuedBodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) | Self::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::ProtocolError(_) => StatusCode::BAD_GATEWAY,
            Self::MetricsUnauthorized => StatusCode::UNAUTHORIZED,
            Self::InvalidTunnelName(_)
            | Self::NotFound
            | Self::NoTunnel
            | Self::UnknownTunnel(_) => StatusCode::NOT_FOUND,
            Self::Storage(_) | Self::TunnelBusy { .. } | Self::RelayBusy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::QueueFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::AgentDisconnected => StatusCode::BAD_GATEWAY,
            Self::AgentTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            // A required header is no HTTP authentication scheme (nothing to
            // put in `WWW-Authenticate`), so it is 403, like an address.
            Self::Edge(EdgeRefusal::BasicAuth | EdgeRefusal::Signature { .. }) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Edge(_) => StatusCode::FORBIDDEN,
        }
    }

    /// True when the answer must end the connection: the request body may be
    /// unread or its framing untrustworthy.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::UriTooLong(_)
                | Self::AmbiguousHost
                | Self::AmbiguousLength
                | Self::MissingHost
                | Self::BodyTooLarge(_)
                | Self::QueuedBodyTooLarge(_)
                | Self::BadBody
                | Self::BodyTimeout(_)
                | Self::BodyTooSlow(_)
                | Self::Unauthorized
                | Self::NotWebsocket
                // Refused before its body was read.
                | Self::Edge(
                    EdgeRefusal::BasicAuth
                        | EdgeRefusal::IpDenied(_)
                        | EdgeRefusal::IpNotAllowed(_)
                        | EdgeRefusal::MissingHeader(_)
                )
        )
    }

    /// Seconds for `Retry-After`, when the sender should retry.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { wait, .. } => Some(retry_after_secs(*wait)),
            Self::TunnelBusy { .. } | Self::ClientBusy { .. } | Self::RelayBusy(_) => Some(1),
            _ => None,
        }
    }
}

/// Whole seconds to put in `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.code().as_str()));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if matches!(self, Self::Edge(EdgeRefusal::BasicAuth)) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hooktunnel\", charset=\"UTF-8\""),
            );
        }
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(59_001)), 60);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn a_response_carries_status_code_header_and_hints() {
        let response = RelayError::RateLimited {
            what: "for this tunnel",
            wait: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let headers = response.headers();
        assert_eq!(headers[ERROR_HEADER], "rate_limited");
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert!(headers.get(header::CONNECTION).is_none());
        let response = RelayError::BodyTooLarge(10).into_response();
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
