//! Traffic rules (issue 17) end to end: a real relay enforcing edge rules,
//! a real agent applying routes, header edits, mocks and faults, real local
//! apps on loopback.

use std::time::{Duration, Instant};

use hooktunnel::agent::tunnel::ListenSettings;
use hooktunnel::config::Paths;
use hooktunnel::event::AgentEvent;
use hooktunnel::exchange::Header;
use hooktunnel::store::Store;
use hooktunnel::verify::{self, Provider, SecretSpec};
use hooktunnel_relay::RelayConfig;

use crate::support::*;

const ERROR: &str = "x-hooktunnel-error";

fn text(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn basic(user_pass: &str) -> Vec<u8> {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
    .into_bytes()
}

fn stored(home: &std::path::Path) -> u64 {
    Store::open(&Paths::at(home).db())
        .map(|s| s.count().unwrap_or(0))
        .unwrap_or(0)
}

async fn post(url: &str, headers: &[(&str, &[u8])], body: &'static [u8]) -> Answer {
    send(&client(), "POST", url, headers, body).await
}

/// Waits for the agent's "relay refused …" notice.
async fn refusal_notice(agent: &mut Agent) -> String {
    loop {
        match bounded("a refusal notice", agent.running.events.recv()).await {
            Some(AgentEvent::Notice(n)) if n.starts_with("relay refused") => return n,
            Some(_) => continue,
            None => panic!("agent stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_is_enforced_at_the_relay_and_refusals_never_reach_the_app() {
    let (app, relay, mut agent, home) = setup_with(|s| {
        s.rules.basic_auth = vec!["ci:s3cret".into(), "ops:other".into()];
    })
    .await;
    let url = format!("{}/hook", agent.public_url);
    for headers in [
        vec![],
        vec![("authorization", basic("ci:wrong"))],
        vec![("authorization", basic("nobody:s3cret"))],
        vec![("authorization", b"Bearer s3cret".to_vec())],
    ] {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let answer = post(&url, &pairs, b"{}").await;
        assert_eq!(answer.status, 401);
        assert_eq!(text(&answer.header(ERROR)), ["basic_auth"]);
        let challenge = text(&answer.header("www-authenticate"));
        assert!(challenge[0].starts_with("Basic realm="), "{challenge:?}");
    }
    assert!(app.seen().is_empty(), "a refused request reached the app");
    assert_eq!(
        stored(home.path()),
        0,
        "a refused request reached the history"
    );
    let note = refusal_notice(&mut agent).await;
    assert!(note.contains("(401 basic auth)"), "{note}");
    assert_eq!(relay.metric("hooktunnel_edge_refused_total").await, 4);

    let ok = post(&url, &[("authorization", &basic("ops:other"))], b"{}").await;
    assert_eq!(ok.status, 200);
    assert_eq!(app.seen().len(), 1);
    // The app still sees the credentials the sender sent.
    assert_eq!(app.seen()[0].header("authorization"), [basic("ops:other")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_rules_judge_the_address_the_relay_trusts() {
    // Loopback is not in the allowlist; a spoofed X-Forwarded-For must not help.
    let (app, _relay, agent, home) = setup_with(|s| {
        s.rules.allow_ip = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
    })
    .await;
    let url = format!("{}/hook", agent.public_url);
    let refused = post(&url, &[], b"x").await;
    assert_eq!(refused.status, 403);
    assert_eq!(text(&refused.header(ERROR)), ["ip_refused"]);
    let spoofed = post(&url, &[("x-forwarded-for", b"10.1.2.3")], b"x").await;
    assert_eq!(
        spoofed.status, 403,
        "X-Forwarded-For trusted without --trust-proxy"
    );
    assert!(app.seen().is_empty());
    assert_eq!(stored(home.path()), 0);

    // Behind a trusted proxy, the forwarded address is the client's.
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig {
        trust_proxy: true,
        ..RelayConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.rules.allow_ip = vec!["10.0.0.0/8".into()];
    s.rules.deny_ip = vec!["10.9.0.0/16".into()];
    let agent = Agent::start(s).await;
    let url = format!("{}/hook", agent.public_url);
    assert_eq!(
        post(&url, &[("x-forwarded-for", b"10.1.2.3")], b"x")
            .await
            .status,
        200
    );
    assert_eq!(
        post(&url, &[("x-forwarded-for", b"10.9.2.3")], b"x")
            .await
            .status,
        403
    );
    assert_eq!(post(&url, &[], b"x").await.status, 403);
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn required_headers_are_checked_at_the_relay() {
    let (app, _relay, agent, _home) = setup_with(|s| {
        s.rules.require_header = vec!["X-Token: abc123".into()];
    })
    .await;
    let url = format!("{}/hook", agent.public_url);
    let missing = post(&url, &[], b"x").await;
    assert_eq!(missing.status, 403);
    assert_eq!(text(&missing.header(ERROR)), ["header_required"]);
    assert_eq!(
        post(&url, &[("x-token", b"abc124")], b"x").await.status,
        403
    );
    assert!(app.seen().is_empty());
    assert_eq!(
        post(&url, &[("x-token", b"abc123")], b"x").await.status,
        200
    );
    assert_eq!(app.seen().len(), 1);
}

const STRIPE_SECRET: &str = "whsec_edge_7f3a";

#[tokio::test(flavor = "multi_thread")]
async fn edge_verification_refuses_forged_stripe_events_and_passes_good_ones() {
    let (app, _relay, agent, home) = setup_with(|s| {
        s.verify = vec![SecretSpec::new(Provider::Stripe, STRIPE_SECRET)];
        s.rules.verify_at_edge = Some("stripe".into());
    })
    .await;
    let url = format!("{}/stripe", agent.public_url);
    let body: &'static [u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let now = hooktunnel::clock::now_ms() / 1000;
    let signed = verify::sign(Provider::Stripe, STRIPE_SECRET, body, now, None, None).unwrap();
    let pairs: Vec<(&str, &[u8])> = signed
        .iter()
        .map(|h: &Header| (h.name.as_str(), h.value.as_slice()))
        .collect();

    let forged = post(&url, &pairs, br#"{"id":"evt_1","type":"charge.refunded"}"#).await;
    assert_eq!(forged.status, 401);
    assert_eq!(text(&forged.header(ERROR)), ["signature_refused"]);
    let why = String::from_utf8_lossy(&forged.body);
    assert!(why.contains("signature does not match the body"), "{why}");
    let unsigned = post(&url, &[], body).await;
    assert_eq!(unsigned.status, 401);
    assert!(String::from_utf8_lossy(&unsigned.body).contains("no stripe-signature header"));
    let wrong_key = verify::sign(Provider::Stripe, "whsec_other", body, now, None, None).unwrap();
    let wrong: Vec<(&str, &[u8])> = wrong_key
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    assert_eq!(post(&url, &wrong, body).await.status, 401);
    assert!(app.seen().is_empty(), "a forged event reached the app");
    assert_eq!(stored(home.path()), 0);

    let good = post(&url, &pairs, body).await;
    assert_eq!(good.status, 200);
    assert_eq!(app.seen().len(), 1);
    assert_eq!(app.seen()[0].body, body);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_send_paths_to_different_apps_and_record_the_target() {
    let api = LocalApp::start().await;
    let api_port = api.port();
    let (app, _relay, mut agent, home) = setup_with(|s| {
        s.rules.route = vec![format!("/api/*={api_port}")];
    })
    .await;
    let to_api = capture(&mut agent, home.path(), "POST", "/api/orders?x=1", &[], "a").await;
    let to_default = capture(&mut agent, home.path(), "POST", "/hooks", &[], "b").await;
    assert_eq!(api.seen().len(), 1);
    assert_eq!(api.seen()[0].path_and_query, "/api/orders?x=1");
    assert_eq!(app.seen().len(), 1);
    assert_eq!(app.seen()[0].path_and_query, "/hooks");
    assert_eq!(to_api.target, format!("http://localhost:{api_port}"));
    assert_eq!(
        to_default.target,
        format!("http://localhost:{}", app.port())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn header_edits_reach_the_app_and_the_history_keeps_what_was_sent() {
    let (app, _relay, mut agent, home) = setup_with(|s| {
        s.rules.add_header = vec!["X-Env: dev".into(), "/api/* X-Api: 1".into()];
        s.rules.remove_header = vec!["Cookie".into()];
        s.rules.add_response_header = vec!["Cache-Control: no-store".into()];
        s.rules.remove_response_header = vec!["set-cookie".into()];
    })
    .await;
    let stored = capture(
        &mut agent,
        home.path(),
        "POST",
        "/h",
        &[("cookie", b"session=1")],
        "x",
    )
    .await;
    let seen = &app.seen()[0];
    assert_eq!(seen.header("x-env"), [b"dev".to_vec()]);
    assert!(seen.header("cookie").is_empty());
    let has = |name: &str| stored.request_headers.iter().any(|h| h.name == name);
    assert!(
        has("cookie") && !has("x-env"),
        "{:?}",
        stored.request_headers
    );
    assert!(
        seen.header("x-api").is_empty(),
        "a /api/* edit applied to /h"
    );
    // The answer: the app's set-cookie headers removed, one added.
    let response = stored.response.expect("an answer");
    let names: Vec<&str> = response.headers.iter().map(|h| h.name.as_str()).collect();
    assert!(
        !names.contains(&"set-cookie") && names.contains(&"cache-control"),
        "{names:?}"
    );
    let answer = post(&format!("{}/api/x", agent.public_url), &[], b"y").await;
    assert_eq!(text(&answer.header("cache-control")), ["no-store"]);
    assert!(answer.header("set-cookie").is_empty());
    assert_eq!(app.seen()[1].header("x-api"), [b"1".to_vec()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mocks_answer_always_or_when_the_app_is_down() {
    let (app, _relay, mut agent, home) = setup_with(|s| {
        s.rules.mock = vec![r#"/health always:200:{"ok":true}"#.into()];
    })
    .await;
    let url = format!("{}/health", agent.public_url);
    let answer = send(&client(), "GET", &url, &[], "").await;
    assert_eq!(
        (answer.status, &answer.body[..]),
        (200, &br#"{"ok":true}"#[..])
    );
    assert_eq!(text(&answer.header("content-type")), ["application/json"]);
    assert_eq!(text(&answer.header("x-hooktunnel-injected")), ["mock"]);
    assert!(
        app.seen().is_empty(),
        "an always-mock must not reach the app"
    );
    let summary = agent.next_exchange().await;
    let e = wait_stored(home.path(), &summary.id).await;
    assert_eq!(e.status(), Some(200));

    // The app is down: the mock answers instead of the 502.
    let dead = DeadPort::new();
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &dead.port.to_string(), home.path());
    s.rules.mock = vec!["when-app-down:503:down for maintenance".into()];
    let mut agent = Agent::start(s).await;
    let answer = post(&format!("{}/hook", agent.public_url), &[], b"x").await;
    assert_eq!(answer.status, 503);
    assert_eq!(&answer.body[..], b"down for maintenance");
    let summary = agent.next_exchange().await;
    let e = wait_stored(home.path(), &summary.id).await;
    let error = e.error.unwrap_or_default();
    assert!(
        error.contains("answered by --mock when-app-down"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_land_within_tolerance_and_are_marked() {
    let (app, _relay, agent, home) = setup_with(|s| {
        s.rules.inject = vec!["status=503:30%".into()];
        s.inject_seed = Some(17);
    })
    .await;
    let url = format!("{}/hook", agent.public_url);
    let n = 200;
    let mut injected = 0;
    for _ in 0..n {
        let answer = post(&url, &[], b"x").await;
        if answer.status == 503 {
            assert_eq!(text(&answer.header("x-hooktunnel-injected")), ["status"]);
            assert_eq!(text(&answer.header(ERROR)), ["injected"]);
            injected += 1;
        } else {
            assert_eq!(answer.status, 200);
        }
    }
    // 30% of 200 = 60, sd ≈ 6.5: ±25 is about four standard deviations.
    assert!((35..=85).contains(&injected), "{injected} of {n} injected");
    assert_eq!(
        app.seen().len(),
        n - injected,
        "injected requests reached the app"
    );
    drop(agent);
    // Every request is in the history, the injected ones marked.
    let store = Store::open(&Paths::at(home.path()).db()).unwrap();
    bounded("all exchanges stored", async {
        while store.count().unwrap() < n as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_delays_and_drops() {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig {
        response_timeout: Duration::from_secs(1),
        ..RelayConfig::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.rules.inject = vec!["/slowed delay=300ms".into(), "/gone drop=100%".into()];
    let mut agent = Agent::start(s).await;
    let started = Instant::now();
    let slowed = post(&format!("{}/slowed", agent.public_url), &[], b"x").await;
    assert_eq!(slowed.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let gone = post(&format!("{}/gone", agent.public_url), &[], b"x").await;
    assert_eq!(
        gone.status, 504,
        "a dropped request gets no answer from the agent"
    );
    assert_eq!(text(&gone.header(ERROR)), ["agent_timeout"]);
    assert_eq!(app.seen().len(), 1, "a dropped request reached the app");
    let _ = agent.next_exchange().await;
    let summary = agent.next_exchange().await;
    let e = wait_stored(home.path(), &summary.id).await;
    assert!(e.error.unwrap_or_default().starts_with("injected: dropped"));
}

async fn start_error(adjust: impl FnOnce(&mut ListenSettings)) -> String {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(
        Some("http://127.0.0.1:9"),
        &app.port().to_string(),
        home.path(),
    );
    adjust(&mut s);
    let cancel = tokio_util::sync::CancellationToken::new();
    match bounded(
        "a refused start",
        hooktunnel::commands::listen::start(s, cancel),
    )
    .await
    {
        Ok(_) => panic!("started with bad rules"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_rules_stop_the_start_with_precise_messages() {
    let e = start_error(|s| s.rules.allow_ip = vec!["10.0.0.0/33".into()]).await;
    assert!(
        e.contains("'10.0.0.0/33' is not an IP address or CIDR"),
        "{e}"
    );
    let e =
        start_error(|s| s.rules.route = vec!["/api/*=3001".into(), "/api/v1/*=3002".into()]).await;
    assert!(
        e.contains("route '/api/v1/*' can never match: '/api/*' comes first"),
        "{e}"
    );
    let e = start_error(|s| s.rules.route = vec!["/a=3001".into(), "/a=3002".into()]).await;
    assert!(e.contains("route '/a' is given twice"), "{e}");
    let e = start_error(|s| s.rules.verify_at_edge = Some("paypal".into())).await;
    assert!(e.contains("cannot verify 'paypal' signatures"), "{e}");
    let e = start_error(|s| s.rules.verify_at_edge = Some("stripe".into())).await;
    assert!(
        e.contains("--verify-at-edge stripe needs the stripe signing secret"),
        "{e}"
    );
    let e = start_error(|s| s.rules.inject = vec!["status=503:150%".into()]).await;
    assert!(
        e.contains("'150%' must be more than 0% and at most 100%"),
        "{e}"
    );
}

#[tokio::test]
async fn the_binary_reports_rule_errors_from_flags_and_the_config_file() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(
        home.path(),
        &["listen", "3000", "--no-tui", "--deny-ip", "not-an-ip"],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("'not-an-ip' is not an IP address or CIDR"),
        "{}",
        run.stderr
    );

    std::fs::write(
        home.path().join("config.toml"),
        "[[tunnel]]\nname = \"shop\"\nmock = [\"sometimes:200\"]\n",
    )
    .unwrap();
    let run = hooktunnel_run(
        home.path(),
        &["listen", "3000", "--no-tui", "--name", "shop"],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("mock 'sometimes:200': mode 'sometimes'"),
        "{}",
        run.stderr
    );
}

/// A relay from before rules accepts `hello` and ignores `rules`; the agent
/// must refuse to serve rather than leave the URL open.
#[tokio::test]
async fn an_agent_with_rules_refuses_a_relay_that_does_not_enforce_them() {
    let e = start_against_an_old_relay(|s| s.rules.basic_auth = vec!["ci:pw".into()]).await;
    assert!(e.contains("does not enforce traffic rules"), "{e}");
}

/// Requests for a claimed tunnel whose agent is away are queued; they pass
/// the same edge rules, also after the relay restarts (rules are stored
/// without the signing secret, so signed tunnels refuse until the agent is back).
#[tokio::test(flavor = "multi_thread")]
async fn queued_requests_pass_the_same_rules_across_a_relay_restart() {
    let data = tempfile::tempdir().unwrap();
    let relay = Relay::start(RelayConfig {
        data_dir: Some(data.path().to_path_buf()),
        ..RelayConfig::default()
    })
    .await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.rules.basic_auth = vec!["ci:pw".into()];
    s.verify = vec![SecretSpec::new(Provider::GitHub, "gh-secret")];
    s.rules.verify_at_edge = Some("github".into());
    let agent = Agent::start(s).await;
    let url = format!("{}/hook", agent.public_url);
    agent.stop().await;
    let body: &'static [u8] = b"{\"zen\":\"x\"}";
    let signed = verify::sign(Provider::GitHub, "gh-secret", body, 0, None, None).unwrap();
    let mut headers: Vec<(&str, &[u8])> = signed
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    // Away, before the restart: refused without credentials, queued with them.
    assert_eq!(post(&url, &headers, body).await.status, 401);
    let auth = basic("ci:pw");
    let mut with_auth = headers.clone();
    with_auth.push(("authorization", &auth));
    assert_eq!(post(&url, &with_auth, body).await.status, 202);
    let addr = relay.addr;
    relay.shutdown().await;
    let relay = Relay::start_at(
        addr,
        RelayConfig {
            data_dir: Some(data.path().to_path_buf()),
            ..RelayConfig::default()
        },
    )
    .await;

    let no_auth = post(&url, &headers, body).await;
    assert_eq!(no_auth.status, 401);
    assert_eq!(text(&no_auth.header(ERROR)), ["basic_auth"]);
    headers.push(("authorization", &auth));
    let blind = post(&url, &headers, body).await;
    assert_eq!(blind.status, 401);
    assert!(
        String::from_utf8_lossy(&blind.body).contains("until the tunnel's agent reconnects"),
        "{:?}",
        blind.body
    );
    assert_eq!(relay.metric("hooktunnel_queued_total").await, 0);
}

/// `--mock when-offline:…`: while the agent is away the relay answers the
/// mock instead of queueing, so nothing is delivered later.
#[tokio::test(flavor = "multi_thread")]
async fn a_when_offline_mock_is_answered_by_the_relay_instead_of_queueing() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.rules.mock = vec!["when-offline:503:back soon".into()];
    let agent = Agent::start(s.clone()).await;
    let url = format!("{}/hook", agent.public_url);
    assert_eq!(post(&url, &[], b"live").await.status, 200);
    agent.stop().await;
    let answer = post(&url, &[], b"away").await;
    assert_eq!((answer.status, &answer.body[..]), (503, &b"back soon"[..]));
    assert_eq!(text(&answer.header(ERROR)), ["mocked"]);
    assert_eq!(relay.metric("hooktunnel_queued_total").await, 0);
    // Back online: nothing was queued, so the app gets nothing more.
    let agent = Agent::start(s).await;
    assert_eq!(post(&url, &[], b"again").await.status, 200);
    let bodies: Vec<Vec<u8>> = app.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, [b"live".to_vec(), b"again".to_vec()]);
    agent.stop().await;
}
