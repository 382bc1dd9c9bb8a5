//! Public ingress: find the tunnel, capture the request, wait for the answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;

use super::ConnInfo;
use super::body::{BodyLimits, Streamed, Verdict, declared_length, read_body};
use super::live::{Hold, forward_live};
use std::sync::atomic::Ordering;

use crate::durable::{Enqueue, EnqueueError};
use crate::error::RelayError;
use crate::forwarded::{self, Seen};
use crate::limit;
use crate::memory::LIVE_STREAM_BYTES;
use crate::metrics;
use crate::name::{self, NameError};
use crate::protocol::{self, Mode, RelayMessage, Request, now_ms};
use crate::state::{AppState, SlotRefused, Tunnel};

/// Where a public request is headed.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// The tunnel name (validated, lowercase).
    pub name: String,
    /// Path and query for the local app, exactly as received after the tunnel prefix.
    pub target: String,
}

/// Why a request reaches no tunnel.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Neither a tunnel Host nor a `/t/<name>` path.
    NoTunnel,
    /// A tunnel name that breaks the naming rules (never decoded or rewritten).
    BadName(NameError),
}

/// Finds the tunnel for a request from its host (`<name>.<domain>`, only
/// with a domain) or its path (`/t/<name>/…`).
///
/// Both forms apply the same rule: the name must pass [`name::validate`] as
/// given. The host is lowercased first (DNS names are case-insensitive); the
/// path is not (`/t/Demo` is refused, not folded), and nothing is
/// percent-decoded, so `%2e%2e` or `..` can never name a tunnel.
pub fn route(
    domain: Option<&str>,
    host: Option<&str>,
    path_and_query: &str,
) -> Result<Route, RouteError> {
    if let (Some(domain), Some(host)) = (domain, host) {
        let host = host.to_ascii_lowercase();
        let host = strip_port(&host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(label) = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.'))
            && !label.contains('.')
        {
            name::validate(label).map_err(RouteError::BadName)?;
            return Ok(Route {
                name: label.to_owned(),
                target: path_and_query.to_owned(),
            });
        }
    }
    let rest = path_and_query
        .strip_prefix("/t/")
        .ok_or(RouteError::NoTunnel)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    name::validate(name).map_err(RouteError::BadName)?;
    let target = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        format!("/{tail}")
    };
    Ok(Route {
        name: name.to_owned(),
        target,
    })
}

/// `host` without a trailing `:port`.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The host a request names: the absolute-form authority when present
/// (RFC 9112 §3.2.2), else the `Host` header. Routing, the public URL and
/// `X-Forwarded-Host` all read this one value.
pub fn request_host<'a>(uri: &'a axum::http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// Every request no control route takes: route, capture, forward or queue.
pub async fn ingress(
    State(state): State<Arc<AppState>>,
    Extension(conn): Extension<ConnInfo>,
    req: axum::extract::Request,
) -> Response {
    let method = req.method().as_str().to_owned();
    let (uri, host) = (
        req.uri().clone(),
        request_host(req.uri(), req.headers()).map(str::to_owned),
    );
    let started = std::time::Instant::now();
    let mut seen = None;
    let (response, refused) = match capture(&state, conn, req, &mut seen).await {
        Ok(response) => (response, false),
        Err(refused) => {
            let known = seen.is_some();
            tell_agent(&state, &method, &uri, host.as_deref(), &refused, known);
            (refused.into_response(), true)
        }
    };
    if let Some((tunnel, queued)) = seen {
        let outcome = metrics::Outcome {
            status: response.status().as_u16(),
            refused,
            queued,
            elapsed: started.elapsed(),
        };
        state.metrics.tunnels.observe(&tunnel, outcome);
    }
    response
}

/// Tells a live tunnel's agent about a request refused before reaching it.
/// `known`: the request named an existing tunnel (only those are published
/// to other nodes, so refusals for made-up names cost Redis nothing).
fn tell_agent(
    state: &AppState,
    method: &str,
    uri: &axum::http::Uri,
    host: Option<&str>,
    refused: &RelayError,
    known: bool,
) {
    if !matches!(
        refused,
        RelayError::BodyTooLarge(_)
            | RelayError::QueuedBodyTooLarge(_)
            | RelayError::RelayBusy(_)
            | RelayError::BadBody
            | RelayError::BodyTimeout(_)
            | RelayError::RateLimited { .. }
            | RelayError::TunnelBusy { .. }
            | RelayError::Edge(_)
    ) {
        return;
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(route) = route(state.config.domain.as_deref(), host, path_and_query) else {
        return;
    };
    let note = protocol::RefusedRequest {
        method: method.to_owned(),
        path: crate::refusals::short_path(&route.target),
        status: refused.status().as_u16(),
        reason: refused.code().as_str().to_owned(),
    };
    if let Some(tunnel) = state.tunnel(&route.name) {
        tunnel.refused(note);
    } else if let Some(cluster) = state.cluster.as_ref().filter(|_| known) {
        // Cluster (#15): the agent may be on another node; that node gets
        // the note (published, coalesced, lossy like local notes).
        cluster.notes.refused(&route.name, note);
    }
}

/// `seen` gets the tunnel's name (and whether the request is for the
/// queue) once the request is known to be for an existing tunnel.
async fn capture(
    state: &Arc<AppState>,
    conn: ConnInfo,
    req: axum::extract::Request,
    seen: &mut Option<(String, bool)>,
) -> Result<Response, RelayError> {
    let mut req = req;
    let upgrade =
        upgrade_of(req.headers()).map(|protocol| (protocol, hyper::upgrade::on(&mut req)));
    let (parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let host = request_host(&parts.uri, &parts.headers);
    let route = match route(state.config.domain.as_deref(), host, path_and_query) {
        Ok(route) => route,
        Err(RouteError::BadName(e)) => return Err(RelayError::InvalidTunnelName(e)),
        Err(RouteError::NoTunnel) if path_and_query.starts_with("/_hooktunnel/") => {
            return Err(RelayError::NotFound);
        }
        Err(RouteError::NoTunnel) => return Err(RelayError::NoTunnel),
    };
    let mut live = state.tunnel(&route.name);
    // Cluster (#15): a tunnel held on another node is streamed through it;
    // that node, which has the agent's signing secret, verifies signatures.
    let mut remote = false;
    if live.is_none()
        && let Some(cluster) = &state.cluster
    {
        live = cluster.routes.remote(state, &route.name).await;
        remote = live.is_some();
    }
    let needs_queue = match &live {
        Some(t) => t.mode == Mode::Ack,
        None => state.durable.is_known(&route.name).await.map_err(|e| {
            tracing::error!(error = %e, "name registry failed");
            RelayError::Storage("cannot read its registry")
        })?,
    };
    if live.is_none() && !needs_queue {
        return Err(RelayError::UnknownTunnel(route.name));
    }
    *seen = Some((route.name.clone(), needs_queue || live.is_none()));
    if let Some(limiter) = &state.tunnel_limiter
        && let Err(wait) = limiter.check(&route.name)
    {
        state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(RelayError::RateLimited {
            what: "for this tunnel",
            wait,
        });
    }
    let client_ip = forwarded::client_ip(&parts.headers, conn.peer.ip(), state.config.trust_proxy);
    // Edge rules (issue 17): who may call, before a slot or a body byte.
    let edge = super::edge::admit(state, &route.name, &parts.headers, client_ip)?;
    if live.is_none()
        && let Some(answer) = super::edge::offline_answer(edge.as_deref())
    {
        *seen = Some((route.name, false));
        return Ok(answer);
    }
    let client = limit::ip_key(client_ip);
    let slot = match &live {
        Some(tunnel) if !needs_queue => {
            let max = state.config.max_in_flight_per_tunnel;
            let per_client = state.config.max_in_flight_per_ip.unwrap_or(max);
            match tunnel.try_begin(client, max, per_client) {
                Ok(slot) => Some(slot),
                Err(SlotRefused::Tunnel) => {
                    state.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
                    return Err(RelayError::TunnelBusy {
                        name: route.name,
                        max,
                    });
                }
                Err(SlotRefused::Client) => {
                    state.metrics.client_busy.fetch_add(1, Ordering::Relaxed);
                    return Err(RelayError::ClientBusy {
                        name: route.name,
                        max: per_client,
                    });
                }
            }
        }
        _ => None,
    };
    let config = &state.config;
    let mut limits = BodyLimits {
        max: config.max_body_bytes,
        timeout: config.body_read_timeout,
        min_rate: config.min_body_rate,
        grace: config.body_rate_grace,
    };
    let queued_max = config.queue_max_entry.min(config.max_body_bytes);
    if needs_queue && queued_max < limits.max {
        if declared_length(&parts.headers).is_some_and(|n| n > queued_max as u64) {
            return Err(RelayError::QueuedBodyTooLarge(queued_max));
        }
        limits.max = queued_max;
    }
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let scheme = if conn.tls || state.base_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut headers = forwarded::request_headers(
        &parts.headers,
        Seen {
            peer: conn.peer.ip(),
            scheme: if conn.tls { "https" } else { "http" },
            host,
        },
        state.config.trust_proxy,
    );
    let public_url = match host {
        Some(host) => format!("{scheme}://{host}{path_and_query}"),
        None => format!("{}{path_and_query}", state.base_url),
    };
    let (upgrade, on_upgrade) = match upgrade {
        // Upgrades are live only: a queued request has no connection to switch.
        Some((protocol, on_upgrade)) if live.is_some() && !needs_queue => {
            headers.push(protocol::Header::new("connection", "upgrade"));
            headers.push(protocol::Header::new("upgrade", protocol.as_bytes()));
            (true, Some(on_upgrade))
        }
        _ => (false, None),
    };
    let mut request = Request {
        id: protocol::next_id(),
        method: parts.method.as_str().to_owned(),
        target: route.target,
        headers,
        peer: Some(conn.peer.to_string()),
        received_at_ms: now_ms(),
        public_url: Some(public_url),
        queued: live.is_none(),
        needs_ack: needs_queue,
        tunnel: Some(route.name.clone()),
        body: Bytes::new(),
    };
    match live {
        Some(tunnel) if !needs_queue => {
            if declared_length(&parts.headers).is_some_and(|n| n > limits.max as u64) {
                // Refused before reading, so `Expect: 100-continue` senders never send it.
                return Err(RelayError::BodyTooLarge(limits.max));
            }
            let Some(reservation) = state.memory.try_reserve(LIVE_STREAM_BYTES) else {
                state.metrics.relay_busy.fetch_add(1, Ordering::Relaxed);
                return Err(RelayError::RelayBusy(state.memory.limit()));
            };
            // Edge verification (issue 17) reads the whole body first, under --max-body.
            let (body, _whole) = super::edge::read_verified(
                state,
                &route.name,
                edge.as_deref().filter(|_| !remote),
                &parts.headers,
                body,
                limits,
                upgrade,
            )
            .await?;
            let verdict = if upgrade {
                Verdict::ended_now()
            } else {
                Verdict::default()
            };
            let body = if upgrade {
                None
            } else {
                Some(axum::body::Body::new(Streamed::new(
                    body,
                    limits,
                    verdict.clone(),
                )))
            };
            let hold = Hold {
                _slot: slot,
                _reservation: reservation,
                _counted: state.begin_waiting(),
            };
            let result = forward_live(
                state,
                &tunnel,
                request,
                body,
                on_upgrade,
                verdict.clone(),
                hold,
            )
            .await;
            if let Err(RelayError::BodyTooSlow(_)) = &result {
                state.metrics.body_too_slow.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
        live => {
            let reserve = declared_length(&parts.headers)
                .unwrap_or(limits.max as u64)
                .min(limits.max as u64);
            let Some(_reservation) = state.memory.try_reserve(reserve) else {
                state.metrics.relay_busy.fetch_add(1, Ordering::Relaxed);
                return Err(RelayError::RelayBusy(state.memory.limit()));
            };
            request.body = match read_body(limits, &parts.headers, body).await {
                Err(RelayError::BodyTooLarge(_)) if needs_queue && limits.max == queued_max => {
                    return Err(RelayError::QueuedBodyTooLarge(queued_max));
                }
                Err(e @ RelayError::BodyTooSlow(_)) => {
                    state.metrics.body_too_slow.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                read => read?,
            };
            super::edge::verify_body(
                state,
                &route.name,
                edge.as_deref(),
                &parts.headers,
                &request.body,
            )?;
            queue(state, &route.name, client, live.as_deref(), request).await
        }
    }
}

/// The protocol a request asks to switch to (`Upgrade` plus `Connection: upgrade`).
fn upgrade_of(headers: &HeaderMap) -> Option<String> {
    let connection_says = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_says {
        return None;
    }
    let value = headers
        .get(axum::http::header::UPGRADE)?
        .to_str()
        .ok()?
        .trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Offline or ack mode: store durably (fsync'd), then answer 2xx naming the id.
pub(crate) async fn queue(
    state: &AppState,
    name: &str,
    client: std::net::IpAddr,
    live: Option<&Tunnel>,
    request: Request,
) -> Result<Response, RelayError> {
    let id = request.id;
    let entry = Enqueue {
        name: name.to_owned(),
        client: client.to_string(),
        id,
        frame: RelayMessage::Request(request).encode(),
        limits: state.config.queue_limits,
        now_ms: now_ms(),
    };
    match state.durable.enqueue(entry).await {
        Ok(()) => {}
        Err(EnqueueError::Full(reason)) => {
            state.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tunnel = %name, %reason, "queue full: request refused");
            return Err(RelayError::QueueFull {
                name: name.to_owned(),
                reason,
            });
        }
        Err(EnqueueError::Durable(e)) => {
            tracing::error!(tunnel = %name, error = %e, "cannot queue a request");
            return Err(RelayError::Storage("could not store the request"));
        }
    }
    state.metrics.queued.fetch_add(1, Ordering::Relaxed);
    let (status, custom) = match live {
        Some(tunnel) => {
            tunnel.queued.notify_one();
            (state.config.ack_status, None)
        }
        None => match state.durable.queued_answer(name).await {
            Ok(Some(answer)) => (answer.status, answer.body),
            _ => (state.config.queued_status, None),
        },
    };
    let body = match custom {
        Some(template) => template.replace("{id}", &id.to_string()),
        None if live.is_some() => format!("{{\"accepted\":true,\"id\":\"{id}\"}}"),
        None => format!("{{\"queued\":true,\"id\":\"{id}\"}}"),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-hooktunnel-id", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn path(r: Result<Route, RouteError>) -> Option<(String, String)> {
        r.ok().map(|r| (r.name, r.target))
    }

    #[test]
    fn path_routing_strips_the_prefix() {
        let r = path(route(None, Some("relay"), "/t/demo/hooks/x?a=1&a=2"));
        assert_eq!(r, Some(("demo".into(), "/hooks/x?a=1&a=2".into())));
        let r = path(route(None, None, "/t/demo?x=1"));
        assert_eq!(r, Some(("demo".into(), "/?x=1".into())));
        let r = path(route(None, None, "/t/demo"));
        assert_eq!(r, Some(("demo".into(), "/".into())));
        let r = path(route(None, None, "/t/demo//evil.example/x"));
        assert_eq!(r, Some(("demo".into(), "//evil.example/x".into())));
        let r = path(route(None, None, "/t/demo/..%2f..%2fetc"));
        assert_eq!(r, Some(("demo".into(), "/..%2f..%2fetc".into())));
        assert_eq!(route(None, None, "/elsewhere"), Err(RouteError::NoTunnel));
        assert_eq!(route(None, None, "/T/demo/"), Err(RouteError::NoTunnel));
    }

    #[test]
    fn path_names_are_validated_not_decoded() {
        for bad in [
            "/t/Demo/",
            "/t/DEMO/",
            "/t/%64emo/",
            "/t/%2e%2e/",
            "/t/../",
            "/t/./x",
            "/t/d%C3%A9mo/",
            "/t/démo/",
            "/t//x",
            "/t/",
            "/t/www/",
            "/t/de.mo/",
        ] {
            assert!(
                matches!(route(None, None, bad), Err(RouteError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_routing_uses_one_lowercased_label() {
        let d = Some("hooks.example.com");
        let r = path(route(d, Some("demo.hooks.example.com:443"), "/x?y"));
        assert_eq!(r, Some(("demo".into(), "/x?y".into())));
        let r = path(route(d, Some("DEMO.Hooks.Example.COM"), "/x"));
        assert_eq!(r, Some(("demo".into(), "/x".into())));
        let r = path(route(d, Some("demo.hooks.example.com."), "/x"));
        assert_eq!(r, Some(("demo".into(), "/x".into())));
        assert_eq!(
            route(d, Some("a.b.hooks.example.com"), "/x"),
            Err(RouteError::NoTunnel)
        );
        assert_eq!(
            route(d, Some("hooks.example.com"), "/x"),
            Err(RouteError::NoTunnel)
        );
        assert!(matches!(
            route(d, Some("démo.hooks.example.com"), "/x"),
            Err(RouteError::BadName(_))
        ));
        for bad in [
            "www.hooks.example.com",
            "a_b.hooks.example.com",
            "-ab.hooks.example.com",
        ] {
            assert!(
                matches!(route(d, Some(bad), "/x"), Err(RouteError::BadName(_))),
                "{bad}"
            );
        }
        // Host and path agree: the same name either way.
        let by_host = path(route(d, Some("My-App.hooks.example.com"), "/"));
        let by_path = path(route(None, None, "/t/my-app/"));
        assert_eq!(by_host, by_path);
    }

    proptest! {
        #[test]
        fn routing_never_panics_and_only_yields_valid_names(
            host in proptest::option::of(".{0,80}"),
            target in ".{0,120}",
            raw in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let raw = String::from_utf8_lossy(&raw).into_owned();
            for t in [&target, &raw, &format!("/t/{target}")] {
                for d in [None, Some("hooks.example.com")] {
                    if let Ok(r) = route(d, host.as_deref(), t) {
                        prop_assert!(name::validate(&r.name).is_ok());
                    }
                }
            }
            let _ = strip_port(&raw);
        }
    }
}
