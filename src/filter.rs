//! The filter syntax shared by `hooktunnel requests`, bulk replay and the
//! TUI's `/` prompt.
//!
//! A filter is a conjunction of optional parts; an empty filter matches
//! everything. As a one-line query (see [`Filter::parse`]):
//!
//! ```text
//! method:POST path:/hooks/** status:4xx since:10m tunnel:shop stripe "customer id"
//! ```
//!
//! | key | value | matches |
//! | --- | --- | --- |
//! | `method:` | `POST` (any case) | the method, case-insensitively |
//! | `path:` | a glob | the path **without** its query string, whole |
//! | `status:` | `404`, `4xx`, `error` | exact code, class, or a failed exchange |
//! | `since:` | `10m`, `2h`, `1d`, `1h30m`, or an RFC 3339 time | received at or after |
//! | `tunnel:` | a tunnel name or a glob over names (`shop-*`) | the tunnel it came through; several `tunnel:` terms match any of them |
//! | `grep:` or bare words | text | ASCII case-insensitive substring |
//!
//! Path globs: `*` matches within one segment (never a `/`), `**` as a whole
//! segment crosses segments, `?` is one character, `[abc]` and `{a,b}` work as
//! usual. So `/hooks/*` matches `/hooks/github` but not `/hooks/a/b`;
//! `/hooks/**` matches both (and `/hooks/` itself). The glob must match the
//! whole path, so a bare `/hooks` matches only that path.
//!
//! Tunnel names are matched whole and without regard to ASCII case
//! (`tunnel:shop` is not `tunnel:shop-eu`; `tunnel:shop*` is both). A value
//! with a character no tunnel name has (`tunnel:a/b`) is an error rather
//! than a filter that silently matches nothing.
//!
//! `status:error` matches exchanges that got no response or on which
//! hooktunnel recorded an error (its own 502/504).
//!
//! Grep text is searched in the path (with query), the request and response
//! header names and values, the request and response bodies, and the error
//! message. Words without a known `key:` prefix are grep text (so
//! `"event":"push"` searches for exactly that); several words are joined with
//! single spaces. Double quotes group words (`grep:"two  spaces"`), with `\"`
//! and `\\` as escapes inside them.

use std::fmt;

use crate::exchange::{Exchange, ExchangeSummary};

mod terms;

pub use terms::{PathGlob, StatusMatch, TunnelMatch};

/// Why a filter could not be built; messages are meant for the user as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The status part is not a code, a class or `error`.
    #[error("bad status {0:?}: expected a code like 404, a class like 4xx, or \"error\"")]
    BadStatus(String),
    /// A three-digit status outside 100–599.
    #[error("status {0:?} is not an HTTP status: codes run from 100 to 599 (classes 1xx to 5xx)")]
    StatusRange(String),
    /// The since part is neither a duration nor an RFC 3339 time.
    #[error(
        "bad since {input:?}: expected a duration like 10m, 2h or 1d, or an RFC 3339 time ({reason})"
    )]
    BadSince {
        /// What was given.
        input: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The path glob does not compile.
    #[error("bad path glob {input:?}: {reason}")]
    BadGlob {
        /// What was given.
        input: String,
        /// The glob compiler's complaint.
        reason: String,
    },
    /// The tunnel part is not a name or a glob over names.
    #[error("bad tunnel {input:?}: {reason}")]
    BadTunnel {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The method contains characters no HTTP method has.
    #[error("bad method {0:?}: expected a word like POST")]
    BadMethod(String),
    /// A `key:` with nothing after it.
    #[error("missing value after \"{0}:\"")]
    MissingValue(&'static str),
    /// A key given twice in one query.
    #[error("\"{0}:\" given more than once")]
    Duplicate(&'static str),
    /// A `"` without its closing partner.
    #[error("unterminated quote in filter")]
    UnterminatedQuote,
}

/// Which exchanges to keep. All parts must match; `None` parts match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// HTTP method, upper-cased; compared case-insensitively.
    pub method: Option<String>,
    /// Glob over the path without its query string.
    pub path: Option<PathGlob>,
    /// Status code, class or `error`.
    pub status: Option<StatusMatch>,
    /// Absolute cutoff, ms since the Unix epoch: received at or after it.
    pub since_ms: Option<u64>,
    /// How the cutoff was written (`10m`), for [`Display`](fmt::Display);
    /// when `None`, the cutoff is shown as an RFC 3339 time.
    pub since_label: Option<String>,
    /// Case-insensitive (ASCII) text searched in path, headers, bodies and error.
    pub grep: Option<String>,
    /// Tunnel names or globs; an exchange matches when any of them does
    /// (empty: every tunnel).
    pub tunnels: Vec<TunnelMatch>,
}

/// Keys a query word may start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Method,
    Path,
    Status,
    Since,
    Grep,
    Tunnel,
}

impl Key {
    fn from_word(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "method" => Self::Method,
            "path" => Self::Path,
            "status" => Self::Status,
            "since" => Self::Since,
            "grep" => Self::Grep,
            "tunnel" => Self::Tunnel,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Path => "path",
            Self::Status => "status",
            Self::Since => "since",
            Self::Grep => "grep",
            Self::Tunnel => "tunnel",
        }
    }
}

/// One word of a query: an optional key and its (unquoted) value.
struct Word {
    key: Option<Key>,
    value: String,
}

fn tokenize(query: &str) -> Result<Vec<Word>, FilterError> {
    let mut words = Vec::new();
    let mut chars = query.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut key = None;
        let mut value = String::new();
        let mut quoted = false;
        let mut seen_quote = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    quoted = !quoted;
                    seen_quote = true;
                }
                '\\' if quoted => match chars.next() {
                    Some(n @ ('"' | '\\')) => value.push(n),
                    Some(n) => {
                        value.push('\\');
                        value.push(n);
                    }
                    None => return Err(FilterError::UnterminatedQuote),
                },
                c if c.is_whitespace() && !quoted => break,
                ':' if !quoted && !seen_quote && key.is_none() => match Key::from_word(&value) {
                    Some(k) => {
                        key = Some(k);
                        value.clear();
                    }
                    None => value.push(':'),
                },
                c => value.push(c),
            }
        }
        if quoted {
            return Err(FilterError::UnterminatedQuote);
        }
        words.push(Word { key, value });
    }
}

/// Characters an HTTP method (a token) may contain.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn parse_method(s: &str) -> Result<String, FilterError> {
    if s.chars().all(is_tchar) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(FilterError::BadMethod(s.to_owned()))
    }
}

/// Turns `10m`/`2h`/`1d` (relative to `now_ms`) or an RFC 3339 time into a cutoff.
fn parse_since(s: &str, now_ms: u64) -> Result<u64, FilterError> {
    match humantime::parse_duration(s) {
        Ok(d) => Ok(now_ms.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        Err(dur_err) => match humantime::parse_rfc3339_weak(s) {
            Ok(t) => Ok(crate::clock::unix_ms(t)),
            Err(_) => Err(FilterError::BadSince {
                input: s.to_owned(),
                reason: dur_err.to_string(),
            }),
        },
    }
}

/// Some(trimmed) for non-blank input.
fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// ASCII case-insensitive substring search; `needle` must be lower-cased.
fn contains_ci(haystack: &[u8], needle_lower: &[u8]) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if haystack.len() < needle_lower.len() {
        return false;
    }
    let first = needle_lower[0];
    haystack
        .windows(needle_lower.len())
        .any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(needle_lower))
}

impl Filter {
    /// Builds a filter from command-line flags. Blank values count as absent.
    /// `since` is a duration (`10m`, `2h`, `1d`) before `now_ms`, or an
    /// RFC 3339 time.
    pub fn from_parts(
        method: Option<&str>,
        path_glob: Option<&str>,
        status: Option<&str>,
        since: Option<&str>,
        grep: Option<&str>,
        now_ms: u64,
    ) -> Result<Self, FilterError> {
        let since = non_blank(since);
        Ok(Self {
            method: non_blank(method).map(parse_method).transpose()?,
            path: non_blank(path_glob).map(PathGlob::new).transpose()?,
            status: non_blank(status).map(StatusMatch::parse).transpose()?,
            since_ms: since.map(|s| parse_since(s, now_ms)).transpose()?,
            since_label: since.map(str::to_owned),
            grep: grep.filter(|g| !g.is_empty()).map(str::to_owned),
            tunnels: Vec::new(),
        })
    }

    /// Both filters at once: every part of each must match. A part both
    /// set is an error ([`FilterError::Duplicate`]), as in one query; their
    /// `tunnel:` terms add up (any of them).
    pub fn and(mut self, other: Filter) -> Result<Self, FilterError> {
        fn one<T>(a: &mut Option<T>, b: Option<T>, key: &'static str) -> Result<(), FilterError> {
            match (a.is_some(), b) {
                (true, Some(_)) => Err(FilterError::Duplicate(key)),
                (false, Some(b)) => {
                    *a = Some(b);
                    Ok(())
                }
                (_, None) => Ok(()),
            }
        }
        one(&mut self.method, other.method, "method")?;
        one(&mut self.path, other.path, "path")?;
        one(&mut self.status, other.status, "status")?;
        one(&mut self.grep, other.grep, "grep")?;
        if other.since_ms.is_some() {
            one(&mut self.since_ms, other.since_ms, "since")?;
            self.since_label = other.since_label;
        }
        for t in other.tunnels {
            if !self.tunnels.contains(&t) {
                self.tunnels.push(t);
            }
        }
        Ok(self)
    }

    /// Adds `tunnel:` terms (from repeated `--tunnel` flags): the filter then
    /// keeps exchanges of any of these tunnels. Blank names are skipped.
    pub fn with_tunnels<'a>(
        mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, FilterError> {
        for name in names.into_iter().filter_map(|n| non_blank(Some(n))) {
            self.push_tunnel(name)?;
        }
        Ok(self)
    }

    /// Adds one tunnel term; the same pattern twice counts once.
    fn push_tunnel(&mut self, pattern: &str) -> Result<(), FilterError> {
        let term = TunnelMatch::new(pattern)?;
        if !self.tunnels.contains(&term) {
            self.tunnels.push(term);
        }
        Ok(())
    }

    /// Parses a one-line query such as
    /// `method:POST path:/hooks/* status:4xx since:10m some free text`.
    /// Words without a known key become grep text.
    pub fn parse(query: &str, now_ms: u64) -> Result<Self, FilterError> {
        let mut filter = Self::default();
        let mut grep: Vec<String> = Vec::new();
        for Word { key, value } in tokenize(query)? {
            let Some(key) = key else {
                grep.push(value);
                continue;
            };
            if value.is_empty() {
                return Err(FilterError::MissingValue(key.name()));
            }
            let dup = || FilterError::Duplicate(key.name());
            match key {
                Key::Method if filter.method.is_some() => return Err(dup()),
                Key::Method => filter.method = Some(parse_method(&value)?),
                Key::Path if filter.path.is_some() => return Err(dup()),
                Key::Path => filter.path = Some(PathGlob::new(&value)?),
                Key::Status if filter.status.is_some() => return Err(dup()),
                Key::Status => filter.status = Some(StatusMatch::parse(&value)?),
                Key::Since if filter.since_ms.is_some() => return Err(dup()),
                Key::Since => {
                    filter.since_ms = Some(parse_since(&value, now_ms)?);
                    filter.since_label = Some(value);
                }
                Key::Grep => grep.push(value),
                Key::Tunnel => filter.push_tunnel(&value)?,
            }
        }
        if !grep.is_empty() {
            filter.grep = Some(grep.join(" "));
        }
        Ok(filter)
    }

    /// True when every exchange matches.
    pub fn is_empty(&self) -> bool {
        self.method.is_none()
            && self.path.is_none()
            && self.status.is_none()
            && self.since_ms.is_none()
            && self.grep.is_none()
            && self.tunnels.is_empty()
    }

    /// Whether the tunnel named `name` passes the `tunnel:` terms.
    pub fn matches_tunnel(&self, name: &str) -> bool {
        self.tunnels.is_empty() || self.tunnels.iter().any(|t| t.matches(name))
    }

    /// The checks that need only list-row fields.
    fn matches_light(
        &self,
        tunnel: &str,
        method: &str,
        path: &str,
        status: Option<u16>,
        has_error: bool,
        received_at_ms: u64,
    ) -> bool {
        self.matches_tunnel(tunnel)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_ref().is_none_or(|g| g.matches(path))
            && self.status.is_none_or(|s| s.matches(status, has_error))
            && self.since_ms.is_none_or(|t| received_at_ms >= t)
    }

    /// Whether the exchange matches every part of the filter.
    pub fn matches(&self, ex: &Exchange) -> bool {
        self.matches_light(
            &ex.tunnel,
            &ex.method,
            &ex.path,
            ex.status(),
            ex.error.is_some(),
            ex.received_at_ms,
        ) && self.grep.as_deref().is_none_or(|g| grep_exchange(ex, g))
    }

    /// Whether a list row matches: `Some(answer)`, or `None` when the answer
    /// depends on headers or bodies (a grep part) and the full exchange is
    /// needed. A row that fails the other parts is `Some(false)` even then.
    pub fn matches_summary(&self, s: &ExchangeSummary) -> Option<bool> {
        let light = self.matches_light(
            &s.tunnel,
            &s.method,
            &s.path,
            s.status,
            s.error.is_some(),
            s.received_at_ms,
        );
        if !light {
            Some(false)
        } else if self.grep.is_some() {
            None
        } else {
            Some(true)
        }
    }
}

fn grep_exchange(ex: &Exchange, text: &str) -> bool {
    let needle = text.to_ascii_lowercase();
    let n = needle.as_bytes();
    let in_headers = |hs: &[crate::exchange::Header]| {
        hs.iter()
            .any(|h| contains_ci(h.name.as_bytes(), n) || contains_ci(&h.value, n))
    };
    contains_ci(ex.path.as_bytes(), n)
        || in_headers(&ex.request_headers)
        || contains_ci(&ex.request_body, n)
        || ex
            .response
            .as_ref()
            .is_some_and(|r| in_headers(&r.headers) || contains_ci(&r.body, n))
        || ex
            .error
            .as_deref()
            .is_some_and(|e| contains_ci(e.as_bytes(), n))
}

/// Quotes a value for the query syntax when it would not survive as a bare word.
fn quote_value(v: &str) -> String {
    let bare_ok = !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '"');
    if bare_ok {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether `grep` re-parses to itself when written as bare words.
fn grep_is_bare(grep: &str) -> bool {
    let words: Vec<&str> = grep.split(' ').collect();
    words.iter().all(|w| {
        !w.is_empty()
            && !w.chars().any(|c| c.is_whitespace() || c == '"')
            && w.split_once(':')
                .is_none_or(|(k, _)| Key::from_word(k).is_none())
    })
}

impl fmt::Display for Filter {
    /// Renders the query back in the syntax [`Filter::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for t in &self.tunnels {
            parts.push(format!("tunnel:{}", quote_value(t.as_str())));
        }
        if let Some(m) = &self.method {
            parts.push(format!("method:{}", quote_value(m)));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path:{}", quote_value(p.as_str())));
        }
        if let Some(s) = &self.status {
            parts.push(format!("status:{s}"));
        }
        if let Some(t) = self.since_ms {
            let label = match &self.since_label {
                Some(l) => l.clone(),
                None => crate::clock::rfc3339_ms(t),
            };
            parts.push(format!("since:{}", quote_value(&label)));
        }
        if let Some(g) = &self.grep {
            if grep_is_bare(g) {
                parts.push(g.clone());
            } else {
                parts.push(format!("grep:{}", quote_value(g)));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::exchange::{ExchangeResponse, Header};
    use bytes::Bytes;
    use ulid::Ulid;

    const NOW: u64 = 1_700_000_000_000;

    fn ex(method: &str, path: &str, status: Option<u16>) -> Exchange {
        Exchange {
            request_truncated: None,
            capture_degraded: false,
            attempts: 1,
            id: Ulid::generate(),
            tunnel: "t".into(),
            received_at_ms: NOW - 60_000,
            method: method.into(),
            path: path.into(),
            target: "http://127.0.0.1:3000".into(),
            request_headers: vec![
                Header::new("content-type", "application/json"),
                Header::new("X-GitHub-Event", "push"),
            ],
            request_body: Bytes::from_static(br#"{"customer":"Cus_123"}"#),
            response: status.map(|s| ExchangeResponse {
                truncated: None,
                status: s,
                headers: vec![Header::new("x-served-by", b"app\xff".to_vec())],
                body: Bytes::from_static(b"thanks"),
            }),
            duration_us: 1500,
            error: status.is_none().then(|| "connection refused".to_owned()),
            replay_of: None,
            queued: false,
            peer: None,
            public_url: None,
            signature: None,
        }
    }

    #[test]
    fn empty_filter_matches_all() {
        let f = Filter::parse("   ", NOW).unwrap();
        assert!(f.is_empty());
        assert!(f.matches(&ex("GET", "/", Some(200))));
        assert_eq!(
            f.matches_summary(&ex("GET", "/", None).summary()),
            Some(true)
        );
        assert_eq!(f.to_string(), "");
    }

    #[test]
    fn parses_full_query() {
        let f = Filter::parse(
            "method:post path:/hooks/* status:4xx since:10m some  free text",
            NOW,
        )
        .unwrap();
        assert_eq!(f.method.as_deref(), Some("POST"));
        assert_eq!(f.path.as_ref().unwrap().as_str(), "/hooks/*");
        assert_eq!(f.status, Some(StatusMatch::Class(4)));
        assert_eq!(f.since_ms, Some(NOW - 600_000));
        assert_eq!(f.grep.as_deref(), Some("some free text"));
        assert_eq!(
            f.to_string(),
            "method:POST path:/hooks/* status:4xx since:10m some free text"
        );
        assert_eq!(Filter::parse(&f.to_string(), NOW).unwrap(), f);
    }

    #[test]
    fn quoting_and_unknown_keys() {
        let f = Filter::parse(r#"grep:"two  spaces" "event":"push" x"#, NOW).unwrap();
        assert_eq!(f.grep.as_deref(), Some("two  spaces event:push x"));
        let f = Filter::parse(r#""a \"q\" \\ b""#, NOW).unwrap();
        assert_eq!(f.grep.as_deref(), Some(r#"a "q" \ b"#));
        assert_eq!(f.to_string(), r#"grep:"a \"q\" \\ b""#);
        assert_eq!(Filter::parse(&f.to_string(), NOW).unwrap(), f);
        // A grep word that looks like a key must be quoted when rendered.
        let f = Filter::from_parts(None, None, None, None, Some("status:ok"), NOW).unwrap();
        assert_eq!(f.to_string(), "grep:status:ok");
        assert_eq!(Filter::parse(&f.to_string(), NOW).unwrap(), f);
        // Keys are case-insensitive; http://x is free text.
        let f = Filter::parse("STATUS:500 http://x", NOW).unwrap();
        assert_eq!(f.status, Some(StatusMatch::Exact(500)));
        assert_eq!(f.grep.as_deref(), Some("http://x"));
    }

    #[test]
    fn errors_are_clear() {
        let e = Filter::parse("status:abc", NOW).unwrap_err();
        assert_eq!(e, FilterError::BadStatus("abc".into()));
        assert!(e.to_string().contains("4xx"));
        for bad in ["status:600x", "status:0xx", "status:99", "status:4x"] {
            assert!(
                matches!(Filter::parse(bad, NOW), Err(FilterError::BadStatus(_))),
                "{bad}"
            );
        }
        let e = Filter::parse("since:ten", NOW).unwrap_err();
        assert!(matches!(e, FilterError::BadSince { .. }));
        assert!(e.to_string().starts_with("bad since \"ten\""), "{e}");
        let e = Filter::parse("path:/a/[b", NOW).unwrap_err();
        assert!(matches!(e, FilterError::BadGlob { .. }), "{e}");
        assert!(e.to_string().contains("/a/[b"));
        assert_eq!(
            Filter::parse("method:", NOW).unwrap_err(),
            FilterError::MissingValue("method")
        );
        assert_eq!(
            Filter::parse("status:4xx status:5xx", NOW).unwrap_err(),
            FilterError::Duplicate("status")
        );
        assert_eq!(
            Filter::parse("grep:\"open", NOW).unwrap_err(),
            FilterError::UnterminatedQuote
        );
        assert!(matches!(
            Filter::parse("method:PO/ST", NOW),
            Err(FilterError::BadMethod(_))
        ));
    }

    #[test]
    fn status_matching() {
        let s = |q: &str| StatusMatch::parse(q).unwrap();
        assert!(s("404").matches(Some(404), false));
        assert!(!s("404").matches(Some(400), false));
        assert!(s("4XX").matches(Some(499), false));
        assert!(!s("4xx").matches(Some(500), false));
        assert!(!s("4xx").matches(None, true));
        assert!(s("error").matches(None, true));
        assert!(s("error").matches(Some(502), true));
        assert!(!s("error").matches(Some(200), false));
        assert_eq!(s("5xx").to_string(), "5xx");
    }

    #[test]
    fn path_globs() {
        let g = |p: &str| PathGlob::new(p).unwrap();
        assert!(g("/hooks/*").matches("/hooks/github?x=/y"));
        assert!(!g("/hooks/*").matches("/hooks/a/b"));
        assert!(g("/hooks/**").matches("/hooks/a/b"));
        assert!(g("/hooks/**").matches("/hooks/"));
        assert!(g("/hooks").matches("/hooks?q"));
        assert!(!g("/hooks").matches("/hooks/x"));
        assert!(g("/**/stripe").matches("/a/b/stripe"));
        assert!(g("/{a,b}/?").matches("/b/1"));
    }

    #[test]
    fn matches_exchanges_and_summaries() {
        let post = ex("POST", "/hooks/stripe?live=1", Some(404));
        let get = ex("GET", "/health", Some(200));
        let failed = ex("POST", "/hooks/gh", None);

        let f = Filter::from_parts(Some("post"), Some("/hooks/*"), Some("4xx"), None, None, NOW)
            .unwrap();
        assert!(f.matches(&post));
        assert!(!f.matches(&get));
        assert!(!f.matches(&failed));
        assert_eq!(f.matches_summary(&post.summary()), Some(true));
        assert_eq!(f.matches_summary(&get.summary()), Some(false));

        let f = Filter::parse("status:error", NOW).unwrap();
        assert!(f.matches(&failed) && !f.matches(&post));

        let f = Filter::parse("since:30s", NOW).unwrap();
        assert!(!f.matches(&post));
        let f = Filter::parse("since:2m", NOW).unwrap();
        assert!(f.matches(&post));
        let f = Filter::from_parts(None, None, None, Some("1d"), None, NOW).unwrap();
        assert_eq!(f.since_ms, Some(NOW - 86_400_000));
    }

    #[test]
    fn grep_searches_everywhere() {
        let e = ex("POST", "/hooks/stripe?live=1", Some(200));
        for q in [
            "cus_123",
            "LIVE=1",
            "x-github",
            "PUSH",
            "APPLICATION/json",
            "thanks",
            "served",
        ] {
            let f = Filter::parse(q, NOW).unwrap();
            assert!(f.matches(&e), "{q}");
            assert_eq!(f.matches_summary(&e.summary()), None);
        }
        let f = Filter::parse("refused", NOW).unwrap();
        assert!(!f.matches(&e));
        assert!(f.matches(&ex("GET", "/", None)));
        let f = Filter::parse("method:GET cus_123", NOW).unwrap();
        assert_eq!(f.matches_summary(&e.summary()), Some(false));
    }

    #[test]
    fn since_accepts_rfc3339_and_renders_it() {
        let f = Filter::parse("since:2023-11-14T22:13:20Z", NOW).unwrap();
        assert_eq!(f.since_ms, Some(NOW));
        let f = Filter {
            since_ms: Some(NOW),
            ..Filter::default()
        };
        assert_eq!(f.to_string(), "since:2023-11-14T22:13:20.000Z");
        assert_eq!(
            Filter::parse(&f.to_string(), 0).unwrap().since_ms,
            Some(NOW)
        );
    }

    #[test]
    fn tunnel_terms_match_any_named_tunnel() {
        let mut shop = ex("POST", "/hooks/a", Some(200));
        shop.tunnel = "shop".into();
        let mut shop_eu = ex("POST", "/hooks/a", Some(200));
        shop_eu.tunnel = "shop-eu".into();
        let mut billing = ex("POST", "/hooks/a", Some(500));
        billing.tunnel = "billing".into();
        let kept = |f: &Filter| -> Vec<String> {
            [&shop, &shop_eu, &billing]
                .into_iter()
                .filter(|e| f.matches(e))
                .map(|e| e.tunnel.clone())
                .collect()
        };

        // A name is matched whole, without regard to ASCII case.
        let f = Filter::parse("tunnel:shop", NOW).unwrap();
        assert_eq!(kept(&f), ["shop"]);
        assert_eq!(kept(&Filter::parse("TUNNEL:Shop", NOW).unwrap()), ["shop"]);
        // Several terms: any of them; the other parts still all apply.
        let f = Filter::parse("tunnel:shop tunnel:billing", NOW).unwrap();
        assert_eq!(kept(&f), ["shop", "billing"]);
        let f = Filter::parse("tunnel:shop status:5xx tunnel:billing", NOW).unwrap();
        assert_eq!(kept(&f), ["billing"]);
        // Globs over names.
        assert_eq!(
            kept(&Filter::parse("tunnel:shop*", NOW).unwrap()),
            ["shop", "shop-eu"]
        );
        assert_eq!(
            kept(&Filter::parse("tunnel:{shop-eu,billing}", NOW).unwrap()),
            ["shop-eu", "billing"]
        );
        assert!(kept(&Filter::parse("tunnel:other", NOW).unwrap()).is_empty());

        // Summaries carry the tunnel: no full read is needed.
        let f = Filter::parse("tunnel:billing", NOW).unwrap();
        assert_eq!(f.matches_summary(&billing.summary()), Some(true));
        assert_eq!(f.matches_summary(&shop.summary()), Some(false));
        let f = Filter::parse("tunnel:shop cus_123", NOW).unwrap();
        assert_eq!(f.matches_summary(&billing.summary()), Some(false));
        assert_eq!(f.matches_summary(&shop.summary()), None);

        // Rendered back in the syntax; the same term twice counts once.
        let f = Filter::parse("method:post tunnel:shop tunnel:b* tunnel:shop", NOW).unwrap();
        assert_eq!(f.tunnels.len(), 2);
        assert_eq!(f.to_string(), "tunnel:shop tunnel:b* method:POST");
        assert_eq!(Filter::parse(&f.to_string(), NOW).unwrap(), f);
        assert!(!f.is_empty());
        // A grep word that looks like a tunnel term is quoted when rendered.
        let f = Filter::from_parts(None, None, None, None, Some("tunnel:x"), NOW).unwrap();
        assert_eq!(f.to_string(), "grep:tunnel:x");
        assert_eq!(Filter::parse(&f.to_string(), NOW).unwrap(), f);

        // The flags' way in: repeated --tunnel, blanks skipped.
        let f = Filter::default()
            .with_tunnels(["shop", " ", "billing"])
            .unwrap();
        assert_eq!(f.to_string(), "tunnel:shop tunnel:billing");
        assert!(Filter::default().with_tunnels([""]).unwrap().is_empty());
    }

    #[test]
    fn two_filters_together() {
        let flags = Filter::from_parts(Some("post"), None, None, Some("10m"), None, NOW)
            .unwrap()
            .with_tunnels(["shop"])
            .unwrap();
        let query = Filter::parse("status:4xx tunnel:billing tunnel:shop", NOW).unwrap();
        let both = flags.clone().and(query).unwrap();
        assert_eq!(
            both.to_string(),
            "tunnel:shop tunnel:billing method:POST status:4xx since:10m"
        );
        let e = flags
            .and(Filter::parse("since:1h", NOW).unwrap())
            .unwrap_err();
        assert_eq!(e, FilterError::Duplicate("since"));
        let e = Filter::parse("x", NOW)
            .unwrap()
            .and(Filter::parse("y", NOW).unwrap())
            .unwrap_err();
        assert_eq!(e, FilterError::Duplicate("grep"));
    }

    #[test]
    fn tunnel_errors_say_what_is_wrong() {
        assert_eq!(
            Filter::parse("tunnel:", NOW).unwrap_err(),
            FilterError::MissingValue("tunnel")
        );
        let e = Filter::parse("tunnel:a/b", NOW).unwrap_err();
        assert!(matches!(&e, FilterError::BadTunnel { input, .. } if input == "a/b"));
        assert_eq!(
            e.to_string(),
            "bad tunnel \"a/b\": '/' is in no tunnel name: names are letters, digits and '-' \
             (a glob may add * ? [a-z] {a,b})"
        );
        let e = Filter::parse("tunnel:shop_eu", NOW).unwrap_err();
        assert!(e.to_string().contains("'_' is in no tunnel name"), "{e}");
        let e = Filter::parse("tunnel:shop-[", NOW).unwrap_err();
        assert!(matches!(e, FilterError::BadTunnel { .. }), "{e}");
        assert!(e.to_string().starts_with("bad tunnel \"shop-[\": "), "{e}");
        let e = Filter::default()
            .with_tunnels(["ok", "no way"])
            .unwrap_err();
        assert!(
            e.to_string().starts_with("bad tunnel \"no way\": ' '"),
            "{e}"
        );
    }

    #[test]
    fn from_parts_blank_is_absent() {
        let f = Filter::from_parts(Some(""), Some(" "), None, Some(""), Some(""), NOW).unwrap();
        assert!(f.is_empty());
        let e = Filter::from_parts(None, None, Some("teapot"), None, None, NOW).unwrap_err();
        assert_eq!(e, FilterError::BadStatus("teapot".into()));
    }
}
