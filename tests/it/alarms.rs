//! The alarm registry: big_job while a job over the digit threshold runs, and the monitor's
//! backlog, restart_storm and disk_nearly_full; each set and clear is logged, stored in the
//! event log, and `primed alarms` lists what is active.

use crate::common::{block_a_tester, describe, write_config, Daemon};
use serde_json::Value;

fn alarm_names(daemon: &Daemon) -> Vec<(String, String)> {
    daemon
        .json(&["alarms"])
        .iter()
        .map(|a| {
            let name = a["alarm"].as_str().expect("alarm").to_string();
            (name, a["subject"].as_str().expect("subject").to_string())
        })
        .collect()
}

fn is_alarm(line: &Value, event: &str, alarm: &str) -> bool {
    line["event"] == event && line["alarm"] == alarm
}

#[test]
fn a_big_job_raises_an_alarm_while_it_runs() {
    let daemon = Daemon::start(1);
    // 100 digits is not over the default threshold of 100; the answer comes back unalarmed.
    let hundred = format!("1{}1", "0".repeat(98));
    assert_eq!(daemon.json(&["check", &hundred])[0]["prime"], false);
    let none = daemon.cli(&["alarms"]);
    assert_eq!(
        String::from_utf8_lossy(&none.stdout),
        "no alarms\n",
        "{}",
        describe(&none)
    );

    let blocker = block_a_tester(&daemon);
    let id = blocker.id;
    let set = daemon.wait_for("big_job set", |l| is_alarm(l, "alarm_set", "big_job"));
    assert_eq!(
        (&set["actor"], &set["job"]),
        (&"tester-1".into(), &id.into()),
        "{set}"
    );
    let active = daemon.json(&["alarms"]);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["subject"], "tester-1");
    let detail = active[0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!("job {id}")) && detail.contains("making a 9000-digit prime"),
        "{detail}"
    );

    assert!(daemon.cli(&["cancel", &id.to_string()]).status.success());
    daemon.wait_for("big_job cleared", |l| is_alarm(l, "alarm_clear", "big_job"));
    assert!(daemon.json(&["alarms"]).is_empty());
    let stored: Vec<String> = daemon
        .json(&["events"])
        .iter()
        .filter(|e| e["alarm"] == "big_job")
        .map(|e| format!("{} {} {}", e["event"], e["actor"], e["job"]))
        .collect();
    assert_eq!(
        stored,
        [
            format!("\"alarm_set\" \"tester-1\" {id}"),
            format!("\"alarm_clear\" \"tester-1\" {id}")
        ]
    );
}

#[test]
fn the_monitor_raises_backlog_restart_storm_and_disk_alarms() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // No file system here has 2^40 MiB free: disk_nearly_full is raised from the start.
    let config = write_config(
        tmp.path(),
        "[alarms]\nbacklog = 5\nrestart_storm = 2\ndisk_free_mb = 1099511627776\n\
         check_interval_ms = 20\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .args(&["--config", config])
        .start();
    let disk = daemon.wait_for("disk alarm", |l| {
        is_alarm(l, "alarm_set", "disk_nearly_full")
    });
    assert!(
        disk["detail"]
            .as_str()
            .is_some_and(|d| d.contains("MiB free")),
        "{disk}"
    );

    let blocker = block_a_tester(&daemon);
    let numbers: Vec<String> = (0..10).map(|i| (1_000_003 + 2 * i).to_string()).collect();
    let mut args = vec!["submit"];
    args.extend(numbers.iter().map(String::as_str));
    assert_eq!(daemon.json(&args).len(), 10);
    let backlog = daemon.wait_for("backlog alarm", |l| is_alarm(l, "alarm_set", "backlog"));
    assert!(
        backlog["detail"]
            .as_str()
            .is_some_and(|d| d.contains("11 jobs in flight")),
        "{backlog}"
    );

    for k in 1..=3 {
        let out = daemon.cli(&["kill", "tester-1"]);
        assert!(out.status.success(), "{}", describe(&out));
        daemon.wait_for_nth("tester restart", k, |l| {
            l["event"] == "restart" && l["actor"] == "tester-1"
        });
    }
    daemon.wait_for("restart storm", |l| {
        is_alarm(l, "alarm_set", "restart_storm")
    });
    let mut active = alarm_names(&daemon);
    active.retain(|(name, _)| name != "big_job");
    let daemon_wide = |name: &str| (name.to_string(), "daemon".to_string());
    assert_eq!(
        active,
        [
            daemon_wide("backlog"),
            daemon_wide("disk_nearly_full"),
            daemon_wide("restart_storm")
        ]
    );

    // The backlog drains once the long job is out of the way: its alarm clears.
    assert!(daemon
        .cli(&["cancel", &blocker.id.to_string()])
        .status
        .success());
    daemon.wait_for("backlog cleared", |l| is_alarm(l, "alarm_clear", "backlog"));
    assert!(!alarm_names(&daemon).contains(&daemon_wide("backlog")));
}
