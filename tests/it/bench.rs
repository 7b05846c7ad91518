//! `primed bench` against a running daemon and against the journal alone: it answers every
//! job and prints the one JSON line its contract promises. (It measures; it asserts no speed.)

use std::process::Command;

use crate::common::{describe, parse_lines, Daemon, BIN};
use serde_json::Value;

fn assert_report(line: &Value, jobs: u64) {
    assert_eq!(line["jobs"], jobs, "{line}");
    for field in ["seconds", "jobs_per_sec", "p50_ms", "p99_ms", "p999_ms"] {
        assert!(
            line[field].as_f64().is_some_and(|v| v >= 0.0),
            "{field}: {line}"
        );
    }
    let p50 = line["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let p999 = line["p999_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(p50 <= p999, "{line}");
}

#[test]
fn bench_answers_every_job_against_a_daemon_and_prints_one_json_line() {
    let daemon = Daemon::start(2);
    for mix in ["u64", "mixed"] {
        let out = daemon.cli(&[
            "bench",
            "--json",
            "--jobs",
            "3000",
            "--connections",
            "3",
            "--mix",
            mix,
            "--batch",
            "100",
            "--pipeline",
            "500",
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        let lines = parse_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "one line: {lines:?}");
        assert_report(&lines[0], 3000);
    }
    assert_eq!(
        daemon.status()["completed"],
        6000,
        "every bench job went through the daemon"
    );
}

#[test]
fn bench_journal_only_drives_a_fresh_journal() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--json",
            "--journal-only",
            "--jobs",
            "2000",
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .output()
        .expect("run bench");
    assert!(out.status.success(), "{}", describe(&out));
    assert_report(&parse_lines(&out.stdout)[0], 2000);
    assert!(
        tmp.path().join("data/journal/primed.mark").exists(),
        "it used the real journal"
    );
    let refused = Command::new(BIN)
        .args(["bench", "--journal-only"])
        .output()
        .expect("run bench");
    assert_eq!(
        refused.status.code(),
        Some(2),
        "--journal-only needs --data-dir"
    );
}
