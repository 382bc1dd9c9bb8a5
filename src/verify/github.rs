//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, and the
//! legacy `X-Hub-Signature: sha1=<hex HMAC-SHA1>` used only when the former is absent.
//!
//! No timestamp: a captured request verifies forever.

use super::common::{
    any_header, check_hex_mac, find_header, hmac_sha1, hmac_sha256, malformed, non_empty,
    required_header,
};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The SHA-256 signature header.
pub const HEADER_SHA256: &str = "X-Hub-Signature-256";
/// The legacy SHA-1 signature header.
pub const HEADER_SHA1: &str = "X-Hub-Signature";

/// GitHub's scheme.
pub struct GitHub;

impl Scheme for GitHub {
    /// Checks the SHA-256 signature, or the SHA-1 one when only that is present.
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        let key = non_empty(secret)?;
        let body = msg.body;
        let (header, prefix, expected) = if find_header(msg.headers, HEADER_SHA256).is_some() {
            (HEADER_SHA256, "sha256=", hmac_sha256(key, &[body])?)
        } else if find_header(msg.headers, HEADER_SHA1).is_some() {
            (HEADER_SHA1, "sha1=", hmac_sha1(key, &[body])?)
        } else {
            return Err(VerifyError::MissingHeader(HEADER_SHA256));
        };
        let hex_sig = required_header(msg.headers, header)?
            .strip_prefix(prefix)
            .ok_or_else(|| malformed(header, format!("expected `{prefix}<hex>`")))?;
        check_hex_mac(header, hex_sig, &expected)
    }

    /// Both headers, as GitHub sends them; when re-signing, only those present
    /// (both when neither is).
    fn sign(&self, secret: &str, msg: &Message<'_>, _id: MessageId<'_>) -> Signed {
        let key = non_empty(secret)?;
        let mut signed = vec![
            Header::new(
                HEADER_SHA256,
                format!("sha256={}", hex::encode(hmac_sha256(key, &[msg.body])?)),
            ),
            Header::new(
                HEADER_SHA1,
                format!("sha1={}", hex::encode(hmac_sha1(key, &[msg.body])?)),
            ),
        ];
        if any_header(msg.headers, &[HEADER_SHA256, HEADER_SHA1]) {
            signed.retain(|h| find_header(msg.headers, &h.name).is_some());
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::{body_and_tampered, check, signed};
    use proptest::prelude::*;

    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SHA256: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const SHA1: &str = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59";

    fn verify(secret: &str, headers: &[Header], body: &[u8]) -> Result<(), VerifyError> {
        check(&GitHub, secret, headers, body, 0)
    }

    fn sign(secret: &str, body: &[u8]) -> Signed {
        signed(&GitHub, secret, body, 0)
    }

    fn one(name: &str, value: &str) -> Vec<Header> {
        vec![Header::new(name, value)]
    }

    #[test]
    fn row3_published_vector() {
        assert_eq!(verify(SECRET, &one(HEADER_SHA256, SHA256), BODY), Ok(()));
        assert_eq!(
            verify(SECRET, &one("x-hub-signature-256", SHA256), BODY),
            Ok(())
        );
        let signed = sign(SECRET, BODY).unwrap();
        assert_eq!(signed[0].value, SHA256.as_bytes());
        assert_eq!(signed[1].value, SHA1.as_bytes());
    }

    #[test]
    fn row3_legacy_sha1() {
        assert_eq!(verify(SECRET, &one(HEADER_SHA1, SHA1), BODY), Ok(()));
        assert_eq!(
            verify("other", &one(HEADER_SHA1, SHA1), BODY),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn sha256_wins_over_sha1() {
        let headers = vec![
            Header::new(HEADER_SHA1, SHA1),
            Header::new(HEADER_SHA256, SHA256.replace("757", "000")),
        ];
        assert_eq!(verify(SECRET, &headers, BODY), Err(VerifyError::Mismatch));
    }

    #[test]
    fn uppercase_hex_accepted() {
        let upper = format!("sha256={}", SHA256[7..].to_uppercase());
        assert_eq!(verify(SECRET, &one(HEADER_SHA256, &upper), BODY), Ok(()));
    }

    #[test]
    fn negatives() {
        let cases: &[(&str, &str, VerifyError)] = &[
            (
                HEADER_SHA256,
                "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                malformed(HEADER_SHA256, "expected `sha256=<hex>`"),
            ),
            (
                HEADER_SHA256,
                "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
                malformed(HEADER_SHA256, "expected `sha256=<hex>`"),
            ),
            (
                HEADER_SHA256,
                "sha256=zz",
                malformed(
                    HEADER_SHA256,
                    "bad hex: Invalid character 'z' at position 0",
                ),
            ),
            (
                HEADER_SHA256,
                "sha256=7571",
                malformed(HEADER_SHA256, "expected 64 hex digits"),
            ),
            (HEADER_SHA256, "", malformed(HEADER_SHA256, "empty value")),
            (
                HEADER_SHA1,
                "sha256=00",
                malformed(HEADER_SHA1, "expected `sha1=<hex>`"),
            ),
        ];
        for (name, value, want) in cases {
            assert_eq!(&verify(SECRET, &one(name, value), BODY).unwrap_err(), want);
        }
        assert_eq!(
            verify(SECRET, &one("x-github-event", "ping"), BODY),
            Err(VerifyError::MissingHeader(HEADER_SHA256))
        );
        assert_eq!(
            verify(SECRET, &one(HEADER_SHA256, SHA256), b"Hello, World?"),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify("", &one(HEADER_SHA256, SHA256), BODY),
            Err(VerifyError::InvalidSecret(_))
        ));
        assert_eq!(
            verify(
                SECRET,
                &[Header::new(HEADER_SHA256, vec![0xff, 0xfe])],
                BODY
            ),
            Err(malformed(HEADER_SHA256, "not valid UTF-8"))
        );
    }

    proptest! {
        #[test]
        fn legacy_header_alone_round_trips((body, tampered) in body_and_tampered(), secret in "[ -~]{1,40}") {
            let legacy = &sign(&secret, &body).unwrap()[1..];
            prop_assert_eq!(verify(&secret, legacy, &body), Ok(()));
            prop_assert_eq!(verify(&secret, legacy, &tampered), Err(VerifyError::Mismatch));
        }
    }
}
