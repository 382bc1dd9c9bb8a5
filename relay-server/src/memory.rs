//! The relay-wide budget for body bytes held in memory (`--memory-budget`).
//!
//! Live streams are bounded by HTTP/2 flow control, so each reserves what it
//! can hold at most (a window each way) for its lifetime; a queued request,
//! read whole before it is stored, reserves its size. When the budget is
//! spent the relay answers `503 relay_busy` with `Retry-After` instead of
//! growing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes a live stream may hold at the relay: the answer's flow-control
/// window (received, not yet read by the sender) plus the request body
/// hyper buffers before sending it to the agent.
pub const LIVE_STREAM_BYTES: u64 =
    crate::protocol::stream::STREAM_WINDOW as u64 + crate::protocol::stream::SEND_BUFFER as u64;

/// The budget shared by every request of one relay.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or `None` when that would pass the limit.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|n| *n <= self.limit)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_return_on_drop() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(41).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(budget.try_reserve(60).is_some());
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.try_reserve(u64::MAX).is_none());
    }
}
