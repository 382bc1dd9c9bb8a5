//! hooktunnel-protocol: the relay ⇄ agent wire protocol, alone.
//!
//! Every message travels as one binary WebSocket message laid out as
//! `[u32 big-endian header length][header JSON][raw body bytes]`. The JSON
//! header carries a `type` tag; bodies stay raw so they are binary-safe and
//! never base64-inflated. This crate knows nothing of axum, hyper, tungstenite
//! or rusqlite, so relay and agent share it and it can be tested on its own.
//!
//! ```
//! use hooktunnel_protocol::{AgentMessage, Ack};
//! let msg = AgentMessage::Ack(Ack { id: ulid::Ulid::nil(), tunnel: None });
//! let bytes = msg.encode();
//! assert_eq!(AgentMessage::decode(&bytes).unwrap(), msg);
//! ```

use std::time::Duration;

mod check;
mod control;
mod error_code;
pub mod rules;
pub mod stream;

pub use check::{Violation, check_request, check_request_head, check_response_head};
pub use control::{Refused, RefusedRequest, Release, Released};
pub use error_code::{HttpErrorCode, UnknownCode};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// The protocol version this build speaks; sent in `hello` and `welcome`.
/// Version 2 streams live requests as HTTP/2 over the socket ([`stream`]).
pub const PROTOCOL_VERSION: u32 = 2;
/// The path agents open their WebSocket on.
pub const CONNECT_PATH: &str = "/_hooktunnel/connect";
/// Largest JSON header accepted in one frame.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Largest response body an agent sends back (larger answers become a 502).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// How often the relay pings each agent; agents treat two missed intervals as a dead link.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Header the relay and agent add to answers they produce themselves (not the local app).
pub const ERROR_HEADER: &str = "x-hooktunnel-error";

/// Milliseconds since the Unix epoch (the clock of `received_at_ms`); 0
/// before 1970, saturating far in the future.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A new request id, strictly greater than every id this process made before,
/// so ids sort in arrival order even within one millisecond.
pub fn next_id() -> Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    match generator.generate() {
        Ok(id) => id,
        Err(overflow) => overflow.commit_overflow_random(),
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Fewer than four bytes, or a length prefix pointing past the end.
    #[error("frame truncated: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    /// The declared header is larger than [`MAX_HEADER_BYTES`].
    #[error("frame header of {0} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")]
    HeaderTooLarge(usize),
    /// The header is not valid JSON for any known message.
    #[error("malformed frame header: {0}")]
    Malformed(String),
    /// A message type that carries no body arrived with trailing bytes.
    #[error("unexpected {0} body bytes after a bodiless message")]
    UnexpectedBody(usize),
}

/// One HTTP header: name plus the value's exact bytes.
///
/// On the wire a header is `[name, value]`; a value that is not UTF-8 is sent
/// as `{"base64": "..."}` so no byte is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header name as received (HTTP/1 parsers lowercase it).
    pub name: String,
    /// Exact value bytes.
    pub value: Vec<u8>,
}

impl Header {
    /// Builds a header from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value as text, with invalid UTF-8 replaced (for display only).
    pub fn value_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireValue {
    Text(String),
    Binary { base64: String },
}

impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = match std::str::from_utf8(&self.value) {
            Ok(text) => WireValue::Text(text.to_owned()),
            Err(_) => WireValue::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.value),
            },
        };
        (&self.name, value).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, value) = <(String, WireValue)>::deserialize(d)?;
        let value = match value {
            WireValue::Text(text) => text.into_bytes(),
            WireValue::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(serde::de::Error::custom)?,
        };
        Ok(Header { name, value })
    }
}

/// How the relay answers senders for a tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The sender gets the local app's real response.
    #[default]
    Proxy,
    /// The relay answers as soon as the request is durably captured.
    Ack,
}

/// First message from the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the agent speaks.
    pub version: u32,
    /// Tunnel name the agent asks for; the relay picks one when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The agent's secret key, proving ownership of its name.
    #[serde(default)]
    pub key: Option<String>,
    /// How senders should be answered.
    #[serde(default)]
    pub mode: Mode,
    /// What senders get while this agent is away (default: 202 with a JSON body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_response: Option<QueuedResponse>,
    /// The agent machine's host name, shown to a second agent asking for the same tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Random id of this agent run, the same on each of its reconnects: a
    /// reconnect replaces the run's own stale session, another run is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Replace a live session of the same key (`listen --takeover`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub takeover: bool,
    /// Who may call the tunnel, enforced by the relay (absent: anyone).
    #[serde(default, skip_serializing_if = "rules::EdgeRules::is_empty")]
    pub rules: rules::EdgeRules,
    /// Further tunnels served over this same connection (`listen --all`),
    /// each with its own name, key, mode, queued answer and rules; version,
    /// host, run id and takeover are this hello's. The relay grants all or
    /// none, and answers each in [`Welcome::more`], in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Hello>,
}

/// Most tunnels one agent connection may carry.
pub const MAX_TUNNELS_PER_SESSION: usize = 16;

impl Hello {
    /// Every tunnel this hello asks for, first the one it names itself; each
    /// carries this hello's version, host, run id and takeover.
    pub fn tunnels(&self) -> Vec<Hello> {
        let first = Hello {
            more: Vec::new(),
            ..self.clone()
        };
        let rest = self.more.iter().map(|t| Hello {
            version: self.version,
            host: self.host.clone(),
            instance: self.instance.clone(),
            takeover: self.takeover,
            more: Vec::new(),
            ..t.clone()
        });
        std::iter::once(first).chain(rest).collect()
    }
}

/// A tunnel's custom answer for requests queued while its agent is away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedResponse {
    /// HTTP status (2xx: the sender may rely on delivery).
    pub status: u16,
    /// Body; `{id}` is replaced by the request id. Default: JSON naming the id.
    #[serde(default)]
    pub body: Option<String>,
}

/// The relay's answer to a successful `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Protocol version the relay speaks.
    pub version: u32,
    /// The tunnel name now bound to this agent.
    pub name: String,
    /// Public URLs that reach this tunnel, preferred first.
    pub public_urls: Vec<String>,
    /// The mode the relay applies.
    pub mode: Mode,
    /// True when the relay enforces the `rules` of the `hello` (an older
    /// relay ignores them; the agent must not believe it is protected).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rules_enforced: bool,
    /// The relay's `--max-body`: larger request bodies never reach the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Largest queued (durable) request the relay stores, so the agent can
    /// size its socket's message limit from the relay's real settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_bytes: Option<u64>,
    /// The grants for [`Hello::more`], in its order (a relay that leaves
    /// this short serves one tunnel per connection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Welcome>,
}

/// A captured request, relay to agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Relay-assigned ULID; the primary key everywhere.
    pub id: Ulid,
    /// HTTP method, exactly as received.
    pub method: String,
    /// Path and query as the local app should see them (tunnel prefix removed).
    pub target: String,
    /// Headers in arrival order, duplicates kept.
    pub headers: Vec<Header>,
    /// Sender's address as the relay saw it.
    #[serde(default)]
    pub peer: Option<String>,
    /// When the relay received it, milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The full public URL the sender used (signature schemes such as Twilio sign it).
    #[serde(default)]
    pub public_url: Option<String>,
    /// True when this request waited in the relay's queue while the agent was away.
    #[serde(default)]
    pub queued: bool,
    /// True when the relay holds this request durably and waits for an `ack`
    /// (offline queue and ack mode); such requests are delivered in order.
    #[serde(default)]
    pub needs_ack: bool,
    /// The tunnel the request came in on, for an agent serving several over
    /// one connection (absent from older relays: the session's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    /// Raw body bytes (carried after the JSON header).
    #[serde(skip)]
    pub body: Bytes,
}

/// The local app's answer, agent to relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The id of the request this answers.
    pub id: Ulid,
    /// HTTP status code.
    pub status: u16,
    /// Headers in order, duplicates kept.
    pub headers: Vec<Header>,
    /// Raw body bytes (carried after the JSON header).
    #[serde(skip)]
    pub body: Bytes,
}

/// The agent has durably stored request `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The stored request's id.
    pub id: Ulid,
    /// Whose queue it came from, on a connection with several tunnels
    /// (absent: the session's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
}

/// Machine-readable reason carried by an `error` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peer speaks a protocol version this side does not.
    UnsupportedVersion,
    /// The first message was not a valid `hello`.
    BadHandshake,
    /// The requested tunnel name is owned by another key.
    NameTaken,
    /// The requested tunnel name breaks the naming rules.
    InvalidName,
    /// A frame could not be decoded.
    MalformedFrame,
    /// Authentication failed.
    Unauthorized,
    /// Another run of an agent with the same key holds the tunnel right now.
    AlreadyOnline,
    /// A newer agent run took the tunnel over (`--takeover`); do not reconnect.
    TakenOver,
    /// The key holds as many names as the relay allows.
    TooManyNames,
    /// No key holds the tunnel name.
    UnknownName,
    /// A code this build does not know (kept for forward compatibility).
    #[serde(other)]
    Unknown,
}

/// A fatal or informational problem report, either direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
}

/// Messages the agent sends.
// One message lives at a time (decoded, acted on, dropped); boxing the
// hello would only move its few hundred bytes to the heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// Opens the session.
    Hello(Hello),
    /// Answers a request.
    Response(Response),
    /// Confirms a request is stored on the agent's side.
    Ack(Ack),
    /// Reports a problem.
    Error(ErrorMessage),
    /// Frees a name (instead of `hello`).
    Release(Release),
}

/// Messages the relay sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage {
    /// Accepts the session.
    Welcome(Welcome),
    /// Delivers a captured request.
    Request(Request),
    /// Reports a problem; after a handshake error the relay closes the socket.
    Error(ErrorMessage),
    /// Answers `release`.
    Released(Released),
    /// Requests the relay refused before they reached the agent.
    Refused(Refused),
}

/// A message that travels as one frame; at most one of its kinds has a body.
trait Framed: Serialize + for<'de> Deserialize<'de> + Sized {
    /// The body of the kind that carries one (it travels after the header,
    /// never inside it).
    fn body(&self) -> Option<&Bytes>;

    /// The body slot of the kind that carries one.
    fn body_mut(&mut self) -> Option<&mut Bytes>;

    /// Decodes one frame; `keep(body_at)` makes the body from the frame.
    fn decode_framed(
        frame: &[u8],
        keep: impl FnOnce(usize) -> Bytes,
    ) -> Result<Self, ProtocolError> {
        let (mut msg, body_at): (Self, usize) = decode_frame(frame)?;
        let extra = frame.len() - body_at;
        match msg.body_mut() {
            Some(slot) => *slot = keep(body_at),
            None if extra > 0 => return Err(ProtocolError::UnexpectedBody(extra)),
            None => {}
        }
        Ok(msg)
    }
}

/// Frame coding for a message enum whose `$with_body` variant carries the body.
macro_rules! framing {
    ($message:ident, $with_body:ident) => {
        impl Framed for $message {
            fn body(&self) -> Option<&Bytes> {
                match self {
                    $message::$with_body(m) => Some(&m.body),
                    _ => None,
                }
            }

            fn body_mut(&mut self) -> Option<&mut Bytes> {
                match self {
                    $message::$with_body(m) => Some(&mut m.body),
                    _ => None,
                }
            }
        }

        impl $message {
            /// Encodes into one frame.
            pub fn encode(&self) -> Bytes {
                encode_frame(self, self.body().map_or(&[][..], |b| &b[..]))
            }

            /// Decodes one frame, copying the body out of it.
            pub fn decode(frame: &[u8]) -> Result<Self, ProtocolError> {
                Self::decode_framed(frame, |at| Bytes::copy_from_slice(&frame[at..]))
            }

            /// Decodes one frame without copying: the body is a slice of
            /// `frame` (a WebSocket message's payload, say), sharing its
            /// allocation.
            pub fn decode_bytes(frame: &Bytes) -> Result<Self, ProtocolError> {
                Self::decode_framed(frame, |at| frame.slice(at..))
            }
        }
    };
}

framing!(AgentMessage, Response);
framing!(RelayMessage, Request);

fn encode_frame<T: Serialize>(header: &T, body: &[u8]) -> Bytes {
    // Serialising these types cannot fail: every field is a string, number,
    // list or map with string keys.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = BytesMut::with_capacity(4 + json.len() + body.len());
    out.put_u32(u32::try_from(json.len()).unwrap_or(u32::MAX));
    out.put_slice(&json);
    out.put_slice(body);
    out.freeze()
}

/// The header, and where the body starts in `frame`.
fn decode_frame<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<(T, usize), ProtocolError> {
    let Some((len_bytes, rest)) = frame.split_first_chunk::<4>() else {
        return Err(ProtocolError::Truncated {
            needed: 4,
            have: frame.len(),
        });
    };
    let len = u32::from_be_bytes(*len_bytes) as usize;
    if len > MAX_HEADER_BYTES {
        return Err(ProtocolError::HeaderTooLarge(len));
    }
    if rest.len() < len {
        return Err(ProtocolError::Truncated {
            needed: 4 + len,
            have: frame.len(),
        });
    }
    let header = serde_json::from_slice(&rest[..len])
        .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok((header, 4 + len))
}

/// Headers that describe one connection hop and must not be forwarded
/// (RFC 9110 §7.6.1), plus any header named in `Connection`.
pub fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    const HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// The header names listed in every `Connection` header (lowercased).
pub fn connection_tokens(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            h.value_lossy()
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Drops hop-by-hop headers, keeping the order of the rest.
pub fn strip_hop_by_hop(headers: &[Header]) -> Vec<Header> {
    let tokens = connection_tokens(headers);
    headers
        .iter()
        .filter(|h| !is_hop_by_hop(&h.name, &tokens))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample_request() -> Request {
        Request {
            id: Ulid::from_string("01JDQ7ZK0000000000000000AB").unwrap(),
            method: "POST".into(),
            target: "/hooks/github?x=1&x=2".into(),
            headers: vec![
                Header::new("content-type", "application/json"),
                Header::new("x-dup", "a"),
                Header::new("x-dup", "b"),
                Header::new("x-bin", vec![0xff, 0x00, 0x80]),
            ],
            peer: Some("127.0.0.1:5555".into()),
            received_at_ms: 1_732_752_000_000,
            public_url: Some("http://127.0.0.1:8080/t/demo/hooks/github?x=1&x=2".into()),
            queued: false,
            needs_ack: false,
            tunnel: None,
            body: Bytes::from_static(b"{\"ok\":true}\0\r\n"),
        }
    }

    fn header_json(frame: &[u8]) -> serde_json::Value {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        serde_json::from_slice(&frame[4..4 + len]).unwrap()
    }

    #[test]
    fn a_hello_with_more_tunnels_lends_them_its_session_fields() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            name: Some("api".into()),
            key: Some("k".into()),
            mode: Mode::Proxy,
            queued_response: None,
            host: Some("laptop".into()),
            instance: Some("run".into()),
            takeover: true,
            rules: rules::EdgeRules::default(),
            more: vec![Hello {
                version: 0,
                name: Some("hooks".into()),
                key: Some("k".into()),
                mode: Mode::Ack,
                queued_response: None,
                host: None,
                instance: None,
                takeover: false,
                rules: rules::EdgeRules::default(),
                more: vec![],
            }],
        };
        let all = hello.tunnels();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name.as_deref(), Some("api"));
        assert!(all[0].more.is_empty());
        assert_eq!(all[1].name.as_deref(), Some("hooks"));
        assert_eq!(all[1].mode, Mode::Ack);
        assert_eq!(
            (
                all[1].version,
                all[1].host.as_deref(),
                all[1].instance.as_deref(),
                all[1].takeover
            ),
            (PROTOCOL_VERSION, Some("laptop"), Some("run"), true)
        );
        // Round trip: `more` survives encoding, and is absent when empty.
        let AgentMessage::Hello(back) =
            AgentMessage::decode(&AgentMessage::Hello(hello.clone()).encode()).unwrap()
        else {
            panic!("not a hello");
        };
        assert_eq!(back, hello);
        assert!(
            !String::from_utf8_lossy(&AgentMessage::Hello(all[0].clone()).encode())
                .contains("\"more\"")
        );
    }

    #[test]
    fn golden_headers() {
        let id = Ulid::from_string("01JDQ7ZK0000000000000000AB").unwrap();
        let relay = [
            RelayMessage::Welcome(Welcome {
                version: 1,
                name: "demo".into(),
                public_urls: vec!["http://127.0.0.1:8080/t/demo".into()],
                mode: Mode::Proxy,
                rules_enforced: false,
                max_body_bytes: None,
                max_queued_bytes: None,
                more: vec![],
            }),
            RelayMessage::Request(sample_request()),
            RelayMessage::Error(ErrorMessage {
                code: ErrorCode::UnsupportedVersion,
                message: "relay speaks version 1".into(),
            }),
        ];
        let agent = [
            AgentMessage::Hello(Hello {
                version: 1,
                name: Some("demo".into()),
                key: Some("k".into()),
                mode: Mode::Ack,
                queued_response: Some(QueuedResponse {
                    status: 200,
                    body: None,
                }),
                host: None,
                instance: None,
                takeover: false,
                rules: rules::EdgeRules::default(),
                more: vec![],
            }),
            AgentMessage::Hello(Hello {
                version: 1,
                name: Some("guarded".into()),
                key: None,
                mode: Mode::Proxy,
                queued_response: None,
                host: None,
                instance: None,
                takeover: false,
                rules: rules::EdgeRules {
                    basic_auth: vec![rules::BasicAuth {
                        salt: "00112233445566778899aabbccddeeff".into(),
                        sha256: "ab".repeat(32),
                    }],
                    allow_ip: vec![rules::parse_cidr("10.0.0.0/8").unwrap()],
                    deny_ip: vec![rules::parse_cidr("2001:db8::/32").unwrap()],
                    require_headers: vec![rules::RequiredHeader {
                        name: "x-token".into(),
                        value: Some("t".into()),
                    }],
                    verify: Some(rules::EdgeVerify {
                        provider: rules::EdgeProvider::Stripe,
                        secret: "whsec_x".into(),
                    }),
                    offline: Some(Box::new(rules::OfflineAnswer {
                        status: 503,
                        content_type: "text/plain; charset=utf-8".into(),
                        body: "back soon".into(),
                    })),
                },
                more: vec![],
            }),
            AgentMessage::Response(Response {
                id,
                status: 201,
                headers: vec![
                    Header::new("set-cookie", "a=1"),
                    Header::new("set-cookie", "b=2"),
                ],
                body: Bytes::from_static(b"created"),
            }),
            AgentMessage::Ack(Ack { id, tunnel: None }),
        ];
        let all: Vec<serde_json::Value> = relay
            .iter()
            .map(|m| header_json(&m.encode()))
            .chain(agent.iter().map(|m| header_json(&m.encode())))
            .collect();
        insta::assert_json_snapshot!(all);
    }

    #[test]
    fn decode_bytes_shares_the_frame() {
        let req = sample_request();
        let frame = RelayMessage::Request(req.clone()).encode();
        let RelayMessage::Request(decoded) = RelayMessage::decode_bytes(&frame).unwrap() else {
            panic!("expected a request");
        };
        assert_eq!(decoded.body, req.body);
        // The body points into the frame: no copy was made.
        let at = frame.len() - req.body.len();
        assert_eq!(decoded.body.as_ptr(), frame[at..].as_ptr());
    }

    #[test]
    fn request_body_travels_raw() {
        let req = sample_request();
        let frame = RelayMessage::Request(req.clone()).encode();
        assert!(frame.ends_with(&req.body));
        assert_eq!(
            RelayMessage::decode(&frame).unwrap(),
            RelayMessage::Request(req)
        );
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert!(matches!(
            RelayMessage::decode(&[0, 0]),
            Err(ProtocolError::Truncated { .. })
        ));
        assert!(matches!(
            RelayMessage::decode(&[0, 0, 0, 9, b'{']),
            Err(ProtocolError::Truncated { .. })
        ));
        assert!(matches!(
            AgentMessage::decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::HeaderTooLarge(_))
        ));
        let unknown = encode_frame(&serde_json::json!({"type": "teleport"}), b"");
        assert!(matches!(
            AgentMessage::decode(&unknown),
            Err(ProtocolError::Malformed(_))
        ));
        // Agents skip messages from newer relays by this wording.
        let Err(ProtocolError::Malformed(why)) = RelayMessage::decode(&unknown) else {
            panic!("unknown types are malformed");
        };
        assert!(why.contains("unknown variant"), "{why}");
        let ack_with_body = encode_frame(
            &AgentMessage::Ack(Ack {
                id: Ulid::nil(),
                tunnel: None,
            }),
            b"surprise",
        );
        let refused = Err(ProtocolError::UnexpectedBody(8));
        assert_eq!(AgentMessage::decode(&ack_with_body), refused);
        assert_eq!(AgentMessage::decode_bytes(&ack_with_body), refused);
    }

    #[test]
    fn unknown_error_codes_are_tolerated() {
        let frame = encode_frame(
            &serde_json::json!({"type": "error", "code": "from_the_future", "message": "m"}),
            b"",
        );
        let RelayMessage::Error(e) = RelayMessage::decode(&frame).unwrap() else {
            panic!("expected an error message");
        };
        assert_eq!(e.code, ErrorCode::Unknown);
    }

    #[test]
    fn hop_by_hop_includes_connection_tokens() {
        let headers = vec![
            Header::new("connection", "keep-alive, x-secret"),
            Header::new("x-secret", "1"),
            Header::new("transfer-encoding", "chunked"),
            Header::new("x-kept", "2"),
        ];
        let kept = strip_hop_by_hop(&headers);
        assert_eq!(kept, vec![Header::new("x-kept", "2")]);
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            "[a-z][a-z0-9-]{0,20}",
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(n, v)| Header::new(n, v))
    }

    proptest! {
        #[test]
        fn request_round_trips(
            headers in proptest::collection::vec(arb_header(), 0..12),
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            target in "/[ -~]{0,60}",
            queued in any::<bool>(),
            needs_ack in any::<bool>(),
        ) {
            let mut req = sample_request();
            req.headers = headers;
            req.body = Bytes::from(body);
            req.target = target;
            req.queued = queued;
            req.needs_ack = needs_ack;
            let msg = RelayMessage::Request(req);
            let frame = msg.encode();
            prop_assert_eq!(RelayMessage::decode(&frame).unwrap(), msg.clone());
            prop_assert_eq!(RelayMessage::decode_bytes(&frame).unwrap(), msg);
        }

        #[test]
        fn response_round_trips(
            headers in proptest::collection::vec(arb_header(), 0..12),
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            status in 100u16..600,
        ) {
            let msg = AgentMessage::Response(Response { id: Ulid::generate(), status, headers, body: Bytes::from(body) });
            let frame = msg.encode();
            prop_assert_eq!(AgentMessage::decode(&frame).unwrap(), msg.clone());
            prop_assert_eq!(AgentMessage::decode_bytes(&frame).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AgentMessage::decode(&bytes);
            let _ = RelayMessage::decode(&bytes);
            let shared = Bytes::from(bytes);
            let _ = AgentMessage::decode_bytes(&shared);
            let _ = RelayMessage::decode_bytes(&shared);
        }
    }
}
