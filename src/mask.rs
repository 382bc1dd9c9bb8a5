//! Masking of secret header values for display: pure functions over the
//! bytes, so what is stored, exported and replayed is never touched.
//!
//! `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and any
//! header whose name ends in `-api-key`, `-token` or `-secret` (any case) are
//! secret. A masked value keeps what helps to tell requests apart and gives
//! nothing away: the scheme word (`Bearer ••••••••3f9a`), cookie names and
//! `Set-Cookie` attributes, and the last four characters of a secret only
//! when it is long enough ([`KEEP_LAST_FROM`]). The bullets are always
//! eight, whatever the secret's length.

use std::borrow::Cow;

/// What replaces a secret.
pub const BULLETS: &str = "••••••••";

/// Secrets at least this long keep their last four characters.
pub const KEEP_LAST_FROM: usize = 16;

/// Whether header `name` carries a secret.
pub fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || ["-api-key", "-token", "-secret"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// The value of header `name` as displayed: masked when [`is_secret`],
/// else as it is. Escape the result (see [`crate::sanitize`]) before drawing.
pub fn header_value<'a>(name: &str, value: &'a [u8]) -> Cow<'a, [u8]> {
    if !is_secret(name) || value.trim_ascii().is_empty() {
        return Cow::Borrowed(value);
    }
    Cow::Owned(match name.to_ascii_lowercase().as_str() {
        "authorization" | "proxy-authorization" => credentials(value),
        "cookie" => cookie(value),
        "set-cookie" => set_cookie(value),
        _ => secret(value.trim_ascii()),
    })
}

/// Eight bullets, then the last four characters when `value` is at least
/// [`KEEP_LAST_FROM`] printable ASCII characters long.
pub fn secret(value: &[u8]) -> Vec<u8> {
    let mut out = BULLETS.as_bytes().to_vec();
    if value.len() >= KEEP_LAST_FROM && value.iter().all(u8::is_ascii_graphic) {
        out.extend_from_slice(&value[value.len() - 4..]);
    }
    out
}

/// `Bearer ••••••••3f9a`: the scheme word kept. `Basic` credentials are
/// masked whole: their last characters encode the end of the password.
fn credentials(value: &[u8]) -> Vec<u8> {
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return secret(value);
    };
    let (scheme, rest) = (&value[..space], value[space..].trim_ascii());
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return secret(value);
    }
    let mut out = scheme.to_vec();
    out.push(b' ');
    if scheme.eq_ignore_ascii_case(b"basic") {
        out.extend_from_slice(BULLETS.as_bytes());
    } else {
        out.extend_from_slice(&secret(rest));
    }
    out
}

/// `name=value` with the value masked (a pair without `=` is all secret).
fn pair(pair: &[u8]) -> Vec<u8> {
    let pair = pair.trim_ascii();
    match pair.iter().position(|&b| b == b'=') {
        Some(eq) => {
            let mut out = pair[..=eq].to_vec();
            out.extend_from_slice(&secret(&pair[eq + 1..]));
            out
        }
        None => secret(pair),
    }
}

/// `a=••••••••; b=••••••••`: the cookie names kept.
fn cookie(value: &[u8]) -> Vec<u8> {
    value
        .split(|&b| b == b';')
        .filter(|p| !p.trim_ascii().is_empty())
        .map(pair)
        .collect::<Vec<_>>()
        .join(&b"; "[..])
}

/// `id=••••••••; Path=/; HttpOnly`: the cookie's name and attributes kept.
fn set_cookie(value: &[u8]) -> Vec<u8> {
    let mut parts = value.splitn(2, |&b| b == b';');
    let mut out = pair(parts.next().unwrap_or_default());
    if let Some(attributes) = parts.next() {
        out.push(b';');
        out.extend_from_slice(attributes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(name: &str, value: &str) -> String {
        String::from_utf8(header_value(name, value.as_bytes()).into_owned()).unwrap_or_default()
    }

    #[test]
    fn secret_names_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "COOKIE",
            "Set-Cookie",
            "X-Api-Key",
            "x-gitlab-token",
            "X-Webhook-Secret",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in [
            "content-type",
            "x-hub-signature-256",
            "x-tokens",
            "api-keys",
            "x-secretive",
            "token",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn bearer_keeps_the_scheme_and_the_last_four_of_a_long_token() {
        assert_eq!(
            shown("Authorization", "Bearer sk_live_51HxYzAbCdEf3f9a"),
            "Bearer ••••••••3f9a"
        );
        assert_eq!(
            shown("authorization", "  token   ghp_0123456789abcdef  "),
            "token ••••••••cdef"
        );
        // Short secrets keep nothing: four characters of eight would be half.
        assert_eq!(shown("Authorization", "Bearer abc123"), "Bearer ••••••••");
        // Basic is base64 of user:password: masked whole.
        assert_eq!(
            shown("Proxy-Authorization", "Basic dXNlcjpwYXNzd29yZDEyMzQ1Njc4"),
            "Basic ••••••••"
        );
        // No scheme word: the value is the secret.
        assert_eq!(
            shown("Authorization", "0123456789abcdef0123"),
            "••••••••0123"
        );
        assert_eq!(shown("Authorization", "x=y z"), "••••••••");
    }

    #[test]
    fn cookies_keep_names_and_attributes() {
        assert_eq!(
            shown("Cookie", "session=0123456789abcdefWXYZ; theme=dark;; flag"),
            "session=••••••••WXYZ; theme=••••••••; ••••••••"
        );
        assert_eq!(
            shown(
                "Set-Cookie",
                "id=a3fWa; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"
            ),
            "id=••••••••; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly"
        );
    }

    #[test]
    fn other_secret_headers_and_plain_ones() {
        assert_eq!(shown("X-Api-Key", "abc"), "••••••••");
        assert_eq!(
            shown("X-Gitlab-Token", "glpat-0123456789abcdef"),
            "••••••••cdef"
        );
        assert_eq!(
            shown("content-type", "application/json"),
            "application/json"
        );
        assert!(matches!(
            header_value("content-type", b"x"),
            Cow::Borrowed(_)
        ));
        assert_eq!(shown("Authorization", ""), "");
    }

    #[test]
    fn the_length_and_non_ascii_tails_do_not_show() {
        assert_eq!(shown("x-token", &"a".repeat(8)), shown("x-token", "ab"));
        let tail = header_value("x-token", "0123456789abcdef\u{1b}[2J".as_bytes());
        assert_eq!(&*tail, BULLETS.as_bytes(), "no control bytes kept");
    }
}
