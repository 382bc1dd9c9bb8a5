//! What goes in and out of [`App::handle`](super::App::handle): an [`Event`]
//! in (a key, a tick, an agent event, the answer to earlier work), at most
//! one [`Effect`] out (work for the runtime, answered by a later event).

use crossterm::event::{KeyEvent, MouseEvent};
use ulid::Ulid;

use crate::event::AgentEvent;
use crate::exchange::{Exchange, ExchangeSummary};
use crate::filter::Filter;

/// Which rows of the store a page load asks for, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// First row.
    pub offset: usize,
    /// Row count.
    pub limit: usize,
    /// The app's insert counter when asked (rows added at the top since then
    /// shift the page down).
    pub epoch: u64,
}

impl PageRequest {
    /// The answer to this request: `rows` (fewer than `limit` at the end of
    /// the history).
    pub fn answer(self, rows: Vec<ExchangeSummary>) -> Event {
        Event::Page(Page {
            request: self,
            rows,
        })
    }
}

/// A page of the store, newest first, as asked for by [`Effect::LoadPage`].
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// What was asked for.
    pub request: PageRequest,
    /// What came back (fewer than `request.limit` at the end of the history).
    pub rows: Vec<ExchangeSummary>,
}

/// Everything the app reacts to.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// A mouse action (the wheel scrolls, a click selects).
    Mouse(MouseEvent),
    /// Pasted text (goes to the filter prompt).
    Paste(String),
    /// The terminal's size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Time passes: the injected clock.
    Tick {
        /// Now, ms since the Unix epoch.
        now_ms: u64,
    },
    /// Something happened in the agent.
    Agent(AgentEvent),
    /// A page asked for with [`Effect::LoadPage`].
    Page(Page),
    /// A full exchange asked for with [`Effect::LoadDetail`]; `None` when it
    /// is no longer stored.
    Detail {
        /// The id asked for.
        id: Ulid,
        /// The exchange.
        exchange: Option<Box<Exchange>>,
    },
    /// The newest stored rows (answer to [`Effect::Poll`]), newest first.
    Polled(Vec<ExchangeSummary>),
    /// Errors among the history present at start (counted in the background).
    HistoryErrors(u64),
    /// Tunnel names the history holds (found by the same background walk),
    /// or that the agent serves: two or more show the tunnel column.
    Tunnels(Vec<String>),
    /// Matches found by a filter scan ([`Effect::Scan`]).
    FilterChunk {
        /// The scan's generation.
        generation: u64,
        /// Matching rows, newest first, continuing the previous chunk.
        rows: Vec<ExchangeSummary>,
        /// Rows looked at so far.
        scanned: u64,
        /// True on the last chunk.
        done: bool,
    },
    /// Answer to [`Effect::CheckLive`].
    LiveChecked {
        /// The filter generation asked about.
        generation: u64,
        /// The row.
        summary: ExchangeSummary,
        /// Whether it matches.
        matched: bool,
    },
    /// A replay finished (and was stored).
    Replayed {
        /// The exchange that was replayed.
        original: Ulid,
        /// The new row, or why it failed.
        result: Result<ExchangeSummary, String>,
        /// What was done to the request first (e.g. re-signed), if anything.
        note: Option<String>,
    },
    /// A page or detail load failed; loads pause for a second.
    LoadFailed(String),
    /// The process was asked to stop (SIGTERM, SIGHUP, SIGINT; the name):
    /// leave the inspector, so the terminal is restored.
    Stop(&'static str),
    /// A stats report asked for with [`Effect::LoadStats`], or why it failed.
    Stats(Result<Box<crate::stats::Report>, String>),
    /// A message for the footer.
    Notice {
        /// The text (escaped when shown).
        text: String,
        /// Shown as an error.
        error: bool,
    },
}

/// Work the app asks the runtime to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Load a page of summaries; answer [`Event::Page`] (see [`PageRequest::answer`]).
    LoadPage(PageRequest),
    /// Load one exchange in full; answer [`Event::Detail`].
    LoadDetail(Ulid),
    /// Replay an exchange as captured; answer [`Event::Replayed`].
    Replay(Ulid),
    /// Edit an exchange's request in `$EDITOR`, then replay it.
    EditReplay(Ulid),
    /// Copy a curl command for an exchange to the clipboard.
    CopyCurl(Ulid),
    /// Scan the history for matches; answer [`Event::FilterChunk`]s.
    Scan {
        /// Tag for the answers (older scans are ignored, and may be stopped).
        generation: u64,
        /// What to match.
        filter: Box<Filter>,
        /// Only rows with ids up to this one (newer ones arrive live).
        upto: Option<Ulid>,
    },
    /// Check a live row against a filter that needs its bodies; answer
    /// [`Event::LiveChecked`].
    CheckLive {
        /// The filter generation.
        generation: u64,
        /// The row.
        summary: Box<ExchangeSummary>,
        /// What to match.
        filter: Box<Filter>,
    },
    /// Stop any running filter scan.
    StopScan,
    /// Fetch the newest rows (written by other processes); answer [`Event::Polled`].
    Poll,
    /// Compute the stats view's report as of `now_ms` (on the store
    /// worker); answer [`Event::Stats`].
    LoadStats {
        /// The end of the window, ms since the Unix epoch.
        now_ms: u64,
    },
    /// Ring the terminal bell (an alert fired).
    Bell,
    /// Leave the inspector.
    Quit,
}
