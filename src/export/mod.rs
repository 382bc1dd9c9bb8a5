//! Renderings of stored exchanges for other tools: JSON (also `show --json`),
//! a curl command, HAR 1.2, and an editable HTTP message for edit-and-replay.
//!
//! Everything here is pure: callers do the file and terminal I/O.

mod curl;
mod har;
pub mod http_message;

use base64::prelude::*;
use serde_json::{Value, json};

use crate::exchange::{Exchange, ExchangeSummary, Header, SignatureVerdict};

pub use curl::{CurlExport, curl};
pub use har::har;

// Re-exported for existing callers; the formatter lives in `crate::clock`.
use crate::clock::rfc3339_ms;

/// Joins a base URL (`http://127.0.0.1:3000`, maybe with a path prefix) and a
/// request path (`/hooks?x=1`) without doubling or dropping the `/`.
pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if path.is_empty() {
        base.to_owned()
    } else if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// Headers as `[[name, value], …]`; values that are not UTF-8 are converted
/// lossily (invalid bytes become U+FFFD).
fn headers_json(headers: &[Header]) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|h| json!([h.name, String::from_utf8_lossy(&h.value)]))
            .collect(),
    )
}

/// `{total_bytes, sha256, limit}` of a body held in part, else `null`.
pub(crate) fn truncation_json(t: Option<&crate::capture::Truncation>) -> Value {
    t.map_or(
        Value::Null,
        |t| json!({ "total_bytes": t.total_bytes, "sha256": t.sha256, "limit": t.limit }),
    )
}

fn signature_json(sig: Option<&SignatureVerdict>) -> Value {
    sig.map_or(
        Value::Null,
        |s| json!({ "provider": s.provider, "valid": s.valid, "reason": s.reason }),
    )
}

/// The full JSON view of one exchange, as printed by `hooktunnel show --json`
/// and `export --format json`.
///
/// Shape: `id`, `tunnel`, `received_at` (RFC 3339 UTC), `received_at_ms`,
/// `target`, `url` (target + path), `request {method, path, headers, body_base64,
/// truncated}`, `response {status, headers, body_base64, truncated}` or `null`,
/// `capture_degraded`, `error`, `duration_ms`, `replay_of`, `queued`, `peer`,
/// `public_url`, `signature {provider, valid, reason}` or `null`. `truncated`
/// is `null` for a body kept whole, else `{total_bytes, sha256, limit}` of the
/// whole body (`body_base64` then holds only its head; see [`crate::capture`]). Headers are `[name, value]` pairs in order with
/// duplicates; a value that is not UTF-8 is shown lossily (U+FFFD), while
/// bodies are always base64 of the exact bytes.
pub fn json(ex: &Exchange) -> Value {
    json!({
        "id": ex.id.to_string(),
        "tunnel": ex.tunnel,
        "received_at": rfc3339_ms(ex.received_at_ms),
        "received_at_ms": ex.received_at_ms,
        "target": ex.target,
        "url": join_url(&ex.target, &ex.path),
        "request": {
            "method": ex.method,
            "path": ex.path,
            "headers": headers_json(&ex.request_headers),
            "body_base64": BASE64_STANDARD.encode(&ex.request_body),
            "truncated": truncation_json(ex.request_truncated.as_ref()),
        },
        "response": ex.response.as_ref().map_or(Value::Null, |r| json!({
            "status": r.status,
            "headers": headers_json(&r.headers),
            "body_base64": BASE64_STANDARD.encode(&r.body),
            "truncated": truncation_json(r.truncated.as_ref()),
        })),
        "capture_degraded": ex.capture_degraded,
        "error": ex.error,
        "duration_ms": ex.duration_ms(),
        "replay_of": ex.replay_of.map(|u| u.to_string()),
        "queued": ex.queued,
        "peer": ex.peer,
        "public_url": ex.public_url,
        "signature": signature_json(ex.signature.as_ref()),
    })
}

/// The JSON view of a list row, as printed by `hooktunnel requests --json`:
/// `id`, `received_at`, `received_at_ms`, `method`, `path`, `status`,
/// `duration_ms`, `request_bytes`, `response_bytes`, `error`, `replay_of`,
/// `queued`, `signature`.
pub fn summary_json(s: &ExchangeSummary) -> Value {
    json!({
        "id": s.id.to_string(),
        "tunnel": s.tunnel,
        "received_at": rfc3339_ms(s.received_at_ms),
        "received_at_ms": s.received_at_ms,
        "method": s.method,
        "path": s.path,
        "status": s.status,
        "duration_ms": s.duration_ms,
        "request_bytes": s.request_bytes,
        "response_bytes": s.response_bytes,
        "error": s.error,
        "replay_of": s.replay_of.map(|u| u.to_string()),
        "queued": s.queued,
        "signature": signature_json(s.signature.as_ref()),
    })
}

/// Test fixtures shared by the export submodules.
#[cfg(test)]
pub(crate) mod fixtures {
    use bytes::Bytes;
    use ulid::Ulid;

    use crate::exchange::{Exchange, ExchangeResponse, Header, SignatureVerdict};

    /// A JSON webhook POST with a response.
    pub fn text_exchange() -> Exchange {
        Exchange {
            request_truncated: None,
            capture_degraded: false,
            attempts: 1,
            id: Ulid::generate(),
            tunnel: "demo".into(),
            received_at_ms: 1_700_000_000_123,
            method: "POST".into(),
            path: "/hooks/github?x=1&y=[a]".into(),
            target: "http://127.0.0.1:3000".into(),
            request_headers: vec![
                Header::new("host", "demo.example.com"),
                Header::new("user-agent", "GitHub-Hookshot/abc"),
                Header::new("content-type", "application/json"),
                Header::new("content-length", "42"),
                Header::new("x-github-event", "push"),
                Header::new("x-dup", "one"),
                Header::new("x-dup", "two 'quoted' $HOME `x`"),
                Header::new("x-empty", ""),
                Header::new("connection", "keep-alive"),
                Header::new("cookie", "a=1; b=two"),
            ],
            request_body: Bytes::from_static(
                "{\"ref\":\"refs/heads/main\",\n \"msg\":\"it's $HOME \\\\ `x` é ✓\"}\n".as_bytes(),
            ),
            response: Some(ExchangeResponse {
                truncated: None,
                status: 201,
                headers: vec![
                    Header::new("content-type", "text/plain; charset=utf-8"),
                    Header::new("x-bin", b"a\xffb".to_vec()),
                    Header::new("set-cookie", "sid=xyz; Path=/; HttpOnly"),
                ],
                body: Bytes::from_static(b"created"),
            }),
            duration_us: 12_345,
            error: None,
            replay_of: None,
            queued: true,
            peer: Some("203.0.113.9:51234".into()),
            public_url: Some("https://demo.example.com/hooks/github?x=1&y=[a]".into()),
            signature: Some(SignatureVerdict {
                provider: "github".into(),
                valid: true,
                reason: None,
            }),
        }
    }

    /// A binary PUT that got no response.
    pub fn binary_exchange() -> Exchange {
        let mut ex = text_exchange();
        ex.received_at_ms = 1_700_000_001_000;
        ex.method = "PUT".into();
        ex.path = "/upload/a/../b%20c".into();
        ex.target = "http://127.0.0.1:3000/".into();
        ex.request_headers = vec![
            Header::new("content-type", "application/octet-stream"),
            Header::new("accept", "*/*"),
            Header::new("x-request-id", "r-1"),
        ];
        ex.request_body = (0..=255u8).chain((0..=255u8).rev()).collect();
        ex.response = None;
        ex.duration_us = 30_000_000;
        ex.error = Some("connection refused".into());
        ex.replay_of = Some(Ulid::generate());
        ex.queued = false;
        ex.peer = None;
        ex.public_url = None;
        ex.signature = None;
        ex
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::fixtures::*;
    use super::*;

    #[test]
    fn url_join() {
        assert_eq!(join_url("http://h:1/", "/a?b"), "http://h:1/a?b");
        assert_eq!(join_url("http://h:1/p", "a"), "http://h:1/p/a");
        assert_eq!(join_url("http://h:1", ""), "http://h:1");
    }

    #[test]
    fn json_shape() {
        let ex = text_exchange();
        let v = json(&ex);
        assert_eq!(v["id"], ex.id.to_string());
        assert_eq!(v["tunnel"], "demo");
        assert_eq!(v["received_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["received_at_ms"], 1_700_000_000_123u64);
        assert_eq!(v["target"], "http://127.0.0.1:3000");
        assert_eq!(v["url"], "http://127.0.0.1:3000/hooks/github?x=1&y=[a]");
        assert_eq!(v["request"]["method"], "POST");
        assert_eq!(v["request"]["path"], ex.path);
        assert_eq!(
            v["request"]["headers"][0],
            json!(["host", "demo.example.com"])
        );
        assert_eq!(v["request"]["headers"].as_array().unwrap().len(), 10);
        let body = BASE64_STANDARD
            .decode(v["request"]["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(body, ex.request_body);
        assert_eq!(v["response"]["status"], 201);
        assert_eq!(v["response"]["headers"][1], json!(["x-bin", "a\u{fffd}b"]));
        assert_eq!(
            v["response"]["body_base64"],
            BASE64_STANDARD.encode("created")
        );
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["duration_ms"], 12.3);
        assert_eq!(v["replay_of"], Value::Null);
        assert_eq!(v["queued"], true);
        assert_eq!(v["peer"], "203.0.113.9:51234");
        assert_eq!(
            v["public_url"],
            "https://demo.example.com/hooks/github?x=1&y=[a]"
        );
        assert_eq!(
            v["signature"],
            json!({"provider": "github", "valid": true, "reason": null})
        );

        let ex = binary_exchange();
        let v = json(&ex);
        assert_eq!(v["response"], Value::Null);
        assert_eq!(v["error"], "connection refused");
        assert_eq!(v["signature"], Value::Null);
        assert_eq!(v["request"]["truncated"], Value::Null);
        assert_eq!(v["capture_degraded"], false);
        assert_eq!(v["replay_of"], ex.replay_of.unwrap().to_string());
        assert_eq!(v["url"], "http://127.0.0.1:3000/upload/a/../b%20c");
    }

    #[test]
    fn json_says_when_a_body_is_truncated() {
        let mut ex = text_exchange();
        let t = crate::capture::Truncation {
            total_bytes: 1000,
            sha256: "0f".repeat(32),
            limit: 4,
        };
        ex.request_body = ex.request_body.slice(..4);
        ex.request_truncated = Some(t.clone());
        if let Some(r) = ex.response.as_mut() {
            r.truncated = Some(t);
        }
        let v = json(&ex);
        let want = json!({"total_bytes": 1000, "sha256": "0f".repeat(32), "limit": 4});
        assert_eq!(v["request"]["truncated"], want);
        assert_eq!(v["response"]["truncated"], want);
        let head = BASE64_STANDARD
            .decode(v["request"]["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(head.len(), 4);

        let entry = &har(std::slice::from_ref(&ex))["log"]["entries"][0];
        assert_eq!(entry["request"]["bodySize"], 1000);
        assert_eq!(
            entry["request"]["postData"]["_truncated"]["totalBytes"],
            1000
        );
        assert_eq!(entry["response"]["content"]["size"], 1000);
        let comment = entry["response"]["content"]["comment"].as_str().unwrap();
        assert!(
            comment.starts_with("truncated: 4 B of 1000 B kept"),
            "{comment}"
        );

        let script = curl(&ex, "http://x", None).script;
        assert!(
            script.starts_with("# hooktunnel: WARNING: the request body was captured only in part"),
            "{script}"
        );
    }

    #[test]
    fn summary_json_shape() {
        let ex = text_exchange();
        let v = summary_json(&ex.summary());
        assert_eq!(v["tunnel"], "demo");
        for key in [
            "id",
            "tunnel",
            "received_at",
            "received_at_ms",
            "method",
            "path",
            "status",
            "duration_ms",
            "request_bytes",
            "response_bytes",
            "error",
            "replay_of",
            "queued",
            "signature",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["status"], 201);
        assert_eq!(v["request_bytes"], ex.request_body.len() as u64);
        assert_eq!(v["response_bytes"], 7);
        assert_eq!(v["received_at"], "2023-11-14T22:13:20.123Z");
        let v = summary_json(&binary_exchange().summary());
        assert_eq!(v["status"], Value::Null);
        assert_eq!(v["error"], "connection refused");
    }
}
