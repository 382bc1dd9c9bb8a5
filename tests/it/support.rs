//! Real parts for end-to-end tests: a relay, an agent and a local target,
//! each on an ephemeral loopback port. Every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::response::Response;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use hooktunnel::commands::listen::{self, ListenSettings, Running};
use hooktunnel::config::Paths;
use hooktunnel::event::AgentEvent;
use hooktunnel::forward::Target;
use hooktunnel_protocol::Mode;
use hooktunnel_relay::RelayConfig;

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A request as the local app received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// Values of header `name`, in order.
    pub fn header(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A local app that records what it receives.
///
/// `/slow` sleeps 3 s; `/status/NNN` answers NNN; anything else echoes the
/// body with two `set-cookie` headers.
pub struct LocalApp {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    cancel: CancellationToken,
}

impl LocalApp {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let record = record.clone();
            async move { respond(req, record).await }
        });
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self { addr, seen, cancel }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for LocalApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn respond(req: Request, record: Arc<Mutex<Vec<Seen>>>) -> Response {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    record.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    });
    if parts.uri.path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let status = parts
        .uri
        .path()
        .strip_prefix("/status/")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    Response::builder()
        .status(status)
        .header("set-cookie", "a=1")
        .header("set-cookie", "b=2")
        .header("x-seen-path", path_and_query)
        .body(axum::body::Body::from(body))
        .unwrap()
}

/// The metrics token of test relays that set none.
pub const TEST_METRICS_TOKEN: &str = "test-metrics-token";

/// A relay on a loopback port.
pub struct Relay {
    pub url: String,
    pub addr: SocketAddr,
    /// The `--metrics-token` [`Relay::metric`] presents.
    metrics_token: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// `GET /_hooktunnel/health` from a plain client.
    pub async fn health(&self) -> Answer {
        send(
            &client(),
            "GET",
            &format!("{}/_hooktunnel/health", self.url),
            &[],
            "",
        )
        .await
    }

    pub async fn start(config: RelayConfig) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// Starts on a given address (to restart a relay where agents expect it).
    /// Metrics need a token: tests get [`TEST_METRICS_TOKEN`] unless they set one.
    pub async fn start_at(addr: SocketAddr, mut config: RelayConfig) -> Self {
        let metrics_token = config
            .metrics_token
            .get_or_insert_with(|| TEST_METRICS_TOKEN.to_owned())
            .clone();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            hooktunnel_relay::serve(listener, config, stop.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            metrics_token,
            cancel,
            task,
        }
    }

    /// Stops abruptly, like `kill -9`: no drain, nothing flushed beyond what was committed.
    pub async fn kill(mut self) {
        self.task.abort();
        let _ = bounded("relay abort", &mut self.task).await;
    }

    /// Graceful shutdown (what SIGTERM does): returns once the relay has stopped.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let _ = bounded("relay shutdown", &mut self.task).await;
    }

    /// One counter from `/_hooktunnel/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let answer = send(
            &client(),
            "GET",
            &format!("{}/_hooktunnel/metrics", self.url),
            &[(
                "authorization",
                format!("Bearer {}", self.metrics_token).as_bytes(),
            )],
            "",
        )
        .await;
        let text = String::from_utf8_lossy(&answer.body).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing in {text}"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

/// An in-process agent (the same code `hooktunnel listen` runs).
pub struct Agent {
    pub public_url: String,
    pub running: Running,
    cancel: CancellationToken,
}

/// Settings for an agent against `relay` (None = embedded) and local `port`.
pub fn settings(relay: Option<&str>, target: &str, home: &Path) -> ListenSettings {
    ListenSettings {
        target: Target::parse(target).unwrap(),
        forward: hooktunnel::forward::ForwardOptions::default(),
        relay: relay.map(str::to_owned),
        token: None,
        name: None,
        takeover: false,
        mode: Mode::Proxy,
        timeout: Duration::from_secs(10),
        embedded_listen: "127.0.0.1:0".parse().unwrap(),
        paths: Paths::at(home),
        verify: Vec::new(),
        max_attempts: 3,
        queued_response: None,
        ca_cert: None,
        keep: None,
        keep_bytes: None,
        ping_interval: hooktunnel_protocol::PING_INTERVAL,
        rules: Default::default(),
        inject_seed: None,
        capture_max: None,
        also: Vec::new(),
    }
}

/// Starts an agent (its settings changed by `adjust`) against a relay from
/// before rules and several tunnels per connection: it answers any hello
/// with a bare welcome. Returns the agent's start error.
pub async fn start_against_an_old_relay(adjust: impl FnOnce(&mut ListenSettings)) -> String {
    use futures_util::{SinkExt as _, StreamExt as _};
    use hooktunnel_protocol::{PROTOCOL_VERSION, RelayMessage, Welcome};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let old_relay = async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _hello = ws.next().await;
        let welcome = RelayMessage::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            name: "old".into(),
            public_urls: vec![format!("http://{addr}/t/old")],
            mode: Mode::Proxy,
            rules_enforced: false,
            max_body_bytes: None,
            max_queued_bytes: None,
            more: vec![],
        });
        ws.send(Message::Binary(welcome.encode())).await.unwrap();
        ws
    };
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&format!("http://{addr}")), "3000", home.path());
    adjust(&mut s);
    let cancel = CancellationToken::new();
    let (started, _ws) = tokio::join!(
        bounded("the agent's start", listen::start(s, cancel)),
        bounded("the old relay", old_relay)
    );
    match started {
        Ok(_) => panic!("the agent served through an old relay"),
        Err(e) => format!("{e:#}"),
    }
}

/// A local app and an agent for it on `relay`, with the agent's home.
pub async fn agent_on(relay: &Relay) -> (LocalApp, Agent, tempfile::TempDir) {
    let app = LocalApp::start().await;
    let home = tempfile::tempdir().unwrap();
    let agent = Agent::start(settings(
        Some(&relay.url),
        &app.port().to_string(),
        home.path(),
    ))
    .await;
    (app, agent, home)
}

impl Agent {
    pub async fn start(settings: ListenSettings) -> Self {
        let cancel = CancellationToken::new();
        let running = bounded("agent start", listen::start(settings, cancel.clone()))
            .await
            .expect("agent starts");
        Self {
            public_url: running.public_url.clone(),
            running,
            cancel,
        }
    }

    /// The next exchange event.
    pub async fn next_exchange(&mut self) -> hooktunnel::exchange::ExchangeSummary {
        loop {
            match bounded("an exchange event", self.running.events.recv()).await {
                Some(AgentEvent::Exchange(s)) => return s,
                Some(_) => continue,
                None => panic!("agent stopped"),
            }
        }
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        let _ = bounded("agent stop", &mut self.running.task).await;
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What came back to the sender.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The plain HTTP client of the tests.
pub type Http = Client<HttpConnector, Full<Bytes>>;

/// A plain HTTP client (URIs sent exactly as given).
pub fn client() -> Http {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends one request and reads the whole answer.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: impl Into<Bytes>,
) -> Answer {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    let request = builder.body(Full::new(body.into())).unwrap();
    let response = bounded("a response", client.request(request))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = bounded("a response body", body.collect())
        .await
        .unwrap()
        .to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body,
    }
}

// ---------- the real binary, for history / replay / signature tests ----------

/// The `hooktunnel` binary with an empty environment apart from PATH, a temp
/// home and NO_COLOR; killed if the test drops it (e.g. on a timeout).
pub fn hooktunnel_cmd(home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hooktunnel"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKTUNNEL_HOME", home)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What a run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion (bounded by [`WAIT`]).
pub async fn run_cmd(cmd: &mut tokio::process::Command) -> Run {
    let out = bounded("the hooktunnel binary", cmd.output())
        .await
        .expect("the binary runs");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `hooktunnel ARGS` against `home`.
pub async fn hooktunnel_run(home: &Path, args: &[&str]) -> Run {
    run_cmd(hooktunnel_cmd(home).args(args)).await
}

/// Polls the history (bounded) until exchange `id` is stored, and returns it.
pub async fn wait_stored(home: &Path, id: &ulid::Ulid) -> hooktunnel::exchange::Exchange {
    let db = Paths::at(home).db();
    bounded("the exchange to be stored", async {
        loop {
            if let Ok(store) = hooktunnel::store::Store::open(&db)
                && let Ok(Some(e)) = store.get(id)
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Sends one request through the agent's tunnel and waits until the
/// exchange is stored; returns it.
pub async fn capture(
    agent: &mut Agent,
    home: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: impl Into<Bytes>,
) -> hooktunnel::exchange::Exchange {
    let url = format!("{}{path}", agent.public_url);
    send(&client(), method, &url, headers, body).await;
    let summary = agent.next_exchange().await;
    wait_stored(home, &summary.id).await
}

/// The usual cast: a local app, a relay with default settings and an agent
/// on a fresh temp home, all started and connected.
pub async fn setup() -> (LocalApp, Relay, Agent, tempfile::TempDir) {
    setup_with(|_| {}).await
}

/// [`setup`] with the agent's settings adjusted by `adjust` first.
pub async fn setup_with(
    adjust: impl FnOnce(&mut ListenSettings),
) -> (LocalApp, Relay, Agent, tempfile::TempDir) {
    let app = LocalApp::start().await;
    let relay = Relay::start(RelayConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut s = settings(Some(&relay.url), &app.port().to_string(), home.path());
    adjust(&mut s);
    let agent = Agent::start(s).await;
    (app, relay, agent, home)
}

/// A loopback port that refuses connections while this value lives: the
/// socket is bound but never listens, so nothing else can take the port
/// meanwhile (a port released and hoped free could be reused by anyone).
pub struct DeadPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            _socket: socket,
            port,
        }
    }
}

/// The binary as a blocking command, with an empty environment apart from
/// PATH and a temp home.
pub fn hooktunnel(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hooktunnel"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKTUNNEL_HOME", home)
        .env("NO_COLOR", "1");
    cmd
}

/// The web inspector attached to a running `agent` on a free loopback port
/// (no token), as `listen` attaches it; cancel the token to stop it.
pub async fn web_inspector(
    agent: &mut Agent,
    home: &Path,
) -> (hooktunnel::web::Web, tokio_util::sync::CancellationToken) {
    let args = hooktunnel::cli::WebArgs {
        web_addr: Some(hooktunnel::web::WebAddr::At("127.0.0.1:0".parse().unwrap())),
        web_token: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let paths = Paths::at(home);
    let web = hooktunnel::web::attach(
        &mut agent.running,
        &args,
        &paths,
        Vec::new(),
        cancel.clone(),
    )
    .await
    .unwrap()
    .expect("web started");
    (web, cancel)
}
