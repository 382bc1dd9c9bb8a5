//! Delays between reconnect attempts: exponential with jitter, capped.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

/// First retry delay.
pub const MIN_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// An endless sequence of reconnect delays.
pub fn delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Delays between attempts to deliver a durable request to a failing local app.
pub fn retry_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let d: Vec<Duration> = delays().take(20).collect();
        assert_eq!(d.len(), 20);
        assert!(d[0] >= MIN_DELAY && d[0] <= MIN_DELAY * 2, "{:?}", d[0]);
        assert!(d[4] > d[0]);
        // Jitter adds at most one extra min delay on top of the cap.
        assert!(d.iter().all(|x| *x <= MAX_DELAY + MAX_DELAY), "{d:?}");
        assert!(d[19] >= MAX_DELAY);
    }
}
