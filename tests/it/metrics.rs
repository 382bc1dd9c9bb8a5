//! The relay's per-tunnel metrics after real traffic through a real relay
//! and real agents, read with a Prometheus text parser; and the Grafana
//! dashboard in `deploy/`, whose every query must name a metric the relay
//! exports.

use std::collections::BTreeSet;

use prometheus_parse::{Sample, Scrape, Value};

use crate::support::*;
use hooktunnel_protocol::Mode;
use hooktunnel_relay::RelayConfig;

/// What `/_hooktunnel/metrics` says after a known mix: on a proxy tunnel
/// 3×200, 1×404, 2×503 and one body over the relay's limit (413, refused);
/// on an ack-mode tunnel 2 accepted (queued). Returns the parsed scrape and
/// the two tunnel names.
async fn scrape_after_traffic() -> (Scrape, String, String) {
    let relay = Relay::start(RelayConfig {
        max_body_bytes: 1024,
        ..RelayConfig::default()
    })
    .await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let proxy = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    let ack_home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), ack_home.path());
    s.mode = Mode::Ack;
    let ack = Agent::start(s).await;

    let c = client();
    for (path, body, want) in [
        ("/ok", "x".repeat(10), 200),
        ("/ok", "x".repeat(10), 200),
        ("/ok", "x".repeat(10), 200),
        ("/status/404", String::new(), 404),
        ("/status/503", String::new(), 503),
        ("/status/503", String::new(), 503),
        ("/big", "x".repeat(2048), 413),
    ] {
        let url = format!("{}{path}", proxy.public_url);
        assert_eq!(
            send(&c, "POST", &url, &[], body).await.status,
            want,
            "{path}"
        );
    }
    for _ in 0..2 {
        let url = format!("{}/ok", ack.public_url);
        assert_eq!(send(&c, "POST", &url, &[], "a").await.status, 200);
    }

    let auth = format!("Bearer {TEST_METRICS_TOKEN}");
    let answer = send(
        &c,
        "GET",
        &format!("{}/_hooktunnel/metrics", relay.url),
        &[("authorization", auth.as_bytes())],
        "",
    )
    .await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let name = |url: &str| {
        url.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    (scrape, name(&proxy.public_url), name(&ack.public_url))
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

fn number(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

#[tokio::test]
async fn per_tunnel_counters_and_latency_histogram_after_real_traffic() {
    let (scrape, proxy, ack) = scrape_after_traffic().await;
    let requests = "hooktunnel_tunnel_requests_total";
    let p = proxy.as_str();
    assert_eq!(
        number(&scrape, requests, &[("tunnel", p), ("class", "2xx")]),
        3.0
    );
    assert_eq!(
        number(&scrape, requests, &[("tunnel", p), ("class", "4xx")]),
        2.0
    );
    assert_eq!(
        number(&scrape, requests, &[("tunnel", p), ("class", "5xx")]),
        2.0
    );
    assert!(find(&scrape, requests, &[("tunnel", p), ("class", "3xx")]).is_none());
    assert_eq!(
        number(&scrape, "hooktunnel_tunnel_refused_total", &[("tunnel", p)]),
        1.0
    );
    assert!(find(&scrape, "hooktunnel_tunnel_queued_total", &[("tunnel", p)]).is_none());
    let a = ack.as_str();
    assert_eq!(
        number(&scrape, requests, &[("tunnel", a), ("class", "2xx")]),
        2.0
    );
    assert_eq!(
        number(&scrape, "hooktunnel_tunnel_queued_total", &[("tunnel", a)]),
        2.0
    );

    let histogram = "hooktunnel_tunnel_request_duration_seconds";
    let Some(Value::Histogram(buckets)) =
        find(&scrape, histogram, &[("tunnel", p)]).map(|s| &s.value)
    else {
        panic!("no histogram for {p}")
    };
    let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(inf.count, 7.0);
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative buckets: {buckets:?}"
    );
    assert_eq!(
        number(&scrape, &format!("{histogram}_count"), &[("tunnel", p)]),
        7.0
    );
    assert_eq!(
        number(&scrape, &format!("{histogram}_count"), &[("tunnel", a)]),
        2.0
    );
    // Bounded cardinality: tunnel names only, never a path.
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.labels.get("path").is_none() && !format!("{:?}", s.labels).contains("/ok")),
    );
}

/// Metric names in a PromQL expression (`hooktunnel_…` identifiers).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("hooktunnel_"))
        .map(str::to_owned)
        .collect()
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_the_relay_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 4, "{found:?}");

    let (scrape, _, _) = scrape_after_traffic().await;
    let mut exported: BTreeSet<String> = BTreeSet::new();
    for s in &scrape.samples {
        exported.insert(s.metric.clone());
        if matches!(s.value, Value::Histogram(_)) {
            exported.insert(format!("{}_bucket", s.metric));
        }
    }
    let mut used = BTreeSet::new();
    for expr in &found {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr} names no hooktunnel metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{expr}: {name} is not exported; the relay has {exported:?}"
            );
            used.insert(name);
        }
    }
    for name in [
        "hooktunnel_tunnel_requests_total",
        "hooktunnel_tunnel_refused_total",
        "hooktunnel_tunnel_queued_total",
        "hooktunnel_tunnel_request_duration_seconds_bucket",
    ] {
        assert!(used.contains(name), "the dashboard does not show {name}");
    }
}
