//! The HTTP/JSON API, driven through curl on its Unix socket: every endpoint, idempotent
//! retries, the token of the TCP listener, and hostile input (malformed, oversized, slow,
//! too many connections), against the real daemon.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::http::{curl, raw};
use crate::common::{mersenne, Daemon};

fn submit(daemon: &Daemon, body: Value) -> Value {
    let reply = daemon.curl("POST", "/v1/jobs", Some(&body.to_string()), &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

/// The ids of a submission's jobs.
fn ids(answer: &Value) -> Vec<u64> {
    answer["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_u64().expect("id"))
        .collect()
}

#[test]
fn every_endpoint_answers_through_curl_on_the_unix_socket() {
    let daemon = Daemon::start(2);
    let ping = daemon.curl("GET", "/v1/_ping", None, &[]);
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));
    assert_eq!(ping.header("api-version").as_deref(), Some("1"));

    let answer = submit(&daemon, json!({"numbers": ["97", "91", "x1"]}));
    let [prime, composite] = ids(&answer)[..] else {
        panic!("two jobs: {answer}");
    };
    assert_eq!(answer["errors"][0]["index"], 2);
    assert_eq!(answer["errors"][0]["n"], "x1");
    let waited = daemon.curl("GET", &format!("/v1/jobs/{prime}?wait=true"), None, &[]);
    let waited = waited.json();
    for (key, value) in [
        ("id", json!(prime)),
        ("n", json!("97")),
        ("prime", json!(true)),
        ("attempts", json!(1)),
        ("faults", json!(0)),
    ] {
        assert_eq!(waited[key], value, "{key} in {waited}");
    }
    let (submitted, finished) = (&waited["submitted_ms"], &waited["finished_ms"]);
    assert!(
        submitted.as_u64().is_some() && finished.as_u64() >= submitted.as_u64(),
        "{waited}"
    );
    let composite = daemon.curl("GET", &format!("/v1/jobs/{composite}?wait=true"), None, &[]);
    assert_eq!(composite.json()["prime"], false);
    let unknown = daemon.curl("GET", "/v1/jobs/999999", None, &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error(), "no job with id 999999");

    // A job that holds a tester: listed in flight, pending, then cancelled.
    let long = ids(&submit(&daemon, json!({"make_prime": {"digits": 9000}})))[0];
    daemon.wait_for("the long job starts", |l| {
        l["event"] == "job_start" && l["job"] == long
    });
    let listed = daemon.curl("GET", "/v1/jobs", None, &[]).json();
    assert_eq!(listed["jobs"][0]["id"], long);
    assert!(listed["jobs"][0]["tester"]
        .as_str()
        .is_some_and(|t| t.starts_with("tester-")));
    assert_eq!(listed["next"], Value::Null);
    let pending = daemon.curl(
        "GET",
        &format!("/v1/jobs/{long}?wait=true&timeout=0"),
        None,
        &[],
    );
    let pending = pending.json();
    assert_eq!(pending["id"], long);
    assert_eq!(pending["status"], "pending");
    assert!(
        pending["submitted_ms"].is_u64() && pending["faults"] == 0,
        "{pending}"
    );
    let cancelled = daemon.curl("DELETE", &format!("/v1/jobs/{long}"), None, &[]);
    assert_eq!(cancelled.json(), json!({"id": long, "cancelled": true}));
    let again = daemon.curl("DELETE", &format!("/v1/jobs/{long}"), None, &[]);
    assert_eq!(again.status, 409);
    assert!(again.error().contains("already finished"), "{again:?}");

    let status = daemon.curl("GET", "/v1/status", None, &[]).json();
    assert_eq!(status["completed"], 3);
    assert_eq!(status["testers"].as_array().map(Vec::len), Some(2));
    let tree = daemon.curl("GET", "/v1/tree", None, &[]).json();
    assert_eq!(tree["name"], "root");
    assert_eq!(tree["strategy"], "one_for_one");
    assert!(tree.to_string().contains("\"tester-2\""), "{tree}");
    let alarms = daemon.curl("GET", "/v1/alarms", None, &[]).json();
    assert!(alarms["alarms"].is_array());

    // The event stream: stored events first, then a live crash and restart from a kill.
    let mut stream = Command::new("curl")
        .args(["-sSN", "--unix-socket"])
        .arg(daemon.http_socket())
        .arg("http://primed/v1/events")
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    let mut lines = BufReader::new(stream.stdout.take().expect("stdout")).lines();
    let mut next_event = || loop {
        let line = lines.next().expect("an event").expect("read");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str::<Value>(data).expect("JSON event");
        }
    };
    assert_eq!(next_event()["event"], "daemon_start");
    let killed = daemon.curl("POST", "/v1/actors/tester-1/kill", None, &[]);
    assert_eq!(killed.json(), json!({"killed": "tester-1"}));
    let restart = loop {
        let event = next_event();
        if event["event"] == "restart" {
            break event;
        }
    };
    assert_eq!(restart["actor"], "tester-1");
    let _ = stream.kill();
    let _ = stream.wait();
    let nobody = daemon.curl("POST", "/v1/actors/nobody/kill", None, &[]);
    assert_eq!(nobody.status, 404);
    assert!(nobody.error().contains("unknown actor"), "{nobody:?}");

    let reloaded = daemon.curl("POST", "/v1/reload", None, &[]);
    assert_eq!(reloaded.json()["reloaded"], "nothing changed");

    let metrics = daemon.curl("GET", "/metrics", None, &[]);
    assert_eq!(metrics.status, 200);
    for line in [
        "primed_jobs_submitted_total 3",
        "primed_jobs_finished_total{outcome=\"prime\"} 1",
        "primed_jobs_finished_total{outcome=\"cancelled\"} 1",
        "primed_jobs_in_flight 0",
        "primed_restarts_total{actor=\"tester-1\",supervisor=\"pool\"} 1",
        "primed_journal_leader 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "no {line:?} in:\n{}",
            metrics.body
        );
    }
    for family in [
        "primed_tester_queued",
        "primed_tester_load",
        "primed_job_run_seconds",
        "primed_job_queue_wait_seconds",
        "primed_journal_flush_seconds",
        "primed_journal_flush_writes",
        "primed_escalations",
        "primed_quarantines",
        "primed_alarms_active",
        "primed_build_info",
    ] {
        assert!(
            metrics.body.contains(&format!("# TYPE {family} ")),
            "no {family}"
        );
    }
    let openapi = daemon.curl("GET", "/v1/openapi.json", None, &[]).json();
    assert!(
        openapi["paths"]["/v1/jobs/{id}"]["delete"].is_object(),
        "{openapi}"
    );
}

/// The OpenAPI document in docs/ is the one the daemon serves (regenerate it with
/// `UPDATE_OPENAPI=1 cargo test --test it openapi`).
#[test]
fn the_published_openapi_file_is_the_one_served() {
    let daemon = Daemon::start(1);
    let served = daemon.curl("GET", "/v1/openapi.json", None, &[]).json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&served).expect("json") + "\n";
        std::fs::write(&path, text).expect("write docs/openapi.json");
    }
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/openapi.json"))
            .expect("JSON");
    assert_eq!(
        published, served,
        "docs/openapi.json is stale: run with UPDATE_OPENAPI=1"
    );
    // Every route the daemon serves is described.
    let paths = served["paths"].as_object().expect("paths");
    for route in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/status",
        "/v1/tree",
        "/v1/alarms",
        "/v1/actors/{name}/kill",
        "/v1/reload",
        "/v1/events",
        "/v1/_ping",
        "/v1/openapi.json",
        "/metrics",
    ] {
        assert!(paths.contains_key(route), "{route} is not described");
    }
}

#[test]
fn a_retried_submission_with_its_idempotency_key_gets_the_same_jobs() {
    let daemon = Daemon::start(1);
    let body = json!({"numbers": ["7", "8"]}).to_string();
    let key = ["idempotency-key: 5d0f-retry"];
    let first = daemon.curl("POST", "/v1/jobs", Some(&body), &key);
    let retry = daemon.curl("POST", "/v1/jobs", Some(&body), &key);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.json(),
        retry.json(),
        "the retry returns the first jobs"
    );
    let other = daemon.curl("POST", "/v1/jobs", Some(&body), &["idempotency-key: other"]);
    assert_ne!(
        ids(&other.json()),
        ids(&first.json()),
        "a new key makes new jobs"
    );
    let reused = daemon.curl("POST", "/v1/jobs", Some("{\"numbers\":[\"9\"]}"), &key);
    assert_eq!(reused.status, 422);
    assert!(reused.error().contains("different request"), "{reused:?}");
    assert_eq!(
        daemon.status()["in_flight"].as_u64().unwrap_or(0)
            + daemon.status()["completed"].as_u64().unwrap_or(0),
        4,
        "two submissions made jobs"
    );
}

#[test]
fn bad_requests_get_clear_json_errors_and_jobs_in_flight_finish() {
    let daemon = Daemon::builder()
        .testers(1)
        .config("[limits]\nmax_frame_bytes = 4096\nread_timeout_secs = 1\n")
        .start();
    let long = ids(&submit(&daemon, json!({"numbers": [mersenne(4423)]})))[0];

    let malformed = daemon.curl("POST", "/v1/jobs", Some("{\"numbers\": [\"7\""), &[]);
    assert_eq!(malformed.status, 400);
    assert!(malformed.error().contains("parse"), "{malformed:?}");
    let wrong_type = daemon.curl("POST", "/v1/jobs", Some("{\"numbers\": 7}"), &[]);
    assert_eq!(wrong_type.status, 422);
    assert!(
        wrong_type.error().contains("invalid type"),
        "{wrong_type:?}"
    );
    let neither = daemon.curl("POST", "/v1/jobs", Some("{}"), &[]);
    assert_eq!(neither.status, 422);
    assert!(
        neither.error().contains("exactly one of numbers"),
        "{neither:?}"
    );
    let unknown_field = daemon.curl("POST", "/v1/jobs", Some("{\"numbrs\": []}"), &[]);
    assert_eq!(unknown_field.status, 422);
    let all_invalid = daemon.curl("POST", "/v1/jobs", Some("{\"numbers\": [\"-3\"]}"), &[]);
    assert_eq!(all_invalid.status, 422);
    assert!(
        all_invalid.error().starts_with("no job accepted"),
        "{all_invalid:?}"
    );
    let big = json!({"numbers": ["1".repeat(5000)]}).to_string();
    let too_big = daemon.curl("POST", "/v1/jobs", Some(&big), &[]);
    assert_eq!(too_big.status, 413);
    let not_json = daemon.curl("POST", "/v1/jobs", Some("7"), &["content-type: text/plain"]);
    assert_eq!(not_json.status, 415);
    let bad_id = daemon.curl("GET", "/v1/jobs/seven", None, &[]);
    assert_eq!(bad_id.status, 400);
    let bad_query = daemon.curl("GET", "/v1/jobs/1?wait=maybe", None, &[]);
    assert_eq!(bad_query.status, 400);
    let nowhere = daemon.curl("GET", "/v2/jobs", None, &[]);
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.error().contains("no such endpoint"), "{nowhere:?}");
    let wrong_method = daemon.curl("PUT", "/v1/status", None, &[]);
    assert_eq!(wrong_method.status, 405);
    assert!(
        wrong_method.error().contains("not allowed"),
        "{wrong_method:?}"
    );
    let garbage = raw(&daemon, b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n");
    assert_eq!(garbage.status, 400);

    // Headers byte by byte, then nothing: the header timeout closes the connection.
    let mut slow = UnixStream::connect(daemon.http_socket()).expect("connect");
    for byte in b"GET /v1/status HTTP/1.1\r\nHost: x\r\n" {
        slow.write_all(&[*byte]).expect("a byte");
    }
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    assert!(closed.is_ok(), "closed, not reset: {closed:?}");

    let answer = daemon.curl("GET", &format!("/v1/jobs/{long}?wait=true"), None, &[]);
    assert_eq!(
        answer.json()["prime"],
        true,
        "the job in flight finished untouched"
    );
    assert!(daemon.curl("GET", "/v1/_ping", None, &[]).status == 200);
}

#[test]
fn the_tcp_listener_asks_every_request_for_the_token() {
    let daemon = Daemon::builder()
        .testers(1)
        .args(&["--http-listen", "127.0.0.1:0"])
        .start();
    let listening = daemon.wait_for("the TCP listener", |l| {
        l["event"] == "http_listening" && l["addr"].is_string()
    });
    let url = format!(
        "http://{}/v1/status",
        listening["addr"].as_str().expect("addr")
    );
    let token_file = daemon.data_dir.join("http.token");
    let token = std::fs::read_to_string(&token_file).expect("http.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).expect("token").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let missing = curl(&[], "GET", &url, None, &[]);
    assert_eq!(missing.status, 401);
    assert!(missing.error().contains("Bearer"), "{missing:?}");
    assert_eq!(
        missing.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    let wrong = curl(&[], "GET", &url, None, &["authorization: Bearer 00"]);
    assert_eq!(wrong.status, 401);
    let refused = daemon.wait_for("the refusal is logged", |l| {
        l["event"] == "http_unauthorized"
    });
    assert_eq!(refused["path"], "/v1/status");
    let bearer = format!("authorization: Bearer {}", token.trim());
    let right = curl(&[], "GET", &url, None, &[&bearer]);
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(right.json()["role"], "leader");
    // The Unix socket needs no token: its peers are checked by the kernel.
    assert_eq!(daemon.curl("GET", "/v1/status", None, &[]).status, 200);
}

#[test]
fn the_api_socket_is_owner_only_and_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().expect("temp dir");
    let open_up = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    open_up(tmp.path(), 0o755);
    let daemon = Daemon::builder().dir(tmp.path()).testers(1).start();
    let mode = std::fs::metadata(daemon.http_socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the other user: running a client as another user needs root");
        return;
    }
    open_up(&daemon.http_socket(), 0o666);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--unix-socket"])
        .arg(daemon.http_socket())
        .arg("http://primed/v1/status")
        .uid(65_534)
        .gid(65_534)
        .output()
        .expect("curl as nobody");
    let reply = crate::common::http::parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(
        reply.error().contains("permission denied: uid 65534"),
        "{reply:?}"
    );
    let refused = daemon.wait_for("peer refused", |l| l["event"] == "peer_refused");
    assert_eq!(refused["uid"], 65_534);
    assert_eq!(
        daemon.curl("GET", "/v1/_ping", None, &[]).status,
        200,
        "the owner is served"
    );
}

/// Raises this process's descriptor limit to `want` (or the hard limit); what it now is.
fn raise_nofile(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(want);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

#[test]
fn ten_thousand_idle_connections_are_turned_away_or_timed_out_and_work_goes_on() {
    const CONNECTIONS: usize = 10_000;
    const CAP: usize = 500;
    if raise_nofile(CONNECTIONS as u64 + 500) < CONNECTIONS as u64 + 200 {
        eprintln!("skipped: the descriptor limit is below {CONNECTIONS}");
        return;
    }
    let daemon = Daemon::builder()
        .testers(1)
        .config(&format!(
            "[limits]\nmax_connections = {CAP}\nread_timeout_secs = 2\n"
        ))
        .start();
    let idle: Vec<UnixStream> = (0..CONNECTIONS)
        .map(|_| UnixStream::connect(daemon.http_socket()).expect("connect"))
        .collect();
    // The CLI's socket has slots of its own, and work goes on meanwhile.
    let check = daemon.json(&["check", "1000000007"]);
    assert_eq!(check[0]["prime"], true);
    let (mut refused, mut timed_out) = (0, 0);
    for mut stream in idle {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read to the end");
        if answer.is_empty() {
            timed_out += 1;
        } else {
            let reply = crate::common::http::parse(&answer);
            assert_eq!(reply.status, 503, "{reply:?}");
            assert!(
                reply.error().starts_with("too many connections"),
                "{reply:?}"
            );
            assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
            refused += 1;
        }
    }
    assert_eq!(refused + timed_out, CONNECTIONS);
    assert!(timed_out <= CAP, "at most the cap held a slot: {timed_out}");
    assert!(refused >= CONNECTIONS - CAP, "{refused}");
    assert_eq!(
        daemon.curl("GET", "/v1/_ping", None, &[]).status,
        200,
        "served again"
    );
}

/// The standard-library Python client (clients/python), its own tests run against this daemon.
#[test]
fn the_python_client_submits_waits_cancels_and_follows_events() {
    let daemon = Daemon::start(2);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_primed_client"])
        .current_dir(&dir)
        .env("PRIMED_HTTP_SOCKET", daemon.http_socket())
        .env_remove("PRIMED_URL")
        .output()
        .expect("python3 (cargo xtask test installs it if missing)");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client's tests failed:\n{report}"
    );
    assert!(report.contains("Ran 7 tests"), "{report}");
}

/// schemathesis (from PyPI; `cargo xtask test` installs it and names it in
/// PRIMED_SCHEMATHESIS) fuzzes every operation of the served OpenAPI document through the
/// TCP listener: no server error, and every response as the document says (status, content
/// type, headers, body), and bad input refused. Not "valid-looking input is accepted": a
/// schema cannot say which strings are integers of at most `limits.max_digits` digits, and
/// such an input is answered in `errors`. The event stream is left out: it never ends.
#[test]
fn schemathesis_finds_no_server_error_and_no_response_the_schema_does_not_allow() {
    let Some(schemathesis) = std::env::var_os("PRIMED_SCHEMATHESIS") else {
        eprintln!("skipped: run through cargo xtask test, which installs schemathesis");
        return;
    };
    // Small numbers keep every generated job quick; fuzzed kills must not exhaust the
    // restart intensity.
    let daemon = Daemon::builder()
        .testers(2)
        .args(&["--http-listen", "127.0.0.1:0"])
        .config("[limits]\nmax_digits = 30\n[supervision]\nmax_restarts = 1000000\n")
        .start();
    let listening = daemon.wait_for("the TCP listener", |l| {
        l["event"] == "http_listening" && l["addr"].is_string()
    });
    let addr = listening["addr"].as_str().expect("addr");
    let token = std::fs::read_to_string(daemon.data_dir.join("http.token")).expect("token");
    let out = Command::new(schemathesis)
        .arg("run")
        .arg(format!("http://{addr}/v1/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--exclude-path",
            "/v1/events",
            "--max-examples",
            "40",
            "--workers",
            "1",
        ])
        .args(["--seed", "1"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    // Every operation selected (all but the endless event stream) was tested.
    let selected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|s| s.split('/').next())
        .expect("a count of operations selected");
    assert!(report.contains(&format!("Tested: {selected}")), "{report}");
    assert!(selected.parse::<usize>().is_ok_and(|n| n >= 12), "{report}");
    assert!(daemon.curl("GET", "/v1/_ping", None, &[]).status == 200);
}

/// README's curl examples, run in order against a fresh daemon: each succeeds, and prints what
/// README shows under it (exactly, or up to the first "…").
#[test]
fn readme_curl_examples_work() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("<!-- the curl examples below are run by tests/it/http.rs")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README's curl examples");
    let daemon = Daemon::start(2);
    let lines: Vec<&str> = block.lines().collect();
    let mut ran = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("curl ") {
            continue;
        }
        let out = Command::new("sh")
            .args(["-c", line])
            .env("SOCK", daemon.http_socket())
            .output()
            .expect("sh");
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = lines[i + 1]
            .strip_prefix("# ")
            .expect("the output shown under it");
        match shown.split_once('…') {
            Some((prefix, _)) => assert!(printed.starts_with(prefix), "{line}\n{printed}"),
            None => match serde_json::from_str::<Value>(shown) {
                Ok(json) => {
                    let got = serde_json::from_str::<Value>(&printed).ok();
                    assert_eq!(got, Some(json), "{line}");
                }
                Err(_) => assert_eq!(printed, shown, "{line}"),
            },
        }
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} examples found");
}

#[test]
fn a_busy_daemon_answers_503_with_retry_after() {
    let daemon = Daemon::builder()
        .testers(1)
        .args(&["--max-in-flight", "1"])
        .start();
    let _blocker = crate::common::block_a_tester(&daemon);
    let busy = daemon.curl("POST", "/v1/jobs", Some("{\"numbers\": [\"7\"]}"), &[]);
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.header("retry-after").as_deref(), Some("1"));
    assert!(busy.error().contains("busy"), "{busy:?}");
}
