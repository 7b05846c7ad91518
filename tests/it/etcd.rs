//! The etcd journal against a real three-member etcd cluster on loopback: acknowledged jobs
//! survive a kill -9 of the daemon and are answered by a daemon started elsewhere (another data
//! dir); one member down changes nothing; two down refuse new jobs with a clear error, and
//! service resumes, losing nothing, when the quorum returns. With two daemons, the standby
//! serves its clients (the leader runs their jobs), takes over when the leader dies, and a
//! leader paused past its lease is fenced and steps down.
//!
//! Compiled only with the `etcd` feature (`cargo xtask test`); the cluster comes from
//! `common::etcd`.

#![cfg(feature = "etcd")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::etcd::{etcd_primed, Cluster};
use crate::common::{
    block_a_tester, describe, is_prime_by_trial_division, parse_lines, write_config, Daemon,
};

fn submit(daemon: &Daemon, numbers: &[u64]) -> Vec<u64> {
    let input: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let out = daemon.cli_stdin(&["submit", "--json"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    parse_lines(&out.stdout)
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect()
}

fn assert_answers(daemon: &Daemon, ids: &[u64], numbers: &[u64]) {
    let mut args = vec!["result".to_string(), "--wait".to_string()];
    args.extend(ids.iter().map(u64::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let results = daemon.json(&args);
    assert_eq!(results.len(), numbers.len());
    for (line, n) in results.iter().zip(numbers) {
        assert_eq!(line["n"], n.to_string());
        assert_eq!(line["prime"], is_prime_by_trial_division(*n), "{line}");
    }
}

#[test]
fn acknowledged_jobs_survive_a_kill_9_and_move_to_another_data_dir() {
    let binary = etcd_primed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(&tmp.path().join("etcd"));
    let url = cluster.url();
    let first_dir = tmp.path().join("a");
    std::fs::create_dir_all(&first_dir).expect("dir a");
    let mut first = Daemon::builder()
        .binary(binary)
        .dir(&first_dir)
        .testers(1)
        .args(&["--journal", &url])
        .start();
    let _blocker = block_a_tester(&first);
    let numbers: Vec<u64> = (0..2000u64).map(|i| 1_000_003 + 2 * i).collect();
    let ids = submit(&first, &numbers);
    assert_eq!(first.status()["in_flight"], 2001);
    first.kill9();

    // Another data dir, as on another machine: everything it needs is in etcd.
    let second_dir = tmp.path().join("b");
    std::fs::create_dir_all(&second_dir).expect("dir b");
    let second = Daemon::builder()
        .binary(binary)
        .dir(&second_dir)
        .testers(2)
        .args(&["--journal", &url])
        .start();
    let opened = second.wait_for("journal open", |l| l["event"] == "journal_open");
    assert_eq!(opened["in_flight"], 2001, "{opened}");
    assert_answers(&second, &ids, &numbers);
    let fresh = submit(&second, &[97]);
    assert!(ids.iter().all(|&id| id != fresh[0]), "ids are never reused");
}

#[test]
fn quorum_loss_refuses_new_jobs_and_service_resumes_with_it() {
    let binary = etcd_primed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start(&tmp.path().join("etcd"));
    let url = cluster.url();
    let daemon = Daemon::builder()
        .binary(binary)
        .dir(tmp.path())
        .testers(2)
        .args(&["--journal", &url])
        .start();
    let before: Vec<u64> = (0..100u64).map(|i| 2_000_003 + 2 * i).collect();
    let before_ids = submit(&daemon, &before);

    cluster.kill(0);
    let one_down: Vec<u64> = (0..100u64).map(|i| 3_000_003 + 2 * i).collect();
    let one_down_ids = submit(&daemon, &one_down);
    assert_answers(&daemon, &one_down_ids, &one_down);

    cluster.kill(1);
    // The first write to fail finds out: a submission is then journaled but not acknowledged
    // (exit 1), or refused (exit 75) if another write found out first. Either says why.
    let lost = daemon.cli(&["check", "89"]);
    assert!(
        matches!(lost.status.code(), Some(1 | 75)),
        "{}",
        describe(&lost)
    );
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert!(stderr.contains("etcd"), "{stderr}");
    daemon.wait_for("unavailable", |l| l["event"] == "journal_unavailable");
    // From then on new jobs are refused at once: retry later.
    let refused = daemon.cli(&["check", "83"]);
    assert_eq!(refused.status.code(), Some(75), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("etcd cannot commit"), "{stderr}");
    // Operators see it among the alarms, with the reason.
    let is_alarm = |l: &serde_json::Value, event: &str| {
        l["event"] == event && l["alarm"] == "journal_unavailable"
    };
    daemon.wait_for("the alarm", |l| is_alarm(l, "alarm_set"));
    let alarms = daemon.json(&["alarms"]);
    assert!(
        alarms.iter().any(|a| a["alarm"] == "journal_unavailable"),
        "{alarms:?}"
    );

    let ready: Vec<_> = [0, 1].iter().map(|&i| (i, cluster.spawn(i))).collect();
    for (i, ready) in ready {
        cluster.wait_ready(i, ready);
    }
    daemon.wait_for("available again", |l| l["event"] == "journal_available");
    assert_eq!(daemon.json(&["check", "79"])[0]["prime"], true);
    daemon.wait_for("the alarm cleared", |l| is_alarm(l, "alarm_clear"));

    // What was acknowledged is in etcd, not only in this daemon's memory: a daemon elsewhere
    // answers it all.
    let mut daemon = daemon;
    daemon.kill9();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let other = Daemon::builder()
        .binary(binary)
        .dir(&elsewhere)
        .testers(2)
        .args(&["--journal", &url])
        .start();
    assert_answers(&other, &before_ids, &before);
    assert_answers(&other, &one_down_ids, &one_down);
}

#[test]
fn records_of_big_numbers_stay_under_etcds_limits() {
    let binary = etcd_primed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(&tmp.path().join("etcd"));
    let url = cluster.url();
    let config = write_config(tmp.path(), "[limits]\nmax_digits = 30000\n");
    let config = config.to_str().expect("utf-8 path");
    let extra = ["--journal", &url, "--config", config];
    let mut daemon = Daemon::builder()
        .binary(binary)
        .dir(tmp.path())
        .testers(1)
        .args(&extra)
        .start();
    let _blocker = block_a_tester(&daemon);
    // 400 numbers of 30,000 digits (12.5 KB records): more than one 4 MiB reply holds when
    // they are read back. (That batches stay under etcd's request limit is a unit test.)
    let input: String = (0..400).map(|i| format!("1{i:029999}\n")).collect();
    let out = daemon.cli_stdin(&["submit", "--json"], Some(input.as_bytes()));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(parse_lines(&out.stdout).len(), 400);
    daemon.kill9();

    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let other = Daemon::builder()
        .binary(binary)
        .dir(&elsewhere)
        .testers(1)
        .args(&extra)
        .start();
    let opened = other.wait_for("journal open", |l| l["event"] == "journal_open");
    assert_eq!(opened["in_flight"], 401, "{opened}");
}

/// A cluster and two daemons on it, each in its own dir as on two machines: the first one
/// started leads, the other waits as its standby.
struct Pair {
    tmp: tempfile::TempDir,
    cluster: Cluster,
    /// The leader's dir, then the standby's.
    dirs: [PathBuf; 2],
    leader: Daemon,
    standby: Daemon,
}

/// A pair whose daemons run `testers` testers each (leader first) and read `config`, if given.
fn pair(testers: [u32; 2], config: Option<&str>) -> Pair {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(&tmp.path().join("etcd"));
    let config = config.map(|text| write_config(tmp.path(), text));
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    let leader = start_on(&cluster, &dirs[0], testers[0], config.as_deref());
    leader.wait_for("leading", |l| l["event"] == "leading");
    let standby = start_on(&cluster, &dirs[1], testers[1], config.as_deref());
    standby.wait_for("standby", |l| l["event"] == "standby");
    Pair {
        tmp,
        cluster,
        dirs,
        leader,
        standby,
    }
}

/// A daemon on `cluster`'s journal in `dir`.
fn start_on(cluster: &Cluster, dir: &Path, testers: u32, config: Option<&Path>) -> Daemon {
    std::fs::create_dir_all(dir).expect("daemon dir");
    let url = cluster.url();
    let mut extra = vec!["--journal", &url];
    if let Some(config) = config {
        extra.extend(["--config", config.to_str().expect("utf-8 path")]);
    }
    Daemon::builder()
        .binary(etcd_primed())
        .dir(dir)
        .testers(testers)
        .args(&extra)
        .start()
}

/// A pair, and `jobs` jobs acknowledged by the leader and kept in flight behind a blocked
/// tester (the leader has one).
struct Failover {
    _tmp: tempfile::TempDir,
    _cluster: Cluster,
    leader: Daemon,
    standby: Daemon,
    _blocker: crate::common::Blocker,
    ids: Vec<u64>,
    numbers: Vec<u64>,
}

fn failover(jobs: u64, first: u64) -> Failover {
    let Pair {
        tmp,
        cluster,
        leader,
        standby,
        ..
    } = pair([1, 2], None);
    let blocker = block_a_tester(&leader);
    let numbers: Vec<u64> = (0..jobs).map(|i| first + 2 * i).collect();
    let ids = submit(&leader, &numbers);
    Failover {
        _tmp: tmp,
        _cluster: cluster,
        leader,
        standby,
        _blocker: blocker,
        ids,
        numbers,
    }
}

#[test]
fn a_standby_takes_over_when_the_leader_is_killed() {
    // Every field bound by name: the cluster and the dirs must live to the end.
    let Failover {
        _tmp,
        _cluster,
        mut leader,
        standby,
        _blocker,
        ids,
        numbers,
    } = failover(500, 5_000_003);

    // Under load: a client streams more jobs through the kill; what it saw acknowledged
    // before the leader died must be answered by the standby.
    let streamed: Vec<u64> = (0..50_000u64).map(|i| 9_000_003 + 2 * i).collect();
    let (mut client, mut acked) = stream_submit(&leader, &streamed);
    let mut streamed_acks: Vec<(u64, u64)> = Vec::new();
    while streamed_acks.len() < 2000 {
        let line = acked.next().expect("acks before the kill");
        streamed_acks.extend(parse_ack(&line));
    }

    leader.kill9();
    streamed_acks.extend(acked.filter_map(|line| parse_ack(&line)));
    let _ = client.wait();
    // How soon is a benchmark (failover_time), not asserted here.
    standby.wait_for("leading", |l| l["event"] == "leading");
    assert_answers(&standby, &ids, &numbers);
    let (acked_ids, acked_numbers): (Vec<u64>, Vec<u64>) = streamed_acks.into_iter().unzip();
    assert!(acked_ids.len() < streamed.len(), "the kill came mid-stream");
    assert_answers(&standby, &acked_ids, &acked_numbers);
}

/// `primed submit --json` streaming `numbers` from stdin; its stdout lines as they come.
fn stream_submit(daemon: &Daemon, numbers: &[u64]) -> (Child, impl Iterator<Item = String>) {
    let mut child = Command::new(crate::common::BIN)
        .args(["submit", "--json", "--socket"])
        .arg(&daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn submit");
    let mut stdin = child.stdin.take().expect("stdin");
    let input: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = child.stdout.take().expect("stdout");
    (child, BufReader::new(stdout).lines().map_while(Result::ok))
}

/// An acknowledged submission's line: (id, number); `None` for a line that is not an ack.
fn parse_ack(line: &str) -> Option<(u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(line).expect("json");
    let n = value["n"].as_str().and_then(|n| n.parse().ok());
    Some((value["id"].as_u64()?, n?))
}

#[test]
fn a_paused_leader_is_fenced_and_steps_down() {
    let Failover {
        _tmp,
        _cluster,
        mut leader,
        mut standby,
        _blocker,
        ids,
        numbers,
    } = failover(200, 7_000_003);

    let pid = leader.pid().to_string();
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
    };
    signal("-STOP");
    standby.wait_for("leading", |l| l["event"] == "leading");
    signal("-CONT");
    // The old leader wakes with work to write: it must find out, write nothing, stop its
    // tree, and wait as the new leader's standby. Sent at once, it reaches the old leader before or after it steps down: refused or not
    // acknowledged before (its write is fenced off), accepted as a standby's after.
    let late = leader.cli(&["check", "97"]);
    leader.wait_for("deposed", |l| l["event"] == "deposed");
    leader.wait_for("stepped down", |l| l["event"] == "step_down");
    leader.wait_for("standby again", |l| l["event"] == "standby");
    assert!(leader.is_running(), "a deposed leader stays, as a standby");
    assert_eq!(leader.count(|l| l["event"] == "deposed"), 1);

    assert_answers(&standby, &ids, &numbers);
    let now = standby.status();
    let known = now["in_flight"].as_u64().unwrap_or(0) + now["completed"].as_u64().unwrap_or(0);
    let accepted_late = u64::from(late.status.success());
    assert_eq!(
        known,
        201 + accepted_late,
        "the 200 jobs and the blocker, and nothing the old leader wrote late: {}",
        describe(&late)
    );

    // And it leads again when the new leader dies.
    standby.kill9();
    leader.wait_for_nth("leading again", 2, |l| l["event"] == "leading");
    assert_answers(&leader, &ids, &numbers);
}

#[test]
fn a_standby_serves_its_clients_and_the_leader_runs_their_jobs() {
    let Pair {
        tmp: _tmp,
        cluster: _cluster,
        leader,
        standby,
        ..
    } = pair([2, 2], None);

    let status = standby.status();
    assert_eq!(status["role"], "standby", "{status}");
    let named = status["leader"].as_str().unwrap_or_default();
    assert!(
        named.contains(&leader.socket.display().to_string()),
        "the standby names its leader: {status}"
    );
    assert_eq!(leader.status()["role"], "leader");

    // Submitted at the standby, which runs nothing: the leader answers through the journal.
    let numbers: Vec<u64> = (0..300u64).map(|i| 13_000_003 + 2 * i).collect();
    let ids = submit(&standby, &numbers);
    assert_answers(&standby, &ids, &numbers);
    let checked = standby.json(&["check", "1000003", "1000005"]);
    assert_eq!(checked[0]["prime"], true);
    assert_eq!(checked[1]["prime"], false);
    assert_eq!(standby.count(|l| l["event"] == "job_start"), 0);

    // Submitted at the leader, answered at the standby too.
    let more: Vec<u64> = (0..100u64).map(|i| 15_000_003 + 2 * i).collect();
    let more_ids = submit(&leader, &more);
    assert_answers(&standby, &more_ids, &more);

    // Only the leader changes a job: a standby says where to go.
    let blocker = block_a_tester(&leader);
    let cancel = standby.cli(&["cancel", &blocker.id.to_string()]);
    assert!(!cancel.status.success(), "{}", describe(&cancel));
    let stderr = String::from_utf8_lossy(&cancel.stderr);
    assert!(stderr.contains("standby"), "{stderr}");
    let tree = standby.cli(&["tree"]);
    assert!(!tree.status.success(), "{}", describe(&tree));
    let stderr = String::from_utf8_lossy(&tree.stderr);
    assert!(
        stderr.contains("standby") && stderr.contains(named),
        "{stderr}"
    );

    // The standby's HTTP API: jobs in and answered, changes refused with where to go.
    let body = serde_json::json!({"numbers": ["1000003"]}).to_string();
    let accepted = standby.curl("POST", "/v1/jobs", Some(&body), &[]).json();
    let id = accepted["jobs"][0]["id"].as_u64().expect("id");
    let answer = standby.curl("GET", &format!("/v1/jobs/{id}?wait=true"), None, &[]);
    assert_eq!(answer.json()["prime"], true, "{answer:?}");
    for (method, path) in [
        ("DELETE", format!("/v1/jobs/{}", blocker.id)),
        ("GET", "/v1/tree".to_string()),
        ("POST", "/v1/actors/tester-1/kill".to_string()),
    ] {
        let refused = standby.curl(method, &path, None, &[]);
        assert_eq!(refused.status, 409, "{method} {path}: {refused:?}");
        assert!(refused.error().contains(named), "{refused:?}");
    }
    assert_eq!(
        standby.curl("GET", "/v1/status", None, &[]).json()["role"],
        "standby"
    );
    let metrics = standby.curl("GET", "/metrics", None, &[]).body;
    assert!(
        metrics.lines().any(|l| l == "primed_journal_leader 0"),
        "{metrics}"
    );
}

/// Benchmark, not in CI: `FAILOVERS` (default 5) kill -9s of the leader, each followed by the
/// killed daemon's return as the standby. Prints, per kill, how long until the standby leads
/// (elected and caught up) and until it answers a `check` sent right after the kill.
#[test]
#[ignore = "benchmark: cargo xtask test --release --test it -- --ignored --nocapture failover_time"]
fn failover_time() {
    let rounds: usize = std::env::var("FAILOVERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let Pair {
        tmp: _tmp,
        cluster,
        mut dirs,
        mut leader,
        mut standby,
        ..
    } = pair([2, 2], None);
    let (mut leading, mut answering) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let killed = std::time::Instant::now();
        leader.kill9();
        let check = standby.spawn_cli(&["check", "97"]);
        standby.wait_for("leading", |l| l["event"] == "leading");
        leading.push(killed.elapsed());
        let out = check.wait_with_output().expect("check");
        answering.push(killed.elapsed());
        assert!(out.status.success(), "{}", describe(&out));
        eprintln!(
            "failover {round}: leading after {:?}, answered after {:?}",
            leading[round - 1],
            answering[round - 1]
        );
        // The killed daemon comes back in its dir, as the standby.
        leader = start_on(&cluster, &dirs[0], 2, None);
        leader.wait_for("standby", |l| l["event"] == "standby");
        std::mem::swap(&mut leader, &mut standby);
        dirs.swap(0, 1);
    }
    let summary = |name: &str, times: &mut Vec<std::time::Duration>| {
        times.sort();
        format!(
            "{name} min={:.2}s median={:.2}s max={:.2}s",
            times[0].as_secs_f64(),
            times[times.len() / 2].as_secs_f64(),
            times[times.len() - 1].as_secs_f64()
        )
    };
    println!(
        "failover: kills={rounds} lease_ttl=2s {} | {}",
        summary("leading", &mut leading),
        summary("answered", &mut answering)
    );
}

#[test]
fn a_leader_stopped_cleanly_hands_over_at_once() {
    // A lease far longer than any wait here: only a resignation lets the standby in.
    let config = "[journal]\nlease_ttl_secs = 3600\n[daemon]\nshutdown_grace_secs = 0.5\n";
    let Pair {
        tmp: _tmp,
        cluster: _cluster,
        mut leader,
        standby,
        ..
    } = pair([1, 1], Some(config));
    let blocker = block_a_tester(&leader);

    assert!(leader.terminate().success());
    assert_eq!(leader.count(|l| l["event"] == "resigned"), 1);
    standby.wait_for("leading", |l| l["event"] == "leading");
    // The job the old leader was running is run again by the new one.
    standby.wait_for("the blocker again", |l| {
        l["event"] == "job_start" && l["job"] == blocker.id
    });
}

/// Calls etcd's JSON gateway (its gRPC API over HTTP on the client port), as another program
/// using the cluster would: the reply's body, and whether etcd said 200.
fn etcd_call(port: u16, path: &str, body: &str) -> (bool, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to etcd");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let body = reply.find("\r\n\r\n").map_or("", |at| &reply[at + 4..]);
    let json = serde_json::from_str(body).unwrap_or_else(|_| body.into());
    (reply.starts_with("HTTP/1.1 200"), json)
}

/// Puts `value` at `key`.
fn etcd_put(port: u16, key: &str, value: &[u8]) {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64(key.as_bytes()),
        base64(value)
    );
    let (ok, reply) = etcd_call(port, "/v3/kv/put", &body);
    assert!(ok, "{reply}");
}

/// How many keys start with `prefix`, at `revision` (0: now): the count and the revision read,
/// or etcd's error.
fn etcd_count(port: u16, prefix: &str, revision: i64) -> Result<(u64, i64), String> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let body = format!(
        r#"{{"key":"{}","range_end":"{}","count_only":true,"revision":{revision}}}"#,
        base64(prefix.as_bytes()),
        base64(&end)
    );
    let (ok, reply) = etcd_call(port, "/v3/kv/range", &body);
    if !ok {
        return Err(reply.to_string());
    }
    // The gateway writes 64-bit integers as strings, and leaves out zeros.
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((
        number(&reply["count"]),
        number(&reply["header"]["revision"]) as i64,
    ))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_journal_in_another_format_is_refused() {
    assert_eq!(base64(b"primed"), "cHJpbWVk");
    assert_eq!(base64(&[0, 0, 0, 3]), "AAAAAw==");
    let binary = etcd_primed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(&tmp.path().join("etcd"));
    etcd_put(
        cluster.client_port(0),
        "/primed-test/format",
        &3u32.to_be_bytes(),
    );
    let mut daemon = Daemon::builder()
        .binary(binary)
        .dir(tmp.path())
        .testers(1)
        .args(&["--journal", &cluster.url()])
        .spawn();
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(1));
    let refused = daemon.wait_for("the refusal", |l| l["level"] == "ERROR");
    let reason = refused.to_string();
    assert!(
        reason.contains("format 3") && reason.contains("format 4"),
        "{reason}"
    );
}

/// Waits (within 10 s) until `daemon`'s status satisfies `done`, and returns it: a standby
/// learns of the leader's pruning from its watch, and logs nothing of it.
fn status_until(
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = daemon.status();
        if done(&status) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_leader_prunes_etcd_and_compacts_it_and_every_mirror_follows() {
    let config = "[retention]\nmax_kept = 100\n[journal]\ncompact_secs = 0.5\n";
    let Pair {
        tmp: _tmp,
        cluster,
        mut leader,
        standby,
        ..
    } = pair([2, 1], Some(config));
    let port = cluster.client_port(0);
    let numbers: Vec<u64> = (0..1000u64).map(|i| 1_000_003 + 2 * i).collect();
    // Through the standby: its mirror learns the answers, then the deletions, from its watch.
    let ids = submit(&standby, &numbers);
    assert_answers(&standby, &ids, &numbers);

    // Once the grace is over, everything but the newest 97 goes, from etcd too (pruning by
    // count leaves a thirty-second of room below max_kept).
    leader.wait_for("the pruning", |l| {
        l["event"] == "pruned" && l["pruned_total"].as_u64() >= Some(900)
    });
    // Deleted from etcd by the committer, soon after the pass.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let revision = loop {
        let (keys, revision) = etcd_count(port, "/primed-test/job/", 0).expect("count the jobs");
        if keys == 97 {
            break revision;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "etcd still holds {keys} records"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let status = status_until(&standby, "the standby's mirror", |s| {
        s["retention"]["pruned"] == 903
    });
    assert_eq!(status["completed"], 1000, "pruning keeps the counts");
    assert_eq!(status["retention"]["kept"], 97);
    let out = standby.cli(&["result", &ids[0].to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pruned"),
        "{}",
        describe(&out)
    );
    assert_answers(&standby, &ids[903..], &numbers[903..]);

    // The leader compacts past the deletions: etcd's history of them is gone.
    leader.wait_for("a compaction past the pruning", |l| {
        l["event"] == "compacted" && l["revision"].as_i64() >= Some(revision)
    });
    let old = etcd_count(port, "/primed-test/job/", 1);
    assert!(matches!(&old, Err(e) if e.contains("compacted")), "{old:?}");

    // A new leader reads the counters from etcd: ids go on, counts stay.
    leader.kill9();
    standby.wait_for("leading", |l| l["event"] == "leading");
    let status = standby.status();
    assert_eq!(status["completed"], 1000);
    assert_eq!(status["retention"]["pruned"], 903);
    let more = submit(&standby, &[97]);
    assert!(more[0] > ids[999], "ids are never reused");
    assert_answers(&standby, &more, &[97]);
}

/// The soak of retention on etcd (a benchmark, not a test: it prints): jobs at full speed
/// through the leader of two daemons on a three-member cluster, keeping the newest 100,000,
/// printing for each step jobs/s, etcd's database (member 0: its file, and what is in use),
/// each daemon's RSS, and the kept and pruned counts.
#[test]
#[ignore = "benchmark: SOAK_JOBS=2000000 cargo xtask test --release --test it -- --ignored --nocapture etcd_retention_soak"]
fn etcd_retention_soak() {
    let total = crate::retention::soak_jobs(2_000_000);
    let config = "[retention]\nmax_kept = 100000\n[journal]\ncompact_secs = 10\n";
    let Pair {
        tmp: _tmp,
        cluster,
        leader,
        standby,
        ..
    } = pair([2, 1], Some(config));
    let port = cluster.client_port(0);
    let step = 200_000;
    for n in 1..=total / step {
        let bench = &crate::retention::bench_u64(&leader, step);
        let status = leader.status();
        let (_, db) = etcd_call(port, "/v3/maintenance/status", "{}");
        let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
        let line = serde_json::json!({
            "jobs": n * step,
            "jobs_per_sec": bench["jobs_per_sec"],
            "etcd_db_mb": number(&db["dbSize"]).map(|b| b / 1e6),
            "etcd_db_in_use_mb": number(&db["dbSizeInUse"]).map(|b| b / 1e6),
            "leader_rss_mb": crate::retention::rss_kb(leader.pid()) as f64 / 1e3,
            "standby_rss_mb": crate::retention::rss_kb(standby.pid()) as f64 / 1e3,
            "kept": status["retention"]["kept"],
            "pruned": status["retention"]["pruned"],
        });
        println!("{line}");
    }
}

/// The observer on a standby says so, and names the daemon that leads (and runs the jobs).
#[test]
fn the_observer_on_a_standby_names_its_leader() {
    let Pair {
        tmp: _tmp,
        cluster: _cluster,
        leader,
        standby,
        ..
    } = pair([1, 1], Some("[daemon]\nhttp_listen = \"127.0.0.1:0\"\n"));
    standby.wait_for("the TCP listener", |l| l["event"] == "http_listening");
    let out = standby.cli(&["web"]);
    assert!(out.status.success(), "{}", describe(&out));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let browser = crate::common::browser::Browser::start();
    browser.open(&url);
    browser.wait_until(
        "the standby's role and its leader",
        std::time::Duration::from_secs(20),
        "return document.getElementById('role').textContent.startsWith('standby of') \
         && document.getElementById('tree').textContent.includes('a standby runs no tree')",
    );
    let cluster = browser.eval("return document.getElementById('cluster').textContent");
    let cluster = cluster.as_str().unwrap_or_default();
    assert!(
        cluster.contains("this daemon: standby")
            && cluster.contains(&leader.socket.display().to_string()),
        "{cluster}"
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
