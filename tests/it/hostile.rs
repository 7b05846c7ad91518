//! Hostile clients: a frame built to make the decoder allocate without bound, thousands of
//! fuzzed frames during real work, connections that say nothing, more connections than the
//! daemon has descriptors for, another user's crowd of sockets, squatted socket directories,
//! symlinked locks and fake daemons. The daemon stays up, its own user is served, and the log
//! stays readable. The tests that act as another user need root.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::raw::{connect, error_frame, handshake, rest};
use crate::common::{describe, is_prime_by_trial_division, parse_lines, Daemon, BIN};
use primed::protocol::{self, Request, Response};

const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The frame of the report: a Submit whose one number claims 2^62 bytes.
fn huge_claim() -> Vec<u8> {
    let mut payload = vec![0x00, 0x01, 0xFD];
    payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
    payload.extend_from_slice(&[0x97, 0x00]);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn a_frame_claiming_a_huge_length_is_refused_in_words_and_the_daemon_stays_up() {
    let daemon = Daemon::start(1);
    for frame in [huge_claim(), {
        // The same claim for the actor name of a Kill (variant 10).
        let mut payload = vec![0x0A, 0xFD];
        payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        frame
    }] {
        let mut stream = handshake(&daemon);
        stream.write_all(&frame).expect("write");
        let message = error_frame(&rest(&mut stream));
        assert!(message.starts_with("malformed message: "), "{message}");
        assert!(!message.contains('{'), "words, not debug text: {message}");
    }
    // Cut short: said in words too (it was `UnexpectedEnd { additional: 1 }`).
    let mut stream = handshake(&daemon);
    stream.write_all(&[0, 0, 0, 2, 0, 1]).expect("write");
    let message = error_frame(&rest(&mut stream));
    assert!(message.contains("ends before it is complete"), "{message}");
    let out = daemon.cli(&["check", "97"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// A small xorshift: the fuzzing is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Real requests, encoded: the seeds that mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let requests = [
        Request::Submit {
            numbers: vec!["97".into(), "12345678901234567890".into()],
            wait: false,
        },
        Request::Results {
            ids: vec![1, 2, 3],
            wait: false,
        },
        Request::Status,
        Request::Jobs,
        Request::Events {
            since_ms: 0,
            follow: false,
        },
    ];
    requests
        .iter()
        .map(|r| protocol::encode_frame(r, 1 << 20).expect("encode")[4..].to_vec())
        .collect()
}

/// A payload that is random, a mutated real request, or a real request with a huge length
/// spliced in. Payloads that decode to a request that changes the daemon (cancel, kill,
/// reload, a submission) are not sent: the check running meanwhile must stay exact.
fn fuzzed(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    loop {
        let mut payload = match rng.below(3) {
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut bytes = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
                bytes
            }
            _ => {
                let mut bytes = seeds[rng.below(seeds.len())].clone();
                let at = rng.below(bytes.len());
                let mut huge = vec![0xFD];
                huge.extend_from_slice(&(rng.next() | 1 << 40).to_le_bytes());
                bytes.splice(at..at, huge);
                bytes
            }
        };
        payload.truncate(1 << 16);
        let harmless = match protocol::decode::<Request>(&payload) {
            Err(_) => true,
            Ok(request) => matches!(
                request,
                Request::Status | Request::Jobs | Request::Alarms | Request::Tree
            ),
        };
        if harmless {
            return payload;
        }
    }
}

/// Done-when 2 of the hardening issue: 20,000 fuzzed frames against a daemon running a
/// 10,000-number check. The daemon stays up, every answer is right, and its RSS stays within
/// 64 MiB of where it started.
#[test]
fn twenty_thousand_fuzzed_frames_during_a_check_change_no_answer() {
    let daemon = Daemon::start(2);
    let numbers: Vec<u64> = (0..10_000u64).map(|i| 1_000_003 + 2 * i).collect();
    let input: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let mut check = Command::new(BIN)
        .args(["check", "--json", "--socket"])
        .arg(&daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("check");
    let mut stdin = check.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));

    let before = rss_kib(daemon.pid());
    let (mut rng, seeds) = (Rng(0x9E37_79B9_7F4A_7C15), seeds());
    let mut peak = before;
    for i in 0..20_000 {
        let payload = fuzzed(&mut rng, &seeds);
        let mut stream = handshake(&daemon);
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        // The daemon may hang up before it has read all of a bad frame: that is its right.
        let _ = stream.write_all(&frame);
        drop(stream);
        if i % 1000 == 0 {
            peak = peak.max(rss_kib(daemon.pid()));
        }
    }
    feeder.join().expect("feeder").expect("write numbers");
    let out = check.wait_with_output().expect("check output");
    assert!(out.status.success(), "{}", describe(&out));
    let answers = parse_lines(&out.stdout);
    assert_eq!(answers.len(), numbers.len());
    for (answer, n) in answers.iter().zip(&numbers) {
        assert_eq!(answer["n"], n.to_string());
        assert_eq!(answer["prime"], is_prime_by_trial_division(*n), "{answer}");
    }
    peak = peak.max(rss_kib(daemon.pid()));
    eprintln!("daemon RSS: {before} KiB before the fuzzing, {peak} KiB at most during it");
    assert!(
        peak < before + 64 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    assert!(daemon.cli(&["status"]).status.success());
}

/// A connection that sends its hello and nothing more is closed once idle; one that waits for
/// an answer it is owed is not idle, however long the job takes; one that never says hello is
/// closed after the read timeout.
#[test]
fn silent_connections_are_closed_but_one_owed_an_answer_is_kept() {
    let daemon = Daemon::builder()
        .testers(1)
        .config("[limits]\nidle_timeout_secs = 0.5\nread_timeout_secs = 0.5\n")
        .start();
    let blocker = crate::common::block_a_tester(&daemon);
    // Owed an answer: a raw client waiting for the blocked job.
    let mut waiter = handshake(&daemon);
    let ask = Request::Results {
        ids: vec![blocker.id],
        wait: true,
    };
    waiter
        .write_all(&protocol::encode_frame(&ask, 1 << 20).expect("encode"))
        .expect("ask");

    // Connected after the waiter asked, and closed once idle: the waiter has waited longer.
    let mut idle = handshake(&daemon);
    let message = error_frame(&rest(&mut idle));
    assert!(message.contains("idle"), "{message}");
    let mut mute = connect(&daemon);
    assert_eq!(rest(&mut mute), b"", "no hello: closed without a word");

    daemon.cli(&["cancel", &blocker.id.to_string()]);
    let mut header = [0; 4];
    waiter
        .read_exact(&mut header)
        .expect("the waiter is still connected");
    let mut payload = vec![0; protocol::frame_len(header, 1 << 20).expect("length")];
    waiter.read_exact(&mut payload).expect("its answer");
    match protocol::decode::<Response>(&payload).expect("a response") {
        Response::Done(report) => assert_eq!(report.id, blocker.id),
        other => panic!("expected the job's answer, got {other:?}"),
    }
}

#[test]
fn past_the_connection_cap_a_client_is_told_so_and_others_still_served() {
    let daemon = Daemon::builder()
        .testers(1)
        .config("[limits]\nmax_connections = 8\n")
        .start();
    let held: Vec<UnixStream> = (0..8).map(|_| handshake(&daemon)).collect();
    let out = daemon.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("too many connections"), "{stderr}");
    assert!(stderr.contains("limits.max_connections"), "{stderr}");
    drop(held);
    let out = daemon.cli(&["status"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// Sets `pid`'s soft descriptor limit (the hard one may not be raised again here).
fn limit_descriptors(pid: u32, limit: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to write the current limits into.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: limit.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: a valid rlimit for a live child of ours; the old value is not asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Out of descriptors, accept fails: the daemon backs off instead of spinning and logging
/// ~470,000 lines a second, and serves again once descriptors are free.
#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let daemon = Daemon::start(1);
    let open = fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .expect("fds")
        .count() as u64;
    limit_descriptors(daemon.pid(), open + 4);
    let mut held: Vec<UnixStream> = (0..4).map(|_| handshake(&daemon)).collect();
    // These wait in the backlog: the daemon has no descriptor to accept them with.
    held.extend((0..8).map(|_| connect(&daemon)));
    daemon.wait_for("accept fails", |l| l["event"] == "accept_failed");
    std::thread::sleep(Duration::from_millis(1500));
    let lines = daemon.count(|l| l["event"] == "accept_failed");
    assert!(lines <= 3, "{lines} accept_failed lines in 1.5 s");
    drop(held);
    limit_descriptors(daemon.pid(), 4096);
    let out = daemon.cli(&["check", "97"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// Done-when 3: with `ulimit -n 256`, another user holding 1,000 connections open does not
/// keep the daemon's own user from its status within a second, and the log holds a line a
/// second about it at most.
#[test]
fn another_users_thousand_sockets_under_ulimit_256_lock_nobody_out() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // As `ulimit -n 256` before `primed serve`: its cap is fitted under that at start.
    let daemon = Daemon::builder()
        .dir(tmp.path())
        .testers(1)
        .customize(|command| {
            // SAFETY: setrlimit is async-signal-safe, and the rlimit outlives the call.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 256,
                        rlim_max: 256,
                    };
                    match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                });
            }
        })
        .start();
    let listening = daemon.wait_for("listening", |l| l["event"] == "listening");
    assert_eq!(listening["max_connections"], 192, "256 less the reserve");
    fs::set_permissions(&daemon.socket, fs::Permissions::from_mode(0o666)).expect("chmod");

    let script = "import socket, sys\n\
        path = sys.argv[1]\n\
        held = []\n\
        for _ in range(1000):\n\
        \x20   s = socket.socket(socket.AF_UNIX)\n\
        \x20   s.connect(path)\n\
        \x20   held.append(s)\n\
        print(len(held), flush=True)\n\
        sys.stdin.read()\n";
    let mut crowd = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&daemon.socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python as nobody");
    let mut line = String::new();
    BufReader::new(crowd.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("crowd ready");
    assert_eq!(line.trim(), "1000");

    let out = daemon.cli(&["status", "--timeout", "1"]);
    assert!(out.status.success(), "{}", describe(&out));
    let refused = daemon.count(|l| l["event"] == "peer_refused");
    assert!(refused >= 1, "the crowd was refused");
    assert!(refused <= 5, "{refused} peer_refused lines for one crowd");
    drop(crowd.stdin.take());
    let _ = crowd.wait();
}

/// A socket directory another user made (and can write) is refused before anything is put in
/// it; the lock is never followed through a symlink; a regular file at the socket path is
/// never deleted, and a directory there is named.
#[test]
fn unsafe_socket_paths_are_refused_and_nothing_of_anyone_is_touched() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let serve = |socket: &Path| {
        Command::new(BIN)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .output()
            .expect("serve")
    };
    let open = tmp.path().join("open");
    fs::create_dir(&open).expect("dir");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = serve(&open.join("primed.sock"));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lets other users write"), "{stderr}");
    assert!(stderr.contains(&open.display().to_string()), "{stderr}");
    assert_eq!(
        fs::read_dir(&open).expect("dir").count(),
        0,
        "nothing made there"
    );

    if is_root() {
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).expect("dir");
        std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).expect("chown");
        let out = serve(&theirs.join("primed.sock"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    }

    let ours = tmp.path().join("ours");
    fs::create_dir(&ours).expect("dir");
    let victim = tmp.path().join("victim");
    std::os::unix::fs::symlink(&victim, ours.join("primed.sock.lock")).expect("symlink");
    let out = serve(&ours.join("primed.sock"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(!victim.exists(), "the symlink's target was not created");
    fs::remove_file(ours.join("primed.sock.lock")).expect("unlink");

    fs::write(ours.join("primed.sock"), "precious").expect("file");
    let out = serve(&ours.join("primed.sock"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a regular file is there"), "{stderr}");
    assert_eq!(
        fs::read_to_string(ours.join("primed.sock")).expect("kept"),
        "precious"
    );
    fs::remove_file(ours.join("primed.sock")).expect("unlink");
    fs::create_dir(ours.join("primed.sock")).expect("dir");
    let out = serve(&ours.join("primed.sock"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a directory is there"), "{stderr}");
    assert_eq!(
        stderr.matches("a directory is there").count(),
        1,
        "said once: {stderr}"
    );
}

/// A fake daemon of another user at the socket path: the client sees whose it is before it
/// sends a byte, and prints no answer of the impostor's.
#[test]
fn the_client_refuses_a_daemon_of_another_user() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let socket = tmp.path().join("fake.sock");
    // The impostor: says hello and claims every number is prime... if it is ever asked.
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.bind(sys.argv[1])\n\
        s.listen(4)\n\
        print('ready', flush=True)\n\
        c, _ = s.accept()\n\
        got = c.recv(64)\n\
        print(len(got), flush=True)\n";
    let mut fake = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::piped())
        .spawn()
        .expect("fake daemon");
    let mut stdout = BufReader::new(fake.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready");
    let out = Command::new(BIN)
        .args(["check", "91", "561", "--socket"])
        .arg(&socket)
        .output()
        .expect("client");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("served by uid 65534"), "{stderr}");
    line.clear();
    stdout.read_line(&mut line).expect("what it got");
    assert_eq!(line.trim(), "0", "the client sent the impostor nothing");
    let _ = fake.wait();
}

/// A client that hangs up while it is owed answers frees its connection at once: it used to
/// hold its slot (and descriptor) until every job it had asked about was done.
#[test]
fn a_client_that_hangs_up_owed_answers_frees_its_connection() {
    let daemon = Daemon::builder()
        .testers(1)
        .config("[limits]\nmax_connections = 4\n")
        .start();
    let blocker = crate::common::block_a_tester(&daemon);
    let ask = Request::Results {
        ids: vec![blocker.id],
        wait: true,
    };
    let frame = protocol::encode_frame(&ask, 1 << 20).expect("encode");
    // The blocker's own client holds one connection; these take the other three.
    let waiting: Vec<UnixStream> = (0..3)
        .map(|_| {
            let mut stream = handshake(&daemon);
            stream.write_all(&frame).expect("ask");
            stream
        })
        .collect();
    drop(waiting);
    // The daemon sees the hang-ups in its own time: poll, bounded, for a connection it serves.
    let served = (0..200).any(|_| {
        let out = daemon.cli(&["status"]);
        out.status.success() || {
            std::thread::sleep(Duration::from_millis(25));
            false
        }
    });
    assert!(served, "the hung-up connections still hold the cap");
}

#[test]
fn a_lookup_of_more_ids_than_a_batch_is_refused() {
    let daemon = Daemon::start(1);
    let mut stream = handshake(&daemon);
    let ask = Request::Results {
        ids: (1..=5000).collect(),
        wait: false,
    };
    stream
        .write_all(&protocol::encode_frame(&ask, 1 << 20).expect("encode"))
        .expect("ask");
    let message = error_frame(&rest(&mut stream));
    assert!(message.contains("exceeds the maximum of 4096"), "{message}");
}

/// A client that asks and never reads gets a bounded queue, and once its socket is full for
/// longer than the idle timeout the daemon gives up on it, freeing its connection.
#[test]
fn a_client_that_never_reads_is_given_up_on() {
    let daemon = Daemon::builder()
        .testers(1)
        .config("[limits]\nmax_connections = 1\nidle_timeout_secs = 0.5\n")
        .start();
    let mut greedy = handshake(&daemon);
    let ask = protocol::encode_frame(&Request::Status, 1 << 20).expect("encode");
    greedy
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // Far more answers than the queue and the socket's buffers hold; stop when the daemon
    // stops reading (a write that times out) or hangs up.
    for _ in 0..20_000 {
        if greedy.write_all(&ask).is_err() {
            break;
        }
    }
    let served = (0..400).any(|_| {
        let out = daemon.cli(&["status"]);
        out.status.success() || {
            std::thread::sleep(Duration::from_millis(25));
            false
        }
    });
    assert!(
        served,
        "the connection that never reads still holds the only slot"
    );
    drop(greedy);
}
