//! The one resolver of what a user types for an exchange (`show`, `replay`,
//! `export`): `last`, a full id, or any unique part of one.

use ulid::Ulid;

use super::{Store, StoreError, parse_id};
use crate::exchange::Exchange;

/// Matching ids named in an "ambiguous" error.
const SHOWN_MATCHES: usize = 3;

impl Store {
    /// Resolves `last`, a full id, or any unique part of an id (start,
    /// middle or end, any case). Several matches are
    /// [`StoreError::Ambiguous`]; none is [`StoreError::NotFound`].
    pub fn resolve(&self, what: &str) -> Result<Exchange, StoreError> {
        let what = what.trim();
        if what.eq_ignore_ascii_case("last") {
            return self.last()?.ok_or(StoreError::Empty);
        }
        let not_found = || StoreError::NotFound(what.to_owned());
        if let Ok(id) = Ulid::from_string(what) {
            return self.get(&id)?.ok_or_else(not_found);
        }
        let part = what.to_ascii_uppercase();
        // Ids are Crockford base32: anything else matches nothing. `instr`
        // compares literally, so `_` and `%` are never wildcards.
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(not_found());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM exchanges WHERE instr(id, ?1) > 0 ORDER BY id DESC LIMIT ?2",
        )?;
        let ids: Vec<String> = stmt
            .query_map(rusqlite::params![part, SHOWN_MATCHES as i64 + 1], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(not_found()),
            [one] => self.get(&parse_id(one)?)?.ok_or_else(not_found),
            _ => {
                let total: i64 = self.conn.query_row(
                    "SELECT COUNT(*) FROM exchanges WHERE instr(id, ?1) > 0",
                    [&part],
                    |r| r.get(0),
                )?;
                let shown: Vec<String> = ids.into_iter().take(SHOWN_MATCHES).collect();
                let more = (total.max(0) as u64).saturating_sub(shown.len() as u64);
                Err(StoreError::Ambiguous {
                    what: what.to_owned(),
                    ids: shown,
                    more,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::tests::sample;

    fn with_ids(ids: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.sqlite3")).unwrap();
        for id in ids {
            let mut e = sample(1);
            e.id = Ulid::from_string(id).unwrap();
            store.insert(&e).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn any_unique_part_matches_in_any_case() {
        let (_dir, store) = with_ids(&["01KB0000003ZHSVC0000000000", "01KB0000000000000000000001"]);
        let want = "01KB0000003ZHSVC0000000000";
        for part in ["3ZHSVC", "3zhsvc", "01KB0000003", "C0000000000", want] {
            assert_eq!(store.resolve(part).unwrap().id.to_string(), want, "{part}");
        }
        assert!(matches!(
            store.resolve("ZZZZ"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn several_matches_are_ambiguous_and_named() {
        let ids = [
            "01M8000000000000000000000A",
            "01M9000000000000000000000A",
            "01MA000000000000000000000A",
            "01MB000000000000000000000A",
            "01MC000000000000000000000A",
        ];
        let (_dir, store) = with_ids(&ids);
        let err = store.resolve("01M").unwrap_err();
        assert_eq!(
            err.to_string(),
            "ambiguous: '01M' matches 01MC000000000000000000000A, 01MB000000000000000000000A, \
             01MA000000000000000000000A (and 2 more); type more of the id"
        );
        assert_eq!(store.resolve("01M8").unwrap().id.to_string(), ids[0]);
    }

    #[test]
    fn like_wildcards_are_literal() {
        let (_dir, store) = with_ids(&["01KB0000000000000000000001"]);
        for typed in ["%", "_", "01KB%", "0_KB", "%1"] {
            assert!(
                matches!(store.resolve(typed), Err(StoreError::NotFound(_))),
                "{typed}"
            );
        }
    }
}
