//! Re-sending a stored request through the same forwarder as the live path.

use std::time::Duration;

use bytes::Bytes;

use crate::exchange::{Exchange, Header, now_ms};
use crate::forward::{Forwarder, Outgoing, Target};

/// How to replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Send here instead of the target the request was captured for.
    pub to: Option<Target>,
    /// Local app timeout (default: the forwarder's default).
    pub timeout: Option<Duration>,
}

/// What to send: the original request, possibly edited or re-signed.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body bytes.
    pub body: Bytes,
}

impl ReplayRequest {
    /// The request exactly as it was captured.
    pub fn original(e: &Exchange) -> Self {
        Self {
            method: e.method.clone(),
            path: e.path.clone(),
            headers: e.request_headers.clone(),
            body: e.request_body.clone(),
        }
    }
}

/// Where a replay of `original` goes.
pub fn destination(original: &Exchange, opts: &ReplayOptions) -> anyhow::Result<Target> {
    match &opts.to {
        Some(t) => Ok(t.clone()),
        None => Target::parse(&original.target).map_err(|e| {
            anyhow::anyhow!(
                "the stored target '{}' is unusable ({e}); pass --to URL",
                original.target
            )
        }),
    }
}

/// Sends `request` and returns the new exchange (not yet stored), linked to `original`.
pub async fn send(
    original: &Exchange,
    request: ReplayRequest,
    opts: &ReplayOptions,
) -> anyhow::Result<Exchange> {
    let target = destination(original, opts)?;
    let forwarder = Forwarder::new(
        target.clone(),
        opts.timeout.unwrap_or(crate::forward::DEFAULT_TIMEOUT),
    );
    let received_at_ms = now_ms();
    let forwarded = forwarder
        .forward(Outgoing {
            method: &request.method,
            path: &request.path,
            headers: &request.headers,
            body: request.body.clone(),
        })
        .await;
    Ok(Exchange {
        id: hooktunnel_relay::protocol::next_id(),
        tunnel: original.tunnel.clone(),
        received_at_ms,
        method: request.method,
        path: request.path,
        target: target.base_url(),
        request_headers: request.headers,
        request_body: request.body,
        response: Some(forwarded.response),
        duration_us: forwarded.duration_us,
        error: forwarded.error,
        replay_of: Some(original.id),
        queued: false,
        peer: None,
        public_url: original.public_url.clone(),
        signature: None,
    })
}
