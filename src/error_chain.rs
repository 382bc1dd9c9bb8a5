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

/// The whole chain on one line, `outer: cause: root`, without repeating a
/// cause that an outer message already says (`cannot create X: File exists
/// (os error 17)` over the same io error prints it once; SQLite's "unable to
/// open database file" appears once, not three times).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // SQLite's innermost error is `Error code 14: <what its parent said>`.
        let said = text
            .strip_prefix("Error code ")
            .and_then(|rest| rest.split_once(": "))
            .map_or(text.as_str(), |(_, what)| what);
        if line.contains(said) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn one_line_drops_causes_already_said() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot create /x: {0}")]
        struct Create(#[source] std::io::Error);
        let io = std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "File exists (os error 17)",
        );
        let err = anyhow::Error::new(Create(io)).context("cannot open the history");
        assert_eq!(
            one_line(&err),
            "cannot open the history: cannot create /x: File exists (os error 17)"
        );
        let sqlite = rusqlite::Connection::open("/nonexistent-dir/x/h.sqlite3").unwrap_err();
        let err = anyhow::Error::new(sqlite).context("cannot open the history");
        assert_eq!(
            one_line(&err)
                .matches("unable to open database file")
                .count(),
            1
        );
        let plain = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(one_line(&plain), "outer: middle: root");
    }

    #[test]
    fn innermost_message_wins() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&Outer(io)), "Connection refused");
        let alone = std::io::Error::other("alone");
        assert_eq!(root_cause(&alone), "alone");
    }
}
