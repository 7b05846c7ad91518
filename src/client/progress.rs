//! The progress bar of `check` and `submit` reading numbers from stdin.
//!
//! It is drawn on stderr, and only when stderr is a terminal and stdin is not, so scripts, CI
//! and pipes see exactly the output they always did, and a person typing numbers does not get a
//! bar drawn over their input. When stdin is a regular file its remaining length in bytes is the
//! total, which gives a real percentage and ETA; a pipe has no known length, so a spinner shows
//! the counts, the rate and the elapsed time instead. The bar is cleared when the command ends,
//! so nothing of it is left among the answers.

use std::fmt;
use std::fs::File;
use std::io::{self, IsTerminal, Seek};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Redraw interval: the elapsed time and the spinner must move even while nothing is answered.
const TICK: Duration = Duration::from_millis(100);

const SPINNER_TEMPLATE: &str = "{spinner} [{elapsed_precise}] {counts}, {rate}";
const BYTES_TEMPLATE: &str =
    "[{elapsed_precise}] [{wide_bar}] {percent:>3}% {counts}, {rate}, ETA {eta}";

/// What the bar counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `check`: numbers answered.
    Check,
    /// `submit`: numbers accepted as jobs.
    Submit,
}

/// What the process knows about its streams when the command starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub numbers_from_stdin: bool,
    pub stdin_terminal: bool,
    pub stderr_terminal: bool,
    /// Bytes left to read when stdin is a regular file.
    pub stdin_file_bytes: Option<u64>,
}

impl Facts {
    pub fn probe(numbers_from_stdin: bool) -> Facts {
        let stderr_terminal = io::stderr().is_terminal();
        // Only worth a syscall when a bar may be drawn at all.
        let stdin_file_bytes = if numbers_from_stdin && stderr_terminal {
            stdin_file_bytes()
        } else {
            None
        };
        Facts {
            numbers_from_stdin,
            stdin_terminal: io::stdin().is_terminal(),
            stderr_terminal,
            stdin_file_bytes,
        }
    }
}

/// Bytes still to read if stdin is a regular file. `None` for anything else, and on any error:
/// a spinner is better than failing the command over a progress bar.
fn stdin_file_bytes() -> Option<u64> {
    // A duplicate of fd 0 shares its offset, so input a previous reader already consumed
    // (`(head -1; primed check) < file`) is not counted; dropping it leaves fd 0 open.
    let mut file = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let offset = file.stream_position().ok()?;
    Some(meta.len().saturating_sub(offset))
}

/// How the bar is drawn, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    Spinner,
    Bytes(u64),
}

pub fn mode(facts: Facts) -> Mode {
    if !facts.numbers_from_stdin || !facts.stderr_terminal || facts.stdin_terminal {
        return Mode::Off;
    }
    match facts.stdin_file_bytes {
        // An empty file has no percentage to show.
        Some(bytes) if bytes > 0 => Mode::Bytes(bytes),
        _ => Mode::Spinner,
    }
}

/// Output written while the bar is drawn must lift it first when it could share the bar's
/// terminal: stdout on a terminal (most likely the same one), or a line on stderr.
pub fn must_suspend(stdout_terminal: bool, writes_stderr: bool) -> bool {
    stdout_terminal || writes_stderr
}

pub fn counts_text(kind: Kind, sent: u64, done: u64) -> String {
    match kind {
        Kind::Check => format!("{sent} sent, {done} answered"),
        Kind::Submit => format!("{sent} sent, {done} accepted"),
    }
}

pub fn rate_text(done: u64, elapsed: Duration) -> String {
    let millis = elapsed.as_millis();
    if millis == 0 {
        return "0/s".to_string();
    }
    format!("{}/s", u128::from(done) * 1000 / millis)
}

/// Shared between the sender, the printer and the bar's redraws (on the ticker thread).
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
    accepted: AtomicU64,
}

impl Counts {
    fn done(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Check => self.answered.load(Ordering::Relaxed),
            Kind::Submit => self.accepted.load(Ordering::Relaxed),
        }
    }
}

/// The printing side of the bar; clears it when dropped, error paths included, so an error
/// message printed afterwards starts on a clean line.
pub struct Progress {
    bar: Option<ProgressBar>,
    counts: Arc<Counts>,
    stdout_terminal: bool,
}

/// The sending side: numbers sent and bytes read.
#[derive(Clone)]
pub struct Tally {
    bar: Option<ProgressBar>,
    counts: Arc<Counts>,
}

impl Progress {
    pub fn start(kind: Kind, facts: Facts) -> Progress {
        let counts = Arc::new(Counts::default());
        Progress {
            bar: bar(kind, mode(facts), &counts),
            counts,
            stdout_terminal: io::stdout().is_terminal(),
        }
    }

    pub fn drawing(&self) -> bool {
        self.bar.is_some()
    }

    pub fn tally(&self) -> Tally {
        Tally {
            bar: self.bar.clone(),
            counts: Arc::clone(&self.counts),
        }
    }

    /// One input has its final line of output (an answer, an id or an error).
    pub fn settled(&self, accepted: bool) {
        self.counts.answered.fetch_add(1, Ordering::Relaxed);
        if accepted {
            self.counts.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `print` with the bar lifted off the terminal if the output could land on its line.
    pub fn around<R>(&self, writes_stderr: bool, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) if must_suspend(self.stdout_terminal, writes_stderr) => bar.suspend(print),
            _ => print(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Tally {
    /// A line of input read. Its newline is counted as one byte: a `\r\n` line leaves the bar
    /// a little short of 100 %, which only shows until it is cleared.
    pub fn read(&self, line_bytes: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(line_bytes as u64 + 1);
        }
    }

    pub fn sent(&self, numbers: usize) {
        self.counts
            .sent
            .fetch_add(numbers as u64, Ordering::Relaxed);
    }
}

fn bar(kind: Kind, mode: Mode, counts: &Arc<Counts>) -> Option<ProgressBar> {
    let (template, len) = match mode {
        Mode::Off => return None,
        Mode::Spinner => (SPINNER_TEMPLATE, None),
        Mode::Bytes(total) => (BYTES_TEMPLATE, Some(total)),
    };
    // The templates are constants (a unit test parses them); should one ever fail, no bar is
    // better than a failed command.
    let style = style(template, kind, counts).ok()?;
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(TICK);
    Some(bar)
}

fn style(
    template: &str,
    kind: Kind,
    counts: &Arc<Counts>,
) -> Result<ProgressStyle, indicatif::style::TemplateError> {
    // Read at each redraw, so counting costs the sender and the printer an atomic add only.
    let for_counts = Arc::clone(counts);
    let for_rate = Arc::clone(counts);
    Ok(ProgressStyle::with_template(template)?
        .progress_chars("=> ")
        .with_key(
            "counts",
            move |_: &ProgressState, w: &mut dyn fmt::Write| {
                let sent = for_counts.sent.load(Ordering::Relaxed);
                let _ = w.write_str(&counts_text(kind, sent, for_counts.done(kind)));
            },
        )
        .with_key(
            "rate",
            move |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = w.write_str(&rate_text(for_rate.done(kind), state.elapsed()));
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piped_stdin() -> Facts {
        Facts {
            numbers_from_stdin: true,
            stdin_terminal: false,
            stderr_terminal: true,
            stdin_file_bytes: None,
        }
    }

    #[test]
    fn a_pipe_into_a_terminal_gets_a_spinner() {
        assert_eq!(mode(piped_stdin()), Mode::Spinner);
    }

    #[test]
    fn a_regular_file_gets_a_bar_over_its_bytes() {
        let facts = Facts {
            stdin_file_bytes: Some(4096),
            ..piped_stdin()
        };
        assert_eq!(mode(facts), Mode::Bytes(4096));
        let empty = Facts {
            stdin_file_bytes: Some(0),
            ..piped_stdin()
        };
        assert_eq!(mode(empty), Mode::Spinner);
    }

    #[test]
    fn no_bar_unless_stdin_feeds_a_terminal_stderr() {
        let not_terminal = Facts {
            stderr_terminal: false,
            stdin_file_bytes: Some(10),
            ..piped_stdin()
        };
        let arguments = Facts {
            numbers_from_stdin: false,
            ..piped_stdin()
        };
        let typing = Facts {
            stdin_terminal: true,
            ..piped_stdin()
        };
        for facts in [not_terminal, arguments, typing, Facts::default()] {
            assert_eq!(mode(facts), Mode::Off, "{facts:?}");
        }
    }

    #[test]
    fn output_lifts_the_bar_only_when_it_could_share_its_line() {
        assert!(must_suspend(true, false));
        assert!(must_suspend(false, true));
        assert!(!must_suspend(false, false));
    }

    #[test]
    fn counts_name_what_each_command_waits_for() {
        assert_eq!(counts_text(Kind::Check, 7, 5), "7 sent, 5 answered");
        assert_eq!(counts_text(Kind::Submit, 7, 6), "7 sent, 6 accepted");
    }

    #[test]
    fn rate_is_done_per_second_of_elapsed_time() {
        assert_eq!(rate_text(500, Duration::from_millis(250)), "2000/s");
        assert_eq!(rate_text(3, Duration::from_secs(2)), "1/s");
        assert_eq!(rate_text(10, Duration::ZERO), "0/s");
    }

    #[test]
    fn the_templates_parse() {
        let counts = Arc::new(Counts::default());
        for template in [SPINNER_TEMPLATE, BYTES_TEMPLATE] {
            for kind in [Kind::Check, Kind::Submit] {
                assert!(style(template, kind, &counts).is_ok(), "{template}");
            }
        }
    }

    #[test]
    fn settling_counts_answers_and_acceptances_apart() {
        let progress = Progress::start(Kind::Submit, Facts::default());
        assert!(!progress.drawing());
        let tally = progress.tally();
        tally.sent(3);
        progress.settled(true);
        progress.settled(false);
        assert_eq!(progress.counts.sent.load(Ordering::Relaxed), 3);
        assert_eq!(progress.counts.done(Kind::Check), 2);
        assert_eq!(progress.counts.done(Kind::Submit), 1);
    }
}
