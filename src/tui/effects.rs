//! The effect host: does the work behind [`Effect`]s against the real store
//! (through the [`Worker`]), network (replays on tasks), terminal
//! (`$EDITOR`, the clipboard by OSC 52) and file system.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use base64::prelude::*;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::mpsc;
use ulid::Ulid;

use crate::clock::now_secs;
use crate::config::Paths;
use crate::config::write_private;
use crate::editor::{self, EditOutcome};
use crate::exchange::Exchange;
use crate::export;
use crate::replay::{self, ReplayOptions, ReplayRequest};
use crate::verify::SecretSpec;

use super::events::{Effect, Event};
use super::terminal::{Input, enter_terminal, restore_terminal};
use super::text::short_id;
use super::worker::{Job, Worker, scan};

/// Curl commands longer than this are only saved to a file (terminals cap OSC 52).
const OSC52_MAX: usize = 100_000;

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

/// The real terminal's backend.
type Crossterm = CrosstermBackend<std::io::Stdout>;

/// Performs effects against the real store, network and terminal.
pub(super) struct TerminalHost {
    worker: Worker,
    events: mpsc::UnboundedSender<Event>,
    input: Input,
    paths: Paths,
    scan_generation: Arc<AtomicU64>,
    /// Secrets `r` and `e` re-sign with, each with where it came from.
    secrets: Arc<Vec<(SecretSpec, String)>>,
}

impl TerminalHost {
    /// A host answering on `events`; starts reading terminal input.
    pub(super) fn new(
        worker: Worker,
        events: mpsc::UnboundedSender<Event>,
        paths: Paths,
        secrets: Vec<(SecretSpec, String)>,
    ) -> Self {
        Self {
            worker,
            input: Input::spawn(events.clone()),
            events,
            paths,
            scan_generation: Arc::new(AtomicU64::new(0)),
            secrets: Arc::new(secrets),
        }
    }

    /// Stops any running filter scan.
    pub(super) fn stop_scans(&self) {
        self.scan_generation.store(u64::MAX, Ordering::SeqCst);
    }

    fn notice(&self, text: impl Into<String>, error: bool) {
        let _ = self.events.send(Event::Notice {
            text: text.into(),
            error,
        });
    }

    /// Loads `id` and replays it as captured, in the background.
    fn replay(&self, id: Ulid) {
        spawn_replay(
            self.worker.clone(),
            self.events.clone(),
            self.secrets.clone(),
            id,
        );
    }

    fn scratch_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.paths.data_dir.join("scratch");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    async fn copy_curl(&self, id: Ulid, terminal: &mut Terminal<Crossterm>) -> anyhow::Result<()> {
        let ex = self.worker.get(id).await?;
        let script = export::curl(&ex, &ex.target, None).script;
        let file = self.scratch_dir()?.join("last-curl.sh");
        write_private(&file, script.as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
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
        terminal: &mut Terminal<Crossterm>,
    ) -> anyhow::Result<()> {
        let original = self.worker.get(id).await?;
        // Editing the head of a truncated body would send something else.
        if let Some(why) = original.replay_refusal() {
            self.notice(why, true);
            return Ok(());
        }
        let dir = self.scratch_dir()?;
        self.input.set_paused(true).await;
        restore_terminal();
        let edited = original.clone();
        let outcome =
            tokio::task::spawn_blocking(move || editor::edit_request(&edited, &dir)).await;
        enter_terminal().context("cannot set up the terminal again")?;
        terminal.clear()?;
        self.input.set_paused(false).await;
        let request = match outcome.context("the editor task failed")?? {
            EditOutcome::Cancelled => {
                self.notice("edit cancelled: nothing sent", false);
                return Ok(());
            }
            EditOutcome::Unchanged => ReplayRequest::original(&original),
            EditOutcome::Edited(request) => request,
        };
        self.notice(format!("sending the edited {}…", short_id(&id)), false);
        tokio::spawn(send_replay(
            self.worker.clone(),
            self.events.clone(),
            self.secrets.clone(),
            original,
            request,
        ));
        Ok(())
    }
}

/// Loads `id` from the store and replays it as captured (the stored bytes,
/// never what the detail pane shows), in the background.
fn spawn_replay(
    worker: Worker,
    events: mpsc::UnboundedSender<Event>,
    secrets: Arc<Vec<(SecretSpec, String)>>,
    id: Ulid,
) {
    tokio::spawn(async move {
        match worker.get(id).await {
            Ok(original) => {
                let request = ReplayRequest::original(&original);
                send_replay(worker, events, secrets, original, request).await;
            }
            Err(e) => replay_failed(&events, id, &e, None),
        }
    });
}

/// Reports a replay that did not run.
fn replay_failed(
    events: &mpsc::UnboundedSender<Event>,
    original: Ulid,
    error: &anyhow::Error,
    note: Option<String>,
) {
    let _ = events.send(Event::Replayed {
        original,
        result: Err(format!("{error:#}")),
        note,
    });
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
    let note = replay::resign_if_configured(&secrets, &original, &mut request, now_secs())
        .map(|r| r.unwrap_or_else(|why| format!("{why}; sent as captured")));
    match replay::send(&original, request, &ReplayOptions::default()).await {
        Ok(new) => worker.send(Job::InsertReplay {
            original: original.id,
            exchange: Box::new(new),
            note,
        }),
        Err(e) => replay_failed(&events, original.id, &e, note),
    }
}

impl Host<Crossterm> for TerminalHost {
    async fn perform(
        &mut self,
        effect: Effect,
        terminal: &mut Terminal<Crossterm>,
    ) -> anyhow::Result<Flow> {
        match effect {
            Effect::Quit => return Ok(Flow::Quit),
            Effect::LoadPage(request) => self.worker.send(Job::Page(request)),
            Effect::LoadDetail(id) => self.worker.send(Job::Detail(id)),
            Effect::Poll => self.worker.send(Job::Poll),
            Effect::CheckLive {
                generation,
                summary,
                filter,
            } => self.worker.send(Job::CheckLive {
                generation,
                summary,
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
            Effect::StopScan => self.stop_scans(),
            Effect::LoadStats { now_ms } => self.worker.send(Job::Stats { now_ms }),
            Effect::Bell => {
                // BEL between frames: the terminal beeps or flashes, nothing is drawn.
                let backend = terminal.backend_mut();
                backend.write_all(b"\x07")?;
                std::io::Write::flush(backend)?;
            }
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use crossterm::event::KeyCode;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::exchange::Header;
    use crate::store::Store;
    use crate::tui::app::App;
    use crate::tui::status::Mode;
    use crate::tui::testing::{ch, ex, key, screen};

    const TOKEN: &str = "Bearer sk_live_51HxYzAbCdEf3f9a";

    /// A local app that answers one request with 200 and hands back its head.
    async fn one_shot_app() -> (String, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        });
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an event in time")
            .expect("the channel is open")
    }

    /// The detail shows the token masked; `r` replays what the store holds,
    /// so the local app gets the real token.
    #[tokio::test]
    async fn a_replay_from_the_masked_detail_sends_the_real_secret() {
        let (url, head) = one_shot_app().await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("history.sqlite3");
        let mut store = Store::open(&db).unwrap();
        let mut original = ex(1, "POST", "/hooks/masked", Some(200));
        original.target = url;
        original
            .request_headers
            .push(Header::new("authorization", TOKEN));
        store.insert(&original).unwrap();

        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut app = App::new(Mode::Inspect, false, original.received_at_ms);
        app.handle(Event::Resize {
            width: 100,
            height: 30,
        });
        app.load(store.count().unwrap(), store.list(10, 0).unwrap());
        let worker = Worker::spawn(store, tx.clone()).unwrap();

        let Some(Effect::LoadDetail(id)) = app.handle(key(KeyCode::Enter)) else {
            panic!("no detail load")
        };
        worker.send(Job::Detail(id));
        app.handle(next(&mut rx).await);
        let shown = screen(&app);
        assert!(
            shown.contains("authorization: Bearer ••••••••3f9a"),
            "{shown}"
        );
        assert!(!shown.contains("sk_live"), "{shown}");

        assert_eq!(app.handle(ch('r')), Some(Effect::Replay(id)));
        spawn_replay(worker, tx, Arc::new(Vec::new()), id);
        let head = tokio::time::timeout(Duration::from_secs(20), head)
            .await
            .expect("the replay in time")
            .unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("authorization: {}", TOKEN.to_ascii_lowercase())),
            "{head}"
        );
        let Event::Replayed { result, .. } = next(&mut rx).await else {
            panic!("no replay result")
        };
        assert_eq!(result.unwrap().status, Some(200));
    }
}
