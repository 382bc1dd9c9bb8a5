//! Webhook signature schemes as pure functions: verify, sign and re-sign.
//!
//! One module per scheme ([`github`], [`stripe`], [`slack`], [`shopify`],
//! [`standard_webhooks`], [`twilio`]), each implementing [`Scheme`]; this
//! module dispatches on [`Provider`]. Nothing here reads the clock or does
//! I/O: callers pass `now` in Unix seconds. Bodies are raw bytes end to end,
//! and every comparison is constant-time (helpers in `common`).
//!
//! Where the reference libraries disagree on order, the signature is checked
//! before the timestamp, so [`VerifyError::TooOld`] / [`VerifyError::TooNew`]
//! mean "authentic, but outside the tolerance window" (re-sign to replay).

use crate::exchange::{Header, SignatureVerdict};

mod common;
mod error;
mod provider;
mod scheme;

pub mod github;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;

pub use common::{apply, find_header};
pub use error::VerifyError;
pub use provider::{Provider, SecretSpec};
pub use scheme::{Message, MessageId, Scheme, Signed};

/// The scheme that checks and makes `provider`'s signatures.
pub fn scheme(provider: Provider) -> &'static dyn Scheme {
    match provider {
        Provider::GitHub => &github::GitHub,
        Provider::Stripe => &stripe::Stripe,
        Provider::Slack => &slack::Slack,
        Provider::Shopify => &shopify::Shopify,
        Provider::StandardWebhooks => &standard_webhooks::StandardWebhooks,
        Provider::Twilio => &twilio::Twilio,
    }
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
    let msg = Message {
        headers,
        body,
        public_url,
        now,
    };
    scheme(provider).verify(secret, &msg)
}

/// Which provider's signature headers the request carries, if any.
pub fn detect(headers: &[Header]) -> Option<Provider> {
    Provider::ALL.into_iter().find(|p| p.is_present(headers))
}

/// The verdict for a request given the configured secrets, or `None` when
/// no secret is configured.
///
/// Specs whose provider is [`detect`]ed are tried (valid if any verifies, which
/// allows secret rotation); with no detected match, a single configured spec is
/// used anyway (so a missing signature is reported), and several give an
/// invalid verdict naming them all (`missing signature header`). The reason
/// is the error's `Display`.
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
            [] => return None,
            [only] => candidates.push(only),
            _ => {
                let mut names: Vec<&str> = specs.iter().map(|s| s.provider.name()).collect();
                names.dedup();
                return Some(SignatureVerdict {
                    provider: names.join("/"),
                    valid: false,
                    reason: Some(format!(
                        "missing signature header (expected one of {})",
                        names.join(", ")
                    )),
                });
            }
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
    let msg = Message {
        headers: &[],
        body,
        public_url,
        now,
    };
    let id = msg_id.map_or(MessageId::New, MessageId::Given);
    scheme(provider).sign(secret, &msg, id)
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
    let msg = Message {
        headers,
        body,
        public_url,
        now,
    };
    let id = if new_id {
        MessageId::New
    } else {
        MessageId::Keep
    };
    let replacements = scheme(provider).sign(secret, &msg, id)?;
    Ok(apply(headers, replacements))
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

        // Several specs, none detected: missing, naming them.
        let v = verdict(&specs, &[], body, None, 0).unwrap();
        assert!(!v.valid);
        assert!(
            v.reason
                .as_deref()
                .unwrap()
                .starts_with("missing signature header"),
            "{v:?}"
        );
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
}
