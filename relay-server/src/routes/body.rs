//! Reading a sender's body under the relay's limits: size (413), total time
//! (408) and a minimum rate (408), so a trickled body cannot hold an
//! in-flight slot for the whole body timeout.

use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tokio::time::Instant;

use crate::error::RelayError;

/// The bounds one body is read under.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest body accepted.
    pub max: usize,
    /// Time for the whole body.
    pub timeout: Duration,
    /// Slowest average rate (bytes/s) accepted once `grace` has passed; 0 is off.
    pub min_rate: u64,
    /// Time before `min_rate` applies.
    pub grace: Duration,
}

/// The declared `Content-Length`, when there is exactly one valid value.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// When a body that has delivered `received` bytes since `start` becomes too
/// slow: after the grace period it must keep an average of `min_rate`.
pub fn rate_deadline(start: Instant, received: usize, limits: &BodyLimits) -> Option<Instant> {
    if limits.min_rate == 0 {
        return None;
    }
    let earned_ms = (received as u64).saturating_mul(1000) / limits.min_rate;
    start
        .checked_add(limits.grace)?
        .checked_add(Duration::from_millis(earned_ms))
}

/// Reads the body: 413 past `max` (declared or streamed; nothing past the
/// limit is buffered), 408 when it is late or too slow.
pub async fn read_body(
    limits: BodyLimits,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<Bytes, RelayError> {
    if declared_length(headers).is_some_and(|n| n > limits.max as u64) {
        // Refused before reading, so `Expect: 100-continue` senders never send it.
        return Err(RelayError::BodyTooLarge(limits.max));
    }
    let start = Instant::now();
    let overall = start + limits.timeout;
    let mut buf = BytesMut::new();
    loop {
        let (deadline, slow) = match rate_deadline(start, buf.len(), &limits) {
            Some(d) if d < overall => (d, true),
            _ => (overall, false),
        };
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) if slow => return Err(RelayError::BodyTooSlow(limits.min_rate)),
            Err(_) => return Err(RelayError::BodyTimeout(limits.timeout)),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(RelayError::BadBody),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limits.max {
                return Err(RelayError::BodyTooLarge(limits.max));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_deadline_grows_with_what_arrived() {
        let limits = BodyLimits {
            max: 100,
            timeout: Duration::from_secs(60),
            min_rate: 1000,
            grace: Duration::from_secs(5),
        };
        let start = Instant::now();
        assert_eq!(
            rate_deadline(start, 0, &limits),
            Some(start + Duration::from_secs(5))
        );
        assert_eq!(
            rate_deadline(start, 2000, &limits),
            Some(start + Duration::from_secs(7))
        );
        let off = BodyLimits {
            min_rate: 0,
            ..limits
        };
        assert_eq!(rate_deadline(start, 10, &off), None);
    }
}
