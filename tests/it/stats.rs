//! `hooktunnel stats` end to end: a real relay, agent and a local app whose
//! latency and status the test controls, then `stats --json` from the real
//! binary against the same history.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::*;
use hooktunnel::config::Paths;
use hooktunnel::store::Store;
use hooktunnel::verify::{self, Provider, SecretSpec};
use hooktunnel_protocol::Mode;
use hooktunnel_relay::RelayConfig;

const STRIPE_SECRET: &str = "whsec_stats_test";
const GITHUB_SECRET: &str = "gh_stats_test";

/// A local app answering `?status=NNN` after `?ms=N` milliseconds; with
/// `?fail_first=1` it answers 503 the first time it sees that exact target.
struct SlowApp {
    port: u16,
    cancel: CancellationToken,
}

impl SlowApp {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let failed_once = Arc::new(Mutex::new(HashSet::new()));
        let app = axum::Router::new().fallback(move |req: Request| {
            let failed_once = failed_once.clone();
            async move {
                let query = req.uri().query().unwrap_or_default().to_owned();
                let param = |name: &str| {
                    query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|v| v.parse::<u64>().ok())
                };
                if let Some(ms) = param("ms") {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let target = req.uri().to_string();
                let first_time =
                    param("fail_first") == Some(1) && failed_once.lock().unwrap().insert(target);
                let status = if first_time {
                    503
                } else {
                    param("status").unwrap_or(200) as u16
                };
                Response::builder()
                    .status(status)
                    .body(axum::body::Body::from("ok"))
                    .unwrap()
            }
        });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self { port, cancel }
    }
}

impl Drop for SlowApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn now() -> u64 {
    hooktunnel::clock::now_secs()
}

fn stripe_headers(kind: &str, secret: &str) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let body = format!(r#"{{"id":"evt_1","object":"event","type":"{kind}"}}"#).into_bytes();
    let mut headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
    for h in verify::sign(Provider::Stripe, secret, &body, now(), None, None).unwrap() {
        headers.push((h.name, h.value));
    }
    (headers, body)
}

async fn post(
    agent: &mut Agent,
    home: &std::path::Path,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: Vec<u8>,
) -> ulid::Ulid {
    let refs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    capture(agent, home, "POST", path, &refs, body).await.id
}

/// Nearest-rank percentile of `values` (ms), what an HDR histogram reports to within its precision.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values[rank - 1]
}

fn row<'a>(report: &'a Value, section: &str, key: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["by"] == section)
        .unwrap_or_else(|| panic!("no section {section}"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key} in {section}: {report:#}"))
}

fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap();
    // HDR precision (1%) plus the 0.1 ms rounding of the output.
    assert!(
        (got - want).abs() <= want * 0.01 + 0.1,
        "got {got} ms, want {want} ms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_json_counts_a_known_mix_exactly() {
    let app = SlowApp::start().await;
    // Bodies over 1 KiB are refused by the relay (413) and noted to the agent.
    let relay = Relay::start(RelayConfig {
        max_body_bytes: 1024,
        ..RelayConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let agent_settings = |mode: Mode| {
        let mut s = settings(Some(&relay.url), &app.port.to_string(), home.path());
        s.timeout = Duration::from_millis(800);
        s.verify = vec![
            SecretSpec::new(Provider::Stripe, STRIPE_SECRET),
            SecretSpec::new(Provider::GitHub, GITHUB_SECRET),
        ];
        s.mode = mode;
        s
    };
    let mut agent = Agent::start(agent_settings(Mode::Proxy)).await;
    let home_path = home.path();

    // 6 paid invoices on /orders/<n>, 20-60 ms, validly signed.
    for i in 0..6u64 {
        let (h, b) = stripe_headers("invoice.paid", STRIPE_SECRET);
        post(
            &mut agent,
            home_path,
            &format!("/orders/{}?ms={}", 100 + i, 20 + 8 * i),
            &h,
            b,
        )
        .await;
    }
    // 2 failed charges the app answers 503, signed with the wrong secret.
    for i in 0..2u64 {
        let (h, b) = stripe_headers("charge.failed", "whsec_wrong");
        post(
            &mut agent,
            home_path,
            &format!("/orders/{}?ms=5&status=503", 200 + i),
            &h,
            b,
        )
        .await;
    }
    // 3 GitHub pushes (unsigned: no provider), 1 slow enough to time out.
    let push = [("x-github-event".to_owned(), b"push".to_vec())];
    for ms in [10, 15] {
        post(
            &mut agent,
            home_path,
            &format!("/github?ms={ms}"),
            &push,
            b"{}".to_vec(),
        )
        .await;
    }
    let slow = post(
        &mut agent,
        home_path,
        "/github?ms=1500",
        &push,
        b"{}".to_vec(),
    )
    .await;
    // A 404 with no event.
    let missing = post(
        &mut agent,
        home_path,
        "/nothing-here?status=404",
        &[],
        Vec::new(),
    )
    .await;

    // Two replays: one to the app, one to a port nobody listens on.
    let dead = DeadPort::new();
    let dead_port = dead.port.to_string();
    let run = hooktunnel_run(home_path, &["replay", &missing.to_string()]).await;
    assert!(run.ok, "{run:?}");
    let run = hooktunnel_run(
        home_path,
        &["replay", &slow.to_string(), "--to", &dead_port],
    )
    .await;
    assert!(!run.ok, "replay to a dead port fails: {run:?}");

    let run = hooktunnel_run(home_path, &["stats", "--json", "--since", "10m"]).await;
    assert!(run.ok, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let total = &report["total"];
    assert_eq!(total["count"], 14, "{report:#}");
    // Failures: 2 app 503s, 1 timeout, 1 unreachable replay.
    assert_eq!(total["ok"], 10);
    assert_eq!(total["errors"]["app_5xx"], 2);
    assert_eq!(total["errors"]["timeout"], 1);
    assert_eq!(total["errors"]["unreachable"], 1);
    // 2 wrongly signed, and the 4 unsigned live requests: with secrets
    // configured, a missing signature is a failed check (issue 13).
    assert_eq!(total["errors"]["signature_invalid"], 6);
    assert_eq!(total["replays"], 2);
    assert_eq!(total["status"]["2xx"], 8);
    assert_eq!(total["status"]["4xx"], 2);
    assert_eq!(total["status"]["5xx"], 4);
    assert_eq!(
        total["spark"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        14
    );

    let orders = row(&report, "path", "POST /orders/:n");
    assert_eq!(orders["count"], 8);
    assert_eq!(orders["ok"], 6);
    assert!((orders["success_rate"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    let stripe = row(&report, "provider", "stripe");
    assert_eq!(stripe["count"], 8);
    assert_eq!(stripe["errors"]["signature_invalid"], 2);
    assert_eq!(row(&report, "event", "invoice.paid")["count"], 6);
    assert_eq!(
        row(&report, "event", "charge.failed")["errors"]["app_5xx"],
        2
    );
    let push_row = row(&report, "event", "push");
    assert_eq!(
        push_row["count"], 4,
        "3 pushes and the replay of the slow one"
    );
    assert_eq!(push_row["errors"]["timeout"], 1);
    assert_eq!(row(&report, "path", "POST /nothing-here")["replays"], 1);

    // Percentiles agree with the stored durations to within the histogram's precision.
    let store = Store::open(&Paths::at(home_path).db()).unwrap();
    let mut invoice_ms: Vec<f64> = store
        .list(100, 0)
        .unwrap()
        .iter()
        .filter(|e| e.path.starts_with("/orders/") && e.status == Some(200))
        .map(|e| e.duration_ms)
        .collect();
    assert_eq!(invoice_ms.len(), 6);
    let paid = row(&report, "event", "invoice.paid");
    for (q, key) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        assert_close(&paid["latency_ms"][key], percentile(&mut invoice_ms, q));
    }
    // The app slept 20..60 ms: the recorded latency reflects it.
    assert!(
        paid["latency_ms"]["p50"].as_f64().unwrap() >= 36.0,
        "{paid:#}"
    );
    assert!(
        paid["latency_ms"]["p99"].as_f64().unwrap() >= 60.0,
        "{paid:#}"
    );

    // Filters narrow the scan; --by picks one section.
    let run = hooktunnel_run(
        home_path,
        &[
            "stats", "--json", "--since", "10m", "--status", "5xx", "--by", "provider",
        ],
    )
    .await;
    let narrowed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(narrowed["total"]["count"], 4);
    assert_eq!(narrowed["sections"].as_array().unwrap().len(), 1);

    // The table names every section and path pattern.
    let run = hooktunnel_run(home_path, &["stats", "--since", "10m"]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout
            .starts_with("14 requests in the last 10m · 71.4% ok"),
        "{}",
        run.stdout
    );
    for needle in [
        "PATH",
        "PROVIDER",
        "EVENT",
        "POST /orders/:n",
        "invoice.paid",
        "timeout 1",
        "sig invalid 2",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle} missing:\n{}",
            run.stdout
        );
    }
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when not a terminal"
    );
    assert!(!run.stdout.contains("retried"), "{}", run.stdout);
    assert!(!run.stdout.contains("relay refused"), "{}", run.stdout);

    // Three bodies over the relay's limit: refused there, never forwarded.
    for _ in 0..3 {
        let answer = send(
            &client(),
            "POST",
            &format!("{}/orders/999", agent.public_url),
            &[],
            vec![b'x'; 2048],
        )
        .await;
        assert_eq!(answer.status, 413);
    }
    // The relay notes refusals once a second; the agent stores them.
    bounded("the refusals in stats", async {
        loop {
            let run = hooktunnel_run(home_path, &["stats", "--json", "--since", "10m"]).await;
            assert!(run.ok, "{run:?}");
            let report: Value = serde_json::from_str(&run.stdout).unwrap();
            if report["total"]["errors"]["relay_refused"] == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // The same tunnel again in ack mode: durable deliveries, retried
    // against a failing app. The app fails /flaky once, then answers 200.
    agent.stop().await;
    let mut agent = Agent::start(agent_settings(Mode::Ack)).await;
    let flaky = post(
        &mut agent,
        home_path,
        "/flaky?fail_first=1",
        &[],
        b"{}".to_vec(),
    )
    .await;
    let stored = wait_stored(home_path, &flaky).await;
    assert_eq!((stored.attempts, stored.status()), (2, Some(200)));
    let run = hooktunnel_run(home_path, &["stats", "--json", "--since", "10m"]).await;
    assert!(run.ok, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let total = &report["total"];
    assert_eq!(total["count"], 15, "refusals are not exchanges: {report:#}");
    assert_eq!(total["ok"], 11);
    assert_eq!(total["retried"], 1);
    assert_eq!(total["errors"]["relay_refused"], 3);
    let flaky_row = row(&report, "path", "POST /flaky");
    assert_eq!(
        (&flaky_row["count"], &flaky_row["retried"], &flaky_row["ok"]),
        (&Value::from(1), &Value::from(1), &Value::from(1))
    );
    let orders = row(&report, "path", "POST /orders/:n");
    assert_eq!(orders["count"], 8, "the refused ones are not exchanges");
    assert_eq!(orders["errors"]["relay_refused"], 3);
    assert_eq!(orders["retried"], 0);
    // Filters apply to refusals: they were 413s.
    let run = hooktunnel_run(
        home_path,
        &["stats", "--json", "--since", "10m", "--status", "413"],
    )
    .await;
    let only_413: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(only_413["total"]["count"], 0);
    assert_eq!(only_413["total"]["errors"]["relay_refused"], 3);
    let run = hooktunnel_run(home_path, &["stats", "--since", "10m"]).await;
    assert!(run.stdout.contains("retried 1"), "{}", run.stdout);
    assert!(run.stdout.contains("relay refused 3"), "{}", run.stdout);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_on_an_empty_window_says_so() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(home.path(), &["stats"]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout.starts_with("No requests in the last 1h."),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(home.path(), &["stats", "--since", "ten"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("bad since"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_rejects_a_bad_alert_rule_before_starting() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(
        home.path(),
        &["listen", "3000", "--no-tui", "--alert", "p42>1s/5m"],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("unknown metric \"p42\""),
        "{}",
        run.stderr
    );
}
