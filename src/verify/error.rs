//! Why a signature did not verify.

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
