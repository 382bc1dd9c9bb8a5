//! The capture limit end to end: a body over `--capture-max` reaches the app
//! whole, the history keeps its head with the whole size and SHA-256, `show`
//! and the exports say so, and replay refuses it naming the limit.

use base64::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_capture_limit_is_kept_in_part_and_never_replayed() {
    let (app, _relay, mut agent, home) = setup_with(|s| s.capture_max = Some(1024)).await;
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let big = capture(
        &mut agent,
        home.path(),
        "POST",
        "/big",
        &[("content-type", b"application/octet-stream")],
        body.clone(),
    )
    .await;
    let small = capture(&mut agent, home.path(), "POST", "/small", &[], "tiny").await;
    // Forwarding is not limited: the app got every byte.
    assert_eq!(app.seen()[0].body, body);

    let id = big.id.to_string();
    let shown = hooktunnel_run(home.path(), &["show", &id, "--json"]).await;
    assert!(shown.ok, "{shown:?}");
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    let whole = json!({
        "total_bytes": 5000,
        "sha256": hex::encode(Sha256::digest(&body)),
        "limit": 1024,
    });
    assert_eq!(v["request"]["truncated"], whole);
    let head = BASE64_STANDARD
        .decode(v["request"]["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(head, body[..1024]);
    // The app echoes the body: the response is held in part too.
    assert_eq!(v["response"]["truncated"], whole);
    assert_eq!(v["capture_degraded"], false);
    let v: Value = serde_json::from_str(
        &hooktunnel_run(home.path(), &["show", &small.id.to_string(), "--json"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(v["request"]["truncated"], Value::Null);

    let text = hooktunnel_run(home.path(), &["show", &id]).await;
    assert!(
        text.stdout
            .contains("truncated: 1.0 KiB of 4.9 KiB kept · sha256 "),
        "{}",
        text.stdout
    );

    let replay = hooktunnel_run(home.path(), &["replay", &id]).await;
    assert!(!replay.ok, "{replay:?}");
    assert!(
        replay.stderr.contains(&format!(
            "cannot replay {id}: its request body was truncated at 1.0 KiB of 4.9 KiB (--capture-max); raise --capture-max"
        )),
        "{}",
        replay.stderr
    );
    let curl = hooktunnel_run(home.path(), &["export", &id, "--format", "curl"]).await;
    assert!(
        !curl.ok && curl.stderr.contains("captured only in part"),
        "{curl:?}"
    );
    let bulk = hooktunnel_run(home.path(), &["replay", "--path", "/big"]).await;
    assert!(!bulk.ok, "{bulk:?}");
    assert!(bulk.stdout.contains("1 refused"), "{bulk:?}");
    assert_eq!(app.seen().len(), 2, "nothing was re-sent");
    // A whole capture still replays.
    let ok = hooktunnel_run(home.path(), &["replay", &small.id.to_string()]).await;
    assert!(ok.ok, "{ok:?}");
    agent.stop().await;
}

#[tokio::test]
async fn a_bad_capture_limit_is_named() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(home.path(), &["listen", "3000", "--capture-max", "lots"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("invalid capture limit 'lots'"),
        "{}",
        run.stderr
    );
    std::fs::write(
        home.path().join("config.toml"),
        "capture_max = \"ten megs\"\n",
    )
    .unwrap();
    let run = hooktunnel_run(
        home.path(),
        &[
            "listen",
            "3000",
            "--no-tui",
            "--embedded-listen",
            "127.0.0.1:0",
        ],
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("invalid capture limit 'ten megs'"),
        "{}",
        run.stderr
    );
}
