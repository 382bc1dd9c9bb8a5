//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`.
//!
//! No timestamp: a captured request verifies forever.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

use super::common::{ct_eq, hmac_sha256, malformed, non_empty, required_header};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The signature header.
pub const HEADER: &str = "X-Shopify-Hmac-Sha256";

/// Shopify's scheme (padded or unpadded base64 accepted).
pub struct Shopify;

impl Scheme for Shopify {
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        let expected = hmac_sha256(non_empty(secret)?, &[msg.body])?;
        let given = STANDARD_PAD_INDIFFERENT
            .decode(required_header(msg.headers, HEADER)?)
            .map_err(|e| malformed(HEADER, format!("bad base64: {e}")))?;
        if given.len() != expected.len() {
            return Err(malformed(HEADER, "expected a 32-byte base64 HMAC"));
        }
        if ct_eq(&given, &expected) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    fn sign(&self, secret: &str, msg: &Message<'_>, _id: MessageId<'_>) -> Signed {
        let mac = hmac_sha256(non_empty(secret)?, &[msg.body])?;
        Ok(vec![Header::new(HEADER, STANDARD.encode(mac))])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::{check, signed};

    const SIG: &str = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=";

    fn verify(secret: &str, headers: &[Header], body: &[u8]) -> Result<(), VerifyError> {
        check(&Shopify, secret, headers, body, 0)
    }

    fn sign(secret: &str, body: &[u8]) -> Signed {
        signed(&Shopify, secret, body, 0)
    }

    fn hdr(v: &str) -> Vec<Header> {
        vec![Header::new("x-shopify-hmac-sha256", v)]
    }

    #[test]
    fn row10_computed_vector() {
        assert_eq!(
            sign("hush", br#"{"id":1}"#).unwrap()[0].value,
            SIG.as_bytes()
        );
        assert_eq!(verify("hush", &hdr(SIG), br#"{"id":1}"#), Ok(()));
        // Unpadded is accepted too.
        assert_eq!(
            verify("hush", &hdr(SIG.trim_end_matches('=')), br#"{"id":1}"#),
            Ok(())
        );
    }

    #[test]
    fn negatives() {
        assert_eq!(
            verify("hush", &hdr(SIG), br#"{"id":2}"#),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("hash", &hdr(SIG), br#"{"id":1}"#),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify("hush", &hdr("not base64!"), b""),
            Err(VerifyError::MalformedHeader { header: HEADER, .. })
        ));
        assert_eq!(
            verify("hush", &hdr("AAAA"), b""),
            Err(malformed(HEADER, "expected a 32-byte base64 HMAC"))
        );
        assert_eq!(
            verify("hush", &hdr(""), b""),
            Err(malformed(HEADER, "empty value"))
        );
        assert_eq!(
            verify("hush", &[], b""),
            Err(VerifyError::MissingHeader(HEADER))
        );
    }
}
