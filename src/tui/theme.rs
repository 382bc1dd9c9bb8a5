//! Styles, with colour switched off as a whole for `NO_COLOR`.
//!
//! Without colour only modifiers (bold, dim, reverse) remain, so the
//! selection and the active tab stay visible.

use ratatui::style::{Color, Modifier, Style};

/// The inspector's styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used at all.
    pub color: bool,
}

impl Theme {
    /// A foreground colour, or nothing without colour.
    pub fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// Secondary text.
    pub fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// Emphasis.
    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Something went wrong.
    pub fn error(self) -> Style {
        self.fg(Color::Red)
    }

    /// Something went right.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Attention, not failure.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Header names, JSON keys.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// JSON strings.
    pub fn string(self) -> Style {
        self.fg(Color::Green)
    }

    /// JSON numbers and literals.
    pub fn literal(self) -> Style {
        self.fg(Color::Magenta)
    }

    /// The selected row and the active tab.
    pub fn selected(self) -> Style {
        if self.color {
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// The title badge.
    pub fn badge(self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// A status code coloured by class: 2xx green, 3xx cyan, 4xx yellow,
    /// 5xx and no response red.
    pub fn status(self, status: Option<u16>) -> Style {
        match status {
            Some(200..=299) => self.ok(),
            Some(100..=199 | 300..=399) => self.key(),
            Some(400..=499) => self.warn(),
            _ => self.error().add_modifier(Modifier::BOLD),
        }
    }
}
