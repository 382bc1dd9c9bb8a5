//! The terminal: raw mode and the alternate screen on the way in, restored
//! on every way out (return, error, panic, SIGTERM/SIGHUP/SIGINT), and
//! terminal input as events, paused while `$EDITOR` owns the terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// After a stop signal, how long the loop has to quit on its own before the
/// terminal is restored and the process exits anyway (an effect such as
/// `$EDITOR` may be holding the loop).
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The signals that stop the inspector: SIGTERM (a supervisor, `kill`),
/// SIGHUP (the terminal closed) and SIGINT (`kill -INT`; Ctrl-C itself is a
/// key in raw mode). Registered before the terminal is set up, so a failure
/// prints plainly; once registered they no longer kill the process outright.
pub(super) struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Takes over the signals.
    pub(super) fn register() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let on = |kind: SignalKind, name: &str| {
                signal(kind).with_context(|| format!("cannot listen for {name}"))
            };
            Ok(Self {
                term: on(SignalKind::terminate(), "SIGTERM")?,
                hup: on(SignalKind::hangup(), "SIGHUP")?,
                int: on(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal: its name and number.
    async fn next(&mut self) -> (&'static str, i32) {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.term.recv() => ("SIGTERM", 15),
                Some(()) = self.hup.recv() => ("SIGHUP", 1),
                Some(()) = self.int.recv() => ("SIGINT", 2),
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            ("Ctrl-C", 2)
        }
    }

    /// Sends the first signal to the loop as [`Event::Stop`], so it quits
    /// and the terminal is restored on the way out. Should the loop not be
    /// done after [`STOP_GRACE`] or a second signal, restores the terminal
    /// here and exits with 128 + the signal's number. Abort the task once
    /// the loop is done.
    pub(super) fn spawn(
        mut self,
        events: mpsc::UnboundedSender<Event>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let (name, number) = self.next().await;
            let _ = events.send(Event::Stop(name));
            let _ = tokio::time::timeout(STOP_GRACE, self.next()).await;
            restore_terminal();
            std::process::exit(128 + number);
        })
    }
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
