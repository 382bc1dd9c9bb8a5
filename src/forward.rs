//! The one HTTP client that talks to the local app, shared by the live
//! path and replay.
//!
//! Bytes pass through untouched: no redirects followed, no decompression,
//! the path appended to the configured base verbatim (never URL `join`, which
//! would let `//evil.host/x` pick another host).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::exchange::{ExchangeResponse, Header};
use hooktunnel_protocol::{self as protocol, ERROR_HEADER, HttpErrorCode};

/// Default time the local app has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest local response passed back through the tunnel.
pub const MAX_RESPONSE_BYTES: usize = protocol::MAX_RESPONSE_BYTES;

/// Why a target could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a port and not an http URL.
    #[error("'{0}' is not a port or an http:// URL (examples: 3000, http://localhost:8080/api)")]
    Invalid(String),
    /// An https:// URL.
    #[error(
        "https:// local targets are not supported yet; point hooktunnel at the app's plain http port"
    )]
    Https,
}

/// Where the local app lives: scheme, authority and an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// Path prefix without a trailing slash (often empty).
    pub base_path: String,
}

impl Target {
    /// Parses `3000`, `localhost:3000` or `http://host:port/prefix`.
    pub fn parse(input: &str) -> Result<Self, TargetError> {
        let invalid = || TargetError::Invalid(input.to_owned());
        if input.starts_with("https://") {
            return Err(TargetError::Https);
        }
        if let Ok(port) = input.parse::<u16>() {
            if port == 0 {
                return Err(invalid());
            }
            return Ok(Self {
                authority: format!("localhost:{port}"),
                base_path: String::new(),
            });
        }
        let rest = input.strip_prefix("http://").unwrap_or(input);
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let uri: http::uri::Authority = authority.parse().map_err(|_| invalid())?;
        let host = uri.host();
        let host_ok = (host.starts_with('[') && host.ends_with(']'))
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        if !host_ok || authority.contains('@') || path.contains(['?', '#']) {
            return Err(invalid());
        }
        let authority = if uri.port().is_some() {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL, e.g. `http://localhost:3000`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.authority, self.base_path)
    }

    /// The full URL for a request path: base plus path, verbatim.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let path = if path_and_query.starts_with('/') {
            path_and_query.to_owned()
        } else {
            format!("/{path_and_query}")
        };
        format!("http://{}{}{path}", self.authority, self.base_path)
    }
}

/// A request to send to the local app.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Headers as captured.
    pub headers: &'a [Header],
    /// Body bytes.
    pub body: Bytes,
}

/// What came of forwarding one request.
#[derive(Clone, Debug)]
pub struct Forwarded {
    /// The app's answer, or hooktunnel's own 502/504 (marked with `x-hooktunnel-error`).
    pub response: ExchangeResponse,
    /// Set when the app did not answer normally.
    pub error: Option<String>,
    /// Time until the whole response was read.
    pub duration_us: u64,
}

/// The pooled client for one local target.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    target: Target,
    timeout: Duration,
}

impl Forwarder {
    /// Builds the pooled client.
    pub fn new(target: Target, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Self {
            client,
            target,
            timeout,
        }
    }

    /// The target this forwarder sends to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends one request and always comes back with something to record.
    pub async fn forward(&self, out: Outgoing<'_>) -> Forwarded {
        let started = Instant::now();
        let url = self.target.url_for(out.path);
        let result = tokio::time::timeout(self.timeout, self.send(&url, &out)).await;
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match result {
            Ok(Ok(response)) => Forwarded {
                response,
                error: None,
                duration_us,
            },
            Ok(Err(failure)) => {
                let message = format!("could not reach the local app at {url}: {failure}");
                Forwarded {
                    response: own_answer(502, HttpErrorCode::LocalUnreachable, &message),
                    error: Some(message),
                    duration_us,
                }
            }
            Err(_) => {
                let message = format!(
                    "the local app at {url} did not answer within {}s",
                    self.timeout.as_secs_f32()
                );
                Forwarded {
                    response: own_answer(504, HttpErrorCode::LocalTimeout, &message),
                    error: Some(message),
                    duration_us,
                }
            }
        }
    }

    async fn send(&self, url: &str, out: &Outgoing<'_>) -> Result<ExchangeResponse, String> {
        let mut builder = http::Request::builder()
            .method(out.method.as_bytes())
            .uri(url);
        let tokens = protocol::connection_tokens(out.headers);
        for h in out.headers {
            if protocol::is_hop_by_hop(&h.name, &tokens) {
                continue;
            }
            if h.name.eq_ignore_ascii_case("host") {
                builder = builder.header(http::header::HOST, self.target.authority.as_str());
                continue;
            }
            builder = builder.header(h.name.as_str(), h.value.as_slice());
        }
        let request = builder
            .body(Full::new(out.body.clone()))
            .map_err(|e| format!("invalid request: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| crate::error_chain::root_cause(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the response failed: {e}"))?
            .to_bytes();
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| Header::new(n.as_str(), v.as_bytes()))
            .collect();
        Ok(ExchangeResponse {
            status: parts.status.as_u16(),
            headers,
            body,
        })
    }
}

/// A response hooktunnel makes itself, marked with `x-hooktunnel-error`.
pub fn own_answer(status: u16, code: HttpErrorCode, message: &str) -> ExchangeResponse {
    ExchangeResponse {
        status,
        headers: vec![
            Header::new("content-type", "text/plain; charset=utf-8"),
            Header::new(ERROR_HEADER, code.as_str()),
        ],
        body: Bytes::from(format!("hooktunnel: {message}\n")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("3000").unwrap();
        assert_eq!(t.base_url(), "http://localhost:3000");
        let t = Target::parse("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(t.url_for("/hook?x=1"), "http://127.0.0.1:8080/api/hook?x=1");
        let t = Target::parse("example.test").unwrap();
        assert_eq!(t.authority, "example.test:80");
        assert_eq!(Target::parse("https://x"), Err(TargetError::Https));
        for bad in [
            "0",
            "",
            "http://",
            "http://a b",
            "http://h/p?q",
            "not-a-port!",
            "u@h:1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_never_change_the_host() {
        let t = Target::parse("http://127.0.0.1:9").unwrap();
        let url = t.url_for("//evil.example/x");
        let uri: http::Uri = url.parse().unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:9");
        assert_eq!(uri.path(), "//evil.example/x");
        let uri: http::Uri = t.url_for("/..%2f..%2fx").parse().unwrap();
        assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:9");
    }
}
