//! The rule syntax shared by flags and the `[[tunnel]]` table: one string per
//! rule, parsed here with errors that name the rule and say what is wrong.
//!
//! - route: `[METHOD] PATTERN [Header:value…]=TARGET` — `/api/*=3000`,
//!   `POST /hooks/stripe=http://127.0.0.1:4000`, `/gh x-github-event:push=4001`
//! - header edit: `Name: value` (add) or `Name` (remove)
//! - mock: `[PATTERN ]MODE:STATUS[:BODY|:@FILE]` — `always:200:ok`,
//!   `/health always:204`, `when-app-down:503:@down.json`
//! - fault: `[PATTERN ]delay=2s[:P%]`, `status=503:10%`, `drop=5%`

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use crate::forward::Target;

/// A rule that cannot be used; the text says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A route that is not `[METHOD] PATTERN=TARGET`.
    #[error("route '{rule}': {why} (example: --route '/api/*=3000')")]
    BadRoute {
        /// The rule as given.
        rule: String,
        /// What is wrong.
        why: String,
    },
    /// The same method and pattern twice.
    #[error("route '{0}' is given twice")]
    DuplicateRoute(String),
    /// A route no request can reach: an earlier one takes all its requests.
    #[error(
        "route '{later}' can never match: '{earlier}' comes first and takes all its requests (first match wins; put the narrower route first)"
    )]
    ShadowedRoute {
        /// The route that wins.
        earlier: String,
        /// The unreachable one.
        later: String,
    },
    /// A header edit that is no header.
    #[error(
        "header '{0}': expected 'Name: value' (add) or 'Name' (remove) with a valid header name"
    )]
    BadHeader(String),
    /// An edit of a header that frames the message.
    #[error(
        "header '{0}' frames the message (hooktunnel sets it from the body); it cannot be edited"
    )]
    FramingHeader(String),
    /// A mock that is not `MODE:STATUS[:BODY]`.
    #[error("mock '{rule}': {why} (example: --mock 'when-app-down:503:try later')")]
    BadMock {
        /// The rule as given.
        rule: String,
        /// What is wrong.
        why: String,
    },
    /// A fault that is not `delay=…`, `status=N:P%` or `drop=P%`.
    #[error("inject '{rule}': {why} (examples: 'delay=2s', 'status=503:10%', 'drop=5%')")]
    BadFault {
        /// The rule as given.
        rule: String,
        /// What is wrong.
        why: String,
    },
    /// An edge rule (CIDR, credentials, required header, provider).
    #[error(transparent)]
    Edge(#[from] hooktunnel_protocol::rules::RulesError),
}

/// Which paths a route, mock or fault applies to.
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// This path exactly (query ignored).
    Exact(String),
    /// `/api/*`: `/api` and everything under `/api/`.
    Prefix(String),
    /// Any other pattern with `*`, `?`, `[…]` or `{a,b}` (`*` stays within a segment, `**` crosses).
    Glob(GlobMatcher),
}

impl PathMatch {
    /// Parses a pattern; it must start with `/`.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("pattern '{pattern}' must start with /"));
        }
        if let Some(base) = pattern.strip_suffix("/*")
            && !base.contains(['*', '?', '[', '{'])
        {
            return Ok(Self::Prefix(base.to_owned()));
        }
        if pattern.contains(['*', '?', '[', '{']) {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("bad pattern '{pattern}': {}", e.kind()))?;
            return Ok(Self::Glob(glob.compile_matcher()));
        }
        Ok(Self::Exact(pattern.to_owned()))
    }

    /// Whether `path` (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Prefix(base) => {
                path == base
                    || path
                        .strip_prefix(base.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            Self::Glob(g) => g.is_match(path),
        }
    }

    /// True when every path `other` matches, this matches too.
    fn covers(&self, other: &PathMatch) -> bool {
        match (self, other) {
            (_, Self::Exact(p)) => self.matches(p),
            (Self::Prefix(a), Self::Prefix(b)) => {
                b == a
                    || b.strip_prefix(a.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
            (Self::Glob(a), Self::Glob(b)) => a.glob().glob() == b.glob().glob(),
            _ => false,
        }
    }
}

/// One route: which requests, and where they go.
#[derive(Clone, Debug)]
pub struct Route {
    /// The rule as given, for errors and the history (`route` on an exchange).
    pub label: String,
    /// Only this method (uppercase), when given.
    pub method: Option<String>,
    /// Which paths.
    pub path: PathMatch,
    /// Headers that must be present with these values (name lowercase).
    pub headers: Vec<(String, String)>,
    /// The local app these requests go to.
    pub target: Target,
}

impl Route {
    /// Parses `[METHOD] PATTERN [Header:value…]=TARGET`.
    pub fn parse(rule: &str) -> Result<Self, RuleError> {
        let bad = |why: String| RuleError::BadRoute {
            rule: rule.to_owned(),
            why,
        };
        let (matcher, target) = rule
            .split_once('=')
            .ok_or_else(|| bad("expected PATTERN=TARGET".into()))?;
        let target = Target::parse(target.trim()).map_err(|e| bad(e.to_string()))?;
        let all: Vec<&str> = matcher.split_whitespace().collect();
        let mut words = all.iter().copied();
        // A first word that is no path is a method, when a path follows it.
        let method = match all.as_slice() {
            [m, _, ..] if !m.starts_with('/') => {
                words.next();
                if !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(bad(format!("'{m}' is neither a method nor a /path")));
                }
                Some(m.to_ascii_uppercase())
            }
            _ => None,
        };
        let pattern = words.next().ok_or_else(|| bad("no /path pattern".into()))?;
        let path = PathMatch::parse(pattern).map_err(bad)?;
        let headers = words
            .map(|w| match w.split_once(':') {
                Some((n, v))
                    if !n.is_empty() && http::HeaderName::from_bytes(n.as_bytes()).is_ok() =>
                {
                    Ok((n.to_ascii_lowercase(), v.to_owned()))
                }
                _ => Err(bad(format!("'{w}' is not a Header:value condition"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            label: matcher.trim().to_owned(),
            method,
            path,
            headers,
            target,
        })
    }

    /// Whether a request matches.
    pub fn matches(
        &self,
        method: &str,
        path: &str,
        headers: &[hooktunnel_protocol::Header],
    ) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.matches(path)
            && self.headers.iter().all(|(name, value)| {
                headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name) && h.value == value.as_bytes())
            })
    }

    /// True when every request `later` takes, this one takes first.
    fn shadows(&self, later: &Route) -> bool {
        let method = match (&self.method, &later.method) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        method
            && self.headers.iter().all(|h| later.headers.contains(h))
            && self.path.covers(&later.path)
    }
}

/// Refuses duplicate routes and routes an earlier one makes unreachable.
pub fn check_routes(routes: &[Route]) -> Result<(), RuleError> {
    for (i, later) in routes.iter().enumerate() {
        for earlier in &routes[..i] {
            if earlier.label == later.label {
                return Err(RuleError::DuplicateRoute(later.label.clone()));
            }
            if earlier.shadows(later) {
                return Err(RuleError::ShadowedRoute {
                    earlier: earlier.label.clone(),
                    later: later.label.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A request header edit, applied after capture (the history keeps what the sender sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Append `name: value`.
    Add(String, String),
    /// Drop every `name`.
    Remove(String),
}

/// Headers no edit may touch: they describe the body's framing.
fn framing(name: &str) -> Result<(), RuleError> {
    if ["content-length", "transfer-encoding"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
    {
        return Err(RuleError::FramingHeader(name.to_ascii_lowercase()));
    }
    Ok(())
}

impl HeaderEdit {
    /// `Name: value` for `--add-header`.
    pub fn parse_add(text: &str) -> Result<Self, RuleError> {
        let bad = || RuleError::BadHeader(text.to_owned());
        let (name, value) = text.split_once(':').ok_or_else(bad)?;
        let (name, value) = (name.trim(), value.trim());
        http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        http::HeaderValue::from_str(value).map_err(|_| bad())?;
        framing(name)?;
        Ok(Self::Add(name.to_ascii_lowercase(), value.to_owned()))
    }

    /// `Name` for `--remove-header`.
    pub fn parse_remove(text: &str) -> Result<Self, RuleError> {
        let name = text.trim();
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| RuleError::BadHeader(text.to_owned()))?;
        framing(name)?;
        Ok(Self::Remove(name.to_ascii_lowercase()))
    }
}

/// A header edit for the paths of an optional `/pattern ` prefix.
#[derive(Clone, Debug)]
pub struct ScopedEdit {
    /// Which paths (`None`: all).
    pub path: Option<PathMatch>,
    /// The edit.
    pub edit: HeaderEdit,
}

impl ScopedEdit {
    /// Parses `[PATTERN ]Name: value` (`add`) or `[PATTERN ]Name`.
    pub fn parse(text: &str, add: bool) -> Result<Self, RuleError> {
        let (path, rest) = scoped(text).map_err(|_| RuleError::BadHeader(text.to_owned()))?;
        let edit = if add {
            HeaderEdit::parse_add(rest)
        } else {
            HeaderEdit::parse_remove(rest)
        }
        .map_err(|e| match e {
            RuleError::FramingHeader(_) => e,
            _ => RuleError::BadHeader(text.to_owned()),
        })?;
        Ok(Self { path, edit })
    }
}

/// Applies `edits` that cover `path` to `headers`, in order.
pub fn edit_headers(
    edits: &[ScopedEdit],
    path: &str,
    headers: &mut Vec<hooktunnel_protocol::Header>,
) {
    for scoped in edits {
        if scoped.path.as_ref().is_some_and(|p| !p.matches(path)) {
            continue;
        }
        match &scoped.edit {
            HeaderEdit::Remove(name) => headers.retain(|h| !h.name.eq_ignore_ascii_case(name)),
            HeaderEdit::Add(name, value) => {
                headers.push(hooktunnel_protocol::Header::new(
                    name.clone(),
                    value.clone(),
                ));
            }
        }
    }
}

/// When a mock answers instead of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockWhen {
    /// Every matching request; the app never sees it.
    Always,
    /// Only when the app is unreachable (instead of the 502).
    AppDown,
    /// Answered by the relay while the agent is away, instead of queueing.
    Offline,
}

/// A canned answer.
#[derive(Clone, Debug)]
pub struct Mock {
    /// Which paths (`None`: all).
    pub path: Option<PathMatch>,
    /// When it answers.
    pub when: MockWhen,
    /// Status.
    pub status: u16,
    /// Body bytes.
    pub body: bytes::Bytes,
    /// `Content-Type` (JSON when the body looks like JSON, else text).
    pub content_type: &'static str,
}

/// Splits an optional leading `/pattern ` scope off a rule.
fn scoped(rule: &str) -> Result<(Option<PathMatch>, &str), String> {
    let rule = rule.trim();
    if rule.starts_with('/') {
        let (pattern, rest) = rule
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("nothing after the pattern '{rule}'"))?;
        Ok((Some(PathMatch::parse(pattern)?), rest.trim_start()))
    } else {
        Ok((None, rule))
    }
}

impl Mock {
    /// Parses `[PATTERN ]MODE:STATUS[:BODY|:@FILE]`; `@FILE` is read now.
    pub fn parse(rule: &str) -> Result<Self, RuleError> {
        let bad = |why: String| RuleError::BadMock {
            rule: rule.to_owned(),
            why,
        };
        let (path, rest) = scoped(rule).map_err(bad)?;
        let mut parts = rest.splitn(3, ':');
        let when = match parts.next().map(str::trim) {
            Some("always") => MockWhen::Always,
            Some("when-app-down") => MockWhen::AppDown,
            Some("when-offline") if path.is_some() => {
                return Err(bad(
                    "when-offline answers every path (the relay gives it); drop the pattern".into(),
                ));
            }
            Some("when-offline") => MockWhen::Offline,
            other => {
                return Err(bad(format!(
                    "mode '{}' is not always, when-app-down or when-offline",
                    other.unwrap_or_default()
                )));
            }
        };
        let status = parts
            .next()
            .map(str::trim)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (200..=599).contains(s))
            .ok_or_else(|| bad("expected a status between 200 and 599 after the mode".into()))?;
        let body = match parts.next() {
            None => bytes::Bytes::new(),
            Some(file) if file.starts_with('@') => std::fs::read(&file[1..])
                .map(bytes::Bytes::from)
                .map_err(|e| bad(format!("cannot read body file '{}': {e}", &file[1..])))?,
            Some(text) => bytes::Bytes::from(text.to_owned()),
        };
        let content_type = match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => "application/json",
            _ => "text/plain; charset=utf-8",
        };
        Ok(Self {
            path,
            when,
            status,
            body,
            content_type,
        })
    }
}

/// What a fault does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Wait this long before forwarding.
    Delay(Duration),
    /// Answer this status instead of forwarding.
    Status(u16),
    /// Never forward and never answer (the sender sees the relay's timeout).
    Drop,
}

/// One `--inject` rule.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Which paths (`None`: all).
    pub path: Option<PathMatch>,
    /// What it does.
    pub kind: FaultKind,
    /// How often, in hundredths of a percent (10_000 = every request).
    pub per_10k: u32,
}

/// Parses `P%` (0 < P ≤ 100, decimals allowed) to hundredths of a percent.
fn percent(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let number = t
        .strip_suffix('%')
        .ok_or_else(|| format!("'{t}' must be a percentage like 10%"))?;
    let p: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{t}' is not a number followed by %"))?;
    if !(p > 0.0 && p <= 100.0) {
        return Err(format!("'{t}' must be more than 0% and at most 100%"));
    }
    // In range, so the cast cannot truncate.
    Ok((p * 100.0).round() as u32)
}

impl Fault {
    /// Parses `[PATTERN ]delay=2s[:P%]`, `status=N[:P%]` or `drop=P%`.
    pub fn parse(rule: &str) -> Result<Self, RuleError> {
        let bad = |why: String| RuleError::BadFault {
            rule: rule.to_owned(),
            why,
        };
        let (path, rest) = scoped(rule).map_err(bad)?;
        let (kind, arg) = rest
            .split_once('=')
            .ok_or_else(|| bad("expected delay=…, status=… or drop=…".into()))?;
        let (value, rate) = match arg.split_once(':') {
            Some((v, r)) => (v.trim(), Some(percent(r).map_err(bad)?)),
            None => (arg.trim(), None),
        };
        let (kind, per_10k) = match kind.trim() {
            "delay" => {
                let d = humantime::parse_duration(value).map_err(|e| {
                    bad(format!(
                        "'{value}' is not a duration like 2s or 500ms ({e})"
                    ))
                })?;
                (FaultKind::Delay(d), rate.unwrap_or(10_000))
            }
            "status" => {
                let s = value
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (200..=599).contains(s))
                    .ok_or_else(|| bad(format!("'{value}' is not a status between 200 and 599")))?;
                (FaultKind::Status(s), rate.unwrap_or(10_000))
            }
            "drop" => {
                if rate.is_some() {
                    return Err(bad("drop takes one percentage: drop=5%".into()));
                }
                (FaultKind::Drop, percent(value).map_err(bad)?)
            }
            other => return Err(bad(format!("'{other}' is not delay, status or drop"))),
        };
        Ok(Self {
            path,
            kind,
            per_10k,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, RuleError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn routes_parse_method_pattern_headers_and_target() {
        let r = Route::parse("/api/*=3000").unwrap();
        assert_eq!(r.target.base_url(), "http://localhost:3000");
        assert!(r.matches("GET", "/api", &[]));
        assert!(r.matches("GET", "/api/users/1", &[]));
        assert!(!r.matches("GET", "/apix", &[]));
        let r = Route::parse("post /hooks/stripe=http://127.0.0.1:4000").unwrap();
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert!(r.matches("POST", "/hooks/stripe", &[]));
        assert!(!r.matches("GET", "/hooks/stripe", &[]));
        let r = Route::parse("/gh/* X-GitHub-Event:push=4001").unwrap();
        let push = [hooktunnel_protocol::Header::new("x-github-event", "push")];
        assert!(r.matches("POST", "/gh/x", &push));
        assert!(!r.matches("POST", "/gh/x", &[]));
        let r = Route::parse("/v*/hook=4002").unwrap();
        assert!(r.matches("POST", "/v2/hook", &[]));
        assert!(!r.matches("POST", "/v2/x/hook", &[]));
    }

    #[test]
    fn bad_routes_say_what_is_wrong() {
        assert!(err(Route::parse("/api")).contains("expected PATTERN=TARGET"));
        assert!(err(Route::parse("api=3000")).contains("pattern 'api' must start with /"));
        assert!(
            err(Route::parse("GE-T /a=3000")).contains("'GE-T' is neither a method nor a /path")
        );
        assert!(err(Route::parse("/api=notaport:x")).starts_with("route '/api=notaport:x': "));
        assert!(err(Route::parse("=3000")).contains("no /path pattern"));
        assert!(err(Route::parse("/a/[=3000")).contains("bad pattern"));
    }

    #[test]
    fn duplicate_and_shadowed_routes_are_refused() {
        let routes = |rules: &[&str]| {
            let parsed: Vec<Route> = rules.iter().map(|r| Route::parse(r).unwrap()).collect();
            check_routes(&parsed)
        };
        assert_eq!(
            routes(&["/api/*=3000", "/api/*=4000"]),
            Err(RuleError::DuplicateRoute("/api/*".into()))
        );
        let e = routes(&["/api/*=3000", "/api/users/*=4000"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "route '/api/users/*' can never match: '/api/*' comes first and takes all its requests (first match wins; put the narrower route first)"
        );
        assert!(routes(&["/api/*=3000", "POST /api/hook=4000"]).is_err());
        // Narrower first is fine; so are a method-only or header-only split.
        assert!(routes(&["/api/users/*=4000", "/api/*=3000"]).is_ok());
        assert!(routes(&["POST /api/*=4000", "/api/*=3000"]).is_ok());
        assert!(routes(&["/gh x-github-event:push=4001", "/gh=4000"]).is_ok());
        assert!(routes(&["/v*/hook=4000", "/v1/hook=3000"]).is_err());
    }

    #[test]
    fn header_edits_parse() {
        assert_eq!(
            HeaderEdit::parse_add("X-Env: dev").unwrap(),
            HeaderEdit::Add("x-env".into(), "dev".into())
        );
        assert_eq!(
            HeaderEdit::parse_remove("Cookie").unwrap(),
            HeaderEdit::Remove("cookie".into())
        );
        assert!(err(HeaderEdit::parse_add("no colon")).contains("expected 'Name: value'"));
        assert!(HeaderEdit::parse_remove("bad name").is_err());
        assert_eq!(
            HeaderEdit::parse_add("Content-Length: 5")
                .unwrap_err()
                .to_string(),
            "header 'content-length' frames the message (hooktunnel sets it from the body); it cannot be edited"
        );
        assert!(ScopedEdit::parse("/x Transfer-Encoding", false).is_err());
        let scoped = ScopedEdit::parse("/api/* X-Env: dev", true).unwrap();
        assert!(scoped.path.unwrap().matches("/api/x"));
        assert_eq!(scoped.edit, HeaderEdit::Add("x-env".into(), "dev".into()));
        assert_eq!(
            ScopedEdit::parse("/api/*", false).unwrap_err().to_string(),
            "header '/api/*': expected 'Name: value' (add) or 'Name' (remove) with a valid header name"
        );
    }

    #[test]
    fn mocks_parse_modes_bodies_and_scopes() {
        let m = Mock::parse("always:200:{\"ok\":true}").unwrap();
        assert_eq!(
            (m.when, m.status, m.content_type),
            (MockWhen::Always, 200, "application/json")
        );
        let m = Mock::parse("/health when-app-down:503:down: try later").unwrap();
        assert_eq!(m.when, MockWhen::AppDown);
        assert_eq!(&m.body[..], b"down: try later");
        assert!(m.path.unwrap().matches("/health"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.json");
        std::fs::write(&file, "[1]").unwrap();
        let m = Mock::parse(&format!("always:201:@{}", file.display())).unwrap();
        assert_eq!(&m.body[..], b"[1]");
        assert!(err(Mock::parse("sometimes:200")).contains("mode 'sometimes'"));
        assert!(err(Mock::parse("always:99")).contains("status between 200 and 599"));
        assert!(err(Mock::parse("always:200:@/no/such/file")).contains("cannot read body file"));
        assert_eq!(
            Mock::parse("when-offline:503:later").unwrap().when,
            MockWhen::Offline
        );
        assert!(err(Mock::parse("/x when-offline:200")).contains("drop the pattern"));
    }

    #[test]
    fn faults_parse_with_precise_errors() {
        let f = Fault::parse("delay=2s").unwrap();
        assert_eq!(
            (f.kind, f.per_10k),
            (FaultKind::Delay(Duration::from_secs(2)), 10_000)
        );
        let f = Fault::parse("status=503:10%").unwrap();
        assert_eq!((f.kind, f.per_10k), (FaultKind::Status(503), 1_000));
        let f = Fault::parse("/hooks/* drop=0.5%").unwrap();
        assert_eq!((f.kind, f.per_10k), (FaultKind::Drop, 50));
        assert!(f.path.unwrap().matches("/hooks/a"));
        assert_eq!(
            err(Fault::parse("status=503:120%")),
            "inject 'status=503:120%': '120%' must be more than 0% and at most 100% (examples: 'delay=2s', 'status=503:10%', 'drop=5%')"
        );
        assert!(err(Fault::parse("drop=5")).contains("'5' must be a percentage like 10%"));
        assert!(err(Fault::parse("drop=0%")).contains("more than 0%"));
        assert!(err(Fault::parse("status=abc:5%")).contains("'abc' is not a status"));
        assert!(err(Fault::parse("delay=soon")).contains("not a duration"));
        assert!(err(Fault::parse("explode=1%")).contains("'explode' is not delay"));
        assert!(err(Fault::parse("drop=5%:5%")).contains("drop takes one percentage"));
    }
}
