//! The bounded channel that carries [`AgentEvent`]s to the printer or the TUI.
//!
//! Serving never waits for a display: when the consumer falls behind and the
//! channel is full, events are dropped and counted, and the count is
//! delivered as a notice as soon as there is room again. Every exchange is
//! still in the history; only its live line is lost.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::event::AgentEvent;

/// Events buffered for a slow consumer before new ones are dropped.
pub const EVENT_CAPACITY: usize = 4096;

/// The sending side; cheap to share behind the pipeline's `Arc`.
#[derive(Debug)]
pub struct EventSender {
    tx: mpsc::Sender<AgentEvent>,
    /// Dropped since the last notice about drops got through.
    pending: AtomicU64,
    /// Dropped in total.
    total: AtomicU64,
}

/// A bounded event channel holding at most `capacity` events.
pub fn channel(capacity: usize) -> (EventSender, mpsc::Receiver<AgentEvent>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        EventSender {
            tx,
            pending: AtomicU64::new(0),
            total: AtomicU64::new(0),
        },
        rx,
    )
}

/// The notice that reports `n` dropped events.
pub fn dropped_notice(n: u64) -> AgentEvent {
    AgentEvent::Notice(format!(
        "{n} event{} not shown: the display fell behind (everything is in the history; `hooktunnel requests` lists it)",
        if n == 1 { " was" } else { "s were" }
    ))
}

impl EventSender {
    /// Queues `event` without waiting; drops it (counted) when the channel is full.
    pub fn send(&self, event: AgentEvent) {
        if !self.report_dropped() {
            self.dropped();
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.dropped();
        }
    }

    /// Queues the notice about events dropped since the last one, if any;
    /// false when the channel is still full. Call before stopping so a
    /// final count is not lost.
    pub fn report_dropped(&self) -> bool {
        let pending = self.pending.load(Ordering::Acquire);
        if pending == 0 {
            return true;
        }
        match self.tx.try_send(dropped_notice(pending)) {
            Ok(()) => {
                self.pending.fetch_sub(pending, Ordering::AcqRel);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => false,
            // Nobody listens: nothing to report to.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    fn dropped(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
    }

    /// Events dropped so far because the consumer was behind.
    pub fn dropped_total(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn notice(text: &str) -> AgentEvent {
        AgentEvent::Notice(text.to_owned())
    }

    #[test]
    fn a_full_channel_drops_and_then_reports_the_count() {
        let (tx, mut rx) = channel(2);
        for i in 0..5 {
            tx.send(notice(&i.to_string()));
        }
        assert_eq!(tx.dropped_total(), 3);
        assert_eq!(rx.try_recv().unwrap(), notice("0"));
        assert_eq!(rx.try_recv().unwrap(), notice("1"));
        assert!(rx.try_recv().is_err(), "only `capacity` events are held");
        // Room again: the count goes first, then the new event.
        tx.send(notice("5"));
        assert_eq!(rx.try_recv().unwrap(), dropped_notice(3));
        assert_eq!(rx.try_recv().unwrap(), notice("5"));
        // Reported once.
        tx.send(notice("6"));
        assert_eq!(rx.try_recv().unwrap(), notice("6"));
        assert_eq!(tx.dropped_total(), 3);
    }

    #[test]
    fn a_last_count_is_reported_on_request() {
        let (tx, mut rx) = channel(1);
        tx.send(notice("a"));
        tx.send(notice("b"));
        assert!(!tx.report_dropped(), "still full");
        assert_eq!(rx.try_recv().unwrap(), notice("a"));
        assert!(tx.report_dropped());
        assert_eq!(rx.try_recv().unwrap(), dropped_notice(1));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_closed_channel_is_not_an_error() {
        let (tx, rx) = channel(1);
        drop(rx);
        tx.send(notice("gone"));
        assert_eq!(tx.dropped_total(), 0);
    }
}
