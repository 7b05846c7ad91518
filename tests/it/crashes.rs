//! Done-when 2 and 3: killing a tester mid-job, and killing the balancer with jobs queued.

use crate::common::{describe, mersenne, Daemon};
use serde_json::Value;

fn id_of(line: &Value) -> u64 {
    line["id"].as_u64().expect("job id")
}

fn is_event(line: &Value, event: &str, actor: &str) -> bool {
    line["event"] == event && line["actor"] == actor
}

#[test]
fn a_killed_tester_restarts_and_replays_its_job_and_no_other_job_is_affected() {
    let daemon = Daemon::start(2);
    // A big Mersenne prime: seconds of work, so the kill lands while it runs.
    let long = mersenne(19937);
    let id = id_of(&daemon.json(&["submit", &long])[0]);
    let started = daemon.wait_for("the long job starts", |l| {
        l["event"] == "job_start" && l["job"] == id && l["attempt"] == 1
    });
    let victim = started["actor"].as_str().expect("actor").to_string();
    let before = daemon.json(&["submit", "97", "91", "7919", "561"]);

    let out = daemon.cli(&["kill", &victim]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("killed {victim}\n")
    );

    let crash = daemon.wait_for("crash", |l| is_event(l, "crash", &victim));
    assert_eq!(crash["reason"], "killed");
    assert_eq!(crash["supervisor"], "pool");
    let restart = daemon.wait_for("restart", |l| is_event(l, "restart", &victim));
    assert_eq!(restart["restarts"], 1);
    let replay = daemon.wait_for("replay", |l| {
        is_event(l, "replay", &victim) && l["jobs"].as_u64() >= Some(1)
    });
    assert_eq!(
        replay["jobs"], 1,
        "the restarted tester replays exactly its own job"
    );
    daemon.wait_for("second attempt", |l| {
        l["event"] == "job_start" && l["job"] == id && l["attempt"] == 2
    });

    let after = daemon.json(&["check", "2", "9", "104729"]);
    let result = daemon
        .json(&["result", "--wait", &id.to_string()])
        .remove(0);
    assert_eq!(result["prime"], true);
    assert!(result["attempts"].as_u64() >= Some(2), "{result}");

    let ids: Vec<String> = before.iter().map(|l| id_of(l).to_string()).collect();
    let mut args = vec!["result", "--wait"];
    args.extend(ids.iter().map(String::as_str));
    let others: Vec<Value> = daemon.json(&args).into_iter().chain(after).collect();
    let expected = [true, false, true, false, true, false, true];
    for (line, prime) in others.iter().zip(expected) {
        assert_eq!(line["prime"], prime, "{line}");
        assert_eq!(line["attempts"], 1, "other jobs ran once: {line}");
    }

    let status = daemon.status();
    for tester in status["testers"].as_array().expect("testers") {
        let restarts = if tester["name"] == victim.as_str() {
            1
        } else {
            0
        };
        assert_eq!(tester["restarts"], restarts, "{status}");
    }
    assert_eq!(status["balancer"]["restarts"], 0);
    assert_eq!(status["completed"], 8);
    assert_eq!(status["in_flight"], 0);
}

#[test]
fn a_killed_balancer_restarts_the_pool_and_every_job_completes_exactly_once() {
    let daemon = Daemon::start(2);
    // Mersenne numbers with prime exponents pass base-2 Miller-Rabin whether or not they are
    // prime; M9689 is prime, M9697 is not, and only the Lucas test can tell.
    let (prime, composite) = (mersenne(9689), mersenne(9697));
    let mut numbers: Vec<&str> = Vec::new();
    for _ in 0..4 {
        numbers.push(&prime);
        numbers.push(&composite);
    }
    let small: Vec<String> = (1000..1100u64).map(|n| n.to_string()).collect();
    numbers.extend(small.iter().map(String::as_str));
    let mut args = vec!["submit"];
    args.extend(&numbers);
    let ids: Vec<u64> = daemon.json(&args).iter().map(id_of).collect();
    assert_eq!(ids.len(), numbers.len());
    for tester in ["tester-1", "tester-2"] {
        daemon.wait_for("both testers busy", |l| is_event(l, "job_start", tester));
    }

    let out = daemon.cli(&["kill", "balancer"]);
    assert!(out.status.success(), "{}", describe(&out));
    daemon.wait_for("balancer crash", |l| is_event(l, "crash", "balancer"));
    for actor in ["balancer", "pool", "tester-1", "tester-2"] {
        let restart = daemon.wait_for(actor, |l| is_event(l, "restart", actor));
        assert_eq!(restart["restarts"], 1, "{actor}");
    }

    let id_args: Vec<String> = ids.iter().map(u64::to_string).collect();
    let mut args = vec!["result", "--wait"];
    args.extend(id_args.iter().map(String::as_str));
    let results = daemon.json(&args);
    assert_eq!(results.len(), ids.len());
    for (i, line) in results.iter().enumerate() {
        let expected = match i {
            0..8 => i % 2 == 0,
            _ => crate::common::is_prime_by_trial_division(1000 + i as u64 - 8),
        };
        assert_eq!(line["prime"], expected, "{line}");
    }
    let status = daemon.status();
    assert_eq!(
        status["completed"],
        ids.len(),
        "each job recorded once: {status}"
    );
    assert_eq!(status["in_flight"], 0);
    assert_eq!(status["balancer"]["restarts"], 1);
    let completed: u64 = status["testers"]
        .as_array()
        .expect("testers")
        .iter()
        .map(|t| t["completed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        completed,
        ids.len() as u64,
        "no job recorded twice: {status}"
    );
}
