//! Chaos soak: the real daemon under a stream of jobs while testers, the balancer and the whole
//! process are killed at random; at the end every acknowledged job must have exactly one,
//! correct answer.
//!
//! - Jobs go through the protocol (`Submit { wait: true }`, pipelined batches within a window of
//!   unanswered jobs), so the soak sees every ack (with its ids) and every `Done`.
//! - Kills: ~70% `Kill { actor: "tester-K" }`, ~20% `Kill { actor: "balancer" }`, ~10% kill -9
//!   of the daemon followed by a restart on the same socket and data dir. They are spread over
//!   the acks of the stream, plus a few during the final sweep (across failovers: ~50% testers,
//!   ~20% balancer, ~30% process kills, at least 3). A daemon that exits on its own
//!   (the root gave up: escalation) is restarted the same way and counted apart.
//! - After a kill -9, numbers whose batch was not acked are forgotten by the soak (they may
//!   still run under ids it never saw). Acked ids still unanswered are asked again on the new
//!   connection with `Results { wait: true }`; at the end, all unanswered ids are swept that
//!   way on a fresh connection, and a sample of all ids is audited once more.
//! - Oracle, independent of the daemon: a sieve of Eratosthenes below `LIMIT` (10^8), Lucas-Lehmer for
//!   the few big Mersenne numbers, and products of two big numbers (composite by construction).
//!
//! Prints `jobs=N acked=N results=N lost=0 wrong=0 duplicates=0 kills=N`, then the kill
//! breakdown and some statistics, and fails on any loss, wrong answer or duplicate.
//!
//! Across failovers (`chaos_soak_failover_*`): two daemons on an etcd journal (a three-member
//! cluster on loopback), each in its own dir as on two machines. The soak talks to the
//! leader; a process kill is a kill -9 of the leader, after which the soak goes on with the
//! standby (which takes over) and the killed daemon comes back in its dir as the new standby.
//!
//! Environment: `CHAOS_SEED` (random seed, printed), `CHAOS_JOBS`, `CHAOS_KILLS`,
//! `CHAOS_TESTERS` (default 2). The long soaks:
//!
//! ```sh
//! cargo test --release --test chaos -- --ignored --nocapture chaos_soak_long
//! cargo xtask test --release --test chaos -- --ignored --nocapture chaos_soak_failover_long
//! ```

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::etcd::{etcd_primed, Cluster};
use common::{is_prime_by_trial_division, Daemon};
use num_bigint::BigUint;
use primed::job::{JobId, Verdict};
use primed::protocol::{self, Accepted, Report, Request, Response};
use primed::rng::SplitMix64;

/// Laid over the embedded defaults with `--config`. Restart intensity is set so high that the
/// soak's own kills never make a supervisor give up. (Keys may be renamed: keep them here.)
const CONFIG: &str = "\
[supervision]
max_restarts = 100000
period_secs = 1
";

/// Numbers per Submit frame.
const BATCH: usize = 512;
/// Most jobs (submitted or asked for) one connection may have unanswered; well under the
/// daemon's `limits.max_outstanding_per_connection`, so it never stops reading from us.
const WINDOW: usize = 8192;
/// Most ids per Results frame.
const RESULTS_CHUNK: usize = 2048;
/// One big number per this many jobs, on average.
const BIG_EVERY: u64 = 2000;
/// A number every tester panics on (fault injection): a poison job.
const POISON: u64 = 1_000_000_007;
/// One poison job per this many jobs, on average.
const POISON_EVERY: u64 = 5000;
/// Small numbers are below this (the sieve's size).
const LIMIT: u64 = 100_000_000;
/// Ids audited again after the sweep.
const AUDIT_SAMPLE: usize = 20_000;
/// No answer at all for this long while jobs are outstanding fails the soak.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Any single socket operation or kill request.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn chaos_soak_short() {
    run(Params::from_env(20_000, 30));
}

#[test]
#[ignore = "long soak: cargo test --release --test chaos -- --ignored --nocapture chaos_soak_long"]
fn chaos_soak_long() {
    run(Params::from_env(1_000_000, 1_000));
}

#[test]
#[cfg(feature = "etcd")]
fn chaos_soak_failover_short() {
    let mut params = Params::from_env(20_000, 12);
    params.failover = true;
    params.min_process_kills = 3;
    params.process_percent = 30;
    run(params);
}

#[test]
#[cfg(feature = "etcd")]
#[ignore = "long soak: cargo xtask test --release --test chaos -- --ignored --nocapture chaos_soak_failover_long"]
fn chaos_soak_failover_long() {
    let mut params = Params::from_env(200_000, 200);
    params.failover = true;
    params.min_process_kills = 20;
    params.process_percent = 30;
    run(params);
}

// ---------------------------------------------------------------------------------------------
// Parameters and randomness

#[derive(Debug, Clone)]
struct Params {
    jobs: u64,
    kills: u64,
    testers: u32,
    seed: u64,
    /// Process kills forced if chance did not bring this many.
    min_process_kills: u64,
    /// Two daemons on an etcd journal: a process kill is a failover.
    failover: bool,
    /// The share of kills that kill the process, in percent.
    process_percent: u64,
}

impl Params {
    fn from_env(jobs: u64, kills: u64) -> Params {
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(_) => env_u64("CHAOS_SEED", 0),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            }
        };
        let testers = env_u64("CHAOS_TESTERS", 2);
        Params {
            jobs: env_u64("CHAOS_JOBS", jobs),
            kills: env_u64("CHAOS_KILLS", kills),
            testers: u32::try_from(testers)
                .ok()
                .filter(|&t| t > 0)
                .expect("CHAOS_TESTERS must be between 1 and 2^32-1"),
            seed,
            min_process_kills: 2,
            failover: false,
            process_percent: 10,
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={text:?} is not a non-negative integer: {e}")),
        Err(_) => default,
    }
}

/// Seedable, good enough to pick numbers and victims (the crate's SplitMix64).
struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Small(u64),
    /// Index into `Oracle::big`.
    Big(usize),
    /// [`POISON`]: the daemon runs with `--panic-on` it, so it must come back quarantined.
    Poison,
}

#[derive(Debug)]
enum Expected {
    Tested(Verdict),
    Quarantined,
}

impl Expected {
    fn matches(&self, verdict: &Verdict) -> bool {
        match self {
            Expected::Tested(expected) => expected == verdict,
            Expected::Quarantined => matches!(verdict, Verdict::Quarantined { .. }),
        }
    }
}

struct BigNumber {
    label: String,
    text: String,
    prime: bool,
}

struct Oracle {
    /// Bit i set: 2i+1 is composite (odd numbers only).
    composite_odd: Vec<u64>,
    limit: u64,
    big: Vec<BigNumber>,
}

impl Oracle {
    fn new(limit: u64) -> Oracle {
        let odd = limit / 2 + 1;
        let mut bits = vec![0u64; odd.div_ceil(64) as usize];
        bits[0] |= 1; // 1 is not prime
        let mut i = 1u64;
        while (2 * i + 1) * (2 * i + 1) < limit {
            if bits[(i / 64) as usize] & (1 << (i % 64)) == 0 {
                let p = 2 * i + 1;
                let mut j = p * p / 2;
                while j < odd {
                    bits[(j / 64) as usize] |= 1 << (j % 64);
                    j += p;
                }
            }
            i += 1;
        }
        let oracle = Oracle {
            composite_odd: bits,
            limit,
            big: big_numbers(),
        };
        oracle.self_check();
        oracle
    }

    fn small_is_prime(&self, n: u64) -> bool {
        assert!(n < self.limit, "{n} is beyond the sieve");
        match n {
            0 | 1 => false,
            2 => true,
            _ if n.is_multiple_of(2) => false,
            _ => {
                let i = n / 2;
                self.composite_odd[(i / 64) as usize] & (1 << (i % 64)) == 0
            }
        }
    }

    /// The answer `num` must get.
    fn expected(&self, num: Num) -> Expected {
        match num {
            Num::Small(n) => Expected::Tested(Verdict::tested(self.small_is_prime(n))),
            Num::Big(i) => Expected::Tested(Verdict::tested(self.big[i].prime)),
            Num::Poison => Expected::Quarantined,
        }
    }

    fn text(&self, num: Num) -> String {
        match num {
            Num::Small(n) => n.to_string(),
            Num::Big(i) => self.big[i].text.clone(),
            Num::Poison => POISON.to_string(),
        }
    }

    fn describe(&self, num: Num) -> String {
        match num {
            Num::Small(n) => n.to_string(),
            Num::Big(i) => self.big[i].label.clone(),
            Num::Poison => format!("poison {POISON}"),
        }
    }

    /// The sieve against known prime counts and against trial division.
    fn self_check(&self) {
        let count = |below: u64| (0..below).filter(|&n| self.small_is_prime(n)).count();
        assert_eq!(count(100), 25, "oracle self-check: pi(100)");
        assert_eq!(
            count(100_000.min(self.limit)),
            9592,
            "oracle self-check: pi(10^5)"
        );
        let known = [(10_000_000u64, 664_579u64), (100_000_000, 5_761_455)];
        if let Some(&(_, pi)) = known.iter().find(|(n, _)| *n == self.limit) {
            // Odd numbers below the limit are bits 0 .. limit/2; add 1 for the prime 2.
            let odd = (self.limit / 2) as usize;
            let bits = &self.composite_odd;
            let mut composites: u64 = bits[..odd / 64]
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum();
            if !odd.is_multiple_of(64) {
                composites += u64::from((bits[odd / 64] & ((1 << (odd % 64)) - 1)).count_ones());
            }
            assert_eq!(
                odd as u64 - composites + 1,
                pi,
                "oracle self-check: pi({})",
                self.limit
            );
        }
        let mut rng = Rng(SplitMix64::new(0x5eed));
        for _ in 0..2000 {
            let n = rng.below(self.limit);
            assert_eq!(
                self.small_is_prime(n),
                is_prime_by_trial_division(n),
                "oracle self-check: sieve and trial division disagree on {n}"
            );
        }
    }
}

fn mersenne_number(p: u32) -> BigUint {
    (BigUint::from(1u8) << p) - 1u8
}

/// Lucas-Lehmer: for an odd prime p, 2^p - 1 is prime iff s_{p-2} = 0 (s_0 = 4, s_{k+1} = s_k^2 - 2).
fn lucas_lehmer(p: u32) -> bool {
    assert!(
        p > 2 && is_prime_by_trial_division(u64::from(p)),
        "Lucas-Lehmer needs an odd prime exponent, not {p}"
    );
    let m = mersenne_number(p);
    let mut s = BigUint::from(4u8);
    for _ in 0..p - 2 {
        s = (&s * &s + &m - 2u8) % &m;
    }
    s == BigUint::from(0u8)
}

/// A few big numbers that keep a tester busy long enough for kills to land mid-job.
fn big_numbers() -> Vec<BigNumber> {
    let mut big = Vec::new();
    // Known Mersenne prime exponents, confirmed here by Lucas-Lehmer.
    for p in [521, 607, 1279, 2203, 2281] {
        assert!(
            lucas_lehmer(p),
            "oracle self-check: 2^{p}-1 is a Mersenne prime"
        );
        big.push(BigNumber {
            label: format!("2^{p}-1"),
            text: mersenne_number(p).to_string(),
            prime: true,
        });
    }
    // Prime exponents whose Mersenne numbers are composite (2^1277-1 has no known factor, so
    // only a full probable-prime test can tell).
    for p in [523, 1277] {
        assert!(!lucas_lehmer(p), "oracle self-check: 2^{p}-1 is composite");
        big.push(BigNumber {
            label: format!("2^{p}-1"),
            text: mersenne_number(p).to_string(),
            prime: false,
        });
    }
    // Products of two big primes: composite by construction, no small factor.
    for (a, b) in [(521, 607), (607, 1279)] {
        big.push(BigNumber {
            label: format!("(2^{a}-1)(2^{b}-1)"),
            text: (mersenne_number(a) * mersenne_number(b)).to_string(),
            prime: false,
        });
    }
    big
}

// ---------------------------------------------------------------------------------------------
// A blocking protocol connection: the caller writes frames, a thread reads them

struct Conn {
    stream: UnixStream,
    /// Responses in order; an `Err` is the last item: the connection ended (and why).
    rx: Receiver<Result<Response, String>>,
    /// The `Err` has been received.
    ended: bool,
}

impl Conn {
    fn connect(socket: &Path) -> Conn {
        Conn::try_connect(socket)
            .unwrap_or_else(|e| panic!("connecting to the daemon at {}: {e}", socket.display()))
    }

    fn try_connect(socket: &Path) -> std::io::Result<Conn> {
        let mut stream = UnixStream::connect(socket)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set a write timeout");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set a read timeout for the hello");
        stream
            .write_all(&protocol::hello())
            .expect("send our hello");
        let mut hello = [0; protocol::HELLO_LEN];
        stream
            .read_exact(&mut hello)
            .expect("read the daemon's hello");
        protocol::check_hello(hello).expect("the daemon's hello");
        stream
            .set_read_timeout(None)
            .expect("clear the read timeout");
        let reader = stream.try_clone().expect("clone the socket for reading");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, reader);
            let end = loop {
                let mut header = [0; 4];
                match reader.read_exact(&mut header) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        break "the daemon closed the connection".to_string()
                    }
                    Err(e) => break format!("reading a frame header: {e}"),
                }
                let len = match protocol::frame_len(header, protocol::MAX_FRAME_BYTES) {
                    Ok(len) => len,
                    Err(e) => break e.to_string(),
                };
                let mut payload = vec![0; len];
                if let Err(e) = reader.read_exact(&mut payload) {
                    break format!("reading a frame of {len} bytes: {e}");
                }
                match protocol::decode::<Response>(&payload) {
                    Ok(response) => {
                        if tx.send(Ok(response)).is_err() {
                            return;
                        }
                    }
                    Err(e) => break e.to_string(),
                }
            };
            let _ = tx.send(Err(end));
        });
        Ok(Conn {
            stream,
            rx,
            ended: false,
        })
    }

    fn send(&mut self, request: &Request) -> Result<(), String> {
        let frame =
            protocol::encode_frame(request, protocol::MAX_FRAME_BYTES).expect("encode a request");
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("sending a request: {e}"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Ends the reader thread (it sees end of stream).
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The connection jobs and results go through, and what it owes us.
struct Session {
    conn: Conn,
    /// Submitted batches not yet acked, in order (acks come in submission order).
    unacked: VecDeque<Vec<Num>>,
    unacked_numbers: usize,
    /// Ids this connection owes one `Done` for (acked with wait, or asked with Results).
    watched: HashSet<JobId>,
    /// Ids this connection has answered.
    answered: HashSet<JobId>,
    /// Ids to ask for with `Results { wait: true }`, not yet sent.
    to_request: Vec<JobId>,
}

impl Session {
    fn new(socket: &Path, to_request: Vec<JobId>) -> Session {
        Session {
            conn: Conn::connect(socket),
            unacked: VecDeque::new(),
            unacked_numbers: 0,
            watched: HashSet::new(),
            answered: HashSet::new(),
            to_request,
        }
    }

    fn outstanding(&self) -> usize {
        self.unacked_numbers + self.watched.len()
    }

    fn idle(&self) -> bool {
        self.outstanding() == 0 && self.to_request.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// The soak

struct JobRecord {
    num: Num,
    /// The first answer seen.
    verdict: Option<Verdict>,
}

#[derive(Default, Debug)]
struct Counters {
    /// Process kills after which the standby took over.
    failovers: u64,
    submitted: u64,
    acked: u64,
    results: u64,
    wrong: u64,
    duplicates: u64,
    /// Acked ids a Results request called unknown.
    forgotten: u64,
    /// Valid numbers the daemon called invalid.
    invalid_jobs: u64,
    /// Numbers the daemon did not accept for now (`Accepted::Refused`): not acked, not failed.
    refused_jobs: u64,
    /// Numbers submitted but not acked when the daemon died.
    unacked_at_crash: u64,
    /// `Done` for ids never acked to us (ignored, as allowed).
    unacked_done: u64,
    retried: u64,
    /// Poison jobs answered as quarantined (as they must be).
    quarantined: u64,
    max_attempts: u32,
    /// The job that took the most attempts.
    most_attempted: String,
    tester_kills: u64,
    balancer_kills: u64,
    process_kills: u64,
    escalations: u64,
    kills_refused: u64,
    /// Daemon restarts (after process kills and escalations).
    restarts: u64,
}

enum Cause {
    Killed,
    /// The connection ended though the soak did not kill the daemon.
    Lost(String),
}

/// Where the daemons run: one on its own journal, restarted in place; or a leader and a
/// standby on an etcd cluster, the standby taking over. (One per soak: its size is no matter.)
#[allow(clippy::large_enum_variant)]
enum Deployment {
    Single,
    Pair {
        cluster: Cluster,
        standby: Daemon,
        standby_dir: PathBuf,
    },
}

struct Soak {
    params: Params,
    config: PathBuf,
    /// The dir of the daemon the soak talks to.
    dir: PathBuf,
    daemon: Daemon,
    deployment: Deployment,
    session: Session,
    admin: Conn,
    oracle: Oracle,
    numbers: Rng,
    chaos: Rng,
    jobs: HashMap<JobId, JobRecord>,
    c: Counters,
    problems: Vec<String>,
    phase: &'static str,
}

fn run(params: Params) {
    println!(
        "chaos: seed={} jobs={} kills={} testers={} (set CHAOS_SEED to replay the same numbers and kill choices)",
        params.seed, params.jobs, params.kills, params.testers
    );
    let started = Instant::now();
    let oracle = Oracle::new(LIMIT);
    let oracle_time = started.elapsed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let config = dir.join("chaos.toml");
    std::fs::write(&config, CONFIG).expect("write the config file");
    let (daemon, deployment, dir) = if params.failover {
        deploy_pair(&dir, &config, params.testers)
    } else {
        let daemon = start_daemon(&dir, &config, params.testers, None);
        (daemon, Deployment::Single, dir)
    };
    let mut soak = Soak {
        deployment,
        session: Session::new(&daemon.socket, Vec::new()),
        admin: Conn::connect(&daemon.socket),
        numbers: Rng(SplitMix64::new(params.seed)),
        chaos: Rng(SplitMix64::new(params.seed ^ 0xc4a0_5c4a_05c4_a05c)),
        params,
        config,
        dir,
        daemon,
        oracle,
        jobs: HashMap::new(),
        c: Counters::default(),
        problems: Vec::new(),
        phase: "stream",
    };
    let soak_started = Instant::now();
    soak.stream();
    let stream_time = soak_started.elapsed();
    soak.sweep();
    soak.audit();
    let elapsed = soak_started.elapsed();
    soak.report(oracle_time, stream_time, elapsed);
    // The daemon goes (kill -9) before its directory does.
    drop(soak);
    drop(tmp);
}

/// A daemon in `dir`; on the etcd journal at `journal` if given.
fn start_daemon(dir: &Path, config: &Path, testers: u32, journal: Option<&str>) -> Daemon {
    let config = config.to_str().expect("temp dir path is UTF-8");
    let poison = POISON.to_string();
    let mut args = vec!["--config", config, "--panic-on", &poison];
    match journal {
        Some(url) => {
            args.extend(["--journal", url]);
            std::fs::create_dir_all(dir).expect("daemon dir");
            Daemon::start_binary(etcd_primed(), dir, testers, &args)
        }
        None => Daemon::start_in(dir, testers, &args),
    }
}

/// A cluster, a leader in `<dir>/a` and its standby in `<dir>/b`.
fn deploy_pair(dir: &Path, config: &Path, testers: u32) -> (Daemon, Deployment, PathBuf) {
    let cluster = Cluster::start(&dir.join("etcd"));
    let url = cluster.url();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let leader = start_daemon(&a, config, testers, Some(&url));
    leader.wait_for("leading", |l| l["event"] == "leading");
    let standby = start_daemon(&b, config, testers, Some(&url));
    standby.wait_for("standby", |l| l["event"] == "standby");
    let deployment = Deployment::Pair {
        cluster,
        standby,
        standby_dir: b,
    };
    (leader, deployment, a)
}

impl Soak {
    fn kills(&self) -> u64 {
        self.c.tester_kills + self.c.balancer_kills + self.c.process_kills
    }

    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\nphase: {}\ncounters: {:?}\nfirst problems: {:#?}\ndaemon log (last lines):\n{}",
            self.phase,
            self.c,
            self.problems,
            self.daemon.log_tail(40)
        );
    }

    fn problem(&mut self, message: String) {
        if self.problems.len() < 50 {
            eprintln!("chaos problem: {message}");
            self.problems.push(message);
        }
    }

    /// The job stream, with kills spread over its acks.
    fn stream(&mut self) {
        let sweep_kills = if self.params.kills >= 2 {
            (self.params.kills / 10).clamp(1, 10)
        } else {
            0
        };
        let stream_kills = self.params.kills - sweep_kills;
        let mut next_kill = (self.params.jobs / (stream_kills + 1)).max(1);
        while self.c.submitted < self.params.jobs || !self.session.unacked.is_empty() {
            // Right after sending: a kill -9 then often catches batches not yet acked.
            self.fill_window(true);
            // The kills left are spread evenly over the acks still possible (a kill -9 drops
            // the batches not yet acked), counted from this ack, so that a group commit acking
            // many batches at once does not fire kills back to back.
            if self.kills() < stream_kills && self.c.acked >= next_kill && self.kill() {
                let acks_left =
                    (self.params.jobs - self.c.submitted) + self.session.unacked_numbers as u64;
                let kills_left = stream_kills.saturating_sub(self.kills());
                next_kill = self.c.acked + (acks_left / (kills_left + 1)).max(1);
            }
            if self.session.outstanding() > 0 {
                self.receive();
            }
        }
    }

    /// Asks for every acked id still unanswered on a fresh connection, with the remaining
    /// kills spread over the answers.
    fn sweep(&mut self) {
        self.phase = "sweep";
        let mut pending = self.drain_and_close();
        pending.sort_unstable();
        let total = pending.len() as u64;
        eprintln!("chaos: final sweep of {total} unanswered acked ids");
        self.session = Session::new(&self.daemon.socket, pending);
        let owed = self.params.kills - self.kills();
        let step = (total / (owed + 1)).max(1);
        let mut next_kill = step;
        let base = self.c.results;
        loop {
            let idle = self.session.idle();
            if self.kills() < self.params.kills {
                let answered = self.c.results - base;
                if (idle || answered >= next_kill) && self.kill() {
                    next_kill = next_kill.max(answered) + step;
                }
                if idle {
                    continue;
                }
            } else if idle {
                break;
            }
            self.fill_window(false);
            if self.session.outstanding() > 0 {
                self.receive();
            }
        }
    }

    /// Asks once more, on a fresh connection, for a sample of all acked ids: every answer
    /// must match the first one seen.
    fn audit(&mut self) {
        self.phase = "audit";
        let leftover = self.drain_and_close();
        assert!(
            leftover.is_empty(),
            "the sweep ended with {} ids unanswered",
            leftover.len()
        );
        let mut ids: Vec<JobId> = self.jobs.keys().copied().collect();
        ids.sort_unstable();
        for i in 0..ids.len().min(AUDIT_SAMPLE) {
            let j = i + self.chaos.below((ids.len() - i) as u64) as usize;
            ids.swap(i, j);
        }
        ids.truncate(AUDIT_SAMPLE);
        self.session = Session::new(&self.daemon.socket, ids);
        while !self.session.idle() {
            self.fill_window(false);
            if self.session.outstanding() > 0 {
                self.receive();
            }
        }
    }

    /// Processes what the current session has already received, closes it, and returns the
    /// ids it still owed (plus those not yet asked for).
    fn drain_and_close(&mut self) -> Vec<JobId> {
        while let Ok(next) = self.session.conn.rx.try_recv() {
            match next {
                Ok(response) => self.handle(response),
                Err(_) => {
                    self.session.conn.ended = true;
                    break;
                }
            }
        }
        let mut pending: Vec<JobId> = self.session.watched.drain().collect();
        pending.append(&mut self.session.to_request);
        pending
    }

    /// Sends Results requests (first) and new batches while the window has room.
    fn fill_window(&mut self, submit: bool) {
        loop {
            let room = WINDOW.saturating_sub(self.session.outstanding());
            if !self.session.to_request.is_empty() {
                let n = room.min(RESULTS_CHUNK).min(self.session.to_request.len());
                if n == 0 {
                    return;
                }
                let at = self.session.to_request.len() - n;
                let ids = self.session.to_request.split_off(at);
                self.session.watched.extend(ids.iter().copied());
                if let Err(e) = self
                    .session
                    .conn
                    .send(&Request::Results { ids, wait: true })
                {
                    return self.restart(Cause::Lost(e));
                }
                continue;
            }
            if !submit || self.c.submitted >= self.params.jobs {
                return;
            }
            let n = (BATCH as u64).min(self.params.jobs - self.c.submitted) as usize;
            if room < n {
                return;
            }
            let batch: Vec<Num> = (0..n).map(|_| self.next_number()).collect();
            let numbers = batch.iter().map(|&num| self.oracle.text(num)).collect();
            self.c.submitted += n as u64;
            self.session.unacked.push_back(batch);
            self.session.unacked_numbers += n;
            if let Err(e) = self.session.conn.send(&Request::Submit {
                numbers,
                wait: true,
            }) {
                return self.restart(Cause::Lost(e));
            }
        }
    }

    fn next_number(&mut self) -> Num {
        let r = &mut self.numbers;
        if r.below(POISON_EVERY) == 0 {
            Num::Poison
        } else if r.below(BIG_EVERY) == 0 {
            Num::Big(r.below(self.oracle.big.len() as u64) as usize)
        } else if r.below(16) == 0 {
            // Edge cases: 0, 1, 2, small primes and squares.
            Num::Small(r.below(1000))
        } else {
            Num::Small(r.below(LIMIT))
        }
    }

    /// Waits for the session's next response and handles it.
    fn receive(&mut self) {
        match self.session.conn.rx.recv_timeout(STALL_TIMEOUT) {
            Ok(Ok(response)) => self.handle(response),
            Ok(Err(why)) => {
                self.session.conn.ended = true;
                self.restart(Cause::Lost(why));
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.session.conn.ended = true;
                self.restart(Cause::Lost("the reader thread ended".into()));
            }
            Err(RecvTimeoutError::Timeout) => {
                let sample: Vec<_> = self.session.watched.iter().take(10).collect();
                self.fail(&format!(
                    "no answer from the daemon for {STALL_TIMEOUT:?}: {} unacked batches, {} ids \
                     owed on this connection (e.g. {sample:?})",
                    self.session.unacked.len(),
                    self.session.watched.len()
                ))
            }
        }
    }

    fn handle(&mut self, response: Response) {
        match response {
            Response::Accepted { items } => self.accepted(items),
            Response::Done(report) => self.done(report),
            Response::Unknown { id, error } => {
                if self.session.watched.remove(&id) {
                    self.c.forgotten += 1;
                    self.problem(format!("acked id {id} is unknown to the daemon: {error}"));
                } else {
                    self.c.duplicates += 1;
                    self.problem(format!("Unknown for id {id} never asked here: {error}"));
                }
            }
            other => self.fail(&format!(
                "unexpected response on the job connection: {other:?}"
            )),
        }
    }

    fn accepted(&mut self, items: Vec<Accepted>) {
        let Some(batch) = self.session.unacked.pop_front() else {
            self.fail(&format!(
                "an Accepted of {} items with no submission awaiting its ack",
                items.len()
            ));
        };
        if batch.len() != items.len() {
            self.fail(&format!(
                "a batch of {} numbers was acked with {} items",
                batch.len(),
                items.len()
            ));
        }
        self.session.unacked_numbers -= batch.len();
        for (num, item) in batch.into_iter().zip(items) {
            match item {
                Accepted::Job { id, n } => {
                    let expected = self.oracle.text(num);
                    if n != expected {
                        self.c.wrong += 1;
                        self.problem(format!(
                            "id {id} acked for n={n} but {} was submitted",
                            self.oracle.describe(num)
                        ));
                    }
                    if let Some(earlier) = self.jobs.get(&id) {
                        self.c.duplicates += 1;
                        let earlier = self.oracle.describe(earlier.num);
                        self.problem(format!(
                            "id {id} acked for {} but already acked for {earlier}",
                            self.oracle.describe(num)
                        ));
                        continue;
                    }
                    self.jobs.insert(id, JobRecord { num, verdict: None });
                    self.c.acked += 1;
                    self.session.watched.insert(id);
                }
                Accepted::Invalid { input, error } => {
                    self.c.invalid_jobs += 1;
                    let input: String = input.chars().take(40).collect();
                    self.problem(format!("valid number {input} called invalid: {error}"));
                }
                Accepted::Refused { input, error } => {
                    // Allowed (busy, journal failure): the number is simply not acked.
                    self.c.refused_jobs += 1;
                    if self.c.refused_jobs <= 10 {
                        let input: String = input.chars().take(40).collect();
                        eprintln!("chaos: {input} not accepted for now: {error}");
                    }
                }
            }
        }
    }

    fn done(&mut self, report: Report) {
        let id = report.id;
        let Some(job) = self.jobs.get(&id) else {
            // Never acked to us (its ack was lost with a killed daemon): ignored.
            self.c.unacked_done += 1;
            return;
        };
        let num = job.num;
        let first = job.verdict.clone();
        let asked = self.session.watched.remove(&id);
        let again = !self.session.answered.insert(id);
        if !asked {
            self.c.duplicates += 1;
            let what = if again {
                "answered twice on one connection"
            } else {
                "answered on a connection that never asked for it"
            };
            self.problem(format!(
                "id {id} ({}) {what}: {report:?}",
                self.oracle.describe(num)
            ));
        }
        if report.n != self.oracle.text(num) {
            self.c.wrong += 1;
            self.problem(format!(
                "id {id} was acked for {} but answered for n={}",
                self.oracle.describe(num),
                report.n
            ));
        }
        match first {
            None => {
                self.c.results += 1;
                if report.attempts > 1 {
                    self.c.retried += 1;
                }
                if report.attempts > self.c.max_attempts {
                    self.c.max_attempts = report.attempts;
                    self.c.most_attempted = format!("id {id} = {}", self.oracle.describe(num));
                }
                let expected = self.oracle.expected(num);
                if matches!(report.verdict, Verdict::Quarantined { .. }) {
                    self.c.quarantined += 1;
                }
                if !expected.matches(&report.verdict) {
                    self.c.wrong += 1;
                    self.problem(format!(
                        "id {id}: {} answered {:?}, expected {expected:?} (attempts {})",
                        self.oracle.describe(num),
                        report.verdict,
                        report.attempts
                    ));
                }
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.verdict = Some(report.verdict);
                }
            }
            Some(verdict) if verdict != report.verdict => {
                self.c.duplicates += 1;
                self.problem(format!(
                    "id {id} ({}) answered {verdict:?}, later {:?}",
                    self.oracle.describe(num),
                    report.verdict
                ));
            }
            Some(_) => {}
        }
    }

    /// One kill of a random kind; false if it did not happen (the actor was restarting, or
    /// the daemon had died on its own).
    fn kill(&mut self) -> bool {
        let remaining = self.params.kills - self.kills();
        let process_needed = self
            .params
            .min_process_kills
            .saturating_sub(self.c.process_kills);
        let roll = self.chaos.below(100);
        if remaining <= process_needed || roll < self.params.process_percent {
            self.restart(Cause::Killed);
            self.c.process_kills += 1;
            return true;
        }
        let actor = if roll < self.params.process_percent + 20 {
            "balancer".to_string()
        } else {
            format!(
                "tester-{}",
                1 + self.chaos.below(u64::from(self.params.testers))
            )
        };
        if self.c.kills_refused > 100 + 10 * self.params.kills {
            self.fail("kill requests keep being refused");
        }
        // The actor's next start, or the root giving up (then it never starts again).
        let back = |l: &serde_json::Value| {
            ((l["event"] == "start" || l["event"] == "restart") && l["actor"] == actor.as_str())
                || l["event"] == "gave_up"
        };
        let starts = self.daemon.count(back);
        if let Err(e) = self.admin.send(&Request::Kill {
            actor: actor.clone(),
        }) {
            self.restart(Cause::Lost(e));
            return false;
        }
        match self.admin.rx.recv_timeout(IO_TIMEOUT) {
            Ok(Ok(Response::Killed { actor: killed })) if killed == actor => {
                if actor == "balancer" {
                    self.c.balancer_kills += 1;
                } else {
                    self.c.tester_kills += 1;
                }
                true
            }
            Ok(Ok(Response::Failed { message })) => {
                // Refused: the actor is being restarted (perhaps after a backoff delay). Await
                // its next start rather than asking again at once.
                self.c.kills_refused += 1;
                if self.c.kills_refused <= 5 {
                    eprintln!("chaos: kill {actor} refused: {message}; awaiting its restart");
                }
                let line =
                    self.daemon
                        .wait_for_nth(&format!("{actor} to start again"), starts + 1, back);
                if line["event"] == "gave_up" {
                    self.restart(Cause::Lost(format!("{line}")));
                }
                false
            }
            Ok(Ok(other)) => self.fail(&format!("unexpected answer to kill {actor}: {other:?}")),
            Ok(Err(why)) => {
                self.admin.ended = true;
                self.restart(Cause::Lost(why));
                false
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.restart(Cause::Lost("the admin reader thread ended".into()));
                false
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("no answer to kill {actor} within {IO_TIMEOUT:?}"))
            }
        }
    }

    /// kill -9 (or reap a daemon that exited on its own), start a new daemon on the same dir,
    /// and ask the new one for everything the old connection still owed.
    fn restart(&mut self, cause: Cause) {
        if let Cause::Lost(why) = &cause {
            eprintln!("chaos: connection lost without a kill ({why}); awaiting the daemon's exit");
            // The only expected way to lose a connection is the root giving up: the daemon
            // exits non-zero. A daemon that stays up fails here (bounded wait, with its log).
            let status = self.daemon.wait_exit();
            if status.success() {
                self.fail(&format!("the daemon exited on its own with {status}"));
            }
            eprintln!("chaos: the daemon exited on its own ({status}): escalation");
            self.c.escalations += 1;
        }
        self.daemon.kill9();
        // Everything received before the death counts: acks and answers alike.
        while !self.session.conn.ended {
            match self.session.conn.rx.recv_timeout(IO_TIMEOUT) {
                Ok(Ok(response)) => self.handle(response),
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => self.session.conn.ended = true,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail("the connection stayed open after the daemon died")
                }
            }
        }
        self.c.unacked_at_crash += self.session.unacked_numbers as u64;
        let mut orphans: Vec<JobId> = self.session.watched.drain().collect();
        orphans.append(&mut self.session.to_request);
        self.c.restarts += 1;
        eprintln!(
            "chaos: daemon restart #{} ({} acked ids to ask again, {} unacked numbers dropped)",
            self.c.restarts,
            orphans.len(),
            self.session.unacked_numbers
        );
        self.replace_daemon();
        self.session = Session::new(&self.daemon.socket, orphans);
        self.admin = Conn::connect(&self.daemon.socket);
    }

    /// After a kill: the same dir again, or the standby (which takes over) while the killed
    /// daemon comes back in its dir as the new standby.
    fn replace_daemon(&mut self) {
        let testers = self.params.testers;
        match &mut self.deployment {
            Deployment::Single => {
                self.daemon = start_daemon(&self.dir, &self.config, testers, None);
            }
            Deployment::Pair {
                cluster,
                standby,
                standby_dir,
            } => {
                let url = cluster.url();
                let back = start_daemon(&self.dir, &self.config, testers, Some(&url));
                self.daemon = std::mem::replace(standby, back);
                std::mem::swap(&mut self.dir, standby_dir);
                self.c.failovers += 1;
            }
        }
    }

    fn report(&mut self, oracle_time: Duration, stream_time: Duration, elapsed: Duration) {
        let lost = self.jobs.values().filter(|j| j.verdict.is_none()).count() as u64;
        let results = self.jobs.values().filter(|j| j.verdict.is_some()).count() as u64;
        let c = &self.c;
        println!(
            "jobs={} acked={} results={} lost={} wrong={} duplicates={} kills={}",
            c.submitted,
            c.acked,
            results,
            lost,
            c.wrong,
            c.duplicates,
            c.tester_kills + c.balancer_kills + c.process_kills
        );
        println!(
            "kills: testers={} balancer={} process={} failovers={} escalations={} refused={} \
             quarantined={}",
            c.tester_kills,
            c.balancer_kills,
            c.process_kills,
            c.failovers,
            c.escalations,
            c.kills_refused,
            c.quarantined
        );
        println!(
            "chaos: seed={} oracle={:.1}s stream={:.1}s total={:.1}s ({:.0} jobs/s) retried={} \
             max_attempts={} ({}) unacked_at_crash={} unacked_done={} forgotten={} refused_jobs={} \
             invalid_jobs={}",
            self.params.seed,
            oracle_time.as_secs_f64(),
            stream_time.as_secs_f64(),
            elapsed.as_secs_f64(),
            c.submitted as f64 / stream_time.as_secs_f64(),
            c.retried,
            c.max_attempts,
            c.most_attempted,
            c.unacked_at_crash,
            c.unacked_done,
            c.forgotten,
            c.refused_jobs,
            c.invalid_jobs
        );
        let verdict = format!(
            "seed {} (rerun with CHAOS_SEED={}); problems: {:#?}",
            self.params.seed, self.params.seed, self.problems
        );
        assert!(c.acked > 0, "nothing was acked; {verdict}");
        assert_eq!(lost, 0, "acked jobs lost; {verdict}");
        assert_eq!(c.wrong, 0, "wrong answers; {verdict}");
        assert_eq!(c.duplicates, 0, "duplicate answers or ids; {verdict}");
        assert_eq!(results, c.acked, "results for every acked job; {verdict}");
        assert_eq!(c.results, results, "first answers counted once; {verdict}");
        assert_eq!(c.invalid_jobs, 0, "valid numbers called invalid; {verdict}");
        assert_eq!(
            self.kills(),
            self.params.kills,
            "every planned kill happened; {verdict}"
        );
    }
}
