//! One-line renderings of error chains.

use std::error::Error;

/// The innermost cause's message (e.g. "Connection refused" under hyper's
/// "client error (Connect)"), which is what a user can act on.
pub fn root_cause(err: &dyn Error) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn innermost_message_wins() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&Outer(io)), "Connection refused");
        let alone = std::io::Error::other("alone");
        assert_eq!(root_cause(&alone), "alone");
    }
}
