//! Which provider signed a request, and the `PROVIDER:SECRET` argument.

use std::fmt;
use std::str::FromStr;

use super::common::any_header;
use super::{VerifyError, github, shopify, slack, standard_webhooks, stripe, twilio};
use crate::exchange::Header;

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
        any_header(headers, self.signature_headers())
    }

    /// The headers whose presence shows this provider signed a request.
    fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &[github::HEADER_SHA256, github::HEADER_SHA1],
            Provider::Stripe => &[stripe::HEADER],
            Provider::Slack => &[slack::HEADER_SIGNATURE],
            Provider::Shopify => &[shopify::HEADER],
            Provider::StandardWebhooks => &[
                standard_webhooks::HEADER_SIGNATURE,
                standard_webhooks::SVIX_HEADER_SIGNATURE,
            ],
            Provider::Twilio => &[twilio::HEADER],
        }
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
