//! `primed reload` and SIGHUP: the pool grows and shrinks live without losing or duplicating a
//! job (a removed tester's queue goes back to the balancer), and the log level changes live.

use std::process::Command;

use crate::common::{block_a_tester, describe, is_prime_by_trial_division, write_config, Daemon};
use serde_json::Value;

fn testers_in_tree(daemon: &Daemon) -> Vec<String> {
    let tree = daemon.json(&["tree"]).remove(0);
    let pool = &tree["children"][0]["children"][1];
    assert_eq!(pool["name"], "pool", "{tree}");
    pool["children"]
        .as_array()
        .expect("testers")
        .iter()
        .filter(|t| t["running"] == true)
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

fn reload(daemon: &Daemon) -> String {
    let out = daemon.cli(&["reload"]);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_pool_shrinks_and_grows_live_without_losing_a_job() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = |testers: u32| write_config(tmp.path(), &format!("[pool]\ntesters = {testers}\n"));
    let path = config(2);
    let path = path.to_str().expect("utf-8 path");
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(0)
        .args(&["--config", path])
        .start();
    assert_eq!(testers_in_tree(&daemon), ["tester-1", "tester-2"]);

    // Both testers busy, so the small jobs queue up at both.
    let blockers = [block_a_tester(&daemon), block_a_tester(&daemon)];
    let numbers: Vec<u64> = (0..200u64).map(|i| 1_000_003 + 2 * i).collect();
    let mut args = vec!["submit".to_string()];
    args.extend(numbers.iter().map(u64::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ids: Vec<u64> = daemon
        .json(&args)
        .iter()
        .map(|j| j["id"].as_u64().expect("id"))
        .collect();
    let queued_at_2 = daemon.status()["testers"][1]["queued"]
        .as_u64()
        .expect("queued");
    assert!(queued_at_2 > 50, "tester-2 holds a queue: {queued_at_2}");

    config(1);
    assert_eq!(reload(&daemon), "reloaded: testers 2 -> 1");
    assert_eq!(testers_in_tree(&daemon), ["tester-1"]);
    let handed = daemon.wait_for("handed back", |l| l["event"] == "handed_back");
    assert_eq!(handed["jobs"].as_u64(), Some(queued_at_2), "{handed}");
    let status = daemon.status();
    assert_eq!(status["testers"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["in_flight"].as_u64(), Some(202));
    assert_eq!(
        status["testers"][0]["queued"].as_u64(),
        Some(202),
        "{status}"
    );

    // SIGHUP grows it again; the new testers are idle, so they take the next jobs.
    config(3);
    let pid = daemon.pid().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    daemon.wait_for("reload", |l| {
        l["event"] == "reload" && l["changes"] == "testers 1 -> 3"
    });
    assert_eq!(
        testers_in_tree(&daemon),
        ["tester-1", "tester-2", "tester-3"]
    );
    for blocker in &blockers {
        assert!(daemon
            .cli(&["cancel", &blocker.id.to_string()])
            .status
            .success());
    }
    let mut args = vec!["result".to_string(), "--wait".to_string()];
    args.extend(ids.iter().map(u64::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let results = daemon.json(&args);
    assert_eq!(results.len(), numbers.len());
    for (line, n) in results.iter().zip(&numbers) {
        assert_eq!(line["n"], n.to_string());
        assert_eq!(line["prime"], is_prime_by_trial_division(*n), "{line}");
    }
    // Each job completed once: the journal's count is exactly the jobs submitted.
    let status = daemon.status();
    assert_eq!(
        (status["in_flight"].as_u64(), status["completed"].as_u64()),
        (Some(0), Some(202)),
        "{status}"
    );
    let done_by_new: u64 = status["testers"].as_array().expect("testers")[1..]
        .iter()
        .map(|t| t["completed"].as_u64().unwrap_or(0))
        .sum();
    let checked = daemon.json(&["check", "97", "89", "83", "79", "73", "71"]);
    assert!(checked.iter().all(|c| c["prime"] == true));
    let status = daemon.status();
    let done_by_new_after: u64 = status["testers"].as_array().expect("testers")[1..]
        .iter()
        .map(|t| t["completed"].as_u64().unwrap_or(0))
        .sum();
    assert!(done_by_new_after > done_by_new, "{status}");
}

#[test]
fn the_log_level_changes_live_and_a_bad_config_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = write_config(tmp.path(), "[daemon]\nlog_level = \"info\"\n");
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&["--config", path.to_str().expect("utf-8")])
        .start();
    // JSON lines are flattened: the message is a top-level field.
    let is_testing = |l: &Value| l["level"] == "DEBUG" && l["message"] == "testing";
    assert_eq!(daemon.json(&["check", "97"])[0]["prime"], true);
    assert_eq!(daemon.count(is_testing), 0, "debug is off at info");

    write_config(tmp.path(), "[daemon]\nlog_level = \"debug\"\n");
    assert_eq!(reload(&daemon), "reloaded: log level \"info\" -> \"debug\"");
    assert_eq!(daemon.json(&["check", "89"])[0]["prime"], true);
    let line = daemon.wait_for("a debug line", is_testing);
    assert_eq!(line["actor"], "tester-1", "{line}");

    write_config(tmp.path(), "[pool\ntesters = 2\n");
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reload refused") && stderr.contains("not valid TOML"),
        "{stderr}"
    );
    assert_eq!(testers_in_tree(&daemon), ["tester-1"]);
    assert_eq!(
        reload_unchanged(&daemon, tmp.path()),
        "reloaded: nothing changed"
    );
}

fn reload_unchanged(daemon: &Daemon, dir: &std::path::Path) -> String {
    write_config(dir, "[daemon]\nlog_level = \"debug\"\n");
    reload(daemon)
}
