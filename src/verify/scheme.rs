//! The interface every signature scheme implements.

use super::VerifyError;
use crate::exchange::Header;

/// What a scheme signs or checks: one request as the sender made it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The request headers (for signing: the headers being re-signed, or none).
    pub headers: &'a [Header],
    /// The raw body.
    pub body: &'a [u8],
    /// The full public URL the sender requested; only Twilio signs it.
    pub public_url: Option<&'a str>,
    /// Unix seconds: the signing time, or the time to check timestamps against.
    pub now: u64,
}

impl<'a> Message<'a> {
    /// A message without a public URL.
    pub fn new(headers: &'a [Header], body: &'a [u8], now: u64) -> Self {
        Self {
            headers,
            body,
            public_url: None,
            now,
        }
    }

    /// The public URL, which Twilio cannot do without.
    pub fn required_url(&self) -> Result<&'a str, VerifyError> {
        self.public_url.ok_or(VerifyError::MissingUrl)
    }
}

/// Which message id a re-signed message carries (only Standard Webhooks signs one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageId<'a> {
    /// The id in the message's headers; derived as for [`MessageId::New`] when there is none.
    Keep,
    /// A fresh id derived from the old one, the signing time and the body.
    New,
    /// Exactly this id.
    Given(&'a str),
}

/// Signature headers to set, or why they cannot be made.
pub type Signed = Result<Vec<Header>, VerifyError>;

/// One webhook signature scheme: how a provider signs, and how to check it.
///
/// Implementations are pure: no clock, no I/O; every comparison of secret
/// material is constant-time. Where reference libraries disagree on order,
/// the signature is checked before the timestamp, so
/// [`VerifyError::TooOld`] means "authentic, but stale".
pub trait Scheme: Sync {
    /// Checks the signature on `msg` with `secret`, at `msg.now`.
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError>;

    /// The signature headers for `msg` at `msg.now`, to merge into
    /// `msg.headers` with [`super::apply`]. Schemes keep the naming already
    /// present in `msg.headers` (GitHub's two headers, `svix-` or `webhook-`).
    fn sign(&self, secret: &str, msg: &Message<'_>, id: MessageId<'_>) -> Signed;
}
