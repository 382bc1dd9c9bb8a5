//! Folding request paths into patterns, so `/orders/123` and `/orders/456`
//! are one row: numbers become `:n`, ids (UUIDs, ULIDs, long hex, prefixed
//! ids like Stripe's `cus_…`) become `:id`. The query string is dropped.

/// Longest pattern stored; longer paths are cut (on a char boundary) and end in `…`.
const MAX_PATTERN: usize = 200;

/// Folds one path (with or without a query) into its pattern.
pub fn fold(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::with_capacity(path.len().min(MAX_PATTERN + 4));
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(fold_segment(segment));
        if out.len() > MAX_PATTERN {
            let mut cut = MAX_PATTERN;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

fn fold_segment(segment: &str) -> &str {
    if segment.is_empty() {
        segment
    } else if segment.bytes().all(|b| b.is_ascii_digit()) {
        ":n"
    } else if is_id(segment) {
        ":id"
    } else {
        segment
    }
}

/// Whether a path segment looks like an identifier rather than a name.
fn is_id(s: &str) -> bool {
    is_uuid(s) || is_ulid(s) || is_long_hex(s) || is_prefixed_id(s) || is_opaque_token(s)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// 26 Crockford base-32 characters with at least one digit (so a 26-letter
/// word is not an id).
fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_alphabetic()
                    && !matches!(c.to_ascii_uppercase(), b'I' | b'L' | b'O' | b'U'))
        })
}

/// Hashes, object ids, commit shas: 12+ hex digits with at least one digit.
fn is_long_hex(s: &str) -> bool {
    s.len() >= 12
        && s.bytes().all(|c| c.is_ascii_hexdigit())
        && s.bytes().any(|c| c.is_ascii_digit())
}

/// `cus_NffrFeUfNV2Hib`, `evt_1N…`, `msg_2Kx…`: a short lowercase prefix,
/// `_`, then 8+ alphanumerics including a digit.
fn is_prefixed_id(s: &str) -> bool {
    let Some((prefix, rest)) = s.split_once('_') else {
        return false;
    };
    (1..=8).contains(&prefix.len())
        && prefix.bytes().all(|c| c.is_ascii_lowercase())
        && rest.len() >= 8
        && rest.bytes().all(|c| c.is_ascii_alphanumeric())
        && rest.bytes().any(|c| c.is_ascii_digit())
}

/// Random tokens: 20+ characters of letters, digits, `-` and `_`, mixing
/// letters and digits (long slugs like `order-confirmation-email` have no digits).
fn is_opaque_token(s: &str) -> bool {
    s.len() >= 20
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folding_table() {
        let cases = [
            ("/", "/"),
            ("", ""),
            ("/orders/123", "/orders/:n"),
            ("/orders/123?expand=1", "/orders/:n"),
            ("/orders/123/items/7", "/orders/:n/items/:n"),
            ("/v1/orders", "/v1/orders"),
            ("/users/550e8400-e29b-41d4-a716-446655440000", "/users/:id"),
            (
                "/users/550E8400-E29B-41D4-A716-446655440000/x",
                "/users/:id/x",
            ),
            ("/e/01HZX3Q4KJ8M2V7N5T6W9YBCDE", "/e/:id"),
            (
                "/e/ABCDEFGHJKMNPQRSTVWXYZABCD",
                "/e/ABCDEFGHJKMNPQRSTVWXYZABCD",
            ),
            (
                "/commits/9fceb02d0ae598e95dc970b74767f19372d61af8",
                "/commits/:id",
            ),
            ("/objects/507f1f77bcf86cd799439011", "/objects/:id"),
            ("/deadbeef", "/deadbeef"),
            ("/customers/cus_NffrFeUfNV2Hib", "/customers/:id"),
            ("/webhooks/stripe_events", "/webhooks/stripe_events"),
            ("/t/aB3dE5gH7jK9mN1pQ3sT5v", "/t/:id"),
            (
                "/emails/order-confirmation-email",
                "/emails/order-confirmation-email",
            ),
            ("/a//b/", "/a//b/"),
            ("/x#frag", "/x"),
            ("/caf%C3%A9/42", "/caf%C3%A9/:n"),
        ];
        for (path, want) in cases {
            assert_eq!(fold(path), want, "fold({path:?})");
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_char_boundary() {
        let path = format!("/{}", "é".repeat(300));
        let folded = fold(&path);
        assert!(folded.len() <= 200 + '…'.len_utf8(), "{}", folded.len());
        assert!(folded.ends_with('…'));
    }
}
