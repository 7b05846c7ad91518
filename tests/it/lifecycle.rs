//! Start and stop: SIGTERM drains and shuts down cleanly, one data dir and one socket serve one
//! daemon, and a damaged journal is refused rather than started empty.

use std::path::Path;
use std::process::Command;

use crate::common::{
    describe, mersenne, occupy_a_tester, parse_lines, refused_start, write_config, Daemon, BIN,
};

#[test]
fn sigterm_exits_zero_removes_the_socket_and_the_next_start_keeps_the_results() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let id = daemon.json(&["check", "7919"])[0]["id"]
        .as_u64()
        .expect("id");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.log_tail(20));
    assert!(
        !daemon.socket.exists(),
        "the socket is removed on a clean stop"
    );
    daemon.wait_for("stopped", |l| l["event"] == "stopped");

    let again = Daemon::builder().dir(tmp.path()).testers(1).start();
    let result = again.json(&["result", &id.to_string()]).remove(0);
    assert_eq!(result["prime"], true);
    assert_eq!(again.status()["completed"], 1);
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused_with_a_clear_error() {
    let daemon = Daemon::start(1);
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--socket")
        .arg(daemon.dir.join("other.sock"))
        .arg("--data-dir")
        .arg(&daemon.data_dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another primed process"),
        "{stderr}"
    );
    let out = daemon.cli(&["check", "2"]);
    assert!(
        out.status.success(),
        "the first daemon is untouched: {}",
        describe(&out)
    );
}

#[test]
fn sigterm_lets_the_running_job_finish_and_leaves_queued_ones_for_the_next_start() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = write_config(tmp.path(), "[daemon]\nshutdown_grace_secs = 120\n");
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let mut daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    // `check` watches its job from the ack on, before the job is dispatched: once the job
    // has started, the waiting client is registered.
    let waiter = {
        let socket = daemon.socket.clone();
        std::thread::spawn(move || {
            Command::new(BIN)
                .args(["check", "--json", &mersenne(19937)])
                .arg("--socket")
                .arg(socket)
                .output()
                .expect("check")
        })
    };
    let started = daemon.wait_for("the long job starts", |l| l["event"] == "job_start");
    let running = started["job"].as_u64().expect("job id");
    let queued = daemon.json(&["submit", "97"])[0]["id"]
        .as_u64()
        .expect("id");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.log_tail(20));
    let drained = daemon.wait_for("drained", |l| l["event"] == "drained");
    assert_eq!(drained["running"], 1, "{drained}");
    let answer = waiter.join().expect("waiter thread");
    assert!(answer.status.success(), "{}", describe(&answer));
    assert_eq!(parse_lines(&answer.stdout)[0]["prime"], true);

    let again = Daemon::builder().dir(tmp.path()).testers(1).start();
    let done = again.json(&["result", &running.to_string()]).remove(0);
    assert_eq!(
        done["attempts"], 1,
        "the running job finished before the exit"
    );
    let replayed = again
        .json(&["result", "--wait", &queued.to_string()])
        .remove(0);
    assert_eq!(replayed["prime"], true);
    assert_eq!(
        replayed["attempts"], 1,
        "the queued job first ran after the restart"
    );
}

#[test]
fn a_job_still_running_after_the_grace_period_replays_on_the_next_start() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = write_config(tmp.path(), "[daemon]\nshutdown_grace_secs = 0.2\n");
    let args = ["--config", config.to_str().expect("utf-8 path")];
    let mut daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .start();
    let running = occupy_a_tester(&daemon);
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.log_tail(20));
    daemon.wait_for("drain timeout", |l| l["event"] == "drain_timeout");

    let again = Daemon::builder().dir(tmp.path()).testers(1).start();
    let done = again
        .json(&["result", "--wait", &running.to_string()])
        .remove(0);
    assert_eq!(done["prime"], true);
    assert_eq!(done["attempts"], 2);
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused_and_the_live_socket_kept() {
    let daemon = Daemon::start(1);
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--data-dir")
        .arg(daemon.dir.join("other-data"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another primed is already serving"),
        "{stderr}"
    );
    assert!(daemon.cli(&["check", "2"]).status.success());
}

#[test]
fn a_damaged_journal_is_refused_with_a_clear_error_never_started_empty() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let input: String = (1..=2000).map(|n| format!("{n}\n")).collect();
    let out = daemon.cli_stdin(&["submit"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(daemon.terminate().success());
    let journal = daemon.data_dir.join("journal");
    let backup = tmp.path().join("backup");
    copy_dir(&journal, &backup);
    let log = journal.join("db");
    let length = std::fs::metadata(&log).expect("the log").len() as usize;

    std::fs::remove_file(&log).expect("remove the log");
    let stderr = refused_start(tmp.path());
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains(&journal.display().to_string()), "{stderr}");
    assert!(stderr.contains("move it aside"), "{stderr}");

    let garbage: Vec<u8> = (0..length).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&log, garbage).expect("garble the log");
    let stderr = refused_start(tmp.path());
    assert!(stderr.contains(&journal.display().to_string()), "{stderr}");

    // As the error says: restore the data dir from a backup (a failed open rewrites files).
    std::fs::remove_dir_all(&journal).expect("remove the damaged journal");
    copy_dir(&backup, &journal);
    let again = Daemon::builder().dir(tmp.path()).testers(1).start();
    let status = again.status();
    let jobs =
        status["in_flight"].as_u64().unwrap_or(0) + status["completed"].as_u64().unwrap_or(0);
    assert_eq!(jobs, 2000, "the restored journal has every job: {status}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A stand-in for systemd's notification socket, in `dir`: its path, and the next message.
struct NotifySocket {
    path: std::path::PathBuf,
    socket: std::os::unix::net::UnixDatagram,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(crate::common::EVENT_TIMEOUT))
            .expect("timeout");
        NotifySocket { path, socket }
    }

    fn next(&self) -> String {
        let mut buffer = [0u8; 64];
        let len = self.socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..len]).into_owned()
    }
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let notify = NotifySocket::bind(tmp.path());
    let mut daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .env("NOTIFY_SOCKET", &notify.path)
        .spawn();
    assert_eq!(notify.next(), "READY=1");
    let out = daemon.cli(&["check", "97"]);
    assert!(
        out.status.success(),
        "ready means serving: {}",
        describe(&out)
    );
    assert!(daemon.terminate().success());
    assert_eq!(notify.next(), "STOPPING=1");
}

#[test]
fn log_file_takes_the_structured_log() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let notify = NotifySocket::bind(tmp.path());
    let logs = tmp.path().join("logs");
    let log_file = logs.join("primed.log");
    let args = ["--log-file", log_file.to_str().expect("utf-8 path")];
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&args)
        .env("NOTIFY_SOCKET", &notify.path)
        .spawn();
    assert_eq!(notify.next(), "READY=1");
    // A served request means the accept loop (which logs `listening`) has begun.
    assert!(daemon.cli(&["check", "97"]).status.success());
    let files: Vec<_> = std::fs::read_dir(&logs)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("primed.log."), "dated: {name}");
    let text = std::fs::read_to_string(&files[0]).expect("read log");
    let events: Vec<String> = parse_lines(text.as_bytes())
        .iter()
        .filter_map(|l| l["event"].as_str().map(str::to_string))
        .collect();
    for event in ["journal_open", "start", "listening"] {
        assert!(
            events.iter().any(|e| e == event),
            "no {event} in {events:?}"
        );
    }
}
