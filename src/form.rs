//! `application/x-www-form-urlencoded` decoding of bodies and query strings,
//! kept as bytes (signature schemes sign the decoded bytes, not text).

use std::borrow::Cow;

/// Decoded `(key, value)` pairs, in input order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes one component: `+` is a space, `%XX` a byte, and an invalid `%`
/// escape stays as it is.
pub fn decode(input: &[u8]) -> Vec<u8> {
    let spaced: Cow<'_, [u8]> = if input.contains(&b'+') {
        Cow::Owned(
            input
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(input)
    };
    percent_encoding::percent_decode(&spaced).collect()
}

/// The `key=value` pairs of a form body or query string, decoded. Empty
/// segments are skipped; a segment without `=` is a key with an empty value.
pub fn pairs(input: &[u8]) -> Pairs {
    input
        .split(|&b| b == b'&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| match seg.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&seg[..i]), decode(&seg[i + 1..])),
            None => (decode(seg), Vec::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_escapes_and_keeps_bad_escapes() {
        assert_eq!(decode(b"a%20b+c"), b"a b c");
        assert_eq!(decode(b"100%"), b"100%");
        assert_eq!(decode(b"%zz%4"), b"%zz%4");
        assert_eq!(decode(b"%C3%A9%ff"), b"\xc3\xa9\xff");
    }

    #[test]
    fn splits_pairs() {
        let got = pairs(b"a=1+2&b=%2B%zz&&c&d=%4&e=x=y");
        let want: Pairs = [
            ("a", "1 2"),
            ("b", "+%zz"),
            ("c", ""),
            ("d", "%4"),
            ("e", "x=y"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(got, want);
    }
}
