//! The terminal inspector: `hooktunnel listen` on a terminal, and
//! `hooktunnel inspect` over stored history.
//!
//! | file | role |
//! | --- | --- |
//! | [`app`] | the pure state machine: [`Event`] in, [`Effect`] out |
//! | [`view`] | `render(&App, &mut Frame)`, a pure function of the state |
//! | [`body`] | the detail pane's content (pretty JSON, form, hex, raw) |
//! | `runtime` | terminal set-up and restore, the loop, the store worker, replay, editor, clipboard |
//!
//! Every captured string is escaped with [`crate::sanitize`] before it is
//! drawn, so a hostile webhook cannot change the terminal. The terminal is
//! restored on quit, on error and on panic.

pub mod app;
pub mod body;
mod runtime;
pub mod text;
pub mod theme;
pub mod view;

#[cfg(test)]
mod tests;

use tokio::sync::mpsc::Receiver;

use crate::config::Paths;
use crate::event::AgentEvent;
use crate::verify::SecretSpec;

pub use app::{App, Effect, Event, Header, Link, Mode};
pub use runtime::restore_terminal;
pub use view::render;

/// The live inspector for `hooktunnel listen` on a terminal.
///
/// `events` is the agent's channel; its first event is
/// [`AgentEvent::Ready`] with the public URL and target. Returns `Ok(())`
/// when the user quits (the caller then stops the tunnel); the tunnel
/// stopping on its own shows as offline and leaves the inspector open.
/// `secrets` (each with where it came from) re-sign replays of signed requests.
pub async fn run_live(
    paths: Paths,
    events: Receiver<AgentEvent>,
    secrets: Vec<(SecretSpec, String)>,
) -> anyhow::Result<()> {
    let _logs = crate::logging::divert_to(&paths.log_file()).ok();
    runtime::run(paths, Mode::Live, Some(events), secrets).await
}

/// The inspector over stored history, with no tunnel (`hooktunnel inspect`).
pub async fn run_inspect(paths: Paths, secrets: Vec<(SecretSpec, String)>) -> anyhow::Result<()> {
    let _logs = crate::logging::divert_to(&paths.log_file()).ok();
    runtime::run(paths, Mode::Inspect, None, secrets).await
}
