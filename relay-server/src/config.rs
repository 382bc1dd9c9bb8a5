//! Relay settings, validated once and shared read-only.

use std::path::PathBuf;
use std::time::Duration;

/// Default cap on one request body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default time the relay waits for an agent's answer before replying 504.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default per-tunnel queue bounds.
pub const DEFAULT_QUEUE_MAX_COUNT: u64 = 10_000;
/// Default per-tunnel queue bytes: 256 MiB.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default age after which queued requests are dropped: 7 days.
pub const DEFAULT_QUEUE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an agent has to send `hello` after the upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the relay needs to run.
#[derive(Clone)]
pub struct RelayConfig {
    /// URL to advertise (behind a proxy or TLS terminator); defaults to `http://<listen addr>`.
    pub public_url: Option<String>,
    /// Base domain for `<name>.<domain>` routing.
    pub domain: Option<String>,
    /// Accepted agent tokens; empty means no authentication.
    pub tokens: Vec<String>,
    /// Directory for durable state.
    pub data_dir: Option<PathBuf>,
    /// Largest request body accepted from senders.
    pub max_body_bytes: usize,
    /// How long to wait for the agent's answer.
    pub response_timeout: Duration,
    /// Bounds on each tunnel's offline queue.
    pub queue_limits: crate::durable::QueueLimits,
    /// Status for requests queued while the agent is away (tunnels may override).
    pub queued_status: u16,
    /// Status for requests accepted in ack mode.
    pub ack_status: u16,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            domain: None,
            tokens: Vec::new(),
            data_dir: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            queue_limits: crate::durable::QueueLimits {
                max_count: DEFAULT_QUEUE_MAX_COUNT,
                max_bytes: DEFAULT_QUEUE_MAX_BYTES,
                max_age: DEFAULT_QUEUE_MAX_AGE,
            },
            queued_status: 202,
            ack_status: 200,
        }
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: show how many, never what.
        f.debug_struct("RelayConfig")
            .field("public_url", &self.public_url)
            .field("domain", &self.domain)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("data_dir", &self.data_dir)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("response_timeout", &self.response_timeout)
            .field("queue_limits", &self.queue_limits)
            .field("queued_status", &self.queued_status)
            .field("ack_status", &self.ack_status)
            .finish()
    }
}
