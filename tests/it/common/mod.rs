//! Test harness: runs the real `primed` binary on a socket in a temp dir, reads its JSON logs
//! so tests can await events (listening, crash, restart, replay) instead of sleeping, and runs
//! CLI commands against it.

#![allow(dead_code)]

pub mod browser;
pub mod etcd;
pub mod http;
pub mod raw;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use num_bigint::BigUint;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_primed");
/// Generous: CI machines are slow, and a timeout here is a failure, never a synchronisation.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct LogBook {
    lines: Mutex<Vec<Value>>,
    grew: Condvar,
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    log: Arc<LogBook>,
    _tmp: Option<tempfile::TempDir>,
}

/// How to start a test daemon: `Daemon::builder().testers(2).args(&[…]).start()`. By default
/// in a fresh temp dir (removed with the daemon), with the pool size of its configuration.
#[must_use]
pub struct Builder {
    binary: PathBuf,
    dir: Option<PathBuf>,
    testers: u32,
    args: Vec<String>,
    env: Vec<(String, PathBuf)>,
    config: Option<String>,
    customize: Option<Customize>,
}

/// Applied to the daemon's command before it runs.
type Customize = Box<dyn FnOnce(&mut Command)>;

impl Builder {
    /// `--testers n` (without it, the configuration's `pool.testers` applies and a reload can
    /// change it).
    pub fn testers(mut self, testers: u32) -> Builder {
        self.testers = testers;
        self
    }

    /// Socket and data dir in `dir` (another start on the same dir replays it), which the
    /// caller keeps.
    pub fn dir(mut self, dir: &Path) -> Builder {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// More `serve` arguments.
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &Path) -> Builder {
        self.env.push((key.to_string(), value.to_path_buf()));
        self
    }

    /// A config file (TOML) laid over the embedded defaults, written into the daemon's dir.
    pub fn config(mut self, toml: &str) -> Builder {
        self.config = Some(toml.to_string());
        self
    }

    /// Another build of primed.
    pub fn binary(mut self, binary: &Path) -> Builder {
        self.binary = binary.to_path_buf();
        self
    }

    /// Applied to the command before it runs (resource limits, say).
    pub fn customize(mut self, customize: impl FnOnce(&mut Command) + 'static) -> Builder {
        self.customize = Some(Box::new(customize));
        self
    }

    /// Starts the daemon and waits until it listens.
    pub fn start(self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_for("listening", |l| l["event"] == "listening");
        daemon
    }

    /// Starts the daemon without waiting for it to listen.
    pub fn spawn(self) -> Daemon {
        let (tmp, dir) = match &self.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::tempdir().expect("temp dir");
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let mut args = self.args;
        if let Some(toml) = &self.config {
            let file = write_config(&dir, toml);
            args.extend(["--config".to_string(), file.display().to_string()]);
        }
        let mut command = Command::new(&self.binary);
        if let Some(customize) = self.customize {
            customize(&mut command);
        }
        let mut daemon = Daemon::launch(command, &dir, self.testers, &args, &self.env);
        daemon._tmp = tmp;
        daemon
    }
}

impl Daemon {
    /// A daemon with `testers` testers in a fresh temp dir, ready (listening) on return.
    pub fn start(testers: u32) -> Daemon {
        Daemon::builder().testers(testers).start()
    }

    pub fn builder() -> Builder {
        Builder {
            binary: PathBuf::from(BIN),
            dir: None,
            testers: 0,
            args: Vec::new(),
            env: Vec::new(),
            config: None,
            customize: None,
        }
    }

    fn launch(
        mut command: Command,
        dir: &Path,
        testers: u32,
        extra: &[String],
        env: &[(String, PathBuf)],
    ) -> Daemon {
        let socket = dir.join("primed.sock");
        let data_dir = dir.join("data");
        let mut child = command
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(
                (testers > 0)
                    .then(|| ["--testers".to_string(), testers.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .args(["--log-format", "json"])
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .env_remove("PRIMED_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn primed serve");
        let log = Arc::new(LogBook::default());
        let stderr = child.stderr.take().expect("stderr");
        let book = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                book.lines.lock().unwrap().push(value);
                book.grew.notify_all();
            }
        });
        Daemon {
            child: Some(child),
            dir: dir.to_path_buf(),
            socket,
            data_dir,
            log,
            _tmp: None,
        }
    }

    /// The first log line (ever) matching `pred`; waits for it if it has not come yet.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_nth(what, 1, pred)
    }

    /// The `n`th log line matching `pred`.
    pub fn wait_for_nth(&self, what: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().filter(|l| pred(l)).nth(n - 1) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for log event: {what}\nlog:\n{}",
                dump(&lines)
            );
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.log
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.log.lines.lock().unwrap();
        dump(&lines[lines.len().saturating_sub(n)..])
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    /// Runs `primed ARGS --socket S`, feeding `stdin` if given.
    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn primed client");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            let input = input.to_vec();
            thread::spawn(move || pipe.write_all(&input));
        }
        child.wait_with_output().expect("client output")
    }

    /// Starts `primed ARGS --socket S` in the background (stdout and stderr piped), for a
    /// client the test interrupts, or reads while it runs.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn primed client")
    }

    /// Runs a `--json` command that must succeed; returns its lines parsed.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = args.to_vec();
        full.push("--json");
        let out = self.cli(&full);
        assert!(
            out.status.success(),
            "{} failed: {}\ndaemon log (last lines):\n{}",
            args[0],
            describe(&out),
            self.log_tail(30)
        );
        parse_lines(&out.stdout)
    }

    pub fn status(&self) -> Value {
        self.json(&["status"]).remove(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running daemon").id()
    }

    /// kill -9: no flush, no cleanup, the socket file stays behind.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running daemon");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        child.wait().expect("reap")
    }

    /// Waits (bounded) for the daemon to exit on its own; returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running daemon");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(EVENT_TIMEOUT) {
            Ok(status) => status.expect("reap"),
            Err(_) => panic!("the daemon did not exit\n{}", self.log_tail(30)),
        }
    }

    /// Log lines at ERROR level.
    pub fn errors(&self) -> Vec<Value> {
        let lines = self.log.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l["level"] == "ERROR")
            .cloned()
            .collect()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn dump(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn describe(out: &Output) -> String {
    let cut = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.chars().take(2000).collect::<String>()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("\"error\""))
        .take(20)
        .collect();
    format!(
        "status {:?}\nstdout: {}\nerrors on stdout: {errors:?}\nstderr: {}",
        out.status.code(),
        cut(&out.stdout),
        cut(&out.stderr)
    )
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `serve` on `dir`'s socket and data dir expecting a refusal (exit 1); its stderr.
pub fn refused_start(dir: &Path) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--socket")
        .arg(dir.join("primed.sock"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes a config file (laid over the embedded defaults) into `dir`; returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("primed.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Submits 2^19937-1 (seconds of work) and waits until a tester runs it; returns its id.
pub fn occupy_a_tester(daemon: &Daemon) -> u64 {
    let long = mersenne(19937);
    let id = daemon.json(&["submit", &long])[0]["id"]
        .as_u64()
        .expect("id");
    daemon.wait_for("the long job starts", |l| {
        l["event"] == "job_start" && l["job"] == id
    });
    id
}

/// A make-prime job of 9,000 digits: it never ends within a test, so a tester stays busy for
/// as long as the test needs (cancel it to free the tester). Its client is killed on drop.
pub struct Blocker {
    pub id: u64,
    client: Child,
}

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
    }
}

/// Reads a `primed prime` client's stderr up to its "job N: making …" line (printed once the
/// job is journaled): the job's id. The rest of stderr is drained, so the client never blocks.
pub fn accepted_id(client: &mut Child) -> u64 {
    let stderr = client.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let line = lines.next().expect("a line").expect("stderr");
    thread::spawn(move || lines.for_each(drop));
    line.strip_prefix("primed: job ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not the accepted line: {line}"))
}

/// Starts a [`Blocker`] and waits until a tester runs it.
pub fn block_a_tester(daemon: &Daemon) -> Blocker {
    let mut client = daemon.spawn_cli(&["prime", "--digits", "9000"]);
    let id = accepted_id(&mut client);
    daemon.wait_for("the blocker starts", |l| {
        l["event"] == "job_start" && l["job"] == id
    });
    Blocker { id, client }
}

/// 2^p - 1 in decimal.
pub fn mersenne(p: u32) -> String {
    ((BigUint::from(1u8) << p) - 1u8).to_string()
}

/// An independent oracle for small numbers: trial division.
pub fn is_prime_by_trial_division(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}
