//! The codes in the `x-hooktunnel-error` header: hooktunnel (the relay or the
//! agent), not the app, produced this answer, and here is why.

use std::fmt;
use std::str::FromStr;

/// Declares the codes once; `as_str`, `FromStr` and `ALL` come from one list.
macro_rules! http_error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $text:literal,)*) => {
        /// Why hooktunnel answered a sender itself (the `x-hooktunnel-error` value).
        ///
        /// ```
        /// use hooktunnel_protocol::HttpErrorCode;
        /// let code: HttpErrorCode = "local_unreachable".parse().unwrap();
        /// assert_eq!(code, HttpErrorCode::LocalUnreachable);
        /// assert_eq!(code.as_str(), "local_unreachable");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HttpErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl HttpErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[HttpErrorCode] = &[$(HttpErrorCode::$variant,)*];

            /// The code as it travels in the header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(HttpErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

http_error_codes! {
    /// Relay: the request target is longer than the relay accepts (414).
    UriTooLong => "uri_too_long",
    /// Relay: more than one `Host` header (400).
    AmbiguousHost => "ambiguous_host",
    /// Relay: both `Content-Length` and `Transfer-Encoding` (400).
    AmbiguousLength => "ambiguous_length",
    /// Relay: an HTTP/1.1 request without `Host` (400, RFC 9112 §3.2).
    MissingHost => "missing_host",
    /// Relay: this client address already holds its share of the tunnel's in-flight slots (429).
    ClientBusy => "client_busy",
    /// Relay: the body arrived slower than the relay's minimum rate (408).
    BodyTooSlow => "body_too_slow",
    /// Relay: a per-address or per-tunnel rate limit (429).
    RateLimited => "rate_limited",
    /// Relay: the body exceeds the relay's limit (413).
    BodyTooLarge => "body_too_large",
    /// Relay: the body could not be read (400).
    BadBody => "bad_body",
    /// Relay: the body did not arrive in time (408).
    BodyTimeout => "body_timeout",
    /// Relay: the tunnel name breaks the naming rules (404).
    InvalidTunnelName => "invalid_tunnel_name",
    /// Relay: an unknown `/_hooktunnel/` control route (404).
    NotFound => "not_found",
    /// Relay: the URL names no tunnel (404).
    NoTunnel => "no_tunnel",
    /// Relay: its own storage failed (503).
    RelayStorage => "relay_storage",
    /// Relay: no agent holds the tunnel and nothing queues for it (404).
    UnknownTunnel => "unknown_tunnel",
    /// Relay: too many requests already wait for the tunnel's agent (503).
    TunnelBusy => "tunnel_busy",
    /// Relay: the tunnel's offline queue is at a limit (507).
    QueueFull => "queue_full",
    /// Relay: the agent went away before answering (502).
    AgentDisconnected => "agent_disconnected",
    /// Relay: the agent did not answer in time (504).
    AgentTimeout => "agent_timeout",
    /// Relay: the agent connect request lacks a valid token (401).
    Unauthorized => "unauthorized",
    /// Relay: the agent endpoint was asked for something other than a WebSocket (400).
    NotWebsocket => "not_websocket",
    /// Relay: the tunnel needs HTTP basic auth and got none or wrong credentials (401).
    BasicAuth => "basic_auth",
    /// Relay: the client address is denied or outside the tunnel's allowlist (403).
    IpRefused => "ip_refused",
    /// Relay: a header the tunnel requires is missing or has another value (403).
    HeaderRequired => "header_required",
    /// Relay: the webhook signature the tunnel verifies at the edge is missing or invalid (401).
    SignatureRefused => "signature_refused",
    /// Agent: an answer made by `--inject` (fault injection), not by the app.
    Injected => "injected",
    /// Agent: an answer made by `--mock`, not by the app.
    Mocked => "mocked",
    /// Agent: the local app could not be reached (502).
    LocalUnreachable => "local_unreachable",
    /// Agent: the local app did not answer in time (504).
    LocalTimeout => "local_timeout",
    /// Relay or agent: a frame from the other side broke the protocol's rules (502).
    ProtocolError => "protocol_error",
    /// Relay: its `--memory-budget` for buffered bodies is spent; retry shortly (503).
    RelayBusy => "relay_busy",
    /// Agent: the local app switched protocols (101) for a request that asked for no upgrade (502).
    UnexpectedUpgrade => "unexpected_upgrade",
}

/// A header value that is no code this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hooktunnel error code '{0}'")]
pub struct UnknownCode(pub String);

impl FromStr for HttpErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

impl fmt::Display for HttpErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_distinct() {
        let mut seen = std::collections::HashSet::new();
        for code in HttpErrorCode::ALL {
            assert_eq!(code.as_str().parse::<HttpErrorCode>(), Ok(*code));
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is not a header-safe token"
            );
        }
        assert_eq!(
            "teleport".parse::<HttpErrorCode>(),
            Err(UnknownCode("teleport".into()))
        );
    }
}
