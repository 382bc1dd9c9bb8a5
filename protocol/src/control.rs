//! Messages beside the tunnel session itself: freeing a name (`release`,
//! `released`) and notes about requests the relay refused (`refused`).

use serde::{Deserialize, Serialize};

/// Sent instead of `hello`: free a tunnel name this key owns (its queue is
/// deleted). The relay answers `released` (or `error`) and closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Protocol version the agent speaks.
    pub version: u32,
    /// The name to free.
    pub name: String,
    /// The agent key that owns it.
    pub key: String,
    /// Only report what would be deleted.
    #[serde(default)]
    pub dry_run: bool,
}

/// The relay's answer to `release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The name.
    pub name: String,
    /// Queued requests deleted with it (or that would be, on a dry run).
    pub queued: u64,
    /// False on a dry run.
    pub released: bool,
}

/// Requests for this tunnel the relay answered itself (too large, rate
/// limited, …) and so never reached the agent; coalesced, at most about one
/// note per second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Requests refused since the last note.
    pub count: u64,
    /// The first few of them.
    pub examples: Vec<RefusedRequest>,
    /// The tunnel they were for, on a connection with several (absent: the
    /// session's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
}

/// One request the relay refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query (tunnel prefix removed), cut to a few hundred bytes.
    pub path: String,
    /// The status the sender got.
    pub status: u16,
    /// The `x-hooktunnel-error` code, e.g. `body_too_large`.
    pub reason: String,
}
