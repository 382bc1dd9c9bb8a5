//! Invariants every request and response frame must hold before either side
//! acts on it. A frame that breaks one is answered `502 protocol_error` at
//! once instead of, say, making a local app wait for body bytes that never
//! come.

use super::{Header, Request, Response};

/// How a frame breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The method is not an HTTP token.
    #[error("the method is not a valid HTTP method")]
    BadMethod,
    /// The target is not origin-form (`/path?query`) or `*`.
    #[error("the request target is not a path starting with '/'")]
    BadTarget,
    /// A header name or value HTTP does not allow.
    #[error("header '{0}' is not a valid HTTP header")]
    BadHeader(String),
    /// `Content-Length` is repeated with different values or is not a number.
    #[error("Content-Length is not a single number")]
    BadContentLength,
    /// `Content-Length` says one thing, the body another.
    #[error("Content-Length says {declared} bytes but the body has {actual}")]
    LengthMismatch {
        /// The declared length.
        declared: u64,
        /// The body's length.
        actual: usize,
    },
    /// A final status outside 200–599 (1xx are interim, never final).
    #[error("status {0} cannot be a final answer")]
    BadStatus(u16),
}

/// Checks names and values, and returns the one `Content-Length` (if any).
fn check_headers(headers: &[Header]) -> Result<Option<u64>, Violation> {
    let mut length = None;
    for h in headers {
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err()
            || http::HeaderValue::from_bytes(&h.value).is_err()
        {
            return Err(Violation::BadHeader(h.name.chars().take(64).collect()));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value: u64 = std::str::from_utf8(&h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(Violation::BadContentLength)?;
            if length.is_some_and(|l| l != value) {
                return Err(Violation::BadContentLength);
            }
            length = Some(value);
        }
    }
    Ok(length)
}

fn check_length(declared: Option<u64>, actual: usize) -> Result<(), Violation> {
    match declared {
        Some(declared) if declared != actual as u64 => {
            Err(Violation::LengthMismatch { declared, actual })
        }
        _ => Ok(()),
    }
}

/// A request frame (relay → agent) the agent may forward.
pub fn check_request(request: &Request) -> Result<(), Violation> {
    let declared = check_request_head(request)?;
    check_length(declared, request.body.len())
}

/// A streamed request's head (protocol v2): method, target and headers;
/// returns the declared `Content-Length`. The body is framed by HTTP/2, so
/// a length that does not match it fails the stream, not this check.
pub fn check_request_head(request: &Request) -> Result<Option<u64>, Violation> {
    if http::Method::from_bytes(request.method.as_bytes()).is_err() {
        return Err(Violation::BadMethod);
    }
    let target = request.target.as_str();
    let origin_form = target.starts_with('/') && target.parse::<http::uri::PathAndQuery>().is_ok();
    if !(origin_form || target == "*") {
        return Err(Violation::BadTarget);
    }
    check_headers(&request.headers)
}

/// A streamed answer's head (protocol v2): a final status, or `101` when
/// the request asked for an upgrade; valid headers.
pub fn check_response_head(response: &Response, upgrade: bool) -> Result<(), Violation> {
    let switching = upgrade && response.status == 101;
    if !(switching || (200..=599).contains(&response.status)) {
        return Err(Violation::BadStatus(response.status));
    }
    check_headers(&response.headers).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn request(method: &str, target: &str, headers: Vec<Header>, body: &'static str) -> Request {
        Request {
            id: ulid::Ulid::nil(),
            method: method.into(),
            target: target.into(),
            headers,
            peer: None,
            received_at_ms: 0,
            public_url: None,
            queued: false,
            needs_ack: false,
            tunnel: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn response(status: u16, headers: Vec<Header>, body: &'static str) -> Response {
        Response {
            id: ulid::Ulid::nil(),
            status,
            headers,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn request_invariants() {
        let cl = |v: &str| vec![Header::new("content-length", v)];
        assert_eq!(
            check_request(&request("POST", "/x?a=1", cl("2"), "ok")),
            Ok(())
        );
        assert_eq!(check_request(&request("OPTIONS", "*", vec![], "")), Ok(()));
        assert_eq!(
            check_request(&request("POST", "/", cl("100"), "x")),
            Err(Violation::LengthMismatch {
                declared: 100,
                actual: 1
            })
        );
        let two = vec![
            Header::new("content-length", "1"),
            Header::new("Content-Length", "2"),
        ];
        assert_eq!(
            check_request(&request("POST", "/", two, "x")),
            Err(Violation::BadContentLength)
        );
        assert_eq!(
            check_request(&request("POST", "/", cl("-1"), "")),
            Err(Violation::BadContentLength)
        );
        assert_eq!(
            check_request(&request("GE T", "/", vec![], "")),
            Err(Violation::BadMethod)
        );
        assert_eq!(
            check_request(&request("GET", "//evil.example/x", vec![], "")),
            Ok(())
        );
        for bad in ["", "x", "http://evil/", "/a b"] {
            assert_eq!(
                check_request(&request("GET", bad, vec![], "")),
                Err(Violation::BadTarget),
                "{bad}"
            );
        }
        let bad_header = vec![Header::new("x\ny", "v")];
        assert!(matches!(
            check_request(&request("GET", "/", bad_header, "")),
            Err(Violation::BadHeader(_))
        ));
    }

    #[test]
    fn response_invariants() {
        let cl = |v: &str| vec![Header::new("content-length", v)];
        assert_eq!(
            check_response_head(&response(200, cl("2"), ""), false),
            Ok(())
        );
        let two = vec![
            Header::new("content-length", "1"),
            Header::new("content-length", "2"),
        ];
        assert_eq!(
            check_response_head(&response(200, two, ""), false),
            Err(Violation::BadContentLength)
        );
        for status in [0, 100, 101, 103, 199, 600, 999] {
            assert_eq!(
                check_response_head(&response(status, vec![], ""), false),
                Err(Violation::BadStatus(status))
            );
        }
    }

    #[test]
    fn streamed_heads_allow_101_only_for_upgrades() {
        assert_eq!(
            check_response_head(&response(101, vec![], ""), true),
            Ok(())
        );
        assert_eq!(
            check_response_head(&response(101, vec![], ""), false),
            Err(Violation::BadStatus(101))
        );
        assert_eq!(
            check_response_head(&response(200, vec![], ""), false),
            Ok(())
        );
        let cl = vec![Header::new("content-length", "9")];
        assert_eq!(
            check_request_head(&request("POST", "/", cl, "")),
            Ok(Some(9))
        );
    }

    proptest! {
        #[test]
        fn checks_never_panic(
            method in ".{0,12}",
            target in ".{0,40}",
            name in ".{0,12}",
            value in proptest::collection::vec(any::<u8>(), 0..20),
            status in any::<u16>(),
        ) {
            let headers = vec![Header { name, value }];
            let mut r = request("GET", "/", headers.clone(), "body");
            r.method = method;
            r.target = target;
            let _ = check_request(&r);
            let mut a = response(200, headers, "body");
            a.status = status;
            let _ = check_response_head(&a, false);
            let _ = check_response_head(&a, true);
        }
    }
}
