//! What happens to one request: forward, answer the relay, record, report.
//!
//! Live proxy requests run concurrently ([`Pipeline::handle`]). Requests the
//! relay holds durably (`needs_ack`: offline queue, ack mode) go through one
//! ordered worker ([`Pipeline::run_ordered`]) so they reach the local app in
//! arrival order and exactly once: an id already in the store is acked and
//! skipped, and the ack is sent only after the exchange is committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use hooktunnel_protocol::{self as protocol, Ack, AgentMessage};

use crate::agent::events::EventSender;
use crate::agent::seen::SeenIds;
use crate::capture::Capture;
use crate::event::AgentEvent;
use crate::exchange::Exchange;
use crate::forward::{Forwarded, Forwarder};
use crate::rules::apply::{Routed, RuleSet};
use crate::store::writer::StoreWriter;
use crate::verify::{self, SecretSpec};

/// A durable delivery waiting for the ordered worker, with the socket to ack on.
pub type OrderedJob = (protocol::Request, mpsc::Sender<Message>);

/// Durable deliveries read from the relay but not yet delivered.
pub const ORDERED_CAPACITY: usize = 64;

/// The channel feeding [`Pipeline::run_ordered`].
pub fn ordered_channel() -> (mpsc::Sender<OrderedJob>, mpsc::Receiver<OrderedJob>) {
    mpsc::channel(ORDERED_CAPACITY)
}

/// Everything a request passes through on the agent, shared by all tasks.
pub struct Pipeline {
    /// The local app's client.
    pub forwarder: Forwarder,
    /// Where exchanges are recorded.
    pub store: StoreWriter,
    /// Consumers of agent events (TUI or printer); bounded, never waits.
    pub events: Arc<EventSender>,
    /// Tunnel name, recorded with each exchange.
    pub tunnel: std::sync::RwLock<String>,
    /// Signature secrets; each exchange gets a verdict when any are set.
    pub verify: Vec<SecretSpec>,
    /// Durable deliveries, processed one at a time in order. Bounded: when
    /// the worker is behind, the session stops reading from the relay, which
    /// keeps the rest queued there instead of in this process's memory.
    pub ordered: mpsc::Sender<OrderedJob>,
    /// Attempts for a durable delivery whose local app fails (5xx or unreachable).
    pub max_attempts: u32,
    /// Routes, header edits, mocks and faults (`--route`, `--inject`, …).
    pub rules: RuleSet,
    /// Body bytes the history keeps per body (`--capture-max`); beyond it a
    /// body is recorded as a [`crate::capture::Truncation`].
    pub capture_max: usize,
    /// Live streams in progress, so a stopping agent can let them finish.
    pub live: tokio_util::task::TaskTracker,
}

impl Pipeline {
    /// The tunnel's name as the relay granted it.
    pub fn tunnel_name(&self) -> String {
        self.tunnel.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// True when `name` is given and is this tunnel's (compared in place:
    /// this runs for every request).
    pub fn is_named_as(&self, name: Option<&str>) -> bool {
        name.is_some_and(|name| self.tunnel.read().is_ok_and(|t| *t == name))
    }

    /// Runs durable deliveries one by one until the channel closes or `stop`
    /// fires; a delivery in progress is finished first, so stopping never
    /// leaves a request forwarded but unrecorded.
    pub async fn run_ordered(
        &self,
        mut jobs: mpsc::Receiver<OrderedJob>,
        db: PathBuf,
        stop: CancellationToken,
    ) {
        let mut seen = match SeenIds::open(db).await {
            Ok(seen) => Some(seen),
            Err(e) => {
                self.events.send(AgentEvent::Notice(format!(
                    "cannot open the history to skip duplicates ({e}); redelivered requests may reach the app twice"
                )));
                None
            }
        };
        loop {
            let (request, out) = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let id = request.id;
            // Acked into the queue it came from (one session may carry several).
            let tunnel = request.tunnel.clone();
            let already = match seen.as_mut() {
                Some(seen) => seen.contains(id).await,
                None => false,
            };
            if !already {
                let (forwarded, attempts) = self.forward_with_retries(&request).await;
                let exchange = self.exchange(request, forwarded, attempts);
                let summary = exchange.summary();
                if let Err(e) = self.store.record_durably(exchange).await {
                    // Without a stored copy an ack could lose the request: leave it queued.
                    self.events.send(AgentEvent::Notice(format!(
                        "could not store {id} ({e}); the relay keeps it and will deliver it again"
                    )));
                    continue;
                }
                self.events.send(AgentEvent::Exchange(summary));
            }
            let ack = AgentMessage::Ack(Ack { id, tunnel });
            let _ = out.send(Message::Binary(ack.encode())).await;
        }
    }

    async fn forward(&self, request: &protocol::Request) -> Routed {
        // A frame that breaks the protocol is answered at once, never passed
        // on (a short body under a larger Content-Length would hang the app).
        if let Err(violation) = protocol::check_request(request) {
            let message = format!("the relay sent an invalid request: {violation}");
            return Routed {
                forwarded: Forwarded {
                    response: crate::forward::own_answer(
                        502,
                        protocol::HttpErrorCode::ProtocolError,
                        &message,
                    ),
                    error: Some(message),
                    duration_us: 0,
                },
                dropped: false,
            };
        }
        // Routes, header edits, mocks and faults (issue 17): one call.
        self.rules.forward(&self.forwarder, request).await
    }

    /// Retries a failing local app with exponential backoff and jitter,
    /// visibly; returns the last outcome and how many attempts it took.
    async fn forward_with_retries(&self, request: &protocol::Request) -> (Forwarded, u32) {
        let mut delays = crate::agent::reconnect::retry_delays();
        let mut attempt = 1;
        loop {
            let mut forwarded = self.forward(request).await.forwarded;
            let failed = forwarded.error.is_some() || forwarded.response.status >= 500;
            // Sending an invalid frame again cannot make it valid.
            if !failed || protocol::check_request(request).is_err() {
                return (forwarded, attempt);
            }
            let why = forwarded
                .error
                .clone()
                .unwrap_or_else(|| format!("status {}", forwarded.response.status));
            if attempt >= self.max_attempts {
                self.events.send(AgentEvent::Notice(format!(
                    "{} {} failed {attempt} times ({why}); recorded as failed — `hooktunnel replay {}` sends it again",
                    request.method, request.target, request.id
                )));
                // Marked, so `requests --status error` finds deliveries that
                // gave up even when the app's own 5xx was the last answer.
                forwarded.error = Some(format!("delivery gave up after {attempt} attempts: {why}"));
                return (forwarded, attempt);
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(30));
            self.events.send(AgentEvent::Notice(format!(
                "{} {} failed ({why}); retry {attempt}/{} in {:.1}s",
                request.method,
                request.target,
                self.max_attempts - 1,
                delay.as_secs_f64()
            )));
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The exchange for a streamed request, whose bodies may have been cut
    /// at the capture limit.
    pub(super) fn exchange_streamed(
        &self,
        request: protocol::Request,
        forwarded: Forwarded,
        request_truncated: Option<crate::capture::Truncation>,
        response_truncated: Option<crate::capture::Truncation>,
    ) -> Exchange {
        let cut = request_truncated.is_some();
        // The bodies arrive already cut, so `exchange` finds nothing more to cut.
        let mut exchange = self.exchange(request, forwarded, 1);
        if cut {
            // A verdict over part of a body would be wrong either way.
            exchange.signature = None;
        }
        exchange.request_truncated = request_truncated.or(exchange.request_truncated.take());
        if let Some(r) = exchange.response.as_mut() {
            r.truncated = response_truncated.or(r.truncated.take());
        }
        exchange
    }

    fn exchange(
        &self,
        request: protocol::Request,
        forwarded: Forwarded,
        attempts: u32,
    ) -> Exchange {
        // Verdicts look at the bytes as received; forwarding never changes them.
        let signature = verify::verdict(
            &self.verify,
            &request.headers,
            &request.body,
            request.public_url.as_deref(),
            crate::clock::now_secs(),
        );
        let tunnel = self.tunnel_name();
        // The route's target (issue 17), else the default one.
        let target = self
            .rules
            .target_for(&request.method, &request.target, &request.headers)
            .unwrap_or_else(|| self.forwarder.target().base_url());
        let (request_body, request_truncated) = Capture::whole(&request.body, self.capture_max);
        let mut response = forwarded.response;
        (response.body, response.truncated) = Capture::whole(&response.body, self.capture_max);
        Exchange {
            id: request.id,
            tunnel,
            received_at_ms: request.received_at_ms,
            method: request.method,
            path: request.target,
            target,
            request_headers: request.headers,
            request_body,
            request_truncated,
            capture_degraded: false,
            response: Some(response),
            duration_us: forwarded.duration_us,
            error: forwarded.error,
            replay_of: None,
            queued: request.queued,
            peer: request.peer,
            public_url: request.public_url,
            signature,
            attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job(out: &mpsc::Sender<Message>) -> OrderedJob {
        let request = protocol::Request {
            id: ulid::Ulid::generate(),
            method: "POST".into(),
            target: "/".into(),
            headers: Vec::new(),
            peer: None,
            received_at_ms: 0,
            public_url: None,
            queued: true,
            needs_ack: true,
            tunnel: None,
            body: bytes::Bytes::new(),
        };
        (request, out.clone())
    }

    #[tokio::test]
    async fn durable_deliveries_wait_for_the_worker_instead_of_piling_up() {
        let (out, _socket) = mpsc::channel(1);
        let (tx, mut rx) = ordered_channel();
        for _ in 0..ORDERED_CAPACITY {
            tx.try_send(job(&out)).unwrap();
        }
        // The session's reader waits here, leaving the rest at the relay.
        let waiting = tokio::time::timeout(Duration::from_millis(50), tx.send(job(&out))).await;
        assert!(waiting.is_err(), "a full queue must make the reader wait");
        rx.recv().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.send(job(&out)))
            .await
            .unwrap()
            .unwrap();
    }
}
