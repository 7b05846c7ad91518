//! `primed top`: a live terminal view of the daemon. This module owns the terminal (raw mode and
//! the alternate screen, restored on every way out), the keyboard, and the polling of the
//! daemon that feeds the view. What is shown is `model`; how it looks is `view`.

mod model;
mod view;

use std::io::{self, IsTerminal, Stdout};
use std::sync::Once;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::args::ClientOpts;
use super::{endpoint, ClientError, Connection, Endpoint, Exit};
use crate::protocol::{Request, Response, StatusReport};
use model::TopModel;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// The daemon may take 2 s to give up on a hung balancer before it answers a status.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How often the keyboard thread checks that top is still running.
const KEY_POLL: Duration = Duration::from_millis(100);

type Tty = Terminal<CrosstermBackend<Stdout>>;

pub async fn run(opts: ClientOpts) -> Result<Exit, ClientError> {
    if !io::stdout().is_terminal() {
        return Err(ClientError::Refused(
            "primed top needs a terminal; use `primed status --json` in scripts".into(),
        ));
    }
    let signals = Signals::new()?;
    let mut screen = Screen::enter()?;
    let (sender, samples) = mpsc::channel(1);
    let poller = tokio::spawn(poll_daemon(endpoint(&opts), sender));
    let outcome = show(&mut screen.terminal, read_keys(), samples, signals).await;
    poller.abort();
    drop(screen);
    outcome
}

/// Draws, then waits for whatever comes first: a key, a new sample, or a signal to stop.
async fn show(
    terminal: &mut Tty,
    mut keys: mpsc::Receiver<io::Result<Event>>,
    mut samples: mpsc::Receiver<Sample>,
    mut signals: Signals,
) -> Result<Exit, ClientError> {
    let mut model = TopModel::new();
    loop {
        terminal.draw(|frame| view::draw(frame, &model))?;
        tokio::select! {
            key = keys.recv() => match key {
                Some(Ok(event)) if quits(&event) => return Ok(Exit::Ok),
                // A resize or any other key: redrawing is all it takes.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(io::Error::other("the keyboard reader stopped").into()),
            },
            Some(sample) = samples.recv() => apply(&mut model, sample),
            () = signals.stopped() => return Ok(Exit::Ok),
        }
    }
}

/// In raw mode Ctrl-C is a key, not a signal, so it is handled here with q and Esc.
fn quits(event: &Event) -> bool {
    let Event::Key(key) = event else {
        return false;
    };
    // Terminals that report releases would otherwise see every quit key twice.
    if key.kind == KeyEventKind::Release {
        return false;
    }
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Reads the keyboard on a blocking thread, which crossterm needs, so the runtime never
/// blocks. It polls with a timeout rather than blocking on a read, to notice that top ended.
fn read_keys() -> mpsc::Receiver<io::Result<Event>> {
    let (sender, keys) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        while !sender.is_closed() {
            let event = match event::poll(KEY_POLL) {
                Ok(false) => continue,
                Ok(true) => event::read(),
                Err(e) => Err(e),
            };
            let failed = event.is_err();
            if sender.blocking_send(event).is_err() || failed {
                return;
            }
        }
    });
    keys
}

/// What one poll of the daemon gave.
enum Sample {
    Status {
        report: StatusReport,
        alarms: Vec<String>,
        at: Instant,
    },
    Down(String),
}

fn apply(model: &mut TopModel, sample: Sample) {
    match sample {
        Sample::Status { report, alarms, at } => {
            model.update(report, at);
            model.set_alarms(alarms);
        }
        Sample::Down(reason) => model.disconnected(reason),
    }
}

/// Polls the daemon every second until top stops listening. Failures are samples too: top
/// shows them and keeps trying, so it outlives a daemon restart.
async fn poll_daemon(endpoint: Endpoint, samples: mpsc::Sender<Sample>) {
    let mut kept = None;
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sample = match tokio::time::timeout(ANSWER_WITHIN, poll(&endpoint, &mut kept)).await {
            Ok(Ok(sample)) => sample,
            Ok(Err(e)) => Sample::Down(e.to_string()),
            Err(_) => Sample::Down(format!("no answer within {}s", ANSWER_WITHIN.as_secs())),
        };
        if samples.send(sample).await.is_err() {
            return;
        }
    }
}

/// One connection is kept between polls. If it broke (the daemon restarted since), a new one
/// is tried at once, so a quick restart does not even show as a gap.
async fn poll(endpoint: &Endpoint, kept: &mut Option<Connection>) -> Result<Sample, ClientError> {
    if let Some(conn) = kept.take() {
        if let Ok(sample) = exchange(conn, kept).await {
            return Ok(sample);
        }
    }
    let conn = Connection::connect(endpoint).await?;
    exchange(conn, kept).await
}

/// The connection is kept only after a full exchange: one abandoned mid-request (a timeout)
/// could hold a stale answer and is never reused.
async fn exchange(
    mut conn: Connection,
    kept: &mut Option<Connection>,
) -> Result<Sample, ClientError> {
    let report = match conn.request(&Request::Status).await? {
        Response::Status(report) => report,
        other => return Err(ClientError::Unexpected(format!("{other:?}"))),
    };
    let at = Instant::now();
    let alarms = fetch_alarms(&mut conn).await?;
    *kept = Some(conn);
    Ok(Sample::Status { report, alarms, at })
}

/// The daemon's active alarms, one line each.
async fn fetch_alarms(conn: &mut Connection) -> Result<Vec<String>, ClientError> {
    match conn.request(&Request::Alarms).await? {
        Response::Alarms { alarms } => Ok(alarms
            .iter()
            .map(|a| format!("{} {}: {}", a.alarm, a.subject, a.detail))
            .collect()),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

/// Ways top is told to stop from outside. Without handling them, `kill` or a closed terminal
/// would leave the terminal in raw mode.
struct Signals {
    terminate: Signal,
    hangup: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn stopped(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// The terminal in raw mode on the alternate screen, for as long as this lives.
struct Screen {
    terminal: Tty,
    _restore: Restore,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        restore_on_panic();
        terminal::enable_raw_mode()?;
        // Made before the next steps, so that their failure also restores the terminal.
        let restore = Restore;
        execute!(io::stdout(), EnterAlternateScreen)?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(Screen {
            terminal,
            _restore: restore,
        })
    }
}

struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// Best effort: there is no one left to tell if the terminal cannot be restored.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// A panic message printed on the alternate screen vanishes with it, and raw mode garbles it;
/// so the terminal is restored before the usual hook prints.
fn restore_on_panic() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let print = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            print(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyEvent, KeyEventState};

    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Event {
        Event::Key(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn q_esc_and_ctrl_c_quit() {
        assert!(quits(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Char('Q'), KeyModifiers::SHIFT)));
        assert!(quits(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
    }

    #[test]
    fn other_keys_and_events_do_not_quit() {
        assert!(!quits(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(&key(KeyCode::Char('x'), KeyModifiers::NONE)));
        assert!(!quits(&key(KeyCode::Enter, KeyModifiers::NONE)));
        assert!(!quits(&Event::Resize(80, 24)));
        let release = KeyEvent {
            code: KeyCode::Char('q'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        };
        assert!(!quits(&Event::Key(release)));
    }

    #[test]
    fn a_sample_updates_the_model_and_a_failure_marks_it_down() {
        let mut model = TopModel::new();
        let report = model::tests::report(7, 0, vec![]);
        let alarms = vec!["disk almost full".to_string()];
        apply(
            &mut model,
            Sample::Status {
                report,
                alarms,
                at: Instant::now(),
            },
        );
        assert_eq!(model.status().map(|s| s.completed), Some(7));
        assert_eq!(model.alarms(), ["disk almost full"]);
        apply(&mut model, Sample::Down("refused".into()));
        assert_eq!(model.link(), &model::Link::Down("refused".into()));
    }

    #[tokio::test]
    async fn an_absent_daemon_is_a_down_sample_not_an_exit() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, mut samples) = mpsc::channel(1);
        let poller = tokio::spawn(poll_daemon(
            Endpoint::new(dir.path().join("none.sock")),
            sender,
        ));
        let first = samples.recv().await;
        poller.abort();
        match first {
            Some(Sample::Down(reason)) => assert!(reason.contains("none.sock"), "{reason}"),
            _ => panic!("expected a down sample"),
        }
    }
}
