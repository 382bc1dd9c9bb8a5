//! Relay nodes sharing one real `redis-server` (#15): names, leases and the
//! durable queue across nodes, with real agents and a real local app.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use hooktunnel::commands::listen;
use hooktunnel_relay::RelayConfig;
use hooktunnel_relay::cluster::ClusterConfig;
use hooktunnel_relay::config::{InternalTls, TlsFiles};
use tokio_util::sync::CancellationToken;

/// A `redis-server` on a free loopback port with its own directory and the
/// AOF on; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .args([
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                ])
                .args(["--maxmemory-policy", "noeviction"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed (apt-get install redis-server)");
            for _ in 0..200 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node(redis: &RedisServer, id: &str) -> Relay {
    node_with(redis, id, RelayConfig::default()).await
}

/// A node with `config` (its cluster settings filled in).
async fn node_with(redis: &RedisServer, id: &str, config: RelayConfig) -> Relay {
    start_node(redis, id, config, None).await
}

/// A node whose internal listener and peer connections use `tls`
/// (`--internal-tls`) when given.
async fn node_with_tls(redis: &RedisServer, id: &str, tls: Option<InternalTls>) -> Relay {
    start_node(redis, id, RelayConfig::default(), tls).await
}

async fn start_node(
    redis: &RedisServer,
    id: &str,
    config: RelayConfig,
    tls: Option<InternalTls>,
) -> Relay {
    let mut cluster = ClusterConfig::new(
        &format!("redis://127.0.0.1:{}/0", redis.port),
        "a-cluster-secret-for-tests",
    );
    cluster.node_id = id.into();
    cluster.lease_ttl = Duration::from_secs(3);
    cluster.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    cluster.internal_tls = tls;
    Relay::start(RelayConfig {
        cluster: Some(cluster),
        ..config
    })
    .await
}

/// Three nodes on one Redis.
async fn three_nodes(redis: &RedisServer) -> (Relay, Relay, Relay) {
    (
        node(redis, "a").await,
        node(redis, "b").await,
        node(redis, "c").await,
    )
}

/// A local app and an agent for it that knows two relays (`--relay A,B`)
/// and pings every `ping`, with the agent's home.
async fn agent_on_either(
    first: &str,
    second: &str,
    ping: Duration,
) -> (LocalApp, Agent, tempfile::TempDir) {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(
        Some(&format!("{first},{second}")),
        &app.port().to_string(),
        home.path(),
    );
    s.ping_interval = ping;
    let agent = Agent::start(s).await;
    (app, agent, home)
}

/// The tunnel's path part (`/t/<name>`) of a public URL.
fn tunnel_path(url: &str) -> &str {
    &url[url.find("/t/").expect("a path URL")..]
}

/// An agent that went away on node A; requests sent to nodes B and C are
/// queued in Redis; the agent comes back on node C and gets them all, in
/// order, byte-exact, exactly once; the queue is empty after the acks.
#[tokio::test]
async fn requests_queued_on_any_node_reach_the_agent_on_another() {
    let redis = RedisServer::start();
    let (a, b, c) = three_nodes(&redis).await;
    let (app, agent, home) = agent_on(&a).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    agent.stop().await;

    let http = client();
    let mut sent = Vec::new();
    for i in 0..6u8 {
        let via = if i % 2 == 0 { &b } else { &c };
        let body = format!("n={i} \u{00e9}\r\n{}", "x".repeat(i as usize * 1000));
        let answer = send(
            &http,
            "POST",
            &format!("{}{path}/hook", via.url),
            &[],
            body.clone(),
        )
        .await;
        assert_eq!(answer.status, 202, "queued through node {}", via.url);
        sent.push(body);
    }
    let mut settings = settings(Some(&c.url), &app.port().to_string(), home.path());
    settings.name = Some(path.trim_start_matches("/t/").to_owned());
    let _agent = Agent::start(settings).await;
    bounded("queued requests delivered", async {
        while app.seen().len() < sent.len() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let got: Vec<String> = app
        .seen()
        .into_iter()
        .map(|s| String::from_utf8(s.body).unwrap())
        .collect();
    assert_eq!(got, sent);
    // Acked and deleted: nothing comes again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.seen().len(), sent.len());
    // Each node reports its view of Redis.
    let health: serde_json::Value = serde_json::from_slice(&a.health().await.body).unwrap();
    assert_eq!(health["cluster"]["node"], "a");
    assert_eq!(health["cluster"]["redis"]["ok"], true, "{health}");
}

/// Two agents with different keys ask for one name on two nodes at once:
/// exactly one gets it. The same key from another run through another node
/// is refused while the first run's lease is live, and admitted with --takeover.
#[tokio::test]
async fn one_name_on_two_nodes_exactly_one_agent_wins() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let app = LocalApp::start().await;
    let (home1, home2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let named = |relay: &Relay, home: &std::path::Path| {
        let mut s = settings(Some(&relay.url), &app.port().to_string(), home);
        s.name = Some("contested".into());
        s
    };
    let (c1, c2) = (CancellationToken::new(), CancellationToken::new());
    let (x, y) = tokio::join!(
        bounded(
            "claim via a",
            listen::start(named(&a, home1.path()), c1.clone())
        ),
        bounded(
            "claim via b",
            listen::start(named(&b, home2.path()), c2.clone())
        )
    );
    assert_eq!(
        usize::from(x.is_ok()) + usize::from(y.is_ok()),
        1,
        "exactly one wins: {:?} / {:?}",
        x.as_ref().err(),
        y.as_ref().err()
    );
    let (winner_home, loser_relay) = if x.is_ok() {
        (home1.path(), &b)
    } else {
        (home2.path(), &a)
    };
    // Same key, another run, through the other node: the lease holds…
    let again = bounded(
        "second run",
        listen::start(named(loser_relay, winner_home), CancellationToken::new()),
    )
    .await;
    let refused = again
        .err()
        .expect("the live run keeps its tunnel")
        .to_string();
    assert!(refused.contains("already online"), "{refused}");
    // …unless it takes over.
    let mut takeover = named(loser_relay, winner_home);
    takeover.takeover = true;
    let moved = Agent::start(takeover).await;
    let answer = send(
        &client(),
        "POST",
        &format!("{}/t/contested/x", loser_relay.url),
        &[],
        "moved",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.seen().last().unwrap().body, b"moved");
    moved.stop().await;
    c1.cancel();
    c2.cancel();
}

/// An agent on node A answers requests sent to nodes B and C: each is
/// streamed B → A → agent over the nodes' internal HTTP/2 connection, and the
/// sender gets the app's own answer, bodies byte-exact both ways (a 3 MiB
/// one included).
#[tokio::test]
async fn an_agent_on_one_node_answers_through_every_node() {
    let redis = RedisServer::start();
    let (a, b, c) = three_nodes(&redis).await;
    let (app, agent, _home) = agent_on(&a).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    let http = client();
    let mut sent = Vec::new();
    for (i, via) in [&a, &b, &c, &b, &c].into_iter().enumerate() {
        let body: Vec<u8> = (0..=255u8).chain([i as u8, 0, b'\r', b'\n']).collect();
        let answer = put_echoed(&http, &format!("{}{path}/x?i={i}", via.url), &body).await;
        assert_eq!(
            answer.header("x-seen-path"),
            [format!("/x?i={i}").into_bytes()]
        );
        assert_eq!(answer.header("set-cookie").len(), 2);
        sent.push(body);
    }
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let answer = send(
        &http,
        "POST",
        &format!("{}{path}/big", c.url),
        &[],
        big.clone(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(answer.body == big, "3 MiB back byte-exact");
    sent.push(big);
    let seen: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(seen, sent, "each request reached the app once, byte-exact");
    assert_eq!(app.seen()[1].header("x-n"), [b"\xff".to_vec()]);
    // Per-node counters.
    let metric =
        |name: &str, node: &str| format!("hooktunnel_cluster_{name}_total{{node=\"{node}\"}}");
    assert_eq!(b.metric(&metric("routed_to_peers", "b")).await, 2);
    assert_eq!(c.metric(&metric("routed_to_peers", "c")).await, 3);
    assert_eq!(a.metric(&metric("served_for_peers", "a")).await, 5);
    // The agent leaves: the other nodes queue again instead of streaming.
    agent.stop().await;
    tokio::time::sleep(routing_cache()).await;
    let answer = send(
        &http,
        "POST",
        &format!("{}{path}/later", b.url),
        &[],
        "later",
    )
    .await;
    assert_eq!(answer.status, 202);
}

/// One self-signed certificate for 127.0.0.1 (not a CA), in `dir`, as every
/// node's `--tls-cert`/`--tls-key` for `--internal-tls`.
fn shared_node_cert(dir: &std::path::Path) -> InternalTls {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("node.pem"), dir.join("node.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    InternalTls {
        files: TlsFiles {
            cert: cert_path,
            key: key_path,
        },
        ca: None,
    }
}

/// `--internal-tls`: nodes A and B share one self-signed certificate for
/// 127.0.0.1 and stream to each other over mutual TLS; node C runs in clear
/// text. An agent on A answers through B, bodies byte-exact both ways (1 MiB
/// included). C cannot reach A (clear text against TLS) nor A reach C (TLS
/// against clear text): the request is queued at once (202, no hang, no
/// 502) and the owner delivers it to its agent.
#[tokio::test]
async fn nodes_stream_over_tls_and_a_mixed_cluster_queues() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let tls = shared_node_cert(dir.path());
    let a = node_with_tls(&redis, "a", Some(tls.clone())).await;
    let b = node_with_tls(&redis, "b", Some(tls)).await;
    let c = node(&redis, "c").await;
    let (app, agent, _home) = agent_on(&a).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    let http = client();
    let mut sent = Vec::new();
    for (i, size) in [0usize, 300, 1 << 20].into_iter().enumerate() {
        let body: Vec<u8> = (0..size)
            .map(|n| (n as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
            .chain([0, b'\r', b'\n', 255])
            .collect();
        put_echoed(&http, &format!("{}{path}/tls?i={i}", b.url), &body).await;
        sent.push(body);
    }
    let seen: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(seen, sent, "each request reached the app once, byte-exact");
    assert_eq!(app.seen()[0].header("x-n"), [b"\xff".to_vec()]);
    let metric =
        |name: &str, node: &str| format!("hooktunnel_cluster_{name}_total{{node=\"{node}\"}}");
    assert_eq!(b.metric(&metric("routed_to_peers", "b")).await, 3);
    assert_eq!(a.metric(&metric("served_for_peers", "a")).await, 3);

    // Mixed: a clear-text node dialling a TLS node, then the other way.
    let (app_c, agent_c, _home_c) = agent_on(&c).await;
    let path_c = tunnel_path(&agent_c.public_url).to_owned();
    for (via, path, app, what) in [
        (&c, &path, &app, "clear text to TLS"),
        (&a, &path_c, &app_c, "TLS to clear text"),
    ] {
        let started = std::time::Instant::now();
        let answer = send(
            &http,
            "POST",
            &format!("{}{path}/mixed", via.url),
            &[],
            what,
        )
        .await;
        assert_eq!(answer.status, 202, "{what}: queued");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: {:?}",
            started.elapsed()
        );
        bounded("the queued request reaches the agent", async {
            while !app.seen().iter().any(|s| s.body == what.as_bytes()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    assert_eq!(a.metric(&metric("served_for_peers", "a")).await, 3);
    assert_eq!(c.metric(&metric("served_for_peers", "c")).await, 0);
}

fn routing_cache() -> Duration {
    hooktunnel_relay::cluster::routing::OWNER_CACHE + Duration::from_millis(100)
}

/// `--relay A,B`: when node A goes away (a drained node: SIGTERM) the agent
/// moves to B with the usual backoff, keeps its URL, and node C streams to
/// it on B.
#[tokio::test]
async fn an_agent_moves_to_the_next_relay_when_its_node_goes() {
    let redis = RedisServer::start();
    let (a, b, c) = three_nodes(&redis).await;
    let (app, agent, _home) = agent_on_either(&a.url, &b.url, Duration::from_millis(500)).await;
    assert!(agent.public_url.starts_with(&a.url), "{}", agent.public_url);
    let path = tunnel_path(&agent.public_url).to_owned();
    let http = client();
    let before = send(
        &http,
        "POST",
        &format!("{}{path}/before", c.url),
        &[],
        "before",
    )
    .await;
    assert_eq!(before.status, 200);

    let gone = std::time::Instant::now();
    a.shutdown().await;
    let mut accepted = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    let back = bounded("the agent is back through node B", async {
        for n in 0.. {
            let body = format!("after-{n}");
            let answer = send(
                &http,
                "POST",
                &format!("{}{path}/after", c.url),
                &[],
                body.clone(),
            )
            .await;
            *statuses.entry(answer.status).or_insert(0u32) += 1;
            // Queued meanwhile (202) counts too: delivered once the agent is back.
            if (200..300).contains(&answer.status) {
                accepted.push((body, answer.status));
            }
            if answer.status == 200 {
                return gone.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!()
    })
    .await;
    eprintln!("agent back through another node after {back:?}; answers meanwhile: {statuses:?}");
    assert!(back < Duration::from_secs(5), "{back:?}");
    let health: serde_json::Value = serde_json::from_slice(&b.health().await.body).unwrap();
    assert_eq!(health["tunnels"], 1, "the agent is on B now: {health}");
    // Every request answered 2xx reaches the app exactly once, in order.
    let after = || -> Vec<String> {
        app.seen()
            .into_iter()
            .filter(|s| s.path_and_query == "/after")
            .map(|s| String::from_utf8(s.body).unwrap())
            .collect()
    };
    bounded("accepted requests delivered", async {
        while after().len() < accepted.len() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Exactly once each; the queued ones in order (a live request may pass
    // the queue's last entries, as on one node).
    let got = after();
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_accepted: Vec<String> = accepted.iter().map(|(b, _)| b.clone()).collect();
    sorted_accepted.sort();
    assert_eq!(sorted_got, sorted_accepted);
    let queued: Vec<&String> = accepted
        .iter()
        .filter(|(_, s)| *s == 202)
        .map(|(b, _)| b)
        .collect();
    let queued_got: Vec<&String> = got.iter().filter(|b| queued.contains(b)).collect();
    assert_eq!(queued_got, queued);
    drop(agent);
}

/// The raw answer of one inline command (`HGETALL key`, `INFO …`),
/// read until Redis has been quiet for a moment.
fn redis_raw(redis: &RedisServer, command: &str) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    text
}

/// Redis `INFO commandstats` calls so far (all commands).
fn redis_calls(redis: &RedisServer) -> u64 {
    String::from_utf8_lossy(&redis_raw(redis, "INFO commandstats"))
        .lines()
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Measurements for the issue (run by hand: `cargo test --test it
/// cluster::numbers -- --ignored --nocapture`): latency through the owner
/// node vs another node, and Redis commands per request.
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn numbers() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let (app, agent, _home) = agent_on(&a).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    // The single-node SQLite relay, for comparison.
    let single = Relay::start(RelayConfig::default()).await;
    let home1 = tempfile::tempdir().unwrap();
    let agent1 = Agent::start(settings(
        Some(&single.url),
        &app.port().to_string(),
        home1.path(),
    ))
    .await;
    let path1 = tunnel_path(&agent1.public_url).to_owned();
    let http = client();
    for (label, body) in [("small", vec![b'x'; 200]), ("1 MiB", vec![b'y'; 1 << 20])] {
        for via in [&single, &a, &b] {
            let path = if std::ptr::eq(via, &single) {
                &path1
            } else {
                &path
            };
            let n = if body.len() > 1000 { 30 } else { 300 };
            let calls = redis_calls(&redis);
            let mut took = Vec::new();
            for _ in 0..n {
                let started = std::time::Instant::now();
                let answer = send(
                    &http,
                    "POST",
                    &format!("{}{path}/n", via.url),
                    &[],
                    body.clone(),
                )
                .await;
                assert_eq!(answer.status, 200);
                took.push(started.elapsed());
            }
            // INFO itself counts once.
            let per = (redis_calls(&redis) - calls - 1) as f64 / n as f64;
            took.sort();
            eprintln!(
                "{label} via {}: p50 {:?} p99 {:?}; Redis commands per request {per:.2}",
                if std::ptr::eq(via, &a) {
                    "owner"
                } else if std::ptr::eq(via, &b) {
                    "other node"
                } else {
                    "single-node SQLite relay"
                },
                took[n / 2],
                took[n * 99 / 100],
            );
        }
    }
}

/// Node A as its own `hooktunnel-relay` process (so it can be killed or
/// paused for real); `None` when the binary was not built alongside (`cargo
/// test --workspace` builds it).
struct NodeProcess {
    child: std::process::Child,
    url: String,
}

impl NodeProcess {
    fn start(redis: &RedisServer, id: &str) -> Option<Self> {
        use std::io::BufRead as _;
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_hooktunnel"))
            .with_file_name("hooktunnel-relay");
        if !bin.exists() {
            eprintln!(
                "notice: {} not built; process-level cluster test skipped",
                bin.display()
            );
            return None;
        }
        let mut child = Command::new(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--internal-listen",
                "127.0.0.1:0",
            ])
            .args(["--cluster", &format!("redis://127.0.0.1:{}/0", redis.port)])
            .args(["--node-id", id, "--lease-ttl", "3", "--log-format", "json"])
            .env(
                "HOOKTUNNEL_RELAY_CLUSTER_SECRET",
                "a-cluster-secret-for-tests",
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for out in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("hooktunnel relay listening") {
                        let _ = tx.send(line);
                    }
                }
            });
        }
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the relay process says where it listens");
        let addr = line
            .split("\"addr\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("an addr field")
            .to_owned();
        Some(Self {
            child,
            url: format!("http://{addr}"),
        })
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Numbered requests every 10 ms, alternating between two nodes, until
/// `stop`; returns the accepted ones (body, status) in the order sent and
/// the time of the first 200 after `since` fires.
async fn steady_load(
    urls: [String; 2],
    stop: CancellationToken,
    since: Arc<tokio::sync::Notify>,
) -> (Vec<(String, u16)>, Option<Duration>) {
    let http = client();
    let mut accepted = Vec::new();
    let mut fault: Option<std::time::Instant> = None;
    let mut back = None;
    let mut armed = std::pin::pin!(since.notified());
    for n in 0.. {
        if stop.is_cancelled() {
            break;
        }
        if fault.is_none() && futures_util::poll!(armed.as_mut()).is_ready() {
            fault = Some(std::time::Instant::now());
        }
        let body = format!("req-{n}");
        let url = &urls[n % 2];
        let answer = send(&http, "POST", url, &[], body.clone()).await;
        if (200..300).contains(&answer.status) {
            accepted.push((body, answer.status));
        }
        if answer.status == 200
            && back.is_none()
            && let Some(at) = fault
        {
            back = Some(at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (accepted, back)
}

/// Every accepted request reached the app exactly once; the queued ones in order.
async fn assert_delivered_once(app: &LocalApp, accepted: &[(String, u16)]) {
    let got = || -> Vec<String> {
        app.seen()
            .into_iter()
            .map(|s| String::from_utf8(s.body).unwrap())
            .filter(|b| b.starts_with("req-"))
            .collect()
    };
    bounded("every accepted request delivered", async {
        loop {
            let got = got();
            if accepted.iter().all(|(b, _)| got.contains(b)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got();
    for (body, _) in accepted {
        let times = got.iter().filter(|b| *b == body).count();
        assert_eq!(times, 1, "{body} delivered {times} times");
    }
    let queued: Vec<&String> = accepted
        .iter()
        .filter(|(_, s)| *s == 202)
        .map(|(b, _)| b)
        .collect();
    let queued_got: Vec<&String> = got.iter().filter(|b| queued.contains(b)).collect();
    assert_eq!(queued_got, queued, "queued requests in order");
}

/// kill -9 the node holding the agent, under load spread over B and C: the
/// agent is back through B within 2 s, and every request that got a 2xx is
/// delivered exactly once (queued ones in order).
#[tokio::test]
async fn a_killed_node_loses_nothing() {
    fault_under_load("-KILL").await;
}

/// SIGSTOP the node holding the agent past its lease, then SIGCONT: the
/// agent moved on; the paused node's late acks and deliveries are fenced
/// (no duplicate, no loss).
#[tokio::test]
async fn a_paused_node_is_fenced_when_it_wakes() {
    fault_under_load("-STOP").await;
}

async fn fault_under_load(signal: &str) {
    let redis = RedisServer::start();
    let Some(a) = NodeProcess::start(&redis, "a") else {
        return;
    };
    let (b, c) = (node(&redis, "b").await, node(&redis, "c").await);
    let (app, agent, _home) = agent_on_either(&a.url, &b.url, Duration::from_millis(300)).await;
    assert!(agent.public_url.starts_with(&a.url), "{}", agent.public_url);
    let path = tunnel_path(&agent.public_url).to_owned();
    let stop = CancellationToken::new();
    let fault = Arc::new(tokio::sync::Notify::new());
    let load = tokio::spawn(steady_load(
        [format!("{}{path}/n", b.url), format!("{}{path}/n", c.url)],
        stop.clone(),
        fault.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.signal(signal);
    fault.notify_one();
    if signal == "-STOP" {
        // Past the 3 s lease, then wake it up.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        a.signal("-CONT");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    } else {
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    stop.cancel();
    let (accepted, back) = bounded("the load ends", load).await.unwrap();
    let back = back.expect("answers came back");
    eprintln!(
        "{signal}: agent answering again after {back:?}; {} requests accepted ({} queued)",
        accepted.len(),
        accepted.iter().filter(|(_, s)| *s == 202).count()
    );
    if signal == "-KILL" {
        assert!(back < Duration::from_secs(2), "{back:?}");
    } else {
        // Streams held by the paused node fail on its missed HTTP/2 pings.
        assert!(back < Duration::from_secs(3), "{back:?}");
    }
    assert_delivered_once(&app, &accepted).await;
    if signal == "-STOP" {
        // The woken node found its lease taken and let the tunnel go.
        let health: serde_json::Value = serde_json::from_slice(
            &send(
                &client(),
                "GET",
                &format!("{}/_hooktunnel/health", a.url),
                &[],
                "",
            )
            .await
            .body,
        )
        .unwrap();
        assert_eq!(health["tunnels"], 0, "{health}");
    }
    drop(agent);
}

/// Rolling restart: each of the three nodes is drained (SIGTERM) and started
/// again on its address, one after the other, under load sent to all
/// three; the agent (`--relay A,B,C`) follows. Nothing answered 2xx is
/// lost or duplicated.
#[tokio::test]
async fn a_rolling_restart_loses_nothing() {
    let redis = RedisServer::start();
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        nodes.push(Some(node(&redis, id).await));
    }
    let addrs: Vec<std::net::SocketAddr> = nodes.iter().flatten().map(|n| n.addr).collect();
    let urls: Vec<String> = nodes.iter().flatten().map(|n| n.url.clone()).collect();
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&urls.join(",")), &app.port().to_string(), home.path());
    s.ping_interval = Duration::from_millis(300);
    let agent = Agent::start(s).await;
    let path = tunnel_path(&agent.public_url).to_owned();

    let stop = CancellationToken::new();
    let load = tokio::spawn({
        let (stop, urls, path) = (stop.clone(), urls.clone(), path.clone());
        async move {
            let http = client();
            let mut accepted = Vec::new();
            let mut failed = 0u32;
            for n in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                let body = format!("req-{n}");
                let request = http::Request::post(format!("{}{path}/n", urls[n % 3]))
                    .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                    .unwrap();
                // A node being restarted refuses connections: not accepted.
                match tokio::time::timeout(Duration::from_secs(5), http.request(request)).await {
                    Ok(Ok(answer)) if answer.status().is_success() => {
                        accepted.push((body, answer.status().as_u16()));
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (accepted, failed)
        }
    });
    for (i, addr) in addrs.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(node) = nodes[i].take() {
            node.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut cluster = ClusterConfig::new(
            &format!("redis://127.0.0.1:{}/0", redis.port),
            "a-cluster-secret-for-tests",
        );
        cluster.node_id = ["a", "b", "c"][i].into();
        cluster.lease_ttl = Duration::from_secs(3);
        cluster.internal_listen = Some("127.0.0.1:0".parse().unwrap());
        nodes[i] = Some(
            Relay::start_at(
                *addr,
                RelayConfig {
                    cluster: Some(cluster),
                    ..RelayConfig::default()
                },
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.cancel();
    let (accepted, failed) = bounded("the load ends", load).await.unwrap();
    eprintln!(
        "rolling restart: {} accepted ({} queued), {failed} refused while a node was down",
        accepted.len(),
        accepted.iter().filter(|(_, s)| *s == 202).count()
    );
    assert!(accepted.len() > 50);
    assert_delivered_once(&app, &accepted).await;
    drop(agent);
}

/// Ack mode: every request is queued, whichever node takes it; the owner is
/// woken by the announcement (not its slow poll) and delivers at once.
#[tokio::test]
async fn ack_mode_requests_queued_on_another_node_are_delivered_at_once() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&a.url), &app.port().to_string(), home.path());
    s.mode = hooktunnel_protocol::Mode::Ack;
    let agent = Agent::start(s).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    let http = client();
    for i in 0..5 {
        let started = std::time::Instant::now();
        let body = format!("ack-{i}");
        let answer = send(
            &http,
            "POST",
            &format!("{}{path}/n", b.url),
            &[],
            body.clone(),
        )
        .await;
        assert!((200..300).contains(&answer.status), "{}", answer.status);
        bounded("delivered", async {
            while !app.seen().iter().any(|s| s.body == body.as_bytes()) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "request {i} took {took:?}");
    }
    assert_eq!(app.seen().len(), 5);
    drop(agent);
}

/// A tunnel that verifies Stripe signatures at the edge, its agent on node
/// A: a signed event sent through node B is verified on A (which holds the
/// signing secret) and reaches the app; a forged one is refused with 401
/// and never does.
#[tokio::test]
async fn signatures_are_verified_on_the_owner_for_requests_through_another_node() {
    use hooktunnel::verify::{self, Provider, SecretSpec};
    const SECRET: &str = "whsec_cluster_edge";
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&a.url), &app.port().to_string(), home.path());
    s.verify = vec![SecretSpec::new(Provider::Stripe, SECRET)];
    s.rules.verify_at_edge = Some("stripe".into());
    let agent = Agent::start(s).await;
    let url = format!("{}{}/stripe", b.url, tunnel_path(&agent.public_url));
    let body: &'static [u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let now = hooktunnel::clock::now_ms() / 1000;
    let signed = verify::sign(Provider::Stripe, SECRET, body, now, None, None).unwrap();
    let headers: Vec<(&str, &[u8])> = signed
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    let http = client();
    forged_is_refused(&http, &url, &headers, br#"{"id":"evt_1","type":"x"}"#).await;
    assert!(app.seen().is_empty(), "a forged event reached the app");
    let good = send(&http, "POST", &url, &headers, body).await;
    assert_eq!(
        good.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&good.body)
    );
    assert_eq!(app.seen().len(), 1);
    assert_eq!(app.seen()[0].body, body);
    agent.stop().await;
}

/// A Stripe-verified tunnel whose agent is away: a node other than the
/// agent's last one opens the signing secret sealed in Redis and verifies
/// what it queues. A good event is queued (202) and reaches the app when the
/// agent is back; a forged one is 401 with the reason and never stored; the
/// name's hash in Redis holds no clear-text secret.
#[tokio::test]
async fn signed_requests_queued_on_another_node_are_verified_there() {
    use hooktunnel::verify::{self, Provider, SecretSpec};
    const SECRET: &str = "whsec_sealed_in_redis";
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let agent_settings = |name: Option<String>| {
        let mut s = settings(Some(&a.url), &app.port().to_string(), home.path());
        s.verify = vec![SecretSpec::new(Provider::Stripe, SECRET)];
        s.rules.verify_at_edge = Some("stripe".into());
        // Observable on B: its copy of the rules is there once this is refused.
        s.rules.require_header = vec!["x-probe".into()];
        s.name = name;
        s
    };
    let agent = Agent::start(agent_settings(None)).await;
    let path = tunnel_path(&agent.public_url).to_owned();
    let name = path.trim_start_matches("/t/").to_owned();
    agent.stop().await;
    // B must not still route to A from its owner cache: this is about B queueing.
    tokio::time::sleep(routing_cache()).await;

    let http = client();
    let url = format!("{}{path}/stripe", b.url);
    // B reloads the rules when the lease changes hands (announced on
    // `ht:owners`); until then a probe without the header would be queued.
    bounded("B holds the tunnel's rules", async {
        loop {
            let probe = send(&http, "POST", &url, &[], &b"probe"[..]).await;
            if probe.status == 403 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let body: &'static [u8] = br#"{"id":"evt_q","type":"charge.succeeded"}"#;
    let now = hooktunnel::clock::now_ms() / 1000;
    let signed = verify::sign(Provider::Stripe, SECRET, body, now, None, None).unwrap();
    let mut headers: Vec<(&str, &[u8])> = signed
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    headers.push(("x-probe", b"1"));
    forged_is_refused(&http, &url, &headers, br#"{"id":"evt_q","type":"x"}"#).await;
    let good = send(&http, "POST", &url, &headers, body).await;
    assert_eq!(
        good.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&good.body)
    );

    // At rest: rules without the secret, the secret sealed.
    let raw = redis_raw(&redis, &format!("HGETALL ht:{{{name}}}:name"));
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("sealed"), "{raw}");
    assert!(raw.contains("v1:"), "{raw}");
    assert!(
        !raw.contains(SECRET),
        "the signing secret is in Redis in clear: {raw}"
    );

    // The agent comes back: only the good event reaches the app.
    let agent = Agent::start(agent_settings(Some(name))).await;
    bounded("the queued event delivered", async {
        while app.seen().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = app.seen();
    assert_eq!(seen.len(), 1, "only the good event");
    assert_eq!(seen[0].body, body);
    agent.stop().await;
}

/// A request refused on node B (413: over B's body limit) for a tunnel whose
/// agent is on node A counts in the agent's `relay refused` notes and
/// stats, like a refusal on A.
#[tokio::test]
async fn refusals_on_another_node_reach_the_agents_notes() {
    let redis = RedisServer::start();
    let a = node(&redis, "a").await;
    let b = node_with(
        &redis,
        "b",
        RelayConfig {
            max_body_bytes: 1024,
            ..RelayConfig::default()
        },
    )
    .await;
    let (app, agent, home) = agent_on(&a).await;
    let url = format!("{}{}/big", b.url, tunnel_path(&agent.public_url));
    let http = client();
    for _ in 0..2 {
        let answer = send(&http, "POST", &url, &[], vec![b'x'; 4096]).await;
        assert_eq!(answer.status, 413);
    }
    assert!(app.seen().is_empty());
    bounded("B's refusals in the agent's stats", async {
        loop {
            let run = hooktunnel_run(home.path(), &["stats", "--json", "--since", "10m"]).await;
            assert!(run.ok, "{run:?}");
            let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            if report["total"]["errors"]["relay_refused"] == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    agent.stop().await;
}

/// Several tunnels over one socket (issue 17) in a cluster: each tunnel has
/// its own lease, is routed from another node, queues there while the agent
/// is away and is acked into its own queue when the agent is back elsewhere.
#[tokio::test]
async fn two_tunnels_over_one_socket_are_served_and_queued_through_another_node() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let (first_app, second_app) = (LocalApp::start().await, LocalApp::start().await);
    let home = tempfile::tempdir().unwrap();
    let both = |relay: &str| {
        let mut s = settings(Some(relay), &first_app.port().to_string(), home.path());
        s.name = Some("first".into());
        s.also = vec![hooktunnel::agent::tunnel::AlsoTunnel {
            name: "second".into(),
            target: hooktunnel::forward::Target::parse(&second_app.port().to_string()).unwrap(),
        }];
        s
    };
    let agent = Agent::start(both(&a.url)).await;
    let http = client();
    let live = send(&http, "POST", &format!("{}/t/second/x", b.url), &[], "two").await;
    assert_eq!((live.status, &live.body[..]), (200, &b"two"[..]));
    assert!(first_app.seen().is_empty());
    agent.stop().await;
    tokio::time::sleep(routing_cache()).await;
    let queued = send(
        &http,
        "POST",
        &format!("{}/t/second/later", b.url),
        &[],
        "q",
    )
    .await;
    assert_eq!(queued.status, 202);
    let agent = Agent::start(both(&b.url)).await;
    bounded("the queued request delivered and acked", async {
        while b.metric("hooktunnel_acked_total").await != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let bodies: Vec<Vec<u8>> = second_app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, [b"two".to_vec(), b"q".to_vec()]);
    assert!(first_app.seen().is_empty());
    agent.stop().await;
}

/// Sends `forged`, a body the signature in `headers` does not cover, and
/// checks the relay refused it as a forgery.
async fn forged_is_refused(
    http: &Http,
    url: &str,
    headers: &[(&str, &[u8])],
    forged: &'static [u8],
) {
    let answer = send(http, "POST", url, headers, forged).await;
    assert_eq!(
        answer.status,
        401,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("x-hooktunnel-error"),
        [b"signature_refused".to_vec()]
    );
}

/// PUTs `body` (with an `x-n: \xff` header) to `url` and checks the app's
/// echo came back whole: 200 and the same bytes.
async fn put_echoed(http: &Http, url: &str, body: &[u8]) -> Answer {
    let answer = send(http, "PUT", url, &[("x-n", b"\xff")], body.to_vec()).await;
    assert_eq!(
        answer.status,
        200,
        "through {url}: {:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.body == body, "the app's answer, byte-exact");
    answer
}
