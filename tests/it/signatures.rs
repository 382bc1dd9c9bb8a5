//! Webhook signatures end to end: verdicts from `listen --verify`, `replay
//! --resign` turning stale events valid, and `trigger` sending freshly
//! signed samples. Signatures are checked at the current time with the
//! crate's own verify functions on what the local app received.

use serde_json::Value;

use crate::support::*;
use hooktunnel::clock::now_ms;
use hooktunnel::commands::trigger::samples;
use hooktunnel::config::Paths;
use hooktunnel::exchange::Header;
use hooktunnel::store::Store;
use hooktunnel::verify::{self, Provider, SecretSpec};
use hooktunnel_relay::RelayConfig;

const STRIPE_SECRET: &str = "whsec_test_3a9f2c";
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> u64 {
    now_ms() / 1000
}

/// What the app saw, as the crate's header type.
fn headers_of(seen: &Seen) -> Vec<Header> {
    seen.headers
        .iter()
        .map(|(n, v)| Header::new(n.clone(), v.clone()))
        .collect()
}

fn pairs(headers: &[Header]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_are_stored_and_shown() {
    let spec = SecretSpec::new(Provider::Stripe, STRIPE_SECRET);
    let (_app, _relay, mut agent, home) = setup_with(|s| s.verify = vec![spec]).await;
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let signed = verify::sign(Provider::Stripe, STRIPE_SECRET, body, now(), None, None).unwrap();
    let mut headers = vec![Header::new("content-type", "application/json")];
    headers.extend(signed);

    let good = capture(
        &mut agent,
        home.path(),
        "POST",
        "/stripe",
        &pairs(&headers),
        &body[..],
    )
    .await;
    let sig = good.signature.clone().expect("a verdict");
    assert_eq!(sig.provider, "stripe");
    assert!(sig.valid, "{sig:?}");

    let tampered = br#"{"id":"evt_1","type":"charge.refunded"}"#;
    let bad = capture(
        &mut agent,
        home.path(),
        "POST",
        "/stripe",
        &pairs(&headers),
        &tampered[..],
    )
    .await;
    let sig = bad.signature.clone().expect("a verdict");
    assert!(!sig.valid);
    assert!(
        sig.reason.as_deref().unwrap().contains("mismatch"),
        "{sig:?}"
    );

    let run = hooktunnel_run(home.path(), &["show", &good.id.to_string(), "--json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["signature"],
        serde_json::json!({"provider": "stripe", "valid": true, "reason": null})
    );
    let run = hooktunnel_run(home.path(), &["show", "last", "--json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["signature"]["valid"], false);
    assert!(
        v["signature"]["reason"]
            .as_str()
            .unwrap()
            .contains("signature mismatch")
    );

    // Human views.
    let run = hooktunnel_run(home.path(), &["show", &good.id.to_string()]).await;
    assert!(
        run.stdout.contains("signature: ✓ stripe (valid)"),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(home.path(), &["show", "last"]).await;
    assert!(
        run.stdout
            .contains("signature: ✗ stripe: signature mismatch"),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(home.path(), &["requests"]).await;
    assert!(run.stdout.contains("✓ stripe"), "{}", run.stdout);
    assert!(run.stdout.contains("✗ stripe"), "{}", run.stdout);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resign_makes_an_old_stripe_event_pass() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = br#"{"id":"evt_old","type":"invoice.paid"}"#;
    let old = now() - 3600;
    let mut headers = vec![Header::new("content-type", "application/json")];
    headers.extend(verify::sign(Provider::Stripe, STRIPE_SECRET, body, old, None, None).unwrap());
    capture(
        &mut agent,
        home.path(),
        "POST",
        "/stripe",
        &pairs(&headers),
        &body[..],
    )
    .await;
    let captured = headers_of(&app.seen()[0]);
    assert!(matches!(
        verify::verify(
            Provider::Stripe,
            STRIPE_SECRET,
            &captured,
            body,
            None,
            now()
        ),
        Err(verify::VerifyError::TooOld { .. })
    ));

    // A plain replay is still stale.
    let run = hooktunnel_run(home.path(), &["replay", "last"]).await;
    assert!(run.ok, "{run:?}");
    let plain = headers_of(app.seen().last().unwrap());
    assert!(verify::verify(Provider::Stripe, STRIPE_SECRET, &plain, body, None, now()).is_err());

    // --resign PROVIDER:SECRET signs afresh; the secret is never printed.
    let spec = format!("stripe:{STRIPE_SECRET}");
    let run = hooktunnel_run(home.path(), &["replay", "last", "--resign", &spec]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr
            .contains("re-signed for stripe with the secret from --resign"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(STRIPE_SECRET) && !run.stdout.contains(STRIPE_SECRET));
    let seen = app.seen().last().cloned().unwrap();
    assert_eq!(seen.body, body);
    verify::verify(
        Provider::Stripe,
        STRIPE_SECRET,
        &headers_of(&seen),
        body,
        None,
        now(),
    )
    .unwrap();

    // `--resign` alone: provider detected, secret from HOOKTUNNEL_VERIFY.
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("HOOKTUNNEL_VERIFY", format!("github:other,{spec}"))
            .args(["replay", "--resign", "last"]),
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr.contains("from HOOKTUNNEL_VERIFY"),
        "{}",
        run.stderr
    );
    let seen = app.seen().last().cloned().unwrap();
    verify::verify(
        Provider::Stripe,
        STRIPE_SECRET,
        &headers_of(&seen),
        body,
        None,
        now(),
    )
    .unwrap();

    // Nothing configured: a clear error, nothing sent.
    let before = app.seen().len();
    let run = hooktunnel_run(home.path(), &["replay", "last", "--resign"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no stripe secret configured"),
        "{}",
        run.stderr
    );
    assert_eq!(app.seen().len(), before);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resign_makes_an_old_standard_webhooks_event_pass() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;
    let old = now() - 7200;
    let mut headers = vec![Header::new("content-type", "application/json")];
    headers.extend(
        verify::sign(
            Provider::StandardWebhooks,
            SW_SECRET,
            body,
            old,
            Some("msg_old"),
            None,
        )
        .unwrap(),
    );
    capture(
        &mut agent,
        home.path(),
        "POST",
        "/svix",
        &pairs(&headers),
        &body[..],
    )
    .await;
    std::fs::write(Paths::at(home.path()).config_file(), {
        // Keep what listen wrote (name, key) and add the secret.
        let mut cfg =
            hooktunnel::config::ConfigFile::load(&Paths::at(home.path()).config_file()).unwrap();
        cfg.verify = vec![format!("svix:{SW_SECRET}")];
        toml::to_string(&cfg).unwrap()
    })
    .unwrap();

    let run = hooktunnel_run(home.path(), &["replay", "last", "--resign"]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr
            .contains("re-signed for standard-webhooks with the secret from `verify` in"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(SW_SECRET));
    let seen = headers_of(app.seen().last().unwrap());
    verify::verify(
        Provider::StandardWebhooks,
        SW_SECRET,
        &seen,
        body,
        None,
        now(),
    )
    .unwrap();
    assert_eq!(
        verify::standard_webhooks::message_id(&seen),
        Some("msg_old"),
        "the id is kept"
    );

    let run = hooktunnel_run(home.path(), &["replay", "last", "--resign", "--new-id"]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stderr.contains("(new message id)"), "{}", run.stderr);
    let seen = headers_of(app.seen().last().unwrap());
    verify::verify(
        Provider::StandardWebhooks,
        SW_SECRET,
        &seen,
        body,
        None,
        now(),
    )
    .unwrap();
    assert_ne!(
        verify::standard_webhooks::message_id(&seen),
        Some("msg_old")
    );
    agent.stop().await;
}

/// A secret each provider accepts.
fn secret_for(p: Provider) -> &'static str {
    match p {
        Provider::StandardWebhooks => SW_SECRET,
        Provider::Stripe => STRIPE_SECRET,
        _ => "s3cret",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn triggered_samples_verify() {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    for sample in samples::SAMPLES {
        let p = sample.provider;
        let sign = format!("{p}:{}", secret_for(p));
        let run = hooktunnel_run(
            home.path(),
            &["trigger", sample.name, "--to", &base, "--sign", &sign],
        )
        .await;
        assert!(run.ok, "{}: {run:?}", sample.name);
        assert!(
            run.stdout.contains(&format!("Sent {}", sample.name)),
            "{}",
            run.stdout
        );
        assert!(!run.stderr.contains(secret_for(p)));
        let seen = app.seen().last().cloned().unwrap();
        let url = format!("{base}{}", seen.path_and_query);
        verify::verify(
            p,
            secret_for(p),
            &headers_of(&seen),
            &seen.body,
            Some(&url),
            now(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
    }

    // No --sign and nothing configured: sent unsigned, and said so.
    let run = hooktunnel_run(home.path(), &["trigger", "github.push", "--to", &base]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr.contains("unsigned: no github secret"),
        "{}",
        run.stderr
    );
    let seen = app.seen().last().cloned().unwrap();
    assert!(seen.header("x-hub-signature-256").is_empty());
    assert_eq!(seen.header("x-github-event"), vec![b"push".to_vec()]);

    // A configured secret is used, and named by where it came from.
    std::fs::write(
        home.path().join("config.toml"),
        "verify = [\"github:from-config\"]\n",
    )
    .unwrap();
    let run = hooktunnel_run(home.path(), &["trigger", "push", "--to", &base, "--json"]).await;
    assert!(run.ok, "{run:?}");
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["event"], "github.push");
    assert_eq!(v["signed"], true);
    assert_eq!(v["status"], 200);
    let seen = app.seen().last().cloned().unwrap();
    verify::verify(
        Provider::GitHub,
        "from-config",
        &headers_of(&seen),
        &seen.body,
        None,
        now(),
    )
    .unwrap();

    // Mistakes are explained.
    let run = hooktunnel_run(
        home.path(),
        &[
            "trigger",
            "github.push",
            "--to",
            &base,
            "--sign",
            "stripe:x",
        ],
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("is a github event"), "{}", run.stderr);
    let run = hooktunnel_run(home.path(), &["trigger", "gitlab.push", "--to", &base]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("trigger --list"), "{}", run.stderr);
    let run = hooktunnel_run(home.path(), &["trigger", "github.push"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("--to PORT|URL"), "{}", run.stderr);
    let dead_socket = DeadPort::new();
    let dead = dead_socket.port;
    let run = hooktunnel_run(home.path(), &["trigger", "push", "--to", &dead.to_string()]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("could not reach"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_list_names_every_sample() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(home.path(), &["trigger", "--list"]).await;
    assert!(run.ok, "{run:?}");
    for s in samples::SAMPLES {
        assert!(run.stdout.contains(s.name), "{}", s.name);
        assert!(run.stdout.contains(s.provider.name()));
    }
    let run = hooktunnel_run(home.path(), &["trigger", "--help"]).await;
    assert!(run.stdout.contains("Examples"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_through_the_tunnel_gets_a_valid_verdict() {
    let spec = SecretSpec::new(Provider::GitHub, "tunnel-secret");
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.verify = vec![spec];
    let mut agent = Agent::start(s).await;

    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("HOOKTUNNEL_RELAY", &relay.url)
            .args([
                "trigger",
                "github.push",
                "--tunnel",
                "--sign",
                "github:tunnel-secret",
            ]),
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("/t/"), "{}", run.stdout);
    let summary = agent.next_exchange().await;
    let stored = wait_stored(home.path(), &summary.id).await;
    assert_eq!(stored.path, "/webhooks/github");
    let sig = stored.signature.expect("a verdict");
    assert!(sig.valid, "{sig:?}");
    assert_eq!(app.seen().len(), 1);
    agent.stop().await;

    // No tunnel name yet: a clear error.
    let fresh = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(fresh.path(), &["trigger", "push", "--tunnel"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("no tunnel yet"), "{}", run.stderr);
    let store = Store::open(&Paths::at(home.path()).db()).unwrap();
    assert_eq!(store.count().unwrap(), 1);
}
