//! Realistic sample webhook events for `hooktunnel trigger`, built unsigned.
//!
//! [`build`] gives the method, a suggested path, the headers a provider sends
//! (content type, event and delivery headers; for Slack and Standard
//! Webhooks also the timestamp/id headers) and the body. To sign, merge
//! [`crate::verify::sign`]'s headers with [`crate::verify::apply`], or call [`crate::verify::resign`],
//! which keeps the Standard Webhooks id. Twilio needs the full target URL
//! (tunnel URL + path) as `public_url`.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::exchange::Header;
use crate::verify::Provider;

/// A named sample event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The name given to `trigger` (e.g. `github.push`).
    pub name: &'static str,
    /// Whose scheme signs it.
    pub provider: Provider,
    /// One line for `--help` and listings.
    pub description: &'static str,
}

/// Every sample, grouped by provider.
pub const SAMPLES: &[Sample] = &[
    Sample {
        name: "github.ping",
        provider: Provider::GitHub,
        description: "GitHub `ping`, sent when a webhook is created",
    },
    Sample {
        name: "github.push",
        provider: Provider::GitHub,
        description: "GitHub `push` of one commit to main",
    },
    Sample {
        name: "stripe.payment_intent.succeeded",
        provider: Provider::Stripe,
        description: "Stripe `payment_intent.succeeded` for $20.00",
    },
    Sample {
        name: "slack.command",
        provider: Provider::Slack,
        description: "Slack slash command `/deploy staging` (form-urlencoded)",
    },
    Sample {
        name: "shopify.orders.create",
        provider: Provider::Shopify,
        description: "Shopify `orders/create` with one line item",
    },
    Sample {
        name: "standard-webhooks.invoice.paid",
        provider: Provider::StandardWebhooks,
        description: "Standard Webhooks / Svix `invoice.paid`",
    },
    Sample {
        name: "twilio.sms",
        provider: Provider::Twilio,
        description: "Twilio incoming SMS (form-urlencoded)",
    },
];

/// The sample called `name` (case-insensitive), also found by the part after
/// the provider (`push`, `orders.create`, …) when that is unambiguous.
pub fn find(name: &str) -> Option<&'static Sample> {
    let name = name.trim();
    if let Some(s) = SAMPLES.iter().find(|s| s.name.eq_ignore_ascii_case(name)) {
        return Some(s);
    }
    let mut by_suffix = SAMPLES.iter().filter(|s| {
        s.name
            .split_once('.')
            .is_some_and(|(_, event)| event.eq_ignore_ascii_case(name))
    });
    match (by_suffix.next(), by_suffix.next()) {
        (Some(s), None) => Some(s),
        _ => None,
    }
}

/// Builds sample `name` (see [`find`]) as `(method, path, headers, body)`, unsigned.
///
/// `now` (Unix seconds) goes into timestamps; `id` (any unique text, e.g. a
/// ULID) seeds the event, delivery and message ids, so a build is deterministic.
pub fn build(
    name: &str,
    now: u64,
    id: &str,
) -> Option<(&'static str, String, Vec<Header>, Vec<u8>)> {
    let sample = find(name)?;
    let ids = Ids { seed: id };
    let (path, headers, body) = match sample.name {
        "github.ping" => github_ping(now, &ids),
        "github.push" => github_push(now, &ids),
        "stripe.payment_intent.succeeded" => stripe_payment_intent(now, &ids),
        "slack.command" => slack_command(now, &ids),
        "shopify.orders.create" => shopify_order(now, &ids),
        "standard-webhooks.invoice.paid" => standard_invoice(now, &ids),
        "twilio.sms" => twilio_sms(&ids),
        _ => return None,
    };
    Some(("POST", path.to_owned(), headers, body))
}

type Built = (&'static str, Vec<Header>, Vec<u8>);

/// Deterministic provider-shaped identifiers derived from the caller's id.
struct Ids<'a> {
    seed: &'a str,
}

impl Ids<'_> {
    /// `len` lowercase hex digits derived from the seed and `salt`.
    fn hex(&self, salt: &str, len: usize) -> String {
        let mut out = String::new();
        let mut counter = 0u32;
        while out.len() < len {
            let mut h = Sha256::new();
            h.update(salt.as_bytes());
            h.update(b"\0");
            h.update(self.seed.as_bytes());
            h.update(counter.to_be_bytes());
            out.push_str(&hex::encode(h.finalize()));
            counter += 1;
        }
        out.truncate(len);
        out
    }

    /// Alphanumeric id of `len` characters (Stripe / Svix style).
    fn alnum(&self, salt: &str, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let bytes = hex::decode(self.hex(salt, len * 2)).unwrap_or_default();
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect()
    }

    /// A version-4-shaped UUID.
    fn uuid(&self, salt: &str) -> String {
        let h = self.hex(salt, 32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }

    /// A decimal number below `10^digits`, at least `10^(digits-1)`.
    fn number(&self, salt: &str, digits: u32) -> u64 {
        let h = self.hex(salt, 15);
        let raw = u64::from_str_radix(&h, 16).unwrap_or(0);
        let low = 10u64.pow(digits.saturating_sub(1));
        low + raw % (10u64.pow(digits) - low)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (proleptic Gregorian, UTC).
fn iso8601(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn form_encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn json_body(value: &serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn github_repository(now: u64) -> serde_json::Value {
    json!({
        "id": 186_853_002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "private": false,
        "owner": { "login": "octo-org", "id": 6_811_672, "type": "Organization" },
        "html_url": "https://github.com/octo-org/hello-world",
        "url": "https://api.github.com/repos/octo-org/hello-world",
        "default_branch": "main",
        "pushed_at": now,
    })
}

fn github_sender() -> serde_json::Value {
    json!({
        "login": "octocat",
        "id": 583_231,
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "type": "User",
        "html_url": "https://github.com/octocat",
    })
}

fn github_headers(event: &str, ids: &Ids<'_>, hook_id: u64) -> Vec<Header> {
    vec![
        Header::new("Content-Type", "application/json"),
        Header::new("User-Agent", "GitHub-Hookshot/8a4a1b6"),
        Header::new("X-GitHub-Event", event),
        Header::new("X-GitHub-Delivery", ids.uuid("github-delivery")),
        Header::new("X-GitHub-Hook-ID", hook_id.to_string()),
        Header::new("X-GitHub-Hook-Installation-Target-Type", "repository"),
        Header::new("X-GitHub-Hook-Installation-Target-ID", "186853002"),
    ]
}

fn github_ping(now: u64, ids: &Ids<'_>) -> Built {
    let hook_id = ids.number("github-hook", 9);
    let body = json!({
        "zen": "Design for failure.",
        "hook_id": hook_id,
        "hook": {
            "type": "Repository",
            "id": hook_id,
            "name": "web",
            "active": true,
            "events": ["push", "pull_request"],
            "config": {
                "content_type": "json",
                "insecure_ssl": "0",
                "url": "https://example.com/webhooks/github",
            },
            "updated_at": iso8601(now),
            "created_at": iso8601(now),
        },
        "repository": github_repository(now),
        "sender": github_sender(),
    });
    (
        "/webhooks/github",
        github_headers("ping", ids, hook_id),
        json_body(&body),
    )
}

fn github_push(now: u64, ids: &Ids<'_>) -> Built {
    let before = ids.hex("github-before", 40);
    let after = ids.hex("github-after", 40);
    let commit = json!({
        "id": after,
        "tree_id": ids.hex("github-tree", 40),
        "distinct": true,
        "message": "Fix webhook retry backoff",
        "timestamp": iso8601(now),
        "url": format!("https://github.com/octo-org/hello-world/commit/{after}"),
        "author": { "name": "Mona Octocat", "email": "mona@example.com", "username": "octocat" },
        "committer": { "name": "Mona Octocat", "email": "mona@example.com", "username": "octocat" },
        "added": [],
        "removed": [],
        "modified": ["src/retry.rs"],
    });
    let body = json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!(
            "https://github.com/octo-org/hello-world/compare/{}...{}",
            &before[..12],
            &after[..12]
        ),
        "commits": [commit.clone()],
        "head_commit": commit,
        "repository": github_repository(now),
        "pusher": { "name": "octocat", "email": "mona@example.com" },
        "sender": github_sender(),
    });
    let hook_id = ids.number("github-hook", 9);
    (
        "/webhooks/github",
        github_headers("push", ids, hook_id),
        json_body(&body),
    )
}

fn stripe_payment_intent(now: u64, ids: &Ids<'_>) -> Built {
    let pi = format!("pi_{}", ids.alnum("stripe-pi", 24));
    let body = json!({
        "id": format!("evt_{}", ids.alnum("stripe-evt", 24)),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": {
            "object": {
                "id": pi,
                "object": "payment_intent",
                "amount": 2000,
                "amount_capturable": 0,
                "amount_received": 2000,
                "capture_method": "automatic",
                "client_secret": format!("{pi}_secret_{}", ids.alnum("stripe-cs", 25)),
                "confirmation_method": "automatic",
                "created": now,
                "currency": "usd",
                "customer": null,
                "description": "hooktunnel sample payment",
                "latest_charge": format!("ch_{}", ids.alnum("stripe-ch", 24)),
                "livemode": false,
                "metadata": { "order_id": "6735" },
                "payment_method": format!("pm_{}", ids.alnum("stripe-pm", 24)),
                "payment_method_types": ["card"],
                "status": "succeeded",
            }
        },
        "livemode": false,
        "pending_webhooks": 1,
        "request": {
            "id": format!("req_{}", ids.alnum("stripe-req", 14)),
            "idempotency_key": ids.uuid("stripe-idem"),
        },
        "type": "payment_intent.succeeded",
    });
    (
        "/webhooks/stripe",
        vec![
            Header::new("Content-Type", "application/json; charset=utf-8"),
            Header::new(
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            ),
            Header::new("Accept", "*/*; q=0.5, application/xml"),
            Header::new("Cache-Control", "no-cache"),
        ],
        json_body(&body),
    )
}

fn slack_command(now: u64, ids: &Ids<'_>) -> Built {
    let response_url = format!(
        "https://hooks.slack.com/commands/T0001/{}/{}",
        ids.number("slack-resp", 12),
        ids.alnum("slack-resp-token", 24)
    );
    let trigger_id = format!(
        "{}.{}.{}",
        ids.number("slack-trigger-a", 12),
        ids.number("slack-trigger-b", 11),
        ids.hex("slack-trigger-c", 32)
    );
    let body = form_encode(&[
        ("token", "gIkuvaNzQIHg97ATvDxqgjtO"),
        ("team_id", "T0001"),
        ("team_domain", "example"),
        ("enterprise_id", "E0001"),
        ("enterprise_name", "Globular Construct Inc"),
        ("channel_id", "C2147483705"),
        ("channel_name", "deploys"),
        ("user_id", "U2147483697"),
        ("user_name", "Steve"),
        ("command", "/deploy"),
        ("text", "staging"),
        ("api_app_id", "A123456"),
        ("is_enterprise_install", "false"),
        ("response_url", &response_url),
        ("trigger_id", &trigger_id),
    ]);
    (
        "/slack/commands",
        vec![
            Header::new("Content-Type", "application/x-www-form-urlencoded"),
            Header::new("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
            Header::new("Accept", "application/json,*/*"),
            Header::new(crate::verify::slack::HEADER_TIMESTAMP, now.to_string()),
        ],
        body,
    )
}

fn shopify_order(now: u64, ids: &Ids<'_>) -> Built {
    let order_id = ids.number("shopify-order", 13);
    let body = json!({
        "id": order_id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{order_id}"),
        "name": "#1001",
        "order_number": 1001,
        "email": "jon@example.com",
        "created_at": iso8601(now),
        "updated_at": iso8601(now),
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": null,
        "subtotal_price": "199.00",
        "total_tax": "0.00",
        "total_price": "199.00",
        "test": true,
        "line_items": [{
            "id": ids.number("shopify-line", 13),
            "product_id": 632_910_392,
            "variant_id": 808_950_810,
            "title": "IPod Nano - 8GB",
            "quantity": 1,
            "price": "199.00",
            "sku": "IPOD2008PINK",
        }],
        "customer": {
            "id": 115_310_627,
            "email": "jon@example.com",
            "first_name": "Jon",
            "last_name": "Snow",
        },
        "shipping_address": {
            "first_name": "Jon",
            "last_name": "Snow",
            "address1": "123 Shipping Street",
            "city": "Shippington",
            "province": "Kentucky",
            "country": "United States",
            "zip": "40003",
        },
    });
    (
        "/webhooks/shopify",
        vec![
            Header::new("Content-Type", "application/json"),
            Header::new("User-Agent", "Shopify-Captain-Hook"),
            Header::new("X-Shopify-Topic", "orders/create"),
            Header::new("X-Shopify-Shop-Domain", "example.myshopify.com"),
            Header::new("X-Shopify-API-Version", "2025-01"),
            Header::new("X-Shopify-Webhook-Id", ids.uuid("shopify-webhook")),
            Header::new("X-Shopify-Event-Id", ids.uuid("shopify-event")),
            Header::new("X-Shopify-Triggered-At", iso8601(now)),
        ],
        json_body(&body),
    )
}

fn standard_invoice(now: u64, ids: &Ids<'_>) -> Built {
    let body = json!({
        "type": "invoice.paid",
        "timestamp": iso8601(now),
        "data": {
            "id": format!("inv_{}", ids.alnum("sw-invoice", 20)),
            "customer_id": "cus_8f2a1c",
            "amount_paid": 4900,
            "currency": "usd",
            "status": "paid",
            "period_start": iso8601(now.saturating_sub(30 * 86_400)),
            "period_end": iso8601(now),
        },
    });
    (
        "/webhooks",
        vec![
            Header::new("Content-Type", "application/json"),
            Header::new(
                crate::verify::standard_webhooks::HEADER_ID,
                format!("msg_{}", ids.alnum("sw-msg", 27)),
            ),
            Header::new(
                crate::verify::standard_webhooks::HEADER_TIMESTAMP,
                now.to_string(),
            ),
        ],
        json_body(&body),
    )
}

fn twilio_sms(ids: &Ids<'_>) -> Built {
    let sid = format!("SM{}", ids.hex("twilio-sms", 32));
    let account = format!("AC{}", ids.hex("twilio-account", 32));
    let body = form_encode(&[
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", &sid),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", "94105"),
        ("SmsSid", &sid),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("FromCity", "SAN FRANCISCO"),
        ("Body", "Hello from hooktunnel! 👋"),
        ("FromCountry", "US"),
        ("To", "+15005550006"),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", &sid),
        ("AccountSid", &account),
        ("From", "+14155552671"),
        ("ApiVersion", "2010-04-01"),
    ]);
    (
        "/twilio/sms",
        vec![
            Header::new(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            ),
            Header::new("User-Agent", "TwilioProxy/1.1"),
            Header::new("Accept", "*/*"),
            Header::new("I-Twilio-Idempotency-Token", ids.uuid("twilio-idem")),
            Header::new("X-Home-Region", "us1"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::{apply, resign, sign, verify};

    /// The first value of header `name` (case-insensitive).
    fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &h.value[..])
    }

    const NOW: u64 = 1_700_000_000;
    const BASE: &str = "https://relay.example/t/demo";

    fn secret(p: Provider) -> &'static str {
        match p {
            Provider::StandardWebhooks => "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            Provider::Stripe => "whsec_test_secret",
            _ => "sample-secret",
        }
    }

    #[test]
    fn every_sample_builds_and_verifies_after_sign() {
        for s in SAMPLES {
            let (method, path, headers, body) = build(s.name, NOW, "01HZX3").unwrap();
            assert_eq!(method, "POST");
            assert!(path.starts_with('/'));
            assert!(
                find_header(&headers, "content-type").is_some(),
                "{}",
                s.name
            );
            assert_eq!(
                crate::verify::detect(&headers),
                None,
                "{} is unsigned",
                s.name
            );
            let url = format!("{BASE}{path}");
            let key = secret(s.provider);

            let signed = apply(
                &headers,
                sign(s.provider, key, &body, NOW, Some("msg_1"), Some(&url)).unwrap(),
            );
            assert_eq!(
                crate::verify::detect(&signed),
                Some(s.provider),
                "{}",
                s.name
            );
            verify(s.provider, key, &signed, &body, Some(&url), NOW + 1)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            // Nothing duplicated by the merge.
            for h in &signed {
                let same = signed
                    .iter()
                    .filter(|o| o.name.eq_ignore_ascii_case(&h.name))
                    .count();
                assert_eq!(same, 1, "{}: {}", s.name, h.name);
            }

            let resigned =
                resign(s.provider, key, &headers, &body, NOW, false, Some(&url)).unwrap();
            verify(s.provider, key, &resigned, &body, Some(&url), NOW).unwrap();
        }
    }

    #[test]
    fn bodies_are_well_formed() {
        for s in SAMPLES {
            let (_, _, headers, body) = build(s.name, NOW, "seed").unwrap();
            let ct =
                String::from_utf8(find_header(&headers, "content-type").unwrap().to_vec()).unwrap();
            if ct.contains("json") {
                serde_json::from_slice::<serde_json::Value>(&body).unwrap();
            } else {
                let params = crate::verify::twilio::parse_form(&body);
                assert!(params.len() > 5, "{}", s.name);
            }
        }
        let (_, _, _, body) = build("twilio.sms", NOW, "seed").unwrap();
        let params = crate::verify::twilio::parse_form(&body);
        assert!(params.contains(&(
            b"Body".to_vec(),
            "Hello from hooktunnel! 👋".as_bytes().to_vec()
        )));
    }

    #[test]
    fn provider_event_headers() {
        let get = |name: &str, header: &str| {
            let (_, _, h, _) = build(name, NOW, "x").unwrap();
            find_header(&h, header).map(<[u8]>::to_vec)
        };
        assert_eq!(get("github.ping", "x-github-event").unwrap(), b"ping");
        assert_eq!(get("github.push", "X-GitHub-Event").unwrap(), b"push");
        assert_eq!(get("github.push", "x-github-delivery").unwrap().len(), 36);
        assert_eq!(
            get("shopify.orders.create", "x-shopify-topic").unwrap(),
            b"orders/create"
        );
        assert_eq!(
            get("slack.command", "x-slack-request-timestamp").unwrap(),
            b"1700000000"
        );
        assert!(
            get("standard-webhooks.invoice.paid", "webhook-id")
                .unwrap()
                .starts_with(b"msg_")
        );
    }

    #[test]
    fn deterministic_per_id_and_distinct_across_ids() {
        for s in SAMPLES {
            assert_eq!(build(s.name, NOW, "a"), build(s.name, NOW, "a"));
            assert_ne!(
                build(s.name, NOW, "a"),
                build(s.name, NOW, "b"),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn lookup() {
        assert_eq!(find("push").unwrap().name, "github.push");
        assert_eq!(find("GitHub.Ping").unwrap().name, "github.ping");
        assert_eq!(find("orders.create").unwrap().provider, Provider::Shopify);
        assert!(find("nope").is_none());
        assert!(build("nope", NOW, "x").is_none());
        let mut names: Vec<_> = SAMPLES.iter().map(|s| s.name).collect();
        names.dedup();
        assert_eq!(names.len(), SAMPLES.len());
        for p in Provider::ALL {
            assert!(SAMPLES.iter().any(|s| s.provider == p), "{p}");
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn form_encoding_round_trips() {
        let body = form_encode(&[("a b", "1+2&3=4/é"), ("k", "")]);
        assert_eq!(body, b"a+b=1%2B2%263%3D4%2F%C3%A9&k=");
        assert_eq!(
            crate::verify::twilio::parse_form(&body),
            vec![
                (b"a b".to_vec(), "1+2&3=4/é".as_bytes().to_vec()),
                (b"k".to_vec(), Vec::new())
            ]
        );
    }
}
