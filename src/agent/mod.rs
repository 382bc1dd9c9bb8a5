//! The agent's session with the relay: connect (the handshake is done when
//! this returns), then run until the link drops; [`reconnect`] supplies the
//! delays between attempts.
//!
//! | module | role |
//! | --- | --- |
//! | [`tunnel`] | start a tunnel: config, embedded relay, first connection |
//! | [`tunnels`] | the tunnels one session serves, and which one a request is for |
//! | [`supervisor`] | the reconnect loop around a session |
//! | [`stream`] | one live request: an HTTP/2 stream from the relay, forwarded and recorded as it streams |
//! | [`handle`] | durable deliveries (ordered, acked) and the exchange record |
//! | [`events`] | the bounded channel to the printer or TUI |
//! | [`socket`] | opening the WebSocket to the relay: URL, token, TLS, limits |
//! | [`seen`] | exactly-once lookups in the history, off the runtime |
//! | [`reconnect`] | backoff delays |
//! | [`release`] | freeing a tunnel name on the relay |
//! | [`refused`] | the line for requests the relay refused |

pub mod events;
pub mod handle;
pub mod reconnect;
pub mod refused;
pub mod release;
pub mod seen;
pub mod socket;
pub mod stream;
pub mod supervisor;
pub mod tunnel;
pub mod tunnels;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error_chain::root_cause;

use hooktunnel_protocol::{
    self as protocol, AgentMessage, ErrorCode, Hello, Mode, PROTOCOL_VERSION, RelayMessage, Welcome,
};

pub use handle::Pipeline;
pub use socket::connect_url;
use socket::{Socket, open_socket};
pub use tunnels::Tunnels;

/// Longest a stopping agent waits for live requests in progress.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// How to reach and identify with the relay.
#[derive(Clone)]
pub struct AgentOptions {
    /// Relay base URL (`http://`, `https://`, `ws://` or `wss://`).
    pub relay: String,
    /// Bearer token, when the relay needs one.
    pub token: Option<String>,
    /// Tunnel name to ask for.
    pub name: Option<String>,
    /// Secret proving ownership of the name.
    pub key: Option<String>,
    /// How the relay answers senders.
    pub mode: Mode,
    /// What senders get while this agent is away (relay default when `None`).
    pub queued_response: Option<protocol::QueuedResponse>,
    /// A PEM CA certificate trusted for `wss://` in addition to the public roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// How often to ping the relay; silence for two intervals means the link is dead.
    pub ping_interval: Duration,
    /// This machine's name, shown to another run asking for the same tunnel.
    pub host: Option<String>,
    /// This run's id, the same on every reconnect, so the relay lets a
    /// reconnect replace the run's own stale session (and refuses other runs).
    pub instance: String,
    /// Replace a live session of the same tunnel (`--takeover`).
    pub takeover: bool,
    /// Who may call the tunnel, enforced by the relay (sent in `hello`).
    pub rules: protocol::rules::EdgeRules,
    /// Every relay of the cluster, `relay` among them (`--relay URL1,URL2`):
    /// after a failure the agent moves to the next. Empty: only `relay`.
    pub relays: Vec<String>,
    /// Further tunnels served over the same connection (`listen --all`).
    pub more: Vec<MoreTunnel>,
}

/// One further tunnel of a session: what its part of `hello` asks for
/// (the key, host, run id and takeover are the session's).
#[derive(Clone, Debug)]
pub struct MoreTunnel {
    /// Tunnel name to ask for.
    pub name: Option<String>,
    /// How the relay answers its senders.
    pub mode: Mode,
    /// What its senders get while this agent is away.
    pub queued_response: Option<protocol::QueuedResponse>,
    /// Who may call it, enforced by the relay.
    pub rules: protocol::rules::EdgeRules,
}

impl AgentOptions {
    /// Moves `relay` to the next of `relays` (round robin); false when there
    /// is no other.
    pub fn next_relay(&mut self) -> bool {
        if self.relays.len() < 2 {
            return false;
        }
        let at = self.relays.iter().position(|r| *r == self.relay);
        let next = at.map_or(0, |i| (i + 1) % self.relays.len());
        self.relay.clone_from(&self.relays[next]);
        true
    }
}

/// The relays in a `--relay` value: comma-separated, blanks ignored.
pub fn relay_list(spec: &str) -> Vec<String> {
    spec.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("relay", &self.relay)
            .field("relays", &self.relays)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("mode", &self.mode)
            .field("ca_cert", &self.ca_cert)
            .field("host", &self.host)
            .field("takeover", &self.takeover)
            // Verifiers and secrets stay out of logs.
            .field("edge_rules", &!self.rules.is_empty())
            .field(
                "more",
                &self
                    .more
                    .iter()
                    .map(|t| t.name.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why the agent could not connect or lost its connection.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The relay URL is unusable.
    #[error("invalid relay URL '{0}': use http(s)://host[:port]")]
    BadRelayUrl(String),
    /// The relay refused our token.
    #[error(
        "the relay at {relay} refused the token (HTTP 401): set --token, HOOKTUNNEL_TOKEN or `token` in {config} to a token the relay accepts"
    )]
    Unauthorized {
        /// The relay URL.
        relay: String,
        /// Config file path, for the hint.
        config: String,
    },
    /// The relay needs a token and none was given.
    #[error(
        "the relay at {relay} needs a token: pass --token or set HOOKTUNNEL_TOKEN (or `token` in {config})"
    )]
    TokenRequired {
        /// The relay URL.
        relay: String,
        /// Config file path, for the hint.
        config: String,
    },
    /// The relay refused the handshake.
    #[error("the relay refused the tunnel: {message}")]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
    },
    /// TCP/TLS/WebSocket connection failure.
    #[error("cannot connect to the relay at {relay}: {reason}")]
    Connect {
        /// The relay URL.
        relay: String,
        /// Root cause.
        reason: String,
    },
    /// The `--ca-cert` file cannot be used.
    #[error(
        "cannot use the CA certificate {path}: {reason} (check --ca-cert / HOOKTUNNEL_CA_CERT)"
    )]
    CaCert {
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The link dropped.
    #[error("connection to the relay lost: {0}")]
    Lost(String),
    /// Another run took the tunnel over; this one must not come back.
    #[error("stopped: {0}")]
    TakenOver(String),
    /// The relay said something we did not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The relay accepted the tunnel but does not enforce its edge rules
    /// (a relay from before rules): serving would leave the URL open.
    #[error(
        "the relay at {0} does not enforce traffic rules (--basic-auth, --allow-ip, --deny-ip, --require-header, --verify-at-edge); upgrade the relay, or run without those rules"
    )]
    RulesNotEnforced(String),
    /// The relay granted fewer tunnels than the hello asked for (a relay
    /// from before several tunnels per connection).
    #[error(
        "the relay at {0} serves one tunnel per connection; upgrade the relay, or start each tunnel with its own `hooktunnel listen`"
    )]
    OneTunnelOnly(String),
}

impl AgentError {
    /// Errors retrying cannot fix.
    pub fn is_fatal(&self) -> bool {
        match self {
            AgentError::BadRelayUrl(_)
            | AgentError::Unauthorized { .. }
            | AgentError::TokenRequired { .. }
            | AgentError::CaCert { .. }
            | AgentError::RulesNotEnforced(_)
            | AgentError::OneTunnelOnly(_)
            | AgentError::TakenOver(_) => true,
            AgentError::Refused { code, .. } => matches!(
                code,
                ErrorCode::NameTaken
                    | ErrorCode::AlreadyOnline
                    | ErrorCode::TooManyNames
                    | ErrorCode::InvalidName
                    | ErrorCode::UnsupportedVersion
                    | ErrorCode::Unauthorized
            ),
            _ => false,
        }
    }
}

/// A handshaken connection to the relay.
pub struct Session {
    /// What the relay granted.
    pub welcome: Welcome,
    socket: Socket,
    ping_interval: Duration,
}

/// This machine's host name, for the relay to show another run of the same tunnel.
pub fn host_name() -> Option<String> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    (!host.is_empty()).then_some(host)
}

/// A fresh id for one agent run.
pub fn new_instance_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// Connects and completes the handshake.
pub async fn connect(opts: &AgentOptions, config_hint: &str) -> Result<Session, AgentError> {
    let mut socket = open_socket(opts, config_hint).await?;
    let hello = AgentMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        name: opts.name.clone(),
        key: opts.key.clone(),
        mode: opts.mode,
        queued_response: opts.queued_response.clone(),
        host: opts.host.clone(),
        instance: Some(opts.instance.clone()),
        takeover: opts.takeover,
        rules: opts.rules.clone(),
        more: opts
            .more
            .iter()
            .map(|t| Hello {
                version: PROTOCOL_VERSION,
                name: t.name.clone(),
                key: opts.key.clone(),
                mode: t.mode,
                queued_response: t.queued_response.clone(),
                host: None,
                instance: None,
                takeover: false,
                rules: t.rules.clone(),
                more: Vec::new(),
            })
            .collect(),
    });
    socket
        .send(Message::Binary(hello.encode()))
        .await
        .map_err(|e| AgentError::Lost(root_cause(&e)))?;
    let RelayMessage::Welcome(welcome) = next_reply(&mut socket).await? else {
        return Err(AgentError::Protocol("expected welcome".into()));
    };
    if welcome.more.len() != opts.more.len() {
        let _ = socket.close(None).await;
        return Err(AgentError::OneTunnelOnly(opts.relay.clone()));
    }
    let asked = std::iter::once(&opts.rules).chain(opts.more.iter().map(|t| &t.rules));
    let granted = std::iter::once(&welcome).chain(welcome.more.iter());
    if asked
        .zip(granted)
        .any(|(rules, w)| !rules.is_empty() && !w.rules_enforced)
    {
        let _ = socket.close(None).await;
        return Err(AgentError::RulesNotEnforced(opts.relay.clone()));
    }
    Ok(Session {
        welcome,
        socket,
        ping_interval: opts.ping_interval,
    })
}

/// The relay's next message during a handshake; its `error` is a refusal.
async fn next_reply(socket: &mut Socket) -> Result<RelayMessage, AgentError> {
    loop {
        let next = tokio::time::timeout(hooktunnel_relay::config::HANDSHAKE_TIMEOUT, socket.next())
            .await
            .map_err(|_| AgentError::Protocol("no answer from the relay".into()))?;
        match next {
            Some(Ok(Message::Binary(frame))) => match RelayMessage::decode(&frame) {
                Ok(RelayMessage::Error(e)) => {
                    return Err(AgentError::Refused {
                        code: e.code,
                        message: e.message,
                    });
                }
                Ok(message) => return Ok(message),
                Err(e) => return Err(AgentError::Protocol(e.to_string())),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) => return Err(AgentError::Protocol("expected a binary frame".into())),
            Some(Err(e)) => return Err(AgentError::Lost(root_cause(&e))),
            None => return Err(AgentError::Lost("closed during handshake".into())),
        }
    }
}

impl Session {
    /// Serves requests until the link drops or `cancel` fires.
    ///
    /// Live requests arrive as HTTP/2 streams over the socket (protocol v2,
    /// this side the HTTP/2 server); durable deliveries arrive as whole
    /// frames for the ordered worker. On `cancel`, streams in progress get
    /// up to [`DRAIN_LIMIT`] to finish and be recorded.
    pub async fn run(self, tunnels: Tunnels, cancel: CancellationToken) -> Result<(), AgentError> {
        use hooktunnel_protocol::stream::{
            CONNECTION_WINDOW, Inbound, MAX_CONCURRENT_STREAMS, MAX_META_BYTES, SEND_BUFFER,
            STREAM_WINDOW, classify,
        };
        let ping_interval = self.ping_interval;
        let (mut sink, mut stream) = self.socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(1024);
        let writer = async move {
            // One flush per burst, pings when quiet (shared with the relay).
            match hooktunnel_relay::wire::write_batched(&mut sink, &mut out_rx, ping_interval).await
            {
                Err(e) => AgentError::Lost(root_cause(&e)),
                Ok(()) => {
                    let _ = sink.close().await;
                    AgentError::Lost("writer closed".into())
                }
            }
        };
        let (h2_io, pipe) = hooktunnel_relay::wire::stream_pipe();
        let (pipe_out, mut pipe_in) = tokio::io::split(pipe);
        let service = {
            let tunnels = tunnels.clone();
            hyper::service::service_fn(move |request| stream::serve(tunnels.clone(), request))
        };
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(MAX_META_BYTES)
            .max_send_buf_size(SEND_BUFFER)
            .serve_connection(TokioIo::new(h2_io), service);
        let streams = async {
            match connection.await {
                Ok(()) => AgentError::Lost("the stream connection closed".into()),
                Err(e) => AgentError::Lost(format!("stream connection failed: {}", root_cause(&e))),
            }
        };
        let streams_out = {
            let out = out_tx.clone();
            async move {
                match hooktunnel_relay::wire::pump_out(pipe_out, &out).await {
                    Ok(()) => AgentError::Lost("the stream connection closed".into()),
                    Err(e) => AgentError::Lost(root_cause(&e)),
                }
            }
        };
        let reader = async {
            loop {
                let next = tokio::time::timeout(ping_interval * 2, stream.next()).await;
                let msg = match next {
                    Err(_) => {
                        return AgentError::Lost(format!(
                            "no traffic from the relay for {}s",
                            (ping_interval * 2).as_secs_f64()
                        ));
                    }
                    Ok(None) => return AgentError::Lost("the relay closed the connection".into()),
                    Ok(Some(Err(e))) => return AgentError::Lost(root_cause(&e)),
                    Ok(Some(Ok(msg))) => msg,
                };
                let frame = match msg {
                    Message::Binary(frame) => match classify(frame) {
                        Inbound::Stream(h2) => {
                            if let Err(e) = hooktunnel_relay::wire::pump_in(&mut pipe_in, &h2).await
                            {
                                return AgentError::Lost(root_cause(&e));
                            }
                            continue;
                        }
                        Inbound::Control(frame) => frame,
                    },
                    Message::Close(frame) => {
                        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        return AgentError::Lost(if reason.is_empty() {
                            "the relay closed the connection".into()
                        } else {
                            format!("the relay closed the connection ({reason})")
                        });
                    }
                    _ => continue,
                };
                match RelayMessage::decode_bytes(&frame) {
                    Ok(RelayMessage::Request(request)) if request.needs_ack => {
                        let Some(pipeline) = tunnels.get(request.tunnel.as_deref()) else {
                            // Not acked: the relay keeps it for whoever serves that tunnel.
                            tracing::warn!(id = %request.id, tunnel = ?request.tunnel, "a queued request for a tunnel this agent does not serve ignored");
                            continue;
                        };
                        // The worker outlives this session; its ack goes to this socket.
                        // Waits while the worker is behind: the relay keeps the rest.
                        let _ = pipeline.ordered.send((request, out_tx.clone())).await;
                    }
                    Ok(RelayMessage::Request(request)) => {
                        // Live requests are streams in protocol v2; a whole
                        // frame without an ack is a relay bug, not a request.
                        tracing::warn!(id = %request.id, "a live request frame on a streaming session ignored");
                    }
                    Ok(RelayMessage::Error(e)) if e.code == ErrorCode::TakenOver => {
                        return AgentError::TakenOver(e.message);
                    }
                    Ok(RelayMessage::Error(e)) => {
                        tracing::warn!(code = ?e.code, message = %e.message, "relay reported an error");
                    }
                    Ok(RelayMessage::Refused(note)) => {
                        let pipeline = tunnels
                            .get(note.tunnel.as_deref())
                            .unwrap_or(tunnels.first());
                        pipeline.store.record_refused(&note);
                        let mut line = refused::notice(&note);
                        if tunnels.iter().nth(1).is_some() {
                            line = format!("{}: {line}", pipeline.tunnel_name());
                        }
                        pipeline.events.send(crate::event::AgentEvent::Notice(line));
                    }
                    Ok(RelayMessage::Welcome(_) | RelayMessage::Released(_)) => {}
                    // A newer relay's message type: tolerated, for forward compatibility.
                    Err(protocol::ProtocolError::Malformed(e)) if e.contains("unknown variant") => {
                        tracing::debug!(error = %e, "unknown message from the relay ignored")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed frame from the relay ignored")
                    }
                }
            }
        };
        let serving = async {
            tokio::select! {
                e = writer => e,
                e = reader => e,
                e = streams => e,
                e = streams_out => e,
            }
        };
        tokio::pin!(serving);
        tokio::select! {
            e = &mut serving => Err(e),
            () = cancel.cancelled() => {
                // Stopping: streams in progress finish and are recorded
                // first (the link keeps running meanwhile), but a stuck
                // local app cannot hold the exit for long.
                for pipeline in tunnels.iter() {
                    pipeline.live.close();
                }
                let drained = futures_util::future::join_all(tunnels.iter().map(|p| p.live.wait()));
                let _ = tokio::time::timeout(DRAIN_LIMIT, async {
                    tokio::select! {
                        _ = &mut serving => {}
                        _ = drained => {}
                    }
                })
                .await;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod relay_list_tests {
    use super::*;

    fn opts(relays: &[&str]) -> AgentOptions {
        let relays: Vec<String> = relays.iter().map(|r| (*r).to_owned()).collect();
        AgentOptions {
            relay: relays.first().cloned().unwrap_or_default(),
            relays,
            token: None,
            name: None,
            key: None,
            mode: Mode::default(),
            queued_response: None,
            ca_cert: None,
            ping_interval: Duration::from_secs(15),
            host: None,
            instance: "run".into(),
            takeover: false,
            rules: Default::default(),
            more: Vec::new(),
        }
    }

    #[test]
    fn a_relay_list_is_split_on_commas() {
        assert_eq!(
            relay_list(" https://a.example , https://b.example,,"),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(relay_list("https://a.example"), ["https://a.example"]);
    }

    #[test]
    fn the_next_relay_goes_round() {
        let mut o = opts(&["a", "b", "c"]);
        assert!(o.next_relay());
        assert_eq!(o.relay, "b");
        assert!(o.next_relay());
        assert!(o.next_relay());
        assert_eq!(o.relay, "a");
        let mut one = opts(&["a"]);
        assert!(!one.next_relay());
        assert_eq!(one.relay, "a");
    }
}
