//! The detail pane's state: which exchange, its tab and body view, its
//! lines wrapped to the pane, and the scroll position.

use ratatui::text::Line;
use ulid::Ulid;

use crate::exchange::Exchange;

use super::body::{BodyView, Tab, detail_lines};
use super::text;
use super::theme::Theme;

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

impl Detail {
    /// The pane for `id`, not loaded yet.
    pub fn new(id: Ulid) -> Self {
        Self {
            id,
            exchange: None,
            missing: false,
            scroll: 0,
            lines: Vec::new(),
        }
    }

    /// Takes the loaded exchange, or notes that it is gone.
    pub fn loaded(&mut self, exchange: Option<Box<Exchange>>) {
        match exchange {
            Some(ex) => self.exchange = Some(ex),
            None => self.missing = true,
        }
    }

    /// Renders the lines of `tab` in `view` (secret header values masked
    /// with `mask`), wrapped to `cols`, keeping the scroll inside a pane of `rows`.
    pub fn rebuild(
        &mut self,
        tab: Tab,
        view: BodyView,
        theme: Theme,
        mask: bool,
        (rows, cols): (usize, usize),
    ) {
        self.lines = match &self.exchange {
            Some(ex) => detail_lines(ex, tab, view, theme, mask)
                .into_iter()
                .flat_map(|l| text::wrap(l, cols))
                .collect(),
            None => Vec::new(),
        };
        self.scroll = self.scroll.min(self.lines.len().saturating_sub(rows));
    }

    /// Scrolls by `delta` lines in a pane of `rows`.
    pub fn scroll_by(&mut self, delta: isize, rows: usize) {
        let max = self.lines.len().saturating_sub(rows);
        self.scroll = self.scroll.saturating_add_signed(delta).min(max);
    }
}
