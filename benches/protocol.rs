//! Frame encode/decode on the relay ⇄ agent link, 1 KiB and 1 MiB bodies.
//!
//! `cargo bench --bench protocol`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hooktunnel_protocol::{AgentMessage, RelayMessage, next_id};

const SIZES: [(&str, usize); 2] = [("1KiB", 1024), ("1MiB", 1024 * 1024)];

/// Headers a typical webhook delivery carries (GitHub-like).
fn webhook_headers() -> serde_json::Value {
    serde_json::json!([
        ["host", "127.0.0.1:8080"],
        ["user-agent", "GitHub-Hookshot/8a9b1c2"],
        ["accept", "*/*"],
        ["content-type", "application/json"],
        ["content-length", "1024"],
        ["x-github-event", "push"],
        ["x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"],
        ["x-github-hook-id", "292430182"],
        [
            "x-hub-signature",
            "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6"
        ],
        [
            "x-hub-signature-256",
            "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c"
        ],
        ["x-forwarded-for", "140.82.115.1"]
    ])
}

/// Messages are built from their JSON form (plus a body) so that fields the
/// protocol gains later, which always have serde defaults, need no change here.
fn request(body: usize) -> RelayMessage {
    let mut msg: RelayMessage = serde_json::from_value(serde_json::json!({
        "type": "request",
        "id": next_id(),
        "method": "POST",
        "target": "/webhooks/github?source=bench",
        "headers": webhook_headers(),
        "peer": "127.0.0.1:53412",
        "received_at_ms": 1_732_752_000_000_u64,
        "public_url": "http://127.0.0.1:8080/t/bench/webhooks/github?source=bench",
    }))
    .expect("request JSON");
    if let RelayMessage::Request(r) = &mut msg {
        r.body = Bytes::from(vec![b'a'; body]);
    }
    msg
}

fn response(body: usize) -> AgentMessage {
    let mut msg: AgentMessage = serde_json::from_value(serde_json::json!({
        "type": "response",
        "id": next_id(),
        "status": 200,
        "headers": [
            ["server", "nginx/1.22.1"],
            ["date", "Thu, 28 Nov 2024 00:00:00 GMT"],
            ["content-type", "application/json"],
            ["content-length", body.to_string()],
            ["connection", "keep-alive"]
        ],
    }))
    .expect("response JSON");
    if let AgentMessage::Response(r) = &mut msg {
        r.body = Bytes::from(vec![b'b'; body]);
    }
    msg
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (label, size) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let req = request(size);
        let req_frame = req.encode();
        group.bench_with_input(BenchmarkId::new("request_encode", label), &req, |b, m| {
            b.iter(|| black_box(m).encode());
        });
        group.bench_with_input(
            BenchmarkId::new("request_decode", label),
            &req_frame,
            |b, f| b.iter(|| RelayMessage::decode_bytes(black_box(f)).expect("decode")),
        );
        let resp = response(size);
        let resp_frame = resp.encode();
        group.bench_with_input(BenchmarkId::new("response_encode", label), &resp, |b, m| {
            b.iter(|| black_box(m).encode());
        });
        group.bench_with_input(
            BenchmarkId::new("response_decode", label),
            &resp_frame,
            |b, f| b.iter(|| AgentMessage::decode_bytes(black_box(f)).expect("decode")),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = frames
}
criterion_main!(benches);
