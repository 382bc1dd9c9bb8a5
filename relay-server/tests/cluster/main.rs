//! The cluster backend against a real `redis-server` (started here on a free
//! loopback port with a temporary directory and the AOF on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use hooktunnel_relay::cluster::{Cluster, Fenced, LeaseClaim};
use hooktunnel_relay::durable::{Claim, Enqueue, EnqueueError, QueueLimits, Release};
use hooktunnel_relay::protocol::Mode;
use hooktunnel_relay::protocol::rules::EdgeRules;

mod redis;
mod tls;
use redis::*;

/// Claims `name` for `run` on `node`, which must be granted.
async fn granted(
    node: &hooktunnel_relay::cluster::Cluster,
    name: &str,
    run: &str,
) -> hooktunnel_relay::cluster::Lease {
    match node
        .leases
        .claim(name, run, false, Mode::Proxy)
        .await
        .unwrap()
    {
        LeaseClaim::Granted(lease) => lease,
        other => panic!("{name} for {run} was not granted: {other:?}"),
    }
}

#[tokio::test]
async fn names_and_the_queue_live_in_redis() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let s = &a.store;
    assert!(!s.is_known("demo").await.unwrap());
    assert_eq!(
        s.claim_within("demo", "k1", 2).await.unwrap(),
        Claim::Granted
    );
    assert_eq!(
        s.claim_within("demo", "k1", 2).await.unwrap(),
        Claim::Granted
    );
    assert_eq!(s.claim_within("demo", "k2", 2).await.unwrap(), Claim::Taken);
    assert_eq!(s.claim_within("b", "k1", 2).await.unwrap(), Claim::Granted);
    assert_eq!(
        s.claim_within("c", "k1", 2).await.unwrap(),
        Claim::TooMany { held: 2 }
    );
    // A custom answer only sticks to a claimed name.
    let answer = hooktunnel_relay::durable::QueuedAnswer {
        status: 200,
        body: Some("ok {id}".into()),
    };
    s.set_queued_answer("demo", Some(&answer)).await.unwrap();
    s.set_queued_answer("nobody", Some(&answer)).await.unwrap();
    assert_eq!(s.queued_answer("demo").await.unwrap(), Some(answer));
    assert!(!s.is_known("nobody").await.unwrap());

    // Binary frames, in commit order, acked one by one.
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![0, 255, i, b'\r', b'\n']).collect();
    let entries: Vec<Enqueue> = frames.iter().map(|f| entry("demo", f)).collect();
    for e in &entries {
        s.enqueue(e).await.unwrap();
    }
    assert_eq!(s.depth("demo").await.unwrap(), 5);
    let Fenced::Done(first) = s.pending_fenced("demo", None, 3, None).await.unwrap() else {
        panic!("no fence asked for")
    };
    assert_eq!(first.len(), 3);
    let Fenced::Done(rest) = s
        .pending_fenced("demo", Some(first[2].seq), 10, None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let got: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|p| (p.id, p.frame.to_vec()))
        .collect();
    let want: Vec<_> = entries.iter().map(|e| (e.id, e.frame.to_vec())).collect();
    assert_eq!(got, want);
    assert_eq!(
        s.ack_fenced("b", entries[0].id, None).await.unwrap(),
        Fenced::Done(false),
        "another tunnel cannot ack"
    );
    assert_eq!(
        s.ack_fenced("demo", entries[0].id, None).await.unwrap(),
        Fenced::Done(true)
    );
    assert_eq!(
        s.ack_fenced("demo", entries[0].id, None).await.unwrap(),
        Fenced::Done(false)
    );
    assert_eq!(s.depth("demo").await.unwrap(), 4);

    // Quotas: a full queue refuses, the per-client share holds.
    let tight = QueueLimits {
        max_count: 4,
        ..LIMITS
    };
    let refused = s
        .enqueue(&Enqueue {
            limits: tight,
            ..entry("demo", b"x")
        })
        .await;
    assert!(matches!(refused, Err(EnqueueError::Full(_))), "{refused:?}");

    // Release needs the owner's key and takes the queue with it.
    assert_eq!(
        s.release("demo", "k2", false).await.unwrap(),
        Release::NotOwner
    );
    assert_eq!(
        s.release("demo", "k1", true).await.unwrap(),
        Release::Released { queued: 4 }
    );
    assert_eq!(
        s.release("demo", "k1", false).await.unwrap(),
        Release::Released { queued: 4 }
    );
    assert_eq!(s.depth("demo").await.unwrap(), 0);
    assert!(!s.is_known("demo").await.unwrap());
    assert_eq!(s.claim_within("c", "k1", 2).await.unwrap(), Claim::Granted);
}

#[tokio::test]
async fn old_entries_expire_on_the_next_enqueue() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let old = Enqueue {
        now_ms: 1_000,
        ..entry("demo", b"old")
    };
    a.store.enqueue(&old).await.unwrap();
    a.store.enqueue(&entry("demo", b"new")).await.unwrap();
    assert_eq!(a.store.depth("demo").await.unwrap(), 1);
}

#[tokio::test]
async fn an_evicting_redis_is_refused_with_the_fix() {
    let redis = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let refused = Cluster::connect(settings(&redis, "a", Duration::from_secs(10)), "").await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("allkeys-lru"), "{message}");
    assert!(message.contains("maxmemory-policy noeviction"), "{message}");
}

#[tokio::test]
async fn two_nodes_claiming_one_name_exactly_one_wins() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let b = node(&redis, "b", Duration::from_secs(10)).await;
    for round in 0..50 {
        let name = format!("race{round}");
        let (x, y) = tokio::join!(
            a.leases.claim(&name, "run-a", false, Mode::Proxy),
            b.leases.claim(&name, "run-b", false, Mode::Proxy)
        );
        let won = [x.unwrap(), y.unwrap()]
            .into_iter()
            .filter(|c| matches!(c, LeaseClaim::Granted(_)))
            .count();
        assert_eq!(won, 1, "round {round}");
    }
    // The same run reconnecting through another node gets it, with a new epoch.
    let first = granted(&a, "mine", "run-1").await;
    let second = granted(&b, "mine", "run-1").await;
    assert!(second.epoch > first.epoch);
    assert_eq!(second.previous_node.as_deref(), Some("a"));
    assert!(
        !a.leases.renew(&first).await.unwrap(),
        "the old claim is over"
    );
    assert!(
        !a.leases.release(&first).await.unwrap(),
        "and cannot free the new one"
    );
    assert_eq!(b.leases.owner("mine").await.unwrap().unwrap().node, "b");
    assert!(b.leases.release(&second).await.unwrap());
    assert_eq!(b.leases.owner("mine").await.unwrap(), None);
}

/// A node paused past its lease (SIGSTOP, GC) wakes up to find another node
/// holding the tunnel: its deliveries and acks are refused by the epoch
/// fence; the new owner gets what the old one had in flight.
#[tokio::test]
async fn a_stale_owner_is_fenced_out() {
    let redis = RedisServer::start(&[]);
    let ttl = Duration::from_millis(300);
    let a = node(&redis, "a", ttl).await;
    let b = node(&redis, "b", ttl).await;
    let old = granted(&a, "demo", "run-1").await;
    let entries: Vec<Enqueue> = (0..3u8).map(|i| entry("demo", &[i])).collect();
    for e in &entries {
        a.store.enqueue(e).await.unwrap();
    }
    let Fenced::Done(in_flight) = a
        .store
        .pending_fenced("demo", None, 10, Some(old.epoch))
        .await
        .unwrap()
    else {
        panic!("the owner reads its queue")
    };
    assert_eq!(in_flight.len(), 3);
    assert_eq!(
        a.store
            .ack_fenced("demo", entries[0].id, Some(old.epoch))
            .await
            .unwrap(),
        Fenced::Done(true)
    );
    // A stops renewing (paused); the lease expires and the agent's next run
    // claims the tunnel through B.
    tokio::time::sleep(ttl * 2).await;
    let new = granted(&b, "demo", "run-2").await;
    // A wakes up: everything it tries for the tunnel is refused.
    assert_eq!(
        a.store
            .ack_fenced("demo", entries[1].id, Some(old.epoch))
            .await
            .unwrap(),
        Fenced::Refused
    );
    assert_eq!(
        a.store
            .pending_fenced("demo", None, 10, Some(old.epoch))
            .await
            .unwrap(),
        Fenced::Refused
    );
    assert!(!a.leases.renew(&old).await.unwrap());
    // B claims what A had read and never acked, in order, and acks it.
    let Fenced::Done(moved) = b
        .store
        .pending_fenced("demo", None, 10, Some(new.epoch))
        .await
        .unwrap()
    else {
        panic!()
    };
    let ids: Vec<_> = moved.iter().map(|p| p.id).collect();
    assert_eq!(ids, [entries[1].id, entries[2].id]);
    for id in ids {
        assert_eq!(
            b.store
                .ack_fenced("demo", id, Some(new.epoch))
                .await
                .unwrap(),
            Fenced::Done(true)
        );
    }
    assert_eq!(b.store.depth("demo").await.unwrap(), 0);
}

#[tokio::test]
async fn the_queue_survives_a_redis_crash() {
    let mut redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    assert_eq!(
        a.store.claim_within("demo", "k", 10).await.unwrap(),
        Claim::Granted
    );
    let entries: Vec<Enqueue> = (0..20u8).map(|i| entry("demo", &[i; 100])).collect();
    for e in &entries {
        a.store.enqueue(e).await.unwrap();
    }
    redis.crash_and_restart();
    // The same handle reconnects by itself (the connection manager).
    let mut pending = None;
    for _ in 0..50 {
        match a.store.pending_fenced("demo", None, 100, None).await {
            Ok(Fenced::Done(p)) => {
                pending = Some(p);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let pending = pending.expect("Redis is back");
    let ids: Vec<_> = pending.iter().map(|p| p.id).collect();
    let want: Vec<_> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, want);
    assert!(a.store.is_known("demo").await.unwrap());
}

/// The node-to-node listener takes only the cluster secret: no header, an
/// agent token or a wrong secret get 401; the secret gets through to the
/// request checks (400 here: no tunnel named).
#[tokio::test]
async fn the_internal_listener_wants_the_cluster_secret() {
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let redis = RedisServer::start(&[]);
    let mut cluster = settings(&redis, "a", Duration::from_secs(10));
    cluster.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    let config = hooktunnel_relay::RelayConfig {
        tokens: vec!["agent-token".into()],
        cluster: Some(cluster),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(hooktunnel_relay::serve(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    // The node says where its internal listener is.
    let health = health(public).await;
    assert_eq!(health["cluster"]["redis"]["ok"], true, "{health}");
    let internal = health["cluster"]["internal"].as_str().unwrap().to_owned();
    let tcp = tokio::net::TcpStream::connect(&internal).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for (auth, want) in [
        (None, 401),
        (Some("Bearer agent-token"), 401),
        (Some("Bearer a-cluster-secret-for-testZ"), 401),
        (Some("Bearer a-cluster-secret-for-tests"), 400),
    ] {
        let mut request = http::Request::post("http://peer/");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let answer = send
            .send_request(request.body(Empty::<bytes::Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), want, "{auth:?}");
        let _ = answer.into_body().collect().await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
}

/// Redis memory per registered name (run by hand: `cargo test -p
/// hooktunnel-relay --test cluster memory_per_name -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn memory_per_name() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let used = || {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        s.write_all(b"INFO memory\r\n").unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = used();
    const NAMES: u64 = 10_000;
    for i in 0..NAMES {
        let (name, key) = (format!("name{i}"), format!("key{}", i % 1000));
        let claim = a.store.claim_within(&name, &key, 100).await.unwrap();
        assert_eq!(claim, Claim::Granted);
    }
    let after = used();
    eprintln!(
        "{NAMES} names (1,000 keys): {} bytes of Redis memory, {} per name",
        after - before,
        (after - before) / NAMES
    );
}

#[tokio::test]
async fn edge_rules_are_stored_with_the_name_and_go_with_it() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let s = &a.store;
    let json = r#"{"allow_ip":["10.0.0.0/8"]}"#;
    let rules: EdgeRules = serde_json::from_str(json).unwrap();
    s.set_edge_rules("nobody", Some(json)).await.unwrap();
    assert!(
        s.all_edge_rules().await.unwrap().is_empty(),
        "only claimed names"
    );
    assert_eq!(
        s.claim_within("demo", "k", 10).await.unwrap(),
        Claim::Granted
    );
    s.set_edge_rules("demo", Some(json)).await.unwrap();
    assert_eq!(
        s.all_edge_rules().await.unwrap(),
        [("demo".to_owned(), rules.clone())]
    );
    s.set_edge_rules("demo", None).await.unwrap();
    assert!(s.all_edge_rules().await.unwrap().is_empty());
    s.set_edge_rules("demo", Some(json)).await.unwrap();
    s.release("demo", "k", false).await.unwrap();
    assert!(
        s.all_edge_rules().await.unwrap().is_empty(),
        "released with the name"
    );
}

/// The signing secret of edge verification is stored sealed: another node
/// with the same cluster secret opens it, a node with another secret and a
/// value copied to another name do not (rules without the secret, no error).
#[tokio::test]
async fn signing_secrets_are_sealed_and_open_only_with_the_cluster_secret() {
    use hooktunnel_relay::protocol::rules::{EdgeProvider, EdgeVerify};
    const SECRET: &str = "whsec_only_for_nodes";
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let b = node(&redis, "b", Duration::from_secs(10)).await;
    for name in ["demo", "other"] {
        assert_eq!(
            a.store.claim_within(name, "k", 10).await.unwrap(),
            Claim::Granted
        );
    }
    let rules = EdgeRules {
        verify: Some(EdgeVerify {
            provider: EdgeProvider::Stripe,
            secret: SECRET.into(),
        }),
        ..EdgeRules::default()
    };
    a.store.store_edge_rules("demo", &rules).await.unwrap();
    assert_eq!(
        b.store.edge_rules("demo").await.unwrap(),
        Some(rules.clone())
    );
    assert_eq!(
        b.store.all_edge_rules().await.unwrap(),
        [("demo".to_owned(), rules.clone())]
    );

    let mut raw = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Vec<String> = ::redis::cmd("HGETALL")
        .arg("ht:{demo}:name")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!stored.iter().any(|v| v.contains(SECRET)), "{stored:?}");

    let mut wrong = settings(&redis, "c", Duration::from_secs(10));
    wrong.secret = "another-cluster-secret".into();
    let c = Cluster::connect(wrong, "").await.unwrap();
    assert_eq!(
        c.store.edge_rules("demo").await.unwrap(),
        Some(rules.without_secret())
    );

    // A sealed value copied to another name does not open there.
    a.store
        .store_edge_rules("other", &rules.without_secret())
        .await
        .unwrap();
    let sealed: String = ::redis::cmd("HGET")
        .arg("ht:{demo}:name")
        .arg("sealed")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: i64 = ::redis::cmd("HSET")
        .arg("ht:{other}:name")
        .arg("sealed")
        .arg(&sealed)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        b.store.edge_rules("other").await.unwrap(),
        Some(rules.without_secret())
    );
}

/// The quota check and the append are one script: many concurrent enqueues
/// from two nodes against a small quota (entries, then bytes) accept exactly
/// the quota and refuse the rest with the queue-full error.
#[tokio::test]
async fn concurrent_enqueues_on_two_nodes_never_pass_the_quota() {
    let redis = RedisServer::start(&[]);
    let a = node(&redis, "a", Duration::from_secs(10)).await;
    let b = node(&redis, "b", Duration::from_secs(10)).await;
    // 100-byte frames from distinct clients (so the per-client shares never
    // bind): at most 10 entries; then at most 1,000 bytes (= 10 frames).
    let quotas = [
        (
            "by-count",
            QueueLimits {
                max_count: 10,
                ..LIMITS
            },
        ),
        (
            "by-bytes",
            QueueLimits {
                max_count: 1000,
                max_bytes: 1000,
                ..LIMITS
            },
        ),
    ];
    for (name, limits) in quotas {
        let attempts = (0..80u32).map(|i| {
            let store = if i % 2 == 0 {
                a.store.clone()
            } else {
                b.store.clone()
            };
            let entry = Enqueue {
                limits,
                client: format!("client-{i}"),
                ..entry(name, &[7; 100])
            };
            tokio::spawn(async move { store.enqueue(&entry).await })
        });
        let mut accepted = 0;
        for attempt in futures_util::future::join_all(attempts).await {
            match attempt.unwrap() {
                Ok(()) => accepted += 1,
                Err(EnqueueError::Full(reason)) => assert!(reason.contains("limit"), "{reason}"),
                Err(other) => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(accepted, 10, "{name}");
        assert_eq!(a.store.depth(name).await.unwrap(), 10, "{name}");
    }
}
