//! The terminal: raw mode and the alternate screen on the way in, restored
//! on every way out (return, error, panic), and terminal input as events,
//! paused while `$EDITOR` owns the terminal.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

use super::events::Event;

/// True while the terminal is in the inspector's modes (raw, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hook so the loop stops instead of drawing on a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as it was: cooked mode, main screen, no mouse
/// reporting, cursor shown. Does nothing when not active.
pub fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = crossterm::execute!(
            std::io::stdout(),
            DisableBracketedPaste,
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

/// Puts the terminal in the inspector's modes.
pub(super) fn enter_terminal() -> std::io::Result<()> {
    ACTIVE.store(true, Ordering::SeqCst);
    enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste,
        crossterm::cursor::Hide
    )
}

/// True once a panic happened while the terminal was in the inspector's modes.
pub(super) fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Restores the terminal when dropped: on return, on error and on unwinding.
pub(super) struct TerminalGuard;

impl TerminalGuard {
    /// Installs the panic hook and enters the inspector's modes.
    pub(super) fn enter() -> anyhow::Result<Self> {
        install_panic_hook();
        PANICKED.store(false, Ordering::SeqCst);
        let guard = Self;
        enter_terminal().context("cannot set up the terminal")?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Installs (once per process) a panic hook that restores the terminal
/// before the panic message is printed.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                PANICKED.store(true, Ordering::SeqCst);
            }
            restore_terminal();
            previous(info);
        }));
    });
}

/// Reads terminal input into the loop's channel; pauses and resumes (while
/// `$EDITOR` owns the terminal).
pub(super) struct Input {
    control: mpsc::UnboundedSender<(bool, oneshot::Sender<()>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Input {
    /// Starts reading.
    pub(super) fn spawn(events: mpsc::UnboundedSender<Event>) -> Self {
        let (control, mut commands) = mpsc::unbounded_channel::<(bool, oneshot::Sender<()>)>();
        let task = tokio::spawn(async move {
            let mut stream = Some(EventStream::new());
            loop {
                if let Some(s) = stream.as_mut() {
                    tokio::select! {
                        ev = s.next() => match ev {
                            Some(Ok(ev)) => {
                                if let Some(ev) = translate(ev)
                                    && events.send(ev).is_err()
                                {
                                    return;
                                }
                            }
                            Some(Err(_)) | None => stream = None,
                        },
                        cmd = commands.recv() => match cmd {
                            Some((pause, ack)) => {
                                if pause {
                                    stream = None;
                                }
                                let _ = ack.send(());
                            }
                            None => return,
                        },
                    }
                } else {
                    match commands.recv().await {
                        Some((pause, ack)) => {
                            if !pause {
                                stream = Some(EventStream::new());
                            }
                            let _ = ack.send(());
                        }
                        None => return,
                    }
                }
            }
        });
        Self { control, task }
    }

    /// Stops (`true`) or resumes reading; returns once the reader obeyed.
    pub(super) async fn set_paused(&self, pause: bool) {
        let (ack, done) = oneshot::channel();
        if self.control.send((pause, ack)).is_ok() {
            let _ = done.await;
        }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn translate(ev: TermEvent) -> Option<Event> {
    match ev {
        TermEvent::Key(k) => Some(Event::Key(k)),
        TermEvent::Mouse(m) => Some(Event::Mouse(m)),
        TermEvent::Paste(s) => Some(Event::Paste(s)),
        TermEvent::Resize(width, height) => Some(Event::Resize { width, height }),
        TermEvent::FocusGained | TermEvent::FocusLost => None,
    }
}
