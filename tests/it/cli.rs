//! The real binary: help, argument errors, exit codes, and a full
//! listen → request → requests → show session with a scrubbed environment.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::prelude::*;
use predicates::prelude::*;

use crate::support::hooktunnel;

#[test]
fn help_teaches_the_commands() {
    let home = tempfile::tempdir().unwrap();
    hooktunnel(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("listen")
                .and(predicate::str::contains("requests"))
                .and(predicate::str::contains("show")),
        );
    hooktunnel(home.path())
        .args(["listen", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--relay").and(predicate::str::contains("Examples")));
}

#[test]
fn bad_arguments_fail_with_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    hooktunnel(home.path()).assert().failure().code(2);
    hooktunnel(home.path())
        .args(["listen"])
        .assert()
        .failure()
        .code(2);
    hooktunnel(home.path())
        .args(["listen", "not-a-port!"])
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("is not a local target"));
    hooktunnel(home.path())
        .args(["listen", "3000", "--timeout=0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--timeout"));
}

#[test]
fn unknown_ids_are_not_found() {
    let home = tempfile::tempdir().unwrap();
    hooktunnel(home.path())
        .args(["show", "last"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("history is empty"));
    hooktunnel(home.path())
        .args(["show", "01JDQ7ZK0000000000000000AB"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "no exchange 01JDQ7ZK0000000000000000AB",
        ));
    hooktunnel(home.path())
        .args(["requests"])
        .assert()
        .success()
        .stdout(predicate::str::contains("No requests captured yet"));
}

#[test]
fn unreachable_relay_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let port_socket = crate::support::DeadPort::new();
    let port = port_socket.port;
    hooktunnel(home.path())
        .args([
            "listen",
            "3000",
            "--relay",
            &format!("http://127.0.0.1:{port}"),
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot connect to the relay"));
}

/// Kills the child on drop so a failing test leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a raw HTTP/1.1 request and returns the raw response.
fn raw_request(url: &str, request_tail: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(crate::support::WAIT)).unwrap();
    write!(stream, "{request_tail}").unwrap();
    let _ = path;
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_json_then_requests_and_show() {
    let app = crate::support::LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let child = hooktunnel(home.path())
        .args([
            "listen",
            &app.port().to_string(),
            "--json",
            "--embedded-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(crate::support::WAIT).unwrap()).unwrap();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["embedded"], true);
    let public_url = ready["public_url"].as_str().unwrap().to_owned();
    assert!(
        ready["target"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", app.port()))
    );

    let path = public_url
        .split_once("/t/")
        .map(|(_, p)| format!("/t/{p}"))
        .unwrap();
    let url = public_url.clone();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(
            &url,
            &format!("POST {path}/hook?x=1&x=2 HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\nX-Dup: a\r\nX-Dup: b\r\nConnection: close\r\n\r\nhello"),
        )
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");

    let event: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(crate::support::WAIT).unwrap()).unwrap();
    assert_eq!(event["event"], "exchange");
    assert_eq!(event["method"], "POST");
    assert_eq!(event["path"], "/hook?x=1&x=2");
    assert_eq!(event["status"], 200);
    assert_eq!(event["request_bytes"], 5);
    assert_eq!(event["response_bytes"], 5);
    let id = event["id"].as_str().unwrap().to_owned();

    // The writer batches asynchronously: poll (bounded) until the row is visible.
    let mut listed = serde_json::Value::Null;
    for _ in 0..100 {
        let out = hooktunnel(home.path())
            .args(["requests", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        listed = serde_json::from_slice(&out.stdout).unwrap();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = &listed[0];
    assert_eq!(first["id"], id.as_str());
    for key in [
        "received_at",
        "method",
        "path",
        "status",
        "duration_ms",
        "error",
        "replay_of",
    ] {
        assert!(
            first.get(key).is_some(),
            "requests --json lacks {key}: {first}"
        );
    }

    let out = hooktunnel(home.path())
        .args(["show", "last", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["request"]["method"], "POST");
    assert_eq!(shown["request"]["body_base64"], "aGVsbG8=");
    assert_eq!(shown["response"]["status"], 200);
    let headers = shown["request"]["headers"].as_array().unwrap();
    let dups: Vec<&str> = headers
        .iter()
        .filter(|h| h[0] == "x-dup")
        .map(|h| h[1].as_str().unwrap())
        .collect();
    assert_eq!(dups, ["a", "b"]);

    let out = hooktunnel(home.path())
        .args(["show", &id[id.len() - 6..]])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("POST /hook?x=1&x=2") && text.contains("hello"),
        "{text}"
    );
}

#[test]
fn inspect_without_a_terminal_says_so_before_any_escape_sequence() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("out");
    let child = hooktunnel(home.path())
        .arg("inspect")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    // Bounded: a terminal-grabbing inspector would wait for keys forever.
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "inspect did not exit without a terminal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("inspect needs a terminal; use `hooktunnel requests` for plain output"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"", "nothing on stdout");
}

#[test]
fn listen_without_a_terminal_prints_log_lines() {
    let home = tempfile::tempdir().unwrap();
    let child = hooktunnel(home.path())
        .args(["listen", "3000", "--embedded-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(crate::support::WAIT) {
        let has_url = line.contains("/t/");
        seen.push(line);
        if has_url {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("/t/")), "{seen:?}");
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "no escape sequences: {seen:?}"
    );
}
