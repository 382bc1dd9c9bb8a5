//! Which tunnels the history in view holds. One agent may serve several
//! tunnels (`listen --all`) into the one history; once more than one name
//! has been seen, the list shows a tunnel column and the detail names the
//! tunnel. A single-tunnel user sees no change.
//!
//! Names are only ever added (from loaded pages, new rows, and the
//! background walk of the whole history at start), so the column never
//! flickers in and out as the list scrolls.

use crate::sanitize::escape;

use super::text::width;

/// Names remembered; past this many, more are not tracked (the column
/// shows already, and its width is capped anyway).
const MAX_NAMES: usize = 64;
/// The column is never narrower than its title.
pub const MIN_COLUMN: usize = "TUNNEL".len();
/// Nor wider than this: longer names are cut with `…`.
pub const MAX_COLUMN: usize = 16;

/// The tunnel names seen so far and the widest of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tunnels {
    names: Vec<String>,
    widest: usize,
}

impl Tunnels {
    /// Notes one row's tunnel.
    pub fn note(&mut self, name: &str) {
        if self.names.len() >= MAX_NAMES || self.names.iter().any(|n| n == name) {
            return;
        }
        self.widest = self.widest.max(width(&escape(name)));
        self.names.push(name.to_owned());
    }

    /// Notes every name in `names`.
    pub fn note_all<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.note(name);
        }
    }

    /// True once more than one tunnel has been seen.
    pub fn several(&self) -> bool {
        self.names.len() > 1
    }

    /// The names seen, in the order first seen.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The tunnel column's width, when it shows: the widest name seen,
    /// within [`MIN_COLUMN`]..=[`MAX_COLUMN`].
    pub fn column(&self) -> Option<usize> {
        self.several()
            .then(|| self.widest.clamp(MIN_COLUMN, MAX_COLUMN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tunnel_shows_no_column() {
        let mut t = Tunnels::default();
        assert_eq!(t.column(), None);
        t.note_all(["demo", "demo", "demo"]);
        assert!(!t.several());
        assert_eq!(t.column(), None);
    }

    #[test]
    fn a_second_name_shows_the_column_for_good() {
        let mut t = Tunnels::default();
        t.note_all(["demo", "shop"]);
        assert!(t.several());
        // Short names still get a column as wide as its title.
        assert_eq!(t.column(), Some(MIN_COLUMN));
        t.note("billing-eu");
        assert_eq!(t.column(), Some(10));
        // Long names are capped; the cell is cut with an ellipsis.
        t.note("a-very-long-tunnel-name-indeed");
        assert_eq!(t.column(), Some(MAX_COLUMN));
        assert_eq!(t.names().len(), 4);
    }

    #[test]
    fn names_are_bounded() {
        let mut t = Tunnels::default();
        for i in 0..1000 {
            t.note(&format!("t{i}"));
        }
        assert_eq!(t.names().len(), MAX_NAMES);
        assert!(t.several());
    }

    #[test]
    fn width_counts_what_the_screen_shows() {
        let mut t = Tunnels::default();
        // A control character is shown escaped, so it takes more columns.
        t.note("a\u{1b}b");
        t.note("x");
        assert_eq!(t.column(), Some(MIN_COLUMN));
        assert!(t.widest > 3);
    }
}
