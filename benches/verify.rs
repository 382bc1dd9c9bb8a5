//! Webhook signature verification on a 4 KiB body.
//!
//! `cargo bench --bench verify`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hooktunnel::exchange::Header;
use hooktunnel::verify::{self, Provider};

const SECRET: &str = "whsec_bench_secret_0123456789abcdef";
const BODY_BYTES: usize = 4096;

fn verification(c: &mut Criterion) {
    let body = vec![b'x'; BODY_BYTES];
    let now = 1_732_752_000;
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(BODY_BYTES as u64));
    for provider in [Provider::GitHub, Provider::Stripe] {
        let mut headers = vec![
            Header::new("host", "127.0.0.1:8080"),
            Header::new("content-type", "application/json"),
            Header::new("user-agent", "bench"),
        ];
        headers.extend(verify::sign(provider, SECRET, &body, now, None, None).expect("sign"));
        verify::verify(provider, SECRET, &headers, &body, None, now).expect("signature verifies");
        group.bench_function(BenchmarkId::new(provider.name(), "4KiB"), |b| {
            b.iter(|| {
                verify::verify(
                    provider,
                    black_box(SECRET),
                    black_box(&headers),
                    black_box(&body),
                    None,
                    now,
                )
                .expect("verifies")
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = verification
}
criterion_main!(benches);
