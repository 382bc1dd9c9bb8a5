//! Agent authentication: bearer tokens checked in constant time.
//!
//! Every accepted token is kept only as its SHA-256 digest. A presented token
//! is hashed once and compared with every digest using `subtle`, without an
//! early exit, so neither the position of a mismatch nor which token matched
//! shows in the timing. Tokens are read from the `Authorization` header only;
//! a `?token=` in the URL is never looked at.

use axum::http::HeaderMap;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

/// The set of accepted agent tokens.
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl Tokens {
    /// Accepts the plain `tokens` and the pre-hashed `digests`.
    pub fn new(tokens: &[String], digests: &[[u8; 32]]) -> Self {
        let mut all: Vec<[u8; 32]> = tokens.iter().map(|t| digest(t.as_bytes())).collect();
        all.extend_from_slice(digests);
        Self { digests: all }
    }

    /// True when no token is configured: every agent is accepted.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `presented` is one of the accepted tokens.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |found, d| found | d.ct_eq(&presented));
        found.into()
    }

    /// True when the request may open an agent socket.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        if self.is_open() {
            return true;
        }
        bearer(headers).is_some_and(|token| self.accepts(token))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The token of the single `Authorization: Bearer <token>` header, if any.
/// Several `Authorization` headers are refused rather than guessed between.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_bearer(value.as_bytes())
}

/// Splits `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1).
pub fn parse_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_and_hashed_tokens_are_accepted() {
        let hashed = digest(b"from-file");
        let tokens = Tokens::new(&["plain".into()], &[hashed]);
        assert!(tokens.accepts(b"plain"));
        assert!(tokens.accepts(b"from-file"));
        assert!(!tokens.accepts(b"plai"));
        assert!(!tokens.accepts(b"plainx"));
        assert!(!tokens.accepts(b""));
        assert!(!tokens.accepts(&hashed), "a digest is not a token");
        assert!(Tokens::new(&[], &[]).is_open());
    }

    #[test]
    fn bearer_header_rules() {
        assert_eq!(parse_bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"Basic abc"), None);
        assert_eq!(parse_bearer(b"Bearer "), None);
        assert_eq!(parse_bearer(b"Bearer"), None);
        let mut two = HeaderMap::new();
        two.append("authorization", "Bearer a".parse().unwrap());
        two.append("authorization", "Bearer b".parse().unwrap());
        assert_eq!(bearer(&two), None);
    }

    proptest! {
        #[test]
        fn bearer_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(token) = parse_bearer(&bytes) {
                prop_assert!(!token.is_empty());
            }
        }
    }
}
