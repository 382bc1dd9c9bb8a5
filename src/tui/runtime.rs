//! Running the inspector: terminal set-up and restore, the event loop, and
//! the work behind [`Effect`]s (store reads on a worker thread, replays on
//! tasks, `$EDITOR`, the clipboard).
//!
//! The loop ([`run_loop`]) is generic over the ratatui backend and over a
//! [`Host`] that performs effects, so tests drive it with a `TestBackend`.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use base64::prelude::*;
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt as _;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use crate::config::Paths;
use crate::event::AgentEvent;
use crate::exchange::{Exchange, ExchangeSummary, now_ms};
use crate::export::{self, http_message};
use crate::filter::Filter;
use crate::replay::{self, ReplayOptions, ReplayRequest};
use crate::store::Store;
use crate::verify::SecretSpec;

use super::app::{App, Effect, Event, Mode, PAGE, Page};
use super::text::short_id;
use super::view;

/// How often the clock ticks (reconnect countdown, notices, polling).
const TICK: Duration = Duration::from_millis(250);
/// Rows per chunk when a filter scans summaries.
const SCAN_CHUNK: usize = 5_000;
/// A text search reports progress every this many rows.
const GREP_PROGRESS: u64 = 500;
/// Curl commands longer than this are only saved to a file (terminals cap OSC 52).
const OSC52_MAX: usize = 100_000;

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

fn enter_terminal() -> std::io::Result<()> {
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

/// Restores the terminal when dropped: on return, on error and on unwinding.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> anyhow::Result<Self> {
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

/// Whether the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Leave the inspector.
    Quit,
}

/// Performs effects for the loop.
pub(crate) trait Host<B: Backend> {
    /// Does `effect`; results come back later as events on the loop's channel.
    fn perform(
        &mut self,
        effect: Effect,
        terminal: &mut Terminal<B>,
    ) -> impl Future<Output = anyhow::Result<Flow>>;
}

/// The event loop: draw, wait for events, apply them (in batches), perform
/// effects, until an effect says quit or the channel closes.
pub(crate) async fn run_loop<B, H>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    events: &mut mpsc::UnboundedReceiver<Event>,
    host: &mut H,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    H: Host<B>,
{
    let size = terminal.size()?;
    let mut pending = VecDeque::from([Event::Resize {
        width: size.width,
        height: size.height,
    }]);
    loop {
        while let Some(event) = pending.pop_front() {
            let mut effect = app.handle(event);
            while let Some(e) = effect {
                if host.perform(e, terminal).await? == Flow::Quit {
                    return Ok(());
                }
                effect = app.next_effect();
            }
        }
        if PANICKED.load(Ordering::SeqCst) {
            anyhow::bail!("the inspector stopped after an internal error (see the message above)");
        }
        terminal.draw(|f| view::render(app, f))?;
        let Some(event) = events.recv().await else {
            return Ok(());
        };
        pending.push_back(event);
        while pending.len() < 512 {
            match events.try_recv() {
                Ok(e) => pending.push_back(e),
                Err(_) => break,
            }
        }
    }
}

/// Work for the store thread.
enum Job {
    Page {
        offset: usize,
        limit: usize,
        epoch: u64,
    },
    Detail(Ulid),
    Get(Ulid, oneshot::Sender<Result<Option<Exchange>, String>>),
    InsertReplay {
        original: Ulid,
        exchange: Box<Exchange>,
        note: Option<String>,
    },
    Poll,
    CheckLive {
        generation: u64,
        summary: Box<ExchangeSummary>,
        filter: Box<Filter>,
        attempt: u32,
    },
}

/// A thread that owns a store connection and answers jobs with events.
#[derive(Clone)]
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Worker {
    fn spawn(mut store: Store, events: mpsc::UnboundedSender<Event>) -> anyhow::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let again = jobs.clone();
        std::thread::Builder::new()
            .name("hooktunnel-tui-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let event = serve(&mut store, job, &again);
                    if let Some(event) = event
                        && events.send(event).is_err()
                    {
                        break;
                    }
                }
            })
            .context("cannot start the history reader")?;
        Ok(Self { jobs })
    }

    fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    async fn get(&self, id: Ulid) -> anyhow::Result<Exchange> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Get(id, tx));
        match rx.await {
            Ok(Ok(Some(ex))) => Ok(ex),
            Ok(Ok(None)) => anyhow::bail!("{} is no longer in the history", short_id(&id)),
            Ok(Err(e)) => Err(anyhow::anyhow!(e)),
            Err(_) => anyhow::bail!("the history reader stopped"),
        }
    }
}

fn serve(store: &mut Store, job: Job, again: &std::sync::mpsc::Sender<Job>) -> Option<Event> {
    match job {
        Job::Page {
            offset,
            limit,
            epoch,
        } => Some(match store.list(limit, offset) {
            Ok(rows) => Event::Page(Page {
                offset,
                limit,
                epoch,
                rows,
            }),
            Err(e) => Event::LoadFailed(e.to_string()),
        }),
        Job::Detail(id) => Some(match store.get(&id) {
            Ok(ex) => Event::Detail {
                id,
                exchange: ex.map(Box::new),
            },
            Err(e) => Event::LoadFailed(e.to_string()),
        }),
        Job::Get(id, reply) => {
            let _ = reply.send(store.get(&id).map_err(|e| e.to_string()));
            None
        }
        Job::InsertReplay {
            original,
            exchange,
            note,
        } => Some(Event::Replayed {
            original,
            result: store
                .insert(&exchange)
                .map(|()| exchange.summary())
                .map_err(|e| format!("the replay ran but could not be stored: {e}")),
            note,
        }),
        Job::Poll => Some(Event::Polled(store.list(50, 0).unwrap_or_default())),
        Job::CheckLive {
            generation,
            summary,
            filter,
            attempt,
        } => match store.get(&summary.id) {
            Ok(Some(ex)) => Some(Event::LiveChecked {
                generation,
                summary: *summary,
                matched: filter.matches(&ex),
            }),
            // The batching writer may not have stored it yet: look again soon.
            Ok(None) if attempt < 40 => {
                let again = again.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = again.send(Job::CheckLive {
                        generation,
                        summary,
                        filter,
                        attempt: attempt + 1,
                    });
                });
                None
            }
            Ok(None) | Err(_) => None,
        },
    }
}

/// Scans the history newest first for `filter`'s matches among rows up to
/// `upto`, sending chunks until done or until `current` moves on.
pub(super) fn scan(
    db: &Path,
    generation: u64,
    filter: &Filter,
    upto: Option<Ulid>,
    current: &AtomicU64,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let (mut offset, mut scanned) = (0usize, 0u64);
    let mut last: Option<Ulid> = None;
    let send = |rows: Vec<ExchangeSummary>, scanned: u64, done: bool| {
        events
            .send(Event::FilterChunk {
                generation,
                rows,
                scanned,
                done,
            })
            .is_ok()
    };
    loop {
        if current.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        let batch = store.list(SCAN_CHUNK, offset)?;
        let n = batch.len();
        let lowest = batch.last().map(|s| s.id);
        let mut rows = Vec::new();
        for s in batch {
            // New rows shift offsets: skip what was seen (ids only go down).
            if upto.is_some_and(|u| s.id > u) || last.is_some_and(|l| s.id >= l) {
                continue;
            }
            scanned += 1;
            match filter.matches_summary(&s) {
                Some(true) => rows.push(s),
                Some(false) => {}
                // Text search: read this one exchange in full, by its key.
                None => {
                    if store.get(&s.id)?.is_some_and(|ex| filter.matches(&ex)) {
                        rows.push(s);
                    }
                    if scanned.is_multiple_of(GREP_PROGRESS)
                        && (current.load(Ordering::SeqCst) != generation
                            || !send(std::mem::take(&mut rows), scanned, false))
                    {
                        return Ok(());
                    }
                }
            }
        }
        if lowest.is_some() {
            last = lowest;
        }
        offset += n;
        let done = n < SCAN_CHUNK;
        if !send(rows, scanned, done) || done {
            return Ok(());
        }
    }
}

/// Counts error rows (see [`super::app::is_error`]) up to `upto`.
pub(super) fn count_errors(db: &Path, upto: Option<Ulid>) -> anyhow::Result<u64> {
    let store = Store::open(db)?;
    let Some(upto) = upto else { return Ok(0) };
    let (mut offset, mut errors) = (0usize, 0u64);
    let mut last: Option<Ulid> = None;
    loop {
        let batch = store.list(SCAN_CHUNK, offset)?;
        errors += batch
            .iter()
            .filter(|s| s.id <= upto && last.is_none_or(|l| s.id < l) && super::app::is_error(s))
            .count() as u64;
        if let Some(s) = batch.last() {
            last = Some(s.id);
        }
        offset += batch.len();
        if batch.len() < SCAN_CHUNK {
            return Ok(errors);
        }
    }
}

/// Pauses and resumes terminal input (while `$EDITOR` owns the terminal).
struct Input {
    control: mpsc::UnboundedSender<(bool, oneshot::Sender<()>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Input {
    fn spawn(events: mpsc::UnboundedSender<Event>) -> Self {
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

    async fn set_paused(&self, pause: bool) {
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

/// Performs effects against the real store, network and terminal.
struct TerminalHost {
    worker: Worker,
    events: mpsc::UnboundedSender<Event>,
    input: Input,
    paths: Paths,
    scan_generation: Arc<AtomicU64>,
    /// Secrets `r` and `e` re-sign with, each with where it came from.
    secrets: Arc<Vec<(SecretSpec, String)>>,
}

impl TerminalHost {
    fn notice(&self, text: impl Into<String>, error: bool) {
        let _ = self.events.send(Event::Notice {
            text: text.into(),
            error,
        });
    }

    /// Sends `request` as a replay of `original` in the background.
    fn spawn_replay(&self, original: Exchange, request: ReplayRequest) {
        tokio::spawn(send_replay(
            self.worker.clone(),
            self.events.clone(),
            self.secrets.clone(),
            original,
            request,
        ));
    }

    /// Loads `id` and replays it as captured, in the background.
    fn replay(&self, id: Ulid) {
        let worker = self.worker.clone();
        let events = self.events.clone();
        let secrets = self.secrets.clone();
        tokio::spawn(async move {
            match worker.get(id).await {
                Ok(original) => {
                    let request = ReplayRequest::original(&original);
                    send_replay(worker, events, secrets, original, request).await;
                }
                Err(e) => {
                    let _ = events.send(Event::Replayed {
                        original: id,
                        result: Err(format!("{e:#}")),
                        note: None,
                    });
                }
            }
        });
    }

    fn scratch_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.paths.data_dir.join("scratch");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    async fn copy_curl(
        &self,
        id: Ulid,
        terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    ) -> anyhow::Result<()> {
        let ex = self.worker.get(id).await?;
        let script = export::curl(&ex, &ex.target, None).script;
        let file = self.scratch_dir()?.join("last-curl.sh");
        write_private(&file, script.as_bytes())?;
        let clipboard = if script.len() <= OSC52_MAX {
            let osc = format!(
                "\x1b]52;c;{}\x07",
                BASE64_STANDARD.encode(script.as_bytes())
            );
            let backend = terminal.backend_mut();
            backend.write_all(osc.as_bytes())?;
            std::io::Write::flush(backend)?;
            let tmux = if std::env::var_os("TMUX").is_some() {
                "; tmux needs set-clipboard on"
            } else {
                ""
            };
            format!("and to the clipboard (OSC 52, if the terminal allows it{tmux})")
        } else {
            "(too long for the clipboard)".to_owned()
        };
        self.notice(
            format!(
                "curl for {} saved to {} {clipboard}",
                short_id(&id),
                file.display()
            ),
            false,
        );
        Ok(())
    }

    async fn edit_and_replay(
        &self,
        id: Ulid,
        terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    ) -> anyhow::Result<()> {
        let original = self.worker.get(id).await?;
        let dir = self.scratch_dir()?;
        let message = dir.join(format!("{id}.http"));
        let body_file = dir.join(format!("{id}.body"));
        let (text, binary) = http_message::render(&original, Some(&body_file));
        let text = format!(
            "# hooktunnel: edit this request, then save and quit to send it.\n# Delete everything to cancel.\n{text}"
        );
        write_private(&message, text.as_bytes())?;
        if let Some(bytes) = &binary {
            write_private(&body_file, bytes)?;
        }

        self.input.set_paused(true).await;
        restore_terminal();
        let editor_path = message.clone();
        let status = tokio::task::spawn_blocking(move || run_editor(&editor_path)).await;
        enter_terminal().context("cannot set up the terminal again")?;
        terminal.clear()?;
        self.input.set_paused(false).await;

        let outcome = (|| -> anyhow::Result<Option<ReplayRequest>> {
            match status {
                Ok(Ok(s)) if s.success() => {}
                Ok(Ok(s)) => anyhow::bail!("the editor exited with {s}; nothing sent"),
                Ok(Err(e)) => return Err(e),
                Err(e) => anyhow::bail!("the editor task failed: {e}"),
            }
            let edited = std::fs::read(&message)
                .with_context(|| format!("cannot read {}", message.display()))?;
            let mut request = match http_message::parse(&edited) {
                Ok(r) => r,
                Err(http_message::MessageError::Empty) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if let Some(path) = request.body_file.take() {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read the body file {}", path.display()))?;
                request.set_body(bytes.into());
            }
            Ok(Some(ReplayRequest {
                method: request.method,
                path: request.path,
                headers: request.headers,
                body: request.body,
            }))
        })();
        let _ = std::fs::remove_file(&message);
        let _ = std::fs::remove_file(&body_file);
        match outcome? {
            Some(request) => {
                self.notice(format!("sending the edited {}…", short_id(&id)), false);
                self.spawn_replay(original, request);
            }
            None => self.notice("edit cancelled: nothing sent", false),
        }
        Ok(())
    }
}

/// Sends a replay and has the worker store the result (which answers with
/// [`Event::Replayed`]).
///
/// A request signed by a provider with a known secret is re-signed first, so
/// the local app's own verification passes (as `replay --resign` does); when
/// that fails it goes as it is and the note says why.
async fn send_replay(
    worker: Worker,
    events: mpsc::UnboundedSender<Event>,
    secrets: Arc<Vec<(SecretSpec, String)>>,
    original: Exchange,
    mut request: ReplayRequest,
) {
    let note = replay::resign_if_configured(&secrets, &original, &mut request, now_ms() / 1000)
        .map(|r| r.unwrap_or_else(|why| format!("{why}; sent as captured")));
    match replay::send(&original, request, &ReplayOptions::default()).await {
        Ok(new) => worker.send(Job::InsertReplay {
            original: original.id,
            exchange: Box::new(new),
            note,
        }),
        Err(e) => {
            let _ = events.send(Event::Replayed {
                original: original.id,
                result: Err(format!("{e:#}")),
                note,
            });
        }
    }
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi` on `path` (the variable may hold arguments).
fn run_editor(path: &Path) -> anyhow::Result<std::process::ExitStatus> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("EDITOR")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| "vi".to_owned());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    std::process::Command::new(program)
        .args(words)
        .arg(path)
        .status()
        .with_context(|| format!("cannot run the editor `{editor}` (set $EDITOR)"))
}

/// Writes a file only the user can read (it may hold secrets from headers).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

impl Host<CrosstermBackend<std::io::Stdout>> for TerminalHost {
    async fn perform(
        &mut self,
        effect: Effect,
        terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    ) -> anyhow::Result<Flow> {
        match effect {
            Effect::Quit => return Ok(Flow::Quit),
            Effect::LoadPage {
                offset,
                limit,
                epoch,
            } => {
                self.worker.send(Job::Page {
                    offset,
                    limit,
                    epoch,
                });
            }
            Effect::LoadDetail(id) => self.worker.send(Job::Detail(id)),
            Effect::Poll => self.worker.send(Job::Poll),
            Effect::CheckLive {
                generation,
                summary,
                filter,
            } => self.worker.send(Job::CheckLive {
                generation,
                summary: Box::new(summary),
                filter,
                attempt: 0,
            }),
            Effect::Replay(id) => self.replay(id),
            Effect::CopyCurl(id) => {
                if let Err(e) = self.copy_curl(id, terminal).await {
                    self.notice(format!("copy failed: {e:#}"), true);
                }
            }
            Effect::EditReplay(id) => {
                if let Err(e) = self.edit_and_replay(id, terminal).await {
                    self.notice(format!("edit and replay: {e:#}"), true);
                }
            }
            Effect::Scan {
                generation,
                filter,
                upto,
            } => {
                self.scan_generation.store(generation, Ordering::SeqCst);
                let current = self.scan_generation.clone();
                let events = self.events.clone();
                let db = self.paths.db();
                std::thread::spawn(move || {
                    if let Err(e) = scan(&db, generation, &filter, upto, &current, &events) {
                        let _ = events.send(Event::Notice {
                            text: format!("filter search failed: {e:#}"),
                            error: true,
                        });
                    }
                });
            }
            Effect::StopScan => self.scan_generation.store(u64::MAX, Ordering::SeqCst),
        }
        Ok(Flow::Continue)
    }
}

/// Sets up the terminal, runs the loop, and restores the terminal on every way out.
pub(crate) async fn run(
    paths: Paths,
    mode: Mode,
    agent: Option<mpsc::Receiver<AgentEvent>>,
    secrets: Vec<(SecretSpec, String)>,
) -> anyhow::Result<()> {
    let db = paths.db();
    // Open the history before touching the terminal, so errors print plainly.
    let store = Store::open(&db).context("cannot open the history")?;
    let total = store.count()?;
    let newest = store.list(PAGE, 0)?;
    let upto = newest.first().map(|r| r.id);
    let color = crate::output::color_enabled(std::io::stdout().is_terminal());
    let mut app = App::new(mode, color, now_ms());
    app.load(total, newest);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let worker = Worker::spawn(store, tx.clone())?;
    {
        let tx = tx.clone();
        let db = db.clone();
        std::thread::spawn(move || {
            if let Ok(n) = count_errors(&db, upto) {
                let _ = tx.send(Event::HistoryErrors(n));
            }
        });
    }

    install_panic_hook();
    PANICKED.store(false, Ordering::SeqCst);
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;

    let ticker = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                if tx.send(Event::Tick { now_ms: now_ms() }).is_err() {
                    return;
                }
            }
        })
    };
    let forwarder = agent.map(|mut agent| {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = agent.recv().await {
                if tx.send(Event::Agent(ev)).is_err() {
                    return;
                }
            }
        })
    });
    let mut host = TerminalHost {
        worker,
        input: Input::spawn(tx.clone()),
        events: tx,
        paths,
        scan_generation: Arc::new(AtomicU64::new(0)),
        secrets: Arc::new(secrets),
    };
    let result = run_loop(&mut terminal, &mut app, &mut rx, &mut host).await;
    host.scan_generation.store(u64::MAX, Ordering::SeqCst);
    ticker.abort();
    if let Some(f) = forwarder {
        f.abort();
    }
    drop(host);
    drop(guard);
    result
}
