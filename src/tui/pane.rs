//! The detail pane's flow on the [`App`]: opening and closing, following
//! the selection, loading the exchange once, tabs, body views and scrolling.

use ulid::Ulid;

use crate::exchange::Exchange;

use super::app::App;
use super::body::Tab;
use super::detail::Detail;
use super::events::Effect;

impl App {
    /// The detail pane, when open.
    pub fn detail(&self) -> Option<&Detail> {
        self.detail.as_ref()
    }

    /// The active detail tab.
    pub fn tab(&self) -> Tab {
        self.tab
    }

    /// Follows the selection to a new exchange and asks for it once.
    pub(super) fn wanted_detail(&mut self) -> Option<Effect> {
        let row_id = self.selected_id();
        let detail = self.detail.as_mut()?;
        let id = row_id?;
        if detail.id != id {
            *detail = Detail::new(id);
        }
        if detail.exchange.is_none() && !detail.missing && self.detail_in_flight.is_none() {
            self.detail_in_flight = Some(id);
            return Some(Effect::LoadDetail(id));
        }
        None
    }

    pub(super) fn on_detail(&mut self, id: Ulid, exchange: Option<Box<Exchange>>) {
        if self.detail_in_flight == Some(id) {
            self.detail_in_flight = None;
        }
        let Some(d) = self.detail.as_mut().filter(|d| d.id == id) else {
            return;
        };
        d.loaded(exchange);
        self.rebuild_detail();
    }

    /// Re-renders the detail pane's lines (after a load, tab or view change, resize).
    pub(super) fn rebuild_detail(&mut self) {
        let size = self.detail_size();
        let (tab, view, theme, mask) = (self.tab, self.view, self.theme, self.mask);
        if let Some(d) = &mut self.detail {
            d.rebuild(tab, view, theme, mask, size);
        }
    }

    pub(super) fn scroll_detail(&mut self, delta: isize) {
        let (rows, _) = self.detail_size();
        if let Some(d) = &mut self.detail {
            d.scroll_by(delta, rows);
        }
    }

    pub(super) fn toggle_detail(&mut self) {
        if self.detail.take().is_some() {
            self.follow = self.selected == 0;
            self.clamp();
            return;
        }
        match self.selected_id() {
            Some(id) => {
                self.detail = Some(Detail::new(id));
                self.clamp();
            }
            None if self.is_empty() => self.notify("nothing to open yet", false),
            None => self.notify("still loading; try again", false),
        }
    }

    /// Request or response; opens the detail when closed.
    pub(super) fn switch_tab(&mut self) {
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

    /// Masks or reveals secret header values (display only).
    pub(super) fn toggle_mask(&mut self) {
        self.mask = !self.mask;
        self.rebuild_detail();
        let now = if self.mask {
            "secret header values masked"
        } else {
            "secret header values shown (m masks them again)"
        };
        self.notify(now, false);
    }

    pub(super) fn cycle_view(&mut self) {
        self.view = self.view.next();
        self.rebuild_detail();
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crossterm::event::KeyCode;

    use super::*;
    use crate::event::AgentEvent;
    use crate::tui::events::Event;
    use crate::tui::testing::{app_with, ch, key, row};

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
    fn open_detail_pauses_follow() {
        let mut app = app_with(5);
        app.handle(key(KeyCode::Enter));
        let shown = app.detail().unwrap().id;
        app.handle(Event::Agent(AgentEvent::Exchange(row(9))));
        assert_eq!(app.selected_id(), Some(shown));
        assert_eq!(app.detail().unwrap().id, shown);
    }
}
