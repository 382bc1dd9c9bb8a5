//! Never lose a webhook: stable names, the durable offline queue, ack mode,
//! reconnects. Real relay, real agent, real local app on loopback.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use hooktunnel::commands::listen;
use hooktunnel::config::Paths;
use hooktunnel::exchange::{Exchange, ExchangeResponse};
use hooktunnel::store::Store;
use hooktunnel_protocol::Mode;
use hooktunnel_relay::RelayConfig;

fn durable_relay(dir: &std::path::Path) -> RelayConfig {
    RelayConfig {
        data_dir: Some(dir.to_path_buf()),
        ..RelayConfig::default()
    }
}

/// Polls (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    bounded(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Starts an agent once so its name is claimed, then stops it; returns the public URL.
async fn claim_then_go_offline(relay: &Relay, app: &LocalApp, home: &std::path::Path) -> String {
    let agent = Agent::start(settings(Some(&relay.url), &app.port().to_string(), home)).await;
    let url = agent.public_url.clone();
    agent.stop().await;
    url
}

fn bodies(app: &LocalApp) -> Vec<String> {
    app.seen()
        .into_iter()
        .map(|s| String::from_utf8(s.body).unwrap())
        .collect()
}

#[tokio::test]
async fn offline_requests_are_queued_then_delivered_in_order_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(durable_relay(data.path())).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = claim_then_go_offline(&relay, &app, home.path()).await;

    // More than the agent holds in memory at once: the rest wait at the
    // relay while the ordered worker catches up (back-pressure).
    const QUEUED: usize = hooktunnel::agent::handle::ORDERED_CAPACITY + 6;
    let c = client();
    for i in 0..QUEUED {
        let answer = send(
            &c,
            "POST",
            &format!("{url}/hook"),
            &[],
            format!("event-{i}"),
        )
        .await;
        assert_eq!(answer.status, 202, "request {i} while offline");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["queued"], true);
        assert!(json["id"].as_str().is_some());
    }
    assert!(app.seen().is_empty());

    let mut agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    assert_eq!(agent.public_url, url, "the URL is stable across runs");
    eventually("all deliveries", || app.seen().len() >= QUEUED).await;
    let expected: Vec<String> = (0..QUEUED).map(|i| format!("event-{i}")).collect();
    assert_eq!(bodies(&app), expected, "in arrival order, once each");
    let first = agent.next_exchange().await;
    assert!(first.queued, "queued deliveries are marked as such");
    let relay_ref = &relay;
    bounded("all acks", async {
        while relay_ref.metric("hooktunnel_acked_total").await < QUEUED as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    agent.stop().await;

    // Nothing is redelivered on the next run: a live request is the only new arrival.
    let agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    let live = send(
        &c,
        "POST",
        &format!("{}/live", agent.public_url),
        &[],
        "live",
    )
    .await;
    assert_eq!(live.status, 200);
    assert_eq!(app.seen().len(), QUEUED + 1);
}

#[tokio::test]
async fn another_key_cannot_take_a_name() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut owner = settings(Some(&relay.url), &app.port().to_string(), home_a.path());
    owner.name = Some("shared-name".into());
    let owner = Agent::start(owner).await;

    let mut intruder = settings(Some(&relay.url), &app.port().to_string(), home_b.path());
    intruder.name = Some("shared-name".into());
    let cancel = tokio_util::sync::CancellationToken::new();
    let refused = bounded("intruder", listen::start(intruder, cancel)).await;
    let err = format!("{:#}", refused.err().expect("takeover must be refused"));
    assert!(err.contains("belongs to another agent key"), "{err}");

    let answer = send(
        &client(),
        "GET",
        &format!("{}/still-mine", owner.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "the owner keeps working");
}

#[tokio::test]
async fn a_killed_relay_keeps_its_queue_and_the_agent_reconnects() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(durable_relay(data.path())).await;
    let addr = relay.addr;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = claim_then_go_offline(&relay, &app, home.path()).await;
    let c = client();
    for i in 0..5 {
        assert_eq!(
            send(&c, "POST", &url, &[], format!("q{i}")).await.status,
            202
        );
    }
    relay.kill().await;

    let relay = Relay::start_at(addr, durable_relay(data.path())).await;
    let _agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    eventually("queued deliveries after a relay crash", || {
        app.seen().len() >= 5
    })
    .await;
    assert_eq!(bodies(&app), ["q0", "q1", "q2", "q3", "q4"]);

    // Now kill it while the agent is connected: the agent must come back by itself.
    relay.kill().await;
    let relay = Relay::start_at(addr, durable_relay(data.path())).await;
    let c2 = c.clone();
    let url2 = url.clone();
    bounded("agent reconnect", async move {
        loop {
            let answer = send(&c2, "POST", &url2, &[], "after-restart").await;
            if answer.status == 200 {
                break;
            }
            assert_eq!(
                answer.status, 202,
                "offline answers are 202 while reconnecting"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    drop(relay);
}

#[tokio::test]
async fn an_id_already_stored_is_acked_but_not_forwarded_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(durable_relay(data.path())).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = claim_then_go_offline(&relay, &app, home.path()).await;
    let answer = send(&client(), "POST", &url, &[], "stored-before-crash").await;
    assert_eq!(answer.status, 202);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let id = ulid::Ulid::from_string(json["id"].as_str().unwrap()).unwrap();

    // The agent stored this exchange, then died before its ack reached the relay.
    let mut store = Store::open(&Paths::at(home.path()).db()).unwrap();
    store
        .insert(&Exchange {
            request_truncated: None,
            capture_degraded: false,
            attempts: 1,
            id,
            tunnel: String::new(),
            received_at_ms: 0,
            method: "POST".into(),
            path: "/".into(),
            target: format!("http://127.0.0.1:{}", app.port()),
            request_headers: vec![],
            request_body: "stored-before-crash".into(),
            response: Some(ExchangeResponse {
                truncated: None,
                status: 200,
                headers: vec![],
                body: "".into(),
            }),
            duration_us: 1,
            error: None,
            replay_of: None,
            queued: true,
            peer: None,
            public_url: None,
            signature: None,
        })
        .unwrap();
    drop(store);

    let agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    let relay_ref = &relay;
    bounded("the redelivered id is acked", async {
        while relay_ref.metric("hooktunnel_acked_total").await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        app.seen().is_empty(),
        "a stored id must not reach the local app twice"
    );
    let live = send(
        &client(),
        "GET",
        &format!("{}/live", agent.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(live.status, 200);
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn ack_mode_answers_before_the_local_app_does() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.mode = Mode::Ack;
    let mut agent = Agent::start(s).await;
    let answer = send(
        &client(),
        "POST",
        &format!("{}/slow", agent.public_url),
        &[],
        "slack",
    )
    .await;
    assert_eq!(answer.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["accepted"], true);
    // The local app sleeps 3 s before answering; its exchange is recorded after our 200.
    let events = &mut agent.running.events;
    assert!(
        matches!(
            events.try_recv(),
            Err(_) | Ok(hooktunnel::event::AgentEvent::Ready(_))
        ),
        "the exchange cannot be done yet"
    );
    let done = agent.next_exchange().await;
    assert_eq!(done.status, Some(200));
    assert_eq!(bodies(&app), ["slack"]);
}

#[tokio::test]
async fn ack_mode_retries_a_failing_local_app() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.mode = Mode::Ack;
    s.max_attempts = 3;
    let mut agent = Agent::start(s).await;
    let answer = send(
        &client(),
        "POST",
        &format!("{}/status/503", agent.public_url),
        &[],
        "x",
    )
    .await;
    assert_eq!(answer.status, 200);
    let done = agent.next_exchange().await;
    assert_eq!(done.status, Some(503));
    assert_eq!(app.seen().len(), 3, "three attempts against a 503");
}

#[tokio::test]
async fn a_full_queue_answers_507_instead_of_dropping() {
    let data = tempfile::tempdir().unwrap();
    let mut config = durable_relay(data.path());
    config.queue_limits.max_count = 2;
    let relay = Relay::start(config).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = claim_then_go_offline(&relay, &app, home.path()).await;
    let c = client();
    assert_eq!(send(&c, "POST", &url, &[], "1").await.status, 202);
    assert_eq!(send(&c, "POST", &url, &[], "2").await.status, 202);
    let full = send(&c, "POST", &url, &[], "3").await;
    assert_eq!(full.status, 507);
    assert_eq!(
        full.header("x-hooktunnel-error"),
        vec![b"queue_full".to_vec()]
    );
    assert_eq!(relay.metric("hooktunnel_queue_full_total").await, 1);
}

/// Fault test: 1,000 webhooks in ack mode while the agent is stopped and
/// restarted three times. Every 2xx must reach the local app exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_survive_agent_restarts() {
    const TOTAL: usize = 1000;
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(durable_relay(data.path())).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.mode = Mode::Ack;
    let agent = Agent::start(s.clone()).await;
    let url = agent.public_url.clone();

    let sender = tokio::spawn(async move {
        let c = client();
        let mut accepted = 0;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..TOTAL {
            let (c, url) = (c.clone(), url.clone());
            tasks.spawn(async move {
                send(&c, "POST", &format!("{url}/e"), &[], format!("{i}"))
                    .await
                    .status
            });
            if tasks.len() >= 16 {
                let status = tasks.join_next().await.unwrap().unwrap();
                accepted += usize::from((200..300).contains(&status));
            }
        }
        while let Some(status) = tasks.join_next().await {
            accepted += usize::from((200..300).contains(&status.unwrap()));
        }
        accepted
    });
    let mut agent = agent;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        agent.stop().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        agent = Agent::start(s.clone()).await;
    }
    let accepted = bounded("the sender", sender).await.unwrap();
    eventually("every accepted request delivered", || {
        let unique: std::collections::HashSet<String> = bodies(&app).into_iter().collect();
        unique.len() >= accepted
    })
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for b in bodies(&app) {
        *counts.entry(b).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let lost = (0..TOTAL)
        .filter(|i| !counts.contains_key(&i.to_string()))
        .count();
    println!(
        "fault test: sent {TOTAL}, accepted {accepted}, delivered {}, lost {lost}, duplicates {duplicates}",
        counts.len()
    );
    assert_eq!(accepted, TOTAL, "every request got a 2xx");
    assert_eq!(lost, 0);
    assert_eq!(duplicates, 0);
    agent.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (app, agent, _home) = agent_on(&relay).await;
    let url = format!("{}/slow", agent.public_url);
    let in_flight =
        tokio::spawn(async move { send(&client(), "POST", &url, &[], "draining").await });
    eventually("the slow request reaches the app", || {
        !app.seen().is_empty()
    })
    .await;
    relay.shutdown().await;
    let answer = bounded("the drained answer", in_flight).await.unwrap();
    assert_eq!(
        answer.status, 200,
        "an in-flight request completes during shutdown"
    );
    assert_eq!(&answer.body[..], b"draining");
}

/// A TCP relay-in-the-middle that can go silent without closing anything:
/// what a laptop lid, a NAT dropping state or a SIGSTOPped relay look like.
struct Freezer {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Freezer {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(dr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(uw) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(ur), Box::new(dw)),
                ] {
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // Frozen: hold the bytes, forever as far as this link knows.
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { addr, frozen }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_silent_half_open_link_is_noticed_within_two_pings_and_the_agent_reconnects() {
    use hooktunnel::event::{AgentEvent, ConnectionState};
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let freezer = Freezer::start(relay.addr).await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(
        Some(&format!("http://{}", freezer.addr)),
        &app.port().to_string(),
        home.path(),
    );
    let ping = Duration::from_millis(200);
    s.ping_interval = ping;
    let mut agent = Agent::start(s).await;

    // The link goes silent but stays open: only the watchdog can tell.
    freezer.freeze(true);
    let frozen_at = std::time::Instant::now();
    let reason = loop {
        match bounded("the watchdog", agent.running.events.recv()).await {
            Some(AgentEvent::Connection(ConnectionState::Reconnecting { reason, .. })) => {
                break reason;
            }
            Some(_) => continue,
            None => panic!("agent stopped"),
        }
    };
    let noticed = frozen_at.elapsed();
    assert!(reason.contains("no traffic from the relay"), "{reason}");
    // Two ping intervals of silence, plus scheduling slack on a busy machine.
    assert!(
        noticed < ping * 2 + Duration::from_secs(2),
        "noticed after {noticed:?}"
    );

    // The network comes back: the agent reconnects by itself, same URL.
    freezer.freeze(false);
    loop {
        match bounded("reconnecting", agent.running.events.recv()).await {
            Some(AgentEvent::Connection(ConnectionState::Online)) => break,
            Some(_) => continue,
            None => panic!("agent stopped"),
        }
    }
    let answer = send(
        &client(),
        "POST",
        &format!("{}/after-sleep", agent.public_url),
        &[],
        "awake",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.seen().last().unwrap().path_and_query, "/after-sleep");
    agent.stop().await;
}
