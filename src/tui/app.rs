//! The inspector's state: pure, with no terminal, network or database.
//!
//! Everything that happens arrives as one [`Event`] (a key, a tick with the
//! time, an agent event, a result of earlier work); [`App::handle`] updates
//! the state and may ask for one [`Effect`] (load a page, replay, quit…) that
//! the runtime performs and answers with another event. [`App::next_effect`]
//! yields the work the current view still needs (page and detail loads), one
//! request in flight at a time.
//!
//! Its state types live in their own modules (window, filtered, prompt,
//! detail, status), which know nothing of the app; the flows that extend
//! `App` live in `list` (paging, new rows, selection, filter), `pane` (the
//! detail pane) and `layout` (sizes), and this module imports none of them,
//! so no module depends on one that depends on it. Keys go through
//! [`super::keymap`].

use std::collections::VecDeque;

use crossterm::event::{KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Position;
use ulid::Ulid;

use crate::event::AgentEvent;
use crate::exchange::ExchangeSummary;

use super::body::{BodyView, Tab};
use super::detail::Detail;
use super::events::{Effect, Event};
use super::filtered::Filtered;
use super::keymap::{self, Action, Context};
use super::prompt::Prompt;
use super::status::{Header, Link, Mode, Notice};
use super::text::{self, short_id};
use super::theme::Theme;
use super::tunnels::Tunnels;
use super::window::Window;

/// How often the store is asked for rows written by other processes.
pub const POLL_EVERY_MS: u64 = 2_000;
/// How long a notice stays in the footer.
const NOTICE_MS: u64 = 8_000;
/// Rows per mouse-wheel notch.
const WHEEL: usize = 3;

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
    /// Rows in the unfiltered list.
    pub(super) total: usize,
    pub(super) window: Window,
    /// Rows inserted on top so far (places pages asked for before).
    pub(super) epoch: u64,
    /// The newest id seen (polls look for newer ones).
    pub(super) newest: Option<Ulid>,
    pub(super) recent: VecDeque<Ulid>,
    pub(super) page_in_flight: bool,
    pub(super) filtered: Option<Filtered>,
    /// The last filter generation handed out.
    pub(super) generation: u64,
    pub(super) selected: usize,
    pub(super) top: usize,
    pub(super) follow: bool,
    pub(super) history_errors: Option<u64>,
    pub(super) new_errors: u64,
    pub(super) session: u64,
    pub(super) detail: Option<Detail>,
    pub(super) detail_in_flight: Option<Ulid>,
    pub(super) tab: Tab,
    pub(super) view: BodyView,
    /// Secret header values are masked in the detail (see [`crate::mask`]).
    pub(super) mask: bool,
    pub(super) prompt: Option<Prompt>,
    pub(super) help: bool,
    pub(super) notice: Option<Notice>,
    pub(super) last_poll_ms: u64,
    pub(super) poll_in_flight: bool,
    pub(super) loads_paused_until: u64,
    /// The stats view, while it shows (`s`).
    pub(super) stats: Option<super::stats::StatsView>,
    /// Tunnel names seen (the tunnel column shows once there are several).
    pub(super) tunnels: Tunnels,
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
            mask: true,
            prompt: None,
            help: false,
            notice: None,
            last_poll_ms: now_ms,
            poll_in_flight: false,
            loads_paused_until: 0,
            stats: None,
            tunnels: Tunnels::default(),
        }
    }

    /// Masks secret header values in the detail (the default) or not; `m`
    /// toggles it. Display only: stored, exported and replayed requests keep
    /// the real bytes.
    pub fn set_mask_secrets(&mut self, mask: bool) {
        self.mask = mask;
        self.rebuild_detail();
    }

    /// True while secret header values are masked.
    pub fn masks_secrets(&self) -> bool {
        self.mask
    }

    /// Sets what the top bar says about the tunnel.
    pub fn set_header(&mut self, header: Header) {
        self.header = header;
    }

    /// Notes tunnel names the history holds or the agent serves; with two or
    /// more, the list shows a tunnel column (as [`Event::Tunnels`] does).
    pub fn note_tunnels<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.tunnels.note_all(names);
    }

    /// The tunnel names seen so far.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
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

    /// What has the keyboard: the prompt or help, the detail, or the list.
    pub fn context(&self) -> Context {
        if self.prompt.is_some() || self.help {
            Context::Overlay
        } else if self.stats.is_some() {
            Context::Stats
        } else if self.detail.is_some() {
            Context::Detail
        } else {
            Context::List
        }
    }

    pub(super) fn notify(&mut self, text: impl Into<String>, error: bool) {
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
            Event::Key(key) => self.on_key(&key),
            Event::Mouse(m) => self.on_mouse(m),
            Event::Paste(text) => {
                if let Some(p) = &mut self.prompt {
                    p.paste(&text);
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
            Event::Polled(rows) => self.on_polled(rows),
            Event::HistoryErrors(n) => {
                self.history_errors = Some(n);
                None
            }
            Event::Tunnels(names) => {
                self.note_tunnels(names.iter().map(String::as_str));
                None
            }
            Event::FilterChunk {
                generation,
                rows,
                scanned,
                done,
            } => {
                self.on_filter_chunk(generation, rows, scanned, done);
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
            } => self.on_replayed(original, result, note),
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
            Event::Stats(report) => {
                self.on_stats(report);
                None
            }
            Event::Stop(_) => return Some(Effect::Quit),
        };
        effect.or_else(|| self.next_effect())
    }

    /// The next load the view needs (a page of rows, the detail's exchange),
    /// if none of that kind is already in flight.
    pub fn next_effect(&mut self) -> Option<Effect> {
        if self.now_ms < self.loads_paused_until {
            return None;
        }
        self.wanted_page().or_else(|| self.wanted_detail())
    }

    fn on_replayed(
        &mut self,
        original: Ulid,
        result: Result<ExchangeSummary, String>,
        note: Option<String>,
    ) -> Option<Effect> {
        match result {
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
        }
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
        self.stats_due()
    }

    fn on_agent(&mut self, ev: AgentEvent) -> Option<Effect> {
        match ev {
            AgentEvent::Ready(r) => {
                // An agent serving several tunnels shows the column from the
                // start. (One tunnel notes nothing here: its rows name it.)
                if !r.more.is_empty() {
                    let first = crate::web::tunnel_name(&r.public_url);
                    self.tunnels.note_all(
                        std::iter::once(first.as_str())
                            .chain(r.more.iter().map(|t| t.name.as_str())),
                    );
                }
                self.header = Header::from(&r);
                self.link = Link::Online;
                None
            }
            AgentEvent::Connection(state) => {
                self.link = Link::from(state);
                None
            }
            AgentEvent::Exchange(s) => {
                self.session += 1;
                self.insert_new(s)
            }
            AgentEvent::Notice(text) => {
                // An alert that fires rings the bell (a recovery does not).
                let alert = crate::stats::alert::is_firing_notice(&text);
                self.notify(text, alert);
                alert.then_some(Effect::Bell)
            }
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

    fn on_key(&mut self, key: &KeyEvent) -> Option<Effect> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if let Some(action) = keymap::lookup(key, self.context()) {
            return self.perform(action);
        }
        if self.prompt.is_some() {
            return self.on_prompt_key(key);
        }
        // Any other key closes the help overlay.
        self.help = false;
        None
    }

    /// Does what a key bound to `action` does in the current context.
    pub(super) fn perform(&mut self, action: Action) -> Option<Effect> {
        if self.stats.is_some() {
            return self.perform_in_stats(action);
        }
        let in_detail = self.detail.is_some();
        let page = if in_detail {
            self.detail_size().0
        } else {
            self.list_rows()
        };
        let page = isize::try_from(page.saturating_sub(1).max(1)).unwrap_or(1);
        let step = |delta: isize, app: &mut Self| {
            if in_detail {
                app.scroll_detail(delta);
            } else {
                app.move_by(delta);
            }
        };
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Help => self.help = true,
            Action::Stats => return self.toggle_stats(),
            Action::Filter => self.open_prompt(),
            Action::Escape => return self.escape(),
            Action::Open => self.toggle_detail(),
            Action::SwitchTab => self.switch_tab(),
            Action::CycleView => self.cycle_view(),
            Action::ToggleMask => self.toggle_mask(),
            Action::Replay => {
                let id = self.target()?;
                self.notify(format!("replaying {}…", short_id(&id)), false);
                return Some(Effect::Replay(id));
            }
            Action::Edit => return self.target().map(Effect::EditReplay),
            Action::CopyCurl => return self.target().map(Effect::CopyCurl),
            Action::Up => step(-1, self),
            Action::Down => step(1, self),
            Action::PageUp => step(-page, self),
            Action::PageDown => step(page, self),
            Action::First if in_detail => self.scroll_detail(isize::MIN),
            Action::Last if in_detail => self.scroll_detail(isize::MAX),
            Action::First => self.select(0),
            Action::Last => self.select(usize::MAX),
            Action::Next => self.move_by(1),
            Action::Prev => self.move_by(-1),
        }
        None
    }

    /// What a key does while the stats view shows: scroll, close, help, quit.
    fn perform_in_stats(&mut self, action: Action) -> Option<Effect> {
        let page = isize::try_from(self.stats_rows().saturating_sub(1).max(1)).unwrap_or(1);
        match action {
            Action::Quit => return Some(Effect::Quit),
            Action::Help => self.help = true,
            Action::Stats | Action::Escape => return self.toggle_stats(),
            Action::Up => self.scroll_stats(-1),
            Action::Down => self.scroll_stats(1),
            Action::PageUp => self.scroll_stats(-page),
            Action::PageDown => self.scroll_stats(page),
            Action::First => self.scroll_stats(isize::MIN),
            Action::Last => self.scroll_stats(isize::MAX),
            // Bound only in the list and the detail.
            _ => {}
        }
        None
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

    fn on_mouse(&mut self, m: MouseEvent) -> Option<Effect> {
        if self.help || self.prompt.is_some() || self.stats.is_some() {
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;
    use crate::event::{ConnectionState, Ready};
    use crate::tui::testing::{app_with, ch, drive, key, row};

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
    fn a_stop_signal_quits_from_anywhere() {
        let mut app = app_with(3);
        app.handle(ch('/'));
        assert_eq!(app.handle(Event::Stop("SIGTERM")), Some(Effect::Quit));
        let mut app = app_with(3);
        app.handle(ch('?'));
        assert_eq!(app.handle(Event::Stop("SIGHUP")), Some(Effect::Quit));
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
            web_url: None,
            more: Vec::new(),
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
}
