//! What the agent reports: the TUI and the plain printers consume the same events.

use std::time::SystemTime;

use crate::exchange::ExchangeSummary;

/// The tunnel's link to the relay.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectionState {
    /// Connected and serving.
    Online,
    /// Lost; the next attempt happens at `retry_at`.
    Reconnecting {
        /// Attempts made so far.
        attempt: u32,
        /// When the next attempt starts.
        retry_at: SystemTime,
        /// Why the last attempt or connection failed.
        reason: String,
    },
    /// Stopped for good (bad token, name taken, shutdown).
    Offline(String),
}

/// Facts printed once the tunnel is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// Public URL senders should use.
    pub public_url: String,
    /// Local app base URL.
    pub target: String,
    /// Relay base URL.
    pub relay: String,
    /// True when the relay runs inside this process (loopback only).
    pub embedded: bool,
    /// The local web inspector's address, when it runs.
    pub web_url: Option<String>,
    /// Further tunnels this agent serves over the same connection
    /// (`listen --all`); the fields above are its first tunnel's.
    pub more: Vec<TunnelUrl>,
}

/// One further tunnel of an agent serving several.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelUrl {
    /// Its name.
    pub name: String,
    /// Its public URL.
    pub public_url: String,
    /// Its local app's base URL.
    pub target: String,
}

/// One thing that happened in the agent.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    /// The tunnel is up (first connection).
    Ready(Ready),
    /// The connection changed state.
    Connection(ConnectionState),
    /// An exchange finished and was recorded.
    Exchange(ExchangeSummary),
    /// Something worth a line in the log or the status bar (retries, give-ups).
    Notice(String),
}
