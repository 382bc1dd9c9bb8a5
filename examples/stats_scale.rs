//! How long does `hooktunnel stats` take over a big history? Fills a fresh
//! store with `ROWS` exchanges spread over the last 55 minutes (a realistic
//! mix of paths, providers, event types, statuses and latencies), then times
//! the same scan and aggregation `stats` runs (all three sections, default
//! window of one hour), and the whole `hooktunnel stats --json` command. Over
//! the same history it also times what opening the web inspector costs: its
//! first page of the list (`GET /api/v1/exchanges?limit=100`) and the ngrok
//! list (`GET /api/requests/http?limit=50`), through the real router.
//!
//! ```sh
//! cargo build --release && cargo run --release --example stats_scale -- 1000000
//! ```
//!
//! Arguments: rows (default 1,000,000), timed runs (default 5). Prints a
//! Markdown table row per measurement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use hooktunnel::clock::now_ms;
use hooktunnel::exchange::{Exchange, ExchangeResponse, Header, SignatureVerdict};
use hooktunnel::filter::Filter;
use hooktunnel::stats::{Aggregator, Dimension, Window};
use hooktunnel::store::Store;

const BATCH: usize = 10_000;

fn exchange(i: u64, now: u64, span_ms: u64, rows: u64) -> Exchange {
    let (provider, kind, header) = match i % 4 {
        0 => ("stripe", "invoice.paid", ("stripe-signature", "t=1,v1=00")),
        1 => ("stripe", "charge.failed", ("stripe-signature", "t=1,v1=00")),
        2 => ("github", "push", ("x-hub-signature-256", "sha256=00")),
        _ => (
            "standard-webhooks",
            "user.created",
            ("webhook-signature", "v1,AA=="),
        ),
    };
    let status = match i % 50 {
        0 => 503,
        1 => 404,
        2 => 502,
        _ => 200,
    };
    let error = (status == 502).then(|| "could not reach the local app".to_owned());
    Exchange {
        attempts: 1,
        id: hooktunnel_relay::protocol::next_id(),
        tunnel: "bench".into(),
        received_at_ms: now - span_ms + i * span_ms / rows,
        method: "POST".into(),
        path: format!("/{provider}/orders/{}", i % 10_000),
        target: "http://127.0.0.1:3000".into(),
        request_headers: vec![
            Header::new("content-type", "application/json"),
            Header::new(header.0, header.1),
        ],
        request_body: Bytes::from(format!(r#"{{"id":"evt_{i}","type":"{kind}","data":{{}}}}"#)),
        request_truncated: None,
        capture_degraded: false,
        response: Some(ExchangeResponse {
            status,
            headers: vec![Header::new("content-type", "text/plain")],
            body: Bytes::from_static(b"ok"),
            truncated: None,
        }),
        duration_us: 500 + (i * 7919) % 250_000,
        error,
        replay_of: None,
        queued: i.is_multiple_of(97),
        peer: None,
        public_url: None,
        signature: i.is_multiple_of(3).then(|| SignatureVerdict {
            provider: provider.into(),
            valid: !i.is_multiple_of(30),
            reason: None,
        }),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let runs: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let home = tempfile::tempdir()?;
    let paths = hooktunnel::config::Paths::at(home.path());
    let mut store = Store::open(&paths.db())?;
    let now = now_ms();
    let span = 55 * 60 * 1000;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..rows {
        batch.push(exchange(i, now, span, rows));
        if batch.len() == BATCH {
            store.insert_many(&batch)?;
            batch.clear();
        }
    }
    store.insert_many(&batch)?;
    let fill = started.elapsed();
    let db_mb = std::fs::metadata(paths.db())?.len() as f64 / 1e6;
    eprintln!(
        "filled {rows} rows in {:.1}s ({db_mb:.0} MB)",
        fill.as_secs_f64()
    );

    println!("| measurement | rows | best | median |");
    println!("| --- | --- | --- | --- |");
    let mut times = Vec::new();
    let mut matched = 0;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let window = Window::new(now_ms() - 3_600_000, now_ms() + 1, 30);
        let mut agg = Aggregator::new(window, &Dimension::ALL, 15);
        matched = store.stats_scan(
            window.since_ms,
            window.until_ms,
            &Filter::default(),
            &mut agg,
        )?;
        let report = agg.finish();
        assert_eq!(report.total.count, matched);
        times.push(t.elapsed().as_secs_f64());
        last = Some(report);
    }
    if let Some(report) = last {
        // What the table looks like over this data (on stderr, after the timings).
        for line in hooktunnel::stats::table::render(&report, "in the last 1h", false) {
            eprintln!("{line}");
        }
    }
    report_row("scan + aggregate (library)", matched, &mut times);

    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("hooktunnel"))
        .filter(|p| p.exists());
    if let Some(bin) = bin {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let out = std::process::Command::new(&bin)
                .args(["stats", "--json"])
                .env("HOOKTUNNEL_HOME", home.path())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            times.push(t.elapsed().as_secs_f64());
        }
        report_row("`hooktunnel stats --json` (process)", matched, &mut times);
    } else {
        eprintln!("(build the binary with `cargo build --release` to time the command too)");
    }
    web_first_page(&paths.db(), rows, runs)?;
    insert_cost(rows.min(100_000))?;
    Ok(())
}

/// The web inspector's first page over the history at `db`, in process.
fn web_first_page(db: &std::path::Path, rows: u64, runs: usize) -> anyhow::Result<()> {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let runtime = tokio::runtime::Runtime::new()?;
    let host = "127.0.0.1:4040";
    let state = std::sync::Arc::new(hooktunnel::web::WebState::new(
        db.to_path_buf(),
        host.parse()?,
        None,
        Vec::new(),
    ));
    let app = hooktunnel::web::router(state);
    for uri in ["/api/v1/exchanges?limit=100", "/api/requests/http?limit=50"] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let request = axum::http::Request::get(uri)
                .header("host", host)
                .body(axum::body::Body::empty())?;
            let response = runtime.block_on(app.clone().oneshot(request))?;
            anyhow::ensure!(
                response.status().is_success(),
                "{uri}: {}",
                response.status()
            );
            runtime.block_on(response.into_body().collect())?;
            times.push(t.elapsed().as_secs_f64());
        }
        report_row(&format!("web inspector `GET {uri}`"), rows, &mut times);
    }
    Ok(())
}

/// What the stats columns add to capture: `derive` per exchange, and the
/// extra index, measured back to back on fresh stores of `rows` exchanges.
fn insert_cost(rows: u64) -> anyhow::Result<()> {
    let now = now_ms();
    let batch: Vec<Exchange> = (0..rows).map(|i| exchange(i, now, 1000, rows)).collect();
    let t = Instant::now();
    let derived = batch.iter().map(hooktunnel::stats::derive).count();
    let derive_us = t.elapsed().as_secs_f64() * 1e6 / derived as f64;
    let mut per_row = Vec::new();
    // Alternating, so load on a shared machine hits both alike; medians below.
    for with_index in [true, false].repeat(4) {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("h.sqlite3");
        let mut store = Store::open(&db)?;
        if !with_index {
            rusqlite::Connection::open(&db)?.execute_batch("DROP INDEX exchanges_stats")?;
        }
        let t = Instant::now();
        for chunk in batch.chunks(256) {
            store.insert_many(chunk)?;
        }
        per_row.push((with_index, t.elapsed().as_secs_f64() * 1e6 / rows as f64));
    }
    println!("| `derive` per exchange | {rows} | {derive_us:.2} µs | |");
    for (with_index, what) in [(true, "with"), (false, "without")] {
        let mut us: Vec<f64> = per_row
            .iter()
            .filter(|(w, _)| *w == with_index)
            .map(|(_, us)| *us)
            .collect();
        us.sort_by(f64::total_cmp);
        println!(
            "| insert per exchange (batches of 256), {what} the stats index | {rows} | {:.1} µs | {:.1} µs |",
            us[0],
            us[us.len() / 2]
        );
    }
    Ok(())
}

fn report_row(what: &str, rows: u64, times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    println!(
        "| {what} | {rows} | {:.3} s | {:.3} s |",
        times[0],
        times[times.len() / 2]
    );
}
