//! Tunnel names: one DNS label, so path and Host routing agree.

/// Names that would be confusing or collide with control routes.
const RESERVED: [&str; 8] = [
    "www",
    "api",
    "admin",
    "relay",
    "hooktunnel",
    "_hooktunnel",
    "health",
    "connect",
];

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
    if RESERVED.contains(&name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// A fresh random name such as `ht-7f3kq9x2ma`.
pub fn random() -> String {
    // The last 16 characters of a ULID are its random part.
    let ulid = ulid::Ulid::generate().to_string().to_ascii_lowercase();
    format!("ht-{}", &ulid[16..])
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
}
