//! Twilio: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, url + params)>`.
//!
//! `url` is the full public URL the request was sent to (query included);
//! `params` are the form parameters sorted by key then value, each as
//! `key + value`. JSON bodies are signed differently: the URL carries
//! `bodySHA256=<hex sha256(body)>` and the signature covers the URL alone.
//! Like twilio-python, the URL is also tried with the default port added
//! (when it has none) or with its port removed (when it has one).
//!
//! Caveat inherent to the scheme: concatenating keys and values is
//! ambiguous (`a&b` and `a=b` sign alike), so a form body can change in ways
//! the signature does not cover. Replay protection relies on dedupe ids.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use sha2::{Digest, Sha256};

use super::common::{any_ct_eq, ct_eq, hmac_sha1, is_form, malformed, non_empty, required_header};
use super::{Message, MessageId, Scheme, Signed, VerifyError};
use crate::exchange::Header;

/// The signature header.
pub const HEADER: &str = "X-Twilio-Signature";
/// The URL query parameter carrying a JSON body's SHA-256 (hex).
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// Form parameters as decoded `(key, value)` byte pairs, in body order.
pub type Params = crate::form::Pairs;

/// Twilio's scheme. The body is read as form parameters only when the
/// `Content-Type` is form-urlencoded (or absent) and the URL has no `bodySHA256`.
pub struct Twilio;

impl Scheme for Twilio {
    fn verify(&self, secret: &str, msg: &Message<'_>) -> Result<(), VerifyError> {
        verify_with(
            secret,
            msg.headers,
            msg.body,
            msg.required_url()?,
            is_form(msg.headers),
        )
    }

    /// Signs the public URL exactly as given.
    fn sign(&self, secret: &str, msg: &Message<'_>, _id: MessageId<'_>) -> Signed {
        sign(secret, msg.body, msg.required_url()?, is_form(msg.headers))
    }
}

/// Verifies a request, with `form` saying whether the body holds form parameters.
fn verify_with(
    token: &str,
    headers: &[Header],
    body: &[u8],
    url: &str,
    form: bool,
) -> Result<(), VerifyError> {
    let key = non_empty(token)?;
    let value = required_header(headers, HEADER)?;
    let given = STANDARD_PAD_INDIFFERENT
        .decode(value)
        .map_err(|e| malformed(HEADER, format!("bad base64: {e}")))?;
    if given.len() != 20 {
        return Err(malformed(HEADER, "expected a 20-byte base64 HMAC-SHA1"));
    }
    let urls = url_variants(url)?;
    let body_hash = query_param(url, BODY_HASH_PARAM);
    let param_strings = match (&body_hash, form) {
        (None, true) => {
            let params = parse_form(body);
            let all = concat_sorted(&params, false);
            let deduped = concat_sorted(&params, true);
            if all == deduped {
                vec![all]
            } else {
                // twilio-python dedupes repeated pairs, twilio-node does not.
                vec![all, deduped]
            }
        }
        _ => vec![Vec::new()],
    };
    let mut expected = Vec::with_capacity(urls.len() * param_strings.len());
    for u in &urls {
        for p in &param_strings {
            expected.push(hmac_sha1(key, &[u.as_bytes(), p])?);
        }
    }
    if !any_ct_eq(expected.iter().map(Vec::as_slice), &given) {
        return Err(VerifyError::Mismatch);
    }
    match body_hash {
        Some(h) if !ct_eq(body_sha256_hex(body).as_bytes(), &h.to_ascii_lowercase()) => {
            Err(VerifyError::BodyHashMismatch)
        }
        _ => Ok(()),
    }
}

/// The base64 signature for `url` and sorted `params`.
fn signature(token: &str, url: &str, params: &[(Vec<u8>, Vec<u8>)]) -> Result<String, VerifyError> {
    let mac = hmac_sha1(
        non_empty(token)?,
        &[url.as_bytes(), &concat_sorted(params, false)],
    )?;
    Ok(STANDARD.encode(mac))
}

/// The signature header for a request to `url` (exactly as given).
///
/// With `bodySHA256` in the URL the signature covers the URL only, and the
/// body must hash to it; otherwise, when `form`, the body's form parameters
/// are signed too.
fn sign(token: &str, body: &[u8], url: &str, form: bool) -> Result<Vec<Header>, VerifyError> {
    url_variants(url)?;
    let params = match query_param(url, BODY_HASH_PARAM) {
        Some(h) => {
            if !h.eq_ignore_ascii_case(body_sha256_hex(body).as_bytes()) {
                return Err(VerifyError::BodyHashMismatch);
            }
            Vec::new()
        }
        None if form => parse_form(body),
        None => Vec::new(),
    };
    Ok(vec![Header::new(HEADER, signature(token, url, &params)?)])
}

/// `url` with `bodySHA256=<hex sha256(body)>` appended, as Twilio sends JSON bodies.
pub fn url_with_body_hash(url: &str, body: &[u8]) -> String {
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}{BODY_HASH_PARAM}={}", body_sha256_hex(body));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Hex SHA-256 of the body, lowercase.
fn body_sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Decodes an `application/x-www-form-urlencoded` body (`+` is a space;
/// invalid `%` escapes are kept literally; blank values are kept).
pub fn parse_form(body: &[u8]) -> Params {
    crate::form::pairs(body)
}

/// The first value of query parameter `name` in `url`, decoded.
fn query_param(url: &str, name: &str) -> Option<Vec<u8>> {
    let no_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = no_fragment.split_once('?')?;
    parse_form(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v)
}

/// `key + value` for every pair, sorted by key then value (optionally deduplicated).
fn concat_sorted(params: &[(Vec<u8>, Vec<u8>)], dedup: bool) -> Vec<u8> {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    if dedup {
        sorted.dedup();
    }
    let mut out = Vec::new();
    for (k, v) in sorted {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

/// The URL as given plus, for http(s), the variant with the default port
/// added (no port given) or with the port removed (port given).
fn url_variants(url: &str) -> Result<Vec<String>, VerifyError> {
    let invalid = || VerifyError::InvalidUrl(format!("`{url}` is not an absolute http(s) URL"));
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(invalid()),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let (userinfo, hostport) = authority.split_at(host_start);
    if hostport.is_empty() {
        return Err(invalid());
    }
    let port_sep = hostport
        .rfind(':')
        .filter(|&i| !hostport[i..].contains(']'));
    let other = match port_sep {
        Some(i) => format!("{scheme}://{userinfo}{}{tail}", &hostport[..i]),
        None => format!("{scheme}://{authority}:{default_port}{tail}"),
    };
    Ok(vec![url.to_owned(), other])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verify::common::testing::body_and_tampered;
    use proptest::prelude::*;

    fn verify(token: &str, headers: &[Header], body: &[u8], url: &str) -> Result<(), VerifyError> {
        Twilio.verify(
            token,
            &Message {
                public_url: Some(url),
                ..Message::new(headers, body, 0)
            },
        )
    }

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    // Row 6 params as a form body ('+' must be %2B on the wire).
    const ROW6_BODY: &[u8] = b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212&Caller=%2B14158675309";
    const ROW6_SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const JSON_BODY: &[u8] = br#"{"property": "value", "boolean": true}"#;

    fn sig(value: &str) -> Vec<Header> {
        vec![
            Header::new("content-type", "application/x-www-form-urlencoded"),
            Header::new("x-twilio-signature", value),
        ]
    }

    fn pairs(list: &[(&str, &str)]) -> Params {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn row5_docs_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature(TOKEN, URL, &params).unwrap(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        let body = b"Digits=1234&To=%2B18005551212&From=%2B12349013030&Caller=%2B12349013030&CallSid=CA1234567890ABCDE";
        assert_eq!(
            verify(TOKEN, &sig("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), body, URL),
            Ok(())
        );
    }

    #[test]
    fn row6_signatures_per_url() {
        let params = parse_form(ROW6_BODY);
        let cases = [
            (URL, ROW6_SIG),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(signature(TOKEN, url, &params).unwrap(), want, "{url}");
            assert_eq!(verify(TOKEN, &sig(want), ROW6_BODY, url), Ok(()), "{url}");
        }
    }

    #[test]
    fn row6_port_variants_like_twilio_python() {
        let v = |url: &str, s: &str| verify(TOKEN, &sig(s), ROW6_BODY, url);
        // Removes the port on https / http.
        assert_eq!(
            v("https://mycompany.com:1234/myapp.php?foo=1&bar=2", ROW6_SIG),
            Ok(())
        );
        assert_eq!(
            v(
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
            ),
            Ok(())
        );
        // Adds the default port on https / http.
        assert_eq!(v(URL, "kvajT1Ptam85bY51eRf/AJRuM3w="), Ok(()));
        assert_eq!(
            v(
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4="
            ),
            Ok(())
        );
        // A different host or path does not verify.
        assert_eq!(
            v("https://other.com/myapp.php?foo=1&bar=2", ROW6_SIG),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v("https://mycompany.com/myapp.php?foo=1&bar=3", ROW6_SIG),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn row7_duplicate_keys_sorted_by_value() {
        let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        assert_eq!(
            signature(TOKEN, URL, &parse_form(body)).unwrap(),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        assert_eq!(
            verify(TOKEN, &sig("IK+Dwps556ElfBT0I3Rgjkr1wJU="), body, URL),
            Ok(())
        );
    }

    #[test]
    fn repeated_identical_pairs_verify_either_way() {
        let body = b"a=1&a=1&b=2";
        let all = signature(TOKEN, URL, &parse_form(body)).unwrap();
        let deduped = signature(TOKEN, URL, &parse_form(b"a=1&b=2")).unwrap();
        assert_eq!(verify(TOKEN, &sig(&all), body, URL), Ok(()));
        assert_eq!(verify(TOKEN, &sig(&deduped), body, URL), Ok(()));
    }

    #[test]
    fn row8_json_body_hash() {
        assert_eq!(
            body_sha256_hex(JSON_BODY),
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let url = url_with_body_hash(URL, JSON_BODY);
        assert_eq!(
            url,
            "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let headers = vec![
            Header::new("Content-Type", "application/json"),
            Header::new("X-Twilio-Signature", "a9nBmqA0ju/hNViExpshrM61xv4="),
        ];
        assert_eq!(verify(TOKEN, &headers, JSON_BODY, &url), Ok(()));
        assert_eq!(
            sign(TOKEN, JSON_BODY, &url, true).unwrap()[0].value,
            headers[1].value
        );
        // The signature stays valid but the body no longer matches its hash.
        assert_eq!(
            verify(TOKEN, &headers, br#"{"property": "other"}"#, &url),
            Err(VerifyError::BodyHashMismatch)
        );
        assert_eq!(
            sign(TOKEN, b"{}", &url, true),
            Err(VerifyError::BodyHashMismatch)
        );
    }

    #[test]
    fn json_without_body_hash_signs_url_only() {
        let headers = vec![
            Header::new("Content-Type", "application/json"),
            Header::new(HEADER, signature(TOKEN, URL, &[]).unwrap()),
        ];
        assert_eq!(verify(TOKEN, &headers, b"a=1", URL), Ok(()));
        assert_eq!(
            verify_with(TOKEN, &headers, b"a=1", URL, true),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_and_missing() {
        assert!(matches!(
            verify(TOKEN, &sig("***"), ROW6_BODY, URL),
            Err(VerifyError::MalformedHeader { header: HEADER, .. })
        ));
        assert_eq!(
            verify(TOKEN, &sig("AAAA"), ROW6_BODY, URL),
            Err(malformed(HEADER, "expected a 20-byte base64 HMAC-SHA1"))
        );
        assert_eq!(
            verify(TOKEN, &sig(""), ROW6_BODY, URL),
            Err(malformed(HEADER, "empty value"))
        );
        assert_eq!(
            verify(TOKEN, &sig(ROW6_SIG)[..1], ROW6_BODY, URL),
            Err(VerifyError::MissingHeader(HEADER))
        );
        for url in ["/myapp.php", "ftp://x/y", "https://", "https:///x"] {
            assert!(
                matches!(
                    verify(TOKEN, &sig(ROW6_SIG), ROW6_BODY, url),
                    Err(VerifyError::InvalidUrl(_))
                ),
                "{url}"
            );
        }
        assert_eq!(
            verify("wrong", &sig(ROW6_SIG), ROW6_BODY, URL),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn url_variant_shapes() {
        assert_eq!(
            url_variants("https://user:pw@h.com:8443/p?q#f").unwrap()[1],
            "https://user:pw@h.com/p?q#f"
        );
        assert_eq!(
            url_variants("http://[::1]/p").unwrap()[1],
            "http://[::1]:80/p"
        );
        assert_eq!(
            url_variants("HTTPS://h.com").unwrap()[1],
            "HTTPS://h.com:443"
        );
    }

    proptest! {
        #[test]
        fn round_trip_and_tamper_form(
            token in "[0-9a-f]{32}",
            params in proptest::collection::btree_map("[A-Z][a-z]{0,7}", "[a-z][a-z0-9 +]{0,11}", 1..6),
            path in "/[a-z]{0,10}",
            idx in any::<prop::sample::Index>(),
        ) {
            let encode = |params: &std::collections::BTreeMap<String, String>| {
                params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace(' ', "+")))
                    .collect::<Vec<_>>()
                    .join("&")
            };
            let body = encode(&params);
            let url = format!("https://relay.example{path}");
            let h = sign(&token, body.as_bytes(), &url, true).unwrap();
            prop_assert_eq!(verify(&token, &h, body.as_bytes(), &url), Ok(()));
            // Changing one byte of a value is caught (keys are distinct, so the order holds).
            let mut tampered = params.clone();
            let key = params.keys().nth(idx.index(params.len())).unwrap();
            let value = tampered.get_mut(key).unwrap();
            let first = if value.starts_with('z') { "a" } else { "z" };
            value.replace_range(..1, first);
            let tampered = encode(&tampered);
            prop_assert_eq!(verify(&token, &h, tampered.as_bytes(), &url), Err(VerifyError::Mismatch));
        }

        #[test]
        fn round_trip_and_tamper_json(
            token in "[0-9a-f]{32}",
            (body, tampered) in body_and_tampered(),
        ) {
            let url = url_with_body_hash("https://relay.example/t/x/hook?a=1", &body);
            let h = sign(&token, &body, &url, false).unwrap();
            let headers = [vec![Header::new("content-type", "application/json")], h].concat();
            prop_assert_eq!(verify(&token, &headers, &body, &url), Ok(()));
            prop_assert_eq!(verify(&token, &headers, &tampered, &url), Err(VerifyError::BodyHashMismatch));
        }
    }
}
