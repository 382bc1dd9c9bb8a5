//! An adversarial suite for a relay exposed to the internet: one case per
//! row of the table, each asserting the relay's defined answer.
//! Real relay, real or raw agents, real local app, all on loopback; every
//! wait is bounded.
//!
//! The takeover of another key's name is covered by
//! `delivery.rs::another_key_cannot_take_a_name`; the race for a name is here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;
use hooktunnel_protocol::{
    self as protocol, AgentMessage, Header, Hello, Mode, PROTOCOL_VERSION, RelayMessage, Response,
};
use hooktunnel_relay::RelayConfig;
use hooktunnel_relay::config::{TlsFiles, parse_rate};

// ---------------------------------------------------------------- helpers

/// Writes `request` on a fresh connection and reads until the relay closes
/// it (or [`WAIT`]); returns everything read. Read errors (a reset after the
/// answer) end the read but keep what arrived.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
    tcp.write_all(request).await.unwrap();
    read_to_close(&mut tcp).await
}

async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    bounded("the relay to answer and close", async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response head (up to the blank line).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    bounded("a response head", async {
        while !out.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte).await {
                Ok(0) | Err(_) => break,
                Ok(_) => out.push(byte[0]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in `text` (0 when there is none).
fn status(text: &str) -> u16 {
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The tunnel name from a public URL `http://host/t/<name>`.
fn name_of(public_url: &str) -> String {
    public_url.rsplit('/').next().unwrap().to_owned()
}

/// A relay, a local app and a real agent.
async fn tunnel(config: RelayConfig) -> (LocalApp, Relay, Agent, tempfile::TempDir) {
    let app = LocalApp::start().await;
    let relay = Relay::start(config).await;
    let home = tempfile::tempdir().unwrap();
    let agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    (app, relay, agent, home)
}

/// A hand-driven agent speaking protocol v2 itself: it serves the relay's
/// HTTP/2 streams, hands each request to the test and answers what the
/// test tells it, and can put arbitrary messages on its socket.
struct RawAgent {
    name: String,
    requests: tokio::sync::mpsc::Receiver<(protocol::Request, RawReply)>,
    waiting: std::collections::HashMap<ulid::Ulid, RawReply>,
    out: tokio::sync::mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawAgent {
    fn drop(&mut self) {
        // Dropping the agent drops its socket, as a real agent's exit would.
        self.task.abort();
    }
}

/// Where a [`RawAgent`] answer for one stream goes.
type RawReply = tokio::sync::oneshot::Sender<(u16, Vec<Header>, Bytes)>;

impl RawAgent {
    async fn connect(relay: &Relay, name: &str) -> Self {
        Self::connect_with_key(relay.addr, name, &format!("key-of-{name}"))
            .await
            .expect("raw agent welcomed")
    }

    /// Connects and says hello; `Err` carries the relay's refusal.
    async fn connect_with_key(relay: SocketAddr, name: &str, key: &str) -> Result<Self, String> {
        let url = format!("ws://{relay}{}", protocol::CONNECT_PATH);
        Self::connect_url(url, name, key, None).await
    }

    /// Connects to `url` (ws or wss, TLS through `connector`) and says hello.
    async fn connect_url(
        url: String,
        name: &str,
        key: &str,
        connector: Option<tokio_tungstenite::Connector>,
    ) -> Result<Self, String> {
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector);
        let (mut ws, _) = bounded("websocket", connecting).await.unwrap();
        let hello = AgentMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            name: Some(name.into()),
            key: Some(key.into()),
            mode: Mode::Proxy,
            queued_response: None,
            host: None,
            instance: None,
            takeover: false,
            rules: Default::default(),
            more: vec![],
        });
        ws.send(Message::Binary(hello.encode())).await.unwrap();
        let name = loop {
            match bounded("welcome", ws.next()).await {
                Some(Ok(Message::Binary(frame))) => match RelayMessage::decode(&frame).unwrap() {
                    RelayMessage::Welcome(w) => break w.name,
                    RelayMessage::Error(e) => return Err(e.message),
                    other => panic!("unexpected {other:?}"),
                },
                Some(Ok(_)) => continue,
                other => return Err(format!("closed: {other:?}")),
            }
        };
        let (requests_tx, requests) = tokio::sync::mpsc::channel(64);
        let (out, mut out_rx) = tokio::sync::mpsc::channel::<Message>(256);
        let out_h2 = out.clone();
        let task = tokio::spawn(async move {
            use hooktunnel_protocol::stream::{Inbound, classify, decode_meta, encode_meta};
            let (mut sink, mut stream) = ws.split();
            let (h2_io, pipe) = hooktunnel_relay::wire::stream_pipe();
            let (pipe_out, mut pipe_in) = tokio::io::split(pipe);
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let requests_tx = requests_tx.clone();
                    async move {
                        let mut head: protocol::Request = decode_meta(req.headers()).unwrap();
                        head.body = req.into_body().collect().await.unwrap().to_bytes();
                        let id = head.id;
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let _ = requests_tx.send((head, tx)).await;
                        let (status, headers, body) =
                            rx.await.unwrap_or((599, vec![], Bytes::new()));
                        let meta = Response {
                            id,
                            status,
                            headers,
                            body: Bytes::new(),
                        };
                        let mut answer = hyper::Response::new(Full::new(body));
                        answer
                            .headers_mut()
                            .insert(protocol::stream::META_HEADER, encode_meta(&meta));
                        Ok::<_, std::convert::Infallible>(answer)
                    }
                });
            let conn =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(h2_io), service);
            let writer = async {
                while let Some(msg) = out_rx.recv().await {
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
            };
            let reader = async {
                while let Some(Ok(msg)) = stream.next().await {
                    if let Message::Binary(frame) = msg
                        && let Inbound::Stream(h2) = classify(frame)
                        && hooktunnel_relay::wire::pump_in(&mut pipe_in, &h2)
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = writer => {}
                _ = reader => {}
                _ = hooktunnel_relay::wire::pump_out(pipe_out, &out_h2) => {}
            }
        });
        Ok(Self {
            name,
            requests,
            waiting: std::collections::HashMap::new(),
            out,
            task,
        })
    }

    fn url(&self, relay: &Relay) -> String {
        format!("{}/t/{}", relay.url, self.name)
    }

    /// Puts any message on the agent's socket.
    async fn send_raw(&self, message: Message) {
        self.out.send(message).await.unwrap();
    }

    async fn next_request(&mut self) -> protocol::Request {
        let (request, reply) = bounded("a request stream", self.requests.recv())
            .await
            .expect("agent socket ended");
        self.waiting.insert(request.id, reply);
        request
    }

    /// Answers the stream of `id`; for an id this agent was never sent, a
    /// protocol-v1 answer frame claiming it (which the relay must ignore).
    async fn answer(&mut self, id: ulid::Ulid, status: u16, headers: Vec<Header>, body: &str) {
        match self.waiting.remove(&id) {
            Some(reply) => {
                let _ = reply.send((status, headers, Bytes::from(body.to_owned())));
            }
            None => {
                let msg = AgentMessage::Response(Response {
                    id,
                    status,
                    headers,
                    body: Bytes::from(body.to_owned()),
                });
                self.send_raw(Message::Binary(msg.encode())).await;
            }
        }
    }
}

/// Sends one request in the background; the answer arrives on the handle.
fn send_later(url: String, headers: Vec<(String, Vec<u8>)>) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        let h: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        send(&client(), "POST", &url, &h, "x").await
    })
}

fn header_names(headers: &[Header]) -> Vec<String> {
    headers
        .iter()
        .map(|h| h.name.to_ascii_lowercase())
        .collect()
}

fn header_values(headers: &[Header], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value_lossy().into_owned())
        .collect()
}

/// An upgrade request for the agent endpoint, with extra header lines.
fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

// ------------------------------------------------------------ agent auth

#[tokio::test]
async fn agent_tokens_plain_hashed_missing_wrong_and_in_the_query() {
    let hashed: [u8; 32] = sha2::Sha256::digest(b"file-token").into();
    let relay = Relay::start(RelayConfig {
        tokens: vec!["right-token".into()],
        token_hashes: vec![hashed],
        ..RelayConfig::default()
    })
    .await;
    let path = protocol::CONNECT_PATH;

    let none = raw(relay.addr, upgrade_request(path, "").as_bytes()).await;
    assert_eq!(status(&none), 401, "{none}");
    assert!(
        none.contains("--token"),
        "the 401 names the setting: {none}"
    );

    let wrong = raw(
        relay.addr,
        upgrade_request(path, "Authorization: Bearer wrong-token\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&wrong), 401, "{wrong}");

    let prefix = raw(
        relay.addr,
        upgrade_request(path, "Authorization: Bearer right-toke\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&prefix), 401, "a prefix of a token is not a token");

    let query = raw(
        relay.addr,
        upgrade_request(&format!("{path}?token=right-token"), "").as_bytes(),
    )
    .await;
    assert_eq!(
        status(&query),
        401,
        "?token= must not authenticate: {query}"
    );

    let digest_itself = raw(
        relay.addr,
        upgrade_request(
            path,
            &format!("Authorization: Bearer {}\r\n", hex::encode(hashed)),
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(
        status(&digest_itself),
        401,
        "the stored digest is not a token"
    );

    for token in ["right-token", "file-token"] {
        let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
        tcp.write_all(
            upgrade_request(path, &format!("Authorization: bearer {token}\r\n")).as_bytes(),
        )
        .await
        .unwrap();
        let head = read_head(&mut tcp).await;
        assert_eq!(status(&head), 101, "{token}: {head}");
    }
}

// ----------------------------------------------------------------- names

#[tokio::test]
async fn concurrent_claims_of_one_name_have_exactly_one_winner() {
    let relay = Relay::start(RelayConfig::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let addr = relay.addr;
        tasks.spawn(async move {
            RawAgent::connect_with_key(addr, "contested", &format!("key-{i}"))
                .await
                .map(|agent| (i, agent))
        });
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    while let Some(joined) = bounded("claims", tasks.join_next()).await {
        match joined.unwrap() {
            Ok((i, agent)) => winners.push((i, agent)),
            Err(message) => losers.push(message),
        }
    }
    assert_eq!(winners.len(), 1, "losers: {losers:?}");
    assert!(
        losers
            .iter()
            .all(|m| m.contains("another agent") || m.contains("held by")),
        "{losers:?}"
    );
    // The winner's key keeps the name even after it disconnects.
    let (winner, agent) = winners.pop().unwrap();
    drop(agent);
    let other = (winner + 1) % 12;
    let again = RawAgent::connect_with_key(relay.addr, "contested", &format!("key-{other}")).await;
    assert!(again.is_err(), "a losing key cannot take the name later");
}

#[tokio::test]
async fn the_name_matrix_through_real_http_by_path_and_host() {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig {
        domain: Some("hooks.test".into()),
        ..RelayConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut named = settings(Some(&relay.url), &app.port().to_string(), home.path());
    named.name = Some("sec-names".into());
    let _agent = Agent::start(named).await;
    let c = client();

    let ok = send(&c, "GET", &format!("{}/t/sec-names/x", relay.url), &[], "").await;
    assert_eq!(ok.status, 200);
    for bad in [
        "/t/SEC-NAMES/x",
        "/t/Sec-Names/x",
        "/t/%73ec-names/x",
        "/t/%2e%2e/x",
        "/t/%2E%2E/x",
        "/t/../x",
        "/t/./x",
        "/t/sec-names%2fx",
        "/t/sec_names/x",
        "/t/www/x",
        "/t/-sec/x",
        "/t//x",
    ] {
        let answer = send(&c, "GET", &format!("{}{bad}", relay.url), &[], "").await;
        assert_eq!(answer.status, 404, "{bad}");
        assert!(
            answer.header("x-hooktunnel-error")[0].starts_with(b"invalid_tunnel_name")
                || answer.header("x-hooktunnel-error")[0] == b"no_tunnel",
            "{bad}"
        );
    }
    // Raw UTF-8 in the path: refused (400 by the parser or 404 by the name rules).
    let unicode = raw(
        relay.addr,
        "GET /t/s\u{e9}c-names/x HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n".as_bytes(),
    )
    .await;
    assert!(matches!(status(&unicode), 400 | 404), "{unicode}");

    // Host routing agrees with path routing, case-insensitively.
    for host in [
        "sec-names.hooks.test",
        "SEC-NAMES.HOOKS.TEST",
        "Sec-Names.hooks.test:8080",
        "sec-names.hooks.test.",
    ] {
        let text = raw(
            relay.addr,
            format!("GET /h HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status(&text), 200, "{host}: {text}");
    }
    for host in [
        "www.hooks.test",
        "sec_names.hooks.test",
        "-sec.hooks.test",
        "xx.hooks.test",
    ] {
        let text = raw(
            relay.addr,
            format!("GET /h HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status(&text), 404, "{host}: {text}");
    }
    let two_hosts = raw(
        relay.addr,
        b"GET /h HTTP/1.1\r\nHost: sec-names.hooks.test\r\nHost: other.hooks.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&two_hosts), 400, "{two_hosts}");
    let paths: Vec<String> = app.seen().into_iter().map(|s| s.path_and_query).collect();
    assert_eq!(paths, ["/x", "/h", "/h", "/h", "/h"]);
}

// ---------------------------------------------------------------- limits

fn small_body_relay() -> RelayConfig {
    RelayConfig {
        max_body_bytes: 1024,
        ..RelayConfig::default()
    }
}

#[tokio::test]
async fn bodies_at_the_limit_pass_and_one_byte_over_get_413() {
    let (app, relay, agent, _home) = tunnel(small_body_relay()).await;
    let name = name_of(&agent.public_url);
    let at = "a".repeat(1024);
    let over = "a".repeat(1025);

    // Declared length.
    let ok = raw(
        relay.addr,
        format!(
            "POST /t/{name}/declared HTTP/1.1\r\nHost: r\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{at}"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&ok), 200, "{ok}");
    // One byte over, declared: refused from the head alone.
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!("POST /t/{name}/declared-over HTTP/1.1\r\nHost: r\r\nContent-Length: 1025\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 413, "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"));

    // Chunked.
    let ok = raw(
        relay.addr,
        format!(
            "POST /t/{name}/chunked HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n200\r\n{}\r\n200\r\n{}\r\n0\r\n\r\n",
            &at[..512],
            &at[512..]
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&ok), 200, "{ok}");
    let refused = raw(
        relay.addr,
        format!(
            "POST /t/{name}/chunked-over HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n{over}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&refused), 413, "{refused}");

    // Expect: 100-continue at the limit: 100, then the body, then 200.
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /t/{name}/expect HTTP/1.1\r\nHost: r\r\nContent-Length: 1024\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 100, "{head}");
    tcp.write_all(at.as_bytes()).await.unwrap();
    let rest = read_to_close(&mut tcp).await;
    assert_eq!(status(&rest), 200, "{rest}");
    // Expect: 100-continue one byte over: 413 and never a 100.
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /t/{name}/expect-over HTTP/1.1\r\nHost: r\r\nContent-Length: 1025\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 413, "{head}");
    // Expect: 100-continue with a chunked body over the limit.
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /t/{name}/expect-chunked-over HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 100, "{head}");
    tcp.write_all(format!("401\r\n{over}\r\n0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let rest = read_to_close(&mut tcp).await;
    assert_eq!(status(&rest), 413, "{rest}");

    let paths: Vec<String> = app.seen().into_iter().map(|s| s.path_and_query).collect();
    assert_eq!(paths, ["/declared", "/chunked", "/expect"]);
    assert!(app.seen().iter().all(|s| s.body.len() == 1024));
}

#[tokio::test]
async fn the_default_body_limit_is_ten_mib() {
    let (_app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let name = name_of(&agent.public_url);
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /t/{name}/big HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024 + 1
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 413, "{head}");
    assert!(head.contains("body_too_large"));
}

#[tokio::test]
async fn header_floods_get_431_and_long_urls_get_414() {
    let (app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let name = name_of(&agent.public_url);
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let flood = raw(
        relay.addr,
        format!("GET /t/{name}/ HTTP/1.1\r\nHost: r\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&flood), 431, "{flood}");
    let huge = raw(
        relay.addr,
        format!(
            "GET /t/{name}/ HTTP/1.1\r\nHost: r\r\nx-big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&huge), 431, "{huge}");
    let long = raw(
        relay.addr,
        format!(
            "GET /t/{name}/{} HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n",
            "a".repeat(9 * 1024)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&long), 414, "{long}");
    assert!(app.seen().is_empty());
}

#[tokio::test]
async fn a_slowloris_head_is_disconnected_within_the_timeout() {
    let relay = Relay::start(RelayConfig {
        header_read_timeout: Duration::from_millis(500),
        ..RelayConfig::default()
    })
    .await;
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET /t/anyone/ HTTP/1.1\r\nHost: r\r\nX-Slow: ")
        .await
        .unwrap();
    let text = read_to_close(&mut tcp).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "closed after {took:?}, want about 0.5 s"
    );
    assert!(
        text.is_empty() || status(&text) == 408,
        "either closed or 408: {text}"
    );
    // A connection that never sends a byte is closed too.
    let mut idle = TcpStream::connect(relay.addr).await.unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut idle).await, "");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The relay still serves.
    let health = relay.health().await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let (app, relay, agent, _home) = tunnel(RelayConfig {
        body_read_timeout: Duration::from_millis(500),
        ..RelayConfig::default()
    })
    .await;
    let name = name_of(&agent.public_url);
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(
        format!("POST /t/{name}/slow HTTP/1.1\r\nHost: r\r\nContent-Length: 100\r\n\r\nonly-ten!!")
            .as_bytes(),
    )
    .await
    .unwrap();
    let text = read_to_close(&mut tcp).await;
    assert_eq!(status(&text), 408, "{text}");
    assert!(app.seen().is_empty());
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let relay = Relay::start(RelayConfig {
        rate_per_ip: parse_rate("1/m:3").unwrap(),
        ..RelayConfig::default()
    })
    .await;
    let c = client();
    let health = format!("{}/_hooktunnel/health", relay.url);
    for _ in 0..3 {
        assert_eq!(send(&c, "GET", &health, &[], "").await.status, 200);
    }
    let limited = send(&c, "GET", &health, &[], "").await;
    assert_eq!(limited.status, 429);
    let retry: u64 = String::from_utf8(limited.header("retry-after")[0].clone())
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    let (_app, relay, agent, _home) = tunnel(RelayConfig {
        rate_per_tunnel: parse_rate("1/m:2").unwrap(),
        ..RelayConfig::default()
    })
    .await;
    let url = format!("{}/x", agent.public_url);
    for _ in 0..2 {
        assert_eq!(send(&c, "POST", &url, &[], "a").await.status, 200);
    }
    let limited = send(&c, "POST", &url, &[], "a").await;
    assert_eq!(limited.status, 429);
    assert!(!limited.header("retry-after").is_empty());
    assert_eq!(relay.metric("hooktunnel_rate_limited_total").await, 1);
}

#[tokio::test]
async fn too_many_in_flight_for_one_tunnel_get_503_with_retry_after() {
    let relay = Relay::start(RelayConfig {
        max_in_flight_per_tunnel: 2,
        ..RelayConfig::default()
    })
    .await;
    let mut agent = RawAgent::connect(&relay, "busy-one").await;
    let url = format!("{}/x", agent.url(&relay));
    let first = send_later(url.clone(), vec![]);
    let second = send_later(url.clone(), vec![]);
    let a = agent.next_request().await;
    let b = agent.next_request().await;
    let third = send(&client(), "POST", &url, &[], "x").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), [b"1".to_vec()]);
    agent.answer(a.id, 200, vec![], "a").await;
    agent.answer(b.id, 200, vec![], "b").await;
    assert_eq!(bounded("first", first).await.unwrap().status, 200);
    assert_eq!(bounded("second", second).await.unwrap().status, 200);
    // Slots are released: the next request goes through.
    let fourth = send_later(url, vec![]);
    let d = agent.next_request().await;
    agent.answer(d.id, 201, vec![], "d").await;
    assert_eq!(bounded("fourth", fourth).await.unwrap().status, 201);
}

// ------------------------------------------------------- the agent socket

/// Opens an agent socket by hand and returns the TCP stream after the 101.
async fn raw_upgrade(relay: &Relay) -> TcpStream {
    let mut tcp = TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(upgrade_request(protocol::CONNECT_PATH, "").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tcp).await;
    assert_eq!(status(&head), 101, "{head}");
    tcp
}

#[tokio::test]
async fn garbage_and_oversized_frames_on_agent_sockets_leave_other_tunnels_serving() {
    let (app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let c = client();
    let check_good = || async {
        let answer = send(
            &c,
            "POST",
            &format!("{}/still", agent.public_url),
            &[],
            "ok",
        )
        .await;
        assert_eq!(answer.status, 200);
    };

    // Random bytes instead of WebSocket framing: that socket is dropped.
    let mut garbage = raw_upgrade(&relay).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let _ = garbage.write_all(&noise).await;
    read_to_close(&mut garbage).await;
    check_good().await;

    // A frame header declaring a 1 TiB payload: refused from the header.
    let mut huge = raw_upgrade(&relay).await;
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    huge.write_all(&frame).await.unwrap();
    read_to_close(&mut huge).await;
    check_good().await;

    // A hello larger than the pre-registration budget (64 KiB): no welcome.
    let url = format!("ws://{}{}", relay.addr, protocol::CONNECT_PATH);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _ = ws
        .send(Message::Binary(Bytes::from(vec![b'{'; 200 * 1024])))
        .await;
    let welcomed = bounded("the oversized hello to be refused", async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(frame) = msg
                && let Ok(RelayMessage::Welcome(_)) = RelayMessage::decode(&frame)
            {
                return true;
            }
        }
        false
    })
    .await;
    assert!(!welcomed);
    check_good().await;

    // After the handshake, undecodable binary messages are ignored and the
    // tunnel keeps serving.
    let mut rogue = RawAgent::connect(&relay, "rogue-frames").await;
    // (A first byte of 1 would mark HTTP/2 bytes: junk there ends only
    // this agent's own stream connection, so these junk frames avoid it.)
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..(i as usize * 7))
            .map(|j| if j == 0 { 0 } else { (j as u8) ^ i })
            .collect();
        rogue.send_raw(Message::Binary(Bytes::from(junk))).await;
    }
    rogue.send_raw(Message::Text("not a frame".into())).await;
    let later = send_later(format!("{}/after-junk", rogue.url(&relay)), vec![]);
    let r = rogue.next_request().await;
    rogue.answer(r.id, 202, vec![], "fine").await;
    assert_eq!(bounded("rogue answer", later).await.unwrap().status, 202);
    check_good().await;
    assert_eq!(app.seen().len(), 4);
}

#[tokio::test]
async fn answers_for_unknown_or_another_tunnels_ids_are_ignored() {
    let relay = Relay::start(RelayConfig::default()).await;
    let mut victim = RawAgent::connect(&relay, "victim-one").await;
    let mut thief = RawAgent::connect(&relay, "thief-one").await;
    let pending = send_later(format!("{}/pay", victim.url(&relay)), vec![]);
    let request = victim.next_request().await;

    thief
        .answer(
            request.id,
            299,
            vec![Header::new("x-forged", "1")],
            "forged",
        )
        .await;
    thief
        .answer(protocol::next_id(), 298, vec![], "unknown")
        .await;
    // A round trip on the thief's own tunnel proves its forged frames were read.
    let own = send_later(format!("{}/own", thief.url(&relay)), vec![]);
    let own_request = thief.next_request().await;
    thief.answer(own_request.id, 200, vec![], "own").await;
    assert_eq!(bounded("own answer", own).await.unwrap().body, "own");
    assert!(
        !pending.is_finished(),
        "the forged answer must not complete it"
    );

    victim.answer(request.id, 201, vec![], "real").await;
    let answer = bounded("victim's answer", pending).await.unwrap();
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body, "real");
    assert!(answer.header("x-forged").is_empty());
}

// ----------------------------------------------------------- HTTP hygiene

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let relay = Relay::start(RelayConfig::default()).await;
    let mut agent = RawAgent::connect(&relay, "hop-check").await;
    let pending = tokio::spawn({
        let addr = relay.addr;
        async move {
            raw(
                addr,
                b"POST /t/hop-check/x HTTP/1.1\r\nHost: r\r\nConnection: close, x-conn-named\r\n\
                  X-Conn-Named: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
                  Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n\
                  Trailer: x-t\r\nX-Keep: yes\r\nContent-Length: 2\r\n\r\nhi",
            )
            .await
        }
    });
    let request = agent.next_request().await;
    let names = header_names(&request.headers);
    for hop in [
        "connection",
        "x-conn-named",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(!names.contains(&hop.to_owned()), "{hop} reached the agent");
    }
    assert_eq!(header_values(&request.headers, "x-keep"), ["yes"]);
    agent
        .answer(
            request.id,
            200,
            vec![
                Header::new("connection", "x-resp-named"),
                Header::new("x-resp-named", "secret"),
                Header::new("keep-alive", "timeout=99"),
                Header::new("proxy-authenticate", "Basic"),
                Header::new("upgrade", "h2c"),
                Header::new("trailer", "x-t"),
                Header::new("transfer-encoding", "gzip"),
                Header::new("x-app", "kept"),
            ],
            "body",
        )
        .await;
    let text = bounded("the answer", pending)
        .await
        .unwrap()
        .to_ascii_lowercase();
    assert_eq!(status(&text), 200, "{text}");
    for hop in [
        "x-resp-named",
        "keep-alive",
        "proxy-authenticate",
        "upgrade:",
        "trailer",
        "transfer-encoding: gzip",
        "connection: x-resp-named",
    ] {
        assert!(!text.contains(hop), "{hop} reached the sender: {text}");
    }
    assert!(text.contains("x-app: kept"));
    assert!(text.ends_with("body"));
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_not_trusted() {
    let spoof: Vec<(String, Vec<u8>)> = vec![
        ("x-forwarded-for".into(), b"6.6.6.6".to_vec()),
        ("x-forwarded-host".into(), b"bank.example".to_vec()),
        ("x-forwarded-proto".into(), b"https".to_vec()),
        (
            "forwarded".into(),
            b"for=6.6.6.6;host=bank.example".to_vec(),
        ),
        ("x-real-ip".into(), b"6.6.6.6".to_vec()),
    ];
    let relay = Relay::start(RelayConfig::default()).await;
    let mut agent = RawAgent::connect(&relay, "xff-check").await;
    let pending = send_later(format!("{}/x", agent.url(&relay)), spoof.clone());
    let request = agent.next_request().await;
    agent.answer(request.id, 200, vec![], "").await;
    bounded("answer", pending).await.unwrap();
    let h = &request.headers;
    assert_eq!(header_values(h, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header_values(h, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        header_values(h, "x-forwarded-host"),
        [relay.addr.to_string()]
    );
    assert_eq!(
        header_values(h, "forwarded"),
        [format!("for=127.0.0.1;host=\"{}\";proto=http", relay.addr)]
    );
    assert!(header_values(h, "x-real-ip").is_empty());

    // Behind a trusted proxy the relay appends instead.
    let trusting = Relay::start(RelayConfig {
        trust_proxy: true,
        ..RelayConfig::default()
    })
    .await;
    let mut agent = RawAgent::connect(&trusting, "xff-trust").await;
    let pending = send_later(format!("{}/x", agent.url(&trusting)), spoof);
    let request = agent.next_request().await;
    agent.answer(request.id, 200, vec![], "").await;
    bounded("answer", pending).await.unwrap();
    assert_eq!(
        header_values(&request.headers, "x-forwarded-for"),
        ["6.6.6.6, 127.0.0.1"]
    );
    assert_eq!(
        header_values(&request.headers, "x-forwarded-host"),
        ["bank.example"]
    );
}

#[tokio::test]
async fn ambiguous_framing_is_refused_or_closed_never_smuggled() {
    let (app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let name = name_of(&agent.public_url);
    // Content-Length and Transfer-Encoding together: hyper frames by
    // Transfer-Encoding alone, drops Content-Length and closes the
    // connection after answering (RFC 9112 §6.1), so the tail that a
    // Content-Length reader would see as a second request is never read.
    let smuggle = format!(
        "POST /t/{name}/front HTTP/1.1\r\nHost: r\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /t/{name}/smuggled HTTP/1.1\r\nHost: r\r\n\r\n"
    );
    let text = raw(relay.addr, smuggle.as_bytes()).await;
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {text}"
    );
    let conflicting = raw(
        relay.addr,
        format!(
            "POST /t/{name}/cl HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&conflicting), 400, "{conflicting}");
    let not_chunked = raw(
        relay.addr,
        format!("POST /t/{name}/te HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: gzip\r\n\r\nabcd")
            .as_bytes(),
    )
    .await;
    assert_eq!(status(&not_chunked), 400, "{not_chunked}");
    let paths: Vec<String> = app.seen().into_iter().map(|s| s.path_and_query).collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("smuggled") || p == "/cl" || p == "/te"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn odd_paths_reach_only_the_configured_target() {
    let sentinel = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sentinel_addr = sentinel.local_addr().unwrap();
    let (app, relay, agent, _home) = tunnel(RelayConfig::default()).await;
    let name = name_of(&agent.public_url);
    let c = client();
    let targets = [
        format!("//{sentinel_addr}/x"),
        format!("//localhost:{}/x", sentinel_addr.port()),
        "/..%2f..%2fx".to_owned(),
        "/%2e%2e/%2e%2e/x".to_owned(),
        format!("/..%2f{sentinel_addr}/x"),
    ];
    for target in &targets {
        let answer = send(&c, "GET", &format!("{}{target}", agent.public_url), &[], "").await;
        assert_eq!(answer.status, 200, "{target}");
    }
    // Absolute-form request target naming the sentinel: routed by its path only.
    let absolute = raw(
        relay.addr,
        format!(
            "GET http://{sentinel_addr}/t/{name}/abs HTTP/1.1\r\nHost: {sentinel_addr}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&absolute), 200, "{absolute}");
    let seen: Vec<String> = app.seen().into_iter().map(|s| s.path_and_query).collect();
    let mut expected: Vec<String> = targets.to_vec();
    expected.push("/abs".into());
    assert_eq!(seen, expected, "each arrived verbatim at the local app");
    // Nothing ever connected to the sentinel.
    let knocked = tokio::time::timeout(Duration::from_millis(300), sentinel.accept()).await;
    assert!(knocked.is_err(), "the sentinel was reached");
}

// -------------------------------------------------------------------- TLS

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    /// A private CA and a relay certificate for 127.0.0.1 and localhost.
    fn new() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hooktunnel test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("relay.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("relay.key"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self {
            ca_pem: ca.pem(),
            dir,
        }
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join("relay.pem"),
            key: self.dir.path().join("relay.key"),
        }
    }

    /// A rustls client trusting only this CA.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// One https request to `addr` through a client trusting `pki`'s CA.
async fn https_post(
    client_config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    path: &str,
    body: &'static str,
) -> (u16, Bytes) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config);
    let server_name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = bounded("TLS handshake", tls.connect(server_name, tcp))
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = bounded("https answer", sender.send_request(request))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = bounded("https body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, body)
}

#[tokio::test]
async fn tls_round_trip_with_a_private_ca() {
    let pki = Pki::new();
    let relay = Relay::start(RelayConfig {
        tls: Some(pki.files()),
        ..RelayConfig::default()
    })
    .await;
    // An agent over wss, trusting the private CA.
    let url = format!("wss://{}{}", relay.addr, protocol::CONNECT_PATH);
    let connector = tokio_tungstenite::Connector::Rustls(pki.client_config());
    let mut agent = RawAgent::connect_url(url, "tls-raw", "tls-key", Some(connector))
        .await
        .unwrap();
    // A sender over https, trusting the same CA.
    let pending = tokio::spawn({
        let client_config = pki.client_config();
        let addr = relay.addr;
        async move { https_post(client_config, addr, "/t/tls-raw/secure", "over tls").await }
    });
    let request = agent.next_request().await;
    assert_eq!(request.target, "/secure");
    assert_eq!(&request.body[..], b"over tls");
    assert_eq!(
        header_values(&request.headers, "x-forwarded-proto"),
        ["https"]
    );
    assert!(
        request
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    );
    agent.answer(request.id, 200, vec![], "secured").await;
    let (status, body) = bounded("https answer", pending).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "secured");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = raw(
        relay.addr,
        b"GET /_hooktunnel/health HTTP/1.1\r\nHost: r\r\n\r\n",
    )
    .await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
}

#[tokio::test]
async fn real_agent_reaches_a_tls_relay_with_ca_cert_and_refuses_without_it() {
    let pki = Pki::new();
    let relay = Relay::start(RelayConfig {
        tls: Some(pki.files()),
        ..RelayConfig::default()
    })
    .await;
    let https = format!("https://{}", relay.addr);
    let app = LocalApp::start().await;

    // Without the private CA the public roots do not trust the relay.
    let home = tempfile::tempdir().unwrap();
    let untrusted = hooktunnel::commands::listen::start(
        settings(Some(&https), &app.port().to_string(), home.path()),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let message = format!(
        "{:#}",
        untrusted.err().expect("an untrusted relay is refused")
    );
    assert!(message.contains("cannot connect to the relay"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");

    // A file that is not a certificate is named in a fatal error.
    let bogus = home.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "hello").unwrap();
    let mut s = settings(Some(&https), &app.port().to_string(), home.path());
    s.ca_cert = Some(bogus);
    let refused =
        hooktunnel::commands::listen::start(s, tokio_util::sync::CancellationToken::new()).await;
    let message = format!("{:#}", refused.err().expect("a bogus CA file is refused"));
    assert!(message.contains("not-a-ca.pem"), "{message}");
    assert!(message.contains("--ca-cert"), "{message}");

    // With --ca-cert the whole loop runs over wss.
    let mut s = settings(Some(&https), &app.port().to_string(), home.path());
    s.ca_cert = Some(pki.dir.path().join("ca.pem"));
    let mut agent = Agent::start(s).await;
    assert!(
        agent.public_url.starts_with("https://"),
        "{}",
        agent.public_url
    );
    let path = agent.public_url.strip_prefix(&https).unwrap().to_owned();
    let (status, body) = https_post(
        pki.client_config(),
        relay.addr,
        &format!("{path}/over-wss"),
        "tls all the way",
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    let summary = agent.next_exchange().await;
    assert_eq!(summary.path, "/over-wss");
    assert_eq!(app.seen().len(), 1);
    agent.stop().await;
}

mod outsider;
