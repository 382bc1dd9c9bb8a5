//! Who may take how much of a tunnel's offline queue: pure arithmetic, so
//! the policy is tested apart from storage.
//!
//! - the whole queue: at most `max_count` entries and `max_bytes` bytes;
//! - one client address (IPv6: per /64): at most a quarter of each
//!   ([`CLIENT_SHARE`]; at least [`MIN_CLIENT_COUNT`] entries), so one
//!   sender cannot fill it for the others;
//! - the last eighth of `max_bytes` ([`SMALL_RESERVE`]) only takes small
//!   entries (at most [`SMALL_ENTRY`] bytes), so large bodies cannot crowd
//!   out ordinary webhooks.
//!
//! (The per-entry cap, `--queue-max-entry`, is enforced before the body is
//! read: 413.)

use super::QueueLimits;

/// One client may hold `1/CLIENT_SHARE` of the queue's count and bytes.
pub const CLIENT_SHARE: u64 = 4;
/// A client may always queue this many entries (within the total).
pub const MIN_CLIENT_COUNT: u64 = 4;
/// `1/SMALL_RESERVE` of the queue's bytes is kept for small entries.
pub const SMALL_RESERVE: u64 = 8;
/// Entries up to this size (encoded frame) count as small.
pub const SMALL_ENTRY: u64 = 64 * 1024;

/// What the queue (and this client's part of it) holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Entries for the tunnel.
    pub count: u64,
    /// Bytes for the tunnel.
    pub bytes: u64,
    /// Entries from this client.
    pub client_count: u64,
    /// Bytes from this client.
    pub client_bytes: u64,
}

/// `Ok` when an entry of `size` bytes may join, else why not (for the 507).
pub fn admit(limits: &QueueLimits, usage: Usage, size: u64) -> Result<(), String> {
    if usage.count >= limits.max_count {
        return Err(format!(
            "{} requests waiting, limit {}",
            usage.count, limits.max_count
        ));
    }
    if usage.bytes + size > limits.max_bytes {
        return Err(format!(
            "{} bytes waiting, limit {}",
            usage.bytes, limits.max_bytes
        ));
    }
    let count_share = (limits.max_count / CLIENT_SHARE).max(MIN_CLIENT_COUNT);
    if usage.client_count >= count_share {
        return Err(format!(
            "your address already has {} requests waiting, its share is {count_share}",
            usage.client_count
        ));
    }
    let bytes_share = limits.max_bytes / CLIENT_SHARE;
    if usage.client_bytes + size > bytes_share {
        return Err(format!(
            "your address already has {} bytes waiting, its share is {bytes_share}",
            usage.client_bytes
        ));
    }
    let open_to_large = limits.max_bytes - limits.max_bytes / SMALL_RESERVE;
    if size > SMALL_ENTRY && usage.bytes + size > open_to_large {
        return Err(format!(
            "the rest of the queue ({} bytes) is kept for bodies up to {SMALL_ENTRY} bytes",
            limits.max_bytes - usage.bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    const LIMITS: QueueLimits = QueueLimits {
        max_count: 100,
        max_bytes: 8 * 1024 * 1024,
        max_age: Duration::from_secs(60),
    };

    #[test]
    fn totals_then_client_shares_then_the_small_reserve() {
        assert!(admit(&LIMITS, Usage::default(), 10).is_ok());
        let full = Usage {
            count: 100,
            ..Usage::default()
        };
        assert!(admit(&LIMITS, full, 10).unwrap_err().contains("limit 100"));
        let one_client = Usage {
            count: 25,
            client_count: 25,
            ..Usage::default()
        };
        assert!(
            admit(&LIMITS, one_client, 10)
                .unwrap_err()
                .contains("share is 25")
        );
        // Another client still gets in.
        let others = Usage {
            count: 25,
            ..Usage::default()
        };
        assert!(admit(&LIMITS, others, 10).is_ok());
        let heavy = Usage {
            bytes: 2 * 1024 * 1024,
            client_bytes: 2 * 1024 * 1024,
            ..Usage::default()
        };
        assert!(admit(&LIMITS, heavy, 1).unwrap_err().contains("share"));
        // 7 MiB used by many clients: a 1 MiB body would eat the reserve, a small one not.
        let nearly = Usage {
            bytes: 7 * 1024 * 1024,
            ..Usage::default()
        };
        assert!(
            admit(&LIMITS, nearly, 1024 * 1024)
                .unwrap_err()
                .contains("kept for")
        );
        assert!(admit(&LIMITS, nearly, 1024).is_ok());
    }

    #[test]
    fn tiny_limits_still_admit_one() {
        let tiny = QueueLimits {
            max_count: 1,
            max_bytes: 100,
            max_age: Duration::from_secs(1),
        };
        assert!(admit(&tiny, Usage::default(), 10).is_ok());
    }
}
