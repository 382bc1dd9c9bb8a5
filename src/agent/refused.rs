//! The line `listen` shows for requests the relay refused before they
//! reached this agent: "relay refused 3 requests (413 body too large)".

use hooktunnel_relay::protocol::Refused;

/// One human line for a relay's refusal note.
pub fn notice(note: &Refused) -> String {
    // Distinct (status, reason) pairs among the examples, in order.
    let mut kinds: Vec<(u16, String)> = Vec::new();
    for e in &note.examples {
        let kind = (e.status, e.reason.replace('_', " "));
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let why = kinds
        .iter()
        .map(|(status, reason)| format!("{status} {reason}"))
        .collect::<Vec<_>>()
        .join(", ");
    let plural = if note.count == 1 { "" } else { "s" };
    let mut line = format!("relay refused {} request{plural}", note.count);
    if !why.is_empty() {
        line.push_str(&format!(" ({why})"));
    }
    if let Some(last) = note.examples.last() {
        let path = crate::sanitize::escape(&last.path);
        line.push_str(&format!(
            ", e.g. {} {path}",
            crate::sanitize::escape(&last.method)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use hooktunnel_relay::protocol::RefusedRequest;

    fn one(status: u16, reason: &str) -> RefusedRequest {
        RefusedRequest {
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            status,
            reason: reason.into(),
        }
    }

    #[test]
    fn notes_read_as_one_line() {
        let note = Refused {
            count: 3,
            tunnel: None,
            examples: vec![one(413, "body_too_large"); 3],
        };
        assert_eq!(
            notice(&note),
            "relay refused 3 requests (413 body too large), e.g. POST /hooks/stripe"
        );
        let mixed = Refused {
            count: 1,
            tunnel: None,
            examples: vec![one(429, "rate_limited")],
        };
        assert!(notice(&mixed).starts_with("relay refused 1 request (429 rate limited)"));
    }
}
