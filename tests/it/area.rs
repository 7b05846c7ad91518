//! The area server: answers the book's shapes, and when a shape it cannot measure crashes it
//! (the book's deliberate bug), the root restarts it alone: the tester pool is never touched.

use crate::common::{block_a_tester, describe, Daemon};
use serde_json::Value;

#[test]
fn areas_of_the_books_shapes() {
    let daemon = Daemon::start(1);
    let area = |args: &[&str]| -> f64 {
        let mut full = vec!["area"];
        full.extend_from_slice(args);
        daemon.json(&full)[0]["area"].as_f64().expect("area")
    };
    assert_eq!(area(&["rectangle", "3", "4"]), 12.0);
    assert_eq!(area(&["square", "5"]), 25.0);
    assert!((area(&["circle", "1"]) - std::f64::consts::PI).abs() < 1e-12);
    let human = daemon.cli(&["area", "rectangle", "2.5", "2"]);
    assert_eq!(
        String::from_utf8_lossy(&human.stdout),
        "5\n",
        "{}",
        describe(&human)
    );
}

/// Every node of the tree but the root, as (name, restarts, running).
fn nodes(node: &Value, into: &mut Vec<(String, u64, bool)>) {
    for child in node["children"].as_array().into_iter().flatten() {
        let name = child["name"].as_str().expect("name").to_string();
        into.push((
            name,
            child["restarts"].as_u64().expect("restarts"),
            child["running"] == true,
        ));
        nodes(child, into);
    }
}

#[test]
fn a_crashing_area_server_is_restarted_alone() {
    let daemon = Daemon::start(2);
    let blocker = block_a_tester(&daemon);
    let long = blocker.id;
    // More crashes than the root's intensity (10 in 10 s): bad input must not escalate.
    let crashes = 12u64;
    for k in 1..=crashes as usize {
        let out = daemon.cli(&["area", "rectangle", "-1", "2"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("area_server crashed on \"rectangle -1 2\"")
                && stderr.contains("width must be a finite number"),
            "{stderr}"
        );
        daemon.wait_for_nth("area_server restart", k, |l| {
            l["event"] == "restart" && l["actor"] == "area_server" && l["supervisor"] == "root"
        });
    }
    assert_eq!(daemon.json(&["area", "square", "3"])[0]["area"], 9.0);

    let tree = daemon.json(&["tree"]).remove(0);
    assert_eq!(
        (&tree["name"], &tree["strategy"]),
        (&"root".into(), &"one_for_one".into())
    );
    let mut all = Vec::new();
    nodes(&tree, &mut all);
    for (name, restarts, running) in &all {
        let expected = if name == "area_server" { crashes } else { 0 };
        assert_eq!((*restarts, *running), (expected, true), "{name}: {tree}");
    }
    assert_eq!(all.len(), 6, "{tree}");
    // The long job was never interrupted: one start, still running.
    let job_starts = daemon.count(|l| l["event"] == "job_start" && l["job"] == long);
    assert_eq!(job_starts, 1);
    let testers = &tree["children"][0]["children"][1]["children"];
    assert!(
        testers
            .as_array()
            .expect("testers")
            .iter()
            .any(|t| t["job"] == long),
        "{testers}"
    );
    let others_crashed = daemon.count(|l| l["event"] == "crash" && l["actor"] != "area_server");
    assert_eq!(others_crashed, 0, "{}", daemon.log_tail(40));
}
