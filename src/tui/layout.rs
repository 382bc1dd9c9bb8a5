//! Where things are on screen; shared by rendering and by key and mouse
//! handling so both agree.

use ratatui::layout::Rect;

use super::app::App;

/// The screen's parts.
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

/// Splits the screen: header, then the list over the detail (or the detail
/// alone on a short terminal), then the footer.
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

impl App {
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
    pub(super) fn detail_size(&self) -> (usize, usize) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_takes_two_thirds_or_the_whole_body() {
        let tall = layout(Rect::new(0, 0, 80, 30), true);
        assert_eq!(tall.header.height, 2);
        assert_eq!(tall.footer.y, 29);
        let (list, detail) = (
            tall.list.unwrap_or_default(),
            tall.detail.unwrap_or_default(),
        );
        assert_eq!((list.y, list.height), (2, 9));
        assert_eq!((detail.y, detail.height), (11, 18));
        let short = layout(Rect::new(0, 0, 80, 10), true);
        assert_eq!(short.list, None);
        assert_eq!(short.detail.map(|r| r.height), Some(7));
        let closed = layout(Rect::new(0, 0, 80, 10), false);
        assert_eq!(closed.list.map(|r| r.height), Some(7));
        assert_eq!(closed.detail, None);
        let tiny = layout(Rect::new(0, 0, 10, 1), false);
        assert_eq!(
            (tiny.header.height, tiny.footer.height, tiny.list),
            (1, 0, None)
        );
    }
}
