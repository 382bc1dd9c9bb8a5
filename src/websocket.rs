//! WebSocket messages read back from an upgraded exchange.
//!
//! A WebSocket through the tunnel is recorded as one exchange (`101`) whose
//! request body holds the bytes the sender sent after the switch and whose
//! response body holds the bytes the app sent (each up to the capture
//! limit). This module turns those byte streams back into messages (RFC
//! 6455 §5) for `show` and the inspector. It is pure: no I/O.

use bytes::Bytes;

use crate::exchange::Exchange;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A close frame (with its code when it has one).
    Close(Option<u16>),
}

/// One message, reassembled from its frames and unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its kind.
    pub kind: Kind,
    /// Its payload (for a close frame: the reason).
    pub payload: Bytes,
    /// Compressed with permessage-deflate (shown as bytes, not decoded).
    pub compressed: bool,
}

/// The messages found in one direction's bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages {
    /// Complete messages, in order.
    pub messages: Vec<Message>,
    /// Bytes left over at the end: a frame cut by the capture limit.
    pub trailing: usize,
}

/// True when `exchange` is a WebSocket that switched protocols.
pub fn is_websocket(exchange: &Exchange) -> bool {
    exchange.status() == Some(101)
        && exchange.request_headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade")
                && h.value_lossy().trim().eq_ignore_ascii_case("websocket")
        })
}

/// Parses the frames in `bytes` into messages.
pub fn parse(bytes: &[u8]) -> Messages {
    let mut out = Messages::default();
    let mut at = 0;
    // The data message being reassembled from continuation frames.
    let mut partial: Option<(Kind, Vec<u8>, bool)> = None;
    while let Some((frame, used)) = frame_at(&bytes[at..]) {
        at += used;
        match frame.opcode {
            0x0 => {
                if let Some((_, data, _)) = partial.as_mut() {
                    data.extend_from_slice(&frame.payload);
                }
            }
            0x1 | 0x2 => {
                let kind = if frame.opcode == 0x1 {
                    Kind::Text
                } else {
                    Kind::Binary
                };
                partial = Some((kind, frame.payload, frame.rsv1));
            }
            0x8 => {
                let code = (frame.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                let reason = frame.payload.get(2..).unwrap_or_default().to_vec();
                out.messages.push(Message {
                    kind: Kind::Close(code),
                    payload: Bytes::from(reason),
                    compressed: false,
                });
                continue;
            }
            0x9 | 0xA => {
                out.messages.push(Message {
                    kind: if frame.opcode == 0x9 {
                        Kind::Ping
                    } else {
                        Kind::Pong
                    },
                    payload: Bytes::from(frame.payload),
                    compressed: false,
                });
                continue;
            }
            // Reserved opcodes: nothing a message can be made of.
            _ => continue,
        }
        if frame.fin
            && let Some((kind, data, compressed)) = partial.take()
        {
            out.messages.push(Message {
                kind,
                payload: Bytes::from(data),
                compressed,
            });
        }
    }
    out.trailing = bytes.len() - at;
    out
}

struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// The frame at the start of `bytes` and its length, if it is all there.
fn frame_at(bytes: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, rest) = bytes.split_first()?;
    let (&b1, mut rest) = rest.split_first()?;
    let mut len = u64::from(b1 & 0x7f);
    if len == 126 {
        let (ext, tail) = rest.split_first_chunk::<2>()?;
        len = u64::from(u16::from_be_bytes(*ext));
        rest = tail;
    } else if len == 127 {
        let (ext, tail) = rest.split_first_chunk::<8>()?;
        len = u64::from_be_bytes(*ext);
        rest = tail;
    }
    let mask = if b1 & 0x80 != 0 {
        let (key, tail) = rest.split_first_chunk::<4>()?;
        rest = tail;
        Some(*key)
    } else {
        None
    };
    let len = usize::try_from(len).ok()?;
    let payload = rest.get(..len)?;
    let mut payload = payload.to_vec();
    if let Some(key) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    let used = bytes.len() - rest.len() + len;
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            payload,
        },
        used,
    ))
}

/// Most bytes of a payload shown on one line.
const PREVIEW: usize = 120;

/// One line per message, for `show` and the inspector: kind, size and a
/// preview (text as text, anything else as hex); escaping is the caller's.
pub fn line(message: &Message) -> String {
    let size = crate::output::size(message.payload.len() as u64);
    // Binary payloads are shown as hex even when their bytes happen to be text.
    let as_text = !message.compressed && message.kind != Kind::Binary;
    let preview = |bytes: &[u8]| {
        let cut = &bytes[..bytes.len().min(PREVIEW)];
        let more = if bytes.len() > cut.len() { "…" } else { "" };
        match std::str::from_utf8(cut) {
            Ok(text) if as_text => format!("{text}{more}"),
            _ => format!("{}{more}", hex::encode(cut)),
        }
    };
    match message.kind {
        Kind::Text => format!("text    {size:>9}  {}", preview(&message.payload)),
        Kind::Binary => format!("binary  {size:>9}  {}", preview(&message.payload)),
        Kind::Ping => format!("ping    {size:>9}  {}", preview(&message.payload)),
        Kind::Pong => format!("pong    {size:>9}  {}", preview(&message.payload)),
        Kind::Close(code) => format!(
            "close   {}  {}",
            code.map_or_else(|| "(no code)".to_owned(), |c| c.to_string()),
            preview(&message.payload)
        ),
    }
}

/// The section `show` and the inspector print for a WebSocket exchange:
/// each direction's messages (their relative timing is not recorded).
pub fn describe(exchange: &Exchange) -> Vec<String> {
    let mut out = Vec::new();
    let sides = [
        ("sender → app", &exchange.request_body),
        (
            "app → sender",
            exchange
                .response
                .as_ref()
                .map_or(&exchange.request_body, |r| &r.body),
        ),
    ];
    for (i, (title, bytes)) in sides.into_iter().enumerate() {
        if i == 1 && exchange.response.is_none() {
            break;
        }
        let parsed = parse(bytes);
        out.push(format!(
            "WebSocket messages, {title} ({})",
            parsed.messages.len()
        ));
        for message in &parsed.messages {
            out.push(format!("  {}", line(message)));
        }
        if parsed.trailing > 0 {
            out.push(format!(
                "  … {} more not kept (capture limit)",
                crate::output::size(parsed.trailing as u64)
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A frame as a client (masked) or server (unmasked) writes it.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    #[test]
    fn masked_fragmented_and_control_frames_become_messages() {
        let key = Some([1, 2, 3, 4]);
        let mut bytes = frame(true, 0x1, b"hello", key);
        bytes.extend(frame(false, 0x2, &[0, 1], key));
        bytes.extend(frame(true, 0x9, b"p", key)); // a ping between fragments
        bytes.extend(frame(true, 0x0, &[2, 3], key));
        let big = vec![7_u8; 70_000];
        bytes.extend(frame(true, 0x2, &big, None));
        bytes.extend(frame(true, 0x8, &[0x03, 0xe9, b'b', b'y', b'e'], key));
        let parsed = parse(&bytes);
        let kinds: Vec<Kind> = parsed.messages.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Text,
                Kind::Ping,
                Kind::Binary,
                Kind::Binary,
                Kind::Close(Some(1001))
            ]
        );
        assert_eq!(&parsed.messages[0].payload[..], b"hello");
        assert_eq!(&parsed.messages[2].payload[..], &[0, 1, 2, 3]);
        assert_eq!(parsed.messages[3].payload.len(), 70_000);
        assert_eq!(&parsed.messages[4].payload[..], b"bye");
        assert_eq!(parsed.trailing, 0);
    }

    #[test]
    fn a_frame_cut_by_the_capture_limit_is_counted_not_invented() {
        let mut bytes = frame(true, 0x1, b"whole", None);
        let cut = frame(true, 0x2, &[9; 300], None);
        bytes.extend_from_slice(&cut[..100]);
        let parsed = parse(&bytes);
        assert_eq!(parsed.messages.len(), 1);
        assert_eq!(parsed.trailing, 100);
        assert_eq!(parse(&[]), Messages::default());
        assert_eq!(parse(&[0x81]).trailing, 1);
    }

    #[test]
    fn lines_preview_text_and_hex() {
        let text = Message {
            kind: Kind::Text,
            payload: Bytes::from_static(b"hi"),
            compressed: false,
        };
        assert!(line(&text).starts_with("text"));
        assert!(line(&text).ends_with("hi"));
        let binary = Message {
            kind: Kind::Binary,
            payload: Bytes::from_static(&[0xff, 0x00]),
            compressed: false,
        };
        assert!(line(&binary).ends_with("ff00"));
    }
}
