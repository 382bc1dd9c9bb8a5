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

/// How a streamed body was cut; the relay's answer to its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Past the size limit (413).
    TooLarge(usize),
    /// Slower than the minimum rate (408).
    TooSlow(u64),
    /// Nothing arrived for the body timeout (408).
    Idle(Duration),
    /// The sender's connection failed or its chunked framing was bad (400).
    Broken,
}

impl From<Cut> for RelayError {
    fn from(cut: Cut) -> Self {
        match cut {
            Cut::TooLarge(max) => RelayError::BodyTooLarge(max),
            Cut::TooSlow(rate) => RelayError::BodyTooSlow(rate),
            Cut::Idle(timeout) => RelayError::BodyTimeout(timeout),
            Cut::Broken => RelayError::BadBody,
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", RelayError::from(*self))
    }
}

impl std::error::Error for Cut {}

/// Where a [`Streamed`] body records how it ended, for the handler that
/// answers the sender: why it was cut, or when it was complete.
#[derive(Clone, Debug, Default)]
pub struct Verdict(std::sync::Arc<std::sync::Mutex<Outcome>>);

#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    cut: Option<Cut>,
    ended: Option<Instant>,
}

impl Verdict {
    /// A verdict for a request with no body to stream (an upgrade): ended now.
    pub fn ended_now() -> Self {
        let verdict = Self::default();
        verdict.lock().ended = Some(Instant::now());
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the body was cut, if it was.
    pub fn cut(&self) -> Option<Cut> {
        self.lock().cut
    }

    /// How long ago the body arrived in full; `None` while it streams.
    pub fn ended_for(&self) -> Option<Duration> {
        self.lock().ended.map(|at| at.elapsed())
    }

    fn set(&self, cut: Cut) {
        self.lock().cut = Some(cut);
    }

    fn complete(&self) {
        self.lock().ended.get_or_insert_with(Instant::now);
    }
}

/// A sender's body passed on as it arrives, under the same limits as
/// [`read_body`]: past `max` bytes, or slower than the minimum rate, it
/// fails (and says why in its [`Verdict`]) instead of being held.
///
/// Only time spent waiting *for the sender* counts: while the agent or the
/// app is not reading (its window is full, a breakpoint in the handler) the
/// body is not polled, and that time is not the sender's fault. For a
/// streamed body the total-time limit becomes an idle limit, so a large
/// upload may take as long as it needs while it keeps the minimum rate.
pub struct Streamed {
    inner: Body,
    limits: BodyLimits,
    received: usize,
    /// Time spent waiting for the sender so far.
    waited: Duration,
    /// Since when the current wait for the sender lasts.
    waiting_since: Option<Instant>,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    slow: bool,
    verdict: Verdict,
    ended: bool,
}

impl Streamed {
    /// Wraps `inner`; `verdict` learns why it was cut.
    pub fn new(inner: Body, limits: BodyLimits, verdict: Verdict) -> Self {
        use hyper::body::Body as _;
        if inner.is_end_stream() {
            verdict.complete();
        }
        Self {
            inner,
            limits,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(limits.timeout)),
            slow: false,
            verdict,
            ended: false,
        }
    }

    /// Starts a wait for the sender: the deadline is the idle limit, or the
    /// point where the waiting time so far passes what the minimum rate
    /// allows for what has arrived.
    fn start_waiting(&mut self) {
        let now = Instant::now();
        self.waiting_since = Some(now);
        let idle = self.limits.timeout;
        let allowed = (self.received as u64)
            .saturating_mul(1000)
            .checked_div(self.limits.min_rate)
            .map(|earned_ms| {
                (self.limits.grace + Duration::from_millis(earned_ms)).saturating_sub(self.waited)
            });
        let (wait, slow) = match allowed {
            Some(left) if left < idle => (left, true),
            _ => (idle, false),
        };
        self.slow = slow;
        self.timer.as_mut().reset(now + wait);
    }

    fn stop_waiting(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }

    fn cut(&mut self, cut: Cut) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Cut>>> {
        self.ended = true;
        self.verdict.set(cut);
        std::task::Poll::Ready(Some(Err(cut)))
    }
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Cut>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stop_waiting();
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len());
                    if this.received > this.limits.max {
                        return this.cut(Cut::TooLarge(this.limits.max));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => this.cut(Cut::Broken),
            Poll::Ready(None) => {
                this.ended = true;
                this.verdict.complete();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    this.start_waiting();
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) if this.slow => this.cut(Cut::TooSlow(this.limits.min_rate)),
                    Poll::Ready(()) => this.cut(Cut::Idle(this.limits.timeout)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // hyper may stop polling a body that says it is done, so the verdict
        // learns here too that nothing more comes.
        let done = self.ended || self.inner.is_end_stream();
        if done && self.verdict.cut().is_none() {
            self.verdict.complete();
        }
        done
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        (tx, Body::from_stream(stream))
    }

    const LIMITS: BodyLimits = BodyLimits {
        max: 1 << 20,
        timeout: Duration::from_secs(60),
        min_rate: 1000,
        grace: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn a_sender_below_the_minimum_rate_is_cut() {
        let (tx, body) = channel_body();
        let verdict = Verdict::default();
        let mut body = Streamed::new(body, LIMITS, verdict.clone());
        let started = Instant::now();
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err, Cut::TooSlow(1000));
        assert_eq!(verdict.cut(), Some(Cut::TooSlow(1000)));
        // The grace period, plus a millisecond earned by the one byte.
        assert_eq!(started.elapsed(), Duration::from_millis(5001));
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_is_not_reading_is_not_the_senders() {
        let (tx, body) = channel_body();
        let verdict = Verdict::default();
        let mut body = Streamed::new(body, LIMITS, verdict.clone());
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // The app sits on a breakpoint for a minute; the sender sends meanwhile.
        tokio::time::sleep(Duration::from_secs(60)).await;
        tx.send(Bytes::from_static(b"y")).await.unwrap();
        assert!(
            body.frame().await.unwrap().is_ok(),
            "no cut for the reader's pause"
        );
        drop(tx);
        assert!(body.frame().await.is_none());
        assert_eq!(verdict.cut(), None);
        assert!(verdict.ended_for().is_some());
    }

    #[tokio::test]
    async fn a_streamed_body_past_the_limit_is_cut_as_it_passes() {
        let (tx, body) = channel_body();
        let limits = BodyLimits { max: 10, ..LIMITS };
        let mut body = Streamed::new(body, limits, Verdict::default());
        tx.send(Bytes::from_static(b"0123456789")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tx.send(Bytes::from_static(b"!")).await.unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap_err(), Cut::TooLarge(10));
    }
}
