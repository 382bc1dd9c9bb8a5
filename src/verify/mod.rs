//! Webhook signature schemes as pure functions: verify, sign and re-sign.
//!
//! One module per scheme ([`github`], [`stripe`], [`slack`], [`shopify`],
//! [`standard_webhooks`], [`twilio`]); this module dispatches on [`Provider`].
//! Nothing here reads the clock or does I/O: callers pass `now` in Unix seconds.
//! Bodies are raw bytes end to end, and every comparison is constant-time.
//!
//! Where the reference libraries disagree on order, the signature is checked
//! before the timestamp, so [`VerifyError::TooOld`] / [`VerifyError::TooNew`]
//! mean "authentic, but outside the tolerance window" (re-sign to replay).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::exchange::{Header, SignatureVerdict};

pub mod github;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;

/// A webhook sender whose signature scheme hooktunnel knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256` (and legacy `X-Hub-Signature`).
    GitHub,
    /// Stripe: `Stripe-Signature: t=…,v1=…`.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=…` with `X-Slack-Request-Timestamp`.
    Slack,
    /// Shopify: `X-Shopify-Hmac-Sha256` (base64).
    Shopify,
    /// Standard Webhooks (Svix and others): `webhook-*` / `svix-*` headers.
    StandardWebhooks,
    /// Twilio: `X-Twilio-Signature` over the public URL and form parameters.
    Twilio,
}

impl Provider {
    /// Every provider, in detection order.
    pub const ALL: [Provider; 6] = [
        Provider::GitHub,
        Provider::Stripe,
        Provider::Slack,
        Provider::Shopify,
        Provider::StandardWebhooks,
        Provider::Twilio,
    ];

    /// The canonical command-line name (`github`, `standard-webhooks`, …).
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Stripe => "stripe",
            Provider::Slack => "slack",
            Provider::Shopify => "shopify",
            Provider::StandardWebhooks => "standard-webhooks",
            Provider::Twilio => "twilio",
        }
    }

    /// Whether this provider's signature headers are present (names compared case-insensitively).
    pub fn is_present(self, headers: &[Header]) -> bool {
        let names: &[&str] = match self {
            Provider::GitHub => &[github::HEADER_SHA256, github::HEADER_SHA1],
            Provider::Stripe => &[stripe::HEADER],
            Provider::Slack => &[slack::HEADER_SIGNATURE],
            Provider::Shopify => &[shopify::HEADER],
            Provider::StandardWebhooks => &[
                standard_webhooks::HEADER_SIGNATURE,
                standard_webhooks::SVIX_HEADER_SIGNATURE,
            ],
            Provider::Twilio => &[twilio::HEADER],
        };
        names.iter().any(|n| find_header(headers, n).is_some())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = VerifyError;

    /// Accepts the canonical names (case-insensitive), plus `svix` and
    /// `standard_webhooks`/`standardwebhooks` for Standard Webhooks.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "github" => Ok(Provider::GitHub),
            "stripe" => Ok(Provider::Stripe),
            "slack" => Ok(Provider::Slack),
            "shopify" => Ok(Provider::Shopify),
            "standard-webhooks" | "standard_webhooks" | "standardwebhooks" | "svix" => {
                Ok(Provider::StandardWebhooks)
            }
            "twilio" => Ok(Provider::Twilio),
            _ => Err(VerifyError::UnknownProvider(s.to_owned())),
        }
    }
}

/// A provider and its secret, from `--verify` / `--resign` / `--sign PROVIDER:SECRET`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// Which scheme the secret belongs to.
    pub provider: Provider,
    /// The secret exactly as the provider shows it (e.g. `whsec_…`).
    pub secret: String,
}

impl SecretSpec {
    /// Builds a spec from its parts.
    pub fn new(provider: Provider, secret: impl Into<String>) -> Self {
        Self {
            provider,
            secret: secret.into(),
        }
    }
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec")
            .field("provider", &self.provider)
            .field(
                "secret",
                &format_args!("<redacted, {} bytes>", self.secret.len()),
            )
            .finish()
    }
}

impl FromStr for SecretSpec {
    type Err = VerifyError;

    /// Parses `PROVIDER:SECRET`; only the first `:` separates, so secrets may contain `:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (provider, secret) = s.split_once(':').ok_or_else(|| {
            VerifyError::InvalidSpec("expected PROVIDER:SECRET, e.g. stripe:whsec_…".into())
        })?;
        let provider = provider.parse()?;
        if secret.is_empty() {
            return Err(VerifyError::InvalidSpec(format!(
                "the secret after `{provider}:` is empty"
            )));
        }
        Ok(Self::new(provider, secret))
    }
}

/// Why a signature did not verify, or why signing was impossible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed.
    #[error("malformed {header} header: {why}")]
    MalformedHeader {
        /// The header's canonical name.
        header: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The header parses but carries no signature of a version this scheme checks.
    #[error("{header} header has no {version} signature")]
    NoSignature {
        /// The header's canonical name.
        header: &'static str,
        /// The signature version looked for (`v1`, …).
        version: &'static str,
    },
    /// The signature does not match: wrong secret, or the body (or URL) changed.
    #[error(
        "signature mismatch: wrong secret, or the signed content (body; URL for Twilio) was changed"
    )]
    Mismatch,
    /// The signature matches but its timestamp is older than the tolerance.
    #[error(
        "signature matches but the timestamp is {by_secs} s old (tolerance {tolerance_secs} s); \
         re-sign to replay"
    )]
    TooOld {
        /// Age of the timestamp relative to `now`, in seconds.
        by_secs: u64,
        /// The tolerance that was exceeded, in seconds.
        tolerance_secs: u64,
    },
    /// The signature matches but its timestamp is further in the future than the tolerance.
    #[error(
        "signature matches but the timestamp is {by_secs} s in the future \
         (tolerance {tolerance_secs} s); check the clocks"
    )]
    TooNew {
        /// How far ahead of `now` the timestamp is, in seconds.
        by_secs: u64,
        /// The tolerance that was exceeded, in seconds.
        tolerance_secs: u64,
    },
    /// The secret cannot be used as a key for this scheme.
    #[error("invalid secret: {0}")]
    InvalidSecret(String),
    /// Twilio signs the public URL, which is not known here.
    #[error("Twilio signatures cover the public URL, which is not known for this request")]
    MissingUrl,
    /// The URL is not an absolute `http(s)://` URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// Twilio JSON bodies: the body's SHA-256 differs from the URL's `bodySHA256`.
    #[error("body SHA-256 does not match the bodySHA256 URL parameter: the body was changed")]
    BodyHashMismatch,
    /// An unknown provider name.
    #[error(
        "unknown provider `{0}` (known: github, stripe, slack, shopify, standard-webhooks (svix), twilio)"
    )]
    UnknownProvider(String),
    /// A `PROVIDER:SECRET` argument that does not parse.
    #[error("invalid provider:secret: {0}")]
    InvalidSpec(String),
}

/// Checks `provider`'s signature on a request.
///
/// `public_url` is the full URL the sender requested (scheme, host, path and
/// query); only Twilio needs it. `now` is Unix seconds.
pub fn verify(
    provider: Provider,
    secret: &str,
    headers: &[Header],
    body: &[u8],
    public_url: Option<&str>,
    now: u64,
) -> Result<(), VerifyError> {
    match provider {
        Provider::GitHub => github::verify(secret, headers, body),
        Provider::Stripe => stripe::verify(secret, headers, body, now),
        Provider::Slack => slack::verify(secret, headers, body, now),
        Provider::Shopify => shopify::verify(secret, headers, body),
        Provider::StandardWebhooks => standard_webhooks::verify(secret, headers, body, now),
        Provider::Twilio => twilio::verify(
            secret,
            headers,
            body,
            public_url.ok_or(VerifyError::MissingUrl)?,
        ),
    }
}

/// Which provider's signature headers the request carries, if any.
pub fn detect(headers: &[Header]) -> Option<Provider> {
    Provider::ALL.into_iter().find(|p| p.is_present(headers))
}

/// The verdict for a request given the configured secrets, or `None` when none applies.
///
/// Specs whose provider is [`detect`]ed are tried (valid if any verifies, which
/// allows secret rotation); with no detected match, a single configured spec is
/// used anyway (so a missing signature is reported). The reason is the error's
/// `Display`.
pub fn verdict(
    specs: &[SecretSpec],
    headers: &[Header],
    body: &[u8],
    public_url: Option<&str>,
    now: u64,
) -> Option<SignatureVerdict> {
    let detected = detect(headers);
    let mut candidates: Vec<&SecretSpec> = specs
        .iter()
        .filter(|s| Some(s.provider) == detected)
        .collect();
    if candidates.is_empty() {
        match specs {
            [only] => candidates.push(only),
            _ => return None,
        }
    }
    let provider = candidates.first()?.provider;
    let mut first_err = None;
    for spec in candidates {
        match verify(spec.provider, &spec.secret, headers, body, public_url, now) {
            Ok(()) => {
                return Some(SignatureVerdict {
                    provider: provider.to_string(),
                    valid: true,
                    reason: None,
                });
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Some(SignatureVerdict {
        provider: provider.to_string(),
        valid: false,
        reason: first_err.map(|e| e.to_string()),
    })
}

/// The signature headers to set (replacing any of the same name) for `body`.
///
/// `msg_id` is the Standard Webhooks message id (derived from `now` and the
/// body when `None`); `public_url` is required for Twilio, whose form
/// parameters are read from `body` (or, when the URL carries `bodySHA256`,
/// the signature covers the URL only). Use [`apply`] to merge the result.
pub fn sign(
    provider: Provider,
    secret: &str,
    body: &[u8],
    now: u64,
    msg_id: Option<&str>,
    public_url: Option<&str>,
) -> Result<Vec<Header>, VerifyError> {
    match provider {
        Provider::GitHub => github::sign(secret, body),
        Provider::Stripe => stripe::sign(secret, body, now),
        Provider::Slack => slack::sign(secret, body, now),
        Provider::Shopify => shopify::sign(secret, body),
        Provider::StandardWebhooks => {
            let id = msg_id.map_or_else(|| derived_msg_id(None, now, body), str::to_owned);
            standard_webhooks::sign(secret, &id, now, body, standard_webhooks::Prefix::Webhook)
        }
        Provider::Twilio => twilio::sign(
            secret,
            body,
            public_url.ok_or(VerifyError::MissingUrl)?,
            true,
        ),
    }
}

/// `headers` with the signature headers re-computed for `now`, replaced in place.
///
/// Other headers keep their order. Standard Webhooks keeps the message id
/// (and the `svix-` / `webhook-` naming) unless `new_id`, in which case an id
/// is derived from the old one, `now` and the body. GitHub only replaces the
/// signature headers already present (both when neither is). Twilio reads form
/// parameters only when the content type is form-urlencoded (or absent).
pub fn resign(
    provider: Provider,
    secret: &str,
    headers: &[Header],
    body: &[u8],
    now: u64,
    new_id: bool,
    public_url: Option<&str>,
) -> Result<Vec<Header>, VerifyError> {
    let replacements = match provider {
        Provider::GitHub => {
            let mut signed = github::sign(secret, body)?;
            if signed
                .iter()
                .any(|h| find_header(headers, &h.name).is_some())
            {
                signed.retain(|h| find_header(headers, &h.name).is_some());
            }
            signed
        }
        Provider::StandardWebhooks => {
            let mut prefixes: Vec<_> = [
                standard_webhooks::Prefix::Webhook,
                standard_webhooks::Prefix::Svix,
            ]
            .into_iter()
            .filter(|p| p.is_present(headers))
            .collect();
            if prefixes.is_empty() {
                prefixes.push(standard_webhooks::Prefix::Webhook);
            }
            let old_id = standard_webhooks::message_id(headers);
            let id = match old_id {
                Some(id) if !new_id => id.to_owned(),
                _ => derived_msg_id(old_id, now, body),
            };
            let mut out = Vec::new();
            for prefix in prefixes {
                out.extend(standard_webhooks::sign(secret, &id, now, body, prefix)?);
            }
            out
        }
        Provider::Twilio => twilio::sign(
            secret,
            body,
            public_url.ok_or(VerifyError::MissingUrl)?,
            is_form(headers),
        )?,
        _ => sign(provider, secret, body, now, None, public_url)?,
    };
    Ok(apply(headers, replacements))
}

/// Merges `replacements` into `headers`: each replaces the first header of the
/// same name (case-insensitive; the original name's spelling is kept), later
/// duplicates are dropped, and new names are appended in order.
pub fn apply(headers: &[Header], replacements: Vec<Header>) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::with_capacity(headers.len() + replacements.len());
    let mut replacements: Vec<Option<Header>> = replacements.into_iter().map(Some).collect();
    let mut replaced: Vec<&str> = Vec::new();
    for h in headers {
        if replaced.iter().any(|n| n.eq_ignore_ascii_case(&h.name)) {
            continue;
        }
        let slot = replacements.iter_mut().find(|r| {
            r.as_ref()
                .is_some_and(|r| r.name.eq_ignore_ascii_case(&h.name))
        });
        match slot.and_then(Option::take) {
            Some(new) => {
                replaced.push(&h.name);
                out.push(Header::new(h.name.clone(), new.value));
            }
            None => out.push(h.clone()),
        }
    }
    out.extend(replacements.into_iter().flatten());
    out
}

// ---------- helpers shared by the scheme modules ----------

/// The first header named `name` (ASCII case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// A header's value as trimmed text, `None` when absent.
pub(crate) fn header_str<'a>(
    headers: &'a [Header],
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    match find_header(headers, name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(|s| Some(s.trim()))
            .map_err(|_| malformed(name, "not valid UTF-8")),
    }
}

/// A header's value as trimmed, non-empty text.
pub(crate) fn required_header<'a>(
    headers: &'a [Header],
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    match header_str(headers, name)? {
        None => Err(VerifyError::MissingHeader(name)),
        Some("") => Err(malformed(name, "empty value")),
        Some(v) => Ok(v),
    }
}

/// Shorthand for [`VerifyError::MalformedHeader`].
pub(crate) fn malformed(header: &'static str, why: impl Into<String>) -> VerifyError {
    VerifyError::MalformedHeader {
        header,
        why: why.into(),
    }
}

/// Rejects an empty secret.
pub(crate) fn non_empty(secret: &str) -> Result<&[u8], VerifyError> {
    if secret.is_empty() {
        Err(VerifyError::InvalidSecret("the secret is empty".into()))
    } else {
        Ok(secret.as_bytes())
    }
}

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| VerifyError::InvalidSecret("unusable HMAC key".into()))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// HMAC-SHA1 of the concatenated `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
        .map_err(|_| VerifyError::InvalidSecret("unusable HMAC key".into()))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Constant-time equality (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks `ts` against `now`: older than `tolerance` fails; so does newer, when `check_future`.
pub(crate) fn check_timestamp(
    ts: i64,
    now: u64,
    tolerance: u64,
    check_future: bool,
) -> Result<(), VerifyError> {
    let diff = i128::from(now) - i128::from(ts);
    let clamp = |d: i128| u64::try_from(d).unwrap_or(u64::MAX);
    if diff > i128::from(tolerance) {
        Err(VerifyError::TooOld {
            by_secs: clamp(diff),
            tolerance_secs: tolerance,
        })
    } else if check_future && -diff > i128::from(tolerance) {
        Err(VerifyError::TooNew {
            by_secs: clamp(-diff),
            tolerance_secs: tolerance,
        })
    } else {
        Ok(())
    }
}

/// Whether the body is form-urlencoded (or untyped), per `Content-Type`.
pub(crate) fn is_form(headers: &[Header]) -> bool {
    match find_header(headers, "content-type") {
        None => true,
        Some(v) => String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("application/x-www-form-urlencoded"),
    }
}

/// A deterministic Standard Webhooks message id for a re-signed or new message.
fn derived_msg_id(old: Option<&str>, now: u64, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"hooktunnel msg id\0");
    h.update(old.unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(now.to_be_bytes());
    h.update(body);
    let digest = h.finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.to_string().parse::<Provider>().unwrap(), p);
        }
        assert_eq!(
            "svix".parse::<Provider>().unwrap(),
            Provider::StandardWebhooks
        );
        assert_eq!("GitHub".parse::<Provider>().unwrap(), Provider::GitHub);
        assert!(matches!(
            "gitlab".parse::<Provider>(),
            Err(VerifyError::UnknownProvider(_))
        ));
    }

    #[test]
    fn secret_spec_parses_and_redacts() {
        let spec: SecretSpec = "stripe:whsec_a:b".parse().unwrap();
        assert_eq!(spec.provider, Provider::Stripe);
        assert_eq!(spec.secret, "whsec_a:b");
        let dbg = format!("{spec:?}");
        assert!(!dbg.contains("whsec_a"), "{dbg}");
        assert!(dbg.contains("redacted"));
        assert!(matches!(
            "stripe".parse::<SecretSpec>(),
            Err(VerifyError::InvalidSpec(_))
        ));
        assert!(matches!(
            "stripe:".parse::<SecretSpec>(),
            Err(VerifyError::InvalidSpec(_))
        ));
        assert!(matches!(
            "nope:x".parse::<SecretSpec>(),
            Err(VerifyError::UnknownProvider(_))
        ));
    }

    #[test]
    fn detect_each_provider_case_insensitively() {
        let cases = [
            ("x-hub-signature-256", Provider::GitHub),
            ("X-HUB-SIGNATURE", Provider::GitHub),
            ("Stripe-Signature", Provider::Stripe),
            ("x-slack-signature", Provider::Slack),
            ("X-Shopify-Hmac-SHA256", Provider::Shopify),
            ("webhook-signature", Provider::StandardWebhooks),
            ("Svix-Signature", Provider::StandardWebhooks),
            ("x-twilio-signature", Provider::Twilio),
        ];
        for (name, p) in cases {
            assert_eq!(
                detect(&[h("accept", "*/*"), h(name, "x")]),
                Some(p),
                "{name}"
            );
        }
        assert_eq!(detect(&[h("content-type", "application/json")]), None);
    }

    #[test]
    fn verdict_picks_detected_spec_and_reports_reason() {
        let body = b"Hello, World!";
        let headers = sign(Provider::GitHub, "s3", body, 0, None, None).unwrap();
        let specs = vec![
            SecretSpec::new(Provider::Stripe, "whsec_x"),
            SecretSpec::new(Provider::GitHub, "wrong"),
            SecretSpec::new(Provider::GitHub, "s3"),
        ];
        let v = verdict(&specs, &headers, body, None, 0).unwrap();
        assert_eq!(v.provider, "github");
        assert!(v.valid, "{v:?}");

        let v = verdict(&specs, &headers, b"tampered", None, 0).unwrap();
        assert!(!v.valid);
        assert!(v.reason.unwrap().contains("mismatch"));

        // Several specs, none detected: no verdict.
        assert_eq!(verdict(&specs, &[], body, None, 0), None);
        // One spec, nothing detected: reported as missing.
        let v = verdict(&specs[1..2], &[], body, None, 0).unwrap();
        assert!(!v.valid);
        assert_eq!(
            v.reason.as_deref(),
            Some("missing X-Hub-Signature-256 header")
        );
        assert_eq!(verdict(&[], &headers, body, None, 0), None);
    }

    #[test]
    fn twilio_without_url_is_a_clear_error() {
        let headers = [h("X-Twilio-Signature", "abc=")];
        assert_eq!(
            verify(Provider::Twilio, "t", &headers, b"", None, 0),
            Err(VerifyError::MissingUrl)
        );
        assert_eq!(
            sign(Provider::Twilio, "t", b"", 0, None, None),
            Err(VerifyError::MissingUrl)
        );
    }

    #[test]
    fn apply_replaces_in_place_keeps_order_and_appends_new() {
        let headers = vec![
            h("Host", "x"),
            h("stripe-signature", "old"),
            h("Content-Type", "application/json"),
            h("Stripe-Signature", "dup"),
        ];
        let out = apply(
            &headers,
            vec![h("Stripe-Signature", "new"), h("X-New", "1")],
        );
        assert_eq!(
            out,
            vec![
                h("Host", "x"),
                h("stripe-signature", "new"),
                h("Content-Type", "application/json"),
                h("X-New", "1"),
            ]
        );
    }

    #[test]
    fn resign_every_provider_turns_stale_request_valid() {
        let url = "https://relay.example/t/demo/hook";
        let body = b"a=1&b=2";
        for p in Provider::ALL {
            let secret = match p {
                Provider::StandardWebhooks => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                _ => "secret",
            };
            let old = sign(p, secret, body, 1_000, Some("msg_1"), Some(url)).unwrap();
            let mut headers = vec![h("user-agent", "x")];
            headers.extend(old);
            headers.push(h("accept", "*/*"));
            let now = 100_000;
            let fresh = resign(p, secret, &headers, body, now, false, Some(url)).unwrap();
            assert_eq!(fresh.len(), headers.len(), "{p}");
            assert_eq!(fresh.first(), headers.first());
            assert_eq!(fresh.last(), headers.last());
            verify(p, secret, &fresh, body, Some(url), now).unwrap();
        }
    }

    #[test]
    fn resign_standard_webhooks_keeps_or_renews_id_and_prefix() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let headers = vec![
            h("svix-id", "msg_keep"),
            h("svix-timestamp", "1"),
            h("svix-signature", "v1,AAAA"),
        ];
        let kept = resign(
            Provider::StandardWebhooks,
            secret,
            &headers,
            b"{}",
            500,
            false,
            None,
        )
        .unwrap();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0], h("svix-id", "msg_keep"));
        assert_eq!(kept[1], h("svix-timestamp", "500"));
        verify(Provider::StandardWebhooks, secret, &kept, b"{}", None, 500).unwrap();

        let renewed = resign(
            Provider::StandardWebhooks,
            secret,
            &headers,
            b"{}",
            500,
            true,
            None,
        )
        .unwrap();
        assert_eq!(renewed[0].name, "svix-id");
        assert_ne!(renewed[0].value, b"msg_keep");
        verify(
            Provider::StandardWebhooks,
            secret,
            &renewed,
            b"{}",
            None,
            500,
        )
        .unwrap();
    }

    #[test]
    fn resign_github_only_touches_present_headers() {
        let headers = vec![
            h("x-hub-signature-256", "sha256=00"),
            h("x-github-event", "ping"),
        ];
        let out = resign(Provider::GitHub, "s", &headers, b"{}", 0, false, None).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].name, "x-hub-signature-256");
        verify(Provider::GitHub, "s", &out, b"{}", None, 0).unwrap();
        let out = resign(Provider::GitHub, "s", &[], b"{}", 0, false, None).unwrap();
        assert_eq!(out.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn dispatch_round_trip_and_tamper_every_provider(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..200),
            now in 1_000u64..4_000_000_000,
            idx in proptest::prelude::any::<proptest::sample::Index>(),
            delta in 1u8..=255,
        ) {
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] = tampered[i].wrapping_add(delta);
            for p in Provider::ALL {
                let secret = match p {
                    Provider::StandardWebhooks => "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                    _ => "s3cret:with:colons",
                };
                // Twilio form bodies are ambiguous by design; sign a JSON body
                // (URL carries bodySHA256) so any change is detected.
                let url = twilio::url_with_body_hash("https://relay.example/t/x/in", &body);
                let headers = sign(p, secret, &body, now, None, Some(&url)).unwrap();
                proptest::prop_assert_eq!(detect(&headers), Some(p));
                proptest::prop_assert_eq!(verify(p, secret, &headers, &body, Some(&url), now), Ok(()));
                let want = match p {
                    Provider::Twilio => VerifyError::BodyHashMismatch,
                    _ => VerifyError::Mismatch,
                };
                proptest::prop_assert_eq!(
                    verify(p, secret, &headers, &tampered, Some(&url), now),
                    Err(want)
                );
                proptest::prop_assert!(verify(p, "other", &headers, &body, Some(&url), now).is_err());
            }
        }
    }

    #[test]
    fn timestamp_window() {
        assert!(check_timestamp(700, 1000, 300, true).is_ok());
        assert!(check_timestamp(1300, 1000, 300, true).is_ok());
        assert_eq!(
            check_timestamp(699, 1000, 300, true),
            Err(VerifyError::TooOld {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check_timestamp(1301, 1000, 300, true),
            Err(VerifyError::TooNew {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check_timestamp(i64::MAX, 0, 300, false).is_ok());
        assert!(check_timestamp(i64::MIN, u64::MAX, 300, true).is_err());
    }
}
