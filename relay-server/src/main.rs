//! `hooktunnel-relay`: the deployable relay server.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::LazyLock;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use hooktunnel_relay::RelayConfig;
use hooktunnel_relay::protocol::PROTOCOL_VERSION;

/// `--version`: the build and the wire protocol it speaks.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (protocol {PROTOCOL_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
});

/// How log lines are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One line of text per event (colour only on a terminal without NO_COLOR).
    Text,
    /// One JSON object per line (journald, Loki).
    Json,
}

/// Relay server for hooktunnel: gives agents stable public URLs and streams
/// every request to them over one WebSocket.
///
/// Log level: RUST_LOG (default `info`), e.g. RUST_LOG=hooktunnel_relay=debug.
#[derive(Parser, Debug)]
#[command(version = VERSION.as_str(), about, long_about)]
struct Args {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "HOOKTUNNEL_RELAY_LOG_FORMAT")]
    log_format: LogFormat,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "HOOKTUNNEL_RELAY_LISTEN")]
    listen: SocketAddr,
    /// Public base URL to advertise, e.g. https://hooks.example.com (when behind a proxy or TLS terminator).
    #[arg(long, env = "HOOKTUNNEL_RELAY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Base domain for subdomain URLs: <name>.<domain> (needs wildcard DNS).
    #[arg(long, env = "HOOKTUNNEL_RELAY_DOMAIN")]
    domain: Option<String>,
    /// Directory for durable state (queue, name registry).
    #[arg(long, env = "HOOKTUNNEL_RELAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A token agents must present (repeatable). Without any token (here or in
    /// --tokens-file), every agent is accepted.
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "HOOKTUNNEL_RELAY_TOKEN",
        hide_env_values = true
    )]
    tokens: Vec<String>,
    /// File of accepted tokens as SHA-256 hex digests, one per line (`#` starts a comment);
    /// make a line with `printf %s "$TOKEN" | sha256sum`.
    #[arg(long, value_name = "FILE", env = "HOOKTUNNEL_RELAY_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// Serve https and wss with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    #[arg(env = "HOOKTUNNEL_RELAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    #[arg(env = "HOOKTUNNEL_RELAY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Trust X-Forwarded-For/-Proto/-Host and Forwarded from the peer (set only behind your own
    /// reverse proxy); the relay then appends to them and rate-limits by the forwarded address.
    #[arg(long)]
    trust_proxy: bool,
    /// Requests per client IP (IPv6: per /64): N/s or N/m, optional :BURST, or `off` (then 429).
    #[arg(long, value_name = "RATE", default_value = "100/s:200")]
    rate_per_ip: Rate,
    /// Requests per tunnel: N/s or N/m, optional :BURST, or `off` (then 429).
    #[arg(long, value_name = "RATE", default_value = "200/s:400")]
    rate_per_tunnel: Rate,
    /// Requests waiting for one tunnel's agent at once (then 503).
    #[arg(long, value_name = "N", default_value_t = hooktunnel_relay::config::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Seconds a client has to send a complete request head (slowloris guard).
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::config::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// Seconds a client has to send a complete request body (then 408).
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::config::DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    body_timeout: u64,
    /// Most tunnel names one agent key may hold; `hooktunnel release NAME` frees one.
    #[arg(long, value_name = "N", default_value_t = hooktunnel_relay::config::DEFAULT_MAX_NAMES_PER_KEY)]
    max_names_per_key: u64,
    /// Largest request body accepted, in bytes. Bodies stream through the
    /// relay, so this bounds what senders may send, not the relay's memory.
    #[arg(long, default_value_t = hooktunnel_relay::config::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
    /// Bytes of request and response bodies the relay may hold in memory at
    /// once, over all tunnels; past it new requests get 503 with Retry-After.
    #[arg(long, value_name = "BYTES", default_value_t = hooktunnel_relay::config::DEFAULT_MEMORY_BUDGET)]
    memory_budget: u64,
    /// Seconds a client may read nothing of the answer it is sent before its
    /// connection is closed (a sender that never reads cannot pin a stream).
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::config::DEFAULT_WRITE_TIMEOUT.as_secs())]
    write_timeout: u64,
    /// Run as one node of a cluster: names, the queue and tunnel ownership
    /// live in this Redis (redis://HOST:PORT/DB) instead of --data-dir.
    /// Redis must run with maxmemory-policy noeviction (checked) and should
    /// run with appendonly yes. See deploy/cluster.md.
    #[arg(
        long,
        value_name = "REDIS_URL",
        env = "HOOKTUNNEL_RELAY_CLUSTER",
        hide_env_values = true
    )]
    cluster: Option<String>,
    /// This node's id in the cluster (default: host name plus a random suffix).
    #[arg(long, env = "HOOKTUNNEL_RELAY_NODE_ID", requires = "cluster")]
    node_id: Option<String>,
    /// Secret shared by the cluster's nodes for node-to-node requests (never
    /// an agent token); required with --cluster.
    #[arg(
        long,
        env = "HOOKTUNNEL_RELAY_CLUSTER_SECRET",
        hide_env_values = true,
        requires = "cluster"
    )]
    cluster_secret: Option<String>,
    /// Address for node-to-node traffic: HTTP/2, in clear text unless
    /// --internal-tls. Keep it on a private network, firewalled.
    #[arg(
        long,
        value_name = "ADDR",
        env = "HOOKTUNNEL_RELAY_INTERNAL_LISTEN",
        requires = "cluster"
    )]
    internal_listen: Option<SocketAddr>,
    /// Address peers dial to reach --internal-listen, when it differs (NAT, containers).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "HOOKTUNNEL_RELAY_INTERNAL_ADVERTISE",
        requires = "internal_listen"
    )]
    internal_advertise: Option<String>,
    /// Encrypt node-to-node traffic with TLS, using --tls-cert and --tls-key
    /// (which also serve the public listener). The --internal-listen
    /// listener then speaks TLS and requires a client certificate, and this
    /// node dials peers over TLS presenting the same certificate. Each side
    /// verifies the other's certificate against the certificates in the
    /// --tls-cert file (so one self-signed certificate, or a leaf followed
    /// by a private CA, shared by all nodes works) and --internal-ca; a
    /// peer's certificate must name the host of its --internal-advertise
    /// (else --internal-listen) address, DNS name or IP. Give every node the
    /// same setting: a TLS node and a clear-text node cannot reach each
    /// other (logged; requests are queued). See deploy/cluster.md.
    #[arg(
        long,
        env = "HOOKTUNNEL_RELAY_INTERNAL_TLS",
        value_parser = clap::builder::BoolishValueParser::new(),
        requires = "cluster",
        requires = "tls_cert"
    )]
    internal_tls: bool,
    /// More CA certificates (PEM) to trust for peer nodes with --internal-tls,
    /// besides those in the --tls-cert file (e.g. while moving to a new CA).
    #[arg(
        long,
        value_name = "FILE",
        env = "HOOKTUNNEL_RELAY_INTERNAL_CA",
        requires = "internal_tls"
    )]
    internal_ca: Option<PathBuf>,
    /// Seconds a node holds a tunnel without renewing its lease (renewed every third).
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::cluster::DEFAULT_LEASE_TTL.as_secs(), requires = "cluster")]
    lease_ttl: u64,
    /// Most requests queued per tunnel while its agent is away (then 507).
    #[arg(long, default_value_t = hooktunnel_relay::config::DEFAULT_QUEUE_MAX_COUNT)]
    queue_max_count: u64,
    /// Most bytes queued per tunnel (then 507).
    #[arg(long, default_value_t = hooktunnel_relay::config::DEFAULT_QUEUE_MAX_BYTES)]
    queue_max_bytes: u64,
    /// Queued requests older than this many seconds are dropped (logged).
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::config::DEFAULT_QUEUE_MAX_AGE.as_secs())]
    queue_max_age: u64,
    /// Status for requests queued while the agent is away (tunnels may choose their own).
    #[arg(long, default_value_t = 202, value_parser = clap::value_parser!(u16).range(200..300))]
    queued_status: u16,
    /// Status for requests accepted by tunnels in ack mode.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..300))]
    ack_status: u16,
    /// In-flight requests one client address (IPv6: /64) may hold in one tunnel (then 429);
    /// default: an eighth of --max-in-flight, at least 4.
    #[arg(long, value_name = "N")]
    max_in_flight_per_ip: Option<usize>,
    /// Slowest request body accepted after --body-rate-grace, in bytes/s (then 408); 0 turns it off.
    #[arg(long, value_name = "BYTES", default_value_t = hooktunnel_relay::config::DEFAULT_MIN_BODY_RATE)]
    min_body_rate: u64,
    /// Seconds a body may take before --min-body-rate applies.
    #[arg(long, value_name = "SECS", default_value_t = hooktunnel_relay::config::DEFAULT_BODY_RATE_GRACE.as_secs())]
    body_rate_grace: u64,
    /// Largest body queued for an agent that is away (or in ack mode), in bytes (then 413).
    #[arg(long, value_name = "BYTES", default_value_t = hooktunnel_relay::config::DEFAULT_QUEUE_MAX_ENTRY)]
    queue_max_entry: usize,
    /// Open connections one client address (IPv6: /64) may hold; more are closed at once.
    /// Behind --trust-proxy this counts the proxy's own connections: raise it to suit.
    #[arg(long, value_name = "N", default_value_t = hooktunnel_relay::config::DEFAULT_MAX_CONNS_PER_IP)]
    max_conns_per_ip: usize,
    /// Serve /_hooktunnel/metrics on the main listener to `Authorization: Bearer TOKEN` only
    /// (without this and --metrics-listen, metrics are not served: 404).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HOOKTUNNEL_RELAY_METRICS_TOKEN",
        hide_env_values = true
    )]
    metrics_token: Option<String>,
    /// Serve metrics without a token on this separate address, e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// A rate flag value (`off` is `None`).
#[derive(Clone, Debug)]
struct Rate(Option<hooktunnel_relay::config::RateLimit>);

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hooktunnel_relay::config::parse_rate(s).map(Rate)
    }
}

/// Reads `--tokens-file`; errors name the file and line, never a token.
fn read_tokens_file(path: &std::path::Path) -> anyhow::Result<Vec<[u8; 32]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --tokens-file {}", path.display()))?;
    let hashes = hooktunnel_relay::config::parse_token_hashes(&text)
        .with_context(|| format!("bad --tokens-file {}", path.display()))?;
    if hashes.is_empty() {
        anyhow::bail!(
            "--tokens-file {} holds no token digests; add `printf %s TOKEN | sha256sum` lines or drop the flag",
            path.display()
        );
    }
    Ok(hashes)
}

/// Installs the log subscriber: `RUST_LOG` (default `info`), text or JSON
/// on stderr, colour only for a terminal without `NO_COLOR`.
fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init();
        }
    }
}

/// Creates the data directory and proves it writable, so a bad path fails
/// at startup with its name rather than on the first queued request.
fn check_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create --data-dir {}", dir.display()))?;
    let probe = dir.join(".hooktunnel-write-test");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("--data-dir {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hooktunnel-relay: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the causes, never a backtrace: this is an operator's message.
            eprintln!("hooktunnel-relay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("--public-url must start with http:// or https:// (got {url})");
    }
    if args.header_timeout == 0 || args.body_timeout == 0 || args.write_timeout == 0 {
        anyhow::bail!(
            "--header-timeout, --body-timeout and --write-timeout must be at least 1 second"
        );
    }
    let token_hashes = match &args.tokens_file {
        Some(path) => read_tokens_file(path)?,
        None => Vec::new(),
    };
    if args.tokens.is_empty() && token_hashes.is_empty() {
        tracing::warn!("no --token or --tokens-file: any agent may open tunnels on this relay");
    }
    let tls = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(hooktunnel_relay::config::TlsFiles { cert, key }),
        _ => None,
    };
    let cluster = match args.cluster {
        Some(url) => {
            let secret = args
                .cluster_secret
                .filter(|s| !s.is_empty())
                .context("--cluster needs --cluster-secret (or HOOKTUNNEL_RELAY_CLUSTER_SECRET), the same on every node")?;
            anyhow::ensure!(
                secret.len() >= 16,
                "--cluster-secret must be at least 16 characters"
            );
            anyhow::ensure!(
                args.lease_ttl >= 3,
                "--lease-ttl must be at least 3 seconds"
            );
            let mut cluster = hooktunnel_relay::cluster::ClusterConfig::new(&url, &secret);
            if let Some(id) = args.node_id {
                cluster.node_id = id;
            }
            cluster.lease_ttl = std::time::Duration::from_secs(args.lease_ttl);
            cluster.internal_listen = args.internal_listen;
            cluster.internal_advertise = args.internal_advertise;
            if args.internal_tls {
                let files = tls
                    .clone()
                    .context("--internal-tls needs --tls-cert and --tls-key: nodes present that certificate to each other")?;
                cluster.internal_tls = Some(hooktunnel_relay::config::InternalTls {
                    files,
                    ca: args.internal_ca,
                });
            } else if args.internal_listen.is_some() {
                tracing::warn!(
                    "--internal-listen without --internal-tls: node-to-node requests, the cluster secret with them, \
                     travel in clear text; keep that network private or add --internal-tls"
                );
            }
            Some(cluster)
        }
        None => None,
    };
    let config = RelayConfig {
        cluster,
        public_url: args.public_url,
        domain: args
            .domain
            .map(|d| d.trim_matches('.').to_ascii_lowercase()),
        tokens: args.tokens,
        token_hashes,
        trust_proxy: args.trust_proxy,
        rate_per_ip: args.rate_per_ip.0,
        rate_per_tunnel: args.rate_per_tunnel.0,
        max_in_flight_per_tunnel: args.max_in_flight.max(1),
        header_read_timeout: std::time::Duration::from_secs(args.header_timeout),
        body_read_timeout: std::time::Duration::from_secs(args.body_timeout),
        tls,
        data_dir: args.data_dir,
        max_body_bytes: args.max_body,
        queue_limits: hooktunnel_relay::durable::QueueLimits {
            max_count: args.queue_max_count,
            max_bytes: args.queue_max_bytes,
            max_age: std::time::Duration::from_secs(args.queue_max_age),
        },
        queued_status: args.queued_status,
        ack_status: args.ack_status,
        max_in_flight_per_ip: Some(
            args.max_in_flight_per_ip
                .unwrap_or_else(|| RelayConfig::default_in_flight_share(args.max_in_flight))
                .max(1),
        ),
        min_body_rate: args.min_body_rate,
        body_rate_grace: std::time::Duration::from_secs(args.body_rate_grace),
        queue_max_entry: args.queue_max_entry,
        max_conns_per_ip: args.max_conns_per_ip.max(1),
        metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
        metrics_listen: args.metrics_listen,
        max_names_per_key: args.max_names_per_key,
        memory_budget: args.memory_budget,
        write_timeout: std::time::Duration::from_secs(args.write_timeout),
        ..RelayConfig::default()
    };
    // Fail before binding, with the file named, rather than after "listening".
    if let Some(files) = &config.tls {
        hooktunnel_relay::tls::acceptor(files)?;
    }
    if let Some(cluster) = &config.cluster
        && let Some(internal) = &cluster.internal_tls
    {
        if cluster
            .internal_listen
            .is_some_and(|a| a.ip().is_unspecified())
            && cluster.internal_advertise.is_none()
        {
            anyhow::bail!(
                "--internal-listen {} is not an address peers can dial: with --internal-tls give --internal-advertise HOST:PORT, \
                 with a HOST the certificate names",
                cluster
                    .internal_listen
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            );
        }
        hooktunnel_relay::tls::internal(internal, &hooktunnel_relay::cluster::advertised(cluster))?;
    }
    if let Some(dir) = &config.data_dir {
        check_data_dir(dir)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!("hooktunnel-relay {}", VERSION.as_str());
    for (name, value) in config.describe() {
        tracing::info!("{name}: {value}");
    }
    tracing::info!(addr = %listener.local_addr()?, "hooktunnel relay listening");
    hooktunnel_relay::serve(listener, config, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
