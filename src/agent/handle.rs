//! What happens to one request: forward, answer the relay, record, report.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use hooktunnel_relay::protocol::{self, AgentMessage};

use crate::event::AgentEvent;
use crate::exchange::Exchange;
use crate::forward::{Forwarder, Outgoing};
use crate::store::writer::StoreWriter;
use crate::verify::{self, SecretSpec};

/// Everything a request passes through on the agent, shared by all tasks.
pub struct Pipeline {
    /// The local app's client.
    pub forwarder: Forwarder,
    /// Where exchanges are recorded.
    pub store: StoreWriter,
    /// Consumers of agent events (TUI or printer).
    pub events: mpsc::UnboundedSender<AgentEvent>,
    /// Tunnel name, recorded with each exchange.
    pub tunnel: std::sync::RwLock<String>,
    /// Signature secrets; each exchange gets a verdict when any are set.
    pub verify: Vec<SecretSpec>,
}

impl Pipeline {
    /// Forwards one request, answers the relay and records the exchange.
    pub async fn handle(&self, request: protocol::Request, out: mpsc::Sender<Message>) {
        // Verdicts look at the bytes as received; forwarding never changes them.
        let signature = verify::verdict(
            &self.verify,
            &request.headers,
            &request.body,
            request.public_url.as_deref(),
            crate::exchange::now_ms() / 1000,
        );
        let forwarded = self
            .forwarder
            .forward(Outgoing {
                method: &request.method,
                path: &request.target,
                headers: &request.headers,
                body: request.body.clone(),
            })
            .await;
        let answer = AgentMessage::Response(protocol::Response {
            id: request.id,
            status: forwarded.response.status,
            headers: forwarded.response.headers.clone(),
            body: Bytes::clone(&forwarded.response.body),
        });
        // A closed channel means the link dropped; the exchange is still recorded.
        let _ = out.send(Message::Binary(answer.encode())).await;
        let tunnel = self.tunnel.read().map(|t| t.clone()).unwrap_or_default();
        let exchange = Exchange {
            id: request.id,
            tunnel,
            received_at_ms: request.received_at_ms,
            method: request.method,
            path: request.target,
            target: self.forwarder.target().base_url(),
            request_headers: request.headers,
            request_body: request.body,
            response: Some(forwarded.response),
            duration_us: forwarded.duration_us,
            error: forwarded.error,
            replay_of: None,
            queued: request.queued,
            peer: request.peer,
            public_url: request.public_url,
            signature,
        };
        let summary = exchange.summary();
        self.store.record(exchange).await;
        let _ = self.events.send(AgentEvent::Exchange(summary));
    }
}
