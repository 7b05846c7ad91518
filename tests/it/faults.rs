//! Fault tolerance through the real binary: poison jobs are quarantined without taking the
//! daemon down, a tester that cannot restart escalates to a non-zero exit (with backoff and
//! escalation kept in the event log), and a full daemon answers "busy".

use crate::common::Daemon;
use crate::common::{
    describe, is_prime_by_trial_division, occupy_a_tester, parse_lines, write_config,
};
use serde_json::Value;

const POISON: u64 = 1_000_003;

#[test]
fn a_burst_of_poison_jobs_is_quarantined_and_every_other_job_is_answered() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let poison = POISON.to_string();
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(2)
        .args(&["--panic-on", &poison])
        .start();
    // 100 poison jobs among 400 good ones: 300 crashes, far past the restart intensity
    // (10 in 10 s) had they counted.
    let good: Vec<u64> = (0..400u64).map(|i| 2_000_000 + i).collect();
    let mut input = String::new();
    for (i, n) in good.iter().enumerate() {
        input.push_str(&format!("{n}\n"));
        if i % 4 == 0 {
            input.push_str(&format!("{POISON}\n"));
        }
    }
    let out = daemon.cli_stdin(&["check", "--json"], Some(input.as_bytes()));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let answers = parse_lines(&out.stdout);
    assert_eq!(answers.len(), 500);
    let (quarantined, tested): (Vec<&Value>, Vec<&Value>) =
        answers.iter().partition(|a| a["n"] == poison.as_str());
    assert_eq!(quarantined.len(), 100);
    for answer in quarantined {
        let error = answer["error"]
            .as_str()
            .expect("a quarantined job has an error");
        assert!(error.starts_with("quarantined: "), "{answer}");
        assert!(error.contains("panic on 1000003"), "{answer}");
        assert_eq!(answer["attempts"], 3, "{answer}");
        assert!(answer.get("prime").is_none(), "{answer}");
    }
    for answer in tested {
        let n: u64 = answer["n"].as_str().expect("n").parse().expect("number");
        assert_eq!(answer["prime"], is_prime_by_trial_division(n), "{answer}");
        assert_eq!(answer["attempts"], 1, "{answer}");
    }

    let status = daemon.status();
    assert_eq!(status["in_flight"], 0);
    assert_eq!(status["completed"], 500);
    assert_eq!(status["restarts"], 300, "{status}");
    // The log is read by another thread: await the lines rather than count them right away.
    daemon.wait_for_nth("100 quarantines", 100, |l| l["event"] == "quarantine");
    assert_eq!(daemon.count(|l| l["event"] == "escalate"), 0);
    let events = daemon.json(&["events"]);
    let stored = events.iter().filter(|e| e["event"] == "quarantine").count();
    assert_eq!(stored, 100, "quarantines are in the event log");
    let result = daemon.cli(&["result", &answers[1]["id"].to_string()]);
    assert_eq!(result.status.code(), Some(1), "{}", describe(&result));
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("was quarantined"),
        "{}",
        describe(&result)
    );
}

#[test]
fn a_kill_is_not_blamed_on_the_running_job() {
    let daemon = Daemon::start(1);
    let id = occupy_a_tester(&daemon);
    for round in 1..=3 {
        let out = daemon.cli(&["kill", "tester-1"]);
        assert!(out.status.success(), "{}", describe(&out));
        daemon.wait_for("job restarts", |l| {
            l["event"] == "job_start" && l["job"] == id && l["attempt"] == round + 1
        });
    }
    assert_eq!(daemon.count(|l| l["event"] == "poison"), 0);
    let result = daemon
        .json(&["result", "--wait", &id.to_string()])
        .remove(0);
    assert_eq!(result["prime"], true, "three kills did not quarantine it");
    assert_eq!(result["attempts"], 4);
}

#[test]
fn a_tester_that_cannot_restart_escalates_to_a_non_zero_exit_and_the_journal_replays() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        tmp.path(),
        "[supervision]\nmax_restarts = 3\nperiod_secs = 30\nbackoff_initial_ms = 10\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let args = ["--config", config, "--fail-restart", "tester-1"];
    let mut daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(2)
        .args(&args)
        .start();
    let long = occupy_a_tester(&daemon);
    let out = daemon.cli(&["kill", "tester-1"]);
    assert!(out.status.success(), "{}", describe(&out));

    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", daemon.log_tail(40));
    let errors = daemon.errors();
    assert_eq!(errors.len(), 1, "one error line: {errors:#?}");
    let gave_up = &errors[0];
    assert_eq!(gave_up["event"], "gave_up");
    assert_eq!(gave_up["actor"], "root");
    let reason = gave_up["reason"].as_str().expect("reason");
    assert!(reason.contains("root: more than 3 restarts"), "{reason}");
    assert!(reason.contains("tester-1"), "{reason}");
    assert!(reason.contains("fails every restart"), "{reason}");

    // The next start (without the fault) has the story in its event log, and the job.
    let daemon = Daemon::builder().dir(tmp.path()).testers(2).start();
    let events = daemon.json(&["events"]);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for kind in [
        "daemon_start",
        "crash",
        "start_failed",
        "backoff",
        "escalate",
        "gave_up",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let delays: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "backoff" && e["actor"] == "tester-1")
        .filter_map(|e| e["delay_ms"].as_u64())
        .collect();
    assert_eq!(delays, [10, 20], "tester-1 backed off, doubling");
    let escalated: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "escalate")
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(escalated, ["pool", "tester_supervisor", "root"]);
    // Read after `events`: the new daemon may have recorded more since (its replays).
    let since = daemon.json(&["events", "--since", "1h"]);
    assert!(
        since.len() >= events.len(),
        "all of them are from the last hour: {} of {}",
        since.len(),
        events.len()
    );

    let result = daemon
        .json(&["result", "--wait", &long.to_string()])
        .remove(0);
    assert_eq!(result["prime"], true);
}

#[test]
fn past_max_in_flight_submissions_are_refused_as_busy_and_others_still_served() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&["--max-in-flight", "3"])
        .start();
    occupy_a_tester(&daemon);
    let queued = daemon.json(&["submit", "97", "89"]);
    assert_eq!(queued.len(), 2);
    let out = daemon.cli(&["check", "7919"]);
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("busy: 3 jobs in flight and the limit is 3"),
        "{stderr}"
    );
    let refused = daemon.cli(&["submit", "--json", "11", "x"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "invalid input outranks busy"
    );
    let lines = parse_lines(&refused.stdout);
    assert!(lines[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("busy")));
    assert!(lines[1]["error"]
        .as_str()
        .is_some_and(|e| e.contains("not")));
    assert_eq!(daemon.status()["in_flight"], 3, "nothing was added");
}

#[test]
fn events_follow_streams_crashes_and_restarts_as_they_happen() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let daemon = Daemon::start(1);
    let mut follower = Command::new(crate::common::BIN)
        .args(["events", "--follow", "--json", "--socket"])
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn events --follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            if lines_tx.send(value).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| {
        lines
            .recv_timeout(crate::common::EVENT_TIMEOUT)
            .unwrap_or_else(|_| panic!("no event line while waiting for {what}"))
    };
    // The stored history comes first; once it has, the follower is subscribed.
    while next("the stored daemon_start")["event"] != "daemon_start" {}
    let out = daemon.cli(&["kill", "tester-1"]);
    assert!(out.status.success(), "{}", describe(&out));
    let mut seen = Vec::new();
    while !seen.contains(&"restart".to_string()) {
        let line = next("the live restart");
        if line["actor"] == "tester-1" {
            seen.push(line["event"].as_str().unwrap_or_default().to_string());
        }
    }
    let crash = seen.iter().position(|e| e == "crash");
    assert!(
        crash.is_some_and(|c| c < seen.len() - 1),
        "a crash, then the restart: {seen:?}"
    );
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn the_event_log_of_a_stopped_daemon_is_read_from_its_data_dir() {
    use std::process::Command;

    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let out = daemon.cli(&["kill", "tester-1"]);
    assert!(out.status.success(), "{}", describe(&out));
    daemon.wait_for("the restart", |l| {
        l["event"] == "restart" && l["actor"] == "tester-1"
    });
    // A job acknowledged after the restart: the flush that made it durable took the events.
    assert_eq!(daemon.json(&["check", "97"])[0]["prime"], true);
    let data_dir = daemon.data_dir.clone();
    let offline = |args: &[&str]| {
        Command::new(crate::common::BIN)
            .args(["events", "--json", "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .output()
            .expect("run primed events")
    };
    // While the daemon runs, it holds the journal: ask it instead.
    let busy = offline(&[]);
    assert_eq!(busy.status.code(), Some(1), "{}", describe(&busy));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("in use"));

    // Stopped (kill -9, as a crash), its history is still there to read; a snapshot sled
    // began and never finished (a start on a full disk leaves one) is no journal damage.
    daemon.kill9();
    let unfinished = data_dir
        .join("journal")
        .join("snap.00000000000001F4.generating");
    std::fs::write(&unfinished, b"").expect("plant an unfinished snapshot");
    let out = offline(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let events = parse_lines(&out.stdout);
    let of = |event: &str| {
        events
            .iter()
            .filter(|e| e["event"] == event && e["actor"] == "tester-1")
            .count()
    };
    assert_eq!((of("crash"), of("restart")), (1, 1), "{events:?}");
    let recent = offline(&["--since", "1h"]);
    assert_eq!(parse_lines(&recent.stdout).len(), events.len());

    let nowhere = Command::new(crate::common::BIN)
        .args(["events", "--data-dir"])
        .arg(tmp.path().join("nothing"))
        .output()
        .expect("run primed events");
    assert_eq!(nowhere.status.code(), Some(1), "{}", describe(&nowhere));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("no journal"));
}
