//! Issue 14: an outsider tries to block, fill or exhaust a tunnel they do
//! not own, or to confuse either side with bytes the protocol forbids. Each
//! test runs the attack at a small scale and prints the figures it saw
//! (`cargo test -- --nocapture`).

use std::net::IpAddr;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use tokio::net::TcpListener;

use super::*;

/// The attacker's address is 127.0.0.1; real senders come from here
/// (any 127/8 address is loopback on Linux).
const OTHER: &str = "127.0.0.2";

/// An HTTP client whose connections come from `ip`.
fn client_from(ip: &str) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(ip.parse::<IpAddr>().unwrap()));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Waits until the relay has no live tunnel (a dropped agent is gone).
async fn until_no_tunnels(relay: &Relay) {
    bounded("the agent to be gone", async {
        loop {
            let health = relay.health().await;
            if String::from_utf8_lossy(&health.body).contains("\"tunnels\":0") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// ------------------------------------------------- row 1: in-flight slots

#[tokio::test]
async fn trickled_bodies_from_one_address_cannot_block_a_tunnel() {
    let (_app, relay, agent, _home) = tunnel(RelayConfig {
        max_in_flight_per_tunnel: 16,
        // What the binary sets for --max-in-flight 16.
        max_in_flight_per_ip: Some(RelayConfig::default_in_flight_share(16)),
        min_body_rate: 1024,
        body_rate_grace: Duration::from_secs(1),
        ..RelayConfig::default()
    })
    .await;
    let name = name_of(&agent.public_url);
    // 40 connections, each `Content-Length: 100` and one byte, as in the report.
    let mut attack = Vec::new();
    for _ in 0..40 {
        let mut tcp = bounded("connect", TcpStream::connect(relay.addr))
            .await
            .unwrap();
        tcp.write_all(
            format!("POST /t/{name}/x HTTP/1.1\r\nHost: r\r\nContent-Length: 100\r\n\r\nx")
                .as_bytes(),
        )
        .await
        .unwrap();
        attack.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let legit = send(
        &client_from(OTHER),
        "POST",
        &format!("{}/hook", agent.public_url),
        &[],
        "real",
    )
    .await;
    let legit_ms = started.elapsed().as_millis();
    assert_eq!(legit.status, 200, "{:?}", legit.body);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let cut = Instant::now();
    for tcp in &mut attack {
        *statuses.entry(status(&read_head(tcp).await)).or_default() += 1;
    }
    let cut_ms = cut.elapsed().as_millis();
    eprintln!(
        "row 1: 40 trickling connections from one address -> {statuses:?} \
         (429 = refused a slot, 408 = cut as too slow after {cut_ms} ms); \
         legit sender from another address: 200 in {legit_ms} ms"
    );
    assert_eq!(statuses.get(&429), Some(&36), "only 4 slots per address");
    assert_eq!(statuses.get(&408), Some(&4), "slow bodies are cut");
    assert_eq!(relay.metric("hooktunnel_client_busy_total").await, 36);
    assert_eq!(relay.metric("hooktunnel_body_too_slow_total").await, 4);
}

// ------------------------------------------------------ row 2: the queue

#[tokio::test]
async fn one_address_cannot_fill_an_away_agents_queue() {
    let relay = Relay::start(RelayConfig {
        queue_limits: hooktunnel_relay::durable::QueueLimits {
            max_count: 16,
            max_bytes: 4 * 1024 * 1024,
            max_age: Duration::from_secs(3600),
        },
        queue_max_entry: 256 * 1024,
        ..RelayConfig::default()
    })
    .await;
    let agent = RawAgent::connect(&relay, "away-agent").await;
    let url = agent.url(&relay);
    drop(agent);
    until_no_tunnels(&relay).await;
    let c = client();
    let mut big = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..26 {
        // Declared up front: refused before the body is read.
        let head = format!(
            "POST /t/away-agent/big HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024
        );
        let text = raw(relay.addr, head.as_bytes()).await;
        if status(&text) == 413 {
            assert!(text.contains("--queue-max-entry"), "{text}");
        }
        *big.entry(status(&text)).or_default() += 1;
    }
    let mut medium = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..26 {
        let answer = send(&c, "POST", &format!("{url}/m"), &[], vec![b'm'; 200 * 1024]).await;
        *medium.entry(answer.status).or_default() += 1;
    }
    let mut small = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..88 {
        let answer = send(&c, "POST", &format!("{url}/s"), &[], "small").await;
        *small.entry(answer.status).or_default() += 1;
    }
    let legit = send(
        &client_from(OTHER),
        "POST",
        &format!("{url}/real"),
        &[],
        "real",
    )
    .await;
    eprintln!(
        "row 2: queue 16 entries / 4 MiB, entry cap 256 KiB; one address sent \
         26 x 10 MiB -> {big:?}, 26 x 200 KiB -> {medium:?}, 88 small -> {small:?}; \
         another address: {}",
        legit.status
    );
    assert_eq!(big.get(&413), Some(&26));
    assert_eq!(legit.status, 202, "{:?}", legit.body);
    assert!(small.contains_key(&507), "the attacker meets its share");
}

// ------------------------------------------------- row 3: connections

#[tokio::test]
async fn idle_connections_from_one_address_are_capped_at_accept() {
    let relay = Relay::start(RelayConfig {
        max_conns_per_ip: 50,
        ..RelayConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            bounded("connect", TcpStream::connect(relay.addr))
                .await
                .unwrap(),
        );
    }
    // Connections past the cap are closed at once: a read sees the end.
    let reads = idle.iter_mut().map(|tcp| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut byte)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    });
    let closed = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
    let started = Instant::now();
    let health = send(
        &client_from(OTHER),
        "GET",
        &format!("{}/_hooktunnel/health", relay.url),
        &[],
        "",
    )
    .await;
    let legit_ms = started.elapsed().as_millis();
    eprintln!(
        "row 3: 300 idle connections from one address, cap 50 -> {closed} closed at accept; \
         another address answered {} in {legit_ms} ms",
        health.status
    );
    assert_eq!(health.status, 200);
    assert!(legit_ms < 2000, "{legit_ms} ms");
    assert_eq!(closed, 250);
    drop(idle);
    // Let the relay see the held connections close before reading metrics from 127.0.0.1.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.metric("hooktunnel_conns_refused_total").await, 250);
}

// -------------------------------------------------------- row 7: no Host

#[tokio::test]
async fn http11_without_host_gets_400() {
    let (app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let name = name_of(&agent.public_url);
    let text = raw(
        relay.addr,
        format!("GET /t/{name}/ HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&text), 400, "{text}");
    assert!(text.contains("missing_host"), "{text}");
    // HTTP/1.0 has no Host requirement.
    let text = raw(
        relay.addr,
        format!("GET /t/{name}/ HTTP/1.0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&text), 200, "{text}");
    assert_eq!(app.seen().len(), 1);
}

// -------------------------------------------------------- row 10: metrics

#[tokio::test]
async fn metrics_need_the_token_or_the_private_listener() {
    let relay = Relay::start(RelayConfig {
        metrics_token: Some("s3cret-metrics".into()),
        ..RelayConfig::default()
    })
    .await;
    let url = format!("{}/_hooktunnel/metrics", relay.url);
    let c = client();
    assert_eq!(send(&c, "GET", &url, &[], "").await.status, 401);
    let wrong = send(&c, "GET", &url, &[("authorization", b"Bearer nope")], "").await;
    assert_eq!(wrong.status, 401);
    let right = send(
        &c,
        "GET",
        &url,
        &[("authorization", b"Bearer s3cret-metrics")],
        "",
    )
    .await;
    assert_eq!(right.status, 200);
    assert!(String::from_utf8_lossy(&right.body).contains("hooktunnel_requests_total"));

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    let relay = Relay::start(RelayConfig {
        metrics_listen: Some(metrics_addr),
        ..RelayConfig::default()
    })
    .await;
    // Once the main listener answers, the metrics listener is bound too.
    let health = format!("{}/_hooktunnel/health", relay.url);
    assert_eq!(send(&c, "GET", &health, &[], "").await.status, 200);
    let public = send(
        &c,
        "GET",
        &format!("{}/_hooktunnel/metrics", relay.url),
        &[],
        "",
    )
    .await;
    assert_eq!(
        public.status, 401,
        "the public listener still wants the token"
    );
    let private = send(
        &c,
        "GET",
        &format!("http://{metrics_addr}/metrics"),
        &[],
        "",
    )
    .await;
    assert_eq!(private.status, 200);
    assert!(String::from_utf8_lossy(&private.body).contains("hooktunnel_tunnels_connected"));
    drop(relay);
}

// ------------------------------------------------- row 11: 1xx, 204, 304

/// A local app that writes canned responses by path, byte for byte.
async fn raw_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tcp.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let final_ok =
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                let answer = match path.as_str() {
                    "/204" => "HTTP/1.1 204 No Content\r\nContent-Length: 15\r\nConnection: close\r\n\r\nfifteen bytes!!".to_owned(),
                    "/304" => "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 15\r\nConnection: close\r\n\r\n".to_owned(),
                    "/100" => format!("HTTP/1.1 100 Continue\r\n\r\n{final_ok}"),
                    "/103" => format!("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n{final_ok}"),
                    _ => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_owned(),
                };
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn interim_and_bodyless_answers_from_the_app_stay_well_formed() {
    let app = raw_app().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    let name = name_of(&agent.public_url);
    let get = |method: &str, path: &str| {
        format!("{method} /t/{name}{path} HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
    };
    for (path, code) in [("/204", 204), ("/304", 304)] {
        let text = raw(relay.addr, get("GET", path).as_bytes()).await;
        assert_eq!(status(&text), code, "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{path}: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{path}: {head}"
        );
        assert_eq!(body, "", "{path} carries no body");
    }
    for path in ["/100", "/103"] {
        let text = raw(relay.addr, get("GET", path).as_bytes()).await;
        assert_eq!(status(&text), 200, "{path}: {text}");
        assert!(text.ends_with("\r\n\r\nok"), "{path}: {text}");
    }
    let text = raw(relay.addr, get("HEAD", "/head").as_bytes()).await;
    assert_eq!(status(&text), 200, "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD carries no body: {text}");
}

#[tokio::test]
async fn an_agent_answering_204_or_304_with_a_body_never_reaches_the_sender_with_one() {
    let relay = Relay::start(RelayConfig::default()).await;
    let mut agent = RawAgent::connect(&relay, "bodyless").await;
    for (method, code) in [("GET", 204), ("GET", 304), ("HEAD", 200)] {
        let mut tcp = bounded("connect", TcpStream::connect(relay.addr))
            .await
            .unwrap();
        tcp.write_all(
            format!("{method} /t/bodyless/x HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let request = agent.next_request().await;
        let headers = vec![Header::new("content-length", "15")];
        agent
            .answer(request.id, code, headers, "fifteen bytes!!")
            .await;
        let text = read_to_close(&mut tcp).await;
        assert_eq!(status(&text), code, "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "", "{method} {code} carries no body: {text:?}");
        let lower = head.to_ascii_lowercase();
        if code == 200 {
            assert!(
                lower.contains("content-length: 15"),
                "HEAD keeps the length: {head}"
            );
        } else {
            assert!(!lower.contains("content-length"), "{code}: {head}");
        }
    }
}

// ------------------------------------------------ row 12: protocol checks

#[tokio::test]
async fn an_agent_answer_that_breaks_the_protocol_is_502_protocol_error() {
    let relay = Relay::start(RelayConfig::default()).await;
    let mut agent = RawAgent::connect(&relay, "liar").await;
    let url = format!("{}/x", agent.url(&relay));
    let cases: [(u16, Vec<Header>, &str); 3] = [
        (200, vec![Header::new("content-length", "100")], "x"),
        (103, vec![], ""),
        (
            200,
            vec![
                Header::new("content-length", "1"),
                Header::new("content-length", "2"),
            ],
            "x",
        ),
    ];
    for (code, headers, body) in cases {
        let pending = send_later(url.clone(), vec![]);
        let request = agent.next_request().await;
        agent.answer(request.id, code, headers, body).await;
        let answer = bounded("the sender's answer", pending).await.unwrap();
        assert_eq!(answer.status, 502, "{code}");
        assert_eq!(
            answer.header("x-hooktunnel-error"),
            [b"protocol_error".to_vec()]
        );
    }
    assert_eq!(relay.metric("hooktunnel_protocol_errors_total").await, 3);
}

#[tokio::test]
async fn a_relay_request_whose_body_contradicts_its_length_is_refused_at_once() {
    let app = LocalApp::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = listener.local_addr().unwrap();
    let home = tempfile::tempdir().unwrap();
    let fake_relay = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        // The hello.
        let _ = ws.next().await;
        let welcome = RelayMessage::Welcome(protocol::Welcome {
            version: PROTOCOL_VERSION,
            name: "raw-relay".into(),
            public_urls: vec![format!("http://{relay_addr}/t/raw-relay")],
            mode: Mode::Proxy,
            rules_enforced: false,
            max_body_bytes: None,
            max_queued_bytes: None,
            more: vec![],
        });
        ws.send(Message::Binary(welcome.encode())).await.unwrap();
        ws
    };
    let (agent, mut ws) = tokio::join!(
        Agent::start(settings(
            Some(&format!("http://{relay_addr}")),
            &app.port().to_string(),
            home.path(),
        )),
        bounded("the agent's hello", fake_relay)
    );
    let id = protocol::next_id();
    // Whole frames are durable deliveries in protocol v2 (live requests are
    // HTTP/2 streams, whose framing hyper enforces).
    let request = RelayMessage::Request(protocol::Request {
        id,
        method: "POST".into(),
        target: "/hook".into(),
        headers: vec![Header::new("content-length", "100")],
        peer: None,
        received_at_ms: 0,
        public_url: None,
        queued: true,
        needs_ack: true,
        tunnel: None,
        body: Bytes::from_static(b"x"),
    });
    let started = Instant::now();
    ws.send(Message::Binary(request.encode())).await.unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(frame))) => {
                    if let Ok(AgentMessage::Ack(ack)) = AgentMessage::decode(&frame) {
                        return ack;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("agent socket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the agent settles it at once, not after its local timeout");
    eprintln!(
        "row 12: Content-Length 100 with a 1-byte body -> recorded as refused and acked in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(acked.id, id);
    let shown = hooktunnel(home.path())
        .args(["show", &id.to_string(), "--json"])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["response"]["status"], 502, "{shown}");
    assert!(app.seen().is_empty(), "nothing reached the local app");
    agent.stop().await;
}

// ------------------------------------------------------ arbitrary bytes

/// Statuses the relay may give to anything at all.
const DEFINED: [u16; 14] = [
    200, 400, 401, 404, 405, 408, 413, 414, 429, 431, 501, 502, 503, 505,
];

fn hostile_request() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..600);
    let shaped = (
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            "[A-Z]{1,8}",
            ".{0,10}"
        ],
        prop_oneof![
            Just("/t/fuzz-me/x".to_owned()),
            Just("/_hooktunnel/metrics".to_owned()),
            "/[ -~]{0,60}",
            ".{0,60}"
        ],
        prop_oneof![
            Just("HTTP/1.1"),
            Just("HTTP/1.0"),
            Just("HTTP/2.0"),
            Just("HTTP/9")
        ],
        proptest::collection::vec(("[!-~&&[^:]]{0,20}", "[ -~\t\u{80}-\u{ff}]{0,40}"), 0..8),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(method, target, version, headers, body)| {
            let mut out = format!("{method} {target} {version}\r\n").into_bytes();
            for (n, v) in headers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            out
        });
    prop_oneof![raw, shaped]
}

#[test]
fn arbitrary_bytes_at_the_ingress_get_a_defined_answer_or_a_close() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (relay, _agent) = rt.block_on(async {
        let relay = Relay::start(RelayConfig {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            ..RelayConfig::default()
        })
        .await;
        let agent = RawAgent::connect(&relay, "fuzz-me").await;
        (relay, agent)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
    let addr = relay.addr;
    runner
        .run(&hostile_request(), |bytes| {
            let text = rt.block_on(async {
                let mut tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
                let _ = tcp.write_all(&bytes).await;
                // Half-close: the relay sees the end of input now, not after a timeout.
                let _ = tcp.shutdown().await;
                read_to_close(&mut tcp).await
            });
            if !text.is_empty() {
                prop_assert!(text.starts_with("HTTP/1."), "{text:?}");
                // A request for the raw agent waits for it; the relay answers 502/504 or the
                // sender closes first. Anything answered is one of the defined statuses.
                prop_assert!(
                    DEFINED.contains(&status(&text)) || status(&text) == 504,
                    "{text:?}"
                );
            }
            Ok(())
        })
        .unwrap();
    let health = rt.block_on(relay.health());
    assert_eq!(health.status, 200, "the relay still serves");
}
