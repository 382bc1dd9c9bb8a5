//! History and replay with the real binary: a real relay, a real agent and
//! a real local app, with `hooktunnel replay / requests / export / clear`
//! run as a separate process against the same HOOKTUNNEL_HOME while the
//! agent keeps running.

use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;
use ulid::Ulid;

use crate::support::*;
use hooktunnel::config::Paths;
use hooktunnel::exchange::{Exchange, ExchangeResponse, Header};
use hooktunnel::store::writer::{Retention, StoreWriter};
use hooktunnel::store::{Direction, Store};

/// Bytes with NUL, CR, LF and invalid UTF-8.
fn binary_body() -> Vec<u8> {
    let mut body: Vec<u8> = b"\0\r\n\r\n\xff\xfe".to_vec();
    body.extend((0..=255u8).cycle().take(3000));
    body
}

fn store(home: &Path) -> Store {
    Store::open(&Paths::at(home).db()).unwrap()
}

/// The ids in a `requests --json` listing, in order.
fn listed_ids(run: &Run) -> Vec<String> {
    assert!(run.ok, "{run:?}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_last_sends_the_captured_bytes_while_listen_runs() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = binary_body();
    let original = capture(
        &mut agent,
        home.path(),
        "PUT",
        "/up/load?x=1&x=2&enc=%2F",
        &[
            ("content-type", b"application/octet-stream"),
            ("x-dup", b"one"),
            ("x-dup", b"two"),
            ("x-bin", b"caf\xc3\xa9"),
        ],
        body.clone(),
    )
    .await;

    let run = hooktunnel_run(home.path(), &["replay", "last"]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout.contains(&format!("Replayed {}", original.id)),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("200 OK"), "{}", run.stdout);

    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].path_and_query, "/up/load?x=1&x=2&enc=%2F");
    assert_eq!(seen[1].headers, seen[0].headers, "headers in order");
    assert_eq!(
        seen[1].header("x-dup"),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    assert_eq!(seen[1].body, body, "body byte-for-byte");

    // Stored as a new exchange pointing at the original, next to the live one.
    let replay = store(home.path()).last().unwrap().unwrap();
    assert_ne!(replay.id, original.id);
    assert_eq!(replay.replay_of, Some(original.id));
    assert_eq!(replay.status(), Some(200));
    assert_eq!(&replay.request_body[..], &body[..]);
    let shown = hooktunnel_run(home.path(), &["show", "last", "--json"]).await;
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["replay_of"], original.id.to_string());

    // The running agent still captures and stores after the replay wrote.
    let after = capture(&mut agent, home.path(), "POST", "/after", &[], "x").await;
    assert_eq!(after.path, "/after");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_by_id_to_another_target_with_json() {
    let (app, _relay, mut agent, home) = setup().await;
    let other = LocalApp::start().await;
    let original = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/a",
        &[("content-type", b"application/json")],
        r#"{"n":1}"#,
    )
    .await;
    // Newer exchange, so `last` would be the wrong one.
    capture(&mut agent, home.path(), "GET", "/noise", &[], "").await;

    let suffix = &original.id.to_string()[18..];
    let to = format!("http://127.0.0.1:{}", other.port());
    let run = hooktunnel_run(home.path(), &["replay", suffix, "--to", &to, "--json"]).await;
    assert!(run.ok, "{run:?}");
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["replay_of"], original.id.to_string());
    assert_eq!(v["status"], 200);
    assert_eq!(v["error"], Value::Null);
    assert!(v["duration_ms"].as_f64().is_some());
    let new_id: Ulid = v["id"].as_str().unwrap().parse().unwrap();

    assert_eq!(app.seen().len(), 2, "the captured target got nothing more");
    let seen = other.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/hooks/a");
    assert_eq!(seen[0].body, br#"{"n":1}"#);
    let stored = store(home.path()).get(&new_id).unwrap().unwrap();
    assert_eq!(stored.replay_of, Some(original.id));
    assert_eq!(stored.target, to);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_and_dead_targets_fail_clearly() {
    let home = tempfile::tempdir().unwrap();
    let run = hooktunnel_run(home.path(), &["replay", "last"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("history is empty"), "{}", run.stderr);

    let (_app, _relay, mut agent, home) = setup().await;
    let original = capture(&mut agent, home.path(), "POST", "/x", &[], "body").await;
    let run = hooktunnel_run(home.path(), &["replay", "01JDQ7ZK0000000000000000AB"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("no exchange 01JDQ7ZK0000000000000000AB"),
        "{}",
        run.stderr
    );

    let dead_socket = DeadPort::new();
    let dead = dead_socket.port;
    let run = hooktunnel_run(home.path(), &["replay", "last", "--to", &dead.to_string()]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("could not reach"), "{}", run.stderr);
    assert!(run.stderr.contains("Is the app running?"), "{}", run.stderr);
    // The failed attempt is recorded like any other exchange.
    let failed = store(home.path()).last().unwrap().unwrap();
    assert_eq!(failed.replay_of, Some(original.id));
    assert!(failed.error.is_some());

    // --json still prints the object, with the error, and exits non-zero.
    let run = hooktunnel_run(
        home.path(),
        &[
            "replay",
            &original.id.to_string(),
            "--to",
            &dead.to_string(),
            "--json",
        ],
    )
    .await;
    assert!(!run.ok);
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["status"], 502);
    assert!(v["error"].as_str().unwrap().contains("could not reach"));

    // The local app's own 5xx is an answer: exit 0.
    let five = capture(&mut agent, home.path(), "POST", "/status/503", &[], "").await;
    let run = hooktunnel_run(home.path(), &["replay", &five.id.to_string()]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("503"), "{}", run.stdout);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_replay_keeps_order_and_honours_filters() {
    let (app, _relay, mut agent, home) = setup().await;
    let a = capture(&mut agent, home.path(), "POST", "/hooks/a", &[], "first").await;
    let health = capture(&mut agent, home.path(), "GET", "/health", &[], "").await;
    let b = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/b?q=1",
        &[],
        "second",
    )
    .await;
    let err = capture(
        &mut agent,
        home.path(),
        "POST",
        "/status/500",
        &[],
        "needle",
    )
    .await;
    let captured = app.seen().len();

    let run = hooktunnel_run(home.path(), &["replay"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("say what to replay"), "{}", run.stderr);
    let run = hooktunnel_run(home.path(), &["replay", "last", "--since", "1m"]).await;
    assert_eq!(run.code, Some(2), "an id and filters conflict: {run:?}");

    // Dry run: everything listed oldest first, nothing sent.
    let run = hooktunnel_run(home.path(), &["replay", "--since", "10m", "--dry-run"]).await;
    assert!(run.ok, "{run:?}");
    let order: Vec<usize> = [a.id, health.id, b.id, err.id]
        .iter()
        .map(|id| run.stdout.find(&id.to_string()).expect("listed"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", run.stdout);
    assert!(
        run.stdout.contains("Would replay 4 requests"),
        "{}",
        run.stdout
    );
    assert_eq!(app.seen().len(), captured);

    let run = hooktunnel_run(
        home.path(),
        &["replay", "--method", "POST", "--dry-run", "--json"],
    )
    .await;
    let planned: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(planned.len(), 3, "{}", run.stdout);
    assert_eq!(planned[0]["id"], a.id.to_string());
    assert_eq!(
        planned[1]["url"],
        format!("http://localhost:{}/hooks/b?q=1", app.port())
    );
    assert_eq!(app.seen().len(), captured);

    // Path glob: both hooks, oldest first.
    let run = hooktunnel_run(home.path(), &["replay", "--path", "/hooks/*"]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("Replayed 2 of 2"), "{}", run.stdout);
    let seen = app.seen();
    let sent: Vec<&str> = seen[captured..]
        .iter()
        .map(|s| s.path_and_query.as_str())
        .collect();
    assert_eq!(sent, ["/hooks/a", "/hooks/b?q=1"]);
    let stored = store(home.path());
    let replays: Vec<Exchange> = stored
        .page(Bound::Unbounded, Direction::Older, 2)
        .unwrap()
        .iter()
        .rev()
        .map(|s| stored.get(&s.id).unwrap().unwrap())
        .collect();
    assert_eq!(replays[0].replay_of, Some(a.id));
    assert_eq!(replays[1].replay_of, Some(b.id));

    // Method, status (the app's own 500 still counts as answered) and grep.
    let run = hooktunnel_run(home.path(), &["replay", "--method", "get"]).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(app.seen().last().unwrap().path_and_query, "/health");
    let run = hooktunnel_run(home.path(), &["replay", "--status", "5xx", "--json"]).await;
    assert!(run.ok, "{run:?}");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "replays are left out: {}", run.stdout);
    assert_eq!(lines[0]["replay_of"], err.id.to_string());
    assert_eq!(lines[0]["status"], 500);
    let before = app.seen().len();
    let run = hooktunnel_run(home.path(), &["replay", "--grep", "NEEDLE"]).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(app.seen().len(), before + 1);

    // Replays themselves are only included on request.
    let run = hooktunnel_run(home.path(), &["replay", "--since", "1h", "--dry-run"]).await;
    assert!(
        run.stdout.contains("Would replay 4 requests"),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(
        home.path(),
        &["replay", "--since", "1h", "--dry-run", "--include-replays"],
    )
    .await;
    assert!(
        run.stdout.contains("Would replay 9 requests"),
        "{}",
        run.stdout
    );

    let run = hooktunnel_run(home.path(), &["replay", "--path", "/nothing"]).await;
    assert!(run.ok);
    assert!(run.stdout.contains("Nothing to replay"), "{}", run.stdout);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_replay_stops_at_a_dead_target() {
    let (app, _relay, mut agent, home) = setup().await;
    for i in 0..3 {
        capture(
            &mut agent,
            home.path(),
            "POST",
            &format!("/n/{i}"),
            &[],
            "x",
        )
        .await;
    }
    let dead_socket = DeadPort::new();
    let dead = dead_socket.port;
    let run = hooktunnel_run(
        home.path(),
        &["replay", "--path", "/n/*", "--to", &dead.to_string()],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("stopped"), "{}", run.stdout);
    assert!(run.stdout.contains("Replayed 1 of 3"), "{}", run.stdout);
    assert_eq!(app.seen().len(), 3);
    agent.stop().await;
}

/// A shell script used as $EDITOR.
fn editor_script(dir: &Path, body: &str) -> String {
    let path = dir.join("editor.sh");
    std::fs::write(&path, body).unwrap();
    format!("sh {}", path.display())
}

#[tokio::test(flavor = "multi_thread")]
async fn edit_and_replay() {
    let (app, _relay, mut agent, home) = setup().await;
    let original = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/edit",
        &[("content-type", b"application/json"), ("x-keep", b"1")],
        r#"{"action":"opened"}"#,
    )
    .await;
    let scripts = tempfile::tempdir().unwrap();

    // sed changes the body and the path; Content-Length follows the body.
    let editor = editor_script(
        scripts.path(),
        "sed -i -e 's/opened/closed-and-reopened/' -e 's#^POST /hooks/edit#POST /hooks/edited#' \"$1\"\n",
    );
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("EDITOR", &editor)
            .args(["replay", "last", "--edit"]),
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr.contains("sending the edited request"),
        "{}",
        run.stderr
    );
    let seen = app.seen().last().cloned().unwrap();
    assert_eq!(seen.path_and_query, "/hooks/edited");
    assert_eq!(seen.body, br#"{"action":"closed-and-reopened"}"#);
    assert_eq!(seen.header("content-length"), vec![b"32".to_vec()]);
    assert_eq!(seen.header("x-keep"), vec![b"1".to_vec()]);
    let stored = store(home.path()).last().unwrap().unwrap();
    assert_eq!(stored.replay_of, Some(original.id));
    assert_eq!(
        &stored.request_body[..],
        br#"{"action":"closed-and-reopened"}"#
    );

    // VISUAL comes before EDITOR (git's order); an untouched file sends the
    // capture as is.
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("VISUAL", "true")
            .env("EDITOR", "false")
            .args(["replay", &original.id.to_string(), "--edit"]),
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(run.stderr.contains("not changed"), "{}", run.stderr);
    assert_eq!(app.seen().last().unwrap().body, br#"{"action":"opened"}"#);

    // An emptied file cancels: nothing sent.
    let before = app.seen().len();
    let editor = editor_script(scripts.path(), ": > \"$1\"\n");
    let run = run_cmd(hooktunnel_cmd(home.path()).env("VISUAL", &editor).args([
        "replay",
        &original.id.to_string(),
        "--edit",
    ]))
    .await;
    assert!(!run.ok, "{run:?}");
    assert!(run.stderr.contains("cancelled"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing sent"), "{}", run.stderr);
    assert_eq!(app.seen().len(), before);

    // Garbage: clear error, nothing sent.
    let before = app.seen().len();
    let editor = editor_script(scripts.path(), "printf 'not a request\\n' > \"$1\"\n");
    let tmp = tempfile::tempdir().unwrap();
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("EDITOR", &editor)
            .env("TMPDIR", tmp.path())
            .args(["replay", &original.id.to_string(), "--edit"]),
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("bad request line"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing sent"), "{}", run.stderr);
    // The edit is kept (in TMPDIR) for the user to fix.
    let kept = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(kept, 1, "{}", run.stderr);
    // A failing editor cancels.
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("EDITOR", "false")
            .args(["replay", "last", "--edit"]),
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("nothing sent"), "{}", run.stderr);
    assert_eq!(app.seen().len(), before);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edit_keeps_a_binary_body_in_its_own_file() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = binary_body();
    capture(
        &mut agent,
        home.path(),
        "POST",
        "/bin",
        &[("content-type", b"application/octet-stream")],
        body.clone(),
    )
    .await;
    let scripts = tempfile::tempdir().unwrap();
    // Append to the body file named in the message; change a header too.
    let editor = editor_script(
        scripts.path(),
        "f=$(sed -n 's/^X-Hooktunnel-Body-File: //p' \"$1\")\nprintf 'TAIL' >> \"$f\"\nsed -i 's/^content-type: .*/content-type: application\\/x-test/' \"$1\"\n",
    );
    let run = run_cmd(
        hooktunnel_cmd(home.path())
            .env("EDITOR", &editor)
            .args(["replay", "last", "--edit"]),
    )
    .await;
    assert!(run.ok, "{run:?}");
    let seen = app.seen().last().cloned().unwrap();
    let mut expected = body.clone();
    expected.extend_from_slice(b"TAIL");
    assert_eq!(seen.body, expected);
    assert_eq!(
        seen.header("content-type"),
        vec![b"application/x-test".to_vec()]
    );
    assert_eq!(
        seen.header("content-length"),
        vec![expected.len().to_string().into_bytes()]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_export_reproduces_the_request_byte_for_byte() {
    let (app, _relay, mut agent, home) = setup().await;
    let body = binary_body();
    capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/bin?a=[1]&b=x%20y",
        &[
            ("content-type", b"application/octet-stream"),
            ("x-dup", b"one"),
            ("x-dup", b"it's $HOME `x`"),
        ],
        body.clone(),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let script = out.path().join("replay.sh");
    let run = hooktunnel_run(
        home.path(),
        &[
            "export",
            "last",
            "--format",
            "curl",
            "--output",
            script.to_str().unwrap(),
        ],
    )
    .await;
    assert!(run.ok, "{run:?}");
    let id = store(home.path()).last().unwrap().unwrap().id;
    let body_file = out.path().join(format!("hooktunnel-{id}.body"));
    assert!(
        run.stderr.contains(body_file.to_str().unwrap()),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&body_file).unwrap(), body);

    let curl = run_cmd(
        tokio::process::Command::new("bash")
            .arg(&script)
            .current_dir("/")
            .kill_on_drop(true),
    )
    .await;
    assert!(curl.ok, "{curl:?}");
    let seen = app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, seen[0].method);
    assert_eq!(seen[1].path_and_query, "/hooks/bin?a=[1]&b=x%20y");
    assert_eq!(seen[1].body, body);
    // curl places Host and Content-Length itself; every other header keeps
    // its order, and all values are identical.
    let without = |hs: &[(String, Vec<u8>)]| {
        hs.iter()
            .filter(|(n, _)| n != "host" && n != "content-length")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(without(&seen[1].headers), without(&seen[0].headers));
    for name in ["host", "content-length"] {
        assert_eq!(seen[1].header(name), seen[0].header(name), "{name}");
    }

    // A text body goes inline, to stdout, and no body file is written.
    capture(&mut agent, home.path(), "POST", "/t", &[], "plain 'text'\n").await;
    let run = hooktunnel_run(home.path(), &["export", "last", "-f", "curl"]).await;
    assert!(run.ok);
    assert!(run.stdout.starts_with("curl "), "{}", run.stdout);
    assert!(
        run.stdout.contains("--data-binary 'plain '\\''text'\\''"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn har_and_json_exports() {
    let (app, _relay, mut agent, home) = setup().await;
    let ex = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/har?x=1",
        &[("content-type", b"application/json")],
        r#"{"a":1}"#,
    )
    .await;
    let run = hooktunnel_run(home.path(), &["export", "last", "--format", "har"]).await;
    assert!(run.ok, "{run:?}");
    let har: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["_id"], ex.id.to_string());
    assert_eq!(e["request"]["method"], "POST");
    assert_eq!(
        e["request"]["url"],
        format!("http://localhost:{}/hooks/har?x=1", app.port())
    );
    assert_eq!(e["request"]["postData"]["text"], r#"{"a":1}"#);
    assert_eq!(e["request"]["queryString"][0]["name"], "x");
    assert_eq!(e["response"]["status"], 200);

    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("x.json");
    let run = hooktunnel_run(
        home.path(),
        &[
            "export",
            &ex.id.to_string(),
            "--format",
            "json",
            "-o",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(run.ok, "{run:?}");
    let exported: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let shown = hooktunnel_run(home.path(), &["show", "last", "--json"]).await;
    assert_eq!(
        exported,
        serde_json::from_str::<Value>(&shown.stdout).unwrap()
    );

    let run = hooktunnel_run(home.path(), &["export", "nope", "--format", "har"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("no exchange nope"), "{}", run.stderr);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_filters() {
    let (_app, _relay, mut agent, home) = setup().await;
    let a = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/github",
        &[("x-event", b"push")],
        "{}",
    )
    .await;
    let b = capture(&mut agent, home.path(), "GET", "/health", &[], "").await;
    let c = capture(
        &mut agent,
        home.path(),
        "POST",
        "/hooks/stripe/x",
        &[],
        "invoice.paid",
    )
    .await;
    let d = capture(&mut agent, home.path(), "POST", "/status/404", &[], "").await;
    let ids = |v: &[&Exchange]| v.iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
    let h = home.path();

    let all = listed_ids(&hooktunnel_run(h, &["requests", "--json"]).await);
    assert_eq!(all, ids(&[&d, &c, &b, &a]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--method", "post"]).await);
    assert_eq!(got, ids(&[&d, &c, &a]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--path", "/hooks/*"]).await);
    assert_eq!(got, ids(&[&a]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--path", "/hooks/**"]).await);
    assert_eq!(got, ids(&[&c, &a]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--status", "4xx"]).await);
    assert_eq!(got, ids(&[&d]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--grep", "INVOICE"]).await);
    assert_eq!(got, ids(&[&c]));
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--grep", "push"]).await);
    assert_eq!(got, ids(&[&a]), "grep looks at headers");
    let got =
        listed_ids(&hooktunnel_run(h, &["requests", "--json", "--since", "10m", "-n", "2"]).await);
    assert_eq!(got, ids(&[&d, &c]));
    let future = "2999-01-01T00:00:00Z";
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--since", future]).await);
    assert!(got.is_empty());

    let run = hooktunnel_run(h, &["requests", "--method", "DELETE"]).await;
    assert!(run.ok);
    assert!(
        run.stdout
            .contains("No stored request matches method:DELETE"),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(h, &["requests", "--status", "teapot"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("bad status"), "{}", run.stderr);
    let run = hooktunnel_run(h, &["requests", "--path", "/hooks/*"]).await;
    assert!(run.stdout.contains("/hooks/github"), "{}", run.stdout);
    agent.stop().await;
}

/// A history of two tunnels (one agent serving both): `requests` names the
/// tunnel on each line and `--tunnel` (repeatable) keeps only those; bulk
/// replay takes the same flag.
#[tokio::test(flavor = "multi_thread")]
async fn requests_by_tunnel() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut s = store(h);
    let mut ids = Vec::new();
    for (n, tunnel) in [(1, "shop"), (2, "billing"), (3, "shop")] {
        let mut e = exchange(n, 1);
        e.tunnel = tunnel.into();
        s.insert(&e).unwrap();
        ids.push(e.id.to_string());
    }
    drop(s);

    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--tunnel", "billing"]).await);
    assert_eq!(got, [ids[1].clone()]);
    let got = listed_ids(&hooktunnel_run(h, &["requests", "--json", "--tunnel", "sh*"]).await);
    assert_eq!(got, [ids[2].clone(), ids[0].clone()]);
    let both = [
        "requests", "--json", "--tunnel", "shop", "--tunnel", "billing",
    ];
    assert_eq!(listed_ids(&hooktunnel_run(h, &both).await).len(), 3);
    // The one-line syntax, as the inspector's prompt reads it.
    let got =
        listed_ids(&hooktunnel_run(h, &["requests", "--json", "--filter", "tunnel:billing"]).await);
    assert_eq!(got, [ids[1].clone()]);
    let query = [
        "requests",
        "--json",
        "--filter",
        "tunnel:shop path:/n/3",
        "--tunnel",
        "billing",
    ];
    assert_eq!(
        listed_ids(&hooktunnel_run(h, &query).await),
        [ids[2].clone()]
    );
    let run = hooktunnel_run(h, &["requests", "--filter", "since:1h", "--since", "2h"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("\"since:\" given more than once"),
        "{}",
        run.stderr
    );

    // Text lines name the tunnel once there are several.
    let run = hooktunnel_run(h, &["requests"]).await;
    assert!(run.ok, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].contains("  shop     POST"), "{}", run.stdout);
    assert!(lines[1].contains("  billing  POST"), "{}", run.stdout);
    // One tunnel's rows: no tunnel on the line.
    let run = hooktunnel_run(h, &["requests", "--tunnel", "shop"]).await;
    assert!(!run.stdout.contains("shop"), "{}", run.stdout);

    let run = hooktunnel_run(h, &["requests", "--tunnel", "nope"]).await;
    assert!(
        run.stdout.contains("No stored request matches tunnel:nope"),
        "{}",
        run.stdout
    );
    let run = hooktunnel_run(h, &["requests", "--tunnel", "a/b"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("bad tunnel \"a/b\""), "{}", run.stderr);

    let run = hooktunnel_run(h, &["replay", "--tunnel", "billing", "--dry-run"]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout
            .contains("Would replay 1 request matching tunnel:billing"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clear_asks_or_needs_yes() {
    let (_app, _relay, mut agent, home) = setup().await;
    capture(&mut agent, home.path(), "POST", "/a", &[], "1").await;
    capture(&mut agent, home.path(), "POST", "/b", &[], "2").await;
    agent.stop().await;

    let run = hooktunnel_run(home.path(), &["clear"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    assert_eq!(store(home.path()).count().unwrap(), 2);

    let run = hooktunnel_run(home.path(), &["clear", "--yes"]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("Deleted 2 exchanges"), "{}", run.stdout);
    assert_eq!(store(home.path()).count().unwrap(), 0);
    let run = hooktunnel_run(home.path(), &["requests"]).await;
    assert!(run.stdout.contains("No requests captured yet"));
    let run = hooktunnel_run(home.path(), &["clear", "--yes"]).await;
    assert!(run.stdout.contains("already empty"), "{}", run.stdout);
}

fn exchange(n: u8, body_len: usize) -> Exchange {
    Exchange {
        request_truncated: None,
        capture_degraded: false,
        attempts: 1,
        id: hooktunnel_protocol::next_id(),
        tunnel: "t".into(),
        received_at_ms: hooktunnel::clock::now_ms(),
        method: "POST".into(),
        path: format!("/n/{n}"),
        target: "http://127.0.0.1:9".into(),
        request_headers: vec![Header::new("x-n", n.to_string())],
        request_body: Bytes::from(vec![n; body_len]),
        response: Some(ExchangeResponse {
            truncated: None,
            status: 200,
            headers: Vec::new(),
            body: Bytes::new(),
        }),
        duration_us: 1,
        error: None,
        replay_of: None,
        queued: false,
        peer: None,
        public_url: None,
        signature: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_evicts_the_oldest() {
    let home = tempfile::tempdir().unwrap();
    let db = Paths::at(home.path()).db();
    let writer = StoreWriter::spawn_with_retention(
        db.clone(),
        Retention {
            keep: 3,
            keep_bytes: u64::MAX,
        },
    )
    .unwrap();
    let all: Vec<Exchange> = (0..6).map(|n| exchange(n, 10)).collect();
    for e in &all {
        bounded("a durable write", writer.record_durably(e.clone()))
            .await
            .unwrap();
    }
    // Eviction follows a commit: a barrier waits for it too.
    bounded("the writer", writer.flush()).await.unwrap();
    let left: Vec<Ulid> = store(home.path())
        .list(10, 0)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![all[5].id, all[4].id, all[3].id]);
    drop(writer);

    // By bytes: 100-byte bodies, 250 bytes allowed → the newest two stay.
    let home = tempfile::tempdir().unwrap();
    let writer = StoreWriter::spawn_with_retention(
        Paths::at(home.path()).db(),
        Retention {
            keep: 1000,
            keep_bytes: 250,
        },
    )
    .unwrap();
    let all: Vec<Exchange> = (0..5).map(|n| exchange(n, 100)).collect();
    for e in &all {
        bounded("a durable write", writer.record_durably(e.clone()))
            .await
            .unwrap();
    }
    // Eviction follows a commit: a barrier waits for it too.
    bounded("the writer", writer.flush()).await.unwrap();
    let left: Vec<Ulid> = store(home.path())
        .list(10, 0)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![all[4].id, all[3].id]);

    // Flags, then the config file, then the defaults.
    let config = hooktunnel::config::ConfigFile {
        keep: Some(7),
        ..Default::default()
    };
    assert_eq!(Retention::resolve(None, None, &config).keep, 7);
    assert_eq!(Retention::resolve(Some(2), None, &config).keep, 2);
    assert_eq!(
        Retention::resolve(None, None, &config).keep_bytes,
        hooktunnel::config::DEFAULT_KEEP_BYTES
    );
    assert_eq!(Retention::default().keep, hooktunnel::config::DEFAULT_KEEP);
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_respect_the_configured_retention() {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "keep = 2\n").unwrap();
    {
        let mut s = store(home.path());
        for n in 0..2 {
            let mut e = exchange(n, 4);
            e.target = format!("http://127.0.0.1:{}", app.port());
            s.insert(&e).unwrap();
        }
    }
    let run = hooktunnel_run(home.path(), &["replay", "last"]).await;
    assert!(run.ok, "{run:?}");
    let s = store(home.path());
    assert_eq!(s.count().unwrap(), 2);
    assert!(s.last().unwrap().unwrap().replay_of.is_some());
}
