//! Wiring: the event loop ([`run_loop`], generic over the ratatui backend
//! and over a [`Host`] that performs effects, so tests drive it with a
//! `TestBackend`), and [`run`], which opens the history, starts the store
//! worker, the clock and the agent forwarder, and sets up the terminal.

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::config::Paths;
use crate::event::AgentEvent;
use crate::store::Store;

use super::Options;
use super::app::App;
use super::effects::{Flow, Host, TerminalHost};
use super::events::Event;
use super::status::Mode;
use super::terminal::{self, StopSignals, TerminalGuard};
use super::view;
use super::window::PAGE;
use super::worker::{Worker, overview};

/// How often the clock ticks (reconnect countdown, notices, polling).
const TICK: Duration = Duration::from_millis(250);
/// Most events applied between two frames.
const BATCH: usize = 512;

/// Where the loop's events come from: its own channel (input, ticks, the
/// worker, effects) and, while listening, the agent's bounded channel, read
/// directly so a slow screen applies back-pressure there (the agent then
/// drops and counts) instead of growing a queue here.
pub(crate) struct Inbox {
    events: mpsc::UnboundedReceiver<Event>,
    agent: Option<mpsc::Receiver<AgentEvent>>,
}

impl Inbox {
    /// An inbox over the loop's own channel and, optionally, the agent's.
    pub(crate) fn new(
        events: mpsc::UnboundedReceiver<Event>,
        agent: Option<mpsc::Receiver<AgentEvent>>,
    ) -> Self {
        Self { events, agent }
    }

    /// The next event; `None` once the loop's own channel is closed.
    async fn recv(&mut self) -> Option<Event> {
        loop {
            let Some(agent) = self.agent.as_mut() else {
                return self.events.recv().await;
            };
            tokio::select! {
                e = self.events.recv() => return e,
                ev = agent.recv() => match ev {
                    Some(ev) => return Some(Event::Agent(ev)),
                    None => self.agent = None,
                },
            }
        }
    }

    /// An event that is ready now, if any.
    fn try_recv(&mut self) -> Option<Event> {
        if let Ok(e) = self.events.try_recv() {
            return Some(e);
        }
        self.agent.as_mut()?.try_recv().ok().map(Event::Agent)
    }
}

/// The event loop: draw, wait for events, apply them (in batches), perform
/// effects, until an effect says quit or the channel closes.
pub(crate) async fn run_loop<B, H>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    events: &mut Inbox,
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
        if terminal::panicked() {
            anyhow::bail!("the inspector stopped after an internal error (see the message above)");
        }
        terminal.draw(|f| view::render(app, f))?;
        let Some(event) = events.recv().await else {
            return Ok(());
        };
        pending.push_back(event);
        while pending.len() < BATCH {
            match events.try_recv() {
                Some(e) => pending.push_back(e),
                None => break,
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sets up the terminal, runs the loop, and restores the terminal on every way out.
pub(crate) async fn run(
    paths: Paths,
    mode: Mode,
    agent: Option<mpsc::Receiver<AgentEvent>>,
    options: Options,
) -> anyhow::Result<()> {
    let db = paths.db();
    // Open the history before touching the terminal, so errors print plainly.
    let store = Store::open(&db).context("cannot open the history")?;
    let total = store.count()?;
    let newest = store.list(PAGE, 0)?;
    let upto = newest.first().map(|r| r.id);
    let color = crate::output::color_enabled(std::io::stdout().is_terminal());
    let mut app = App::new(mode, color, now_ms());
    app.set_mask_secrets(options.mask_secrets);
    app.load(total, newest);

    let (tx, rx) = mpsc::unbounded_channel();
    let mut inbox = Inbox::new(rx, agent);
    let worker = Worker::spawn(store, tx.clone())?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Ok(found) = overview(&db, upto) {
                let _ = tx.send(Event::HistoryErrors(found.errors));
                let _ = tx.send(Event::Tunnels(found.tunnels.names().to_vec()));
            }
        });
    }

    // Aborted on every way out of here, so no later signal exits the process.
    let _signals = AbortOnDrop(StopSignals::register()?.spawn(tx.clone()));
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
    let mut host = TerminalHost::new(worker, tx, paths, options.secrets);
    let result = run_loop(&mut terminal, &mut app, &mut inbox, &mut host).await;
    host.stop_scans();
    ticker.abort();
    drop(host);
    drop(guard);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crossterm::event::KeyCode;
    use ratatui::backend::TestBackend;
    use ulid::Ulid;

    use super::*;
    use crate::exchange::Exchange;
    use crate::tui::events::Effect;
    use crate::tui::testing::{T0, ch, history, key, text};

    /// Answers effects from a list of exchanges (oldest first), in process.
    struct FakeHost {
        rows: Vec<Exchange>,
        events: mpsc::UnboundedSender<Event>,
        performed: Vec<Effect>,
    }

    impl Host<TestBackend> for FakeHost {
        async fn perform(
            &mut self,
            effect: Effect,
            _terminal: &mut Terminal<TestBackend>,
        ) -> anyhow::Result<Flow> {
            self.performed.push(effect.clone());
            let newest_first: Vec<_> = self.rows.iter().rev().collect();
            match effect {
                Effect::Quit => return Ok(Flow::Quit),
                Effect::LoadPage(request) => {
                    let rows = newest_first
                        .iter()
                        .skip(request.offset)
                        .take(request.limit)
                        .map(|e| e.summary())
                        .collect();
                    let _ = self.events.send(request.answer(rows));
                }
                Effect::LoadDetail(id) => {
                    let exchange = self.rows.iter().find(|e| e.id == id).cloned().map(Box::new);
                    let _ = self.events.send(Event::Detail { id, exchange });
                }
                Effect::Replay(id) => {
                    let mut copy = self.rows.iter().find(|e| e.id == id).cloned().unwrap();
                    copy.id = Ulid::from_parts(T0 + 99_000, 1);
                    copy.replay_of = Some(id);
                    self.rows.push(copy.clone());
                    let _ = self.events.send(Event::Replayed {
                        original: id,
                        result: Ok(copy.summary()),
                        note: None,
                    });
                }
                _ => {}
            }
            Ok(Flow::Continue)
        }
    }

    #[tokio::test]
    async fn loop_runs_over_a_test_backend() {
        let rows = history();
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inbox = Inbox::new(rx, None);
        let mut app = App::new(Mode::Inspect, false, T0);
        app.load(
            rows.len() as u64,
            rows.iter().rev().map(Exchange::summary).collect(),
        );
        let mut host = FakeHost {
            rows: rows.clone(),
            events: tx.clone(),
            performed: Vec::new(),
        };
        for ev in [
            ch('j'),
            key(KeyCode::Enter),
            ch('r'),
            Event::Tick { now_ms: T0 + 100 },
        ] {
            tx.send(ev).unwrap();
        }
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let quitter = tx.clone();
        tokio::spawn(async move {
            let _ = done_rx.await;
            let _ = quitter.send(ch('q'));
        });
        let _ = done_tx.send(());
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            run_loop(&mut terminal, &mut app, &mut inbox, &mut host),
        )
        .await
        .expect("the loop ends on q")
        .unwrap();
        assert_eq!(host.performed[0], Effect::LoadDetail(rows[5].id));
        assert!(host.performed.contains(&Effect::Replay(rows[5].id)));
        assert_eq!(host.performed.last(), Some(&Effect::Quit));
        assert_eq!(app.len(), rows.len() + 1);
        assert_eq!(app.row(0).unwrap().replay_of, Some(rows[5].id));
        let s = text(terminal.backend().buffer());
        assert!(s.contains("replayed"), "{s}");
        assert!(s.contains("[Request]"), "{s}");
    }

    #[tokio::test]
    async fn agent_events_are_read_from_the_agents_bounded_channel() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (agent_tx, agent_rx) = mpsc::channel(1);
        let mut inbox = Inbox::new(rx, Some(agent_rx));
        agent_tx.try_send(AgentEvent::Notice("one".into())).unwrap();
        // Nothing is copied out of the agent's channel until the loop reads,
        // so a full channel pushes back on the agent.
        assert!(agent_tx.try_send(AgentEvent::Notice("two".into())).is_err());
        assert!(
            matches!(inbox.recv().await, Some(Event::Agent(AgentEvent::Notice(n))) if n == "one")
        );
        drop(agent_tx);
        tx.send(Event::Tick { now_ms: T0 }).unwrap();
        assert!(matches!(inbox.recv().await, Some(Event::Tick { .. })));
        drop(tx);
        assert!(
            inbox.recv().await.is_none(),
            "closed once the loop's own channel closes"
        );
    }
}
