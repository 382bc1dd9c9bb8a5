//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, where each `v1` is
//! hex HMAC-SHA256 over `"<t>.<body>"` keyed with the whole `whsec_…` string's
//! bytes (not decoded).
//!
//! As in stripe-go: items without `=` or a bad `t` make the header invalid;
//! undecodable `v1` values and other schemes (`v0`) are ignored; any matching
//! `v1` passes (secret rotation sends several); only "too old" is checked.

use super::common::{
    any_ct_eq, check_timestamp, hmac_sha256, malformed, non_empty, required_header,
};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The signature header.
pub const HEADER: &str = "Stripe-Signature";
/// Default tolerance, in seconds (Stripe libraries' default).
pub const TOLERANCE_SECS: u64 = 300;

/// Stripe's scheme.
pub struct Stripe;

/// A parsed `Stripe-Signature` header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SignatureHeader<'a> {
    /// The `t=` value as sent (it is signed verbatim).
    pub timestamp_raw: &'a str,
    /// The `t=` value as a number.
    pub timestamp: i64,
    /// Every decodable `v1` signature.
    pub v1: Vec<Vec<u8>>,
}

/// Parses the header value; [`VerifyError::NoSignature`] when no `v1` decodes.
fn parse(value: &str) -> Result<SignatureHeader<'_>, VerifyError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let mut parts = item.split('=');
        let (Some(key), Some(val), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(HEADER, format!("item `{item}` is not key=value")));
        };
        let val = val.trim();
        match key.trim() {
            "t" => {
                let parsed = val
                    .parse::<i64>()
                    .map_err(|_| malformed(HEADER, format!("t=`{val}` is not a Unix timestamp")))?;
                timestamp = Some((val, parsed));
            }
            "v1" => {
                if let Ok(sig) = hex::decode(val) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let (timestamp_raw, timestamp) =
        timestamp.ok_or_else(|| malformed(HEADER, "no t= timestamp"))?;
    if v1.is_empty() {
        return Err(VerifyError::NoSignature {
            header: HEADER,
            version: "v1",
        });
    }
    Ok(SignatureHeader {
        timestamp_raw,
        timestamp,
        v1,
    })
}

/// The `t=…,v1=…` value for `body` signed at `timestamp`.
fn signature_value(secret: &str, body: &[u8], timestamp: u64) -> Result<String, VerifyError> {
    let t = timestamp.to_string();
    let mac = hmac_sha256(non_empty(secret)?, &[t.as_bytes(), b".", body])?;
    Ok(format!("t={t},v1={}", hex::encode(mac)))
}

impl Scheme for Stripe {
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        let key = non_empty(secret)?;
        let parsed = parse(required_header(msg.headers, HEADER)?)?;
        let expected = hmac_sha256(key, &[parsed.timestamp_raw.as_bytes(), b".", msg.body])?;
        if !any_ct_eq(parsed.v1.iter().map(Vec::as_slice), &expected) {
            return Err(VerifyError::Mismatch);
        }
        check_timestamp(parsed.timestamp, msg.now, TOLERANCE_SECS, false)
    }

    fn sign(&self, secret: &str, msg: &Message<'_>, _id: MessageId<'_>) -> Signed {
        let value = signature_value(secret, msg.body, msg.now)?;
        Ok(vec![Header::new(HEADER, value)])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::{check, signed};
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const T: u64 = 1_700_000_000;
    const SIG: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    fn verify(secret: &str, headers: &[Header], body: &[u8], now: u64) -> Result<(), VerifyError> {
        check(&Stripe, secret, headers, body, now)
    }

    fn hdr(value: &str) -> Vec<Header> {
        vec![Header::new("stripe-signature", value)]
    }

    fn valid() -> String {
        format!("t={T},v1={SIG}")
    }

    #[test]
    fn row9_computed_vector() {
        assert_eq!(signature_value(SECRET, BODY, T).unwrap(), valid());
        assert_eq!(verify(SECRET, &hdr(&valid()), BODY, T), Ok(()));
    }

    #[test]
    fn key_is_the_whole_whsec_string() {
        assert_eq!(
            verify("test_secret", &hdr(&valid()), BODY, T),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn extra_bad_v1_is_ignored() {
        let v = format!("{},v1=bad_signature", valid());
        assert_eq!(verify(SECRET, &hdr(&v), BODY, T), Ok(()));
        let v = format!("t={T},v1=00ff,v1={SIG},v0=abc,foo=bar");
        assert_eq!(verify(SECRET, &hdr(&v), BODY, T), Ok(()));
    }

    #[test]
    fn v0_only_has_no_valid_signature() {
        let v = format!("t={T},v0={SIG}");
        assert_eq!(
            verify(SECRET, &hdr(&v), BODY, T),
            Err(VerifyError::NoSignature {
                header: HEADER,
                version: "v1"
            })
        );
        // Only undecodable v1 values: same.
        assert!(matches!(
            verify(SECRET, &hdr(&format!("t={T},v1=bad_signature")), BODY, T),
            Err(VerifyError::NoSignature { .. })
        ));
    }

    #[test]
    fn old_and_new_key_both_verify() {
        let old = signature_value("whsec_old", BODY, T).unwrap();
        let new = signature_value("whsec_new", BODY, T).unwrap();
        let v = format!("{old},{}", new.split_once(',').unwrap().1);
        assert_eq!(verify("whsec_old", &hdr(&v), BODY, T), Ok(()));
        assert_eq!(verify("whsec_new", &hdr(&v), BODY, T), Ok(()));
        assert_eq!(
            verify("whsec_other", &hdr(&v), BODY, T),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn tolerance_is_too_old_only() {
        let h = hdr(&valid());
        assert_eq!(verify(SECRET, &h, BODY, T + 300), Ok(()));
        assert_eq!(
            verify(SECRET, &h, BODY, T + 301),
            Err(VerifyError::TooOld {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        // Future timestamps are not rejected (Stripe libraries only check age).
        assert_eq!(verify(SECRET, &h, BODY, T - 10_000), Ok(()));
    }

    #[test]
    fn mismatch_reported_before_age() {
        assert_eq!(
            verify(SECRET, &hdr(&valid()), b"{}", T + 10_000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers() {
        let cases: &[(&str, VerifyError)] = &[
            ("v1,t=1", malformed(HEADER, "item `v1` is not key=value")),
            ("t=", malformed(HEADER, "t=`` is not a Unix timestamp")),
            (
                "t=abc,v1=00",
                malformed(HEADER, "t=`abc` is not a Unix timestamp"),
            ),
            (&format!("v1={SIG}"), malformed(HEADER, "no t= timestamp")),
            (
                "t=1=2,v1=00",
                malformed(HEADER, "item `t=1=2` is not key=value"),
            ),
            ("", malformed(HEADER, "empty value")),
        ];
        for (value, want) in cases {
            assert_eq!(
                &verify(SECRET, &hdr(value), BODY, T).unwrap_err(),
                want,
                "{value}"
            );
        }
        assert_eq!(
            verify(SECRET, &[], BODY, T),
            Err(VerifyError::MissingHeader(HEADER))
        );
    }

    proptest! {
        #[test]
        fn verifies_until_the_tolerance_age(age in 0u64..=300, now in 0u64..4_000_000_000) {
            let headers = signed(&Stripe, SECRET, BODY, now).unwrap();
            prop_assert_eq!(verify(SECRET, &headers, BODY, now + age), Ok(()));
            let stale = verify(SECRET, &headers, BODY, now + 301 + age);
            prop_assert!(matches!(stale, Err(VerifyError::TooOld { .. })), "{:?}", stale);
        }
    }
}
