//! What stats group and count by, computed once per exchange when it is
//! stored (and for older rows when the schema is migrated), so `stats`
//! reads a narrow index and never a body.

use serde::Deserialize;

use crate::exchange::{Exchange, Header};
use crate::verify;

use super::path;

/// Longest event type kept; beyond this a sender is not naming an event.
const MAX_EVENT_TYPE: usize = 100;
/// Bodies larger than this are not parsed for an event type (keeps the
/// writer thread quick on uploads).
const MAX_PARSED_BODY: usize = 1024 * 1024;

/// Why an exchange failed, as far as hooktunnel can tell. Stored as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The local app refused or dropped the connection (hooktunnel's own 502).
    Unreachable,
    /// The local app did not answer within `--timeout` (hooktunnel's own 504).
    Timeout,
    /// The local app answered with a 5xx.
    App5xx,
}

impl Cause {
    /// Every cause, in display order.
    pub const ALL: [Cause; 3] = [Cause::Unreachable, Cause::Timeout, Cause::App5xx];

    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Unreachable => "unreachable",
            Cause::Timeout => "timeout",
            Cause::App5xx => "app_5xx",
        }
    }

    /// Parses a stored name; unknown names (from a newer hooktunnel) are `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Classifies an outcome: hooktunnel's own answers carry their code in
    /// `x-hooktunnel-error`; without it, a recorded error with a 504 is a
    /// timeout and any other recorded error is an unreachable app.
    pub fn classify(status: Option<u16>, error: bool, own_code: Option<&[u8]>) -> Option<Self> {
        match own_code {
            Some(b"local_timeout") => return Some(Cause::Timeout),
            Some(b"local_unreachable") => return Some(Cause::Unreachable),
            // `--inject` simulates what a sender would see from a failing app.
            Some(b"injected") => {
                return match status {
                    Some(504) => Some(Cause::Timeout),
                    Some(s) if s >= 500 => Some(Cause::App5xx),
                    _ => None,
                };
            }
            // An `always` mock is an answer; a `when-app-down` one records the failure.
            Some(b"mocked") if !error => {
                return status.filter(|s| *s >= 500).map(|_| Cause::App5xx);
            }
            _ => {}
        }
        match (status, error) {
            (Some(504), true) => Some(Cause::Timeout),
            (_, true) | (None, _) => Some(Cause::Unreachable),
            (Some(s), false) if s >= 500 => Some(Cause::App5xx),
            _ => None,
        }
    }
}

/// The derived columns of one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// The folded path, e.g. `/orders/:n`.
    pub path_pattern: String,
    /// Webhook sender: from the signature verdict, else from its signature headers.
    pub provider: Option<String>,
    /// Event type when the request names one.
    pub event_type: Option<String>,
    /// Failure cause, `None` when the app answered below 500.
    pub cause: Option<Cause>,
    /// Signature verdict, when one was made.
    pub sig_valid: Option<bool>,
}

/// Derives the stats columns of `e`.
pub fn derive(e: &Exchange) -> Derived {
    let provider = e
        .signature
        .as_ref()
        .map(|s| s.provider.clone())
        .or_else(|| verify::detect(&e.request_headers).map(|p| p.name().to_owned()));
    let own_code = e.response.as_ref().and_then(|r| {
        header(&r.headers, hooktunnel_relay::protocol::ERROR_HEADER).map(|h| h.value.as_slice())
    });
    Derived {
        path_pattern: path::fold(&e.path),
        event_type: event_type(&e.request_headers, &e.request_body),
        provider,
        cause: Cause::classify(e.status(), e.error.is_some(), own_code),
        sig_valid: e.signature.as_ref().map(|s| s.valid),
    }
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// The event type a webhook names: GitHub's `X-GitHub-Event`, Shopify's
/// `X-Shopify-Topic`, else a top-level string `type` in a JSON object body
/// (Stripe, Standard Webhooks and many others).
pub fn event_type(headers: &[Header], body: &[u8]) -> Option<String> {
    let from_header = ["x-github-event", "x-shopify-topic"]
        .iter()
        .find_map(|name| header(headers, name))
        .and_then(|h| std::str::from_utf8(&h.value).ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(kind) = from_header {
        return Some(clip(kind));
    }
    json_type(body).map(|t| clip(&t))
}

fn json_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body.len() > MAX_PARSED_BODY || body[start] != b'{' {
        return None;
    }
    let typed: Typed = serde_json::from_slice(body).ok()?;
    match typed.kind? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_EVENT_TYPE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn event_types_per_provider() {
        let cases: Vec<(Vec<Header>, &str, Option<&str>)> = vec![
            (
                vec![h("X-GitHub-Event", "push")],
                "{\"type\":\"x\"}",
                Some("push"),
            ),
            (
                vec![h("x-shopify-topic", "orders/create")],
                "{}",
                Some("orders/create"),
            ),
            (
                vec![h("stripe-signature", "t=1,v1=x")],
                r#"{"id":"evt_1","object":"event","data":{"type":"nested"},"type":"invoice.paid"}"#,
                Some("invoice.paid"),
            ),
            (
                vec![h("webhook-id", "msg_1")],
                "  {\"type\": \"user.created\", \"data\": {}}",
                Some("user.created"),
            ),
            (vec![], "{\"type\": 3}", None),
            (vec![], "{\"type\": \"  \"}", None),
            (vec![], "[{\"type\":\"a\"}]", None),
            (vec![], "not json", None),
            (vec![], "", None),
            (vec![h("x-github-event", "")], "", None),
        ];
        for (headers, body, want) in cases {
            assert_eq!(
                event_type(&headers, body.as_bytes()).as_deref(),
                want,
                "{headers:?} {body}"
            );
        }
        let long = format!("{{\"type\":\"{}\"}}", "é".repeat(80));
        assert!(event_type(&[], long.as_bytes()).unwrap().len() <= MAX_EVENT_TYPE);
    }

    #[test]
    fn causes_from_outcomes() {
        assert_eq!(Cause::classify(Some(200), false, None), None);
        assert_eq!(Cause::classify(Some(404), false, None), None);
        assert_eq!(
            Cause::classify(Some(503), true, Some(b"injected")),
            Some(Cause::App5xx)
        );
        assert_eq!(
            Cause::classify(Some(504), true, Some(b"injected")),
            Some(Cause::Timeout)
        );
        assert_eq!(Cause::classify(Some(200), false, Some(b"mocked")), None);
        assert_eq!(
            Cause::classify(Some(503), true, Some(b"mocked")),
            Some(Cause::Unreachable)
        );
        assert_eq!(Cause::classify(Some(503), false, None), Some(Cause::App5xx));
        assert_eq!(
            Cause::classify(Some(502), true, Some(b"local_unreachable")),
            Some(Cause::Unreachable)
        );
        assert_eq!(
            Cause::classify(Some(504), true, Some(b"local_timeout")),
            Some(Cause::Timeout)
        );
        assert_eq!(Cause::classify(Some(504), true, None), Some(Cause::Timeout));
        assert_eq!(
            Cause::classify(Some(502), true, None),
            Some(Cause::Unreachable)
        );
        assert_eq!(Cause::classify(None, false, None), Some(Cause::Unreachable));
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn derive_prefers_the_verdicts_provider() {
        let mut e = crate::store::tests::sample(3);
        e.request_headers = vec![h("stripe-signature", "t=1,v1=x")];
        e.request_body = bytes::Bytes::from_static(b"{\"type\":\"charge.failed\"}");
        let d = derive(&e);
        assert_eq!(d.provider.as_deref(), Some("github"));
        assert_eq!(d.sig_valid, Some(false));
        assert_eq!(d.event_type.as_deref(), Some("charge.failed"));
        assert_eq!(d.path_pattern, "/hooks/:n");
        e.signature = None;
        assert_eq!(derive(&e).provider.as_deref(), Some("stripe"));
        assert_eq!(derive(&e).sig_valid, None);
    }
}
