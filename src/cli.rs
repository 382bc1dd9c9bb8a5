//! The command-line contract. Doc comments here are the `--help` text.

use clap::{Parser, Subcommand, ValueEnum};

/// A stable public URL for your local app: every webhook captured, shown
/// live, and replayable with one command.
///
/// Start with `hooktunnel listen 3000`, send a request to the URL it prints,
/// then try `hooktunnel requests` and `hooktunnel replay last`.
#[derive(Parser, Debug)]
#[command(
    name = "hooktunnel",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open a tunnel to a local app and capture every request.
    ///
    /// With no relay configured, an embedded relay starts on this machine
    /// (loopback only); pass --relay or set HOOKTUNNEL_RELAY to go public.
    #[command(
        after_help = "Examples:\n  hooktunnel listen 3000\n  hooktunnel listen http://127.0.0.1:8080/api --json\n  hooktunnel listen 3000 --relay https://hooks.example.com --name my-app"
    )]
    Listen(ListenArgs),
    /// List captured exchanges, newest first.
    Requests(RequestsArgs),
    /// Show one exchange: request and response.
    Show(ShowArgs),
}

/// How senders are answered.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The sender gets the local app's real response.
    Proxy,
    /// The relay answers as soon as the request is durably captured.
    Ack,
}

/// `hooktunnel listen`.
#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Local app: a port (3000) or a base URL (http://127.0.0.1:8080/prefix).
    #[arg(value_name = "PORT|URL")]
    pub target: String,
    /// Relay base URL (default: $HOOKTUNNEL_RELAY, then the config file, else an embedded relay).
    #[arg(long, env = "HOOKTUNNEL_RELAY")]
    pub relay: Option<String>,
    /// Relay token (default: $HOOKTUNNEL_TOKEN, then the config file).
    #[arg(long, env = "HOOKTUNNEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tunnel name to ask for; it becomes part of the public URL.
    #[arg(long)]
    pub name: Option<String>,
    /// How senders are answered: `proxy` returns the local app's response; `ack` answers 200 as
    /// soon as the relay has stored the request, then delivers it (for senders with short timeouts).
    #[arg(long, value_enum, default_value_t = ModeArg::Proxy)]
    pub mode: ModeArg,
    /// Seconds the local app has to answer before the sender gets 504.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Retries for a queued or ack-mode delivery when the local app fails (5xx or unreachable),
    /// with exponential backoff and jitter.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Status senders get while this agent is offline (their request is queued). Default 202.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(200..300))]
    pub queued_status: Option<u16>,
    /// Body senders get while this agent is offline; `{id}` becomes the request id.
    #[arg(long, value_name = "TEXT", requires = "queued_status")]
    pub queued_body: Option<String>,
    /// Print one JSON object per line instead of log lines.
    #[arg(long)]
    pub json: bool,
    /// Print log lines even on a terminal (no full-screen inspector).
    #[arg(long)]
    pub no_tui: bool,
    /// Check webhook signatures: PROVIDER:SECRET (repeatable; also `verify = [...]` in the
    /// config file or HOOKTUNNEL_VERIFY, comma-separated, to keep secrets out of shell history).
    /// Providers: github, stripe, slack, shopify, standard-webhooks (svix), twilio.
    #[arg(
        long,
        value_name = "PROVIDER:SECRET",
        env = "HOOKTUNNEL_VERIFY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub verify: Vec<crate::verify::SecretSpec>,
    /// Address for the embedded relay when no relay is configured (falls back to a free port if 7070 is taken).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub embedded_listen: std::net::SocketAddr,
    /// Also trust this PEM CA certificate for a wss:// relay (a private CA or self-signed relay).
    #[arg(long, value_name = "FILE", env = "HOOKTUNNEL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// `hooktunnel requests`.
#[derive(clap::Args, Debug)]
pub struct RequestsArgs {
    /// Most exchanges to list.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `hooktunnel show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Exchange id (or a unique part of it), or `last`.
    #[arg(value_name = "ID|last")]
    pub id: String,
    /// Print JSON (bodies base64-encoded).
    #[arg(long)]
    pub json: bool,
}
