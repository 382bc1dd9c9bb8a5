//! The `hooktunnel-relay` binary as an operator meets it: startup errors are
//! one line and a non-zero exit, logs are plain (or JSON) when not on a
//! terminal, the effective config is readable and never shows a token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn relay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hooktunnel-relay"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// Runs to completion (bounded) and returns (success, stderr).
fn run_to_end(cmd: &mut Command) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.success(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child when dropped (a failed assertion must not leak a relay).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a relay and returns its stderr lines up to and including "listening".
fn start_and_read_until_listening(args: &[&str]) -> (Running, Vec<String>) {
    let mut child = relay()
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no 'listening' line; got {lines:#?}"));
        let done = line.contains("listening");
        lines.push(line);
        if done {
            return (running, lines);
        }
    }
}

#[test]
fn a_bad_data_dir_is_one_line_and_a_failure_before_listening() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let dir = file.path().join("state");
    let (ok, err) = run_to_end(relay().args([
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(!ok, "{err}");
    assert!(!err.contains("listening"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].contains("--data-dir"), "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn a_missing_tls_file_is_one_line_and_a_failure() {
    let (ok, err) = run_to_end(relay().args([
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]));
    assert!(!ok, "{err}");
    assert!(!err.contains("listening"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn text_logs_off_a_terminal_have_no_colour_and_a_readable_config() {
    let data = tempfile::tempdir().unwrap();
    let (_relay, lines) = start_and_read_until_listening(&[
        "--token",
        "s3cret-token-value",
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    let text = lines.join("\n");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escapes when piped: {text}"
    );
    assert!(!text.contains("s3cret-token-value"), "{text}");
    assert!(!text.contains("RelayConfig"), "no Debug dump: {text}");
    assert!(text.contains("agent tokens: 1 accepted"), "{text}");
    assert!(
        text.contains(&format!("data dir: {}", data.path().display())),
        "{text}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_relay, lines) =
        start_and_read_until_listening(&["--log-format", "json", "--token", "s3cret-json"]);
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    let text = lines.join("\n");
    assert!(!text.contains("s3cret-json"), "{text}");
    assert!(text.contains("rate per ip"), "{text}");
}

/// A cluster node keeps names and queue in Redis: it must not warn that
/// they are in memory and lost on restart (it did, found benchmarking #15).
/// No Redis listens on port 1, so the node stops after its start-up lines.
#[test]
fn a_cluster_node_does_not_claim_its_queue_is_in_memory() {
    let (ok, err) = run_to_end(
        relay()
            .args(["--listen", "127.0.0.1:0"])
            .args(["--cluster", "redis://127.0.0.1:1/0"])
            .args(["--cluster-secret", "a-cluster-secret-for-tests"]),
    );
    assert!(!ok, "{err}");
    assert!(err.contains("queue and names in Redis"), "{err}");
    assert!(!err.contains("lost on restart"), "{err}");
}

#[test]
fn version_names_the_protocol() {
    let out = relay().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "(protocol {})",
            hooktunnel_relay::protocol::PROTOCOL_VERSION
        )),
        "{text}"
    );
}

/// `--internal-tls` is explained in `--help`, needs the `--tls-*` files, and
/// a certificate peers would refuse (or an address they cannot dial) stops
/// the node before it listens, in one line that says what to fix.
#[test]
fn internal_tls_is_checked_before_listening() {
    let (ok, help) = {
        let out = relay().arg("--help").output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(ok && help.contains("--internal-tls") && help.contains("--internal-ca"));
    assert!(help.contains("self-signed"), "{help}");

    let cluster = [
        "--listen",
        "127.0.0.1:0",
        "--cluster",
        // Never reached: the checks come first.
        "redis://127.0.0.1:1/0",
        "--cluster-secret",
        "a-cluster-secret-for-tests",
    ];
    let (ok, err) = run_to_end(relay().args(cluster).arg("--internal-tls"));
    assert!(!ok && err.contains("--tls-cert"), "{err}");

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("node.pem"), dir.path().join("node.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let files = [
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--internal-tls",
    ];
    for (listen, advertise, want) in [
        ("0.0.0.0:0", None, "--internal-advertise HOST:PORT"),
        (
            "127.0.0.1:0",
            Some("10.0.0.12:7443"),
            "does not name 10.0.0.12",
        ),
    ] {
        let mut cmd = relay();
        cmd.args(cluster)
            .args(files)
            .args(["--internal-listen", listen]);
        if let Some(advertise) = advertise {
            cmd.args(["--internal-advertise", advertise]);
        }
        let (ok, err) = run_to_end(&mut cmd);
        assert!(!ok, "{err}");
        assert!(!err.contains("listening"), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one error line: {err}");
        assert!(errors[0].contains(want), "{err}");
    }
}
