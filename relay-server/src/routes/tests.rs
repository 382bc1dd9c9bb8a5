//! The router in process: requests go through `tower::ServiceExt::oneshot`,
//! with the guard middleware and the real durable store.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::{ConnInfo, router};
use crate::config::{MAX_URI_BYTES, RateLimit, RelayConfig};
use crate::durable::Durable;
use crate::protocol::{ERROR_HEADER, HttpErrorCode, Mode};
use crate::state::AppState;

const PEER: &str = "192.0.2.7:40000";

/// Bounds every await in these tests.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap()
}

async fn state(config: RelayConfig) -> Arc<AppState> {
    let durable = bounded(Durable::open(None)).await.unwrap();
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    Arc::new(AppState::new(config, addr, false, durable))
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::get(uri).header(header::HOST, "relay.test")
}

async fn call(state: &Arc<AppState>, req: axum::http::request::Builder) -> Response {
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnInfo {
        peer: PEER.parse().unwrap(),
        tls: false,
    });
    bounded(router(state.clone()).oneshot(req)).await.unwrap()
}

fn code(response: &Response) -> Option<HttpErrorCode> {
    let value = response.headers().get(ERROR_HEADER)?;
    value.to_str().ok()?.parse().ok()
}

fn closes(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v == "close")
}

async fn text(response: Response) -> String {
    let body = bounded(response.into_body().collect()).await.unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn health_answers_with_version_and_tunnel_count() {
    let state = state(RelayConfig::default()).await;
    let response = call(&state, get("/_hooktunnel/health")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["tunnels"], 0);
    assert_eq!(json["protocol"], crate::protocol::PROTOCOL_VERSION);
}

#[tokio::test]
async fn requests_that_reach_no_tunnel_say_why() {
    let state = state(RelayConfig::default()).await;
    for (uri, expected) in [
        ("/t/ghost/hook", HttpErrorCode::UnknownTunnel),
        ("/t/Ghost/hook", HttpErrorCode::InvalidTunnelName),
        ("/elsewhere", HttpErrorCode::NoTunnel),
        ("/_hooktunnel/nope", HttpErrorCode::NotFound),
    ] {
        let response = call(&state, get(uri)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(code(&response), Some(expected), "{uri}");
        assert!(!closes(&response), "{uri}: a 404 keeps the connection");
    }
    let response = call(&state, get("/t/ghost/hook")).await;
    assert!(text(response).await.contains("tunnel 'ghost'"));
}

#[tokio::test]
async fn the_guard_refuses_long_targets_and_ambiguous_heads_on_every_route() {
    let state = state(RelayConfig::default()).await;
    for base in ["/t/demo/", "/_hooktunnel/health", "/"] {
        let long = format!("{base}{}", "a".repeat(MAX_URI_BYTES));
        let response = call(&state, get(&long)).await;
        assert_eq!(response.status(), StatusCode::URI_TOO_LONG, "{base}");
        assert_eq!(code(&response), Some(HttpErrorCode::UriTooLong));
        assert!(closes(&response));
    }
    let two_hosts = get("/_hooktunnel/health").header(header::HOST, "other.test");
    let response = call(&state, two_hosts).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&response), Some(HttpErrorCode::AmbiguousHost));
    assert!(closes(&response));
    let both_lengths = Request::post("/t/demo/")
        .header(header::HOST, "relay.test")
        .header(header::CONTENT_LENGTH, "3")
        .header(header::TRANSFER_ENCODING, "chunked");
    let response = call(&state, both_lengths).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&response), Some(HttpErrorCode::AmbiguousLength));
}

#[tokio::test]
async fn the_guard_rate_limits_per_address_with_retry_after() {
    let rate = RateLimit {
        count: 1.try_into().unwrap(),
        period: Duration::from_secs(60),
        burst: 1.try_into().unwrap(),
    };
    let state = state(RelayConfig {
        rate_per_ip: Some(rate),
        ..RelayConfig::default()
    })
    .await;
    let first = call(&state, get("/_hooktunnel/health")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = call(&state, get("/_hooktunnel/health")).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&second), Some(HttpErrorCode::RateLimited));
    let retry: u64 = second.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(state.metrics.rate_limited.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn connect_needs_a_token_then_a_websocket_upgrade() {
    let state = state(RelayConfig {
        tokens: vec!["right".into()],
        ..RelayConfig::default()
    })
    .await;
    let response = call(&state, get(crate::protocol::CONNECT_PATH)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&response), Some(HttpErrorCode::Unauthorized));
    assert!(closes(&response));
    let wrong = get(crate::protocol::CONNECT_PATH).header(header::AUTHORIZATION, "Bearer wrong");
    assert_eq!(call(&state, wrong).await.status(), StatusCode::UNAUTHORIZED);
    let plain = get(crate::protocol::CONNECT_PATH).header(header::AUTHORIZATION, "Bearer right");
    let response = call(&state, plain).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&response), Some(HttpErrorCode::NotWebsocket));
    assert_eq!(state.metrics.refused.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_known_tunnel_without_its_agent_queues_durably() {
    let state = state(RelayConfig::default()).await;
    let claimed = bounded(state.durable.claim("demo", "key")).await.unwrap();
    assert_eq!(claimed, crate::durable::Claim::Granted);
    let response = call(
        &state,
        Request::post("/t/demo/hook").header(header::HOST, "r"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(text(response).await.contains("\"queued\":true"));
    assert_eq!(bounded(state.durable.depth("demo")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_busy_tunnel_answers_503_with_retry_after() {
    let state = state(RelayConfig {
        max_in_flight_per_tunnel: 0,
        ..RelayConfig::default()
    })
    .await;
    let (_tunnel, _outbound) = state.register("demo", Mode::Proxy, None).unwrap();
    let response = call(&state, get("/t/demo/hook")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&response), Some(HttpErrorCode::TunnelBusy));
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

/// Regression: the relay-wide in-flight count was raised and lowered around
/// an `.await` without a guard, so a sender that disconnected (hyper drops
/// the handler's future) left it raised and shutdown waited its full drain
/// time for a request nobody was waiting for.
#[tokio::test]
async fn a_sender_that_disconnects_leaves_nothing_in_flight() {
    let state = state(RelayConfig::default()).await;
    let (tunnel, _outbound) = state.register("demo", Mode::Proxy, None).unwrap();
    // An agent end that takes streams and never answers them.
    let (relay_io, agent_io) = tokio::io::duplex(64 * 1024);
    tunnel.attach_pipe(relay_io);
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<crate::protocol::Request>(1);
    tokio::spawn(async move {
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let seen_tx = seen_tx.clone();
                async move {
                    let head = crate::protocol::stream::decode_meta(req.headers()).unwrap();
                    let _ = seen_tx.send(head).await;
                    std::future::pending::<Result<hyper::Response<Body>, std::convert::Infallible>>(
                    )
                    .await
                }
            });
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(agent_io), service)
            .await;
    });
    let waiting = tokio::spawn({
        let state = state.clone();
        async move { call(&state, get("/t/demo/hook")).await }
    });
    // The request reached the agent as a stream: it now waits for an answer.
    let request = bounded(seen.recv()).await.unwrap();
    assert_eq!(request.target, "/hook");
    assert_eq!(state.in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(tunnel.in_flight.load(Ordering::SeqCst), 1);
    assert!(
        state.memory.used() > 0,
        "the stream holds its share of the budget"
    );
    // The sender goes away: its request future is dropped mid-await.
    waiting.abort();
    assert!(bounded(waiting).await.unwrap_err().is_cancelled());
    assert_eq!(state.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(tunnel.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(state.memory.used(), 0, "the budget is returned");
}

#[tokio::test]
async fn past_the_memory_budget_requests_get_503_with_retry_after() {
    let state = state(RelayConfig {
        memory_budget: 1024,
        ..RelayConfig::default()
    })
    .await;
    let (_tunnel, _outbound) = state.register("demo", Mode::Proxy, None).unwrap();
    let response = call(&state, get("/t/demo/hook")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&response), Some(HttpErrorCode::RelayBusy));
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert!(text(response).await.contains("--memory-budget"));
}

#[tokio::test]
async fn http11_without_host_is_400_and_http10_is_not() {
    let state = state(RelayConfig::default()).await;
    let response = call(&state, Request::get("/t/demo/")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&response), Some(HttpErrorCode::MissingHost));
    assert!(closes(&response));
    let response = call(
        &state,
        Request::get("/_hooktunnel/health").version(axum::http::Version::HTTP_10),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_not_public_by_default() {
    let state = state(RelayConfig::default()).await;
    let response = call(&state, get("/_hooktunnel/metrics")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&response), Some(HttpErrorCode::NotFound));
    let state = state_with_token().await;
    let response = call(&state, get("/_hooktunnel/metrics")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = call(
        &state,
        get("/_hooktunnel/metrics").header(header::AUTHORIZATION, "Bearer tok"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        text(response)
            .await
            .contains("hooktunnel_conns_refused_total")
    );
}

async fn state_with_token() -> Arc<AppState> {
    state(RelayConfig {
        metrics_token: Some("tok".into()),
        ..RelayConfig::default()
    })
    .await
}

mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    /// Every answer the router may give to anything (no agent is connected).
    const DEFINED: [u16; 8] = [200, 400, 401, 404, 408, 413, 414, 429];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_method_target_headers_and_body_get_a_defined_answer(
            method in prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), "[!-~]{1,10}"],
            target in prop_oneof!["/t/[a-z0-9-]{0,12}/[ -~]{0,40}", "/[ -~]{0,80}", "[ -~]{0,20}"],
            headers in proptest::collection::vec(("[a-zA-Z0-9-]{1,16}", proptest::collection::vec(any::<u8>(), 0..30)), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            http10 in any::<bool>(),
        ) {
            let mut builder = Request::builder().method(method.as_str()).uri(target.as_str());
            if http10 {
                builder = builder.version(axum::http::Version::HTTP_10);
            }
            for (name, value) in &headers {
                builder = builder.header(name.as_str(), value.as_slice());
            }
            let Ok(mut req) = builder.body(Body::from(body)) else {
                // Not a request hyper would hand the router.
                return Ok(());
            };
            req.extensions_mut().insert(ConnInfo { peer: PEER.parse().unwrap(), tls: false });
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let status = rt.block_on(async {
                let state = state(RelayConfig::default()).await;
                let response = bounded(router(state).oneshot(req)).await.unwrap();
                let status = response.status().as_u16();
                let _ = bounded(response.into_body().collect()).await;
                status
            });
            prop_assert!(DEFINED.contains(&status), "{status}");
        }
    }
}

#[tokio::test]
async fn edge_rules_refuse_before_the_agent_and_cover_queued_requests() {
    use crate::protocol::rules::{BasicAuth, EdgeRules, parse_cidr};
    let state = state(RelayConfig::default()).await;
    let (_tunnel, mut outbound) = state.register("demo", Mode::Proxy, None).unwrap();
    state.set_edge_rules(
        "demo",
        EdgeRules {
            basic_auth: vec![BasicAuth::new("ci:pw", [3; 16]).unwrap()],
            ..EdgeRules::default()
        },
    );
    let response = call(&state, get("/t/demo/hook")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&response), Some(HttpErrorCode::BasicAuth));
    assert!(
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );
    assert!(
        outbound.try_recv().is_err(),
        "a refused request reached the agent"
    );
    assert_eq!(state.metrics.edge_refused.load(Ordering::Relaxed), 1);

    // The peer (192.0.2.7) is outside the allowlist; a queued (offline)
    // tunnel is judged by the same rules.
    let claimed = bounded(state.durable.claim("away", "key")).await.unwrap();
    assert_eq!(claimed, crate::durable::Claim::Granted);
    state.set_edge_rules(
        "away",
        EdgeRules {
            allow_ip: vec![parse_cidr("10.0.0.0/8").unwrap()],
            ..EdgeRules::default()
        },
    );
    let response = call(
        &state,
        Request::post("/t/away/hook").header(header::HOST, "r"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(&response), Some(HttpErrorCode::IpRefused));
    assert_eq!(bounded(state.durable.depth("away")).await.unwrap(), 0);
    // A when-offline answer replaces the queue while the agent is away.
    state.set_edge_rules(
        "away",
        EdgeRules {
            offline: Some(Box::new(crate::protocol::rules::OfflineAnswer {
                status: 503,
                content_type: "text/plain".into(),
                body: "back soon".into(),
            })),
            ..EdgeRules::default()
        },
    );
    let response = call(
        &state,
        Request::post("/t/away/hook").header(header::HOST, "r"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&response), Some(HttpErrorCode::Mocked));
    assert_eq!(text(response).await, "back soon");
    assert_eq!(bounded(state.durable.depth("away")).await.unwrap(), 0);
    // No rules: anyone again.
    state.set_edge_rules("away", EdgeRules::default());
    let response = call(
        &state,
        Request::post("/t/away/hook").header(header::HOST, "r"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}
