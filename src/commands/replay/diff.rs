//! How a replay's response differs from the original's, in one line.

use crate::exchange::{ExchangeResponse, Header};
use crate::output;
use crate::sanitize;

/// A short description of how `after` differs from `before`.
pub fn difference(before: Option<&ExchangeResponse>, after: &ExchangeResponse) -> String {
    let Some(before) = before else {
        return "the original got no response".to_owned();
    };
    let mut parts = Vec::new();
    if before.status == after.status {
        parts.push(format!("same status ({})", after.status));
    } else {
        parts.push(format!("status {} → {}", before.status, after.status));
    }
    let changed = changed_headers(&before.headers, &after.headers);
    if changed.is_empty() {
        parts.push("same headers".to_owned());
    } else {
        const SHOWN: usize = 6;
        let mut list = changed
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if changed.len() > SHOWN {
            list.push_str(&format!(" and {} more", changed.len() - SHOWN));
        }
        parts.push(format!("headers changed: {list}"));
    }
    if before.body == after.body {
        parts.push("same body".to_owned());
    } else {
        parts.push(format!(
            "body changed ({} → {})",
            output::size(before.body.len() as u64),
            output::size(after.body.len() as u64)
        ));
    }
    parts.join("; ")
}

/// Header names whose values differ, as `name` (changed), `+name` (new) or
/// `-name` (gone); `date` is ignored since it always changes.
fn changed_headers(before: &[Header], after: &[Header]) -> Vec<String> {
    let values = |hs: &[Header], name: &str| -> Vec<Vec<u8>> {
        hs.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.clone())
            .collect()
    };
    let mut names: Vec<String> = Vec::new();
    for h in before.iter().chain(after) {
        let lower = h.name.to_ascii_lowercase();
        if lower != "date" && !names.contains(&lower) {
            names.push(lower);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (values(before, &name), values(after, &name));
            let shown = sanitize::escape(&name);
            match (b.is_empty(), a.is_empty()) {
                _ if a == b => None,
                (true, _) => Some(format!("+{shown}")),
                (_, true) => Some(format!("-{shown}")),
                _ => Some(shown.into_owned()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &'static [u8]) -> ExchangeResponse {
        ExchangeResponse {
            truncated: None,
            status,
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn difference_names_what_changed() {
        let a = response(
            200,
            &[("date", "x"), ("content-type", "text/plain"), ("x-a", "1")],
            b"ok",
        );
        let b = response(
            200,
            &[("date", "y"), ("content-type", "text/plain"), ("x-a", "1")],
            b"ok",
        );
        assert_eq!(
            difference(Some(&a), &b),
            "same status (200); same headers; same body"
        );
        let c = response(
            500,
            &[("content-type", "application/json"), ("x-b", "2")],
            b"{\"e\":1}",
        );
        assert_eq!(
            difference(Some(&a), &c),
            "status 200 → 500; headers changed: content-type, -x-a, +x-b; body changed (2 B → 7 B)"
        );
        assert_eq!(difference(None, &c), "the original got no response");
    }
}
