//! Every key binding, once: [`KEYMAP`] drives key handling
//! ([`lookup`]), the `?` help overlay ([`help_rows`]) and the footer hints
//! ([`footer`]).
//!
//! The filter prompt's line-editing keys are the prompt's own (see
//! [`super::prompt`]); only [`Scope::Anywhere`] bindings reach past it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Up one row (in the detail: scroll).
    Up,
    /// Down one row (in the detail: scroll).
    Down,
    /// Up a page (in the detail: scroll).
    PageUp,
    /// Down a page (in the detail: scroll).
    PageDown,
    /// The first row, following new ones (in the detail: scroll to the top).
    First,
    /// The last row (in the detail: scroll to the end).
    Last,
    /// The next (older) request, also from the detail.
    Next,
    /// The previous (newer) request, also from the detail.
    Prev,
    /// Open or close the detail.
    Open,
    /// Request or response tab.
    SwitchTab,
    /// Pretty, raw, hex.
    CycleView,
    /// Mask or reveal secret header values.
    ToggleMask,
    /// Replay the exchange.
    Replay,
    /// Edit the request, then replay it.
    Edit,
    /// Copy a curl command.
    CopyCurl,
    /// Open the filter prompt.
    Filter,
    /// Close the detail, else clear the filter, else the notice.
    Escape,
    /// Show the help overlay.
    Help,
    /// Open or close the stats view.
    Stats,
    /// Leave the inspector.
    Quit,
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Always, even in the prompt and over the help overlay.
    Anywhere,
    /// In the list and in the detail.
    Main,
    /// In the list, the detail and the stats view.
    View,
    /// In the list, with the detail closed.
    List,
    /// With the detail open.
    Detail,
}

/// What has the keyboard now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The filter prompt or the help overlay.
    Overlay,
    /// The list, with the detail closed.
    List,
    /// The detail.
    Detail,
    /// The stats view.
    Stats,
}

impl Scope {
    fn applies(self, context: Context) -> bool {
        match self {
            Scope::Anywhere => true,
            Scope::Main => matches!(context, Context::List | Context::Detail),
            Scope::View => context != Context::Overlay,
            Scope::List => context == Context::List,
            Scope::Detail => context == Context::Detail,
        }
    }
}

/// Modifiers a key needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mods {
    /// Any (a binding that needs one wins over this).
    Any,
    /// Shift held.
    Shift,
    /// Control held.
    Ctrl,
}

/// A key as bound: a code and the modifiers it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Modifiers it needs.
    pub mods: Mods,
}

impl Key {
    fn matches(self, key: &KeyEvent) -> bool {
        key.code == self.code
            && match self.mods {
                Mods::Any => true,
                Mods::Shift => key.modifiers.contains(KeyModifiers::SHIFT),
                Mods::Ctrl => key.modifiers.contains(KeyModifiers::CONTROL),
            }
    }
}

/// Where a footer hint shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// In the list.
    List,
    /// In the list while a filter is set.
    Filtered,
    /// With the detail open.
    Detail,
    /// In the list and in the detail.
    Both,
}

/// A footer hint: its label and its place in the footer line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Where it shows.
    pub show: Show,
    /// Hints are shown by rank, lowest first.
    pub rank: u8,
    /// The text.
    pub label: &'static str,
}

/// One binding: keys, where, what, and how the help and the footer say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The keys.
    pub keys: &'static [Key],
    /// Where they apply.
    pub scope: Scope,
    /// What they do.
    pub action: Action,
    /// The help overlay row (keys as shown, what they do); bindings without
    /// one are covered by a neighbour's row or are quiet aliases.
    pub help: Option<(&'static str, &'static str)>,
    /// The footer hint.
    pub footer: Option<Footer>,
}

const fn key(code: KeyCode) -> Key {
    Key {
        code,
        mods: Mods::Any,
    }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn shift(code: KeyCode) -> Key {
    Key {
        code,
        mods: Mods::Shift,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: Mods::Ctrl,
    }
}

const fn bind(keys: &'static [Key], scope: Scope, action: Action) -> Binding {
    Binding {
        keys,
        scope,
        action,
        help: None,
        footer: None,
    }
}

impl Binding {
    const fn help(self, keys: &'static str, what: &'static str) -> Self {
        Self {
            help: Some((keys, what)),
            ..self
        }
    }

    const fn footer(self, show: Show, rank: u8, label: &'static str) -> Self {
        Self {
            footer: Some(Footer { show, rank, label }),
            ..self
        }
    }
}

use Action as A;
use KeyCode as K;
use Scope::{Anywhere, Detail, List, Main, View};

/// The bindings, in the help overlay's order.
pub const KEYMAP: &[Binding] = &[
    bind(&[key(K::Up), ch('k')], View, A::Up)
        .help("↑ ↓  j k", "move (in the detail: scroll)")
        .footer(Show::Detail, 4, "↑↓ scroll"),
    bind(&[key(K::Down), ch('j')], View, A::Down),
    bind(&[key(K::PageUp), ch('b')], View, A::PageUp).help("PgUp PgDn", "page up / down"),
    bind(&[key(K::PageDown), ch(' ')], View, A::PageDown),
    bind(&[key(K::Home), ch('g')], View, A::First)
        .help("g G", "first / last (g follows new requests again)"),
    bind(&[key(K::End), ch('G')], View, A::Last),
    bind(&[key(K::Enter)], List, A::Open)
        .help("Enter", "open / close the detail")
        .footer(Show::List, 1, "Enter open"),
    bind(&[key(K::Enter)], Detail, A::Open).footer(Show::Detail, 10, "Enter close"),
    bind(&[key(K::Tab), key(K::BackTab)], Main, A::SwitchTab)
        .help("Tab", "request / response")
        .footer(Show::Detail, 2, "Tab req/resp"),
    bind(&[ch('v')], Main, A::CycleView)
        .help("v", "body view: pretty, raw, hex")
        .footer(Show::Detail, 3, "v view"),
    bind(&[ch('m')], Main, A::ToggleMask)
        .help("m", "mask / reveal secret header values")
        .footer(Show::Detail, 9, "m secrets"),
    bind(&[shift(K::Down), ch('n')], Main, A::Next)
        .help("n p", "next / previous request (in the detail)")
        .footer(Show::Detail, 5, "n/p next/prev"),
    bind(&[ch('J')], Detail, A::Next),
    bind(&[shift(K::Up), ch('p')], Main, A::Prev),
    bind(&[ch('K')], Detail, A::Prev),
    bind(&[ch('r')], Main, A::Replay)
        .help("r", "replay (re-signed if a secret fits; new row ↻)")
        .footer(Show::Both, 6, "r replay"),
    bind(&[ch('e')], Main, A::Edit)
        .help("e", "edit in $VISUAL/$EDITOR, then replay")
        .footer(Show::Both, 7, "e edit"),
    bind(&[ch('c')], Main, A::CopyCurl)
        .help("c", "copy as curl (clipboard via OSC 52, and a file)")
        .footer(Show::Both, 8, "c curl"),
    bind(&[ch('/')], Main, A::Filter)
        .help("/", "filter; Enter applies, empty clears")
        .footer(Show::List, 10, "/ filter"),
    bind(&[ch('s')], View, A::Stats)
        .help("s", "stats: health per path, provider, event (live)")
        .footer(Show::Both, 11, "s stats"),
    bind(&[key(K::Esc)], View, A::Escape)
        .help("Esc", "close the detail or stats, clear the filter")
        .footer(Show::Filtered, 11, "Esc clear filter"),
    bind(&[ch('?')], View, A::Help)
        .help("?", "this help")
        .footer(Show::Both, 12, "? help"),
    bind(&[ch('q')], View, A::Quit)
        .help("q  Ctrl-C", "quit")
        .footer(Show::List, 13, "q quit"),
    bind(&[ctrl('c'), ctrl('d')], Anywhere, A::Quit),
];

/// The action `key` triggers in `context`, if any. A binding that needs a
/// modifier wins over one that takes any (Shift-↓ is "next", ↓ scrolls).
pub fn lookup(key: &KeyEvent, context: Context) -> Option<Action> {
    KEYMAP
        .iter()
        .filter(|b| b.scope.applies(context))
        .flat_map(|b| b.keys.iter().map(move |k| (k, b.action)))
        .filter(|(k, _)| k.matches(key))
        .min_by_key(|(k, _)| k.mods == Mods::Any)
        .map(|(_, action)| action)
}

/// Whether some binding for `action` applies in `context`.
fn scope_applies(action: Action, context: Context) -> bool {
    KEYMAP
        .iter()
        .any(|b| b.action == action && b.scope.applies(context))
}

/// The help overlay's rows: (keys as shown, what they do).
pub fn help_rows() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYMAP.iter().filter_map(|b| b.help)
}

/// The footer hints for the list (`filtered` when a filter is set) or the
/// detail, in rank order, within `cols` columns: while they do not fit, the
/// highest-ranked hint goes, except `? help`, which lists them all.
pub fn footer(context: Context, filtered: bool, cols: usize) -> String {
    let mut hints: Vec<(Footer, Action)> = KEYMAP
        .iter()
        .filter_map(|b| b.footer.map(|f| (f, b.action)))
        .filter(|(f, action)| match (f.show, context) {
            // The stats view shows the hints that apply there.
            (Show::List | Show::Both, Context::Stats) => scope_applies(*action, Context::Stats),
            (Show::Both, _) | (Show::Detail, Context::Detail) | (Show::List, Context::List) => true,
            (Show::Filtered, Context::List) => filtered,
            _ => false,
        })
        .collect();
    hints.sort_by_key(|(f, _)| f.rank);
    let joined = |hints: &[(Footer, Action)]| {
        hints
            .iter()
            .map(|(f, _)| f.label)
            .collect::<Vec<_>>()
            .join("  ")
    };
    while super::text::width(&joined(&hints)) > cols {
        match hints.iter().rposition(|(_, a)| *a != Action::Help) {
            Some(i) => {
                hints.remove(i);
            }
            None => break,
        }
    }
    joined(&hints)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crossterm::event::{KeyEvent, KeyModifiers};

    use super::*;
    use crate::exchange::Header as HttpHeader;
    use crate::tui::app::App;
    use crate::tui::events::{Effect, Event};
    use crate::tui::status::Mode;
    use crate::tui::testing::{app_with, ch, ex, history, key, open_detail, sample_app, screen};

    fn event(k: &Key) -> KeyEvent {
        let modifiers = match k.mods {
            Mods::Any => KeyModifiers::NONE,
            Mods::Shift => KeyModifiers::SHIFT,
            Mods::Ctrl => KeyModifiers::CONTROL,
        };
        KeyEvent::new(k.code, modifiers)
    }

    #[test]
    fn every_help_row_of_the_table_is_in_the_overlay() {
        let mut app = sample_app(Mode::Live, &history(), 100, 30);
        app.handle(ch('?'));
        let shown = screen(&app);
        let rows: Vec<_> = help_rows().collect();
        for (keys, what) in &rows {
            assert!(
                shown.contains(&format!(" {keys:<11}{what}")),
                "{keys} {what}\n{shown}"
            );
        }
        let first = shown.lines().position(|l| l.contains(rows[0].1)).unwrap();
        for (i, (_, what)) in rows.iter().enumerate() {
            assert!(
                shown.lines().nth(first + i).unwrap().contains(what),
                "row {i} out of order"
            );
        }
        // The row after the table's is the overlay's blank line: nothing else is listed.
        let after = shown.lines().nth(first + rows.len()).unwrap();
        let inside = after.split('│').nth(1).unwrap();
        assert!(inside.trim().is_empty(), "{after:?}");
    }

    /// The footer line of an app in its current state.
    fn footer_of(app: &App) -> String {
        screen(app).lines().last().unwrap().trim().to_owned()
    }

    #[test]
    fn footer_hints_are_the_tables_labels() {
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 120, 30);
        let labels = |show: &[Show]| -> Vec<&str> {
            let mut f: Vec<Footer> = KEYMAP
                .iter()
                .filter_map(|b| b.footer)
                .filter(|f| show.contains(&f.show))
                .collect();
            f.sort_by_key(|f| f.rank);
            f.iter().map(|f| f.label).collect()
        };
        let list = footer_of(&app);
        assert_eq!(
            list,
            "Enter open  r replay  e edit  c curl  / filter  s stats  ? help  q quit"
        );
        assert_eq!(
            list.split("  ").collect::<Vec<_>>(),
            labels(&[Show::List, Show::Both])
        );

        app.handle(ch('/'));
        for c in "status:4xx".chars() {
            app.handle(ch(c));
        }
        app.handle(key(KeyCode::Enter));
        let filtered = footer_of(&app);
        assert_eq!(
            filtered.split("  ").collect::<Vec<_>>(),
            labels(&[Show::List, Show::Filtered, Show::Both])
        );
        assert!(filtered.contains("Esc clear filter"), "{filtered}");
        app.handle(key(KeyCode::Esc));

        // The stats view lists only what works there.
        app.handle(ch('s'));
        assert_eq!(footer_of(&app), "s stats  ? help  q quit");
        app.handle(ch('s'));

        open_detail(&mut app, &rows);
        let detail = footer_of(&app);
        assert_eq!(
            detail,
            "Tab req/resp  v view  ↑↓ scroll  n/p next/prev  r replay  e edit  c curl  m secrets  Enter close  s stats  ? help"
        );
        assert_eq!(
            detail.split("  ").collect::<Vec<_>>(),
            labels(&[Show::Detail, Show::Both])
        );
    }

    #[test]
    fn a_narrow_footer_drops_whole_hints_and_keeps_help() {
        assert_eq!(
            footer(Context::Detail, false, 100),
            "Tab req/resp  v view  ↑↓ scroll  n/p next/prev  r replay  e edit  c curl  m secrets  ? help"
        );
        assert_eq!(
            footer(Context::List, false, 55),
            "Enter open  r replay  e edit  c curl  / filter  ? help"
        );
        assert_eq!(footer(Context::List, false, 3), "? help");
        let rows = history();
        let mut app = sample_app(Mode::Live, &rows, 60, 20);
        open_detail(&mut app, &rows);
        let narrow = footer_of(&app);
        assert!(narrow.ends_with("? help"), "{narrow}");
        assert!(super::super::text::width(&narrow) <= 59, "{narrow}");
    }

    /// An app in `context`, somewhere in the middle of its list with a notice
    /// showing, so that most keys change something.
    fn app_in(context: Context) -> App {
        let mut app = app_with(50);
        for _ in 0..5 {
            app.handle(ch('j'));
        }
        match context {
            Context::List => {}
            Context::Detail => {
                let id = app.selected_id().unwrap();
                assert_eq!(
                    app.handle(key(KeyCode::Enter)),
                    Some(Effect::LoadDetail(id))
                );
                let mut long = ex(0, "POST", "/hooks/long", Some(200));
                long.id = id;
                long.request_headers = vec![HttpHeader::new("content-type", "text/plain")];
                long.request_body = (0..200)
                    .map(|i| format!("line {i}\n"))
                    .collect::<String>()
                    .into();
                app.handle(Event::Detail {
                    id,
                    exchange: Some(Box::new(long)),
                });
                for _ in 0..3 {
                    app.handle(ch('j'));
                }
                assert_eq!(app.detail().unwrap().scroll, 3);
            }
            Context::Overlay => {
                app.handle(ch('/'));
            }
            Context::Stats => {
                app.handle(ch('s'));
                app.handle(Event::Stats(Ok(crate::tui::testing::stats_report(80))));
                for _ in 0..3 {
                    app.handle(ch('j'));
                }
                assert_eq!(app.stats().unwrap().scroll, 3);
            }
        }
        app.handle(Event::Notice {
            text: "hello".into(),
            error: false,
        });
        app
    }

    #[test]
    fn every_bound_key_does_its_action_through_handle() {
        let mut checked = 0;
        for binding in KEYMAP {
            for context in [
                Context::List,
                Context::Detail,
                Context::Overlay,
                Context::Stats,
            ] {
                if !binding.scope.applies(context) {
                    continue;
                }
                for k in binding.keys {
                    let ev = event(k);
                    assert_eq!(
                        lookup(&ev, context),
                        Some(binding.action),
                        "{k:?} in {context:?}"
                    );
                    let mut by_key = app_in(context);
                    let before = format!("{by_key:?}");
                    let from_key = by_key.handle(Event::Key(ev));
                    let mut by_action = app_in(context);
                    let from_action = by_action
                        .perform(binding.action)
                        .or_else(|| by_action.next_effect());
                    assert_eq!(from_key, from_action, "{k:?} in {context:?}");
                    let after = format!("{by_key:?}");
                    assert_eq!(after, format!("{by_action:?}"), "{k:?} in {context:?}");
                    assert!(
                        from_key.is_some() || after != before,
                        "{k:?} in {context:?} did nothing"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > KEYMAP.len());
    }

    #[test]
    fn a_modifier_binding_wins_and_the_prompt_keeps_plain_keys() {
        let shift_down = KeyEvent::new(KeyCode::Down, KeyModifiers::SHIFT);
        assert_eq!(lookup(&shift_down, Context::Detail), Some(Action::Next));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(&ctrl_c, Context::List), Some(Action::Quit));
        assert_eq!(lookup(&ctrl_c, Context::Overlay), Some(Action::Quit));
        let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(&q, Context::Overlay), None);
        assert_eq!(
            lookup(
                &KeyEvent::new(KeyCode::Char('J'), KeyModifiers::SHIFT),
                Context::List
            ),
            None
        );
    }
}
