//! Requests the relay refused for a live tunnel (413, 429, 400, …) never
//! reach its agent, so the agent is sent a compact note instead: coalesced
//! over [`WINDOW`], with the first few as examples, dropped rather than
//! queued when the agent's socket is backed up. In a cluster, refusals on
//! other nodes arrive as notes of their own ([`crate::cluster::notes`]) and
//! are merged into the same window.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::{Refused, RefusedRequest, RelayMessage};
use crate::state::Tunnel;

/// How long refusals are gathered into one note.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Examples kept per note.
const MAX_EXAMPLES: usize = 5;
/// Longest path kept in an example.
const MAX_PATH: usize = 200;

/// Refusals gathered for one tunnel's next note.
#[derive(Debug, Default)]
pub struct Pending {
    count: u64,
    examples: Vec<RefusedRequest>,
}

impl Pending {
    /// Adds one; true when it is the first of a new note (the caller schedules the flush).
    pub fn add(&mut self, refused: RefusedRequest) -> bool {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(refused);
        }
        self.count == 1
    }

    /// Adds a whole note (refusals gathered elsewhere); true when it starts
    /// a new note here.
    pub fn merge(&mut self, note: Refused) -> bool {
        let first = self.count == 0 && note.count > 0;
        // Counts from other nodes are input: never overflow.
        self.count = self.count.saturating_add(note.count);
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(note.examples.into_iter().take(room));
        first
    }

    /// The note, leaving this empty.
    pub fn take(&mut self) -> Option<Refused> {
        (self.count > 0).then(|| Refused {
            count: std::mem::take(&mut self.count),
            examples: std::mem::take(&mut self.examples),
            tunnel: None,
        })
    }
}

/// Cuts a path to [`MAX_PATH`] bytes on a character boundary.
pub fn short_path(path: &str) -> String {
    let mut end = path.len().min(MAX_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

/// Notes one refusal for `tunnel`; the first of a window schedules the note.
pub fn note(tunnel: &Arc<Tunnel>, pending: &Mutex<Pending>, refused: RefusedRequest) {
    note_many(
        tunnel,
        pending,
        Refused {
            count: 1,
            examples: vec![refused],
            tunnel: None,
        },
    );
}

/// Notes refusals gathered elsewhere (another node) for `tunnel`, in the
/// same window as its own.
pub fn note_many(tunnel: &Arc<Tunnel>, pending: &Mutex<Pending>, refused: Refused) {
    let first = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .merge(refused);
    if !first {
        return;
    }
    let tunnel = tunnel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(WINDOW).await;
        let note = tunnel.take_refusals();
        if let Some(mut note) = note {
            note.tunnel = Some(tunnel.name.clone());
            // Never wait on a busy agent for a courtesy note.
            let _ = tunnel
                .outbound
                .try_send(RelayMessage::Refused(note).encode());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(status: u16) -> RefusedRequest {
        RefusedRequest {
            method: "POST".into(),
            path: "/hook".into(),
            status,
            reason: "body_too_large".into(),
        }
    }

    #[test]
    fn refusals_coalesce_with_a_few_examples() {
        let mut p = Pending::default();
        assert!(p.add(one(413)));
        for _ in 0..9 {
            assert!(!p.add(one(413)));
        }
        let note = p.take().unwrap_or_else(|| panic!("a note"));
        assert_eq!(note.count, 10);
        assert_eq!(note.examples.len(), MAX_EXAMPLES);
        assert!(p.take().is_none());
        assert!(p.add(one(429)), "the next refusal starts a new note");
    }

    #[test]
    fn notes_from_elsewhere_merge_into_the_window() {
        let mut p = Pending::default();
        assert!(p.add(one(413)));
        let elsewhere = Refused {
            count: 7,
            examples: vec![one(401); MAX_EXAMPLES],
            tunnel: None,
        };
        assert!(!p.merge(elsewhere.clone()), "the window is already open");
        let note = p.take().unwrap_or_else(|| panic!("a note"));
        assert_eq!(note.count, 8);
        assert_eq!(note.examples.len(), MAX_EXAMPLES);
        assert_eq!(note.examples[0].status, 413);
        assert!(p.merge(elsewhere), "a merged note opens a window too");
        assert!(!p.merge(Refused {
            count: 0,
            examples: Vec::new(),
            tunnel: None,
        }));
    }

    #[test]
    fn paths_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = short_path(&long);
        assert!(cut.len() <= MAX_PATH);
        assert!(long.starts_with(&cut));
    }
}
