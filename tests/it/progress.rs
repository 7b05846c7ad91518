//! The stdin progress bar of `check`/`submit`: drawn on stderr when stderr is a terminal (here
//! a pseudo-terminal the test reads from its master side), cleared at the end, never mixed into
//! stdout, and absent when stderr is a pipe or the numbers come as arguments.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use crate::common::{
    describe, is_prime_by_trial_division, occupy_a_tester, parse_lines, Daemon, BIN,
};

/// What the terminal received, growing as the reader thread reads it.
#[derive(Default)]
struct Screen {
    bytes: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Screen {
    /// Waits until the terminal has shown `needle`, or fails.
    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + crate::common::EVENT_TIMEOUT;
        let mut bytes = self.bytes.lock().unwrap();
        while !String::from_utf8_lossy(&bytes.0).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !bytes.1,
                "the terminal never showed {needle:?}; it got:\n{:?}",
                String::from_utf8_lossy(&bytes.0)
            );
            bytes = self.grew.wait_timeout(bytes, left).unwrap().0;
        }
    }

    /// Waits until every writer has closed the terminal, then returns all it got.
    fn wait_closed(&self) -> String {
        let deadline = Instant::now() + crate::common::EVENT_TIMEOUT;
        let mut bytes = self.bytes.lock().unwrap();
        while !bytes.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the terminal was never closed");
            bytes = self.grew.wait_timeout(bytes, left).unwrap().0;
        }
        String::from_utf8_lossy(&bytes.0).into_owned()
    }
}

/// A pseudo-terminal: the slave side to hand to a child as stderr, and a thread reading the
/// master side into a `Screen`. Both fds are close-on-exec, so the daemons other tests spawn
/// meanwhile do not inherit the slave and keep it open.
fn pty() -> (OwnedFd, Arc<Screen>) {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("open /dev/ptmx");
    let fd = master.as_raw_fd();
    let mut name = [0 as libc::c_char; 128];
    // Wide, so that no frame of the bar wraps.
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    unsafe {
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
        assert_eq!(libc::ioctl(fd, libc::TIOCSWINSZ, &size), 0, "TIOCSWINSZ");
    }
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .expect("pty name")
        .to_string();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .expect("open the pty slave");
    let screen = Arc::new(Screen::default());
    let seen = Arc::clone(&screen);
    thread::spawn(move || read_master(master, &seen));
    (OwnedFd::from(slave), screen)
}

/// Reads until every slave fd is closed (Linux then answers EIO).
fn read_master(mut master: File, screen: &Screen) {
    let mut buf = [0u8; 4096];
    loop {
        let n = master.read(&mut buf).unwrap_or(0);
        let mut bytes = screen.bytes.lock().unwrap();
        if n == 0 {
            bytes.1 = true;
            screen.grew.notify_all();
            return;
        }
        bytes.0.extend_from_slice(&buf[..n]);
        screen.grew.notify_all();
    }
}

/// `primed ARGS --socket S` with stdout piped and stderr on the given terminal; the test's
/// copy of the slave is closed on return, so the terminal closes when the client exits.
/// Stdout is drained on a thread, so a full pipe never stalls the client while the test waits
/// for the terminal.
fn client_on_terminal(
    daemon: &Daemon,
    args: &[&str],
    stdin: Stdio,
    slave: OwnedFd,
) -> (Child, thread::JoinHandle<Vec<u8>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(&daemon.socket)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn primed client");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).expect("read stdout");
        bytes
    });
    (child, reader)
}

/// Waits for the client; returns its exit code and its stdout.
fn finish(mut child: Child, stdout: thread::JoinHandle<Vec<u8>>) -> (Option<i32>, Vec<u8>) {
    let status = child.wait().expect("reap the client");
    (status.code(), stdout.join().expect("stdout reader"))
}

fn numbers(range: std::ops::Range<u64>) -> String {
    range.map(|i| format!("{}\n", i * 7 + 1)).collect()
}

fn assert_human_answers(stdout: &[u8], range: std::ops::Range<u64>) {
    let expected: String = range
        .map(|i| {
            let n = i * 7 + 1;
            let verdict = if is_prime_by_trial_division(n) {
                "prime"
            } else if n < 2 {
                "neither prime nor composite"
            } else {
                "composite"
            };
            format!("{n} is {verdict}\n")
        })
        .collect();
    assert!(
        String::from_utf8_lossy(stdout) == expected,
        "stdout is not exactly the answers:\n{}",
        String::from_utf8_lossy(stdout)
    );
}

/// The bar's last frame is erased: the terminal ends with a line cleared and nothing after it.
fn assert_cleared(screen: &str) {
    let last_clear = screen
        .rfind("\r\x1b[2K")
        .expect("the bar was never cleared");
    let after = &screen[last_clear + "\r\x1b[2K".len()..];
    assert!(
        after
            .chars()
            .all(|c| c.is_whitespace() || c == '\x1b' || c == '['),
        "something was left after the bar was cleared: {after:?}"
    );
}

#[test]
fn a_pipe_gets_a_live_spinner_with_counts_and_errors_on_clean_lines() {
    let daemon = Daemon::start(2);
    let (slave, screen) = pty();
    let (mut child, stdout) = client_on_terminal(&daemon, &["check"], Stdio::piped(), slave);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(numbers(0..3000).as_bytes()).unwrap();
    stdin.write_all(b"abc\n").unwrap();
    stdin.flush().unwrap();
    // The input stays open, so the client cannot be done: this frame is the bar, live.
    screen.wait_for("3001 sent, 3001 answered");
    stdin.write_all(numbers(3000..5000).as_bytes()).unwrap();
    drop(stdin);
    let (code, stdout) = finish(child, stdout);
    let shown = screen.wait_closed();

    assert_eq!(code, Some(1), "an invalid input: {shown:?}");
    assert_human_answers(&stdout, 0..5000);
    assert!(shown.contains("/s"), "the rate is shown: {shown:?}");
    // The error was printed with the bar lifted off its line.
    let error = "primed: error: \"abc\" is not a decimal integer";
    let at = shown.find(error).expect("the error reached the terminal");
    assert!(
        at == 0 || shown[..at].ends_with("\r\x1b[2K") || shown[..at].ends_with('\n'),
        "the error was written into the bar's line: {:?}",
        &shown[at.saturating_sub(80)..at + error.len()]
    );
    assert_cleared(&shown);
}

#[test]
fn a_regular_file_gets_a_percentage_of_its_bytes() {
    let daemon = Daemon::start(1);
    // Every number queues behind this one on the only tester, so the bar has seconds to show
    // the whole file read and nothing answered yet. (Fewer numbers than the client's window of
    // unanswered ones, or it would stop reading before the end.)
    occupy_a_tester(&daemon);
    let input = daemon.dir.join("numbers.txt");
    std::fs::write(&input, numbers(0..10_000)).unwrap();
    let (slave, screen) = pty();
    let stdin = Stdio::from(File::open(&input).unwrap());
    let (child, stdout) = client_on_terminal(&daemon, &["check", "--json"], stdin, slave);
    screen.wait_for("100% 10000 sent, 0 answered");
    let (code, stdout) = finish(child, stdout);
    let shown = screen.wait_closed();

    assert_eq!(code, Some(0), "{shown:?}");
    let lines = parse_lines(&stdout);
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 * 7 + 1;
        assert_eq!(line["n"], n.to_string());
        assert_eq!(line["prime"], is_prime_by_trial_division(n), "{n}");
    }
    assert!(shown.contains("ETA"), "{shown:?}");
    assert_cleared(&shown);
}

#[test]
fn submit_counts_acceptances() {
    let daemon = Daemon::start(1);
    let (slave, screen) = pty();
    let (mut child, stdout) = client_on_terminal(&daemon, &["submit"], Stdio::piped(), slave);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"97\n91\nxyz\n").unwrap();
    stdin.flush().unwrap();
    screen.wait_for("3 sent, 2 accepted");
    drop(stdin);
    let (code, stdout) = finish(child, stdout);
    let shown = screen.wait_closed();
    assert_eq!(code, Some(1), "an invalid input: {shown:?}");
    let stdout = String::from_utf8_lossy(&stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].ends_with(" 97") && lines[1].ends_with(" 91"),
        "{stdout}"
    );
    assert_cleared(&shown);
}

#[test]
fn no_bar_when_stderr_is_a_pipe() {
    let daemon = Daemon::start(2);
    let input = numbers(0..5000);
    let out = daemon.cli_stdin(&["check"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    assert_human_answers(&out.stdout, 0..5000);
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn no_bar_when_the_numbers_are_arguments() {
    let daemon = Daemon::start(1);
    let (slave, screen) = pty();
    let (child, stdout) = client_on_terminal(&daemon, &["check", "97", "91"], Stdio::null(), slave);
    let (code, stdout) = finish(child, stdout);
    assert_eq!(code, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        "97 is prime\n91 is composite\n"
    );
    assert_eq!(screen.wait_closed(), "", "nothing is drawn for arguments");
}
