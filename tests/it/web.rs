//! The web inspector's API: in-process through the router (`oneshot`), and
//! against a running tunnel (relay + agent + local app) over real HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use base64::prelude::*;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use ulid::Ulid;

use hooktunnel::event::AgentEvent;
use hooktunnel::exchange::{Exchange, ExchangeResponse, Header, SignatureVerdict};
use hooktunnel::store::Store;
use hooktunnel::web::{self, TunnelInfo, WebEvent, WebState};

use crate::support::{bounded, client, send};

const HOST: &str = "127.0.0.1:4040";

/// Hostile strings a captured request might carry.
const SCRIPT_PATH: &str = "/hooks/<script>alert(1)</script>?next=javascript:alert(2)";
const HOSTILE_JSON: &str =
    r#"{"html":"</script><script>alert(3)</script>","img":"<img src=x onerror=alert(4)>"}"#;
const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(5)</script></svg>"#;

/// A web inspector over a history in `home` holding one exchange per
/// (number, tunnel) of `rows`, which it returns.
pub(crate) async fn inspector_over(
    home: &std::path::Path,
    rows: &[(u64, &str)],
    cancel: &tokio_util::sync::CancellationToken,
) -> (web::Web, Vec<Exchange>) {
    let db = home.join("history.db");
    let mut store = Store::open(&db).unwrap();
    let mut stored = Vec::new();
    for (n, tunnel) in rows {
        let mut e = exchange(*n, &format!("/hooks/{n}"), "{}");
        e.tunnel = (*tunnel).into();
        store.insert(&e).unwrap();
        stored.push(e);
    }
    let web = web::start(
        web::WebAddr::At("127.0.0.1:0".parse().unwrap()),
        None,
        db,
        Vec::new(),
        cancel.clone(),
    )
    .await
    .unwrap()
    .unwrap();
    (web, stored)
}

pub(crate) fn exchange(n: u64, path: &str, body: &str) -> Exchange {
    Exchange {
        request_truncated: None,
        capture_degraded: false,
        attempts: 1,
        id: Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)),
        tunnel: "quiet-fox".into(),
        received_at_ms: 1_700_000_000_000 + n,
        method: "POST".into(),
        path: path.into(),
        target: "http://127.0.0.1:9".into(),
        request_headers: vec![
            Header::new("content-type", "application/json"),
            Header::new("x-dup", "a"),
            Header::new("x-dup", "b"),
            Header::new("x-evil", "<img src=x onerror=alert(6)>"),
        ],
        request_body: Bytes::from(body.to_owned()),
        response: Some(ExchangeResponse {
            truncated: None,
            status: 200,
            headers: vec![Header::new("content-type", "image/svg+xml")],
            body: Bytes::from_static(SVG.as_bytes()),
        }),
        duration_us: 1_500,
        error: None,
        replay_of: None,
        queued: false,
        peer: Some("203.0.113.9:5555".into()),
        public_url: Some("http://127.0.0.1:7070/t/quiet-fox/hooks".into()),
        signature: Some(SignatureVerdict {
            provider: "github".into(),
            valid: false,
            reason: Some("signature mismatch".into()),
        }),
    }
}

struct Fixture {
    _home: tempfile::TempDir,
    state: Arc<WebState>,
    app: Router,
    ids: Vec<Ulid>,
}

/// A history of `n` exchanges (the newest hostile) and a router over it.
fn fixture(n: u64) -> Fixture {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("history.db");
    let mut store = Store::open(&db).unwrap();
    let mut ids = Vec::new();
    for i in 1..=n {
        let e = if i == n {
            exchange(i, SCRIPT_PATH, HOSTILE_JSON)
        } else {
            exchange(i, &format!("/hooks/{i}"), r#"{"n":1}"#)
        };
        store.insert(&e).unwrap();
        ids.push(e.id);
    }
    let state = Arc::new(WebState::new(db, HOST.parse().unwrap(), None, Vec::new()));
    state.set_tunnel(TunnelInfo {
        name: "quiet-fox".into(),
        public_url: "https://quiet-fox.hooks.example.com".into(),
        target: "http://127.0.0.1:3000".into(),
    });
    let app = web::router(state.clone());
    Fixture {
        _home: home,
        state,
        app,
        ids,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req = req.header("host", HOST);
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Body::from(body.to_owned())).unwrap();
    let res = bounded("the router", app.clone().oneshot(req))
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: bounded("a body", body.collect()).await.unwrap().to_bytes(),
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, "GET", uri, &[], "").await
}

#[tokio::test]
async fn ngrok_tunnels_have_ngroks_fields() {
    let f = fixture(1);
    f.state
        .http_count
        .store(7, std::sync::atomic::Ordering::Relaxed);
    let r = get(&f.app, "/api/tunnels").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["uri"], "/api/tunnels");
    let t = &v["tunnels"][0];
    assert_eq!(t["name"], "quiet-fox");
    assert_eq!(t["uri"], "/api/tunnels/quiet-fox");
    assert_eq!(t["public_url"], "https://quiet-fox.hooks.example.com");
    assert_eq!(t["proto"], "https");
    assert_eq!(t["config"]["addr"], "http://127.0.0.1:3000");
    assert_eq!(t["config"]["inspect"], true);
    assert_eq!(t["metrics"]["http"]["count"], 7);
    for key in [
        "count", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99",
    ] {
        assert!(t["metrics"]["http"][key].is_number(), "metrics.http.{key}");
        assert!(
            t["metrics"]["conns"][key].is_number(),
            "metrics.conns.{key}"
        );
    }
    assert!(t["metrics"]["conns"]["gauge"].is_number());

    let one = get(&f.app, "/api/tunnels/quiet-fox").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json(), *t);
    let missing = get(&f.app, "/api/tunnels/other").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["status_code"], 404);
    assert!(missing.json()["msg"].is_string());
}

/// One agent serving two tunnels: the inspector, over real HTTP, lists both
/// with their own request counts, finds each by name, and filters the
/// history by tunnel (ngrok's `tunnel_name` and the `tunnel:` term).
#[tokio::test]
async fn several_tunnels_are_listed_found_and_filtered() {
    let home = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (web, rows) = inspector_over(
        home.path(),
        &[(1, "shop"), (2, "billing"), (3, "shop"), (4, "shop")],
        &cancel,
    )
    .await;
    let info = |name: &str| TunnelInfo {
        name: name.into(),
        public_url: format!("http://127.0.0.1:7070/t/{name}"),
        target: format!(
            "http://127.0.0.1:{}",
            if name == "shop" { 3000 } else { 4000 }
        ),
    };
    web.state.set_tunnels(vec![info("shop"), info("billing")]);
    // The agent's events count requests per tunnel.
    for e in &rows {
        web.state.observe(&AgentEvent::Exchange(e.summary()));
    }
    let base = format!("http://{}", web.addr);
    let http = client();
    let get_json = |path: &str| {
        let url = format!("{base}{path}");
        let http = &http;
        async move {
            let r = send(http, "GET", &url, &[], "").await;
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v)
        }
    };

    let (status, v) = get_json("/api/tunnels").await;
    assert_eq!(status, 200);
    let list = v["tunnels"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop", "billing"]);
    assert_eq!(list[0]["public_url"], "http://127.0.0.1:7070/t/shop");
    assert_eq!(list[0]["config"]["addr"], "http://127.0.0.1:3000");
    assert_eq!(list[0]["metrics"]["http"]["count"], 3);
    assert_eq!(list[1]["config"]["addr"], "http://127.0.0.1:4000");
    assert_eq!(list[1]["metrics"]["http"]["count"], 1);
    for t in list {
        let name = t["name"].as_str().unwrap();
        let (status, one) = get_json(&format!("/api/tunnels/{name}")).await;
        assert_eq!(status, 200);
        assert_eq!(one, *t);
    }
    let (status, missing) = get_json("/api/tunnels/other").await;
    assert_eq!(status, 404);
    assert_eq!(missing["msg"], "tunnel not found: other");

    // The status lists them too; `tunnel` stays the first for old scripts.
    let (_, s) = get_json("/api/v1/status").await;
    assert_eq!(s["tunnel"]["name"], "shop");
    assert_eq!(s["tunnels"][1]["name"], "billing");

    let (_, v) = get_json("/api/requests/http?tunnel_name=billing").await;
    let got: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tunnel_name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["billing"]);
    let (_, v) = get_json("/api/requests/http?tunnel_name=shop&limit=2").await;
    assert_eq!(v["requests"][0]["id"], rows[3].id.to_string());
    assert_eq!(v["requests"][1]["id"], rows[2].id.to_string());
    assert_eq!(v["requests"].as_array().unwrap().len(), 2);

    let (_, v) = get_json("/api/v1/exchanges?filter=tunnel:billing").await;
    let page = v["exchanges"].as_array().unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["tunnel"], "billing");
    assert_eq!(page[0]["id"], rows[1].id.to_string());
    let (_, v) = get_json("/api/v1/exchanges?filter=tunnel:billing%20tunnel:shop").await;
    assert_eq!(v["exchanges"].as_array().unwrap().len(), 4);
    let (status, v) = get_json("/api/v1/exchanges?filter=tunnel:a/b").await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("bad tunnel \"a/b\""),
        "{v}"
    );
    cancel.cancel();
}

#[tokio::test]
async fn ngrok_requests_have_ngroks_fields_and_raw_messages() {
    let f = fixture(3);
    let r = get(&f.app, "/api/requests/http?limit=2").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["uri"], "/api/requests/http");
    let list = v["requests"].as_array().unwrap();
    assert_eq!(list.len(), 2, "limit applies");
    let newest = &list[0];
    let id = f.ids[2].to_string();
    assert_eq!(newest["id"], id, "newest first");
    assert_eq!(newest["uri"], format!("/api/requests/http/{id}"));
    assert_eq!(newest["tunnel_name"], "quiet-fox");
    assert_eq!(newest["remote_addr"], "203.0.113.9:5555");
    assert_eq!(newest["start"], "2023-11-14T22:13:20.003Z");
    assert_eq!(newest["duration"], 1_500_000, "nanoseconds");
    let req = &newest["request"];
    assert_eq!(req["method"], "POST");
    assert_eq!(req["proto"], "HTTP/1.1");
    assert_eq!(req["uri"], SCRIPT_PATH);
    assert_eq!(req["headers"]["X-Dup"], serde_json::json!(["a", "b"]));
    assert_eq!(
        req["headers"]["Content-Type"],
        serde_json::json!(["application/json"])
    );
    let raw = BASE64_STANDARD
        .decode(req["raw"].as_str().unwrap())
        .unwrap();
    let expected = format!(
        "POST {SCRIPT_PATH} HTTP/1.1\r\ncontent-type: application/json\r\nx-dup: a\r\nx-dup: b\r\n\
         x-evil: <img src=x onerror=alert(6)>\r\n\r\n{HOSTILE_JSON}"
    );
    assert_eq!(String::from_utf8(raw).unwrap(), expected);
    let res = &newest["response"];
    assert_eq!(res["status"], "200 OK");
    assert_eq!(res["status_code"], 200);
    assert_eq!(res["proto"], "HTTP/1.1");
    assert_eq!(
        res["headers"]["Content-Type"],
        serde_json::json!(["image/svg+xml"])
    );
    let raw = BASE64_STANDARD
        .decode(res["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        format!("HTTP/1.1 200 OK\r\ncontent-type: image/svg+xml\r\n\r\n{SVG}")
    );

    let one = get(&f.app, &format!("/api/requests/http/{id}")).await;
    assert_eq!(one.json(), *newest);
    assert_eq!(
        get(&f.app, "/api/requests/http/01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, "/api/requests/http?tunnel_name=other")
            .await
            .json()["requests"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn ngrok_delete_clears_the_history() {
    let f = fixture(2);
    let r = call(&f.app, "DELETE", "/api/requests/http", &[], "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(Store::open(&f.state.db).unwrap().count().unwrap(), 0);
}

#[tokio::test]
async fn rebinding_and_cross_origin_writes_are_refused() {
    let f = fixture(1);
    for host in ["evil.example", "evil.example:4040", "127.0.0.1:9999"] {
        for path in ["/", "/api/tunnels", "/api/v1/exchanges"] {
            let r = call(&f.app, "GET", path, &[("host", host)], "").await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{host} {path}");
            assert!(
                !r.body.windows(9).any(|w| w == b"quiet-fox"),
                "nothing leaks"
            );
        }
    }
    let json = ("content-type", "application/json");
    let body = format!(r#"{{"id":"{}"}}"#, f.ids[0]);
    for headers in [
        vec![json, ("origin", "http://evil.example")],
        vec![json, ("sec-fetch-site", "cross-site")],
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
    ] {
        let r = call(&f.app, "POST", "/api/requests/http", &headers, &body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        // DELETE always needs a CORS preflight in a browser; a foreign
        // Origin or Sec-Fetch-Site is refused outright.
        if headers.iter().any(|(n, _)| *n != "content-type") {
            let r = call(&f.app, "DELETE", "/api/requests/http", &headers, "").await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "DELETE {headers:?}");
        }
    }
    assert_eq!(
        Store::open(&f.state.db).unwrap().count().unwrap(),
        1,
        "nothing was cleared"
    );
}

#[tokio::test]
async fn every_response_has_the_strict_headers_and_bodies_download_inert() {
    let f = fixture(1);
    let page = get(&f.app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    let html = String::from_utf8_lossy(&page.body);
    assert!(!html.contains("<script>"), "no inline script in the page");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resource"
    );
    let script = get(&f.app, "/app.js").await;
    assert!(!String::from_utf8_lossy(&script.body).contains("innerHTML"));

    let id = f.ids[0];
    for side in ["request", "response"] {
        let r = get(&f.app, &format!("/api/v1/exchanges/{id}/{side}/body")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), "application/octet-stream");
        assert!(r.header("content-disposition").starts_with("attachment"));
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        assert!(
            r.header("content-security-policy")
                .contains("default-src 'self'")
        );
    }
    let r = get(&f.app, &format!("/api/v1/exchanges/{id}/response/body")).await;
    assert_eq!(r.body, SVG.as_bytes(), "exact bytes");
    // The JSON views carry hostile text only as JSON strings.
    let one = get(&f.app, &format!("/api/v1/exchanges/{id}")).await;
    assert!(one.header("content-type").starts_with("application/json"));
    assert_eq!(one.json()["request"]["path"], SCRIPT_PATH);
}

#[tokio::test]
async fn v1_lists_filter_and_page_by_cursor() {
    let f = fixture(5);
    let page = get(&f.app, "/api/v1/exchanges?limit=2").await.json();
    let ids: Vec<&str> = page["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [f.ids[4].to_string(), f.ids[3].to_string()]);
    let next = page["next"].as_str().unwrap().to_owned();
    let page2 = get(&f.app, &format!("/api/v1/exchanges?limit=2&before={next}"))
        .await
        .json();
    let ids2: Vec<&str> = page2["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids2, [f.ids[2].to_string(), f.ids[1].to_string()]);
    let last = get(
        &f.app,
        &format!("/api/v1/exchanges?limit=2&before={}", f.ids[1]),
    )
    .await
    .json();
    assert_eq!(last["exchanges"].as_array().unwrap().len(), 1);
    assert_eq!(last["next"], Value::Null);

    let filtered = get(&f.app, "/api/v1/exchanges?filter=path:/hooks/3")
        .await
        .json();
    assert_eq!(filtered["exchanges"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["exchanges"][0]["path"], "/hooks/3");
    // Grep looks into bodies.
    let grep = get(&f.app, "/api/v1/exchanges?filter=alert(3)")
        .await
        .json();
    assert_eq!(grep["exchanges"].as_array().unwrap().len(), 1);
    let bad = get(&f.app, "/api/v1/exchanges?filter=status:abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].as_str().unwrap().contains("bad status"));
}

#[tokio::test]
async fn v1_exports_curl_and_har() {
    let f = fixture(2);
    let id = f.ids[0];
    let curl = get(&f.app, &format!("/api/v1/exchanges/{id}/curl")).await;
    let text = String::from_utf8_lossy(&curl.body);
    assert!(text.starts_with("curl "), "{text}");
    assert!(text.contains("http://127.0.0.1:9/hooks/1"), "{text}");
    let har = get(
        &f.app,
        &format!("/api/v1/har?ids={},{}", f.ids[0], f.ids[1]),
    )
    .await;
    assert!(har.header("content-disposition").starts_with("attachment"));
    let v = har.json();
    assert_eq!(v["log"]["version"], "1.2");
    assert_eq!(v["log"]["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn openapi_documents_exactly_the_v1_routes() {
    let f = fixture(1);
    let doc = get(&f.app, "/api/v1/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    documented.sort();
    let mut routed: Vec<(String, String)> = web::api_v1::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routed.sort();
    assert_eq!(documented, routed);
    // And every listed route is really served (not 404/405).
    let id = f.ids[0].to_string();
    for (method, path) in web::api_v1::ROUTES {
        if *path == "/api/v1/events" {
            continue; // an endless stream; covered by the SSE test
        }
        let uri = path.replace("{id}", &id);
        let r = call(
            &f.app,
            &method.to_uppercase(),
            &uri,
            &[("content-type", "application/json")],
            "{\"to\":\"http://127.0.0.1:9\"}",
        )
        .await;
        assert!(
            r.status != StatusCode::NOT_FOUND && r.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {}",
            r.status
        );
    }
}

#[tokio::test]
async fn a_slow_tab_skips_ahead_instead_of_buffering() {
    use futures_util::StreamExt as _;
    let f = fixture(1);
    let stream = web::sse::stream(&f.state);
    let mut stream = std::pin::pin!(stream);
    let first = bounded("hello", stream.next()).await.unwrap().unwrap();
    assert!(format!("{first:?}").contains("connection"));
    // Far more events than the ring holds, while the tab reads nothing.
    let summary = exchange(1, "/x", "{}").summary();
    for _ in 0..2_000 {
        let _ = f.state.events.send(WebEvent::Exchange(summary.clone()));
    }
    let next = bounded("skipped", stream.next()).await.unwrap().unwrap();
    let text = format!("{next:?}");
    assert!(text.contains("skipped") && text.contains("count"), "{text}");
}

// ---------- against a running tunnel ----------

#[tokio::test]
async fn a_running_listen_serves_the_ngrok_api_and_replays() {
    let app = crate::support::LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let settings = crate::support::settings(None, &app.port().to_string(), home.path());
    let mut agent = crate::support::Agent::start(settings).await;
    let (web, cancel) = crate::support::web_inspector(&mut agent, home.path()).await;
    let base = format!("http://{}", web.addr);
    let http = client();

    let tunnels = send(&http, "GET", &format!("{base}/api/tunnels"), &[], "").await;
    assert_eq!(tunnels.status, 200);
    let v: Value = serde_json::from_slice(&tunnels.body).unwrap();
    assert_eq!(v["tunnels"][0]["public_url"], agent.public_url.as_str());
    let addr = v["tunnels"][0]["config"]["addr"].as_str().unwrap();
    assert!(addr.ends_with(&format!(":{}", app.port())), "{addr}");

    let captured = crate::support::capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/a",
        &[("content-type", b"application/json")],
        r#"{"n":1}"#,
    )
    .await;
    let list = send(&http, "GET", &format!("{base}/api/requests/http"), &[], "").await;
    let v: Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["requests"][0]["id"], captured.id.to_string());
    assert_eq!(v["requests"][0]["request"]["uri"], "/hooks/a");
    let tunnels: Value = serde_json::from_slice(
        &send(&http, "GET", &format!("{base}/api/tunnels"), &[], "")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(tunnels["tunnels"][0]["metrics"]["http"]["count"], 1);

    let body = format!(r#"{{"id":"{}"}}"#, captured.id);
    let replayed = send(
        &http,
        "POST",
        &format!("{base}/api/requests/http"),
        &[("content-type", b"application/json")],
        body,
    )
    .await;
    assert_eq!(
        replayed.status,
        204,
        "{:?}",
        String::from_utf8_lossy(&replayed.body)
    );
    let seen = app.seen();
    assert_eq!(seen.len(), 2, "the app got the replay");
    assert_eq!(seen[1].body, br#"{"n":1}"#);

    // hooktunnel's own replay: edited method, path, headers and body.
    let edit = serde_json::json!({
        "method": "put",
        "path": "/hooks/edited?x=1",
        "headers": [["content-type", "text/plain"], ["x-edited", "yes"]],
        "body": "changed",
    });
    let replayed = send(
        &http,
        "POST",
        &format!("{base}/api/v1/exchanges/{}/replay", captured.id),
        &[("content-type", b"application/json")],
        edit.to_string(),
    )
    .await;
    assert_eq!(
        replayed.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&replayed.body)
    );
    let v: Value = serde_json::from_slice(&replayed.body).unwrap();
    assert_eq!(v["exchange"]["replay_of"], captured.id.to_string());
    assert_eq!(v["exchange"]["status"], 200);
    let seen = app.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(last.path_and_query, "/hooks/edited?x=1");
    assert_eq!(last.body, b"changed");
    assert_eq!(last.header("x-edited"), [b"yes".to_vec()]);
    let new_id = v["exchange"]["id"].as_str().unwrap();
    let detail: Value = serde_json::from_slice(
        &send(
            &http,
            "GET",
            &format!("{base}/api/v1/exchanges/{new_id}"),
            &[],
            "",
        )
        .await
        .body,
    )
    .unwrap();
    assert!(detail["difference"].is_string(), "{detail}");

    // The same over a real socket: a foreign Host is refused.
    let evil = send(
        &http,
        "GET",
        &format!("{base}/api/tunnels"),
        &[("host", b"evil.example")],
        "",
    )
    .await;
    assert_eq!(evil.status, 403);
    cancel.cancel();
    agent.stop().await;
}

#[tokio::test]
async fn a_running_listen_serves_the_stats_report_of_the_cli() {
    let app = crate::support::LocalApp::start().await;
    let relay = crate::support::Relay::start(hooktunnel_relay::RelayConfig {
        max_body_bytes: 1024,
        ..hooktunnel_relay::RelayConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let settings = crate::support::settings(Some(&relay.url), &app.port().to_string(), home.path());
    let mut agent = crate::support::Agent::start(settings).await;
    let (web, cancel) = crate::support::web_inspector(&mut agent, home.path()).await;
    let base = format!("http://{}", web.addr);
    let http = client();
    let stats = |query: &str| {
        let url = format!("{base}/api/v1/stats{query}");
        let http = http.clone();
        async move {
            let answer = send(&http, "GET", &url, &[], "").await;
            let body: Value = serde_json::from_slice(&answer.body)
                .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {:?}", answer.body));
            (answer.status, body)
        }
    };

    for path in ["/hooks/1", "/hooks/2", "/status/500"] {
        crate::support::capture(&mut agent, home.path(), "POST", path, &[], "{}").await;
    }
    // Refused by the relay (413) and noted to the agent about a second later.
    let big = send(
        &http,
        "POST",
        &format!("{}/hooks/3", agent.public_url),
        &[],
        vec![b'x'; 2048],
    )
    .await;
    assert_eq!(big.status, 413);
    let report = bounded("the refusal in /api/v1/stats", async {
        loop {
            let (status, report) = stats("?since=10m").await;
            assert_eq!(status, StatusCode::OK, "{report}");
            if report["total"]["errors"]["relay_refused"] == 1 {
                return report;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(report["total"]["count"], 3);
    assert_eq!(report["total"]["errors"]["app_5xx"], 1);
    let hooks = report["sections"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "POST /hooks/:n")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(hooks["count"], 2);
    assert_eq!(hooks["errors"]["relay_refused"], 1);

    // The same report as `stats --json` (only the window moves with the clock).
    let run =
        crate::support::hooktunnel_run(home.path(), &["stats", "--json", "--since", "10m"]).await;
    assert!(run.ok, "{run:?}");
    let cli: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(cli["total"], report["total"]);
    assert_eq!(cli["sections"], report["sections"]);
    assert_eq!(cli["window"]["buckets"], report["window"]["buckets"]);

    // The same filters.
    let (status, narrowed) =
        stats("?since=10m&method=post&path=/status/*&status=5xx&by=path").await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["total"]["count"], 1);
    assert_eq!(narrowed["total"]["errors"]["relay_refused"], 0);
    assert_eq!(narrowed["sections"].as_array().unwrap().len(), 1);
    let (_, refused_only) = stats("?since=10m&status=413").await;
    assert_eq!(refused_only["total"]["count"], 0);
    assert_eq!(refused_only["total"]["errors"]["relay_refused"], 1);

    // Bad input: 400 and a message that says what is wrong.
    for (query, says) in [
        ("?since=ten", "bad since \"ten\""),
        ("?status=7xx", "not an HTTP status"),
        ("?status=abc", "bad status \"abc\""),
        ("?method=P%20T", "bad method"),
        ("?path=%5B", "bad path glob"),
        ("?by=host", "expected path, provider or event"),
        ("?buckets=0", "bad buckets"),
        ("?sinse=1h", "unknown parameter `sinse`"),
        ("?since=1h&since=2h", "more than once"),
    ] {
        let (status, body) = stats(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
    }
    cancel.cancel();
    agent.stop().await;
}
