//! Edge rules: who may call a tunnel, enforced by the relay before a request
//! crosses it. The agent declares them and sends them in `hello`; this
//! module is the wire form and the pure checks, so the relay only glues them
//! to HTTP and the agent builds them with the same code that checks them.
//!
//! Secrets: basic-auth passwords never travel; the agent sends a per-rule
//! random salt and `SHA-256(salt ‖ "user:pass")`, which the relay compares in
//! constant time. The signature secret of `verify_at_edge` does travel (the
//! relay must compute the HMAC), and only when that rule is asked for.

use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
pub use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Most entries of each kind a relay accepts (agent-controlled input).
pub const MAX_ENTRIES: usize = 64;
/// Bytes of salt per basic-auth rule.
pub const SALT_BYTES: usize = 16;
/// Seconds a Stripe signature's timestamp may be away from the relay's clock.
pub const STRIPE_TOLERANCE_SECS: u64 = 300;

/// Rules the relay enforces for one tunnel. Empty means "anyone may call".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRules {
    /// Accepted credentials (any one matches); empty: no basic auth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic_auth: Vec<BasicAuth>,
    /// When not empty, only client addresses inside one of these may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ip: Vec<IpNet>,
    /// Client addresses inside any of these are refused (wins over `allow_ip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_ip: Vec<IpNet>,
    /// Headers every request must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_headers: Vec<RequiredHeader>,
    /// A webhook signature the relay checks before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<EdgeVerify>,
    /// What the relay answers while the agent is away, instead of queueing
    /// (`--mock when-offline:…`); nothing is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<Box<OfflineAnswer>>,
}

/// A canned answer the relay gives for a tunnel whose agent is away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineAnswer {
    /// Status (200–599).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body text (at most [`MAX_OFFLINE_BODY`] bytes).
    #[serde(default)]
    pub body: String,
}

/// Largest body of an [`OfflineAnswer`].
pub const MAX_OFFLINE_BODY: usize = 64 * 1024;

/// One accepted `user:pass`, as a salted verifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuth {
    /// Random salt, hex.
    pub salt: String,
    /// `SHA-256(salt ‖ "user:pass")`, hex.
    pub sha256: String,
}

/// A header a request must carry; with a value, exactly that value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredHeader {
    /// Header name, lowercase.
    pub name: String,
    /// The exact value required (compared in constant time); `None`: present is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Providers whose signatures the relay can check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeProvider {
    /// `Stripe-Signature: t=…,v1=…` (HMAC-SHA256 over `t.body`, 300 s tolerance).
    Stripe,
    /// `X-Hub-Signature-256: sha256=…` (HMAC-SHA256 over the body).
    Github,
}

impl EdgeProvider {
    /// Every provider, for error messages.
    pub const ALL: &[EdgeProvider] = &[EdgeProvider::Stripe, EdgeProvider::Github];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Github => "github",
        }
    }
}

impl std::str::FromStr for EdgeProvider {
    type Err = RulesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| RulesError::UnknownProvider(s.to_owned()))
    }
}

/// Signature verification at the edge: provider and its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeVerify {
    /// Whose scheme.
    pub provider: EdgeProvider,
    /// The signing secret (e.g. Stripe's `whsec_…`).
    pub secret: String,
}

impl std::fmt::Debug for EdgeVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeVerify")
            .field("provider", &self.provider)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A rule set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not `user:pass`.
    #[error("basic auth '{0}' must look like user:pass (a non-empty user, no ':' in it)")]
    BadCredentials(String),
    /// Not a CIDR or an address.
    #[error(
        "'{0}' is not an IP address or CIDR (examples: 203.0.113.7, 10.0.0.0/8, 2001:db8::/32)"
    )]
    BadCidr(String),
    /// A required header that is no valid header.
    #[error(
        "required header '{0}' must look like 'Name' or 'Name: value' with a valid header name"
    )]
    BadHeader(String),
    /// No such provider for edge verification.
    #[error("the relay cannot verify '{0}' signatures; edge verification knows: stripe, github")]
    UnknownProvider(String),
    /// Edge verification without a secret.
    #[error("verify at edge: the {0} secret is empty")]
    EmptySecret(&'static str),
    /// More entries of one kind than [`MAX_ENTRIES`].
    #[error("at most {MAX_ENTRIES} {0} rules")]
    TooMany(&'static str),
    /// A basic-auth verifier that is not hex of the right length.
    #[error("malformed basic-auth verifier")]
    BadVerifier,
    /// An offline answer the relay cannot send.
    #[error(
        "the when-offline answer needs a status from 200 to 599, a valid content type and a body of at most 64 KiB"
    )]
    BadOfflineAnswer,
}

/// Why the relay refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeRefusal {
    /// No or wrong `Authorization: Basic` credentials (401).
    #[error("this tunnel needs HTTP basic auth: no or wrong credentials")]
    BasicAuth,
    /// The client address is in a denied range (403).
    #[error("requests from {0} are not allowed on this tunnel")]
    IpDenied(IpAddr),
    /// The client address is in no allowed range (403).
    #[error("requests from {0} are not allowed on this tunnel (not in its allowlist)")]
    IpNotAllowed(IpAddr),
    /// A required header is missing or has another value (403).
    #[error("this tunnel requires the header '{0}' (missing or wrong value)")]
    MissingHeader(String),
    /// The webhook signature is missing or invalid (401).
    #[error("{provider} signature refused at the edge: {reason}")]
    Signature {
        /// `stripe`, `github`.
        provider: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl EdgeRefusal {
    /// A short label for notes and metrics ("basic auth", "ip denied", …).
    pub fn label(&self) -> &'static str {
        match self {
            Self::BasicAuth => "basic auth",
            Self::IpDenied(_) | Self::IpNotAllowed(_) => "ip",
            Self::MissingHeader(_) => "required header",
            Self::Signature { .. } => "signature",
        }
    }
}

impl BasicAuth {
    /// The verifier for `user:pass` with `salt` (the caller supplies randomness).
    pub fn new(credentials: &str, salt: [u8; SALT_BYTES]) -> Result<Self, RulesError> {
        match credentials.split_once(':') {
            Some((user, _)) if !user.is_empty() => {}
            _ => return Err(RulesError::BadCredentials(redact(credentials))),
        }
        Ok(Self {
            salt: hex::encode(salt),
            sha256: hex::encode(salted(&salt, credentials.as_bytes())),
        })
    }

    /// Whether `credentials` (`user:pass` bytes) match, in constant time.
    pub fn matches(&self, credentials: &[u8]) -> bool {
        let (Ok(salt), Ok(expected)) = (hex::decode(&self.salt), hex::decode(&self.sha256)) else {
            return false;
        };
        salted(&salt, credentials).ct_eq(expected.as_slice()).into()
    }
}

/// Shows the user of `user:pass`, never the password.
fn redact(credentials: &str) -> String {
    match credentials.split_once(':') {
        Some((user, _)) => format!("{user}:…"),
        None => credentials.to_owned(),
    }
}

fn salted(salt: &[u8], credentials: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(credentials);
    h.finalize().into()
}

/// Parses an address or CIDR; a bare address is a /32 or /128.
pub fn parse_cidr(text: &str) -> Result<IpNet, RulesError> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    t.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| RulesError::BadCidr(text.to_owned()))
}

impl RequiredHeader {
    /// Parses `Name` or `Name: value`.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (text.trim(), None),
        };
        let bad = || RulesError::BadHeader(text.to_owned());
        http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        if let Some(v) = &value
            && http::HeaderValue::from_str(v).is_err()
        {
            return Err(bad());
        }
        Ok(Self {
            name: name.to_ascii_lowercase(),
            value,
        })
    }

    fn satisfied_by(&self, headers: &http::HeaderMap) -> bool {
        let mut found = headers.get_all(self.name.as_str()).iter().peekable();
        match &self.value {
            None => found.peek().is_some(),
            Some(want) => found.any(|v| bool::from(v.as_bytes().ct_eq(want.as_bytes()))),
        }
    }
}

impl EdgeRules {
    /// True when the relay has nothing to check.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// True when the body must be read before the request may be forwarded.
    pub fn needs_body(&self) -> bool {
        self.verify.is_some()
    }

    /// A copy safe to store at rest: the signing secret is blanked, so a
    /// relay that restarted refuses signed requests until the agent is back.
    pub fn without_secret(&self) -> Self {
        let mut copy = self.clone();
        if let Some(v) = &mut copy.verify {
            v.secret.clear();
        }
        copy
    }

    /// Rejects rules the relay cannot use (they come from the agent).
    pub fn validate(&self) -> Result<(), RulesError> {
        for (what, n) in [
            ("basic-auth", self.basic_auth.len()),
            ("allow-ip", self.allow_ip.len()),
            ("deny-ip", self.deny_ip.len()),
            ("require-header", self.require_headers.len()),
        ] {
            if n > MAX_ENTRIES {
                return Err(RulesError::TooMany(what));
            }
        }
        for b in &self.basic_auth {
            let ok = |h: &str, len: usize| hex::decode(h).is_ok_and(|b| b.len() == len);
            if !ok(&b.salt, SALT_BYTES) || !ok(&b.sha256, 32) {
                return Err(RulesError::BadVerifier);
            }
        }
        for h in &self.require_headers {
            let text = match &h.value {
                Some(v) => format!("{}: {v}", h.name),
                None => h.name.clone(),
            };
            RequiredHeader::parse(&text)?;
        }
        if let Some(v) = &self.verify
            && v.secret.is_empty()
        {
            return Err(RulesError::EmptySecret(v.provider.as_str()));
        }
        if let Some(o) = &self.offline
            && (!(200..=599).contains(&o.status)
                || o.body.len() > MAX_OFFLINE_BODY
                || http::HeaderValue::from_str(&o.content_type).is_err())
        {
            return Err(RulesError::BadOfflineAnswer);
        }
        Ok(())
    }

    /// Checks what is known before the body: the client address, then
    /// credentials, then required headers.
    pub fn check_head(&self, headers: &http::HeaderMap, client: IpAddr) -> Result<(), EdgeRefusal> {
        let client = client.to_canonical();
        if self.deny_ip.iter().any(|n| n.contains(&client)) {
            return Err(EdgeRefusal::IpDenied(client));
        }
        if !self.allow_ip.is_empty() && !self.allow_ip.iter().any(|n| n.contains(&client)) {
            return Err(EdgeRefusal::IpNotAllowed(client));
        }
        if !self.basic_auth.is_empty() {
            let presented = basic_credentials(headers).ok_or(EdgeRefusal::BasicAuth)?;
            // Every verifier is tried, so timing does not tell which matched.
            let matched = self
                .basic_auth
                .iter()
                .fold(false, |any, b| b.matches(&presented) | any);
            if !matched {
                return Err(EdgeRefusal::BasicAuth);
            }
        }
        if let Some(missing) = self
            .require_headers
            .iter()
            .find(|h| !h.satisfied_by(headers))
        {
            return Err(EdgeRefusal::MissingHeader(missing.name.clone()));
        }
        Ok(())
    }

    /// Checks the signature over the whole body (`now`: Unix seconds).
    pub fn check_body(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), EdgeRefusal> {
        let Some(v) = &self.verify else {
            return Ok(());
        };
        let refuse = |reason: String| EdgeRefusal::Signature {
            provider: v.provider.as_str(),
            reason,
        };
        if v.secret.is_empty() {
            return Err(refuse(
                "the relay has no signing secret until the tunnel's agent reconnects".into(),
            ));
        }
        match v.provider {
            EdgeProvider::Stripe => verify_stripe(&v.secret, headers, body, now).map_err(refuse),
            EdgeProvider::Github => verify_github(&v.secret, headers, body).map_err(refuse),
        }
    }
}

/// The `user:pass` bytes of an `Authorization: Basic …` header.
fn basic_credentials(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| "unusable secret".to_owned())?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

fn header_text<'a>(headers: &'a http::HeaderMap, name: &str) -> Result<&'a str, String> {
    let value = headers
        .get(name)
        .ok_or_else(|| format!("no {name} header"))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| format!("{name} is not text"))
}

/// Stripe's scheme, as `src/verify/stripe.rs` (stripe-go's rules): any
/// matching `v1` passes; undecodable `v1`s are ignored; a bad `t` fails.
fn verify_stripe(
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<(), String> {
    let value = header_text(headers, "stripe-signature")?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            return Err(format!("Stripe-Signature item `{item}` is not key=value"));
        };
        match key.trim() {
            "t" => {
                let raw = val.trim();
                let t = raw
                    .parse::<u64>()
                    .map_err(|_| format!("t=`{raw}` is not a Unix timestamp"))?;
                timestamp = Some((raw, t));
            }
            "v1" => {
                if let Ok(sig) = hex::decode(val.trim()) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let (raw, t) = timestamp.ok_or("Stripe-Signature has no t= timestamp")?;
    if v1.is_empty() {
        return Err("Stripe-Signature has no v1 signature".into());
    }
    let expected = hmac_sha256(secret.as_bytes(), &[raw.as_bytes(), b".", body])?;
    let matched = v1
        .iter()
        .fold(false, |any, sig| bool::from(sig.ct_eq(&expected)) | any);
    if !matched {
        return Err("signature does not match the body".into());
    }
    if now.abs_diff(t) > STRIPE_TOLERANCE_SECS {
        return Err(format!(
            "timestamp {t} is more than {STRIPE_TOLERANCE_SECS} s from the relay's clock"
        ));
    }
    Ok(())
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex>` over the body.
fn verify_github(secret: &str, headers: &http::HeaderMap, body: &[u8]) -> Result<(), String> {
    let value = header_text(headers, "x-hub-signature-256")?;
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or("X-Hub-Signature-256 must look like sha256=<hex>")?;
    let sig = hex::decode(hex_sig).map_err(|_| "X-Hub-Signature-256 is not hex".to_owned())?;
    let expected = hmac_sha256(secret.as_bytes(), &[body])?;
    if bool::from(sig.ct_eq(&expected)) {
        Ok(())
    } else {
        Err("signature does not match the body".into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn basic_auth_verifiers_never_hold_the_password_and_match_in_constant_time() {
        let rule = BasicAuth::new("alice:s3cret", [7; SALT_BYTES]).unwrap();
        let json = serde_json::to_string(&rule).unwrap();
        assert!(
            !json.contains("s3cret") && !json.contains("alice"),
            "{json}"
        );
        assert!(rule.matches(b"alice:s3cret"));
        assert!(!rule.matches(b"alice:s3creT"));
        // Same password, other salt: another verifier.
        let other = BasicAuth::new("alice:s3cret", [8; SALT_BYTES]).unwrap();
        assert_ne!(rule.sha256, other.sha256);
        let rules = EdgeRules {
            basic_auth: vec![rule, BasicAuth::new("bob:pw", [1; SALT_BYTES]).unwrap()],
            ..EdgeRules::default()
        };
        rules.validate().unwrap();
        let ok = |h: &[(&str, &str)]| rules.check_head(&headers(h), LOCAL);
        assert_eq!(ok(&[("authorization", &basic("bob:pw"))]), Ok(()));
        assert_eq!(ok(&[("authorization", &basic("alice:s3cret"))]), Ok(()));
        assert_eq!(ok(&[]), Err(EdgeRefusal::BasicAuth));
        assert_eq!(
            ok(&[("authorization", &basic("bob:nope"))]),
            Err(EdgeRefusal::BasicAuth)
        );
        assert_eq!(
            ok(&[("authorization", "Bearer x")]),
            Err(EdgeRefusal::BasicAuth)
        );
        assert_eq!(
            ok(&[("authorization", "Basic !!!")]),
            Err(EdgeRefusal::BasicAuth)
        );
    }

    #[test]
    fn credentials_without_a_user_are_refused_without_echoing_the_password() {
        let e = BasicAuth::new("nocolon", [0; SALT_BYTES]).unwrap_err();
        assert_eq!(e, RulesError::BadCredentials("nocolon".into()));
        let e = BasicAuth::new(":hunter2", [0; SALT_BYTES]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn cidrs_parse_for_both_families_and_deny_wins() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("203.0.113.7").unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            parse_cidr("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        for bad in ["10.0.0.0/33", "300.1.1.1", "example.com", "", "::/129"] {
            assert_eq!(
                parse_cidr(bad),
                Err(RulesError::BadCidr(bad.into())),
                "{bad}"
            );
        }
        let rules = EdgeRules {
            allow_ip: vec![
                parse_cidr("10.0.0.0/8").unwrap(),
                parse_cidr("2001:db8::/32").unwrap(),
            ],
            deny_ip: vec![parse_cidr("10.9.0.0/16").unwrap()],
            ..EdgeRules::default()
        };
        let at = |ip: &str| rules.check_head(&http::HeaderMap::new(), ip.parse().unwrap());
        assert_eq!(at("10.1.1.1"), Ok(()));
        assert_eq!(at("2001:db8::5"), Ok(()));
        // An IPv4-mapped IPv6 peer is judged as its IPv4 address.
        assert_eq!(at("::ffff:10.1.1.1"), Ok(()));
        assert!(matches!(at("10.9.1.1"), Err(EdgeRefusal::IpDenied(_))));
        assert!(matches!(at("192.0.2.1"), Err(EdgeRefusal::IpNotAllowed(_))));
        assert!(matches!(
            at("2001:db9::1"),
            Err(EdgeRefusal::IpNotAllowed(_))
        ));
    }

    #[test]
    fn required_headers_need_presence_or_the_exact_value() {
        let rules = EdgeRules {
            require_headers: vec![
                RequiredHeader::parse("X-Token: abc").unwrap(),
                RequiredHeader::parse("X-Source").unwrap(),
            ],
            ..EdgeRules::default()
        };
        rules.validate().unwrap();
        let at = |h: &[(&str, &str)]| rules.check_head(&headers(h), LOCAL);
        assert_eq!(at(&[("x-token", "abc"), ("x-source", "")]), Ok(()));
        assert_eq!(
            at(&[("x-token", "abd"), ("x-source", "y")]),
            Err(EdgeRefusal::MissingHeader("x-token".into()))
        );
        assert_eq!(
            at(&[("x-token", "abc")]),
            Err(EdgeRefusal::MissingHeader("x-source".into()))
        );
        assert!(RequiredHeader::parse("bad header: x").is_err());
        assert!(RequiredHeader::parse(": x").is_err());
    }

    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const STRIPE_T: u64 = 1_700_000_000;
    const STRIPE_SIG: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    #[test]
    fn stripe_signatures_are_checked_at_the_edge() {
        let rules = EdgeRules {
            verify: Some(EdgeVerify {
                provider: EdgeProvider::Stripe,
                secret: STRIPE_SECRET.into(),
            }),
            ..EdgeRules::default()
        };
        assert!(rules.needs_body());
        assert!(!format!("{rules:?}").contains(STRIPE_SECRET));
        let good = format!("t={STRIPE_T},v0=zz,v1=00,v1={STRIPE_SIG}");
        let check = |h: &str, body: &[u8], now: u64| {
            rules.check_body(&headers(&[("stripe-signature", h)]), body, now)
        };
        assert_eq!(check(&good, STRIPE_BODY, STRIPE_T + 10), Ok(()));
        let reason = |r: Result<(), EdgeRefusal>| match r {
            Err(EdgeRefusal::Signature { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(check(&good, b"{}", STRIPE_T)).contains("does not match"));
        assert!(reason(check(&good, STRIPE_BODY, STRIPE_T + 301)).contains("300 s"));
        assert!(reason(check("t=x,v1=00", STRIPE_BODY, STRIPE_T)).contains("Unix timestamp"));
        assert!(reason(check(&format!("t={STRIPE_T}"), STRIPE_BODY, STRIPE_T)).contains("no v1"));
        let none = rules.check_body(&http::HeaderMap::new(), STRIPE_BODY, STRIPE_T);
        assert!(reason(none).contains("no stripe-signature header"));
        let stored = rules.without_secret();
        assert!(
            !serde_json::to_string(&stored)
                .unwrap()
                .contains(STRIPE_SECRET)
        );
        let blind = stored.check_body(
            &headers(&[("stripe-signature", &good)]),
            STRIPE_BODY,
            STRIPE_T,
        );
        assert!(reason(blind).contains("until the tunnel's agent reconnects"));
    }

    #[test]
    fn github_signatures_are_checked_at_the_edge() {
        // GitHub's published example (docs: "Validating webhook deliveries").
        let rules = EdgeRules {
            verify: Some(EdgeVerify {
                provider: "GitHub".parse().unwrap(),
                secret: "It's a Secret to Everybody".into(),
            }),
            ..EdgeRules::default()
        };
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let at = |h: &str, body: &[u8]| {
            rules.check_body(&headers(&[("x-hub-signature-256", h)]), body, 0)
        };
        assert_eq!(at(sig, b"Hello, World!"), Ok(()));
        assert!(at(sig, b"Hello, World?").is_err());
        assert!(at("sha1=00", b"Hello, World!").is_err());
    }

    #[test]
    fn unknown_providers_and_hostile_rule_sets_are_named() {
        assert_eq!(
            "paypal".parse::<EdgeProvider>(),
            Err(RulesError::UnknownProvider("paypal".into()))
        );
        let many = EdgeRules {
            deny_ip: vec![parse_cidr("10.0.0.1").unwrap(); MAX_ENTRIES + 1],
            ..EdgeRules::default()
        };
        assert_eq!(many.validate(), Err(RulesError::TooMany("deny-ip")));
        let forged = EdgeRules {
            basic_auth: vec![BasicAuth {
                salt: "00".into(),
                sha256: "zz".into(),
            }],
            ..EdgeRules::default()
        };
        assert_eq!(forged.validate(), Err(RulesError::BadVerifier));
        let empty = EdgeRules {
            verify: Some(EdgeVerify {
                provider: EdgeProvider::Stripe,
                secret: String::new(),
            }),
            ..EdgeRules::default()
        };
        assert_eq!(empty.validate(), Err(RulesError::EmptySecret("stripe")));
        let huge = EdgeRules {
            offline: Some(Box::new(OfflineAnswer {
                status: 503,
                content_type: "text/plain".into(),
                body: "x".repeat(MAX_OFFLINE_BODY + 1),
            })),
            ..EdgeRules::default()
        };
        assert_eq!(huge.validate(), Err(RulesError::BadOfflineAnswer));
    }

    #[test]
    fn rules_round_trip_and_empty_fields_stay_off_the_wire() {
        assert_eq!(serde_json::to_string(&EdgeRules::default()).unwrap(), "{}");
        let rules = EdgeRules {
            allow_ip: vec![parse_cidr("2001:db8::/32").unwrap()],
            require_headers: vec![RequiredHeader::parse("x-a").unwrap()],
            ..EdgeRules::default()
        };
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(
            json,
            r#"{"allow_ip":["2001:db8::/32"],"require_headers":[{"name":"x-a"}]}"#
        );
        assert_eq!(serde_json::from_str::<EdgeRules>(&json).unwrap(), rules);
    }
}
