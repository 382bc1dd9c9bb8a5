//! End-to-end: real relay, real agent, real local app, real HTTP on loopback.

use std::time::Duration;

use crate::support::*;
use hooktunnel::config::Paths;
use hooktunnel::store::Store;
use hooktunnel_relay::RelayConfig;

/// Deterministic pseudo-random bytes that include NUL, CR and LF.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.push((seed >> 24) as u8);
    }
    out[..6].copy_from_slice(b"\0\r\n\r\n\0");
    out
}

#[tokio::test]
async fn binary_body_arrives_and_returns_byte_identical() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = noise(64 * 1024, 7);
    let answer = send(
        &client(),
        "POST",
        &format!("{}/upload/bin", agent.public_url),
        &[("content-type", b"application/octet-stream")],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        &answer.body[..],
        &body[..],
        "response body changed in transit"
    );
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body, "request body changed in transit");
    assert_eq!(seen[0].path_and_query, "/upload/bin");

    let summary = agent.next_exchange().await;
    assert_eq!(summary.request_bytes, body.len() as u64);
    assert_eq!(summary.status, Some(200));
    agent.stop().await;
    let store = Store::open(&Paths::at(home.path()).db()).unwrap();
    let stored = store.get(&summary.id).unwrap().expect("exchange recorded");
    assert_eq!(&stored.request_body[..], &body[..]);
    assert_eq!(&stored.response.unwrap().body[..], &body[..]);
}

#[tokio::test]
async fn headers_keep_order_and_duplicates_and_query_is_exact() {
    let (app, _relay, agent, _home) = setup().await;
    let query = "/a/b%20c/?x=1&x=2&empty=&enc=%2F%3F&q='quoted'&plus=a+b";
    let answer = send(
        &client(),
        "POST",
        &format!("{}{query}", agent.public_url),
        &[
            ("x-multi", b"first"),
            ("x-multi", b"second"),
            ("x-multi", b"third"),
            ("x-latin1", b"caf\xe9"),
        ],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 200);
    let seen = &app.seen()[0];
    assert_eq!(seen.path_and_query, query);
    assert_eq!(
        seen.header("x-multi"),
        vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
    assert_eq!(seen.header("x-latin1"), vec![b"caf\xe9".to_vec()]);
    assert_eq!(
        answer.header("set-cookie"),
        vec![b"a=1".to_vec(), b"b=2".to_vec()]
    );
    assert_eq!(
        answer.header("x-seen-path"),
        vec![query.as_bytes().to_vec()]
    );
}

#[tokio::test]
async fn every_method_is_forwarded() {
    let (app, _relay, agent, _home) = setup().await;
    let c = client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"] {
        let answer = send(&c, method, &format!("{}/m", agent.public_url), &[], "x").await;
        assert_eq!(answer.status, 200, "{method}");
    }
    let methods: Vec<String> = app.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(
        methods,
        ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"]
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_each_get_their_own_answer() {
    let (app, _relay, agent, _home) = setup().await;
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let c = c.clone();
        let url = format!("{}/n/{i}", agent.public_url);
        tasks.spawn(async move {
            let body = format!("request number {i}");
            let answer = send(&c, "POST", &url, &[], body.clone()).await;
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.body,
                body.as_bytes(),
                "answer crossed with another request"
            );
        });
    }
    while let Some(done) = bounded("concurrent requests", tasks.join_next()).await {
        done.unwrap();
    }
    assert_eq!(app.seen().len(), 200);
}

#[tokio::test]
async fn dead_local_app_gives_502_and_is_recorded() {
    let relay = Relay::start(RelayConfig::default()).await;
    let port_socket = DeadPort::new();
    let port = port_socket.port;
    let home = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(settings(Some(&relay.url), &port.to_string(), home.path())).await;
    let answer = send(
        &client(),
        "POST",
        &format!("{}/hook", agent.public_url),
        &[],
        "payload",
    )
    .await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        answer.header("x-hooktunnel-error"),
        vec![b"local_unreachable".to_vec()]
    );
    let text = String::from_utf8_lossy(&answer.body);
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) || text.contains(&format!("localhost:{port}")),
        "{text}"
    );
    let summary = agent.next_exchange().await;
    assert!(summary.error.is_some());
    agent.stop().await;
    let stored = Store::open(&Paths::at(home.path()).db())
        .unwrap()
        .last()
        .unwrap()
        .unwrap();
    assert_eq!(&stored.request_body[..], b"payload");
    assert_eq!(stored.status(), Some(502));
}

#[tokio::test]
async fn slow_local_app_gives_504_and_is_recorded() {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.timeout = Duration::from_millis(300);
    let mut agent = Agent::start(s).await;
    let answer = send(
        &client(),
        "GET",
        &format!("{}/slow", agent.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 504);
    assert_eq!(
        answer.header("x-hooktunnel-error"),
        vec![b"local_timeout".to_vec()]
    );
    let summary = agent.next_exchange().await;
    assert_eq!(summary.status, Some(504));
    assert!(summary.error.unwrap().contains("did not answer"));
}

#[tokio::test]
async fn unknown_tunnel_and_bad_paths_get_404() {
    let relay = Relay::start(RelayConfig::default()).await;
    let c = client();
    let answer = send(
        &c,
        "GET",
        &format!("{}/t/nobody-here/x", relay.url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert!(String::from_utf8_lossy(&answer.body).contains("nobody-here"));
    let answer = send(&c, "GET", &format!("{}/elsewhere", relay.url), &[], "").await;
    assert_eq!(answer.status, 404);
    let health = relay.health().await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn embedded_relay_serves_when_none_is_configured() {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let agent = Agent::start(settings(None, &app.port().to_string(), home.path())).await;
    assert!(
        agent.public_url.starts_with("http://127.0.0.1:"),
        "{}",
        agent.public_url
    );
    let answer = send(
        &client(),
        "GET",
        &format!("{}/embedded?x=1", agent.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.seen()[0].path_and_query, "/embedded?x=1");
}

#[tokio::test]
async fn the_same_name_comes_back_on_the_next_run() {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let first = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    let url = first.public_url.clone();
    first.stop().await;
    let second = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    assert_eq!(second.public_url, url);
}
