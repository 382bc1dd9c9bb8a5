//! Relay settings, validated once and shared read-only.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// Default cap on one request body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default time the relay waits for an agent's answer before replying 504.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default per-tunnel queue bounds.
pub const DEFAULT_QUEUE_MAX_COUNT: u64 = 10_000;
/// Default per-tunnel queue bytes: 256 MiB.
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default age after which queued requests are dropped: 7 days.
pub const DEFAULT_QUEUE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an agent has to send `hello` after the upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes an agent may send before its tunnel is registered (the `hello`).
pub const MAX_HELLO_BYTES: usize = 64 * 1024;
/// Longest request target (path and query) accepted; longer answers 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and headers); larger answers 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request; more answers 431.
pub const MAX_HEADERS: usize = 100;
/// Default time a client has to send a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time a client has to send a complete request body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on requests waiting for one tunnel's agent at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Default slowest accepted body rate, in bytes per second (after the grace period).
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// Default time a body may take before [`DEFAULT_MIN_BODY_RATE`] applies.
pub const DEFAULT_BODY_RATE_GRACE: Duration = Duration::from_secs(5);
/// Default cap on one queued request body (agent away or ack mode): 1 MiB.
pub const DEFAULT_QUEUE_MAX_ENTRY: usize = 1024 * 1024;
/// Default cap on open connections from one client address (IPv6: per /64).
pub const DEFAULT_MAX_CONNS_PER_IP: usize = 256;
/// Default cap on tunnel names one agent key may hold.
pub const DEFAULT_MAX_NAMES_PER_KEY: u64 = 10;
/// Default relay-wide budget for body bytes held in memory: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 * 1024 * 1024;
/// Default time a public connection may refuse to read what the relay writes.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A token-bucket rate: `count` requests per `period`, bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests replenished per period.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Requests allowed at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `count` per second with a burst of twice that.
    pub fn per_second(count: NonZeroU32) -> Self {
        Self {
            count,
            period: Duration::from_secs(1),
            burst: double(count),
        }
    }
}

fn double(count: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new(count.get().saturating_mul(2)).unwrap_or(count)
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.period == Duration::from_secs(60) {
            "m"
        } else {
            "s"
        };
        write!(f, "{}/{unit}:{}", self.count, self.burst)
    }
}

/// Parses a rate flag: `N/s` or `N/m`, optionally `:BURST` (default 2×N),
/// or `off` (no limit).
///
/// ```
/// use hooktunnel_relay::config::parse_rate;
/// let r = parse_rate("100/s").unwrap().unwrap();
/// assert_eq!((r.count.get(), r.burst.get()), (100, 200));
/// assert_eq!(parse_rate("off"), Ok(None));
/// assert!(parse_rate("fast").is_err());
/// ```
pub fn parse_rate(text: &str) -> Result<Option<RateLimit>, String> {
    const USAGE: &str = "use N/s or N/m, optionally :BURST (e.g. 100/s or 100/s:300), or off";
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (rate, burst) = match text.split_once(':') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (text, None),
    };
    let (count, unit) = rate
        .split_once('/')
        .ok_or_else(|| format!("bad rate '{text}': {USAGE}"))?;
    let count: NonZeroU32 = count
        .trim()
        .parse()
        .map_err(|_| format!("bad rate '{text}': the count must be a positive integer; {USAGE}"))?;
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        _ => return Err(format!("bad rate '{text}': {USAGE}")),
    };
    let burst = match burst {
        Some(b) => b.trim().parse().map_err(|_| {
            format!("bad rate '{text}': the burst must be a positive integer; {USAGE}")
        })?,
        None => double(count),
    };
    Ok(Some(RateLimit {
        count,
        period,
        burst,
    }))
}

/// A line of a tokens file that is not a SHA-256 hex digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "line {line} of the tokens file is not a SHA-256 hex digest (64 hex digits); store `printf %s TOKEN | sha256sum` output, one per line"
)]
pub struct TokenFileError {
    /// 1-based line number.
    pub line: usize,
}

/// Parses a tokens file: one SHA-256 hex digest per line; blank lines and
/// text after `#` are ignored. Never echoes the file's contents in errors.
///
/// ```
/// use hooktunnel_relay::config::parse_token_hashes;
/// let text = "# ops team\n2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae  # foo\n";
/// assert_eq!(parse_token_hashes(text).unwrap().len(), 1);
/// assert!(parse_token_hashes("foo\n").is_err());
/// ```
pub fn parse_token_hashes(text: &str) -> Result<Vec<[u8; 32]>, TokenFileError> {
    let mut hashes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(content, &mut digest).map_err(|_| TokenFileError { line: i + 1 })?;
        hashes.push(digest);
    }
    Ok(hashes)
}

/// PEM files for serving https and wss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// TLS between cluster nodes (`--internal-tls`): the internal listener
/// serves it and peers are dialled over it, both sides presenting `files`
/// and verifying the other against the certificates in `files.cert` and
/// `ca` (mutual TLS). The binary takes `files` from `--tls-cert`/`--tls-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalTls {
    /// This node's certificate chain (leaf first) and key.
    pub files: TlsFiles,
    /// More trusted CA certificates (PEM), besides those in `files.cert`.
    pub ca: Option<PathBuf>,
}

/// Everything the relay needs to run.
#[derive(Clone)]
pub struct RelayConfig {
    /// URL to advertise (behind a proxy or TLS terminator); defaults to `http(s)://<listen addr>`.
    pub public_url: Option<String>,
    /// Base domain for `<name>.<domain>` routing (lowercase, no dots at the ends).
    pub domain: Option<String>,
    /// Accepted agent tokens; with no tokens and no `token_hashes`, every agent is accepted.
    pub tokens: Vec<String>,
    /// SHA-256 digests of further accepted tokens (`--tokens-file`).
    pub token_hashes: Vec<[u8; 32]>,
    /// Directory for durable state.
    pub data_dir: Option<PathBuf>,
    /// Largest request body accepted from senders.
    pub max_body_bytes: usize,
    /// How long to wait for the agent's answer.
    pub response_timeout: Duration,
    /// Bounds on each tunnel's offline queue.
    pub queue_limits: crate::durable::QueueLimits,
    /// Status for requests queued while the agent is away (tunnels may override).
    pub queued_status: u16,
    /// Status for requests accepted in ack mode.
    pub ack_status: u16,
    /// Trust `X-Forwarded-*` and `Forwarded` from the peer (a reverse proxy) and append to them.
    pub trust_proxy: bool,
    /// Requests per client IP (IPv6: per /64); `None` is unlimited.
    pub rate_per_ip: Option<RateLimit>,
    /// Requests per tunnel; `None` is unlimited.
    pub rate_per_tunnel: Option<RateLimit>,
    /// Requests waiting for one tunnel's agent at once; more answer 503.
    pub max_in_flight_per_tunnel: usize,
    /// Time to receive a complete request head (slowloris guard); the connection is closed after.
    pub header_read_timeout: Duration,
    /// Time to receive a complete request body; 408 after.
    pub body_read_timeout: Duration,
    /// Serve https/wss with these PEM files.
    pub tls: Option<TlsFiles>,
    /// In-flight slots one client address may hold in one tunnel; `None` is
    /// no per-address share (the binary sets [`RelayConfig::default_in_flight_share`]).
    pub max_in_flight_per_ip: Option<usize>,
    /// Slowest body accepted after [`RelayConfig::body_rate_grace`], bytes/s; 0 turns the check off (then 408).
    pub min_body_rate: u64,
    /// Time a body may take before `min_body_rate` applies.
    pub body_rate_grace: Duration,
    /// Largest body stored in a tunnel's queue (agent away or ack mode); larger answers 413.
    pub queue_max_entry: usize,
    /// Open connections one TCP peer address may hold; more are closed at
    /// accept (behind a proxy, the proxy's address: raise it there).
    pub max_conns_per_ip: usize,
    /// Serves `/_hooktunnel/metrics` to requests carrying `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Serves metrics (without a token) on this separate address instead.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Most tunnel names one agent key may hold (`hooktunnel release` frees one).
    pub max_names_per_key: u64,
    /// Relay-wide budget for body bytes held in memory; past it new requests get 503.
    pub memory_budget: u64,
    /// A connection whose peer reads nothing for this long is closed.
    pub write_timeout: Duration,
    /// Run as one node of a cluster on Redis (names, queue and tunnel
    /// ownership in Redis; `data_dir` unused); `None`: one node on SQLite.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl RelayConfig {
    /// The relay binary's per-address share of a tunnel's `max` in-flight
    /// slots: an eighth, at least 4, so one sender cannot occupy them all.
    pub fn default_in_flight_share(max: usize) -> usize {
        (max / 8).max(4)
    }
}

impl Default for RelayConfig {
    /// Defaults for a relay on loopback (the embedded relay, tests): no rate
    /// limits and no per-address in-flight share. The `hooktunnel-relay`
    /// binary sets both by default.
    fn default() -> Self {
        Self {
            public_url: None,
            domain: None,
            tokens: Vec::new(),
            token_hashes: Vec::new(),
            data_dir: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            queue_limits: crate::durable::QueueLimits {
                max_count: DEFAULT_QUEUE_MAX_COUNT,
                max_bytes: DEFAULT_QUEUE_MAX_BYTES,
                max_age: DEFAULT_QUEUE_MAX_AGE,
            },
            queued_status: 202,
            ack_status: 200,
            trust_proxy: false,
            rate_per_ip: None,
            rate_per_tunnel: None,
            max_in_flight_per_tunnel: DEFAULT_MAX_IN_FLIGHT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            tls: None,
            max_in_flight_per_ip: None,
            min_body_rate: DEFAULT_MIN_BODY_RATE,
            body_rate_grace: DEFAULT_BODY_RATE_GRACE,
            queue_max_entry: DEFAULT_QUEUE_MAX_ENTRY,
            max_conns_per_ip: DEFAULT_MAX_CONNS_PER_IP,
            metrics_token: None,
            metrics_listen: None,
            max_names_per_key: DEFAULT_MAX_NAMES_PER_KEY,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            cluster: None,
        }
    }
}

impl RelayConfig {
    /// The effective settings as `(name, value)` pairs for the startup log,
    /// in words rather than a Debug dump; tokens appear only as a count.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let or = |value: &Option<String>, none: &str| value.clone().unwrap_or_else(|| none.into());
        let rate = |r: &Option<RateLimit>| r.map_or_else(|| "off".into(), |r| r.to_string());
        let tokens = self.tokens.len() + self.token_hashes.len();
        vec![
            (
                "public url",
                or(&self.public_url, "(from the listen address)"),
            ),
            (
                "subdomains",
                self.domain
                    .as_ref()
                    .map_or_else(|| "off (use --domain)".into(), |d| format!("<name>.{d}")),
            ),
            (
                "data dir",
                match (&self.data_dir, &self.cluster) {
                    // Cluster mode keeps names and queue in Redis; --data-dir is unused.
                    (_, Some(_)) => "not used: queue and names in Redis (--cluster)".into(),
                    (Some(d), None) => d.display().to_string(),
                    (None, None) => "none: queue and names in memory, lost on restart".into(),
                },
            ),
            (
                "agent tokens",
                if tokens == 0 {
                    "none: any agent may connect".into()
                } else {
                    format!("{tokens} accepted")
                },
            ),
            (
                "tls",
                self.tls.as_ref().map_or_else(
                    || "off".into(),
                    |t| format!("cert {}, key {}", t.cert.display(), t.key.display()),
                ),
            ),
            ("trust proxy headers", self.trust_proxy.to_string()),
            ("rate per ip", rate(&self.rate_per_ip)),
            ("rate per tunnel", rate(&self.rate_per_tunnel)),
            (
                "max in flight per tunnel",
                self.max_in_flight_per_tunnel.to_string(),
            ),
            ("max body", format!("{} bytes", self.max_body_bytes)),
            (
                "memory budget",
                format!(
                    "{} MiB of buffered bodies",
                    self.memory_budget / (1024 * 1024)
                ),
            ),
            (
                "queue per tunnel",
                format!(
                    "{} requests, {} bytes, {}s",
                    self.queue_limits.max_count,
                    self.queue_limits.max_bytes,
                    self.queue_limits.max_age.as_secs()
                ),
            ),
            (
                "timeouts",
                format!(
                    "head {}s, body {}s, agent answer {}s, write {}s",
                    self.header_read_timeout.as_secs(),
                    self.body_read_timeout.as_secs(),
                    self.response_timeout.as_secs(),
                    self.write_timeout.as_secs()
                ),
            ),
            (
                "statuses",
                format!("queued {}, ack {}", self.queued_status, self.ack_status),
            ),
            (
                "cluster",
                self.cluster.as_ref().map_or_else(
                    || "off (one node, SQLite)".into(),
                    |c| {
                        format!(
                            "node {}, {}, node-to-node {}",
                            c.node_id,
                            crate::cluster::redacted(&c.redis_url),
                            match (&c.internal_tls, &c.internal_listen) {
                                (Some(_), _) => "over TLS",
                                (None, Some(_)) => "in clear text",
                                (None, None) => "outgoing only, in clear text",
                            }
                        )
                    },
                ),
            ),
        ]
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: show how many, never what.
        let mut d = f.debug_struct("RelayConfig");
        d.field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field(
                "token_hashes",
                &format_args!("[{} redacted]", self.token_hashes.len()),
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            );
        macro_rules! show {
            ($($field:ident),*) => { $(d.field(stringify!($field), &self.$field);)* };
        }
        show! {
            public_url, domain, data_dir, max_body_bytes, response_timeout, queue_limits,
            queued_status, ack_status, trust_proxy, rate_per_ip, rate_per_tunnel,
            max_in_flight_per_tunnel, header_read_timeout, body_read_timeout, tls,
            max_in_flight_per_ip, min_body_rate, body_rate_grace, queue_max_entry, max_conns_per_ip, metrics_listen, max_names_per_key,
            memory_budget, write_timeout, cluster
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_never_shows_tokens() {
        let config = RelayConfig {
            tokens: vec!["s3cret-token".into()],
            token_hashes: vec![[7; 32]],
            metrics_token: Some("m3trics-secret".into()),
            ..RelayConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("0707"), "{shown}");
        assert!(!shown.contains("m3trics"), "{shown}");
        assert!(shown.contains("[1 redacted]"));
    }

    #[test]
    fn describe_is_readable_and_never_shows_tokens() {
        let config = RelayConfig {
            tokens: vec!["s3cret-token".into()],
            token_hashes: vec![[7; 32]],
            domain: Some("hooks.example.com".into()),
            ..RelayConfig::default()
        };
        let lines = config.describe();
        let text: Vec<String> = lines.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let text = text.join("\n");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("0707"), "{text}");
        assert!(!text.contains('{'), "no Debug dump: {text}");
        assert!(text.contains("agent tokens: 2 accepted"), "{text}");
        assert!(
            text.contains("subdomains: <name>.hooks.example.com"),
            "{text}"
        );
    }

    #[test]
    fn rates_parse() {
        let r = parse_rate("5/m:9").unwrap().unwrap();
        assert_eq!(
            (r.count.get(), r.period, r.burst.get()),
            (5, Duration::from_secs(60), 9)
        );
        for bad in ["", "0/s", "5", "5/h", "5/s:0", "-1/s", "5/s:x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_file_errors_name_the_line_not_the_content() {
        let err = parse_token_hashes("# ok\n\nhunter2\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(!err.to_string().contains("hunter2"));
    }

    proptest! {
        #[test]
        fn rate_and_token_parsers_never_panic(text in ".{0,200}") {
            let _ = parse_rate(&text);
            let _ = parse_token_hashes(&text);
        }
    }
}
