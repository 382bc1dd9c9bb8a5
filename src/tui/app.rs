//! The inspector's state: pure, with no terminal, network or database.
//!
//! Everything that happens arrives as one [`Event`] (a key, a tick with the
//! time, an agent event, a result of earlier work); [`App::handle`] updates
//! the state and may ask for one [`Effect`] (load a page, replay, quit…) that
//! the runtime performs and answers with another event. [`App::next_effect`]
//! yields the work the current view still needs (page and detail loads), one
//! request in flight at a time.
//!
//! The list is virtual: the app knows the total and holds a window of at most
//! [`MAX_WINDOW`] summaries around the viewport, loading pages of the store as
//! the viewport moves. A filter builds its matches by a background scan and
//! keeps only matching summaries (never bodies).

use std::collections::{HashSet, VecDeque};

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};
use ratatui::text::Line;
use ulid::Ulid;

use crate::event::{AgentEvent, ConnectionState, Ready};
use crate::exchange::{Exchange, ExchangeSummary};
use crate::filter::Filter;

use super::body::{BodyView, Tab, detail_lines};
use super::text::{self, short_id};
use super::theme::Theme;

/// Rows asked for per page load beyond what the viewport needs.
pub const PAGE: usize = 200;
/// Rows kept loaded beyond each edge of the viewport.
const MARGIN: usize = 100;
/// Most summaries held for the unfiltered list.
pub const MAX_WINDOW: usize = 2_000;
/// How often the store is asked for rows written by other processes.
pub const POLL_EVERY_MS: u64 = 2_000;
/// How long a notice stays in the footer.
const NOTICE_MS: u64 = 8_000;
/// Rows per mouse-wheel notch.
const WHEEL: usize = 3;
/// Ids remembered to drop an exchange reported twice (event and poll).
const RECENT_IDS: usize = 512;

/// Whether a tunnel runs behind the inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `listen`: agent events arrive live.
    Live,
    /// `inspect`: stored history only.
    Inspect,
}

/// What the top bar shows about the tunnel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Public URL senders use.
    pub public_url: Option<String>,
    /// Local app base URL.
    pub target: Option<String>,
    /// Relay base URL.
    pub relay: Option<String>,
    /// True when the relay runs in this process.
    pub embedded: bool,
}

impl From<&Ready> for Header {
    fn from(r: &Ready) -> Self {
        Self {
            public_url: Some(r.public_url.clone()),
            target: Some(r.target.clone()),
            relay: Some(r.relay.clone()),
            embedded: r.embedded,
        }
    }
}

/// The tunnel's link, with times as ms since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Not up yet.
    Connecting,
    /// Connected and serving.
    Online,
    /// Lost; the next attempt starts at `retry_at_ms`.
    Reconnecting {
        /// Attempts made so far.
        attempt: u32,
        /// When the next attempt starts.
        retry_at_ms: u64,
        /// Why the link was lost.
        reason: String,
    },
    /// Stopped for good.
    Offline(String),
}

/// A page of the store, newest first, as asked for by [`Effect::LoadPage`].
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The offset asked for.
    pub offset: usize,
    /// The row count asked for.
    pub limit: usize,
    /// The app's insert counter when asked (rows added at the top since then
    /// shift the page down).
    pub epoch: u64,
    /// What came back (fewer than `limit` at the end of the history).
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
    /// Load `limit` summaries from `offset` (newest first); answer [`Event::Page`].
    LoadPage {
        /// First row.
        offset: usize,
        /// Row count.
        limit: usize,
        /// Echo in the page.
        epoch: u64,
    },
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
        summary: ExchangeSummary,
        /// What to match.
        filter: Box<Filter>,
    },
    /// Stop any running filter scan.
    StopScan,
    /// Fetch the newest rows (written by other processes); answer [`Event::Polled`].
    Poll,
    /// Leave the inspector.
    Quit,
}

/// A footer message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The text, unescaped.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
    /// When it goes away.
    pub until_ms: u64,
}

/// The `/` prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// What was typed.
    pub input: String,
    /// Cursor, a byte index on a char boundary.
    pub cursor: usize,
    /// Why the last Enter was refused.
    pub error: Option<String>,
}

/// The detail pane.
#[derive(Clone, Debug, PartialEq)]
pub struct Detail {
    /// The exchange shown (or being loaded).
    pub id: Ulid,
    /// The exchange, once loaded.
    pub exchange: Option<Box<Exchange>>,
    /// True when the exchange is no longer stored.
    pub missing: bool,
    /// First line shown.
    pub scroll: usize,
    /// The tab's lines, wrapped to the pane's width.
    pub lines: Vec<Line<'static>>,
}

/// A contiguous run of the unfiltered list, `rows[i]` being row `start + i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Index of the first row held.
    pub start: usize,
    /// The rows held.
    pub rows: Vec<ExchangeSummary>,
}

impl Window {
    fn end(&self) -> usize {
        self.start + self.rows.len()
    }

    fn get(&self, index: usize) -> Option<&ExchangeSummary> {
        index.checked_sub(self.start).and_then(|i| self.rows.get(i))
    }

    fn position(&self, id: &Ulid) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| r.id == *id)
            .map(|i| i + self.start)
    }

    /// Puts `rows` at `offset`, joining them to the held run when they touch
    /// or overlap it, replacing it otherwise.
    fn merge(&mut self, offset: usize, rows: Vec<ExchangeSummary>) {
        if rows.is_empty() {
            return;
        }
        let (ws, we) = (self.start, self.end());
        let (ps, pe) = (offset, offset + rows.len());
        if self.rows.is_empty() || pe < ws || ps > we {
            self.start = ps;
            self.rows = rows;
            return;
        }
        let mut held = std::mem::take(&mut self.rows);
        let tail = if we > pe {
            held.split_off(pe - ws)
        } else {
            Vec::new()
        };
        held.truncate(ps.saturating_sub(ws));
        held.extend(rows);
        held.extend(tail);
        self.start = ws.min(ps);
        self.rows = held;
    }

    /// Keeps at most `max` rows, centred on `around`.
    fn trim(&mut self, around: usize, max: usize) {
        if self.rows.len() <= max {
            return;
        }
        let start = around
            .saturating_sub(max / 2)
            .clamp(self.start, self.end() - max);
        let skip = start - self.start;
        self.rows.drain(..skip);
        self.rows.truncate(max);
        self.start = start;
    }
}

/// The list under a filter: matches only, found by a background scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Filtered {
    /// The query as typed.
    pub query: String,
    /// The parsed filter.
    pub filter: Filter,
    /// The scan's generation.
    pub generation: u64,
    /// Matches, newest first.
    pub rows: Vec<ExchangeSummary>,
    ids: HashSet<Ulid>,
    /// Rows looked at so far.
    pub scanned: u64,
    /// True when the scan finished.
    pub done: bool,
}

/// Where things are on screen; shared by rendering and by key and mouse
/// handling so both agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// The two header lines.
    pub header: Rect,
    /// The list, its first line the column titles.
    pub list: Option<Rect>,
    /// The detail pane, its first line the tab bar.
    pub detail: Option<Rect>,
    /// The footer line.
    pub footer: Rect,
}

/// Splits the screen.
pub fn layout(area: Rect, detail_open: bool) -> Areas {
    let header_h = area.height.min(2);
    let footer_h = u16::from(area.height > header_h);
    let header = Rect {
        height: header_h,
        ..area
    };
    let footer = Rect {
        y: area.y + area.height - footer_h,
        height: footer_h,
        ..area
    };
    let body = Rect {
        y: area.y + header_h,
        height: area.height - header_h - footer_h,
        ..area
    };
    let (list, detail) = if !detail_open {
        (Some(body), None)
    } else if body.height >= 14 {
        let list_h = (body.height / 3).max(5);
        let list = Rect {
            height: list_h,
            ..body
        };
        let detail = Rect {
            y: body.y + list_h,
            height: body.height - list_h,
            ..body
        };
        (Some(list), Some(detail))
    } else {
        (None, Some(body))
    };
    Areas {
        header,
        list: list.filter(|r| r.height > 0),
        detail: detail.filter(|r| r.height > 0),
        footer,
    }
}

/// Whether a row counts as an error in the header: 4xx, 5xx, no response,
/// or an error recorded by hooktunnel.
pub fn is_error(s: &ExchangeSummary) -> bool {
    s.error.is_some() || s.status.is_none_or(|c| c >= 400)
}

/// The inspector's whole state.
#[derive(Debug)]
pub struct App {
    pub(super) mode: Mode,
    pub(super) header: Header,
    pub(super) link: Link,
    pub(super) theme: Theme,
    pub(super) now_ms: u64,
    pub(super) width: u16,
    pub(super) height: u16,
    pub(super) total: usize,
    pub(super) window: Window,
    epoch: u64,
    newest: Option<Ulid>,
    recent: VecDeque<Ulid>,
    page_in_flight: bool,
    pub(super) filtered: Option<Filtered>,
    generation: u64,
    pub(super) selected: usize,
    pub(super) top: usize,
    pub(super) follow: bool,
    pub(super) history_errors: Option<u64>,
    pub(super) new_errors: u64,
    pub(super) session: u64,
    pub(super) detail: Option<Detail>,
    detail_in_flight: Option<Ulid>,
    pub(super) tab: Tab,
    pub(super) view: BodyView,
    pub(super) prompt: Option<Prompt>,
    pub(super) help: bool,
    pub(super) notice: Option<Notice>,
    last_poll_ms: u64,
    poll_in_flight: bool,
    loads_paused_until: u64,
}

impl App {
    /// A fresh app at time `now_ms`, sized 80×24 until told otherwise.
    pub fn new(mode: Mode, color: bool, now_ms: u64) -> Self {
        Self {
            mode,
            header: Header::default(),
            link: Link::Connecting,
            theme: Theme { color },
            now_ms,
            width: 80,
            height: 24,
            total: 0,
            window: Window::default(),
            epoch: 0,
            newest: None,
            recent: VecDeque::new(),
            page_in_flight: false,
            filtered: None,
            generation: 0,
            selected: 0,
            top: 0,
            follow: true,
            history_errors: None,
            new_errors: 0,
            session: 0,
            detail: None,
            detail_in_flight: None,
            tab: Tab::Request,
            view: BodyView::Auto,
            prompt: None,
            help: false,
            notice: None,
            last_poll_ms: now_ms,
            poll_in_flight: false,
            loads_paused_until: 0,
        }
    }

    /// Sets what the top bar says about the tunnel.
    pub fn set_header(&mut self, header: Header) {
        self.header = header;
    }

    /// Starts from the history: its row count and its newest rows.
    pub fn load(&mut self, total: u64, newest_rows: Vec<ExchangeSummary>) {
        self.total = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .max(newest_rows.len());
        self.newest = newest_rows.first().map(|r| r.id);
        self.window = Window {
            start: 0,
            rows: newest_rows,
        };
        self.clamp();
    }

    /// Rows in the list as shown (matches only, under a filter).
    pub fn len(&self) -> usize {
        self.filtered.as_ref().map_or(self.total, |f| f.rows.len())
    }

    /// True when the list shows nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `index` of the list as shown, when loaded.
    pub fn row(&self, index: usize) -> Option<&ExchangeSummary> {
        match &self.filtered {
            Some(f) => f.rows.get(index),
            None => self.window.get(index),
        }
    }

    /// Index of the selected row.
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The selected row's id, when loaded.
    pub fn selected_id(&self) -> Option<Ulid> {
        self.row(self.selected).map(|r| r.id)
    }

    /// True while new rows take the selection.
    pub fn following(&self) -> bool {
        self.follow
    }

    /// The detail pane, when open.
    pub fn detail(&self) -> Option<&Detail> {
        self.detail.as_ref()
    }

    /// The active detail tab.
    pub fn tab(&self) -> Tab {
        self.tab
    }

    /// The filter prompt, when open.
    pub fn prompt(&self) -> Option<&Prompt> {
        self.prompt.as_ref()
    }

    /// The filtered view, when a filter is set.
    pub fn filtered(&self) -> Option<&Filtered> {
        self.filtered.as_ref()
    }

    /// The footer notice, when one is showing.
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    /// True while the help overlay shows.
    pub fn help_open(&self) -> bool {
        self.help
    }

    /// The tunnel's link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The held window of the unfiltered list.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Where things are on screen now.
    pub fn areas(&self) -> Areas {
        layout(
            Rect::new(0, 0, self.width, self.height),
            self.detail.is_some(),
        )
    }

    /// Rows the list shows at once.
    pub fn list_rows(&self) -> usize {
        self.areas()
            .list
            .map_or(1, |r| usize::from(r.height.saturating_sub(1)).max(1))
    }

    /// The detail pane's text area: (rows, columns).
    fn detail_size(&self) -> (usize, usize) {
        let a = self.areas();
        let r = a
            .detail
            .or(a.list)
            .unwrap_or(Rect::new(0, 0, self.width, self.height));
        (
            usize::from(r.height.saturating_sub(1)).max(1),
            usize::from(r.width).max(1),
        )
    }

    fn notify(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
            until_ms: self.now_ms + NOTICE_MS,
        });
    }

    /// Applies one event; returns work for the runtime, if any. Call
    /// [`next_effect`](Self::next_effect) afterwards until it returns `None`.
    pub fn handle(&mut self, event: Event) -> Option<Effect> {
        let effect = match event {
            Event::Key(key) => self.on_key(key),
            Event::Mouse(m) => self.on_mouse(m),
            Event::Paste(text) => {
                if let Some(p) = &mut self.prompt {
                    let clean: String = text
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    p.input.insert_str(p.cursor, &clean);
                    p.cursor += clean.len();
                    p.error = None;
                }
                None
            }
            Event::Resize { width, height } => {
                self.width = width;
                self.height = height;
                self.clamp();
                self.rebuild_detail();
                None
            }
            Event::Tick { now_ms } => self.on_tick(now_ms),
            Event::Agent(ev) => self.on_agent(ev),
            Event::Page(page) => {
                self.on_page(page);
                None
            }
            Event::Detail { id, exchange } => {
                self.on_detail(id, exchange);
                None
            }
            Event::Polled(rows) => {
                self.poll_in_flight = false;
                let newest = self.newest;
                let mut effect = None;
                for row in rows.into_iter().rev() {
                    if newest.is_none_or(|n| row.id > n) {
                        effect = self.insert_new(row).or(effect);
                    }
                }
                effect
            }
            Event::HistoryErrors(n) => {
                self.history_errors = Some(n);
                None
            }
            Event::FilterChunk {
                generation,
                rows,
                scanned,
                done,
            } => {
                if let Some(f) = self
                    .filtered
                    .as_mut()
                    .filter(|f| f.generation == generation)
                {
                    for r in rows {
                        if f.ids.insert(r.id) {
                            f.rows.push(r);
                        }
                    }
                    f.scanned = scanned;
                    f.done = done;
                }
                None
            }
            Event::LiveChecked {
                generation,
                summary,
                matched,
            } => {
                if matched {
                    self.insert_filtered(generation, summary);
                }
                None
            }
            Event::Replayed {
                original,
                result,
                note,
            } => match result {
                Ok(row) => {
                    self.notify(
                        format!(
                            "replayed {}{}: {} in {} → new row {} (↻)",
                            short_id(&original),
                            note.map(|n| format!(" ({n})")).unwrap_or_default(),
                            row.status
                                .map_or_else(|| "no response".to_owned(), |s| s.to_string()),
                            text::duration(row.duration_ms),
                            short_id(&row.id),
                        ),
                        is_error(&row),
                    );
                    self.insert_new(row)
                }
                Err(why) => {
                    self.notify(
                        format!("replay of {} failed: {why}", short_id(&original)),
                        true,
                    );
                    None
                }
            },
            Event::LoadFailed(why) => {
                self.page_in_flight = false;
                self.detail_in_flight = None;
                self.loads_paused_until = self.now_ms + 1000;
                self.notify(why, true);
                None
            }
            Event::Notice { text, error } => {
                self.notify(text, error);
                None
            }
        };
        effect.or_else(|| self.next_effect())
    }

    /// The next load the view needs (a page of rows, the detail's exchange),
    /// if none of that kind is already in flight.
    pub fn next_effect(&mut self) -> Option<Effect> {
        if self.now_ms < self.loads_paused_until {
            return None;
        }
        if let Some(e) = self.wanted_page() {
            return Some(e);
        }
        let row_id = self.selected_id();
        let detail = self.detail.as_mut()?;
        let id = row_id?;
        if detail.id != id {
            *detail = Detail {
                id,
                exchange: None,
                missing: false,
                scroll: 0,
                lines: Vec::new(),
            };
        }
        if detail.exchange.is_none() && !detail.missing && self.detail_in_flight.is_none() {
            self.detail_in_flight = Some(id);
            return Some(Effect::LoadDetail(id));
        }
        None
    }

    fn wanted_page(&mut self) -> Option<Effect> {
        if self.filtered.is_some() || self.page_in_flight || self.total == 0 {
            return None;
        }
        let h = self.list_rows();
        let vis_start = self.top.min(self.total - 1);
        let vis_end = (self.top + h).min(self.total);
        let (ws, we) = (self.window.start, self.window.end());
        let want_start = vis_start.saturating_sub(MARGIN);
        let want_end = (vis_end + MARGIN).min(self.total);
        let (offset, limit) = if self.window.rows.is_empty() || vis_end <= ws || vis_start >= we {
            (want_start, (want_end - want_start).max(PAGE))
        } else if want_start < ws {
            let offset = ws.saturating_sub(PAGE).min(want_start);
            (offset, ws - offset)
        } else if want_end > we {
            (we, PAGE)
        } else {
            return None;
        };
        self.page_in_flight = true;
        Some(Effect::LoadPage {
            offset,
            limit,
            epoch: self.epoch,
        })
    }

    fn on_page(&mut self, page: Page) {
        self.page_in_flight = false;
        let shift = usize::try_from(self.epoch.saturating_sub(page.epoch)).unwrap_or(0);
        let mut offset = page.offset + shift;
        let n = page.rows.len();
        // Rows already held fix the page's place better than counting does.
        if let Some(first) = page.rows.first().and_then(|r| self.window.position(&r.id)) {
            offset = first;
        } else if let Some(last) = page.rows.last().and_then(|r| self.window.position(&r.id)) {
            offset = (last + 1).saturating_sub(n);
        }
        if n < page.limit && offset + n < self.total {
            // The history ends here (retention removed older rows).
            self.total = offset + n;
        }
        self.window.merge(offset, page.rows);
        self.window.trim(self.top, MAX_WINDOW);
        self.clamp();
    }

    fn on_detail(&mut self, id: Ulid, exchange: Option<Box<Exchange>>) {
        if self.detail_in_flight == Some(id) {
            self.detail_in_flight = None;
        }
        let Some(d) = self.detail.as_mut().filter(|d| d.id == id) else {
            return;
        };
        match exchange {
            Some(ex) => d.exchange = Some(ex),
            None => d.missing = true,
        }
        self.rebuild_detail();
    }

    /// Re-renders the detail pane's lines (after a load, tab or view change, resize).
    fn rebuild_detail(&mut self) {
        let (rows, cols) = self.detail_size();
        let (tab, view, theme) = (self.tab, self.view, self.theme);
        let Some(d) = &mut self.detail else { return };
        d.lines = match &d.exchange {
            Some(ex) => detail_lines(ex, tab, view, theme)
                .into_iter()
                .flat_map(|l| text::wrap(l, cols))
                .collect(),
            None => Vec::new(),
        };
        d.scroll = d.scroll.min(d.lines.len().saturating_sub(rows));
    }

    fn on_tick(&mut self, now_ms: u64) -> Option<Effect> {
        self.now_ms = now_ms;
        if self.notice.as_ref().is_some_and(|n| n.until_ms <= now_ms) {
            self.notice = None;
        }
        if !self.poll_in_flight && now_ms.saturating_sub(self.last_poll_ms) >= POLL_EVERY_MS {
            self.last_poll_ms = now_ms;
            self.poll_in_flight = true;
            return Some(Effect::Poll);
        }
        None
    }

    fn on_agent(&mut self, ev: AgentEvent) -> Option<Effect> {
        match ev {
            AgentEvent::Ready(r) => {
                self.header = Header::from(&r);
                self.link = Link::Online;
                None
            }
            AgentEvent::Connection(state) => {
                self.link = match state {
                    ConnectionState::Online => Link::Online,
                    ConnectionState::Reconnecting {
                        attempt,
                        retry_at,
                        reason,
                    } => Link::Reconnecting {
                        attempt,
                        retry_at_ms: retry_at
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        reason,
                    },
                    ConnectionState::Offline(why) => Link::Offline(why),
                };
                None
            }
            AgentEvent::Exchange(s) => {
                self.session += 1;
                self.insert_new(s)
            }
            AgentEvent::Notice(text) => {
                self.notify(text, false);
                None
            }
        }
    }

    /// A new exchange (live, replayed or polled) goes on top of the list.
    fn insert_new(&mut self, s: ExchangeSummary) -> Option<Effect> {
        if self.recent.contains(&s.id) {
            return None;
        }
        if self.recent.len() == RECENT_IDS {
            self.recent.pop_front();
        }
        self.recent.push_back(s.id);
        if self.newest.is_none_or(|n| s.id > n) {
            self.newest = Some(s.id);
        }
        self.total += 1;
        self.epoch += 1;
        if is_error(&s) {
            self.new_errors += 1;
        }
        let mut effect = None;
        if let Some(f) = &self.filtered {
            match f.filter.matches_summary(&s) {
                Some(true) => {
                    let generation = f.generation;
                    self.insert_filtered(generation, s.clone());
                }
                Some(false) => {}
                None => {
                    effect = Some(Effect::CheckLive {
                        generation: f.generation,
                        summary: s.clone(),
                        filter: Box::new(f.filter.clone()),
                    });
                }
            }
        }
        if self.window.start == 0 {
            self.window.rows.insert(0, s);
            self.window.trim(self.top, MAX_WINDOW);
        } else {
            self.window.start += 1;
        }
        if self.filtered.is_none() {
            self.shift_for_insert(0);
        }
        effect
    }

    fn insert_filtered(&mut self, generation: u64, s: ExchangeSummary) {
        let Some(f) = self
            .filtered
            .as_mut()
            .filter(|f| f.generation == generation)
        else {
            return;
        };
        if !f.ids.insert(s.id) {
            return;
        }
        let pos = f
            .rows
            .iter()
            .position(|r| r.id < s.id)
            .unwrap_or(f.rows.len());
        f.rows.insert(pos, s);
        self.shift_for_insert(pos);
    }

    /// Keeps the selection on the same exchange (or on top when following)
    /// after a row was inserted at `pos`.
    fn shift_for_insert(&mut self, pos: usize) {
        if self.follow && self.detail.is_none() {
            self.selected = 0;
            self.top = 0;
            return;
        }
        if pos <= self.selected && self.len() > 1 {
            self.selected += 1;
        }
        if self.top > 0 && pos <= self.top {
            self.top += 1;
        }
        self.clamp();
    }

    /// Keeps selection and scroll inside the list and the selection visible.
    fn clamp(&mut self) {
        let len = self.len();
        let h = self.list_rows();
        self.selected = self.selected.min(len.saturating_sub(1));
        if self.selected < self.top {
            self.top = self.selected;
        }
        if self.selected >= self.top + h {
            self.top = self.selected + 1 - h;
        }
        self.top = self.top.min(len.saturating_sub(h));
    }

    fn select(&mut self, index: usize) {
        self.selected = index.min(self.len().saturating_sub(1));
        self.follow = self.selected == 0;
        self.clamp();
    }

    fn move_by(&mut self, delta: isize) {
        let target = self.selected.saturating_add_signed(delta);
        self.select(target);
    }

    fn scroll_detail(&mut self, delta: isize) {
        let (rows, _) = self.detail_size();
        if let Some(d) = &mut self.detail {
            let max = d.lines.len().saturating_sub(rows);
            d.scroll = d.scroll.saturating_add_signed(delta).min(max);
        }
    }

    /// The exchange `r`, `e` and `c` act on: the detail's, else the selected row's.
    fn target(&mut self) -> Option<Ulid> {
        let id = self
            .detail
            .as_ref()
            .map(|d| d.id)
            .or_else(|| self.selected_id());
        if id.is_none() {
            self.notify("nothing selected", true);
        }
        id
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'd')) {
            return Some(Effect::Quit);
        }
        if self.prompt.is_some() {
            return self.on_prompt_key(key);
        }
        if self.help {
            self.help = false;
            return None;
        }
        let page = isize::try_from(self.list_rows().saturating_sub(1).max(1)).unwrap_or(1);
        match key.code {
            KeyCode::Char('q') => return Some(Effect::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => {
                let input = self
                    .filtered
                    .as_ref()
                    .map(|f| f.query.clone())
                    .unwrap_or_default();
                self.prompt = Some(Prompt {
                    cursor: input.len(),
                    input,
                    error: None,
                });
            }
            KeyCode::Esc => return self.escape(),
            KeyCode::Enter => self.toggle_detail(),
            KeyCode::Tab | KeyCode::BackTab => {
                self.tab = self.tab.toggle();
                if self.detail.is_none() {
                    self.toggle_detail();
                } else {
                    if let Some(d) = &mut self.detail {
                        d.scroll = 0;
                    }
                    self.rebuild_detail();
                }
            }
            KeyCode::Char('r') => {
                let id = self.target()?;
                self.notify(format!("replaying {}…", short_id(&id)), false);
                return Some(Effect::Replay(id));
            }
            KeyCode::Char('e') => return self.target().map(Effect::EditReplay),
            KeyCode::Char('c') => return self.target().map(Effect::CopyCurl),
            KeyCode::Char('v') => {
                self.view = self.view.next();
                self.rebuild_detail();
            }
            _ if self.detail.is_some() => self.on_detail_key(key),
            KeyCode::Up | KeyCode::Char('k' | 'p') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j' | 'n') => self.move_by(1),
            KeyCode::PageUp | KeyCode::Char('b') => self.move_by(-page),
            KeyCode::PageDown | KeyCode::Char(' ') => self.move_by(page),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            _ => {}
        }
        None
    }

    fn on_detail_key(&mut self, key: KeyEvent) {
        let (rows, _) = self.detail_size();
        let page = isize::try_from(rows.saturating_sub(1).max(1)).unwrap_or(1);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Down if shift => self.move_by(1),
            KeyCode::Up if shift => self.move_by(-1),
            KeyCode::Char('n' | 'J') => self.move_by(1),
            KeyCode::Char('p' | 'K') => self.move_by(-1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_detail(-1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_detail(1),
            KeyCode::PageUp | KeyCode::Char('b') => self.scroll_detail(-page),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_detail(page),
            KeyCode::Home | KeyCode::Char('g') => self.scroll_detail(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.scroll_detail(isize::MAX),
            _ => {}
        }
    }

    fn toggle_detail(&mut self) {
        if self.detail.take().is_some() {
            self.follow = self.selected == 0;
            self.clamp();
            return;
        }
        match self.selected_id() {
            Some(id) => {
                self.detail = Some(Detail {
                    id,
                    exchange: None,
                    missing: false,
                    scroll: 0,
                    lines: Vec::new(),
                });
                self.clamp();
            }
            None if self.is_empty() => self.notify("nothing to open yet", false),
            None => self.notify("still loading; try again", false),
        }
    }

    fn escape(&mut self) -> Option<Effect> {
        if self.detail.is_some() {
            self.toggle_detail();
        } else if self.filtered.is_some() {
            return self.clear_filter();
        } else {
            self.notice = None;
        }
        None
    }

    /// Back to the whole history; stops the scan if it still runs.
    fn clear_filter(&mut self) -> Option<Effect> {
        let scanning = self.filtered.take().is_some_and(|f| !f.done);
        self.selected = 0;
        self.top = 0;
        self.follow = true;
        self.clamp();
        scanning.then_some(Effect::StopScan)
    }

    fn on_prompt_key(&mut self, key: KeyEvent) -> Option<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let p = self.prompt.as_mut()?;
        let before = |s: &str, i: usize| s[..i].chars().next_back().map_or(i, |c| i - c.len_utf8());
        let after = |s: &str, i: usize| s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
        match key.code {
            KeyCode::Esc => self.prompt = None,
            KeyCode::Enter => return self.apply_filter(),
            KeyCode::Backspace if p.cursor > 0 => {
                let start = before(&p.input, p.cursor);
                p.input.replace_range(start..p.cursor, "");
                p.cursor = start;
            }
            KeyCode::Delete if p.cursor < p.input.len() => {
                let end = after(&p.input, p.cursor);
                p.input.replace_range(p.cursor..end, "");
            }
            KeyCode::Left => p.cursor = before(&p.input, p.cursor),
            KeyCode::Right => p.cursor = after(&p.input, p.cursor),
            KeyCode::Home => p.cursor = 0,
            KeyCode::End => p.cursor = p.input.len(),
            KeyCode::Char('a') if ctrl => p.cursor = 0,
            KeyCode::Char('e') if ctrl => p.cursor = p.input.len(),
            KeyCode::Char('u') if ctrl => {
                p.input.clear();
                p.cursor = 0;
            }
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                p.input.insert(p.cursor, c);
                p.cursor += c.len_utf8();
            }
            _ => return None,
        }
        if let Some(p) = &mut self.prompt {
            p.error = None;
        }
        None
    }

    fn apply_filter(&mut self) -> Option<Effect> {
        let query = self.prompt.as_ref()?.input.trim().to_owned();
        let filter = match Filter::parse(&query, self.now_ms) {
            Ok(f) => f,
            Err(e) => {
                if let Some(p) = &mut self.prompt {
                    p.error = Some(e.to_string());
                }
                return None;
            }
        };
        self.prompt = None;
        self.detail = None;
        if filter.is_empty() {
            return self.clear_filter();
        }
        self.generation += 1;
        self.filtered = Some(Filtered {
            query,
            filter: filter.clone(),
            generation: self.generation,
            rows: Vec::new(),
            ids: HashSet::new(),
            scanned: 0,
            done: false,
        });
        self.selected = 0;
        self.top = 0;
        self.follow = true;
        Some(Effect::Scan {
            generation: self.generation,
            filter: Box::new(filter),
            upto: self.newest,
        })
    }

    fn on_mouse(&mut self, m: MouseEvent) -> Option<Effect> {
        if self.help || self.prompt.is_some() {
            return None;
        }
        let areas = self.areas();
        let at = Position::new(m.column, m.row);
        let over_detail = areas.detail.is_some_and(|r| r.contains(at));
        let notch = isize::try_from(WHEEL).unwrap_or(3);
        match m.kind {
            MouseEventKind::ScrollDown if over_detail => self.scroll_detail(notch),
            MouseEventKind::ScrollUp if over_detail => self.scroll_detail(-notch),
            MouseEventKind::ScrollDown => self.move_by(notch),
            MouseEventKind::ScrollUp => self.move_by(-notch),
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(list) = areas.list.filter(|r| r.contains(at) && m.row > r.y) {
                    let index = self.top + usize::from(m.row - list.y - 1);
                    if index < self.len() {
                        self.select(index);
                    }
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::exchange::ExchangeSummary;
    use crossterm::event::KeyEventState;

    pub(crate) fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        })
    }

    pub(crate) fn ch(c: char) -> Event {
        key(KeyCode::Char(c))
    }

    /// Summaries with increasing ids; `row(n)` is older than `row(n + 1)`.
    pub(crate) fn row(n: u64) -> ExchangeSummary {
        ExchangeSummary {
            id: Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)),
            received_at_ms: 1_700_000_000_000 + n * 1000,
            method: if n.is_multiple_of(3) {
                "GET".into()
            } else {
                "POST".into()
            },
            path: format!("/hooks/{n}"),
            status: Some(if n.is_multiple_of(5) { 500 } else { 200 }),
            duration_ms: 1.5,
            request_bytes: 10,
            response_bytes: 2,
            error: None,
            replay_of: None,
            queued: false,
            signature: None,
        }
    }

    /// The newest-first page of a history of `total` rows `row(0..total)`.
    fn page(total: u64, offset: usize, limit: usize) -> Vec<ExchangeSummary> {
        (0..total).rev().skip(offset).take(limit).map(row).collect()
    }

    fn app_with(total: u64) -> App {
        let mut app = App::new(Mode::Inspect, false, 1_700_000_100_000);
        app.handle(Event::Resize {
            width: 100,
            height: 30,
        });
        app.load(total, page(total, 0, PAGE));
        app
    }

    /// Feeds events, answering page loads from a history of `total` rows.
    fn drive(app: &mut App, total: u64, events: impl IntoIterator<Item = Event>) -> Vec<Effect> {
        let mut others = Vec::new();
        let mut queue: VecDeque<Event> = events.into_iter().collect();
        while let Some(ev) = queue.pop_front() {
            let mut effect = app.handle(ev);
            while let Some(e) = effect {
                match e {
                    Effect::LoadPage {
                        offset,
                        limit,
                        epoch,
                    } => queue.push_back(Event::Page(Page {
                        offset,
                        limit,
                        epoch,
                        rows: page(total, offset, limit),
                    })),
                    other => others.push(other),
                }
                effect = app.next_effect();
            }
        }
        others
    }

    #[test]
    fn key_table_moves_the_selection() {
        let mut app = app_with(1000);
        let h = app.list_rows();
        drive(&mut app, 1000, [ch('j'), ch('j'), key(KeyCode::Down)]);
        assert_eq!(app.selected(), 3);
        assert!(!app.following());
        drive(&mut app, 1000, [ch('k'), key(KeyCode::Up)]);
        assert_eq!(app.selected(), 1);
        drive(&mut app, 1000, [key(KeyCode::PageDown)]);
        assert_eq!(app.selected(), h);
        drive(&mut app, 1000, [ch('G')]);
        assert_eq!(app.selected(), 999);
        assert_eq!(app.selected_id(), Some(row(0).id));
        drive(&mut app, 1000, [ch('g')]);
        assert_eq!(app.selected(), 0);
        assert!(app.following());
        drive(&mut app, 1000, [ch('k')]);
        assert_eq!(app.selected(), 0);
        assert_eq!(drive(&mut app, 1000, [ch('q')]), [Effect::Quit]);
    }

    #[test]
    fn enter_opens_detail_and_asks_for_the_exchange() {
        let mut app = app_with(10);
        let id = app.selected_id().unwrap();
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            Some(Effect::LoadDetail(id))
        );
        assert!(app.detail().is_some());
        // Moving with n in the detail asks for the next one once the first arrived.
        assert_eq!(app.handle(ch('n')), None);
        let next = app.selected_id().unwrap();
        assert_eq!(
            app.handle(Event::Detail { id, exchange: None }),
            Some(Effect::LoadDetail(next))
        );
        assert_eq!(app.detail().unwrap().id, next);
        // Tab switches, Enter closes.
        app.handle(key(KeyCode::Tab));
        assert_eq!(app.tab(), Tab::Response);
        app.handle(key(KeyCode::Enter));
        assert!(app.detail().is_none());
    }

    #[test]
    fn actions_target_the_selected_exchange() {
        let mut app = app_with(10);
        app.handle(ch('j'));
        let id = app.selected_id().unwrap();
        assert_eq!(app.handle(ch('r')), Some(Effect::Replay(id)));
        assert_eq!(app.handle(ch('e')), Some(Effect::EditReplay(id)));
        assert_eq!(app.handle(ch('c')), Some(Effect::CopyCurl(id)));
        let mut empty = app_with(0);
        assert_eq!(empty.handle(ch('r')), None);
        assert!(empty.notice().unwrap().error);
    }

    #[test]
    fn follow_mode_keeps_new_rows_selected_until_you_move() {
        let mut app = app_with(5);
        app.handle(Event::Agent(AgentEvent::Exchange(row(5))));
        assert_eq!(app.selected_id(), Some(row(5).id));
        assert_eq!(app.len(), 6);
        // Move away: the selection stays on its exchange as rows arrive.
        app.handle(ch('j'));
        assert_eq!(app.selected_id(), Some(row(4).id));
        app.handle(Event::Agent(AgentEvent::Exchange(row(6))));
        app.handle(Event::Agent(AgentEvent::Exchange(row(7))));
        assert_eq!(app.selected(), 3);
        assert_eq!(app.selected_id(), Some(row(4).id));
        assert_eq!(app.row(0).unwrap().id, row(7).id);
        // g goes back on top and follows again.
        app.handle(ch('g'));
        app.handle(Event::Agent(AgentEvent::Exchange(row(8))));
        assert_eq!(app.selected_id(), Some(row(8).id));
        // A duplicate report (event and poll) is dropped.
        app.handle(Event::Polled(vec![row(8), row(7)]));
        assert_eq!(app.len(), 9);
    }

    #[test]
    fn open_detail_pauses_follow() {
        let mut app = app_with(5);
        app.handle(key(KeyCode::Enter));
        let shown = app.detail().unwrap().id;
        app.handle(Event::Agent(AgentEvent::Exchange(row(9))));
        assert_eq!(app.selected_id(), Some(shown));
        assert_eq!(app.detail().unwrap().id, shown);
    }

    #[test]
    fn selection_survives_rows_arriving_while_scrolled_deep() {
        let mut app = app_with(10_000);
        drive(&mut app, 10_000, (0..5000).map(|_| ch('j')));
        assert_eq!(app.selected(), 5000);
        let before = app.selected_id().unwrap();
        let top_before = app.top;
        app.handle(Event::Agent(AgentEvent::Exchange(row(10_000))));
        assert_eq!(app.selected_id(), Some(before));
        assert_eq!(app.top, top_before + 1);
        assert!(app.window().rows.len() <= MAX_WINDOW);
        // A page loaded before the insert lands where it belongs.
        let stale = Page {
            offset: 6000,
            limit: 10,
            epoch: 0,
            rows: page(10_000, 6000, 10),
        };
        app.handle(Event::Page(stale));
        assert_eq!(app.row(6001).unwrap().id, page(10_000, 6000, 1)[0].id);
    }

    #[test]
    fn virtual_list_holds_a_bounded_window() {
        let mut app = app_with(100_000);
        drive(&mut app, 100_000, [ch('G')]);
        assert_eq!(app.selected(), 99_999);
        assert_eq!(app.selected_id(), Some(row(0).id));
        assert!(app.window().rows.len() <= MAX_WINDOW);
        drive(&mut app, 100_000, (0..3000).map(|_| ch('k')));
        assert_eq!(app.selected_id(), Some(row(3000).id));
        assert!(app.window().rows.len() <= MAX_WINDOW);
        for i in app.top..app.top + app.list_rows() {
            assert_eq!(app.row(i).unwrap().id, row(99_999 - i as u64).id, "row {i}");
        }
    }

    #[test]
    fn retention_shortens_the_list() {
        let mut app = app_with(1000);
        // The store now holds only 500 rows.
        let effects = drive(&mut app, 500, [ch('G')]);
        assert!(effects.is_empty());
        assert_eq!(app.len(), 500);
        assert_eq!(app.selected(), 499);
    }

    fn type_text(app: &mut App, s: &str) -> Option<Effect> {
        app.handle(ch('/'));
        for c in s.chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Enter))
    }

    #[test]
    fn filter_prompt_scans_and_shows_matches() {
        let mut app = app_with(100);
        let Some(Effect::Scan {
            generation,
            filter,
            upto,
        }) = type_text(&mut app, "status:5xx")
        else {
            panic!("no scan")
        };
        assert_eq!(upto, Some(row(99).id));
        assert_eq!(filter.to_string(), "status:5xx");
        assert!(app.is_empty());
        let matches: Vec<_> = page(100, 0, 100)
            .into_iter()
            .filter(|r| r.status == Some(500))
            .collect();
        app.handle(Event::FilterChunk {
            generation: generation - 1,
            rows: page(100, 0, 3),
            scanned: 3,
            done: false,
        });
        assert!(app.is_empty(), "an older scan's rows are ignored");
        app.handle(Event::FilterChunk {
            generation,
            rows: matches.clone(),
            scanned: 100,
            done: true,
        });
        assert_eq!(app.len(), 20);
        // Live rows are matched on arrival.
        let mut failing = row(100);
        failing.status = Some(503);
        app.handle(Event::Agent(AgentEvent::Exchange(row(101))));
        app.handle(Event::Agent(AgentEvent::Exchange(failing.clone())));
        assert_eq!(app.len(), 21);
        assert_eq!(app.selected_id(), Some(failing.id));
        // Esc clears the filter and shows everything again.
        app.handle(key(KeyCode::Esc));
        assert!(app.filtered().is_none());
        assert_eq!(app.len(), 102);
        // / reopens with the last query; bad queries stay in the prompt.
        assert_eq!(type_text(&mut app, "status:abc"), None);
        assert!(
            app.prompt()
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .contains("bad status")
        );
        app.handle(key(KeyCode::Esc));
        assert!(app.prompt().is_none());
    }

    #[test]
    fn grep_filters_check_live_rows_in_full() {
        let mut app = app_with(3);
        let Some(Effect::Scan { generation, .. }) = type_text(&mut app, "needle") else {
            panic!("no scan")
        };
        let effect = app.handle(Event::Agent(AgentEvent::Exchange(row(7))));
        assert!(matches!(effect, Some(Effect::CheckLive { generation: g, .. }) if g == generation));
        app.handle(Event::LiveChecked {
            generation,
            summary: row(7),
            matched: true,
        });
        assert_eq!(app.len(), 1);
    }

    #[test]
    fn prompt_editing_keys() {
        let mut app = app_with(3);
        app.handle(ch('/'));
        for c in "méthod".chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Left));
        app.handle(key(KeyCode::Left));
        app.handle(key(KeyCode::Backspace));
        app.handle(key(KeyCode::Home));
        app.handle(key(KeyCode::Delete));
        app.handle(Event::Paste("x\ny".into()));
        assert_eq!(app.prompt().unwrap().input, "x yétod");
        // q types in the prompt instead of quitting.
        assert_eq!(app.handle(ch('q')), None);
    }

    #[test]
    fn help_and_escape() {
        let mut app = app_with(3);
        app.handle(ch('?'));
        assert!(app.help_open());
        assert_eq!(app.handle(ch('q')), None, "a key closes help first");
        assert!(!app.help_open());
    }

    #[test]
    fn ticks_poll_and_expire_notices() {
        let mut app = app_with(3);
        let t0 = app.now_ms;
        app.handle(Event::Notice {
            text: "hi".into(),
            error: false,
        });
        assert_eq!(app.handle(Event::Tick { now_ms: t0 + 500 }), None);
        assert!(app.notice().is_some());
        assert_eq!(
            app.handle(Event::Tick {
                now_ms: t0 + POLL_EVERY_MS
            }),
            Some(Effect::Poll)
        );
        assert_eq!(
            app.handle(Event::Tick {
                now_ms: t0 + 2 * POLL_EVERY_MS
            }),
            None,
            "one poll at a time"
        );
        app.handle(Event::Polled(vec![row(3)]));
        assert_eq!(app.len(), 4);
        app.handle(Event::Tick {
            now_ms: t0 + NOTICE_MS,
        });
        assert!(app.notice().is_none());
    }

    #[test]
    fn mouse_wheel_moves_and_click_selects() {
        let mut app = app_with(50);
        let wheel = |kind| {
            Event::Mouse(MouseEvent {
                kind,
                column: 5,
                row: 5,
                modifiers: KeyModifiers::NONE,
            })
        };
        app.handle(wheel(MouseEventKind::ScrollDown));
        assert_eq!(app.selected(), 3);
        app.handle(wheel(MouseEventKind::ScrollUp));
        assert_eq!(app.selected(), 0);
        // Row 5 on screen: 2 header lines, 1 title line, so list row 2.
        app.handle(wheel(MouseEventKind::Down(MouseButton::Left)));
        assert_eq!(app.selected(), 2);
    }

    #[test]
    fn replay_results_become_linked_rows() {
        let mut app = app_with(3);
        app.handle(ch('j'));
        let original = app.selected_id().unwrap();
        let mut replay = row(10);
        replay.replay_of = Some(original);
        app.handle(Event::Replayed {
            original,
            result: Ok(replay.clone()),
            note: Some("re-signed for stripe with the secret from --verify".into()),
        });
        assert_eq!(app.row(0).unwrap().replay_of, Some(original));
        assert_eq!(app.selected_id(), Some(original));
        let text = &app.notice().unwrap().text;
        assert!(text.contains("replayed"), "{text}");
        assert!(text.contains("(re-signed for stripe"), "{text}");
        app.handle(Event::Replayed {
            original,
            result: Err("connection refused".into()),
            note: None,
        });
        assert!(app.notice().unwrap().error);
    }

    #[test]
    fn connection_states_from_the_agent() {
        let mut app = App::new(Mode::Live, false, 0);
        assert_eq!(*app.link(), Link::Connecting);
        app.handle(Event::Agent(AgentEvent::Ready(Ready {
            public_url: "http://127.0.0.1:7070/t/demo".into(),
            target: "http://127.0.0.1:3000".into(),
            relay: "http://127.0.0.1:7070".into(),
            embedded: true,
        })));
        assert_eq!(*app.link(), Link::Online);
        assert_eq!(
            app.header.public_url.as_deref(),
            Some("http://127.0.0.1:7070/t/demo")
        );
        app.handle(Event::Agent(AgentEvent::Connection(
            ConnectionState::Reconnecting {
                attempt: 2,
                retry_at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(5000),
                reason: "closed".into(),
            },
        )));
        assert!(matches!(
            app.link(),
            Link::Reconnecting {
                retry_at_ms: 5000,
                attempt: 2,
                ..
            }
        ));
    }

    #[test]
    fn window_merge_joins_and_replaces() {
        let mut w = Window {
            start: 10,
            rows: page(100, 10, 10),
        };
        w.merge(15, page(100, 15, 10));
        assert_eq!((w.start, w.rows.len()), (10, 15));
        w.merge(5, page(100, 5, 5));
        assert_eq!((w.start, w.rows.len()), (5, 20));
        for i in 5..25 {
            assert_eq!(w.get(i).unwrap().id, page(100, i, 1)[0].id);
        }
        w.merge(50, page(100, 50, 3));
        assert_eq!((w.start, w.rows.len()), (50, 3));
        w.trim(51, 2);
        assert_eq!((w.start, w.rows.len()), (50, 2));
    }
}
