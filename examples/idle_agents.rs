//! Opens many idle agents on a relay and holds them, to measure what an idle
//! agent costs the relay (`bench/run.sh` reads the relay's RSS meanwhile).
//!
//! ```sh
//! cargo run --release --example idle_agents -- http://127.0.0.1:8080 1000 10
//! ```
//!
//! Arguments: relay base URL, number of agents (default 1000), seconds to hold
//! them once all are connected (default 10). Prints `READY <n>` on stdout when
//! every agent has its `welcome`, then `DONE` before exiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

/// Handshakes in flight at once.
const CONNECT_CONCURRENCY: usize = 64;

#[path = "common/mod.rs"]
mod common;
use common::Socket;

async fn connect_one(url: String) -> anyhow::Result<Socket> {
    common::handshake(&url, serde_json::json!({})).await
}

/// Reads (and so answers pings) until the relay closes the socket.
async fn idle(mut socket: Socket) {
    while let Some(Ok(_)) = socket.next().await {}
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let relay = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let count: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let hold = Duration::from_secs(args.next().map_or(Ok(10), |s| s.parse())?);
    let base = relay
        .trim_end_matches('/')
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = format!("{base}{}", hooktunnel_protocol::CONNECT_PATH);

    let started = Instant::now();
    let results: Vec<anyhow::Result<Socket>> = futures_util::stream::iter(0..count)
        .map(|_| connect_one(url.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut connected = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(socket) => {
                connected += 1;
                tokio::spawn(idle(socket));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut out = std::io::stdout();
    writeln!(
        out,
        "READY {connected} connected in {} ms",
        started.elapsed().as_millis()
    )?;
    out.flush()?;
    if let Some(e) = first_error {
        eprintln!("{} agents failed; first error: {e:#}", count - connected);
    }
    tokio::time::sleep(hold).await;
    writeln!(out, "DONE")?;
    Ok(())
}
