//! Helpers every scheme shares: header access, HMACs, constant-time
//! comparison, the timestamp tolerance check, and merging signature headers.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;
use crate::exchange::Header;

/// The first header named `name` (ASCII case-insensitive).
pub fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// Whether any header named in `names` is present.
pub(crate) fn any_header(headers: &[Header], names: &[&str]) -> bool {
    names.iter().any(|n| find_header(headers, n).is_some())
}

/// A header's value as trimmed text, `None` when absent.
fn header_str<'a>(
    headers: &'a [Header],
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    match find_header(headers, name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(|s| Some(s.trim()))
            .map_err(|_| malformed(name, "not valid UTF-8")),
    }
}

/// A header's value as trimmed, non-empty text.
pub(crate) fn required_header<'a>(
    headers: &'a [Header],
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    match header_str(headers, name)? {
        None => Err(VerifyError::MissingHeader(name)),
        Some("") => Err(malformed(name, "empty value")),
        Some(v) => Ok(v),
    }
}

/// Shorthand for [`VerifyError::MalformedHeader`].
pub(crate) fn malformed(header: &'static str, why: impl Into<String>) -> VerifyError {
    VerifyError::MalformedHeader {
        header,
        why: why.into(),
    }
}

/// Rejects an empty secret.
pub(crate) fn non_empty(secret: &str) -> Result<&[u8], VerifyError> {
    if secret.is_empty() {
        Err(VerifyError::InvalidSecret("the secret is empty".into()))
    } else {
        Ok(secret.as_bytes())
    }
}

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    hmac::<Hmac<Sha256>>(key, parts)
}

/// HMAC-SHA1 of the concatenated `parts`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    hmac::<Hmac<sha1::Sha1>>(key, parts)
}

fn hmac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, VerifyError> {
    let mut mac = <M as KeyInit>::new_from_slice(key)
        .map_err(|_| VerifyError::InvalidSecret("unusable HMAC key".into()))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Constant-time equality (lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether any of `candidates` equals `expected`, checking all of them
/// (no short-circuit, so timing does not tell which one matched).
pub(crate) fn any_ct_eq<'a>(
    candidates: impl IntoIterator<Item = &'a [u8]>,
    expected: &[u8],
) -> bool {
    candidates
        .into_iter()
        .fold(false, |acc, c| acc | ct_eq(c, expected))
}

/// Checks one hex-encoded MAC from `header` against `expected`: bad hex or a
/// wrong length is a malformed header, another value a mismatch.
pub(crate) fn check_hex_mac(
    header: &'static str,
    hex_sig: &str,
    expected: &[u8],
) -> Result<(), VerifyError> {
    let given = hex::decode(hex_sig).map_err(|e| malformed(header, format!("bad hex: {e}")))?;
    if given.len() != expected.len() {
        return Err(malformed(
            header,
            format!("expected {} hex digits", expected.len() * 2),
        ));
    }
    if ct_eq(&given, expected) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Checks `ts` against `now`: older than `tolerance` fails; so does newer, when `check_future`.
pub(crate) fn check_timestamp(
    ts: i64,
    now: u64,
    tolerance: u64,
    check_future: bool,
) -> Result<(), VerifyError> {
    let diff = i128::from(now) - i128::from(ts);
    let clamp = |d: i128| u64::try_from(d).unwrap_or(u64::MAX);
    if diff > i128::from(tolerance) {
        Err(VerifyError::TooOld {
            by_secs: clamp(diff),
            tolerance_secs: tolerance,
        })
    } else if check_future && -diff > i128::from(tolerance) {
        Err(VerifyError::TooNew {
            by_secs: clamp(-diff),
            tolerance_secs: tolerance,
        })
    } else {
        Ok(())
    }
}

/// Whether the body is form-urlencoded (or untyped), per `Content-Type`.
pub(crate) fn is_form(headers: &[Header]) -> bool {
    match find_header(headers, "content-type") {
        None => true,
        Some(v) => String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("application/x-www-form-urlencoded"),
    }
}

/// Merges `replacements` into `headers`: each replaces the first header of the
/// same name (case-insensitive; the original name's spelling is kept), later
/// duplicates are dropped, and new names are appended in order.
pub fn apply(headers: &[Header], replacements: Vec<Header>) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::with_capacity(headers.len() + replacements.len());
    let mut replacements: Vec<Option<Header>> = replacements.into_iter().map(Some).collect();
    let mut replaced: Vec<&str> = Vec::new();
    for h in headers {
        if replaced.iter().any(|n| n.eq_ignore_ascii_case(&h.name)) {
            continue;
        }
        let slot = replacements.iter_mut().find(|r| {
            r.as_ref()
                .is_some_and(|r| r.name.eq_ignore_ascii_case(&h.name))
        });
        match slot.and_then(Option::take) {
            Some(new) => {
                replaced.push(&h.name);
                out.push(Header::new(h.name.clone(), new.value));
            }
            None => out.push(h.clone()),
        }
    }
    out.extend(replacements.into_iter().flatten());
    out
}

/// Test support shared by the scheme modules.
#[cfg(test)]
pub(crate) mod testing {
    use proptest::prelude::*;

    use crate::exchange::Header;
    use crate::verify::{Message, MessageId, Scheme, VerifyError};

    /// `scheme`'s verdict on a request without a public URL.
    pub fn check(
        scheme: &dyn Scheme,
        secret: &str,
        headers: &[Header],
        body: &[u8],
        now: u64,
    ) -> Result<(), VerifyError> {
        scheme.verify(secret, &Message::new(headers, body, now))
    }

    /// `scheme`'s headers for a new message without a public URL.
    pub fn signed(
        scheme: &dyn Scheme,
        secret: &str,
        body: &[u8],
        now: u64,
    ) -> Result<Vec<Header>, VerifyError> {
        scheme.sign(secret, &Message::new(&[], body, now), MessageId::New)
    }

    /// A non-empty body, and a copy of it with one byte changed.
    pub fn body_and_tampered() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(any::<u8>(), 1..300),
            any::<proptest::sample::Index>(),
            1u8..=255,
        )
            .prop_map(|(body, idx, delta)| {
                let mut tampered = body.clone();
                let i = idx.index(tampered.len());
                tampered[i] = tampered[i].wrapping_add(delta);
                (body, tampered)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn apply_replaces_in_place_keeps_order_and_appends_new() {
        let headers = vec![
            h("Host", "x"),
            h("stripe-signature", "old"),
            h("Content-Type", "application/json"),
            h("Stripe-Signature", "dup"),
        ];
        let out = apply(
            &headers,
            vec![h("Stripe-Signature", "new"), h("X-New", "1")],
        );
        assert_eq!(
            out,
            vec![
                h("Host", "x"),
                h("stripe-signature", "new"),
                h("Content-Type", "application/json"),
                h("X-New", "1"),
            ]
        );
    }

    #[test]
    fn timestamp_window() {
        assert!(check_timestamp(700, 1000, 300, true).is_ok());
        assert!(check_timestamp(1300, 1000, 300, true).is_ok());
        assert_eq!(
            check_timestamp(699, 1000, 300, true),
            Err(VerifyError::TooOld {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check_timestamp(1301, 1000, 300, true),
            Err(VerifyError::TooNew {
                by_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check_timestamp(i64::MAX, 0, 300, false).is_ok());
        assert!(check_timestamp(i64::MIN, u64::MAX, 300, true).is_err());
    }

    #[test]
    fn any_ct_eq_checks_every_candidate() {
        let cands: [&[u8]; 3] = [b"aa", b"bb", b"cc"];
        assert!(any_ct_eq(cands, b"cc"));
        assert!(!any_ct_eq(cands, b"dd"));
        assert!(!any_ct_eq([], b"aa"));
    }
}
