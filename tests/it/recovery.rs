//! Done-when 4: kill -9 with thousands of acknowledged jobs in flight, then start again on the
//! same data dir: every job gets its correct answer, and the stale socket does not block.

use crate::common::{describe, is_prime_by_trial_division, occupy_a_tester, parse_lines, Daemon};

#[test]
fn kill_9_with_thousands_in_flight_loses_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    // Keep the only tester busy so the small jobs queue up behind this one.
    let long_id = occupy_a_tester(&daemon);

    let numbers: Vec<u64> = (0..3000u64).map(|i| 1_000_003 + 2 * i).collect();
    let input: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let out = daemon.cli_stdin(&["submit", "--json"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    let acked: Vec<u64> = parse_lines(&out.stdout)
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(acked.len(), numbers.len());
    let in_flight = daemon.json(&["jobs"]);
    assert!(
        in_flight.len() > 2000,
        "jobs were in flight at the kill: {}",
        in_flight.len()
    );

    daemon.kill9();
    assert!(
        daemon.socket.exists(),
        "kill -9 leaves the socket file behind"
    );
    let restarted = Daemon::builder().dir(tmp.path()).testers(2).start();
    let replay = restarted.wait_for("balancer replay", |l| {
        l["event"] == "replay" && l["actor"] == "balancer"
    });
    // Assignments are not flushed before the ack, so some come back unassigned: both count.
    let replayed =
        replay["jobs"].as_u64().unwrap_or(0) + replay["unassigned"].as_u64().unwrap_or(0);
    assert!(replayed > 2000, "{replay}");

    let mut ids = vec![long_id.to_string()];
    ids.extend(acked.iter().map(u64::to_string));
    let mut args = vec!["result", "--wait"];
    args.extend(ids.iter().map(String::as_str));
    let results = restarted.json(&args);
    assert_eq!(results.len(), numbers.len() + 1);
    assert_eq!(results[0]["prime"], true);
    for (line, n) in results[1..].iter().zip(&numbers) {
        assert_eq!(line["n"], n.to_string());
        assert_eq!(line["prime"], is_prime_by_trial_division(*n), "{line}");
    }
    let fresh = restarted.json(&["submit", "5"])[0]["id"]
        .as_u64()
        .expect("id");
    let newest = acked.iter().max().copied().unwrap_or(0);
    assert!(
        fresh > newest,
        "ids are never reused: {fresh} after {newest}"
    );
    restarted.json(&["result", "--wait", &fresh.to_string()]);
    let status = restarted.status();
    assert_eq!(status["in_flight"], 0, "{status}");
    assert_eq!(status["completed"], numbers.len() as u64 + 2, "{status}");
}

#[test]
fn a_check_client_exits_with_code_2_when_the_daemon_dies_under_it() {
    let mut daemon = Daemon::start(1);
    occupy_a_tester(&daemon);
    // More numbers than the client's window, all stuck behind the long job.
    let input: String = (0..40_000u64).map(|n| format!("{n}\n")).collect();
    let mut client = std::process::Command::new(crate::common::BIN)
        .args(["check", "--socket"])
        .arg(&daemon.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("client");
    let mut stdin = client.stdin.take().expect("stdin");
    std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
    let in_flight = || daemon.status()["in_flight"].as_u64().unwrap_or(0);
    // Wait until the client's window is full of acknowledged jobs.
    while in_flight() < 16_000 {
        std::thread::yield_now();
    }
    daemon.kill9();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(client.wait_with_output()));
    let out = exited
        .recv_timeout(crate::common::EVENT_TIMEOUT)
        .expect("the client exits instead of hanging")
        .expect("client output");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
