//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`.
//!
//! No timestamp: a captured request verifies forever.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

use super::{VerifyError, hmac_sha256, malformed, non_empty, required_header};
use crate::exchange::Header;

/// The signature header.
pub const HEADER: &str = "X-Shopify-Hmac-Sha256";

/// Verifies the body's signature.
pub fn verify(secret: &str, headers: &[Header], body: &[u8]) -> Result<(), VerifyError> {
    let key = non_empty(secret)?;
    let value = required_header(headers, HEADER)?;
    let given = STANDARD_PAD_INDIFFERENT
        .decode(value)
        .map_err(|e| malformed(HEADER, format!("bad base64: {e}")))?;
    let expected = hmac_sha256(key, &[body])?;
    if given.len() != expected.len() {
        return Err(malformed(HEADER, "expected a 32-byte base64 HMAC"));
    }
    if super::ct_eq(&given, &expected) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The signature header for `body`.
pub fn sign(secret: &str, body: &[u8]) -> Result<Vec<Header>, VerifyError> {
    let mac = hmac_sha256(non_empty(secret)?, &[body])?;
    Ok(vec![Header::new(HEADER, STANDARD.encode(mac))])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const SIG: &str = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=";

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

    proptest! {
        #[test]
        fn round_trip_and_tamper(
            secret in "[ -~]{1,64}",
            body in proptest::collection::vec(any::<u8>(), 1..300),
            idx in any::<prop::sample::Index>(),
            delta in 1u8..=255,
        ) {
            let headers = sign(&secret, &body).unwrap();
            prop_assert_eq!(verify(&secret, &headers, &body), Ok(()));
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] = tampered[i].wrapping_add(delta);
            prop_assert_eq!(verify(&secret, &headers, &tampered), Err(VerifyError::Mismatch));
        }
    }
}
