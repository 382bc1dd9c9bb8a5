//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>` with
//! `ts` from `X-Slack-Request-Timestamp` (signed verbatim), accepted within ±300 s.

use super::common::{
    check_hex_mac, check_timestamp, hmac_sha256, malformed, non_empty, required_header,
};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The signature header.
pub const HEADER_SIGNATURE: &str = "X-Slack-Signature";
/// The timestamp header.
pub const HEADER_TIMESTAMP: &str = "X-Slack-Request-Timestamp";
/// Tolerance in both directions, in seconds (Slack SDKs use five minutes).
pub const TOLERANCE_SECS: u64 = 300;

/// Slack's scheme.
pub struct Slack;

impl Scheme for Slack {
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        let key = non_empty(secret)?;
        let sig = required_header(msg.headers, HEADER_SIGNATURE)?;
        let ts_raw = required_header(msg.headers, HEADER_TIMESTAMP)?;
        let ts = ts_raw.parse::<i64>().map_err(|_| {
            malformed(
                HEADER_TIMESTAMP,
                format!("`{ts_raw}` is not a Unix timestamp"),
            )
        })?;
        let hex_sig = sig
            .strip_prefix("v0=")
            .ok_or_else(|| malformed(HEADER_SIGNATURE, "expected `v0=<hex>`"))?;
        let expected = hmac_sha256(key, &[b"v0:", ts_raw.as_bytes(), b":", msg.body])?;
        check_hex_mac(HEADER_SIGNATURE, hex_sig, &expected)?;
        check_timestamp(ts, msg.now, TOLERANCE_SECS, true)
    }

    fn sign(&self, secret: &str, msg: &Message<'_>, _id: MessageId<'_>) -> Signed {
        let ts = msg.now.to_string();
        let mac = hmac_sha256(non_empty(secret)?, &[b"v0:", ts.as_bytes(), b":", msg.body])?;
        Ok(vec![
            Header::new(HEADER_TIMESTAMP, ts),
            Header::new(HEADER_SIGNATURE, format!("v0={}", hex::encode(mac))),
        ])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::{check, signed};
    use proptest::prelude::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: u64 = 1_531_420_618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verify(secret: &str, headers: &[Header], body: &[u8], now: u64) -> Result<(), VerifyError> {
        check(&Slack, secret, headers, body, now)
    }

    fn headers(ts: &str, sig: &str) -> Vec<Header> {
        vec![
            Header::new("x-slack-request-timestamp", ts),
            Header::new("x-slack-signature", sig),
        ]
    }

    #[test]
    fn row4_published_vector() {
        assert_eq!(
            verify(SECRET, &headers("1531420618", SIG), BODY, TS),
            Ok(())
        );
        let signed = signed(&Slack, SECRET, BODY, TS).unwrap();
        assert_eq!(signed[0].value, b"1531420618");
        assert_eq!(signed[1].value, SIG.as_bytes());
    }

    #[test]
    fn tolerance_both_directions() {
        let h = headers("1531420618", SIG);
        assert_eq!(verify(SECRET, &h, BODY, TS + 300), Ok(()));
        assert_eq!(verify(SECRET, &h, BODY, TS - 300), Ok(()));
        assert_eq!(
            verify(SECRET, &h, BODY, TS + 301),
            Err(VerifyError::TooOld {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            verify(SECRET, &h, BODY, TS - 301),
            Err(VerifyError::TooNew {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn timestamp_is_signed() {
        // Same signature, different timestamp header: mismatch.
        assert_eq!(
            verify(SECRET, &headers("1531420619", SIG), BODY, TS),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_and_missing() {
        let cases: &[(&str, &str, VerifyError)] = &[
            (
                "1531420618",
                "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                malformed(HEADER_SIGNATURE, "expected `v0=<hex>`"),
            ),
            (
                "1531420618",
                "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                malformed(HEADER_SIGNATURE, "expected `v0=<hex>`"),
            ),
            (
                "1531420618",
                "v0=xyz",
                malformed(HEADER_SIGNATURE, "bad hex: Odd number of digits"),
            ),
            (
                "1531420618",
                "v0=a211",
                malformed(HEADER_SIGNATURE, "expected 64 hex digits"),
            ),
            (
                "soon",
                SIG,
                malformed(HEADER_TIMESTAMP, "`soon` is not a Unix timestamp"),
            ),
            (
                "1531420618.5",
                SIG,
                malformed(HEADER_TIMESTAMP, "`1531420618.5` is not a Unix timestamp"),
            ),
            ("", SIG, malformed(HEADER_TIMESTAMP, "empty value")),
        ];
        for (ts, sig, want) in cases {
            assert_eq!(
                &verify(SECRET, &headers(ts, sig), BODY, TS).unwrap_err(),
                want
            );
        }
        assert_eq!(
            verify(SECRET, &headers("1", SIG)[1..], BODY, TS),
            Err(VerifyError::MissingHeader(HEADER_TIMESTAMP))
        );
        assert_eq!(
            verify(SECRET, &headers("1", SIG)[..1], BODY, TS),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    proptest! {
        #[test]
        fn verifies_anywhere_in_the_window(now in 301u64..4_000_000_000, skew in -300i64..=300, secret in "[0-9a-f]{32}") {
            let headers = signed(&Slack, &secret, BODY, now).unwrap();
            let at = now.checked_add_signed(skew).unwrap();
            prop_assert_eq!(verify(&secret, &headers, BODY, at), Ok(()));
        }
    }
}
