//! The command-line contract. Doc comments here are the `--help` text.

use std::sync::LazyLock;

use clap::{Parser, Subcommand, ValueEnum};

/// `--version`: the build and the relay protocol it speaks.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (protocol {})",
        env!("CARGO_PKG_VERSION"),
        hooktunnel_relay::protocol::PROTOCOL_VERSION
    )
});

const LOG_HELP: &str = "Diagnostics go to stderr at `warn` by default: -v for info, -vv for debug, \
-vvv for trace, -q for errors only. HOOKTUNNEL_LOG sets the level in full (an env-filter \
such as `hooktunnel=debug`) when neither -v nor -q is given.";

/// A stable public URL for your local app: every webhook captured, shown
/// live, and replayable with one command.
///
/// Start with `hooktunnel listen 3000`, send a request to the URL it prints,
/// then try `hooktunnel requests` and `hooktunnel replay last`.
#[derive(Parser, Debug)]
#[command(
    name = "hooktunnel",
    version = VERSION.as_str(),
    about,
    long_about,
    propagate_version = true,
    after_long_help = LOG_HELP
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace); overrides HOOKTUNNEL_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr; overrides HOOKTUNNEL_LOG.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl Cli {
    /// The log level the flags ask for; `None` leaves it to `HOOKTUNNEL_LOG`.
    pub fn log_level(&self) -> Option<&'static str> {
        match (self.quiet, self.verbose) {
            (true, _) => Some("error"),
            (false, 0) => None,
            (false, 1) => Some("info"),
            (false, 2) => Some("debug"),
            (false, _) => Some("trace"),
        }
    }
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open a tunnel to a local app and capture every request.
    ///
    /// With no relay configured, an embedded relay starts on this machine
    /// (loopback only); pass --relay or set HOOKTUNNEL_RELAY to go public.
    #[command(
        after_help = "Examples:\n  hooktunnel listen 3000\n  hooktunnel listen http://127.0.0.1:8080/api --json\n  hooktunnel listen 3000 --relay https://hooks.example.com --name my-app\n  hooktunnel listen 3000 --basic-auth ci:s3cret --allow-ip 192.0.2.0/24\n  hooktunnel listen 3000 --verify stripe:whsec_... --verify-at-edge stripe\n  hooktunnel listen 3000 --route '/api/*=3001' --mock 'when-app-down:503:try later'\n  hooktunnel listen 3000 --inject 'delay=2s:20%' --inject 'status=503:10%' --inject 'drop=5%'\n  (rules also live in config.toml as [[tunnel]] tables: README \"Rules\")"
    )]
    Listen(Box<ListenArgs>),
    /// List captured exchanges, newest first.
    #[command(
        after_help = "Examples:\n  hooktunnel requests -n 50\n  hooktunnel requests --method POST --path '/webhooks/**' --status 5xx\n  hooktunnel requests --since 1h --grep invoice.paid --json\n  hooktunnel requests --tunnel shop --tunnel billing\n  hooktunnel requests --filter 'tunnel:shop status:5xx since:1h'"
    )]
    Requests(RequestsArgs),
    /// Show one exchange: request and response.
    Show(ShowArgs),
    /// Delivery health: counts, success rate, latency percentiles and
    /// failures by cause, per path pattern, provider and event type.
    ///
    /// Paths are folded (`/orders/123` → `/orders/:n`, ids → `:id`). Reads
    /// only a narrow index of the history, never bodies.
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Browse the stored history in the full-screen inspector (no tunnel).
    ///
    /// Keys: ↑/↓ or j/k move, Enter opens, Tab switches request/response,
    /// r replays, e edits and replays, c copies as curl, / filters, ? helps, q quits.
    /// With --web, serves the web inspector over the history instead.
    Inspect(InspectArgs),
    /// Send stored requests again: one by id, or every match of filters.
    ///
    /// The request goes out byte-for-byte as captured (method, path and
    /// query, headers in order with duplicates, body) to the local app it was
    /// captured for, or to --to. The replay is stored as a new exchange
    /// pointing at the original. Works while `listen` runs in another terminal.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Write one exchange as a curl command, HAR 1.2 or JSON.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Delete every stored exchange.
    #[command(
        after_help = "Examples:\n  hooktunnel clear          # asks first\n  hooktunnel clear --yes    # scripts: no question"
    )]
    Clear(ClearArgs),
    /// Send a realistic, freshly signed sample webhook (GitHub, Stripe, Slack, …).
    ///
    /// The event has the provider's real headers and a signature made with
    /// the current time, so the app's own verification passes. Without
    /// --sign, a secret for that provider from `verify` in config.toml or
    /// HOOKTUNNEL_VERIFY is used; with none, the event goes out unsigned.
    #[command(after_help = TRIGGER_EXAMPLES)]
    Trigger(TriggerArgs),
    /// Show this machine's tunnels (name, public URL, relay, online or not),
    /// the names remembered per relay, the history size and where files are.
    Status(StatusArgs),
    /// Free a tunnel name on the relay so anyone may claim it; its queued requests are deleted.
    ///
    /// Only the agent key that holds the name (this machine's, in config.toml)
    /// can release it, and only while no `listen` serves it.
    #[command(
        after_help = "Examples:\n  hooktunnel release my-app --relay https://hooks.example.com\n  hooktunnel release old-name --yes    # scripts: no question"
    )]
    Release(ReleaseArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `hooktunnel man | man -l -`.
    Man,
}

/// `hooktunnel status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

const COMPLETIONS_EXAMPLES: &str = "Examples:
  hooktunnel completions bash > ~/.local/share/bash-completion/completions/hooktunnel
  hooktunnel completions zsh > \"${fpath[1]}/_hooktunnel\"
  hooktunnel completions fish > ~/.config/fish/completions/hooktunnel.fish
  hooktunnel completions powershell >> $PROFILE";

/// `hooktunnel release`.
#[derive(clap::Args, Debug)]
pub struct ReleaseArgs {
    /// The tunnel name to free.
    pub name: String,
    /// Relay base URL (default: $HOOKTUNNEL_RELAY, then the config file).
    #[arg(long, env = "HOOKTUNNEL_RELAY")]
    pub relay: Option<String>,
    /// Relay token (default: $HOOKTUNNEL_TOKEN, then the config file).
    #[arg(long, env = "HOOKTUNNEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also trust this PEM CA certificate for a wss:// relay.
    #[arg(long, value_name = "FILE", env = "HOOKTUNNEL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Do not ask; required when stdin is not a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `hooktunnel completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Local app: a port (3000), HOST:PORT, or a base URL
    /// (http://127.0.0.1:8080/prefix, https://localhost:8443). With --all or
    /// --tunnel, the app of every [[tunnel]] table without its own `target`.
    #[arg(value_name = "PORT|URL", required_unless_present_any = ["all", "tunnel"])]
    pub target: Option<String>,
    /// Serve every [[tunnel]] table of config.toml over one connection to
    /// the relay: each with its `name`, its rules and its `target` (a port or
    /// URL); the flags' rules apply to all of them. See README "Rules".
    #[arg(long, conflicts_with_all = ["tunnel", "name"])]
    pub all: bool,
    /// Serve these [[tunnel]] tables of config.toml (repeatable, by name)
    /// over one connection, as --all does for every table.
    /// Example: --tunnel stripe --tunnel github
    #[arg(long, value_name = "NAME", conflicts_with = "name")]
    pub tunnel: Vec<String>,
    /// Accept any TLS certificate from an https:// local app (the
    /// self-signed ones dev servers make). Off by default.
    #[arg(long)]
    pub insecure_local: bool,
    /// Send this Host header to the local app instead of the target's
    /// host:port (for apps that route by virtual host).
    #[arg(long, value_name = "VALUE")]
    pub host_header: Option<String>,
    /// Relay base URL (default: $HOOKTUNNEL_RELAY, then the config file, else an embedded relay).
    /// Nodes of one relay cluster may be listed comma-separated
    /// (URL1,URL2): the agent moves to the next when one fails.
    #[arg(long, env = "HOOKTUNNEL_RELAY")]
    pub relay: Option<String>,
    /// Relay token (default: $HOOKTUNNEL_TOKEN, then the config file).
    #[arg(long, env = "HOOKTUNNEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tunnel name to ask for; it becomes part of the public URL.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the tunnel's live agent (another `listen` with this key, on
    /// this or another machine) instead of refusing to start; it stops.
    #[arg(long)]
    pub takeover: bool,
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
    #[arg(long, value_name = "ADDR", default_value_t = crate::config::EMBEDDED_RELAY_ADDR)]
    pub embedded_listen: std::net::SocketAddr,
    /// Most exchanges kept in history, at least 1; the oldest are evicted first (config: `keep`;
    /// default 10000). To keep nothing, run `hooktunnel clear --yes` after.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    /// Most body bytes kept in history (config: `keep_bytes`; default 1 GiB).
    #[arg(long, value_name = "BYTES")]
    pub keep_bytes: Option<u64>,
    /// Most bytes of each body kept in history: 10MiB, 512k, 1048576, or 0 for heads only
    /// (config: `capture_max`; default 10 MiB). Longer bodies are still forwarded whole; the
    /// history keeps their head, total size and SHA-256, and they cannot be replayed.
    #[arg(long, value_name = "SIZE")]
    pub capture_max: Option<crate::capture::CaptureMax>,
    /// Also trust this PEM CA certificate for a wss:// relay (a private CA or self-signed relay).
    #[arg(long, value_name = "FILE", env = "HOOKTUNNEL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print a line when a sliding window crosses a threshold, and again when it
    /// recovers (repeatable): 'error-rate>5%/5m', 'p95>2s/5m' (metrics: error-rate, p50, p95, p99).
    #[arg(long, value_name = "RULE")]
    pub alert: Vec<crate::stats::alert::Rule>,
    /// The web inspector and its API.
    #[command(flatten)]
    pub web: WebArgs,
    /// Traffic rules: who may call (enforced by the relay) and what the app sees.
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// `listen`'s traffic rules (issue 17). The same strings work in a
/// `[[tunnel]]` table of config.toml (see README "Rules").
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Traffic rules")]
pub struct RuleArgs {
    /// Require HTTP basic auth at the relay: USER:PASS (repeatable: any one
    /// matches). Only a salted hash travels to the relay; callers without it
    /// get 401. Example: --basic-auth 'ci:s3cret'
    #[arg(long, value_name = "USER:PASS")]
    pub basic_auth: Vec<String>,
    /// Only these client addresses may call (repeatable; IPv4 or IPv6, CIDR or
    /// address). Others get 403 at the relay. Example: --allow-ip 192.0.2.0/24
    #[arg(long, value_name = "CIDR")]
    pub allow_ip: Vec<String>,
    /// Refuse these client addresses (repeatable; wins over --allow-ip).
    /// Example: --deny-ip 203.0.113.9
    #[arg(long, value_name = "CIDR")]
    pub deny_ip: Vec<String>,
    /// Require a header at the relay ('Name' present, or 'Name: value' exact);
    /// others get 403. Example: --require-header 'X-Token: abc123'
    #[arg(long, value_name = "HEADER")]
    pub require_header: Vec<String>,
    /// The relay checks this provider's signature and refuses forged or
    /// unsigned requests with 401 (stripe, github). Sends the signing secret
    /// (from --verify / HOOKTUNNEL_VERIFY / config) to the relay.
    /// Example: --verify stripe:whsec_… --verify-at-edge stripe
    #[arg(long, value_name = "PROVIDER")]
    pub verify_at_edge: Option<String>,
    /// Send matching requests to another local app: '[METHOD] PATTERN=TARGET'
    /// (repeatable, first match wins, the PORT|URL argument is the default).
    /// '/api/*' is a prefix; other '*' patterns are globs.
    /// Examples: --route '/api/*=3001' --route 'POST /hooks/stripe=http://127.0.0.1:4000'
    #[arg(long, value_name = "RULE")]
    pub route: Vec<String>,
    /// Add a request header before it reaches the app (history keeps what the
    /// sender sent). Example: --add-header 'X-Env: dev'
    #[arg(long, value_name = "NAME: VALUE")]
    pub add_header: Vec<String>,
    /// Remove a request header before it reaches the app. Example: --remove-header Cookie
    /// (a '/pattern ' prefix limits any header edit to those paths: '/api/* X-Env: dev';
    /// remove then add to set a header)
    #[arg(long, value_name = "NAME")]
    pub remove_header: Vec<String>,
    /// Add a header to the answer the sender gets. Example: --add-response-header 'Cache-Control: no-store'
    #[arg(long, value_name = "NAME: VALUE")]
    pub add_response_header: Vec<String>,
    /// Remove a header from the answer the sender gets. Example: --remove-response-header Server
    #[arg(long, value_name = "NAME")]
    pub remove_response_header: Vec<String>,
    /// Answer for the app: '[PATTERN ]MODE:STATUS[:BODY|:@FILE]', MODE is
    /// `always`, `when-app-down` (instead of 502) or `when-offline` (the relay
    /// answers while this agent is away, instead of queueing). Examples:
    /// --mock '/health always:200:ok', --mock 'when-app-down:503:@down.json'
    #[arg(long, value_name = "RULE")]
    pub mock: Vec<String>,
    /// Inject faults to watch a sender retry: '[PATTERN ]delay=2s[:P%]',
    /// 'status=503:10%', 'drop=5%' (no answer; the sender times out).
    /// Injected answers are marked in the history. Example: --inject 'status=503:10%'
    #[arg(long, value_name = "FAULT")]
    pub inject: Vec<String>,
    /// Seed for --inject's random draws, for a reproducible run.
    #[arg(long, value_name = "N")]
    pub inject_seed: Option<u64>,
}

impl RuleArgs {
    /// The rule strings, as a config table would hold them.
    pub fn to_config(&self) -> crate::rules::RulesConfig {
        crate::rules::RulesConfig {
            name: None,
            target: None,
            basic_auth: self.basic_auth.clone(),
            allow_ip: self.allow_ip.clone(),
            deny_ip: self.deny_ip.clone(),
            require_header: self.require_header.clone(),
            verify_at_edge: self.verify_at_edge.clone(),
            route: self.route.clone(),
            add_header: self.add_header.clone(),
            remove_header: self.remove_header.clone(),
            add_response_header: self.add_response_header.clone(),
            remove_response_header: self.remove_response_header.clone(),
            mock: self.mock.clone(),
            inject: self.inject.clone(),
        }
    }
}

/// Where the web inspector listens, and its token.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct WebArgs {
    /// Web inspector and API address: ADDR:PORT, a port, or `off` (config: `web_addr`; default
    /// 127.0.0.1:4040, or the next free port). A non-loopback address also needs --web-token.
    #[arg(long, value_name = "ADDR|off", env = "HOOKTUNNEL_WEB_ADDR")]
    pub web_addr: Option<crate::web::WebAddr>,
    /// Token the web inspector requires (Authorization: Bearer TOKEN, or open /?token=TOKEN).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HOOKTUNNEL_WEB_TOKEN",
        hide_env_values = true
    )]
    pub web_token: Option<String>,
}

/// `hooktunnel inspect`.
#[derive(clap::Args, Debug, Default)]
pub struct InspectArgs {
    /// Serve the web inspector over the stored history (no tunnel) instead of the terminal one.
    #[arg(long)]
    pub web: bool,
    /// The web inspector's address and token.
    #[command(flatten)]
    pub web_args: WebArgs,
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
    /// Only exchanges matching these filters (all must match).
    #[command(flatten)]
    pub filter: FilterArgs,
}

const STATS_EXAMPLES: &str = "Examples:
  hooktunnel stats                       # the last hour: paths, providers, event types
  hooktunnel stats --since 1d --by event
  hooktunnel stats --path '/webhooks/**' --method POST
  hooktunnel stats --since 15m --json | jq '.total.success_rate'";

/// What `stats` groups by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsBy {
    /// Method and folded path (`POST /orders/:n`).
    Path,
    /// Webhook sender (from signatures).
    Provider,
    /// Event type (Stripe `type`, `X-GitHub-Event`, …).
    Event,
}

/// `hooktunnel stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Window: the last DURATION (10m, 2h, 1d) or since an RFC 3339 time.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub since: String,
    /// Only one section (default: path, provider and event).
    #[arg(long, value_enum)]
    pub by: Option<StatsBy>,
    /// Only this HTTP method (any case), e.g. POST.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Only path patterns matching this glob, e.g. '/orders/**' (matched
    /// against the folded pattern, so '/orders/:n' works too).
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only this status: a code (404), a class (4xx) or `error`.
    #[arg(long, value_name = "CODE|4xx|error")]
    pub status: Option<String>,
    /// Most rows per section (the busiest).
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub top: usize,
    /// Sparkline buckets across the window.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=240))]
    pub buckets: u16,
    /// Print one JSON object (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// `hooktunnel show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Exchange id (or a unique part of it), or `last`.
    #[arg(value_name = "ID|last")]
    pub id: String,
    /// Print JSON (bodies base64-encoded; header values as captured).
    #[arg(long)]
    pub json: bool,
    /// Show secret header values (Authorization, cookies, *-token, *-api-key,
    /// *-secret), which are masked by default (config: mask_secrets = false).
    #[arg(long)]
    pub reveal: bool,
}

/// Filters shared by `requests` and bulk `replay`; all given parts must match.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Filters (all given must match)")]
pub struct FilterArgs {
    /// Only this HTTP method (any case), e.g. POST.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Only paths matching this glob (query ignored): `*` stays within one
    /// segment, `**` crosses segments, e.g. '/webhooks/**'.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only this status: a code (404), a class (4xx) or `error` (no answer,
    /// or hooktunnel's own 502/504).
    #[arg(long, value_name = "CODE|4xx|error")]
    pub status: Option<String>,
    /// Only exchanges received in the last DURATION (10m, 2h, 1d, 1h30m) or
    /// since an RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only exchanges containing TEXT (case-insensitive) in the path, a
    /// header, a body or the error.
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// Only exchanges of this tunnel (its name, or a glob such as 'shop-*');
    /// repeat for any of several tunnels.
    #[arg(long = "tunnel", value_name = "NAME")]
    pub tunnels: Vec<String>,
    /// The filter as one query, as the inspector's `/` prompt reads it:
    /// 'method:POST path:/hooks/** status:4xx since:10m tunnel:shop text'.
    /// Combines with the flags above (a part given both ways is an error).
    #[arg(long = "filter", value_name = "QUERY")]
    pub query: Option<String>,
}

impl FilterArgs {
    /// True when no filter flag was given.
    pub fn is_empty(&self) -> bool {
        self.method.is_none()
            && self.path.is_none()
            && self.status.is_none()
            && self.since.is_none()
            && self.grep.is_none()
            && self.tunnels.is_empty()
            && self.query.is_none()
    }

    /// The filter these flags describe, with `since` relative to `now_ms`.
    pub fn to_filter(
        &self,
        now_ms: u64,
    ) -> Result<crate::filter::Filter, crate::filter::FilterError> {
        let flags = crate::filter::Filter::from_parts(
            self.method.as_deref(),
            self.path.as_deref(),
            self.status.as_deref(),
            self.since.as_deref(),
            self.grep.as_deref(),
            now_ms,
        )?
        .with_tunnels(self.tunnels.iter().map(String::as_str))?;
        match &self.query {
            Some(q) => flags.and(crate::filter::Filter::parse(q, now_ms)?),
            None => Ok(flags),
        }
    }
}

const REPLAY_EXAMPLES: &str = "Examples:
  hooktunnel replay last                         # the newest request, to the app it was captured for
  hooktunnel replay 7Q2M9X --to 4000             # any unique part of an id; another port or URL
  hooktunnel replay last --edit                  # change it in $VISUAL/$EDITOR first
  hooktunnel replay --since 10m --path '/webhooks/**' --dry-run
  hooktunnel replay --since 1h --status 5xx      # everything that failed in the last hour, oldest first
  hooktunnel replay last --resign                # fresh signature, secret from config.toml / HOOKTUNNEL_VERIFY
  hooktunnel replay last --resign stripe:whsec_…

Exit status: 0 when a response came back (any status, even the app's own 5xx);
1 when the target was unreachable or did not answer in time, or the id is unknown.";

/// `hooktunnel replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Exchange id (or a unique part of it), or `last`. Leave out to replay
    /// every exchange matching the filter flags instead.
    #[arg(value_name = "ID|last", conflicts_with = "FilterArgs")]
    pub id: Option<String>,
    /// Send here instead of the captured target: a port (4000) or a base URL
    /// (http://127.0.0.1:8080/prefix); the request path is appended verbatim.
    #[arg(long, value_name = "PORT|URL")]
    pub to: Option<String>,
    /// Print one JSON object per replay: {"id","replay_of","status","duration_ms","error"}.
    #[arg(long)]
    pub json: bool,
    /// Show what would be sent; send nothing (with --json: one
    /// {"id","method","path","url"} object per request).
    #[arg(long)]
    pub dry_run: bool,
    /// Edit the request before sending, as an HTTP/1.1 message; Content-Length
    /// is fixed for you. The editor is $VISUAL, else $EDITOR, else vi (as git
    /// picks it), split like a shell would, so EDITOR="code --wait" and quoted
    /// paths work. A binary body is kept in a separate file named in the
    /// message. To cancel, delete everything and save (or make the editor
    /// fail, `:cq` in vim): nothing is sent. An edit that cannot be read is
    /// kept in the temp directory; the error says where.
    #[arg(long, conflicts_with = "FilterArgs")]
    pub edit: bool,
    /// Sign the body afresh with the current time so the app's own check
    /// passes: PROVIDER:SECRET, a PROVIDER alone, or nothing (the provider is
    /// detected from the headers; the secret comes from `verify` in
    /// config.toml or HOOKTUNNEL_VERIFY).
    #[arg(long, value_name = "PROVIDER:SECRET", num_args = 0..=1, default_missing_value = "")]
    pub resign: Option<String>,
    /// With --resign: give Standard Webhooks (Svix) messages a new id, for
    /// apps that drop ids they have already seen.
    #[arg(long, requires = "resign")]
    pub new_id: bool,
    /// With --resign: sign even when the request carries another provider's
    /// signature (which is then left as it was, stale).
    #[arg(long, requires = "resign")]
    pub force: bool,
    /// Bulk replay: also replay exchanges that are themselves replays.
    #[arg(long, conflicts_with = "id")]
    pub include_replays: bool,
    /// Seconds the target has to answer.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Accept any TLS certificate from an https:// target (self-signed dev servers).
    #[arg(long)]
    pub insecure_local: bool,
    /// Which exchanges to replay when no ID is given (oldest first).
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Export formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A bash command that re-sends the request with curl, byte for byte.
    Curl,
    /// HAR 1.2 (browser dev tools, Postman, Insomnia).
    Har,
    /// The same JSON as `show --json` (bodies base64).
    Json,
}

const EXPORT_EXAMPLES: &str = "Examples:
  hooktunnel export last --format curl > replay.sh && bash replay.sh
  hooktunnel export 7Q2M9X --format curl --to http://staging.internal:8080
  hooktunnel export last --format har --output hook.har

A body that cannot be written inline in the curl command (binary, NUL bytes)
is written to a file next to --output (or to ./hooktunnel-<id>.body), which
the command reads; stderr says where.";

/// `hooktunnel export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Exchange id (or a unique part of it), or `last`.
    #[arg(value_name = "ID|last")]
    pub id: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    pub format: ExportFormat,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// curl only: send to this base URL or port instead of the captured target.
    #[arg(long, value_name = "PORT|URL")]
    pub to: Option<String>,
}

/// `hooktunnel clear`.
#[derive(clap::Args, Debug)]
pub struct ClearArgs {
    /// Do not ask; required when stdin is not a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

const TRIGGER_EXAMPLES: &str = "Examples:
  hooktunnel trigger --list
  hooktunnel trigger stripe.payment_intent.succeeded --to 3000 --sign stripe:whsec_…
  hooktunnel trigger github.push --tunnel            # through this machine's tunnel (listen must run)
  hooktunnel trigger push --to http://127.0.0.1:8080/api";

/// `hooktunnel trigger`.
#[derive(clap::Args, Debug)]
pub struct TriggerArgs {
    /// Sample event name (see --list); the part after the provider is enough
    /// when unambiguous (`push`, `orders.create`).
    #[arg(value_name = "EVENT", required_unless_present = "list")]
    pub event: Option<String>,
    /// List the sample events and exit.
    #[arg(long, conflicts_with_all = ["event", "to", "tunnel", "sign"])]
    pub list: bool,
    /// Send to this local app: a port (3000) or a base URL; the sample's path
    /// (e.g. /webhooks/stripe) is appended.
    #[arg(long, value_name = "PORT|URL", conflicts_with = "tunnel")]
    pub to: Option<String>,
    /// Send through this machine's tunnel: the public URL of the running
    /// `listen` (see `hooktunnel status`); with none running, <relay>/t/<name>
    /// with the name remembered for the relay from HOOKTUNNEL_RELAY,
    /// config.toml, or the embedded default http://127.0.0.1:7070.
    #[arg(long)]
    pub tunnel: bool,
    /// Sign with this secret: PROVIDER:SECRET (the provider must be the event's).
    #[arg(long, value_name = "PROVIDER:SECRET")]
    pub sign: Option<crate::verify::SecretSpec>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
}
