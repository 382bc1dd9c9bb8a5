//! Recording a body up to a limit while it streams past.
//!
//! (Placeholder until the capture-limit work lands; same API.)

use bytes::{Bytes, BytesMut};
use sha2::{Digest as _, Sha256};

/// Default bytes of each body kept in the history.
pub const DEFAULT_CAPTURE_MAX: usize = 10 * 1024 * 1024;

/// A body being captured.
pub struct Capture {
    limit: usize,
    kept: BytesMut,
    total: u64,
    hasher: Sha256,
}

/// What was dropped from a body longer than the limit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Truncation {
    /// The whole body's length.
    pub total_bytes: u64,
    /// SHA-256 of the whole body, lowercase hex.
    pub sha256: String,
    /// The limit it was cut at.
    pub limit: u64,
}

impl Capture {
    /// Keeps at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: BytesMut::new(),
            total: 0,
            hasher: Sha256::new(),
        }
    }

    /// Takes the next chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.total += chunk.len() as u64;
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    /// The kept bytes, and what was dropped when anything was.
    pub fn finish(self) -> (Bytes, Option<Truncation>) {
        let truncated = self.total > self.kept.len() as u64;
        let info = truncated.then(|| Truncation {
            total_bytes: self.total,
            sha256: hex::encode(self.hasher.finalize()),
            limit: self.limit as u64,
        });
        (self.kept.freeze(), info)
    }

    /// Captures a whole body at once.
    pub fn whole(body: &Bytes, limit: usize) -> (Bytes, Option<Truncation>) {
        if body.len() <= limit {
            return (body.clone(), None);
        }
        let mut capture = Self::new(limit);
        capture.push(body);
        capture.finish()
    }
}
