//! Batched history inserts: `Store::insert_many` with 256 exchanges per
//! transaction (the batch size of the live path's writer), on a temp dir.
//!
//! `cargo bench --bench store`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hooktunnel::exchange::{Exchange, ExchangeResponse, Header};
use hooktunnel::store::Store;
use hooktunnel_protocol::next_id;

const BATCH: usize = 256;

fn exchange(body: &Bytes) -> Exchange {
    Exchange {
        request_truncated: None,
        capture_degraded: false,
        attempts: 1,
        id: next_id(),
        tunnel: "bench".into(),
        received_at_ms: 1_732_752_000_000,
        method: "POST".into(),
        path: "/webhooks/github?source=bench".into(),
        target: "http://localhost:3000".into(),
        request_headers: vec![
            Header::new("host", "127.0.0.1:8080"),
            Header::new("user-agent", "GitHub-Hookshot/8a9b1c2"),
            Header::new("content-type", "application/json"),
            Header::new("x-github-event", "push"),
            Header::new("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            Header::new(
                "x-hub-signature-256",
                "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c",
            ),
        ],
        request_body: body.clone(),
        response: Some(ExchangeResponse {
            truncated: None,
            status: 200,
            headers: vec![
                Header::new("content-type", "application/json"),
                Header::new("content-length", "11"),
            ],
            body: Bytes::from_static(b"{\"ok\":true}"),
        }),
        duration_us: 412,
        error: None,
        replay_of: None,
        queued: false,
        peer: Some("127.0.0.1:53412".into()),
        public_url: Some("http://127.0.0.1:8080/t/bench/webhooks/github?source=bench".into()),
        signature: None,
    }
}

fn inserts(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("history.sqlite3")).expect("open store");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (label, size) in [("1KiB", 1024), ("4KiB", 4096)] {
        let body = Bytes::from(vec![b'a'; size]);
        group.bench_function(BenchmarkId::new("insert_many_256", label), |b| {
            b.iter_batched(
                || (0..BATCH).map(|_| exchange(&body)).collect::<Vec<_>>(),
                |batch| store.insert_many(&batch).expect("insert"),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = inserts
}
criterion_main!(benches);
