//! Requests the relay refused for this tunnel (413, 429, …), as stored from
//! its coalesced notes. A note counts every refusal of about a second but
//! names only the first few; what it does not name is kept as one row
//! without method or path, so totals stay exact and nothing is guessed.

use hooktunnel_protocol::Refused;

/// One stored row: `count` refusals of one kind, or the unnamed rest of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// When the agent received the note, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// HTTP method, `None` for the unnamed rest of a note.
    pub method: Option<String>,
    /// Path and query as the relay cut it, `None` for the unnamed rest.
    pub path: Option<String>,
    /// The status the sender got, `None` for the unnamed rest.
    pub status: Option<u16>,
    /// The `x-hooktunnel-error` code, `None` for the unnamed rest.
    pub reason: Option<String>,
    /// Refusals this row stands for (at least 1).
    pub count: u64,
}

/// The rows one note is stored as: its examples grouped by (method, path,
/// status, reason) in first-seen order, then one unnamed row for refusals
/// beyond the examples. The counts add up to `note.count` (or to the number
/// of examples, if a relay ever sent more examples than its count).
pub fn from_note(note: &Refused, received_at_ms: u64) -> Vec<Refusal> {
    let mut rows: Vec<Refusal> = Vec::new();
    for e in &note.examples {
        let same = rows.iter_mut().find(|r| {
            r.method.as_deref() == Some(e.method.as_str())
                && r.path.as_deref() == Some(e.path.as_str())
                && r.status == Some(e.status)
                && r.reason.as_deref() == Some(e.reason.as_str())
        });
        match same {
            Some(row) => row.count += 1,
            None => rows.push(Refusal {
                received_at_ms,
                method: Some(e.method.clone()),
                path: Some(e.path.clone()),
                status: Some(e.status),
                reason: Some(e.reason.clone()),
                count: 1,
            }),
        }
    }
    let rest = note.count.saturating_sub(note.examples.len() as u64);
    if rest > 0 {
        rows.push(Refusal {
            received_at_ms,
            method: None,
            path: None,
            status: None,
            reason: None,
            count: rest,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use hooktunnel_protocol::RefusedRequest;

    fn example(path: &str, status: u16, reason: &str) -> RefusedRequest {
        RefusedRequest {
            method: "POST".into(),
            path: path.into(),
            status,
            reason: reason.into(),
        }
    }

    #[test]
    fn a_note_becomes_grouped_rows_and_an_unnamed_rest() {
        let note = Refused {
            count: 12,
            tunnel: None,
            examples: vec![
                example("/hooks/1", 413, "body_too_large"),
                example("/hooks/2", 429, "rate_limited"),
                example("/hooks/1", 413, "body_too_large"),
                example("/hooks/1", 429, "rate_limited"),
                example("/hooks/2", 429, "rate_limited"),
            ],
        };
        let rows = from_note(&note, 7);
        let summary: Vec<(Option<&str>, Option<u16>, u64)> = rows
            .iter()
            .map(|r| (r.path.as_deref(), r.status, r.count))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("/hooks/1"), Some(413), 2),
                (Some("/hooks/2"), Some(429), 2),
                (Some("/hooks/1"), Some(429), 1),
                (None, None, 7),
            ]
        );
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 12);
        assert!(rows.iter().all(|r| r.received_at_ms == 7));
        assert_eq!(rows[3].method, None);
        assert_eq!(rows[3].reason, None);
    }

    #[test]
    fn a_fully_named_note_has_no_rest_and_an_empty_one_no_rows() {
        let one = Refused {
            count: 1,
            tunnel: None,
            examples: vec![example("/x", 413, "body_too_large")],
        };
        assert_eq!(from_note(&one, 1).len(), 1);
        // A relay that sent more examples than its count: the examples count.
        let odd = Refused {
            count: 0,
            tunnel: None,
            examples: vec![example("/x", 413, "body_too_large")],
        };
        assert_eq!(from_note(&odd, 1)[0].count, 1);
        let empty = Refused {
            count: 0,
            tunnel: None,
            examples: Vec::new(),
        };
        assert!(from_note(&empty, 1).is_empty());
    }
}
