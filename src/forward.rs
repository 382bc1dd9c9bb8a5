//! The one HTTP client that talks to the local app, shared by the live
//! path and replay.
//!
//! Bytes pass through untouched: no redirects followed, no decompression,
//! the path appended to the configured base verbatim (never URL `join`, which
//! would let `//evil.host/x` pick another host).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod local_tls;

use crate::exchange::{ExchangeResponse, Header};
use hooktunnel_protocol::{self as protocol, ERROR_HEADER, HttpErrorCode};

/// Default time the local app has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest local response passed back through the tunnel.
pub const MAX_RESPONSE_BYTES: usize = protocol::MAX_RESPONSE_BYTES;

/// The forms a target may take, for error messages.
pub const TARGET_FORMS: &str = "PORT (1-65535), HOST:PORT, or http(s)://HOST[:PORT][/base], e.g. 3000, localhost:8080, https://127.0.0.1:8443/api";

/// Why a target could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{input}' is not a local target: {why}; use {TARGET_FORMS}")]
pub struct TargetError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// How the local app is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (see [`ForwardOptions::insecure_local`]).
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where the local app lives: scheme, authority and an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: String,
    /// Path prefix without a trailing slash (often empty).
    pub base_path: String,
}

impl Target {
    /// Parses `3000`, `localhost:3000` or `http(s)://host[:port][/prefix]`.
    pub fn parse(input: &str) -> Result<Self, TargetError> {
        let fail = |why| TargetError {
            input: input.to_owned(),
            why,
        };
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            return match input.parse::<u16>() {
                Ok(port) if port > 0 => Ok(Self {
                    scheme: Scheme::Http,
                    authority: format!("localhost:{port}"),
                    base_path: String::new(),
                }),
                _ => Err(fail("a port must be between 1 and 65535")),
            };
        }
        let (scheme, rest) = if let Some(rest) = input.strip_prefix("http://") {
            (Some(Scheme::Http), rest)
        } else if let Some(rest) = input.strip_prefix("https://") {
            (Some(Scheme::Https), rest)
        } else if input.contains("://") {
            return Err(fail("only http:// and https:// are supported"));
        } else {
            (None, input)
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(fail("the host is missing"));
        }
        if authority.contains('@') {
            return Err(fail("user names and passwords are not supported"));
        }
        if path.contains(['?', '#']) {
            return Err(fail("a base path cannot have a query or fragment"));
        }
        let parsed: http::uri::Authority = authority
            .parse()
            .map_err(|_| fail("the host or port is malformed"))?;
        let host = parsed.host();
        let host_ok = (host.starts_with('[') && host.ends_with(']'))
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        if !host_ok {
            return Err(fail("the host is malformed"));
        }
        // `Authority` drops a port that does not fit in u16; read it as written.
        let written_port = (!authority.ends_with(']'))
            .then(|| authority.rsplit_once(':').map(|(_, p)| p))
            .flatten();
        let port = match (written_port, scheme) {
            (Some(port), _) => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(fail("a port must be between 1 and 65535")),
            },
            (None, Some(Scheme::Http)) => 80,
            (None, Some(Scheme::Https)) => 443,
            (None, None) => return Err(fail("give a port (HOST:PORT) or a URL")),
        };
        Ok(Self {
            scheme: scheme.unwrap_or(Scheme::Http),
            authority: format!("{host}:{port}"),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL, e.g. `http://localhost:3000`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.base_path
        )
    }

    /// The full URL for a request path: base plus path, verbatim.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let path = if path_and_query.starts_with('/') {
            path_and_query.to_owned()
        } else {
            format!("/{path_and_query}")
        };
        format!("{}{path}", self.base_url())
    }
}

/// How the forwarder talks to the local app beyond the target itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Accept any certificate from an `https://` local app (self-signed dev
    /// servers). The handshake is still checked; the identity is not.
    pub insecure_local: bool,
    /// Send this `Host` instead of the target's authority.
    pub host_header: Option<String>,
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

/// Any error a request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body for the local app: whole, or streamed as it arrives.
pub type OutBody = UnsyncBoxBody<Bytes, BoxError>;

/// A whole body as an [`OutBody`].
pub fn whole_body(bytes: Bytes) -> OutBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Why a streamed forward got no answer head, phrased for the exchange.
#[derive(Clone, Debug)]
pub struct Failure {
    /// hooktunnel's own 502/504 for the sender.
    pub response: ExchangeResponse,
    /// What happened, for the history.
    pub error: String,
}

/// The pooled client for one local target.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, OutBody>,
    target: Target,
    timeout: Duration,
    host: String,
}

impl Forwarder {
    /// Builds the pooled client with default options.
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self::with_options(target, timeout, &ForwardOptions::default())
    }

    /// Builds the pooled client.
    pub fn with_options(target: Target, timeout: Duration, options: &ForwardOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(timeout));
        let tls = if options.insecure_local {
            local_tls::insecure()
        } else {
            local_tls::verified()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        let host = options
            .host_header
            .clone()
            .unwrap_or_else(|| target.authority.clone());
        Self {
            client,
            target,
            timeout,
            host,
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
        let duration_us = elapsed_us(started);
        match result {
            Ok(Ok(response)) => Forwarded {
                response,
                error: None,
                duration_us,
            },
            Ok(Err(failure)) => {
                let failure = self.unreachable(&url, &failure);
                Forwarded {
                    response: failure.response,
                    error: Some(failure.error),
                    duration_us,
                }
            }
            Err(_) => {
                let failure = self.too_slow(&url);
                Forwarded {
                    response: failure.response,
                    error: Some(failure.error),
                    duration_us,
                }
            }
        }
    }

    /// Sends the head and streams `body` to the app; resolves with the
    /// app's answer head (within the timeout) while its body still streams.
    /// With `upgrade`, the request keeps `Connection: upgrade` and `Upgrade`
    /// so the app may switch protocols.
    pub async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[Header],
        body: OutBody,
        upgrade: bool,
    ) -> Result<http::Response<Incoming>, Failure> {
        let url = self.target.url_for(path);
        let request = self
            .request(method, &url, headers, upgrade)
            .body(body)
            .map_err(|e| self.unreachable(&url, &format!("invalid request: {e}")))?;
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.unreachable(&url, &crate::error_chain::root_cause(&e))),
            Err(_) => Err(self.too_slow(&url)),
        }
    }

    fn unreachable(&self, url: &str, why: &str) -> Failure {
        let error = format!("could not reach the local app at {url}: {why}");
        Failure {
            response: own_answer(502, HttpErrorCode::LocalUnreachable, &error),
            error,
        }
    }

    fn too_slow(&self, url: &str) -> Failure {
        let error = format!(
            "the local app at {url} did not answer within {}s",
            self.timeout.as_secs_f32()
        );
        Failure {
            response: own_answer(504, HttpErrorCode::LocalTimeout, &error),
            error,
        }
    }

    /// The request head for the app: hop-by-hop fields dropped (but the
    /// upgrade pair when switching protocols), `Host` rewritten.
    fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[Header],
        upgrade: bool,
    ) -> http::request::Builder {
        let mut builder = http::Request::builder().method(method.as_bytes()).uri(url);
        let tokens = protocol::connection_tokens(headers);
        for h in headers {
            let switching = upgrade
                && (h.name.eq_ignore_ascii_case("upgrade")
                    || h.name.eq_ignore_ascii_case("connection"));
            if !switching && protocol::is_hop_by_hop(&h.name, &tokens) {
                continue;
            }
            if h.name.eq_ignore_ascii_case("host") {
                builder = builder.header(http::header::HOST, self.host.as_str());
                continue;
            }
            builder = builder.header(h.name.as_str(), h.value.as_slice());
        }
        builder
    }

    async fn send(&self, url: &str, out: &Outgoing<'_>) -> Result<ExchangeResponse, String> {
        let request = self
            .request(out.method, url, out.headers, false)
            .body(whole_body(out.body.clone()))
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
        Ok(ExchangeResponse {
            status: parts.status.as_u16(),
            headers: headers_of(&parts.headers),
            body,
            truncated: None,
        })
    }
}

/// Microseconds since `started`.
pub fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Headers in the order hyper keeps them.
pub fn headers_of(map: &http::HeaderMap) -> Vec<Header> {
    map.iter()
        .map(|(n, v)| Header::new(n.as_str(), v.as_bytes()))
        .collect()
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
        truncated: None,
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
        let t = Target::parse("example.test:8080").unwrap();
        assert_eq!(t.base_url(), "http://example.test:8080");
        let t = Target::parse("https://x").unwrap();
        assert_eq!((t.scheme, t.authority.as_str()), (Scheme::Https, "x:443"));
        assert_eq!(Target::parse("http://[::1]").unwrap().authority, "[::1]:80");
        assert_eq!(
            Target::parse("https://127.0.0.1:8443/api")
                .unwrap()
                .url_for("/h"),
            "https://127.0.0.1:8443/api/h"
        );
    }

    #[test]
    fn bad_targets_say_why_and_show_the_accepted_forms() {
        for (bad, why) in [
            ("0", "between 1 and 65535"),
            ("70000", "between 1 and 65535"),
            ("localhost:70000", "between 1 and 65535"),
            ("http://h:0", "between 1 and 65535"),
            ("abc", "give a port"),
            ("ftp://x", "only http:// and https://"),
            ("", "host is missing"),
            ("http://", "host is missing"),
            ("http://a b", "malformed"),
            ("http://h:1/p?q", "query"),
            ("not-a-port!", "malformed"),
            ("u@h:1", "user names"),
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("PORT (1-65535), HOST:PORT"), "{bad}: {err}");
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
