//! Damaged disks: a log whose tail was lost after a kill -9, a journal whose mark is gone, a
//! data dir that is not primed's, a snapshot sled never finished. Each is refused with a clear
//! error (or, for the unfinished snapshot, shed), never started short or from job id 1.

use std::fs;
use std::path::Path;

use crate::common::{block_a_tester, describe, refused_start, Daemon};

/// Submits `count` numbers with the only tester busy, so they all stay in flight and the log's
/// tail is their records; returns once they are acknowledged.
fn submit_in_flight(daemon: &Daemon, count: u64) {
    let input: String = (0..count).map(|n| format!("{}\n", 1_000 + n)).collect();
    let out = daemon.cli_stdin(&["submit"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count() as u64,
        count
    );
}

fn cut_tail(log: &Path, bytes: u64) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(log)
        .expect("the log");
    let length = file.metadata().expect("length").len();
    assert!(length > bytes, "the log is only {length} bytes");
    file.set_len(length - bytes).expect("cut");
}

#[test]
fn a_lost_tail_after_kill_9_is_refused_not_started_short_with_ids_reused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let _blocker = block_a_tester(&daemon);
    submit_in_flight(&daemon, 20_000);
    daemon.kill9();

    cut_tail(&daemon.data_dir.join("journal/db"), 256 << 10);
    // Either the mark shows the loss, or sled itself fails recovering the cut log: refused.
    let stderr = refused_start(tmp.path());
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains("move it aside"), "{stderr}");
}

#[test]
fn a_journal_without_its_mark_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    submit_in_flight(&daemon, 2_000);
    assert!(daemon.terminate().success());
    let journal = daemon.data_dir.join("journal");
    fs::remove_file(journal.join("primed.mark")).expect("remove the mark");
    let half = fs::metadata(journal.join("db")).expect("the log").len() / 2;
    cut_tail(&journal.join("db"), half);
    let stderr = refused_start(tmp.path());
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains("primed.mark is missing"), "{stderr}");
}

#[test]
fn a_data_dir_that_is_not_primeds_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::create_dir(tmp.path().join("data")).expect("data dir");
    fs::write(tmp.path().join("data/notes.txt"), "someone's").expect("a file");
    let stderr = refused_start(tmp.path());
    assert!(
        stderr.contains("holds no primed journal but is not empty"),
        "{stderr}"
    );
    assert!(stderr.contains("notes.txt"), "{stderr}");
    assert!(!tmp.path().join("data/journal").exists());
}

/// sled reads back any `snap.*` file, and one left unfinished (empty, by a full disk) made
/// every later start fail as damaged.
#[test]
fn an_unfinished_snapshot_is_shed_and_every_job_kept() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    submit_in_flight(&daemon, 2_000);
    assert!(daemon.terminate().success());
    let unfinished = daemon
        .data_dir
        .join("journal/snap.FFFFFFFFFFFFFFFF.generating");
    fs::write(&unfinished, b"").expect("an empty snapshot");

    let again = Daemon::builder().dir(tmp.path()).testers(1).start();
    again.wait_for("shed", |l| l["event"] == "snapshot_dropped");
    let status = again.status();
    let jobs =
        status["in_flight"].as_u64().unwrap_or(0) + status["completed"].as_u64().unwrap_or(0);
    assert_eq!(jobs, 2_000, "{status}");
    assert!(!unfinished.exists());
}
