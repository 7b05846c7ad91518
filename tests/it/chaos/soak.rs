//! The soak itself: the stream of jobs, the kills, the sweep and the audit.

use super::*;

/// The connection jobs and results go through, and what it owes us.
pub(super) struct Session {
    pub(super) conn: Conn,
    /// Submitted batches not yet acked, in order (acks come in submission order).
    pub(super) unacked: VecDeque<Vec<Num>>,
    pub(super) unacked_numbers: usize,
    /// Ids this connection owes one `Done` for (acked with wait, or asked with Results).
    pub(super) watched: HashSet<JobId>,
    /// Ids this connection has answered.
    pub(super) answered: HashSet<JobId>,
    /// Ids to ask for with `Results { wait: true }`, not yet sent.
    pub(super) to_request: Vec<JobId>,
}

impl Session {
    pub(super) fn new(socket: &Path, to_request: Vec<JobId>) -> Session {
        Session {
            conn: Conn::connect(socket),
            unacked: VecDeque::new(),
            unacked_numbers: 0,
            watched: HashSet::new(),
            answered: HashSet::new(),
            to_request,
        }
    }

    pub(super) fn outstanding(&self) -> usize {
        self.unacked_numbers + self.watched.len()
    }

    pub(super) fn idle(&self) -> bool {
        self.outstanding() == 0 && self.to_request.is_empty()
    }
}

pub(super) struct JobRecord {
    pub(super) num: Num,
    /// The first answer seen.
    pub(super) verdict: Option<Verdict>,
    /// Answered "pruned" before the soak saw its verdict (its answer went to a connection a
    /// kill cut off): finished, not lost.
    pub(super) pruned: bool,
}

#[derive(Default, Debug)]
pub(super) struct Counters {
    /// Process kills after which the standby took over.
    pub(super) failovers: u64,
    pub(super) submitted: u64,
    pub(super) acked: u64,
    pub(super) results: u64,
    pub(super) wrong: u64,
    pub(super) duplicates: u64,
    /// Acked ids a Results request called unknown.
    pub(super) forgotten: u64,
    /// "Pruned" answers (to Results asked again after a kill, or in the audit).
    pub(super) pruned: u64,
    /// Valid numbers the daemon called invalid.
    pub(super) invalid_jobs: u64,
    /// Numbers the daemon did not accept for now (`Accepted::Refused`): not acked, not failed.
    pub(super) refused_jobs: u64,
    /// Numbers submitted but not acked when the daemon died.
    pub(super) unacked_at_crash: u64,
    /// `Done` for ids never acked to us (ignored, as allowed).
    pub(super) unacked_done: u64,
    pub(super) retried: u64,
    /// Poison jobs answered as quarantined (as they must be).
    pub(super) quarantined: u64,
    pub(super) max_attempts: u32,
    /// The job that took the most attempts.
    pub(super) most_attempted: String,
    pub(super) tester_kills: u64,
    pub(super) balancer_kills: u64,
    pub(super) process_kills: u64,
    pub(super) escalations: u64,
    pub(super) kills_refused: u64,
    /// Daemon restarts (after process kills and escalations).
    pub(super) restarts: u64,
}

pub(super) enum Cause {
    Killed,
    /// The connection ended though the soak did not kill the daemon.
    Lost(String),
}

/// Where the daemons run: one on its own journal, restarted in place; or a leader and a
/// standby on an etcd cluster, the standby taking over. (One per soak: its size is no matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Deployment {
    Single,
    Pair {
        cluster: Cluster,
        standby: Daemon,
        standby_dir: PathBuf,
    },
}

pub(super) struct Soak {
    pub(super) params: Params,
    pub(super) config: PathBuf,
    /// The dir of the daemon the soak talks to.
    pub(super) dir: PathBuf,
    pub(super) daemon: Daemon,
    pub(super) deployment: Deployment,
    pub(super) session: Session,
    pub(super) admin: Conn,
    pub(super) oracle: Oracle,
    pub(super) numbers: Rng,
    pub(super) chaos: Rng,
    pub(super) jobs: HashMap<JobId, JobRecord>,
    /// Acked ids still owed an answer when a kill cut their connection: only their answers
    /// can have gone unseen.
    pub(super) orphaned: HashSet<JobId>,
    pub(super) c: Counters,
    pub(super) problems: Vec<String>,
    pub(super) phase: &'static str,
}

pub(super) fn run(params: Params) {
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
    let text = if params.retention {
        format!("{CONFIG}{RETENTION}")
    } else {
        CONFIG.to_string()
    };
    std::fs::write(&config, text).expect("write the config file");
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
        orphaned: HashSet::new(),
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
pub(super) fn start_daemon(
    dir: &Path,
    config: &Path,
    testers: u32,
    journal: Option<&str>,
) -> Daemon {
    let config = config.to_str().expect("temp dir path is UTF-8");
    let poison = POISON.to_string();
    let mut args = vec!["--config", config, "--panic-on", &poison];
    match journal {
        Some(url) => {
            args.extend(["--journal", url]);
            std::fs::create_dir_all(dir).expect("daemon dir");
            Daemon::builder()
                .binary(etcd_primed())
                .dir(dir)
                .testers(testers)
                .args(&args)
                .start()
        }
        None => Daemon::builder()
            .dir(dir)
            .testers(testers)
            .args(&args)
            .start(),
    }
}

/// A cluster, a leader in `<dir>/a` and its standby in `<dir>/b`.
pub(super) fn deploy_pair(
    dir: &Path,
    config: &Path,
    testers: u32,
) -> (Daemon, Deployment, PathBuf) {
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
    pub(super) fn kills(&self) -> u64 {
        self.c.tester_kills + self.c.balancer_kills + self.c.process_kills
    }

    pub(super) fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\nphase: {}\ncounters: {:?}\nfirst problems: {:#?}\ndaemon log (last lines):\n{}",
            self.phase,
            self.c,
            self.problems,
            self.daemon.log_tail(40)
        );
    }

    pub(super) fn problem(&mut self, message: String) {
        if self.problems.len() < 50 {
            eprintln!("chaos problem: {message}");
            self.problems.push(message);
        }
    }

    /// The job stream, with kills spread over its acks.
    pub(super) fn stream(&mut self) {
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
    pub(super) fn sweep(&mut self) {
        self.phase = "sweep";
        let mut pending = self.drain_and_close();
        pending.sort_unstable();
        // Answers pushed to the closed connection are not seen: these are owed elsewhere now.
        self.orphaned.extend(pending.iter().copied());
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
    pub(super) fn audit(&mut self) {
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
        if self.params.retention {
            // The audit then meets pruned ids: each must be answered "pruned".
            self.daemon
                .wait_for("the pruner at work", |l| l["event"] == "pruned");
        }
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
    pub(super) fn drain_and_close(&mut self) -> Vec<JobId> {
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
    pub(super) fn fill_window(&mut self, submit: bool) {
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

    pub(super) fn next_number(&mut self) -> Num {
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
    pub(super) fn receive(&mut self) {
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

    pub(super) fn handle(&mut self, response: Response) {
        match response {
            Response::Accepted { items } => self.accepted(items),
            Response::Done(report) => self.done(report),
            Response::Pruned { id, reason } => self.pruned(id, &reason),
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

    pub(super) fn accepted(&mut self, items: Vec<Accepted>) {
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
                    self.jobs.insert(
                        id,
                        JobRecord {
                            num,
                            verdict: None,
                            pruned: false,
                        },
                    );
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

    /// A job answered "pruned": right only for a job acked to us and asked for here.
    pub(super) fn pruned(&mut self, id: JobId, reason: &str) {
        if !self.session.watched.remove(&id) {
            self.c.duplicates += 1;
            self.problem(format!("Pruned for id {id} never asked here: {reason}"));
            return;
        }
        self.session.answered.insert(id);
        self.c.pruned += 1;
        let orphaned = self.orphaned.contains(&id);
        let phase = self.phase;
        match self.jobs.get_mut(&id) {
            // Answered before (the audit asks again): right.
            Some(job) if job.verdict.is_some() => {}
            // Its answer went to a connection that was cut off, then was pruned: finished.
            Some(job) if orphaned => job.pruned = true,
            Some(_) => {
                self.c.forgotten += 1;
                self.problem(format!(
                    "id {id}, owed to a live connection, answered pruned ({phase})"
                ));
            }
            None => {
                self.c.forgotten += 1;
                self.problem(format!("id {id}, never acked to us, answered pruned"));
            }
        }
    }

    pub(super) fn done(&mut self, report: Report) {
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
    pub(super) fn kill(&mut self) -> bool {
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
    pub(super) fn restart(&mut self, cause: Cause) {
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
        self.orphaned.extend(orphans.iter().copied());
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
    pub(super) fn replace_daemon(&mut self) {
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

    pub(super) fn report(
        &mut self,
        oracle_time: Duration,
        stream_time: Duration,
        elapsed: Duration,
    ) {
        let lost = self
            .jobs
            .values()
            .filter(|j| j.verdict.is_none() && !j.pruned)
            .count() as u64;
        let pruned_unseen = self
            .jobs
            .values()
            .filter(|j| j.verdict.is_none() && j.pruned)
            .count() as u64;
        let results = self.jobs.values().filter(|j| j.verdict.is_some()).count() as u64;
        let c = &self.c;
        println!(
            "jobs={} acked={} results={} pruned={} lost={} wrong={} duplicates={} kills={}",
            c.submitted,
            c.acked,
            results,
            c.pruned,
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
        assert_eq!(
            results + pruned_unseen,
            c.acked,
            "results for every acked job; {verdict}"
        );
        assert_eq!(c.results, results, "first answers counted once; {verdict}");
        assert_eq!(c.invalid_jobs, 0, "valid numbers called invalid; {verdict}");
        assert_eq!(
            c.forgotten, 0,
            "acked ids called unknown or pruned unseen; {verdict}"
        );
        assert_eq!(
            self.kills(),
            self.params.kills,
            "every planned kill happened; {verdict}"
        );
    }
}
