//! Retention: finished jobs beyond the policy are pruned in the background, a pruned id is
//! answered "pruned" (exit 3), distinct from an id that never existed, the counts stay right
//! across pruning and a restart, and the data dir stops growing under steady work.

use std::path::Path;

use crate::common::{describe, parse_lines, Daemon};

/// Few kept, so that a test's worth of jobs goes well past them.
const CONFIG: &str = "\
[retention]
max_kept = 1000
";

const ROUND: u64 = 30_000;

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .expect("read the data dir")
        .map(|entry| {
            let entry = entry.expect("a dir entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                dir_size(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Submits a round of numbers and waits until they are answered and the pruner has caught up
/// (its `n`th "pruned" line).
fn round(daemon: &Daemon, k: u64, n: usize) {
    let input: String = (0..ROUND)
        .map(|i| format!("{}\n", 1_000_000 + k * ROUND + i))
        .collect();
    let out = daemon.cli_stdin(&["check", "--json"], Some(input.as_bytes()));
    assert_eq!(
        parse_lines(&out.stdout).len() as u64,
        ROUND,
        "{}",
        describe(&out)
    );
    daemon.wait_for_nth("the pruner caught up", n, |l| {
        l["event"] == "pruned" && l["kept"].as_u64().is_some_and(|kept| kept <= 1000)
    });
}

#[test]
fn finished_jobs_beyond_the_policy_are_pruned_and_answered_as_pruned() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(2)
        .config(CONFIG)
        .start();
    let mut sizes = Vec::new();
    for k in 0..4 {
        round(&daemon, k, k as usize + 1);
        sizes.push(dir_size(&daemon.data_dir));
    }
    let out = daemon.cli(&["result", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("job 1 finished and was pruned") && text.contains("at most the newest 1000"),
        "{text}"
    );
    let json = parse_lines(&daemon.cli(&["result", "--json", "1"]).stdout);
    assert_eq!(json[0]["pruned"], true, "{json:?}");
    // The HTTP API says the same: 410, with the policy that let it go.
    let gone = daemon.curl("GET", "/v1/jobs/1?wait=true", None, &[]);
    assert_eq!(gone.status, 410, "{gone:?}");
    assert_eq!(gone.json()["pruned"], true);
    assert!(
        gone.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1000")),
        "{gone:?}"
    );
    let unknown = daemon.cli(&["result", "999999999"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    let waited = daemon.cli(&["result", "--wait", "2"]);
    assert_eq!(
        waited.status.code(),
        Some(3),
        "result --wait on a pruned id returns at once"
    );
    let status = daemon.status();
    assert_eq!(status["completed"], 4 * ROUND, "{status}");
    let pruned = status["retention"]["pruned"].as_u64().expect("pruned");
    assert!(pruned >= 4 * ROUND - 1000 - 4096, "{status}");
    eprintln!("data dir after each round of {ROUND}: {sizes:?}");
    // Past the first rounds the data dir stops growing: the last two rounds add less than the
    // first one took (without pruning each round adds about as much again, so two would add
    // twice that; with it they add 0.3-0.5 of it: blocks of ids go whole, and sled grows its
    // file a segment at a time).
    assert!(
        sizes[3].saturating_sub(sizes[1]) < sizes[0],
        "data dir sizes by round: {sizes:?}"
    );
    drop(daemon);
    let restarted = Daemon::builder()
        .dir(tmp.path())
        .testers(2)
        .config(CONFIG)
        .start();
    let status = restarted.status();
    assert_eq!(
        status["completed"],
        4 * ROUND,
        "the counts survive a restart: {status}"
    );
    assert_eq!(
        status["retention"]["pruned"].as_u64(),
        Some(pruned),
        "{status}"
    );
    let again = restarted.cli(&["result", "1"]);
    assert_eq!(again.status.code(), Some(3), "{}", describe(&again));
    let out = restarted.cli_stdin(&["submit", "--json"], Some(b"97\n"));
    let id = parse_lines(&out.stdout)[0]["id"].as_u64().expect("id");
    assert_eq!(id, 4 * ROUND + 1, "ids are never reused");
}

/// The retention soak (a benchmark, not a timed test): jobs at full speed through one daemon
/// with the default policy, a million at a time, printing for each million its jobs/s, the
/// data dir's size, the daemon's RSS, and the kept and pruned counts (a JSON line each too).
///
/// ```sh
/// SOAK_JOBS=50000000 cargo test --release --test it -- --ignored --nocapture retention_soak
/// ```
#[test]
#[ignore = "benchmark: cargo test --release --test it -- --ignored --nocapture retention_soak"]
fn retention_soak() {
    let total = soak_jobs(10_000_000);
    let daemon = Daemon::start(2);
    let step = 1_000_000;
    for million in 1..=total / step {
        let bench = &bench_u64(&daemon, step);
        let status = daemon.status();
        let line = serde_json::json!({
            "jobs": million * step,
            "jobs_per_sec": bench["jobs_per_sec"],
            "data_dir_mb": dir_size(&daemon.data_dir) as f64 / 1e6,
            "rss_mb": rss_kb(daemon.pid()) as f64 / 1e3,
            "kept": status["retention"]["kept"],
            "pruned": status["retention"]["pruned"],
        });
        println!(
            "after {million}M: {:.0} jobs/s, data dir {:.0} MB, RSS {:.0} MB, kept {}, pruned {}",
            line["jobs_per_sec"].as_f64().unwrap_or(0.0),
            line["data_dir_mb"].as_f64().unwrap_or(0.0),
            line["rss_mb"].as_f64().unwrap_or(0.0),
            line["kept"],
            line["pruned"],
        );
        println!("{line}");
    }
}

/// How many jobs a soak runs: `SOAK_JOBS`, or `default`.
pub fn soak_jobs(default: u64) -> u64 {
    std::env::var("SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `primed bench` of `jobs` u64 jobs against `daemon`: its JSON line.
pub fn bench_u64(daemon: &Daemon, jobs: u64) -> serde_json::Value {
    let out = daemon.cli(&[
        "bench",
        "--json",
        "--mix",
        "u64",
        "--jobs",
        &jobs.to_string(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    parse_lines(&out.stdout).swap_remove(0)
}

pub fn rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
