//! Protocol v2: live requests travel as HTTP/2 streams over the agent's
//! WebSocket.
//!
//! After `hello`/`welcome`, a binary WebSocket message is either a control
//! frame (the v1 layout, whose `u32` length prefix always starts with a zero
//! byte because headers are capped at [`crate::MAX_HEADER_BYTES`]) or a
//! *stream message*: [`STREAM_MARKER`] followed by raw HTTP/2 bytes. The
//! relay is the HTTP/2 client and the agent the server, so hyper's h2 does
//! the multiplexing and per-stream flow control.
//!
//! Each HTTP/2 request carries the captured request's head as JSON in
//! [`META_HEADER`] (a [`crate::Request`] without its body); the answer's head
//! comes back the same way (a [`crate::Response`] without its body). The
//! HTTP/2 message bodies are the HTTP bodies, streamed. Keeping the sender's
//! head in one JSON value (not as HTTP/2 fields) keeps header order,
//! duplicates and non-UTF-8 bytes, and lets `101`, `HEAD` lengths and
//! hop-by-hop `Upgrade` fields cross unchanged.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Header;

/// First byte of a WebSocket message that carries HTTP/2 bytes.
pub const STREAM_MARKER: u8 = 1;
/// Most HTTP/2 bytes carried by one WebSocket message.
pub const MAX_STREAM_CHUNK: usize = 64 * 1024;
/// The HTTP/2 header that carries a request's or response's head as JSON.
pub const META_HEADER: &str = "x-hooktunnel-meta";
/// Largest head (JSON) either side accepts.
pub const MAX_META_BYTES: u32 = 1024 * 1024;
/// HTTP/2 flow-control window per stream: the most body bytes in transit
/// for one request (each way) before its sender must wait for its reader.
/// A transfer's rate is at most this per round trip through both hops:
/// measured on loopback, 256 KiB gave 0.53× bore's rate on a 1 GiB
/// transfer and 1 MiB 0.70× (BENCHMARKS.md).
pub const STREAM_WINDOW: u32 = 1024 * 1024;
/// Bytes of one stream's body a side buffers before HTTP/2 has sent them.
pub const SEND_BUFFER: usize = 256 * 1024;
/// HTTP/2 flow-control window for the whole connection.
pub const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Streams one agent serves at once; more wait at the relay.
pub const MAX_CONCURRENT_STREAMS: u32 = 512;

/// One WebSocket message as received after the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// HTTP/2 bytes for the stream connection.
    Stream(Bytes),
    /// A control frame (decode it with `AgentMessage`/`RelayMessage`).
    Control(Bytes),
}

/// Sorts a received message: stream bytes (marker removed) or a control frame.
pub fn classify(message: Bytes) -> Inbound {
    if message.first() == Some(&STREAM_MARKER) {
        Inbound::Stream(message.slice(1..))
    } else {
        Inbound::Control(message)
    }
}

/// Why a head could not be read from [`META_HEADER`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    /// The header is absent.
    #[error("the {META_HEADER} header is missing")]
    Missing,
    /// The header is not valid JSON for the expected head.
    #[error("the {META_HEADER} header is malformed: {0}")]
    Malformed(String),
}

/// Encodes a head for [`META_HEADER`]. JSON escapes every control byte but
/// DEL, which HTTP field values forbid, so DEL is escaped here.
pub fn encode_meta<T: Serialize>(head: &T) -> http::HeaderValue {
    let json = serde_json::to_vec(head).unwrap_or_default();
    let mut out = Vec::with_capacity(json.len());
    for b in json {
        if b == 0x7f {
            out.extend_from_slice(b"\\u007f");
        } else {
            out.push(b);
        }
    }
    // JSON output has no bytes below 0x20 and, after the step above, no DEL.
    http::HeaderValue::from_bytes(&out).unwrap_or(http::HeaderValue::from_static("{}"))
}

/// Decodes a head from [`META_HEADER`] in `headers`.
pub fn decode_meta<T: DeserializeOwned>(headers: &http::HeaderMap) -> Result<T, MetaError> {
    let value = headers.get(META_HEADER).ok_or(MetaError::Missing)?;
    serde_json::from_slice(value.as_bytes()).map_err(|e| MetaError::Malformed(e.to_string()))
}

/// The protocol an `Upgrade` request asks for (`websocket`, …): set when the
/// request has an `Upgrade` field and `Connection` names `upgrade`.
pub fn upgrade_requested(headers: &[Header]) -> Option<String> {
    let connection_says = crate::connection_tokens(headers)
        .iter()
        .any(|t| t == "upgrade");
    if !connection_says {
        return None;
    }
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .map(|h| h.value_lossy().trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Request, Response};

    #[test]
    fn control_frames_and_stream_messages_never_collide() {
        let control = crate::AgentMessage::Ack(crate::Ack {
            id: ulid::Ulid::nil(),
            tunnel: None,
        })
        .encode();
        assert_eq!(control[0], 0, "a control frame starts with a zero byte");
        assert_eq!(classify(control.clone()), Inbound::Control(control));
        let message = Bytes::from_static(b"\x01PRI * HTTP/2.0");
        assert_eq!(
            classify(message),
            Inbound::Stream(Bytes::from_static(b"PRI * HTTP/2.0"))
        );
        assert_eq!(classify(Bytes::new()), Inbound::Control(Bytes::new()));
    }

    #[test]
    fn heads_round_trip_through_the_meta_header_with_every_byte() {
        let request = Request {
            id: ulid::Ulid::nil(),
            method: "POST".into(),
            target: "/a?b=\u{7f}".into(),
            headers: vec![
                Header::new("x-dup", "1"),
                Header::new("x-dup", "2"),
                Header::new("x-bin", vec![0xff, 0x00, 0x7f]),
                Header::new("x-ctl", "a\u{1}\u{7f}b"),
            ],
            peer: None,
            received_at_ms: 1,
            public_url: None,
            queued: false,
            needs_ack: false,
            tunnel: None,
            body: Bytes::new(),
        };
        let mut map = http::HeaderMap::new();
        map.insert(META_HEADER, encode_meta(&request));
        let back: Request = decode_meta(&map).unwrap();
        assert_eq!(back, request);
        let response = Response {
            id: ulid::Ulid::nil(),
            status: 101,
            headers: vec![Header::new("upgrade", "websocket")],
            body: Bytes::new(),
        };
        map.insert(META_HEADER, encode_meta(&response));
        assert_eq!(decode_meta::<Response>(&map).unwrap(), response);
        map.insert(META_HEADER, http::HeaderValue::from_static("{"));
        assert!(matches!(
            decode_meta::<Response>(&map),
            Err(MetaError::Malformed(_))
        ));
        assert_eq!(
            decode_meta::<Response>(&http::HeaderMap::new()),
            Err(MetaError::Missing)
        );
    }

    #[test]
    fn upgrades_need_both_fields() {
        let ws = vec![
            Header::new("connection", "keep-alive, Upgrade"),
            Header::new("upgrade", "websocket"),
        ];
        assert_eq!(upgrade_requested(&ws).as_deref(), Some("websocket"));
        assert_eq!(upgrade_requested(&ws[1..]), None);
        assert_eq!(upgrade_requested(&ws[..1]), None);
    }
}
