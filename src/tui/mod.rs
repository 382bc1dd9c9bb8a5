//! The terminal inspector: `hooktunnel listen` on a terminal, and
//! `hooktunnel inspect` over stored history.
//!
//! | file | role |
//! | --- | --- |
//! | [`app`] | the pure state machine: [`Event`] in, [`Effect`] out ([`App::handle`]) |
//! | [`events`] | the [`Event`] and [`Effect`] types |
//! | [`keymap`] | every key binding once: drives keys, the `?` help and the footer |
//! | `list` | the list on the app: paging, new rows on top, keeping the selection, the filter flow |
//! | [`window`] | the held run of the list (pages joined, trimmed) |
//! | [`filtered`] | a filter's matches: scan chunks and live rows |
//! | [`prompt`] | the `/` prompt's line editor |
//! | `pane` | the detail pane on the app: open, follow, load, tabs, scroll |
//! | [`detail`] | the detail pane's content: wrapped lines and scroll |
//! | [`stats`] | the stats view on the app (`s`): report refreshes, scroll |
//! | [`layout`] | where header, list, detail and footer are on screen |
//! | [`status`] | mode, tunnel header and link, footer notice |
//! | [`tunnels`] | the tunnel names in the history: the list's tunnel column shows once there are several |
//! | [`view`] | `render(&App, &mut Frame)`, a pure function of the state |
//! | [`body`] | the detail pane's content (pretty JSON via [`crate::pretty`], form, hex, raw; secret headers via [`crate::mask`]) |
//! | [`text`], [`theme`] | widths, wrapping, numbers; styles with `NO_COLOR` |
//! | `runtime` | wiring: the event loop (generic over the backend) and start-up |
//! | `terminal` | terminal set-up and restore, the panic hook, stop signals, terminal input |
//! | `worker` | the store thread and the background scans |
//! | `effects` | the effect host (the `Host` trait and the real one): replay, `$EDITOR`, the clipboard |
//!
//! Every captured string is escaped with [`crate::sanitize`] before it is
//! drawn, so a hostile webhook cannot change the terminal; secret header
//! values are masked for display only (`m` reveals them). The terminal is
//! restored on quit, on error, on panic and on SIGTERM, SIGHUP and SIGINT.

pub mod app;
pub mod body;
pub mod detail;
mod effects;
pub mod events;
pub mod filtered;
pub mod keymap;
pub mod layout;
mod list;
mod pane;
pub mod prompt;
mod runtime;
pub mod stats;
pub mod status;
mod terminal;
pub mod text;
pub mod theme;
pub mod tunnels;
pub mod view;
pub mod window;
mod worker;

#[cfg(test)]
mod testing;

use std::io::IsTerminal as _;

use tokio::sync::mpsc::Receiver;

use crate::config::Paths;
use crate::event::AgentEvent;
use crate::verify::SecretSpec;

pub use app::App;
pub use events::{Effect, Event};
pub use status::{Header, Link, Mode};
pub use terminal::restore_terminal;
pub use view::render;

/// How the inspector starts.
#[derive(Clone, Debug)]
pub struct Options {
    /// Secrets (each with where it came from) that re-sign replays of signed requests.
    pub secrets: Vec<(SecretSpec, String)>,
    /// Mask secret header values in the detail (`m` toggles); on by default,
    /// for a config option `mask_secrets = false`. Display only.
    pub mask_secrets: bool,
}

impl Options {
    /// Re-signing with `secrets`, masking on.
    pub fn new(secrets: Vec<(SecretSpec, String)>) -> Self {
        Self {
            secrets,
            mask_secrets: true,
        }
    }
}

impl From<Vec<(SecretSpec, String)>> for Options {
    fn from(secrets: Vec<(SecretSpec, String)>) -> Self {
        Self::new(secrets)
    }
}

/// The live inspector for `hooktunnel listen` on a terminal.
///
/// `events` is the agent's channel; its first event is
/// [`AgentEvent::Ready`] with the public URL and target. Returns `Ok(())`
/// when the user quits or a SIGTERM/SIGHUP/SIGINT arrives (the caller then
/// stops the tunnel); the tunnel stopping on its own shows as offline and
/// leaves the inspector open. `options` is an [`Options`] or just the
/// secrets (masking on).
pub async fn run_live(
    paths: Paths,
    events: Receiver<AgentEvent>,
    options: impl Into<Options>,
) -> anyhow::Result<()> {
    let _logs = crate::logging::divert_to(&paths.log_file()).ok();
    runtime::run(paths, Mode::Live, Some(events), options.into()).await
}

/// The inspector over stored history, with no tunnel (`hooktunnel inspect`).
///
/// Refuses, before writing anything, when stdout is not a terminal
/// (`hooktunnel inspect > file`): escape sequences have no place in a file.
pub async fn run_inspect(paths: Paths, options: impl Into<Options>) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("inspect needs a terminal; use `hooktunnel requests` for plain output");
    }
    let _logs = crate::logging::divert_to(&paths.log_file()).ok();
    runtime::run(paths, Mode::Inspect, None, options.into()).await
}
