//! Keeps a tunnel up: serves on a session and, when the link drops,
//! reconnects with backoff until cancelled or refused for good. Every change
//! is reported as an [`AgentEvent::Connection`].

use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::{AgentOptions, Pipeline, Session, Tunnels, reconnect};
use crate::event::{AgentEvent, ConnectionState};

/// Serves on `session`, reconnecting with backoff until `cancel` fires
/// (`Ok`) or the relay refuses the tunnel for good (`Err`).
pub async fn supervise(
    mut session: Session,
    opts: &AgentOptions,
    hint: &str,
    tunnels: Tunnels,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let pipeline = tunnels.first().clone();
    // The relay moves to the next of the cluster's on each failed attempt.
    let mut opts = opts.clone();
    loop {
        let lost = match session.run(tunnels.clone(), cancel.clone()).await {
            Ok(()) => return Ok(()),
            // Taken over by another run: coming back would take it back.
            Err(e) if e.is_fatal() => return Err(gone_offline(&pipeline, e)),
            Err(e) => e,
        };
        let mut reason = lost.to_string();
        // Several relays (one cluster): the one that just failed us is the
        // least likely to answer; start with the next (same tunnel URL).
        if opts.next_relay() {
            tracing::info!(next = %opts.relay, "reconnecting through the next relay");
        }
        let mut attempt = 0;
        let mut delays = reconnect::delays();
        session = loop {
            attempt += 1;
            let delay = delays.next().unwrap_or(reconnect::MAX_DELAY);
            pipeline
                .events
                .send(AgentEvent::Connection(ConnectionState::Reconnecting {
                    attempt,
                    retry_at: SystemTime::now() + delay,
                    reason: reason.clone(),
                }));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return Ok(()),
            }
            match super::connect(&opts, hint).await {
                Ok(s) => break s,
                Err(e) if e.is_fatal() => return Err(gone_offline(&pipeline, e)),
                Err(e) => {
                    reason = e.to_string();
                    if opts.next_relay() {
                        tracing::info!(next = %opts.relay, "trying the next relay");
                    }
                }
            }
        };
        tunnels.rename(&session.welcome);
        pipeline
            .events
            .send(AgentEvent::Connection(ConnectionState::Online));
    }
}

/// Reports a fatal error as the tunnel going offline, for the caller to return.
fn gone_offline(pipeline: &Pipeline, e: super::AgentError) -> anyhow::Error {
    pipeline
        .events
        .send(AgentEvent::Connection(ConnectionState::Offline(
            e.to_string(),
        )));
    e.into()
}
