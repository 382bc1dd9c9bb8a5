//! Streaming benchmarks (issue 12): one large transfer each way, Server-Sent
//! Events' first byte and WebSocket echo latency, each measured direct, through
//! bore and through hooktunnel in the same run, with the peak RSS of the relay
//! and agent processes during the large transfers.
//!
//! ```sh
//! cargo build --release --bins --example stream_bench
//! target/release/examples/stream_bench target/release bench/.tools/bin/bore 1024
//! ```
//!
//! Arguments: the directory holding `hooktunnel` and `hooktunnel-relay`, the
//! `bore` binary (`-` to leave bore out), and the transfer size in MiB
//! (default 1024). Everything listens on 127.0.0.1; every child is killed on
//! exit. Prints a Markdown table (`bench/run.sh stream` puts it in its output).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const CHUNK: usize = 1 << 20;

/// The local app: a sink, a source, an event stream and a WebSocket echo.
async fn local_app() -> u16 {
    let app = axum::Router::new()
        .route(
            "/sink",
            axum::routing::post(|body: Body| async move {
                let mut n = 0_u64;
                let mut s = body.into_data_stream();
                while let Some(Ok(chunk)) = s.next().await {
                    n += chunk.len() as u64;
                }
                n.to_string()
            }),
        )
        .route(
            "/bytes/{mib}",
            axum::routing::get(
                |axum::extract::Path(mib): axum::extract::Path<usize>| async move {
                    Body::from_stream(futures_util::stream::iter(0..mib).map(|i| {
                        Ok::<_, std::convert::Infallible>(Bytes::from(vec![(i % 251) as u8; CHUNK]))
                    }))
                },
            ),
        )
        .route(
            "/sse",
            axum::routing::get(|| async {
                let events = futures_util::stream::once(async {
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b"data: hello\n\n"))
                })
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Bytes::from_static(b"data: bye\n\n"))
                }));
                axum::http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(events))
                    .unwrap()
            }),
        )
        .route(
            "/ws",
            axum::routing::get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if matches!(msg, axum::extract::ws::Message::Text(_))
                            && socket.send(msg).await.is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[path = "common/mod.rs"]
mod common;
use common::{free_port, spawn, wait_port};

fn peak_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets the peak RSS counter of `pid` (Linux: write 5 to clear_refs).
fn reset_peak(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// MiB/s uploading `mib` MiB to `base/sink`.
async fn upload(client: &Client, base: &str, mib: usize) -> anyhow::Result<f64> {
    let body = Body::from_stream(
        futures_util::stream::iter(0..mib)
            .map(|i| Ok::<_, std::convert::Infallible>(Bytes::from(vec![(i % 251) as u8; CHUNK]))),
    );
    let request = http::Request::post(format!("{base}/sink"))
        .header("content-length", (mib * CHUNK).to_string())
        .body(body)?;
    let started = Instant::now();
    let response = client.request(request).await?;
    let text = response.into_body().collect().await?.to_bytes();
    let secs = started.elapsed().as_secs_f64();
    if text != (mib * CHUNK).to_string() {
        bail!("upload through {base}: the app got {text:?}");
    }
    Ok(mib as f64 / secs)
}

/// MiB/s downloading `mib` MiB from `base/bytes/mib`.
async fn download(client: &Client, base: &str, mib: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = client
        .request(http::Request::get(format!("{base}/bytes/{mib}")).body(Body::empty())?)
        .await?;
    let mut body = response.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len();
        }
    }
    if n != mib * CHUNK {
        bail!("download through {base}: got {n} bytes");
    }
    Ok(mib as f64 / started.elapsed().as_secs_f64())
}

/// Median ms from sending `GET base/sse` to the first event byte (50 runs).
async fn sse_first_byte(client: &Client, base: &str) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let response = client
            .request(http::Request::get(format!("{base}/sse")).body(Body::empty())?)
            .await?;
        let mut body = response.into_body();
        let first = body.frame().await.context("no event")??;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if first.into_data().map(|d| d.is_empty()).unwrap_or(true) {
            bail!("the first frame carried no event");
        }
        while body.frame().await.is_some() {}
    }
    Ok(median(&mut times))
}

/// Median ms of a 32-byte text echo over one WebSocket (1000 round trips).
async fn ws_echo(base: &str) -> anyhow::Result<f64> {
    let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut times = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        ws.send(Message::text("x".repeat(32))).await?;
        match ws.next().await {
            Some(Ok(Message::Text(_))) => {}
            other => bail!("no echo: {other:?}"),
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = ws.close(None).await;
    Ok(median(&mut times))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Path_ {
    name: &'static str,
    base: String,
    pids: Vec<Option<u32>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(args.get(1).map_or("target/release", String::as_str));
    let bore = args.get(2).filter(|b| b.as_str() != "-").map(PathBuf::from);
    let mib: usize = args.get(3).map_or(Ok(1024), |m| m.parse())?;
    let app = local_app().await;
    let home = tempfile::tempdir()?;

    let relay_port = free_port();
    let relay = spawn(
        Command::new(bin.join("hooktunnel-relay"))
            .args(["--listen", &format!("127.0.0.1:{relay_port}")])
            .args(["--rate-per-ip", "off", "--rate-per-tunnel", "off"])
            .args(["--max-body", &(4_u64 << 30).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    wait_port(relay_port).await?;
    let mut agent = spawn(
        Command::new(bin.join("hooktunnel"))
            .env("HOOKTUNNEL_HOME", home.path())
            .args(["listen", &app.to_string(), "--relay"])
            .arg(format!("http://127.0.0.1:{relay_port}"))
            .args(["--json", "--no-tui"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let mut lines = BufReader::new(agent.stdout.take().context("agent stdout")?).lines();
    let ready = lines
        .next_line()
        .await?
        .context("the agent printed nothing")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready: serde_json::Value = serde_json::from_str(&ready)?;
    let public = ready["public_url"]
        .as_str()
        .context("no public_url")?
        .to_owned();

    let mut paths = vec![Path_ {
        name: "direct",
        base: format!("http://127.0.0.1:{app}"),
        pids: vec![],
    }];
    let mut _bore_children = Vec::new();
    if let Some(bore) = &bore {
        let port = free_port();
        let server = spawn(
            Command::new(bore)
                .args(["server", "--bind-addr", "127.0.0.1"])
                .args([
                    "--min-port",
                    &port.to_string(),
                    "--max-port",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        wait_port(7835).await?;
        let local = spawn(
            Command::new(bore)
                .args([
                    "local",
                    &app.to_string(),
                    "--to",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        wait_port(port).await?;
        paths.push(Path_ {
            name: "bore",
            base: format!("http://127.0.0.1:{port}"),
            pids: vec![server.id(), local.id()],
        });
        _bore_children = vec![server, local];
    }
    paths.push(Path_ {
        name: "hooktunnel",
        base: public,
        pids: vec![relay.id(), agent.id()],
    });

    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    println!(
        "| path | upload {mib} MiB (MiB/s) | download {mib} MiB (MiB/s) | peak RSS during them (MiB) | SSE first byte p50 (ms) | WebSocket echo p50 (ms) |"
    );
    println!("| --- | ---: | ---: | --- | ---: | ---: |");
    for path in &paths {
        for pid in &path.pids {
            reset_peak(*pid);
        }
        let up = upload(&client, &path.base, mib).await?;
        let down = download(&client, &path.base, mib).await?;
        let peaks: Vec<String> = path
            .pids
            .iter()
            .map(|pid| format!("{:.0}", peak_mib(*pid)))
            .collect();
        let sse = sse_first_byte(&client, &path.base).await?;
        let ws = ws_echo(&path.base).await?;
        println!(
            "| {} | {up:.0} | {down:.0} | {} | {sse:.3} | {ws:.3} |",
            path.name,
            if peaks.is_empty() {
                "-".to_owned()
            } else {
                peaks.join(" / ")
            }
        );
    }
    drop(relay);
    let _ = agent.kill().await;
    let _ = Path::new("");
    Ok(())
}
