//! Live events for the page as Server-Sent Events.
//!
//! Each tab reads its own cursor into one bounded broadcast ring; the agent
//! never waits for a tab. A tab that falls more than the ring behind gets one
//! `skipped` event with the count instead (the page then reloads the newest
//! rows), so a slow or backgrounded tab costs a fixed amount of memory.
//!
//! Event names: `exchange` (a list row), `replayed` (`{summary, note}`),
//! `connection` (`{state}`), `skipped` (`{count}`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{WebEvent, WebState};

/// The SSE name and JSON data of one event.
pub fn encode(event: &WebEvent) -> (&'static str, serde_json::Value) {
    match event {
        WebEvent::Exchange(s) => ("exchange", crate::export::summary_json(s)),
        WebEvent::Replayed { summary, note } => (
            "replayed",
            json!({ "summary": crate::export::summary_json(summary), "note": note }),
        ),
        WebEvent::Connection(state) => ("connection", json!({ "state": state })),
    }
}

fn sse_event(name: &str, data: &serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// The event stream for one tab: the connection state first, then live events.
pub fn stream(state: &WebState) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let rx = state.events.subscribe();
    let first = state
        .connection
        .read()
        .map(|c| c.clone())
        .unwrap_or_default();
    let hello = sse_event("connection", &json!({ "state": first }));
    futures_util::stream::unfold((Some(hello), rx), |(hello, mut rx)| async move {
        if let Some(hello) = hello {
            return Some((Ok(hello), (None, rx)));
        }
        let event = match rx.recv().await {
            Ok(event) => {
                let (name, data) = encode(&event);
                sse_event(name, &data)
            }
            Err(RecvError::Lagged(count)) => sse_event("skipped", &json!({ "count": count })),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (None, rx)))
    })
}

/// `GET /api/v1/events`.
pub async fn events(
    State(state): State<Arc<WebState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(stream(&state)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A receiver, for tests that watch what pages would see.
pub fn subscribe(state: &WebState) -> broadcast::Receiver<WebEvent> {
    state.events.subscribe()
}
