//! Guards at the accept loop: a cap on connections per client address,
//! back-off on accept errors (out of file descriptors) that neither spins
//! nor floods the log, and the soft `nofile` limit raised at start.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// First pause after a failed accept; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "accept failed" log line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open connections per client address (a [`crate::limit::ip_key`]).
pub struct ConnLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; released on drop.
pub struct ConnHeld {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl Drop for ConnHeld {
    fn drop(&mut self) {
        let mut open = lock(&self.limiter.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnLimiter {
    /// A limiter allowing `max` open connections per address.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a connection from `ip`, or `None` when it already holds `max`.
    pub fn try_hold(self: &Arc<Self>, ip: IpAddr) -> Option<ConnHeld> {
        let mut open = lock(&self.open);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnHeld {
            limiter: self.clone(),
            ip,
        })
    }
}

/// What to do after accept errors: pause (doubling) and log rarely.
pub struct AcceptBackoff {
    delay: Duration,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: FIRST_BACKOFF,
            unlogged: 0,
            last_log: None,
        }
    }
}

impl AcceptBackoff {
    /// Records a failed accept at `now`: how long to pause, and the number
    /// of failures to log now (`None` when the log line is not due yet).
    pub fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL);
        let report = due.then(|| {
            self.last_log = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        let pause = self.delay;
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
        (pause, report)
    }

    /// A successful accept resets the pause.
    pub fn succeeded(&mut self) {
        self.delay = FIRST_BACKOFF;
    }
}

/// Raises the soft open-files limit to the hard limit (once per process), so
/// the per-address cap, not the default 1024, decides who gets connections.
pub fn raise_nofile_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => tracing::debug!(limit, "open-files limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_released() {
        let limiter = ConnLimiter::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limiter.try_hold(a).unwrap();
        let _second = limiter.try_hold(a).unwrap();
        assert!(limiter.try_hold(a).is_none());
        assert!(limiter.try_hold(b).is_some());
        drop(first);
        assert!(limiter.try_hold(a).is_some());
    }

    #[test]
    fn failures_back_off_and_log_once_per_interval() {
        let mut backoff = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.failed(t0), (FIRST_BACKOFF, Some(1)));
        let mut logged = 0;
        let mut pause = Duration::ZERO;
        for i in 1..100 {
            let (p, report) = backoff.failed(t0 + Duration::from_millis(i));
            pause = p;
            logged += u64::from(report.is_some());
        }
        assert_eq!(logged, 0, "no log line within the interval");
        assert_eq!(pause, MAX_BACKOFF);
        let (_, report) = backoff.failed(t0 + LOG_INTERVAL);
        assert_eq!(report, Some(100));
        backoff.succeeded();
        assert_eq!(backoff.failed(t0 + LOG_INTERVAL).0, FIRST_BACKOFF);
    }
}
