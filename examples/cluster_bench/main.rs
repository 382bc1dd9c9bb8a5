//! Relay cluster benchmarks (issue 15), all in one run on loopback against
//! release binaries: a `redis-server` (AOF on), three `hooktunnel-relay
//! --cluster` nodes, a single-node SQLite `hooktunnel-relay` for comparison,
//! `hooktunnel listen` agents and an in-process local app.
//!
//! ```sh
//! cargo build --release --bins --example cluster_bench
//! target/release/examples/cluster_bench target/release
//! ```
//!
//! Argument: the directory holding `hooktunnel` and `hooktunnel-relay`
//! (default `target/release`). Environment: `CB_ROUNDS` (5) rounds of the
//! request cells, `CB_SECS` (4) seconds per throughput cell, `CB_KILLS` (20)
//! failover rounds, `CB_ACCOUNT` (1000) requests per Redis accounting cell,
//! `CB_NAMES` (10000) idle tunnels for the memory cell, `CB_LEASE_TTL` (3)
//! the nodes' `--lease-ttl`. Prints Markdown tables; every child is killed on
//! exit (`kill_on_drop`). Not part of `cargo test`.
//!
//! 1. Requests (POST 1 KiB and 1 MiB): through the node holding the agent
//!    (owner), through another node (streamed to the owner over h2c), and
//!    through the single-node SQLite relay; sequential latency p50/p99 and
//!    concurrent throughput, paths interleaved within each round.
//! 2. Failover: kill -9 the node holding the agent (`--relay A,B,C`), time
//!    until a request through one of the other nodes gets a 200 from the
//!    app; the killed node is restarted between rounds.
//! 3. Redis commands and bytes per request (`INFO commandstats`, `INFO
//!    stats` deltas, the idle background over the same time subtracted) for
//!    a live request via the owner, via another node, and a queued one
//!    (agent away) with its delivery and ack.
//! 4. Redis `used_memory` per idle tunnel: `CB_NAMES` WebSocket agents
//!    registered over the three nodes (each a name and a lease).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "a-cluster-secret-for-the-benchmark";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../common/mod.rs"]
mod common;
use common::{Socket, free_port, spawn, wait_port};

async fn local_app(seen: Arc<AtomicU64>) -> u16 {
    let app = axum::Router::new().fallback(move |body: Body| {
        let seen = seen.clone();
        async move {
            let _ = body.collect().await;
            seen.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

mod nodes;
mod redis;
use nodes::*;
use redis::*;

// ------------------------------------------------------------------ idle tunnels

/// An agent that registers `name` with `key` and then only answers pings.
async fn idle_agent(url: String, name: String, key: String) -> anyhow::Result<Socket> {
    common::handshake(&url, serde_json::json!({ "name": name, "key": key })).await
}

// ------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release".into()),
    );
    let rounds: usize = env_or("CB_ROUNDS", 5);
    let secs: f64 = env_or("CB_SECS", 4.0);
    let kills: usize = env_or("CB_KILLS", 20);
    let account: usize = env_or("CB_ACCOUNT", 1000);
    let names: usize = env_or("CB_NAMES", 10_000);
    let ttl: u64 = env_or("CB_LEASE_TTL", 3);
    let started = Instant::now();

    let scratch = tempfile::tempdir()?;
    let redis_port = free_port();
    let _redis = start_redis(scratch.path(), redis_port)?;
    wait_port(redis_port).await?;
    for _ in 0..200 {
        if redis_info(redis_port, "server").is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let version = redis_info(redis_port, "server")?
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned))
        .unwrap_or_default();

    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .into_iter()
        .map(|id| Node {
            id,
            port: free_port(),
            internal: free_port(),
            child: None,
        })
        .collect();
    for n in &mut nodes {
        n.start(&bin, redis_port, ttl).await?;
    }
    let relays = nodes.iter().map(Node::url).collect::<Vec<_>>().join(",");

    let single_port = free_port();
    let single = spawn(
        Command::new(bin.join("hooktunnel-relay"))
            .args(["--listen", &format!("127.0.0.1:{single_port}")])
            .arg("--data-dir")
            .arg(scratch.path().join("single"))
            .args(relay_flags())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    wait_port(single_port).await?;

    let seen = Arc::new(AtomicU64::new(0));
    let app = local_app(seen.clone()).await;
    let home = scratch.path().join("agent");
    let home1 = scratch.path().join("agent-single");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&home1)?;
    let (mut agent, public) = start_agent(&bin, &home, app, &relays, "bench-cluster").await?;
    let (agent1, public1) = start_agent(
        &bin,
        &home1,
        app,
        &format!("http://127.0.0.1:{single_port}"),
        "bench-single",
    )
    .await?;
    let path = tunnel_path(&public);
    if !public.starts_with(&nodes[0].url()) {
        bail!("the agent is not on node a: {public}");
    }

    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build_http();

    println!(
        "# Cluster benchmark ({} UTC)\n",
        String::from_utf8_lossy(
            &std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M"])
                .output()?
                .stdout
        )
        .trim()
    );
    println!(
        "redis-server {version} (AOF, appendfsync everysec), three nodes with --lease-ttl {ttl}, \
         agent `--relay A,B,C` (default 15 s pings), rounds {rounds}, {secs} s per throughput cell; \
         load average at start: {}\n",
        std::fs::read_to_string("/proc/loadavg")?
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // -------------------------------------------------------------- 1. requests
    let paths: [(&str, String); 3] = [
        ("single-node SQLite relay", format!("{}/n", public1)),
        (
            "cluster, via the owner",
            format!("{}{path}/n", nodes[0].url()),
        ),
        (
            "cluster, via another node",
            format!("{}{path}/n", nodes[1].url()),
        ),
    ];
    let pids: Vec<Option<u32>> = nodes
        .iter()
        .map(Node::pid)
        .chain([single.id(), agent.id(), agent1.id()])
        .collect();
    let small = Bytes::from(vec![b'x'; 1024]);
    let big = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    // (label, body, sequential requests per round, concurrent connections)
    let cells: [(&str, &Bytes, usize, usize); 2] =
        [("POST 1 KiB", &small, 500, 16), ("POST 1 MiB", &big, 20, 4)];
    let mut results: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for (_, url) in &paths {
        latencies(&client, url, &small, 50).await?; // warm-up
    }
    for round in 0..rounds {
        for (ci, (_, body, n, conns)) in cells.iter().enumerate() {
            let order: Vec<usize> = if round % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            for &pi in &order {
                quiet(&pids).await;
                let lat = latencies(&client, &paths[pi].1, body, *n).await?;
                quiet(&pids).await;
                let (rate, errors) = throughput(&client, &paths[pi].1, body, *conns, secs).await;
                let cell = results.entry((ci, pi)).or_default();
                cell.lat.extend(lat);
                cell.rate.push(rate);
                cell.errors += errors;
            }
        }
    }
    println!("## 1. Requests (sequential latency; throughput at N connections)\n");
    println!(
        "| cell | path | p50 ms | p99 ms | req/s (median of rounds) | rounds | non-200 | p50 / single | req/s / single |"
    );
    println!("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
    for (ci, (label, _, _, conns)) in cells.iter().enumerate() {
        let base = &results[&(ci, 0)];
        let (base_p50, base_rate) = (median(&base.lat), median(&base.rate));
        for (pi, (pname, _)) in paths.iter().enumerate() {
            let c = &results[&(ci, pi)];
            let mut lat = c.lat.clone();
            lat.sort_by(f64::total_cmp);
            let rate = median(&c.rate);
            println!(
                "| {label}, {conns} conns | {pname} | {:.3} | {:.3} | {rate:.0} | {} | {} | {:.2}× | {:.2}× |",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                c.rate
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(" · "),
                c.errors,
                percentile(&lat, 0.5) / base_p50,
                rate / base_rate,
            );
        }
    }
    println!();
    drop(agent1);
    drop(single);

    // -------------------------------------------------------------- 3. Redis per request
    // Before the kills, while the agent is on node a (owner) and b is another node.
    quiet(&pids).await;
    let monitor = Monitor::start(redis_port)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s0 = monitor.snapshot(redis_port);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s1 = monitor.snapshot(redis_port);
    let background = Delta::between(&s0, &s1);
    let mut rows: Vec<(String, Delta, Delta)> = Vec::new();
    for (label, node) in [("live, via the owner", 0), ("live, via another node", 1)] {
        let url = format!("{}{path}/r", nodes[node].url());
        let a = monitor.snapshot(redis_port);
        latencies(&client, &url, &small, account).await?;
        let b = monitor.snapshot(redis_port);
        let raw = Delta::between(&a, &b);
        rows.push((
            label.into(),
            raw.per(account as f64),
            raw.minus_background(&background).per(account as f64),
        ));
    }
    // Queued: the agent stops cleanly (its lease is released), requests are
    // queued through node b, the agent comes back and gets them (delivery +
    // ack), all with the background subtracted.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &agent.id().context("agent pid")?.to_string()])
        .status();
    tokio::time::timeout(Duration::from_secs(15), agent.wait())
        .await
        .context("the agent did not stop")??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = format!("{}{path}/q", nodes[1].url());
    let before_seen = seen.load(Ordering::SeqCst);
    let q0 = monitor.snapshot(redis_port);
    let mut queued = 0;
    for _ in 0..account {
        match post(&client, &url, small.clone()).await? {
            202 => queued += 1,
            other => bail!("a request with the agent away got {other}"),
        }
    }
    let q1 = monitor.snapshot(redis_port);
    let (agent2, public2) = start_agent(&bin, &home, app, &relays, "bench-cluster").await?;
    agent = agent2;
    if tunnel_path(&public2) != path {
        bail!("the agent came back as {public2}");
    }
    let waited = Instant::now();
    while seen.load(Ordering::SeqCst) < before_seen + queued {
        if waited.elapsed() > Duration::from_secs(120) {
            bail!("the queued requests were not delivered");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last acks land.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let q2 = monitor.snapshot(redis_port);
    let enqueue = Delta::between(&q0, &q1);
    let deliver = Delta::between(&q1, &q2);
    let nq = queued as f64;
    rows.push((
        "queued: enqueue (agent away)".into(),
        enqueue.per(nq),
        enqueue.minus_background(&background).per(nq),
    ));
    rows.push((
        "queued: agent back, delivery + ack (+ its registration)".into(),
        deliver.per(nq),
        deliver.minus_background(&background).per(nq),
    ));
    let both = enqueue.plus(&deliver);
    rows.push((
        "queued: total".into(),
        both.per(nq),
        both.minus_background(&background).per(nq),
    ));
    drop(monitor);
    println!("## 3. Redis per request (POST 1 KiB, {account} requests per row, {queued} queued)\n");
    println!(
        "Background with one idle tunnel (lease renewals, polls, health): {:.1} commands sent/s ({:.1} run by scripts), {:.0} B/s in, {:.0} B/s out ({}).\n",
        background.sent() / background.secs,
        (background.total() - background.sent()) / background.secs,
        background.net_in / background.secs,
        background.net_out / background.secs,
        background.per(background.secs).breakdown(),
    );
    println!(
        "| request | commands sent (round trips), raw | commands sent, background subtracted | + commands run inside scripts | bytes to Redis | bytes from Redis | commands (lua: run by a script) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (label, raw, net) in &rows {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} |",
            raw.sent(),
            net.sent(),
            net.total() - net.sent(),
            net.net_in,
            net.net_out,
            net.breakdown()
        );
    }
    println!();

    // -------------------------------------------------------------- 2. failover
    let mut times = Vec::new();
    let mut queued_during = 0;
    let mut other_status: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..kills {
        // The node holding the agent.
        let mut holder = None;
        let waited = Instant::now();
        while holder.is_none() {
            for (i, n) in nodes.iter().enumerate() {
                if tunnels_on(&client, n).await.unwrap_or(0) > 0 {
                    holder = Some(i);
                }
            }
            if waited.elapsed() > Duration::from_secs(30) {
                bail!("round {round}: no node holds the agent");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let holder = holder.unwrap();
        let others: Vec<String> = (0..nodes.len())
            .filter(|i| *i != holder)
            .map(|i| format!("{}{path}/f", nodes[i].url()))
            .collect();
        // One request through each other node first, so their routes are warm.
        for url in &others {
            let _ = post(&client, url, small.clone()).await;
        }
        nodes[holder].kill().await;
        let killed = Instant::now();
        let mut k = 0;
        loop {
            let url = &others[k % others.len()];
            k += 1;
            match post(&client, url, small.clone()).await {
                Ok(200) => break,
                Ok(202) => queued_during += 1,
                Ok(s) => *other_status.entry(s.to_string()).or_default() += 1,
                Err(e) => *other_status.entry(format!("{e}")).or_default() += 1,
            }
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("round {round}: no 200 within 60 s of the kill");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(killed.elapsed().as_secs_f64() * 1000.0);
        nodes[holder].start(&bin, redis_port, ttl).await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!("## 2. Failover over {kills} kills (kill -9 of the node holding the agent)\n");
    println!("| p50 ms | p99 ms | min ms | max ms | queued (202) while away | other answers |");
    println!("| ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| {:.0} | {:.0} | {:.0} | {:.0} | {queued_during} | {} |\n",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
        if other_status.is_empty() {
            "none".to_owned()
        } else {
            format!("{other_status:?}")
        }
    );
    println!(
        "Each (ms, in order): {}\n",
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(agent);

    // -------------------------------------------------------------- 4. memory per idle tunnel
    // On a fresh Redis (a clean baseline), nodes restarted with a 30 s
    // lease so 10,000 renewals are ~1,000/s, not ~10,000/s.
    for n in &mut nodes {
        n.kill().await;
    }
    let fresh = scratch.path().join("redis-memory");
    std::fs::create_dir_all(&fresh)?;
    let redis_port = free_port();
    let _redis2 = start_redis(&fresh, redis_port)?;
    wait_port(redis_port).await?;
    for _ in 0..200 {
        if redis_info(redis_port, "server").is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for n in &mut nodes {
        n.start(&bin, redis_port, 30).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m0 = snapshot(redis_port);
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "ws://127.0.0.1:{}{}",
                n.port,
                hooktunnel_protocol::CONNECT_PATH
            )
        })
        .collect();
    let connect_started = Instant::now();
    let results: Vec<anyhow::Result<Socket>> = futures_util::stream::iter(0..names)
        // 10 names per key (the default --max-names-per-key), like agents with several names.
        .map(|i| {
            idle_agent(
                urls[i % urls.len()].clone(),
                format!("idle-{i}"),
                format!("bench-key-{:024x}", i / 10),
            )
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let mut sockets = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(s) => sockets.push(s),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let connected = sockets.len();
    let holders: Vec<tokio::task::JoinHandle<()>> = sockets
        .into_iter()
        .map(|mut s| tokio::spawn(async move { while let Some(Ok(_)) = s.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m1 = snapshot(redis_port);
    let kinds1 = key_kinds(redis_port)?;
    for h in &holders {
        h.abort();
    }
    drop(holders);
    // Sessions end, leases are released; names stay registered.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m2 = snapshot(redis_port);
    let kinds2 = key_kinds(redis_port)?;
    println!(
        "## 4. Redis memory per idle tunnel ({connected} of {names} agents connected in {connect_secs:.1} s over three nodes)\n"
    );
    if let Some(e) = first_error {
        println!("First connect error: {e:#}\n");
    }
    let per = |a: &Snapshot, b: &Snapshot| {
        (b.used_memory as f64 - a.used_memory as f64) / connected.max(1) as f64
    };
    println!("| state | used_memory | keys | bytes per tunnel vs before |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| before | {} | {} | – |", m0.used_memory, m0.keys);
    println!(
        "| {connected} idle tunnels connected (name, lease, epoch; 10 names per key) | {} | {} | {:.0} |",
        m1.used_memory,
        m1.keys,
        per(&m0, &m1)
    );
    println!(
        "| after they disconnected (names registered, leases released) | {} | {} | {:.0} |\n",
        m2.used_memory,
        m2.keys,
        per(&m0, &m2)
    );
    println!("Keys while connected: {kinds1:?}; after: {kinds2:?}\n");
    for n in &mut nodes {
        n.kill().await;
    }
    println!(
        "Run took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")?
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
