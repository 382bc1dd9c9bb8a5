//! Standard Webhooks (Svix and others): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> [v1,<base64> …]` (or the same with `svix-`),
//! each signature being HMAC-SHA256 over `"<id>.<timestamp>.<body>"`.
//!
//! The key is the secret with its `whsec_` prefix stripped, base64-decoded.
//! Any matching `v1` entry passes; other versions and junk entries are
//! ignored. Timestamps must be integers within ±300 s.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

use sha2::{Digest, Sha256};

use super::common::{
    any_header, check_timestamp, ct_eq, find_header, hmac_sha256, malformed, required_header,
};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The message id header.
pub const HEADER_ID: &str = "webhook-id";
/// The timestamp header.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The signature header.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Svix's name for the message id header.
pub const SVIX_HEADER_ID: &str = "svix-id";
/// Svix's name for the timestamp header.
pub const SVIX_HEADER_TIMESTAMP: &str = "svix-timestamp";
/// Svix's name for the signature header.
pub const SVIX_HEADER_SIGNATURE: &str = "svix-signature";
/// Tolerance in both directions, in seconds.
pub const TOLERANCE_SECS: u64 = 300;
/// The prefix Standard Webhooks secrets carry.
const SECRET_PREFIX: &str = "whsec_";

/// Which header naming a message uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Webhook,
    /// `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
}

impl Prefix {
    /// The (id, timestamp, signature) header names.
    pub fn names(self) -> [&'static str; 3] {
        match self {
            Prefix::Webhook => [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE],
            Prefix::Svix => [SVIX_HEADER_ID, SVIX_HEADER_TIMESTAMP, SVIX_HEADER_SIGNATURE],
        }
    }

    /// Whether any of this naming's headers is present.
    pub fn is_present(self, headers: &[Header]) -> bool {
        any_header(headers, &self.names())
    }
}

/// The HMAC key: the secret without `whsec_`, base64-decoded; must be non-empty.
fn decode_secret(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret).trim();
    if b64.is_empty() {
        return Err(VerifyError::InvalidSecret(
            "empty Standard Webhooks secret (expected whsec_<base64>)".into(),
        ));
    }
    let key = STANDARD_PAD_INDIFFERENT.decode(b64).map_err(|e| {
        VerifyError::InvalidSecret(format!(
            "Standard Webhooks secrets are whsec_ followed by base64 ({e})"
        ))
    })?;
    if key.is_empty() {
        return Err(VerifyError::InvalidSecret(
            "Standard Webhooks secret decodes to an empty key".into(),
        ));
    }
    Ok(key)
}

/// The message id as sent (`webhook-id`, else `svix-id`), if any.
pub fn message_id(headers: &[Header]) -> Option<&str> {
    [HEADER_ID, SVIX_HEADER_ID]
        .into_iter()
        .find_map(|n| find_header(headers, n))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// HMAC-SHA256 over `"<id>.<ts>.<body>"`.
fn content_mac(key: &[u8], msg_id: &str, ts: &str, body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body])
}

/// The Standard Webhooks scheme.
pub struct StandardWebhooks;

impl Scheme for StandardWebhooks {
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        let key = decode_secret(secret)?;
        let prefix = if find_header(msg.headers, HEADER_SIGNATURE).is_some() {
            Prefix::Webhook
        } else if find_header(msg.headers, SVIX_HEADER_SIGNATURE).is_some() {
            Prefix::Svix
        } else if Prefix::Svix.is_present(msg.headers) && !Prefix::Webhook.is_present(msg.headers) {
            return Err(VerifyError::MissingHeader(SVIX_HEADER_SIGNATURE));
        } else {
            return Err(VerifyError::MissingHeader(HEADER_SIGNATURE));
        };
        let [id_name, ts_name, sig_name] = prefix.names();
        let id = required_header(msg.headers, id_name)?;
        let ts_raw = required_header(msg.headers, ts_name)?;
        let ts = ts_raw
            .parse::<i64>()
            .map_err(|_| malformed(ts_name, format!("`{ts_raw}` is not integer Unix seconds")))?;
        let sigs = required_header(msg.headers, sig_name)?;

        let expected = content_mac(&key, id, &ts.to_string(), msg.body)?;
        let mut saw_v1 = false;
        let mut matched = false;
        for entry in sigs.split(' ').filter(|e| !e.is_empty()) {
            let Some(("v1", sig)) = entry.split_once(',') else {
                continue;
            };
            saw_v1 = true;
            if let Ok(given) = STANDARD.decode(sig) {
                matched |= ct_eq(&given, &expected);
            }
        }
        if !saw_v1 {
            return Err(VerifyError::NoSignature {
                header: sig_name,
                version: "v1",
            });
        }
        if !matched {
            return Err(VerifyError::Mismatch);
        }
        check_timestamp(ts, msg.now, TOLERANCE_SECS, true)
    }

    /// Signs in every naming present (`webhook-` when none is), keeping or
    /// renewing the message id as `id` says.
    fn sign(&self, secret: &str, msg: &Message<'_>, id: MessageId<'_>) -> Signed {
        let mut prefixes: Vec<_> = [Prefix::Webhook, Prefix::Svix]
            .into_iter()
            .filter(|p| p.is_present(msg.headers))
            .collect();
        if prefixes.is_empty() {
            prefixes.push(Prefix::Webhook);
        }
        let old_id = message_id(msg.headers);
        let id = match (id, old_id) {
            (MessageId::Given(id), _) | (MessageId::Keep, Some(id)) => id.to_owned(),
            (MessageId::New | MessageId::Keep, _) => derived_msg_id(old_id, msg.now, msg.body),
        };
        let mut out = Vec::new();
        for prefix in prefixes {
            out.extend(sign(secret, &id, msg.now, msg.body, prefix)?);
        }
        Ok(out)
    }
}

/// A deterministic message id for a re-signed or new message.
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

/// The id, timestamp and signature headers (in `prefix` naming) for a message.
fn sign(
    secret: &str,
    msg_id: &str,
    now: u64,
    body: &[u8],
    prefix: Prefix,
) -> Result<Vec<Header>, VerifyError> {
    let key = decode_secret(secret)?;
    let ts = now.to_string();
    let mac = content_mac(&key, msg_id, &ts, body)?;
    let [id_name, ts_name, sig_name] = prefix.names();
    Ok(vec![
        Header::new(id_name, msg_id),
        Header::new(ts_name, ts),
        Header::new(sig_name, format!("v1,{}", STANDARD.encode(mac))),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::body_and_tampered;
    use proptest::prelude::*;

    fn verify(secret: &str, headers: &[Header], body: &[u8], now: u64) -> Result<(), VerifyError> {
        crate::verify::common::testing::check(&StandardWebhooks, secret, headers, body, now)
    }

    struct Vector {
        secret: &'static str,
        id: &'static str,
        ts: u64,
        body: &'static [u8],
        sig: &'static str,
    }

    const VECTORS: [Vector; 2] = [
        // Row 1: standard-webhooks rust `test_sign` (same in svix).
        Vector {
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            ts: 1_649_367_553,
            body: br#"{"email":"test@example.com","username":"test_user"}"#,
            sig: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        },
        // Row 2: standard-webhooks go `webhook_test.go`.
        Vector {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            ts: 1_614_265_330,
            body: br#"{"test": 2432232314}"#,
            sig: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
    ];

    fn headers(prefix: Prefix, id: &str, ts: &str, sig: &str) -> Vec<Header> {
        let [a, b, c] = prefix.names();
        vec![Header::new(a, id), Header::new(b, ts), Header::new(c, sig)]
    }

    fn v1_headers(sig: &str) -> Vec<Header> {
        let v = &VECTORS[0];
        headers(Prefix::Webhook, v.id, &v.ts.to_string(), sig)
    }

    fn check(sig_header: &str, now_offset: i64) -> Result<(), VerifyError> {
        let v = &VECTORS[0];
        verify(
            v.secret,
            &v1_headers(sig_header),
            v.body,
            v.ts.checked_add_signed(now_offset).unwrap(),
        )
    }

    #[test]
    fn rows_1_and_2_published_vectors() {
        assert_eq!(decode_secret(VECTORS[0].secret).unwrap().len(), 24);
        for v in &VECTORS {
            for prefix in [Prefix::Webhook, Prefix::Svix] {
                let h = headers(prefix, v.id, &v.ts.to_string(), v.sig);
                assert_eq!(verify(v.secret, &h, v.body, v.ts), Ok(()));
            }
            let signed = sign(v.secret, v.id, v.ts, v.body, Prefix::Webhook).unwrap();
            assert_eq!(signed[2].value, v.sig.as_bytes());
        }
    }

    #[test]
    fn signature_lists() {
        let good = VECTORS[0].sig;
        let sig_b64 = &good[3..];
        // One valid among v1/v2 junk passes.
        assert_eq!(check(&format!("v1,Zm9v v2,{sig_b64} {good}"), 0), Ok(()));
        assert_eq!(check(&format!("v1a,junk {good} garbage"), 0), Ok(()));
        // `v1,` alone fails; a partial signature fails.
        assert_eq!(check("v1,", 0), Err(VerifyError::Mismatch));
        assert_eq!(check(&good[..20], 0), Err(VerifyError::Mismatch));
        assert_eq!(
            check(&format!("v1,{}", &sig_b64[..sig_b64.len() - 4]), 0),
            Err(VerifyError::Mismatch)
        );
        // Only other versions: no v1 signature.
        assert_eq!(
            check(&format!("v2,{sig_b64}"), 0),
            Err(VerifyError::NoSignature {
                header: HEADER_SIGNATURE,
                version: "v1"
            })
        );
        // Wrong body.
        let v = &VECTORS[0];
        assert_eq!(
            verify(v.secret, &v1_headers(good), b"{}", v.ts),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn tolerance_both_directions() {
        let good = VECTORS[0].sig;
        assert_eq!(check(good, 300), Ok(()));
        assert_eq!(check(good, -300), Ok(()));
        assert_eq!(
            check(good, 301),
            Err(VerifyError::TooOld {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check(good, -301),
            Err(VerifyError::TooNew {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn invalid_secrets() {
        let v = &VECTORS[0];
        for secret in ["", "whsec_", "whsec_!!!not-base64", "whsec_ "] {
            assert!(
                matches!(
                    verify(secret, &v1_headers(v.sig), v.body, v.ts),
                    Err(VerifyError::InvalidSecret(_))
                ),
                "{secret:?}"
            );
            assert!(matches!(
                sign(secret, "msg", 1, b"", Prefix::Webhook),
                Err(VerifyError::InvalidSecret(_))
            ));
        }
        // Without the prefix, the base64 key is used as is.
        assert_eq!(
            verify(&v.secret[6..], &v1_headers(v.sig), v.body, v.ts),
            Ok(())
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = &VECTORS[0];
        let ts = v.ts.to_string();
        let full = headers(Prefix::Webhook, v.id, &ts, v.sig);
        for (skip, want) in [
            (0, VerifyError::MissingHeader(HEADER_ID)),
            (1, VerifyError::MissingHeader(HEADER_TIMESTAMP)),
            (2, VerifyError::MissingHeader(HEADER_SIGNATURE)),
        ] {
            let mut h = full.clone();
            h.remove(skip);
            assert_eq!(verify(v.secret, &h, v.body, v.ts), Err(want));
        }
        let svix = headers(Prefix::Svix, v.id, &ts, v.sig);
        assert_eq!(
            verify(v.secret, &svix[..2], v.body, v.ts),
            Err(VerifyError::MissingHeader(SVIX_HEADER_SIGNATURE))
        );
        assert_eq!(
            verify(v.secret, &svix[1..], v.body, v.ts),
            Err(VerifyError::MissingHeader(SVIX_HEADER_ID))
        );
        for bad_ts in ["1649367553.0", "soon", "-"] {
            assert_eq!(
                verify(
                    v.secret,
                    &headers(Prefix::Webhook, v.id, bad_ts, v.sig),
                    v.body,
                    v.ts
                ),
                Err(malformed(
                    HEADER_TIMESTAMP,
                    format!("`{bad_ts}` is not integer Unix seconds")
                ))
            );
        }
        assert_eq!(
            verify(
                v.secret,
                &headers(Prefix::Webhook, "", &ts, v.sig),
                v.body,
                v.ts
            ),
            Err(malformed(HEADER_ID, "empty value"))
        );
        assert_eq!(
            verify(
                v.secret,
                &headers(Prefix::Webhook, v.id, &ts, "  "),
                v.body,
                v.ts
            ),
            Err(malformed(HEADER_SIGNATURE, "empty value"))
        );
    }

    #[test]
    fn id_is_signed() {
        let v = &VECTORS[0];
        let h = headers(Prefix::Webhook, "msg_other", &v.ts.to_string(), v.sig);
        assert_eq!(
            verify(v.secret, &h, v.body, v.ts),
            Err(VerifyError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn round_trip_and_tamper(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            id in "msg_[A-Za-z0-9]{1,30}",
            (body, tampered) in body_and_tampered(),
            now in 301u64..4_000_000_000,
            skew in -300i64..=300,
        ) {
            let secret = format!("whsec_{}", STANDARD.encode(&key));
            let h = sign(&secret, &id, now, &body, Prefix::Webhook).unwrap();
            let at = now.checked_add_signed(skew).unwrap();
            prop_assert_eq!(verify(&secret, &h, &body, at), Ok(()));
            prop_assert_eq!(verify(&secret, &h, &tampered, now), Err(VerifyError::Mismatch));
        }
    }
}
