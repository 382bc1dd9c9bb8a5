//! Tunnel names: one DNS label, so path and Host routing agree.

/// Names refused because they would be confusing or dangerous as a
/// subdomain: control routes, infrastructure hosts (mail, DNS, auth), status
/// and admin words a phisher would like, placeholder words, and Windows
/// device names (a `con` directory cannot exist on Windows).
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    // hooktunnel itself
    "hooktunnel", "_hooktunnel", "relay", "connect", "health", "metrics", "tunnel",
    // infrastructure
    "www", "api", "localhost", "local", "mail", "email", "webmail", "smtp", "imap", "pop",
    "pop3", "ftp", "sftp", "ssh", "dns", "ns", "ns1", "ns2", "ns3", "mx", "vpn", "proxy",
    "gateway", "cdn", "static", "assets", "autodiscover", "autoconfig", "wpad", "isatap",
    "internal", "intranet",
    // status, admin and account words
    "admin", "administrator", "root", "sysadmin", "status", "dashboard", "console", "login",
    "logout", "signin", "signup", "auth", "oauth", "sso", "account", "accounts", "billing",
    "support", "help", "security", "abuse", "postmaster", "hostmaster", "webmaster", "noc",
    // placeholders
    "wildcard", "null", "nil", "none", "undefined", "default", "example", "test", "invalid",
    // Windows device names
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7",
    "com8", "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Random characters in a generated name: 16 base-32 characters, 80 bits,
/// so a URL nobody shared cannot be guessed.
const RANDOM_CHARS: usize = 16;
const _: () = assert!(
    RANDOM_CHARS * 5 >= 80,
    "generated names carry at least 80 bits"
);

/// Why a requested tunnel name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Length outside 3–63.
    #[error("tunnel names are 3 to 63 characters long")]
    Length,
    /// A character other than lowercase a–z, 0–9 or an inner hyphen.
    #[error("tunnel names use lowercase letters, digits and inner hyphens only")]
    Characters,
    /// A reserved word.
    #[error("'{0}' is reserved; pick another tunnel name")]
    Reserved(String),
    /// `--` in the third and fourth positions: reserved for IDNA
    /// (`xn--` punycode), which would render as a look-alike Unicode name.
    #[error(
        "tunnel names may not have '--' as their 3rd and 4th characters (IDNA/punycode labels such as xn--… are refused)"
    )]
    Punycode,
}

/// Checks a tunnel name: a lowercase DNS label of 3–63 characters.
///
/// ```
/// use hooktunnel_relay::name::validate;
/// assert!(validate("my-app").is_ok());
/// assert!(validate("My-App").is_err());
/// assert!(validate("..").is_err());
/// ```
pub fn validate(name: &str) -> Result<(), NameError> {
    if !(3..=63).contains(&name.len()) {
        return Err(NameError::Length);
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::Characters);
    }
    if name.get(2..4) == Some("--") {
        return Err(NameError::Punycode);
    }
    if RESERVED.contains(&name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// A fresh random name such as `ht-7f3kq9x2ma0d4e1c` (80 random bits).
pub fn random() -> String {
    // Crockford's base-32 in lowercase: no i, l, o, u, so names read aloud.
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bits: u128 = rand::random();
    let mut name = String::with_capacity(3 + RANDOM_CHARS);
    name.push_str("ht-");
    for _ in 0..RANDOM_CHARS {
        name.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matrix() {
        for ok in ["abc", "my-app-2", "a1b", &"x".repeat(63)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "",
            "-ab",
            "ab-",
            "AbC",
            "a.b",
            "..",
            "%2e%2e",
            "a/b",
            "café",
            "a_b",
            &"x".repeat(64),
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert_eq!(validate("www"), Err(NameError::Reserved("www".into())));
        assert_eq!(validate(&random()), Ok(()));
    }

    #[test]
    fn punycode_and_reserved_words_are_refused() {
        for idna in ["xn--80ak6aa92e", "ab--cd", "xn--abc"] {
            assert_eq!(validate(idna), Err(NameError::Punycode), "{idna}");
        }
        assert_eq!(
            validate("a--b"),
            Ok(()),
            "-- elsewhere is an ordinary label"
        );
        for word in [
            "localhost",
            "mail",
            "status",
            "wildcard",
            "null",
            "con",
            "lpt9",
            "admin",
        ] {
            assert_eq!(
                validate(word),
                Err(NameError::Reserved(word.into())),
                "{word}"
            );
        }
    }

    #[test]
    fn random_names_carry_80_bits() {
        let names: std::collections::HashSet<String> = (0..1000).map(|_| random()).collect();
        assert_eq!(names.len(), 1000);
        for name in &names {
            assert_eq!(name.len(), 3 + RANDOM_CHARS);
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }
}
