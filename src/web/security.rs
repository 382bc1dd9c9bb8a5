//! What keeps a local inspector safe on a laptop: any web page the user
//! visits can make the browser talk to `127.0.0.1:4040`.
//!
//! - DNS rebinding: a hostile name resolving to 127.0.0.1 still sends its own
//!   `Host`, so only the loopback names with our port are served (403 else).
//! - Cross-site writes: state-changing calls with a foreign `Origin` or a
//!   `Sec-Fetch-Site` other than `same-origin`/`none` are refused, and a POST
//!   must be JSON or carry `X-Hooktunnel`, which a plain HTML form cannot send.
//! - With `--web-token`, every call needs `Authorization: Bearer TOKEN` (or
//!   the cookie the page gets after opening `/?token=TOKEN`).
//! - Every response carries a strict CSP (no inline script), `nosniff`,
//!   `frame-ancestors 'none'` and no referrer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::WebState;

/// The page's Content-Security-Policy: only our own files, no inline script or style.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; object-src 'none'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Header a script may set to mark a state-changing call as ours.
pub const CSRF_HEADER: &str = "x-hooktunnel";

/// Cookie holding the token for the page, when a token is required.
pub const TOKEN_COOKIE: &str = "hooktunnel_token";

/// `Host` values that name this server on loopback.
pub fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        hosts.push(addr.to_string());
    }
    hosts
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not one of ours (DNS rebinding).
    Host,
    /// A state-changing call from another site.
    CrossOrigin(&'static str),
    /// Token missing or wrong.
    Token,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Host => (
                StatusCode::FORBIDDEN,
                "forbidden: unexpected Host header (open the inspector as http://127.0.0.1:PORT/ or http://localhost:PORT/)",
            ),
            Self::CrossOrigin(why) => (StatusCode::FORBIDDEN, why),
            Self::Token => (
                StatusCode::UNAUTHORIZED,
                "unauthorized: pass Authorization: Bearer <--web-token>, or open /?token=<--web-token>",
            ),
        };
        let body = serde_json::json!({ "error": message });
        (status, axum::Json(body)).into_response()
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The cookie value named `name`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The checks, pure: `Ok(true)` when the page should get the token cookie.
pub fn check(
    state: &WebState,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<bool, Refusal> {
    let host = header_str(headers, header::HOST).unwrap_or_default();
    let mut set_cookie = false;
    match &state.token {
        Some(token) => {
            let bearer = header_str(headers, header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|v| same(v.trim(), token));
            let from_cookie = cookie(headers, TOKEN_COOKIE).is_some_and(|v| same(v, token));
            let from_query =
                method == Method::GET && query_token(query).is_some_and(|v| same(v, token));
            if !(bearer || from_cookie || from_query) {
                return Err(Refusal::Token);
            }
            set_cookie = from_query;
        }
        None => {
            if !state.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Err(Refusal::Host);
            }
        }
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Some(site) = header_str(headers, "sec-fetch-site")
            && !matches!(site, "same-origin" | "none")
        {
            return Err(Refusal::CrossOrigin(
                "forbidden: cross-site request (Sec-Fetch-Site)",
            ));
        }
        if let Some(origin) = header_str(headers, header::ORIGIN) {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if authority.is_none_or(|a| !a.eq_ignore_ascii_case(host)) {
                return Err(Refusal::CrossOrigin(
                    "forbidden: cross-origin request (Origin)",
                ));
            }
        }
        if *method == Method::POST {
            let json = header_str(headers, header::CONTENT_TYPE).is_some_and(|c| {
                c.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
            if !json && !headers.contains_key(CSRF_HEADER) {
                return Err(Refusal::CrossOrigin(
                    "forbidden: send Content-Type: application/json (or an X-Hooktunnel header)",
                ));
            }
        }
    }
    Ok(set_cookie)
}

/// Middleware: refuses what [`check`] refuses, and adds the security headers.
pub async fn guard(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let verdict = check(&state, req.method(), req.headers(), req.uri().query());
    let mut response = match verdict {
        Ok(set_cookie) => {
            let mut r = next.run(req).await;
            if set_cookie
                && let Some(token) = &state.token
                && let Ok(v) = HeaderValue::from_str(&format!(
                    "{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                ))
            {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(refusal) => refusal.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state(token: Option<&str>) -> WebState {
        WebState::new(
            "/nonexistent".into(),
            "127.0.0.1:4040".parse().unwrap(),
            token.map(str::to_owned),
            Vec::new(),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_loopback_hosts_with_our_port_pass() {
        let s = state(None);
        for ok in [
            "127.0.0.1:4040",
            "localhost:4040",
            "[::1]:4040",
            "LOCALHOST:4040",
        ] {
            assert_eq!(
                check(&s, &Method::GET, &headers(&[("host", ok)]), None),
                Ok(false)
            );
        }
        for bad in [
            "evil.example",
            "evil.example:4040",
            "127.0.0.1:4041",
            "localhost",
        ] {
            assert_eq!(
                check(&s, &Method::GET, &headers(&[("host", bad)]), None),
                Err(Refusal::Host),
                "{bad}"
            );
        }
        assert_eq!(
            check(&s, &Method::GET, &HeaderMap::new(), None),
            Err(Refusal::Host)
        );
    }

    #[test]
    fn cross_site_writes_are_refused() {
        let s = state(None);
        let host = ("host", "127.0.0.1:4040");
        let json = ("content-type", "application/json");
        let cases = [
            headers(&[host, json, ("origin", "http://evil.example")]),
            headers(&[host, json, ("origin", "null")]),
            headers(&[host, json, ("sec-fetch-site", "cross-site")]),
            headers(&[host, json, ("sec-fetch-site", "same-site")]),
            // A plain form post: no JSON, no custom header.
            headers(&[host, ("content-type", "text/plain")]),
        ];
        for h in cases {
            assert!(
                matches!(
                    check(&s, &Method::POST, &h, None),
                    Err(Refusal::CrossOrigin(_))
                ),
                "{h:?}"
            );
        }
        let ours = headers(&[
            host,
            json,
            ("origin", "http://127.0.0.1:4040"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check(&s, &Method::POST, &ours, None), Ok(false));
        // curl: no Origin, JSON body.
        assert_eq!(
            check(&s, &Method::POST, &headers(&[host, json]), None),
            Ok(false)
        );
        assert_eq!(
            check(&s, &Method::DELETE, &headers(&[host]), None),
            Ok(false)
        );
        assert!(
            check(
                &s,
                &Method::DELETE,
                &headers(&[host, ("origin", "http://evil.example")]),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn a_token_is_needed_when_set() {
        let s = state(Some("s3cret"));
        let host = ("host", "box.lan:4040");
        assert_eq!(
            check(&s, &Method::GET, &headers(&[host]), None),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(
                &s,
                &Method::GET,
                &headers(&[host, ("authorization", "Bearer wrong")]),
                None
            ),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(
                &s,
                &Method::GET,
                &headers(&[host, ("authorization", "Bearer s3cret")]),
                None
            ),
            Ok(false)
        );
        assert_eq!(
            check(&s, &Method::GET, &headers(&[host]), Some("token=s3cret")),
            Ok(true)
        );
        assert_eq!(
            check(
                &s,
                &Method::GET,
                &headers(&[host, ("cookie", "a=b; hooktunnel_token=s3cret")]),
                None
            ),
            Ok(false)
        );
    }
}
