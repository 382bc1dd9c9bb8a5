//! What the top bar and the footer say: the inspector's mode, the tunnel's
//! header and link, and the footer notice.

use crate::event::{ConnectionState, Ready};

/// Whether a tunnel runs behind the inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `listen`: agent events arrive live.
    Live,
    /// `inspect`: stored history only.
    Inspect,
}

/// What the top bar shows about the tunnel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Public URL senders use.
    pub public_url: Option<String>,
    /// Local app base URL.
    pub target: Option<String>,
    /// Relay base URL.
    pub relay: Option<String>,
    /// True when the relay runs in this process.
    pub embedded: bool,
    /// The local web inspector's address, when it runs.
    pub web_url: Option<String>,
    /// Names of the further tunnels this agent serves (`listen --all`).
    pub more: Vec<String>,
}

impl From<&Ready> for Header {
    fn from(r: &Ready) -> Self {
        Self {
            public_url: Some(r.public_url.clone()),
            target: Some(r.target.clone()),
            relay: Some(r.relay.clone()),
            embedded: r.embedded,
            web_url: r.web_url.clone(),
            more: r.more.iter().map(|t| t.name.clone()).collect(),
        }
    }
}

/// The tunnel's link, with times as ms since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not up yet.
    Connecting,
    /// Connected and serving.
    Online,
    /// Lost; the next attempt starts at `retry_at_ms`.
    Reconnecting {
        /// Attempts made so far.
        attempt: u32,
        /// When the next attempt starts.
        retry_at_ms: u64,
        /// Why the link was lost.
        reason: String,
    },
    /// Stopped for good.
    Offline(String),
}

impl From<ConnectionState> for Link {
    fn from(state: ConnectionState) -> Self {
        match state {
            ConnectionState::Online => Link::Online,
            ConnectionState::Reconnecting {
                attempt,
                retry_at,
                reason,
            } => Link::Reconnecting {
                attempt,
                retry_at_ms: retry_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                reason,
            },
            ConnectionState::Offline(why) => Link::Offline(why),
        }
    }
}

/// A footer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The text, unescaped.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
    /// When it goes away.
    pub until_ms: u64,
}
