//! `primed prime --digits K`: a uniformly random K-digit prime, made by a journaled job that
//! survives a kill -9 and that Ctrl-C cancels.

use std::process::Command;

use crate::common::{describe, is_prime_by_trial_division, occupy_a_tester, Daemon};
use num_bigint::BigUint;
use serde_json::Value;

/// An oracle independent of the daemon's engine: Fermat tests to four bases.
fn probably_prime(n: &str) -> bool {
    let n: BigUint = n.parse().expect("decimal");
    if let Ok(small) = u64::try_from(&n) {
        return is_prime_by_trial_division(small);
    }
    let one = BigUint::from(1u8);
    [2u8, 3, 5, 7]
        .iter()
        .all(|&a| BigUint::from(a).modpow(&(&n - &one), &n) == one)
}

fn assert_made(line: &Value, digits: u64) {
    assert_eq!(line["digits"], digits, "{line}");
    let n = line["n"].as_str().expect("n");
    assert_eq!(n.len() as u64, digits, "{line}");
    assert!(!n.starts_with('0'), "{line}");
    assert!(probably_prime(n), "not prime: {line}");
}

#[test]
fn makes_primes_of_exactly_k_digits() {
    let daemon = Daemon::start(2);
    for digits in [1u64, 2, 12, 60] {
        let made = daemon.json(&["prime", "--digits", &digits.to_string()]);
        assert_made(&made[0], digits);
    }
    let a = daemon.json(&["prime", "--digits", "60"]).remove(0);
    let b = daemon.json(&["prime", "--digits", "60"]).remove(0);
    assert_ne!(a["n"], b["n"], "uniformly random, so two draws differ");

    let human = daemon.cli(&["prime", "--digits", "20"]);
    assert!(human.status.success(), "{}", describe(&human));
    let printed = String::from_utf8_lossy(&human.stdout).trim().to_string();
    assert!(printed.len() == 20 && probably_prime(&printed), "{printed}");

    let zero = daemon.cli(&["prime", "--digits", "0"]);
    assert_eq!(zero.status.code(), Some(1), "{}", describe(&zero));
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(
        stderr.contains("cannot make a prime of 0 digits"),
        "{stderr}"
    );
    assert!(stderr.contains("limits.max_digits"), "{stderr}");
}

#[test]
fn a_make_prime_job_survives_kill_9() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    // The only tester is busy, so the make-prime job is still queued at the kill.
    occupy_a_tester(&daemon);
    let mut client = daemon.spawn_cli(&["prime", "--digits", "40", "--json"]);
    let id = crate::common::accepted_id(&mut client);
    let jobs = daemon.json(&["jobs"]);
    assert!(
        jobs.iter()
            .any(|j| j["id"] == id && j["n"] == "a 40-digit prime"),
        "{jobs:?}"
    );
    daemon.kill9();
    let out = client.wait_with_output().expect("client exits");
    assert_eq!(
        out.status.code(),
        Some(2),
        "the daemon went away: {}",
        describe(&out)
    );

    let restarted = Daemon::builder().dir(tmp.path()).testers(2).start();
    let result = restarted.json(&["result", "--wait", &id.to_string()]);
    assert_made(&result[0], 40);
    assert_eq!(result[0]["id"], id);
}

#[test]
fn ctrl_c_cancels_the_job() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let mut client = daemon.spawn_cli(&["prime", "--digits", "5000"]);
    let id = crate::common::accepted_id(&mut client);
    daemon.wait_for("the make-prime job starts", |l| {
        l["event"] == "job_start" && l["job"] == id && l["digits"] == 5000
    });
    let interrupted = Command::new("kill")
        .args(["-INT", &client.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let out = client.wait_with_output().expect("client exits");
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("job {id}: cancelled")
    );

    // The tester stopped it: it is free again, and the job is answered "cancelled".
    daemon.wait_for("the tester stops the job", |l| {
        l["event"] == "cancelled" && l["job"] == id && l["actor"] == "tester-1"
    });
    let tester = &daemon.status()["testers"][0];
    assert_eq!(
        (&tester["load"], &tester["queued"]),
        (&0.into(), &0.into()),
        "{tester}"
    );
    let answer = daemon.cli(&["result", &id.to_string(), "--json"]);
    assert_eq!(answer.status.code(), Some(1), "{}", describe(&answer));
    let answer = crate::common::parse_lines(&answer.stdout);
    assert_eq!(answer[0]["error"], "cancelled", "{:?}", answer);
    assert_eq!(daemon.json(&["check", "97"])[0]["prime"], true);
    let again = daemon.cli(&["cancel", &id.to_string()]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));

    // Cancelled is an answer: a restart does not run the job again.
    assert!(daemon.terminate().success());
    let restarted = Daemon::builder().dir(tmp.path()).testers(1).start();
    assert!(restarted.json(&["jobs"]).is_empty());
    let listing = restarted.cli(&["jobs"]);
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "no jobs in flight\n"
    );
    assert_eq!(restarted.json(&["check", "89"])[0]["prime"], true);
    assert_eq!(
        restarted.count(|l| l["event"] == "job_start" && l["job"] == id),
        0
    );
}

#[test]
fn a_cancelled_job_answers_its_waiting_check_with_an_error() {
    let daemon = Daemon::start(1);
    let client = daemon.spawn_cli(&["check", &crate::common::mersenne(19937)]);
    let started = daemon.wait_for("the long job starts", |l| l["event"] == "job_start");
    let id = started["job"].as_u64().expect("job id");
    let out = daemon.cli(&["cancel", &id.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("job {id}: cancelled\n")
    );
    let waited = client.wait_with_output().expect("check exits");
    assert_eq!(waited.status.code(), Some(1), "{}", describe(&waited));
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(
        stderr.contains(&format!("job {id}")) && stderr.contains("was cancelled"),
        "{stderr}"
    );
    assert!(waited.stdout.is_empty());
}

#[test]
fn a_long_in_flight_list_comes_whole_in_chunks() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    // The only tester is held by a make-prime, so everything submitted after it waits.
    let mut client = daemon.spawn_cli(&["prime", "--digits", "5000"]);
    let id = crate::common::accepted_id(&mut client);
    daemon.wait_for("the make-prime job starts", |l| {
        l["event"] == "job_start" && l["job"] == id
    });
    let numbers: String = (0..2500)
        .map(|i| format!("{}\n", 1_000_003 + 2 * i))
        .collect();
    let out = daemon.cli_stdin(&["submit"], Some(numbers.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    // Three chunks of at most 1,000, each sent once the connection's queue has room.
    let listed = daemon.json(&["jobs"]);
    let mut ids: Vec<u64> = listed.iter().filter_map(|j| j["id"].as_u64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2501, "every job in flight, once");
    let _ = client.kill();
}
