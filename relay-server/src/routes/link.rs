//! A registered agent session's socket: control frames and HTTP/2 stream
//! bytes both ways, delivery of the tunnel's durable queue, and the goodbye
//! when the relay ends the session (see `connect.rs` for the handshake).

use std::sync::atomic::Ordering;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::connect::{SHUTDOWN_REASON, WebSocket};
use super::members::Member;
use crate::protocol::stream::{Inbound, classify};
use crate::protocol::{AgentMessage, ErrorCode, ErrorMessage, PING_INTERVAL, RelayMessage};
use crate::state::{AppState, Tunnel};
use crate::wire::{pump_in, write_batched};

/// Longest the relay spends saying goodbye (error and close frames) to an agent.
const GOODBYE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the relay ends a healthy session.
pub(super) enum Stop {
    /// The relay shuts down.
    Closing,
    /// Another session took the tunnel: with a message when another run
    /// took it over, without when the same run reconnected.
    Replaced(Option<String>),
}

/// Tells the agent why the session ends, then closes the socket.
async fn goodbye<S>(sink: &mut S, stop: Stop)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let frame = match stop {
        Stop::Closing => CloseFrame {
            code: CloseCode::Restart,
            reason: SHUTDOWN_REASON.into(),
        },
        Stop::Replaced(Some(message)) => {
            let note = RelayMessage::Error(ErrorMessage {
                code: ErrorCode::TakenOver,
                message,
            });
            let _ = timeout(GOODBYE_TIMEOUT, sink.send(Message::Binary(note.encode()))).await;
            CloseFrame {
                code: CloseCode::Policy,
                reason: "taken over".into(),
            }
        }
        // The same run reconnected: this link is dead already.
        Stop::Replaced(None) => return,
    };
    let _ = timeout(GOODBYE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

/// Sends everything queued for the tunnel, oldest first, then waits for more.
/// Entries stay queued until the agent acks them, so a dropped link loses nothing.
pub(super) async fn deliver_queue(
    state: &AppState,
    tunnel: &Tunnel,
    held: Option<&crate::cluster::session::Held>,
) {
    use crate::cluster::Fenced;
    const PAGE: usize = 64;
    let mut last = None;
    loop {
        let batch = match held {
            Some(held) => match held.pending(last, PAGE).await {
                Ok(Fenced::Done(batch)) => Ok(batch),
                Ok(Fenced::Refused) => {
                    tracing::info!(tunnel = %tunnel.name, "queue delivery refused by the lease fence");
                    return;
                }
                Err(e) => Err(e),
            },
            None => state.durable.pending(&tunnel.name, last, PAGE).await,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(tunnel = %tunnel.name, error = %e, "cannot read the queue; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let full_page = batch.len() == PAGE;
        for entry in batch {
            if tunnel.outbound.send(entry.frame).await.is_err() {
                return;
            }
            last = Some(entry.seq);
        }
        if !full_page {
            match held {
                // Other nodes queue too: they announce it (and a slow poll
                // catches a missed announcement).
                Some(held) => {
                    let woken = async {
                        tokio::select! {
                            () = tunnel.queued.notified() => {}
                            () = held.queued_elsewhere() => {}
                        }
                    };
                    let _ = timeout(crate::cluster::session::QUEUE_POLL, woken).await;
                }
                None => tunnel.queued.notified().await,
            }
        }
    }
}

/// The session's tunnel called `name`; without a name, its first.
fn member<'a>(members: &'a [Member], name: Option<&str>) -> Option<&'a Member> {
    match name {
        None => members.first(),
        Some(name) => members.iter().find(|m| m.tunnel.name == name),
    }
}

/// Moves frames both ways until either side goes away, or `stop` says why
/// the relay ends the session (then the agent is told).
pub(super) async fn pump(
    socket: WebSocket,
    state: &AppState,
    members: &[Member],
    mut outbound: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    pipe: tokio::io::DuplexStream,
    stop: impl std::future::Future<Output = Stop>,
) {
    let Some(first) = members.first() else {
        return;
    };
    let tunnel = &*first.tunnel;
    let (mut sink, mut stream) = socket.split();
    let (pipe_out, mut pipe_in) = tokio::io::split(pipe);
    let stopped = {
        let streams_out = async {
            if let Err(e) = crate::wire::pump_out(pipe_out, &tunnel.outbound).await {
                tracing::debug!(tunnel = %tunnel.name, error = %e, "stream pipe closed");
            }
        };
        let writer = async {
            if let Err(e) = write_batched(&mut sink, &mut outbound, PING_INTERVAL).await {
                tracing::debug!(tunnel = %tunnel.name, error = %e, "agent socket write failed");
            }
        };
        let reader = async {
            let mut last_seen = tokio::time::Instant::now();
            loop {
                let next = timeout(PING_INTERVAL * 2 + PING_INTERVAL / 2, stream.next()).await;
                let msg = match next {
                    Ok(Some(Ok(msg))) => msg,
                    Ok(_) => break,
                    Err(_) => {
                        tracing::warn!(tunnel = %tunnel.name, idle = ?last_seen.elapsed(), "agent silent for two ping intervals; dropping");
                        break;
                    }
                };
                last_seen = tokio::time::Instant::now();
                for m in members {
                    m.tunnel.heard_from();
                }
                let frame = match msg {
                    Message::Binary(frame) => match classify(frame) {
                        Inbound::Stream(h2) => {
                            if pump_in(&mut pipe_in, &h2).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Inbound::Control(frame) => frame,
                    },
                    Message::Close(_) => break,
                    _ => continue,
                };
                {
                    match AgentMessage::decode_bytes(&frame) {
                        Ok(AgentMessage::Response(_)) => {
                            tracing::debug!(tunnel = %tunnel.name, "a v1 response frame on a v2 session ignored");
                        }
                        Ok(AgentMessage::Ack(ack)) => {
                            // Each tunnel acks into its own queue.
                            let Some(Member { tunnel, held, .. }) =
                                member(members, ack.tunnel.as_deref())
                            else {
                                tracing::warn!(tunnel = ?ack.tunnel, id = %ack.id, "ack for a tunnel not on this session ignored");
                                continue;
                            };
                            let acked = match held {
                                Some(held) => held.ack(ack.id).await.map(|fenced| match fenced {
                                    crate::cluster::Fenced::Done(acked) => acked,
                                    crate::cluster::Fenced::Refused => {
                                        tracing::warn!(tunnel = %tunnel.name, id = %ack.id, "ack refused by the lease fence: a newer session owns the tunnel");
                                        false
                                    }
                                }),
                                None => state.durable.ack(&tunnel.name, ack.id).await,
                            };
                            match acked {
                                Ok(true) => {
                                    state.metrics.acked.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(false) => {
                                    tracing::debug!(tunnel = %tunnel.name, id = %ack.id, "ack for an id not queued here ignored")
                                }
                                Err(e) => {
                                    tracing::error!(tunnel = %tunnel.name, error = %e, "cannot delete an acked entry; it will be redelivered")
                                }
                            }
                        }
                        Ok(AgentMessage::Error(e)) => {
                            tracing::warn!(tunnel = %tunnel.name, code = ?e.code, message = ?e.message, "agent reported an error")
                        }
                        Ok(AgentMessage::Hello(_) | AgentMessage::Release(_)) => {
                            tracing::debug!(tunnel = %tunnel.name, "handshake message mid-session ignored")
                        }
                        Err(e) => {
                            tracing::warn!(tunnel = %tunnel.name, error = ?e, "malformed frame from agent ignored")
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = writer => None,
            () = reader => None,
            () = streams_out => None,
            why = stop => Some(why),
        }
    };
    if let Some(why) = stopped {
        goodbye(&mut sink, why).await;
    }
}
