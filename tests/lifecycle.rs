//! Start and stop: SIGTERM shuts down cleanly, and one data dir serves one daemon.

mod common;

use std::process::Command;

use common::{describe, Daemon, BIN};

#[test]
fn sigterm_exits_zero_removes_the_socket_and_the_next_start_keeps_the_results() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::start_in(tmp.path(), 1, &[]);
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

    let again = Daemon::start_in(tmp.path(), 1, &[]);
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
