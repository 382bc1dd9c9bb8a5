//! `hooktunnel-relay`: the deployable relay server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use hooktunnel_relay::RelayConfig;

/// Relay server for hooktunnel: gives agents stable public URLs and streams
/// every request to them over one WebSocket.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
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
    /// A token agents must present (repeatable). Without any, every agent is accepted.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = hooktunnel_relay::config::DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("--public-url must start with http:// or https:// (got {url})");
    }
    let config = RelayConfig {
        public_url: args.public_url,
        domain: args
            .domain
            .map(|d| d.trim_matches('.').to_ascii_lowercase()),
        tokens: args.tokens,
        data_dir: args.data_dir,
        max_body_bytes: args.max_body,
        queue_limits: hooktunnel_relay::durable::QueueLimits {
            max_count: args.queue_max_count,
            max_bytes: args.queue_max_bytes,
            max_age: std::time::Duration::from_secs(args.queue_max_age),
        },
        queued_status: args.queued_status,
        ack_status: args.ack_status,
        ..RelayConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, ?config, "hooktunnel relay listening");
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
