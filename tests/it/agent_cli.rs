//! The agent's command line as a new user meets it: names that stick per
//! relay, `status`, `trigger --tunnel` through the live URL, any unique part
//! of an id, local targets (validation, https, `--host-header`) and private
//! file modes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use hooktunnel::config::Paths;
use hooktunnel::exchange::{Exchange, ExchangeResponse, Header};
use hooktunnel::store::Store;
use hooktunnel_relay::RelayConfig;

use crate::support::{
    Agent, LocalApp, Relay, bounded, client, hooktunnel_cmd, hooktunnel_run, send, settings,
};

/// A `listen` child with its ready event read.
pub struct Listening {
    child: tokio::process::Child,
    ready: serde_json::Value,
}

impl Listening {
    pub async fn start(home: &Path, args: &[&str]) -> Self {
        let mut child = hooktunnel_cmd(home)
            .arg("listen")
            .args(args)
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = bounded("the ready event", lines.next_line()).await;
        let Ok(Some(first)) = first else {
            let out = bounded("listen to exit", child.wait_with_output()).await;
            panic!("listen did not start: {out:?}");
        };
        let ready: serde_json::Value = serde_json::from_str(&first).unwrap();
        assert_eq!(ready["event"], "ready", "{first}");
        // Keep reading so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, ready }
    }

    pub fn public_url(&self) -> String {
        self.ready["public_url"].as_str().unwrap().to_owned()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `kill -9`: no goodbye, no drain.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = bounded("listen to die", self.child.wait()).await;
    }

    /// Ctrl-C, as a user stops it; waits for a clean exit.
    async fn interrupt(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = bounded("listen to stop", self.child.wait()).await.unwrap();
        assert!(status.success(), "{status:?}");
    }
}

async fn status_json(home: &Path) -> serde_json::Value {
    let run = hooktunnel_run(home, &["status", "--json"]).await;
    assert!(run.ok, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_stick_per_relay_and_status_and_trigger_use_the_live_tunnel() {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let other = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let port = app.port().to_string();

    let first = Listening::start(
        home.path(),
        &[&port, "--relay", &relay.url, "--name", "my-app"],
    )
    .await;
    let url = first.public_url();
    assert!(url.contains("my-app"), "{url}");

    let status = status_json(home.path()).await;
    let tunnel = &status["tunnels"][0];
    assert_eq!(tunnel["name"], "my-app", "{status}");
    assert_eq!(tunnel["online"], true);
    assert_eq!(tunnel["public_url"], url.as_str());
    assert_eq!(tunnel["relay"], relay.url.as_str());
    assert_eq!(status["names"][&relay.url], "my-app");
    assert!(
        status["paths"]["history"]
            .as_str()
            .unwrap()
            .ends_with("history.sqlite3")
    );
    let text = hooktunnel_run(home.path(), &["status"]).await;
    assert!(
        text.ok && text.stdout.contains("Tunnel my-app  online"),
        "{text:?}"
    );

    // Through the tunnel's real URL (not a guessed 127.0.0.1:7070).
    let sent = hooktunnel_run(home.path(), &["trigger", "github.push", "--tunnel"]).await;
    assert!(sent.ok, "{sent:?}");
    assert!(sent.stdout.contains(&url), "{sent:?}");
    assert_eq!(app.seen().len(), 1);

    first.interrupt().await;
    let status = status_json(home.path()).await;
    assert_eq!(status["tunnels"], serde_json::json!([]), "{status}");

    // A name on a second relay does not replace the first one's.
    let elsewhere = Listening::start(
        home.path(),
        &[&port, "--relay", &other.url, "--name", "other-app"],
    )
    .await;
    elsewhere.interrupt().await;
    let again = Listening::start(home.path(), &[&port, "--relay", &relay.url]).await;
    assert_eq!(again.public_url(), url);
    let status = status_json(home.path()).await;
    assert_eq!(status["names"][&other.url], "other-app", "{status}");
    assert_eq!(status["names"][&relay.url], "my-app", "{status}");
    again.interrupt().await;
}

fn exchange(id: &str) -> Exchange {
    Exchange {
        request_truncated: None,
        capture_degraded: false,
        attempts: 1,
        id: ulid::Ulid::from_string(id).unwrap(),
        tunnel: "t".into(),
        received_at_ms: 1_700_000_000_000,
        method: "POST".into(),
        path: format!("/hook/{id}"),
        target: "http://localhost:3000".into(),
        request_headers: vec![Header::new("content-type", "text/plain")],
        request_body: Bytes::from_static(b"x"),
        response: Some(ExchangeResponse {
            truncated: None,
            status: 200,
            headers: vec![],
            body: Bytes::new(),
        }),
        duration_us: 10,
        error: None,
        replay_of: None,
        queued: false,
        peer: None,
        public_url: None,
        signature: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn any_unique_part_of_an_id_and_ambiguity_is_named() {
    let home = tempfile::tempdir().unwrap();
    let ids = [
        "01M8000000003ZHSVC00000000",
        "01M9000000000000000000000A",
        "01MA000000000000000000000A",
    ];
    let mut store = Store::open(&Paths::at(home.path()).db()).unwrap();
    for id in ids {
        store.insert(&exchange(id)).unwrap();
    }
    drop(store);
    let shown = hooktunnel_run(home.path(), &["show", "3zhsvc"]).await;
    assert!(shown.ok, "{shown:?}");
    assert!(
        shown.stdout.contains(&format!("/hook/{}", ids[0])),
        "{shown:?}"
    );
    let exported = hooktunnel_run(home.path(), &["export", "3ZHSVC", "--format", "json"]).await;
    assert!(exported.ok, "{exported:?}");

    let ambiguous = hooktunnel_run(home.path(), &["show", "01M"]).await;
    assert!(!ambiguous.ok);
    assert!(
        ambiguous.stderr.contains(
            "ambiguous: '01M' matches 01MA000000000000000000000A, 01M9000000000000000000000A, 01M8000000003ZHSVC00000000"
        ),
        "{ambiguous:?}"
    );
    let replayed = hooktunnel_run(home.path(), &["replay", "000A", "--dry-run"]).await;
    assert!(replayed.stderr.contains("ambiguous"), "{replayed:?}");
    for wildcard in ["%", "_", "01M_"] {
        let run = hooktunnel_run(home.path(), &["show", wildcard]).await;
        assert!(
            !run.ok && run.stderr.contains("no exchange"),
            "{wildcard}: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_targets_are_refused_with_the_accepted_forms() {
    let home = tempfile::tempdir().unwrap();
    for bad in ["70000", "abc", "ftp://x", "localhost:0"] {
        let run = hooktunnel_run(home.path(), &["listen", bad]).await;
        assert_eq!(run.code, Some(1), "{bad}: {run:?}");
        assert!(
            run.stderr
                .contains("PORT (1-65535), HOST:PORT, or http(s)://HOST[:PORT][/base]"),
            "{bad}: {run:?}"
        );
    }
}

/// A local HTTPS app with a self-signed certificate that answers with the
/// `Host` it was sent.
async fn https_app() -> std::net::SocketAddr {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .map(|h| h.as_bytes().to_vec())
                            .unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(host)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn https_targets_with_insecure_local_and_a_chosen_host_header() {
    let addr = https_app().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let target = format!("https://{addr}");

    // Self-signed: refused unless --insecure-local, with the reason.
    let home = tempfile::tempdir().unwrap();
    let mut strict = Agent::start(settings(Some(&relay.url), &target, home.path())).await;
    let answer = send(
        &client(),
        "GET",
        &format!("{}/x", strict.public_url),
        &[],
        "",
    )
    .await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(
        String::from_utf8_lossy(&answer.body).contains("certificate"),
        "{answer:?}"
    );
    strict.next_exchange().await;
    strict.stop().await;

    // The app answers with the Host it got: the target's, or --host-header.
    for (host_header, expected) in [
        (None, addr.to_string()),
        (Some("app.test"), "app.test".to_owned()),
    ] {
        let home = tempfile::tempdir().unwrap();
        let mut s = settings(Some(&relay.url), &target, home.path());
        s.forward.insecure_local = true;
        s.forward.host_header = host_header.map(str::to_owned);
        let agent = Agent::start(s).await;
        let answer = send(
            &client(),
            "GET",
            &format!("{}/x", agent.public_url),
            &[],
            "",
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, Bytes::from(expected));
        agent.stop().await;
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    // A listen under umask 022 writes the config, the history and a state file.
    let script = format!(
        "umask 022; exec \"$0\" listen {} --relay {} --json",
        app.port(),
        relay.url
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_hooktunnel")])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKTUNNEL_HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: serde_json::Value =
        serde_json::from_str(&bounded("ready", lines.next_line()).await.unwrap().unwrap()).unwrap();
    let url = ready["public_url"].as_str().unwrap().to_owned();
    send(
        &client(),
        "POST",
        &format!("{url}/h"),
        &[("authorization", b"Bearer s3cret")],
        "x",
    )
    .await;
    let _ = bounded("the exchange event", lines.next_line()).await;
    let db = Paths::at(&home).db();
    bounded("the history files", async {
        while !Path::new(&format!("{}-wal", db.display())).exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(mode(&home), 0o700);
    for name in [
        "config.toml",
        "history.sqlite3",
        "history.sqlite3-wal",
        "history.sqlite3-shm",
    ] {
        assert_eq!(mode(&home.join(name)), 0o600, "{name}");
    }
    for entry in std::fs::read_dir(home.join("running")).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
    let _ = child.start_kill();
    let _ = bounded("listen to stop", child.wait()).await;

    // An existing directory open to everyone is fixed, with a warning.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = crate::support::run_cmd(
        tokio::process::Command::new("sh")
            .args([
                "-c",
                "umask 022; exec \"$0\" requests",
                env!("CARGO_BIN_EXE_hooktunnel"),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOOKTUNNEL_HOME", &home),
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(run.stderr.contains("readable by other users"), "{run:?}");
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_connection_failures_say_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let relay = Relay::start(RelayConfig {
        tokens: vec!["right".into()],
        ..RelayConfig::default()
    })
    .await;
    let run = hooktunnel_run(home.path(), &["listen", "3000", "--relay", &relay.url]).await;
    assert!(
        run.stderr
            .contains("needs a token: pass --token or set HOOKTUNNEL_TOKEN"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("refused the token"), "{run:?}");
    let run = hooktunnel_run(
        home.path(),
        &["listen", "3000", "--relay", &relay.url, "--token", "wrong"],
    )
    .await;
    assert!(run.stderr.contains("refused the token"), "{run:?}");

    // A TLS relay with a certificate from a CA the agent does not know.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let pki = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (pki.path().join("c.pem"), pki.path().join("k.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let tls = Relay::start(RelayConfig {
        tls: Some(hooktunnel_relay::config::TlsFiles {
            cert: cert_file,
            key: key_file,
        }),
        ..RelayConfig::default()
    })
    .await;
    let plain = format!("http://{}", tls.addr);
    let run = hooktunnel_run(home.path(), &["listen", "3000", "--relay", &plain]).await;
    assert!(run.stderr.contains("use https://"), "{run:?}");
    let secure = format!("https://{}", tls.addr);
    let run = hooktunnel_run(home.path(), &["listen", "3000", "--relay", &secure]).await;
    assert!(run.stderr.contains("--ca-cert"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_messages_are_exact() {
    let home = tempfile::tempdir().unwrap();
    let app = LocalApp::start().await;
    let mut slow = exchange("01KB0000000000000000000001");
    slow.path = "/slow".into();
    slow.target = format!("http://127.0.0.1:{}", app.port());
    let mut store = Store::open(&Paths::at(home.path()).db()).unwrap();
    store.insert(&slow).unwrap();
    drop(store);

    // -n 0 lists nothing without claiming the history is empty.
    let run = hooktunnel_run(home.path(), &["requests", "-n", "0"]).await;
    assert!(run.ok && run.stdout.is_empty(), "{run:?}");
    for bad in ["999", "6xx"] {
        let run = hooktunnel_run(home.path(), &["requests", "--status", bad]).await;
        assert!(
            !run.ok && run.stderr.contains("100 to 599"),
            "{bad}: {run:?}"
        );
    }
    let run = hooktunnel_run(home.path(), &["listen", "3000", "--keep", "0"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");

    // Singular nouns.
    let run = hooktunnel_run(home.path(), &["replay", "last", "--dry-run"]).await;
    assert!(run.stdout.contains("(1 header, body"), "{run:?}");
    let run = hooktunnel_run(home.path(), &["clear"]).await;
    assert!(
        run.stderr.contains("delete 1 stored exchange without"),
        "{run:?}"
    );

    // A timeout is not "is the app running?".
    let run = hooktunnel_run(home.path(), &["replay", "last", "--timeout", "0.3"]).await;
    assert!(!run.ok, "{run:?}");
    assert!(!run.stderr.contains("Is the app running"), "{run:?}");
    assert!(run.stderr.contains("--timeout"), "{run:?}");

    // A cause is said once.
    let file = home.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let run = hooktunnel_run(&file, &["requests"]).await;
    assert!(!run.ok);
    assert_eq!(run.stderr.matches("not a directory").count(), 1, "{run:?}");

    // An empty HOOKTUNNEL_RELAY is unset: the embedded relay starts.
    let mut child = hooktunnel_cmd(home.path())
        .args([
            "listen",
            &app.port().to_string(),
            "--json",
            "--embedded-listen",
            "127.0.0.1:0",
        ])
        .env("HOOKTUNNEL_RELAY", "")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = bounded("ready", lines.next_line()).await.unwrap();
    let _ = child.start_kill();
    let _ = bounded("listen to stop", child.wait()).await;
    let first = first.unwrap_or_default();
    assert!(first.contains("\"embedded\":true"), "{first}");
}

#[tokio::test(flavor = "multi_thread")]
async fn resign_refuses_a_provider_other_than_the_requests() {
    let home = tempfile::tempdir().unwrap();
    let mut stripe = exchange("01KB0000000000000000000002");
    stripe
        .request_headers
        .push(Header::new("stripe-signature", "t=1,v1=00"));
    let mut store = Store::open(&Paths::at(home.path()).db()).unwrap();
    store.insert(&stripe).unwrap();
    drop(store);
    let run = hooktunnel_run(
        home.path(),
        &["replay", "last", "--resign", "github:x", "--dry-run"],
    )
    .await;
    assert!(!run.ok, "{run:?}");
    assert!(
        run.stderr.contains("this request is signed by stripe") && run.stderr.contains("--force"),
        "{run:?}"
    );
    let run = hooktunnel_run(
        home.path(),
        &[
            "replay",
            "last",
            "--resign",
            "github:x",
            "--force",
            "--dry-run",
        ],
    )
    .await;
    assert!(run.ok, "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_deliveries_that_gave_up_are_marked_as_errors() {
    let relay = Relay::start(RelayConfig::default()).await;
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    s.mode = hooktunnel_relay::protocol::Mode::Ack;
    s.max_attempts = 2;
    let mut agent = Agent::start(s).await;
    let url = format!("{}/status/503", agent.public_url);
    assert_eq!(send(&client(), "POST", &url, &[], "x").await.status, 200);
    let done = agent.next_exchange().await;
    assert_eq!(done.status, Some(503));
    let stored = crate::support::wait_stored(home.path(), &done.id).await;
    assert!(
        stored
            .error
            .as_deref()
            .is_some_and(|e| e.contains("gave up after 2 attempts")),
        "{stored:?}"
    );
    let run = hooktunnel_run(home.path(), &["requests", "--status", "error", "--json"]).await;
    assert!(run.stdout.contains(&done.id.to_string()), "{run:?}");
    agent.stop().await;
}
