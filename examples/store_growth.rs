//! Does the agent's memory stay flat while its history grows? Runs a real
//! `hooktunnel listen` process (release build, capture on, retention raised
//! so nothing is evicted) behind an in-process relay, in front of an
//! in-process local app, sends POSTs until the history holds `TOTAL`
//! exchanges, and samples the agent's resident memory on the way.
//!
//! ```sh
//! cargo build --release && cargo run --release --example store_growth -- 1000000 100000
//! ```
//!
//! Arguments: exchanges to send (default 1,000,000), sample every N (default
//! 100,000), concurrent senders (default 32). Prints a Markdown table:
//! exchanges sent, agent VmRSS and VmHWM, history size on disk, rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// A 512-byte JSON webhook body.
fn body() -> Bytes {
    let mut s = String::from(r#"{"type":"invoice.paid","data":""#);
    while s.len() < 510 {
        s.push('x');
    }
    s.push_str("\"}");
    Bytes::from(s)
}

/// KiB from /proc/PID/status for `key` (VmRSS, VmHWM).
fn proc_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Bytes of the history database and its WAL.
fn history_bytes(home: &std::path::Path) -> u64 {
    let db = hooktunnel::config::Paths::at(home).db();
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            std::fs::metadata(p).ok().map(|m| m.len())
        })
        .sum()
}

/// A local app answering every request with 200 `ok`.
async fn local_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let every: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let senders: u64 = args.next().map_or(Ok(32), |a| a.parse())?;

    let app_port = local_app().await;
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let relay_addr = relay_listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(hooktunnel_relay::serve(
        relay_listener,
        hooktunnel_relay::RelayConfig::default(),
        stop.clone().cancelled_owned(),
    ));

    // target/release/examples/store_growth → target/release/hooktunnel
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("hooktunnel"))
        .filter(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("build the agent first: cargo build --release"))?;
    let home = tempfile::tempdir()?;
    let mut agent = Command::new(&bin)
        .args(["listen", &app_port.to_string(), "--json", "--no-tui"])
        .args(["--relay", &format!("http://{relay_addr}")])
        .args([
            "--keep",
            &(total * 2).to_string(),
            "--keep-bytes",
            "1000000000000",
        ])
        .env("HOOKTUNNEL_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = agent.id();
    let mut lines = BufReader::new(agent.stdout.take().expect("piped stdout")).lines();
    let ready: serde_json::Value = serde_json::from_str(&lines.next().expect("a ready line")?)?;
    let url = format!("{}/hook", ready["public_url"].as_str().expect("public_url"));
    // Drain the NDJSON so the agent never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let sent = Arc::new(AtomicU64::new(0));
    let body = body();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, sent, url, body) = (client.clone(), sent.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < total {
                let request = hyper::Request::post(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .expect("a valid request");
                match client.request(request).await {
                    Ok(response) => {
                        let _ = response.into_body().collect().await;
                    }
                    Err(e) => eprintln!("request failed: {e}"),
                }
            }
        }));
    }

    println!(
        "| exchanges | agent VmRSS MiB | agent VmHWM MiB | history on disk MiB | req/s since last row |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mib = |kib: u64| kib as f64 / 1024.0;
    let row = |n: u64, rate: f64| {
        println!(
            "| {n} | {:.1} | {:.1} | {:.0} | {rate:.0} |",
            mib(proc_kib(pid, "VmRSS:")),
            mib(proc_kib(pid, "VmHWM:")),
            history_bytes(home.path()) as f64 / 1_048_576.0,
        );
    };
    row(0, 0.0);
    let mut next = every;
    let mut last = (0u64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = sent.load(Ordering::Relaxed).min(total);
        if done >= next || done >= total {
            let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
            last = (done, Instant::now());
            row(done, rate);
            next += every;
        }
        if done >= total {
            break;
        }
    }
    for t in tasks {
        t.await?;
    }
    // Let the writer drain, then the final figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    row(total, 0.0);
    let _ = agent.kill();
    let _ = agent.wait();
    let stored = hooktunnel::store::Store::open(&hooktunnel::config::Paths::at(home.path()).db())?
        .count()?;
    println!("\nexchanges in the history at the end: {stored}");
    stop.cancel();
    Ok(())
}
