//! In-process tests of a job's life through the real supervision tree (balancer, pool,
//! testers) on an in-memory journal: crashes of a tester and of the balancer with their
//! replays, and a cancel racing a completion.
//!
//! Actors are registered under process-wide names (`balancer`, `tester-1`, …), so these tests
//! take turns: each holds [`TURN`] while its tree runs.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;

use super::*;
use crate::alarms::Alarms;
use crate::events::Events;
use crate::faults::Faults;
use crate::job::TesterId;
use crate::journal::MemoryJournal;
use crate::pool::{self, PoolContext, ToBalancer, BALANCER, BALANCER_ACTOR, MAX_TESTERS};
use crate::protocol::Report;
use crate::stats::Stats;
use crate::supervision::{BackoffPolicy, Intensity, Supervisor, SupervisorMsg};
use crate::tree::{self, TreeOptions};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any one expected answer may take (an answer that never comes fails the test).
const PATIENCE: Duration = Duration::from_secs(30);

/// A make-prime job this big runs far longer than any test: it holds its tester until it is
/// cancelled or killed.
const FOREVER_DIGITS: u32 = 20_000;

struct Daemon {
    jobs: Arc<Jobs>,
    ctx: PoolContext,
    root: ActorRef<SupervisorMsg>,
    journal: Arc<MemoryJournal>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Daemon {
    async fn start(testers: u32) -> Daemon {
        let turn = TURN.lock().await;
        // A test that failed left its tree running.
        if let Some(previous) = crate::actors::cell(tree::ROOT) {
            let _ = previous.kill_and_wait(Some(PATIENCE)).await;
        }
        let journal = Arc::new(MemoryJournal::default());
        let activity = Arc::new(Activity::new(MAX_TESTERS));
        let admission = Admission {
            max_in_flight: u64::MAX,
            min_free_bytes: 0,
            max_digits: 100_000,
            data_dir: std::env::temp_dir(),
        };
        let jobs = Jobs::new(
            journal.clone(),
            Arc::clone(&activity),
            Arc::new(ToBalancer),
            admission,
            crate::retention::Retention::DEFAULT,
        );
        let events = Events::new(Some(journal.clone()));
        let ctx = PoolContext {
            jobs: Arc::clone(&jobs),
            stats: Arc::new(Stats::default()),
            alarms: Alarms::new(Arc::clone(&events)),
            events,
            activity,
            faults: Arc::new(Faults::default()),
            pool_size: Arc::new(AtomicU32::new(testers)),
            max_attempts: 3,
            big_job_digits: u64::MAX,
        };
        let generous = Intensity {
            max_restarts: 100,
            period: Duration::from_secs(1),
        };
        let options = TreeOptions {
            root: generous,
            tester_supervisor: generous,
            pool: generous,
            backoff: BackoffPolicy::NONE,
        };
        let built = tree::build(&ctx, &options);
        let (root, _) = Actor::spawn(Some(tree::ROOT.to_string()), Supervisor, built.root)
            .await
            .unwrap();
        Daemon {
            jobs,
            ctx,
            root,
            journal,
            _turn: turn,
        }
    }

    /// Submits `numbers` for a client waiting on `out`.
    async fn submit(&self, numbers: &[&str], out: &Waiter) {
        let numbers = numbers.iter().map(|n| n.to_string()).collect();
        let submission = self.jobs.submission(numbers).unwrap();
        self.acknowledged(submission, out).await
    }

    /// Takes a submission in as a waiting client's connection does.
    async fn acknowledged(&self, submission: Submission, out: &Waiter) {
        let intake = self.jobs.accept(submission, true);
        self.jobs.acknowledge(intake, out).await;
    }

    async fn stop(self) {
        self.root.stop_and_wait(None, Some(PATIENCE)).await.unwrap();
    }
}

/// The answers a waiting client gets: the acknowledgement's ids, then each job's report.
struct Client {
    out: Waiter,
    answers: mpsc::UnboundedReceiver<Delivery>,
}

impl Client {
    fn new() -> Client {
        let (out, answers) = mpsc::unbounded_channel();
        Client { out, answers }
    }

    async fn next(&mut self) -> Response {
        let next = tokio::time::timeout(PATIENCE, self.answers.recv()).await;
        next.expect("an answer within the patience")
            .expect("the channel stays open")
            .response
    }

    /// The ids of an acknowledgement, which must come next.
    async fn accepted(&mut self) -> Vec<JobId> {
        match self.next().await {
            Response::Accepted { items } => items
                .into_iter()
                .map(|item| match item {
                    Accepted::Job { id, .. } => id,
                    other => panic!("not accepted: {other:?}"),
                })
                .collect(),
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }

    /// The next `count` reports, by job id (a second report for one job fails the test).
    async fn reports(&mut self, count: usize) -> HashMap<JobId, Report> {
        let mut reports = HashMap::new();
        while reports.len() < count {
            match self.next().await {
                Response::Done(report) => {
                    let id = report.id;
                    assert!(
                        reports.insert(id, report).is_none(),
                        "job {id} answered twice"
                    );
                }
                other => panic!("expected a report, got {other:?}"),
            }
        }
        reports
    }

    fn nothing_more(&mut self) {
        assert!(
            self.answers.try_recv().is_err(),
            "no answer beyond those expected"
        );
    }
}

/// Submits one make-prime job that holds a tester until it is stopped, and returns its id.
async fn occupy_a_tester(daemon: &Daemon, client: &mut Client) -> JobId {
    daemon
        .acknowledged(daemon.jobs.make_prime(FOREVER_DIGITS), &client.out)
        .await;
    client.accepted().await[0]
}

/// Waits (without sleeping) until a tester runs `id`.
async fn running(daemon: &Daemon, id: JobId) -> TesterId {
    running_as(daemon, id, 1).await
}

/// Waits (without sleeping) until a tester runs attempt `attempt` (or a later one) of `id`:
/// after a kill, the killed tester's slot still shows the attempt it died in until its
/// successor takes it over.
async fn running_as(daemon: &Daemon, id: JobId, attempt: u32) -> TesterId {
    let activity = &daemon.ctx.activity;
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some((tester, ..)) = activity
                .running_jobs()
                .into_iter()
                .find(|&(_, job, running)| job == id && running >= attempt)
            {
                return tester;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the job starts")
}

/// Kills `actor` while `long` holds the only tester and `queued` jobs wait behind it; once a
/// tester runs attempt `again` of `long`, cancels it so the rest can run, and returns every
/// report.
async fn kill_then_release(
    daemon: &Daemon,
    client: &mut Client,
    actor: ractor::ActorCell,
    (long, again): (JobId, u32),
    queued: usize,
) -> HashMap<JobId, Report> {
    actor.kill_and_wait(Some(PATIENCE)).await.unwrap();
    running_as(daemon, long, again).await;
    daemon.jobs.cancel(long).await.unwrap();
    client.reports(queued + 1).await
}

/// The number of the `i`th job [`submit_many`] submits.
fn nth_number(i: usize) -> String {
    (i % crate::protocol::MAX_BATCH + 2).to_string()
}

/// Submits `total` small numbers in batches as large as a frame allows; their ids, in order.
async fn submit_many(daemon: &Daemon, client: &mut Client, total: usize) -> Vec<JobId> {
    let mut ids = Vec::with_capacity(total);
    while ids.len() < total {
        let count = crate::protocol::MAX_BATCH.min(total - ids.len());
        let numbers: Vec<String> = (ids.len()..ids.len() + count).map(nth_number).collect();
        let chunk: Vec<&str> = numbers.iter().map(String::as_str).collect();
        daemon.submit(&chunk, &client.out).await;
        ids.extend(client.accepted().await);
    }
    ids
}

/// How many jobs the balancer has placed at the testers.
async fn placed() -> u64 {
    let snapshot = BALANCER_ACTOR
        .call(pool::BalancerMsg::Snapshot, PATIENCE)
        .await
        .expect("the balancer answers");
    snapshot.testers.iter().map(|t| t.queued).sum()
}

const PRIMES: [&str; 4] = ["97", "1000000007", "18446744073709551557", "2"];
const COMPOSITES: [&str; 3] = ["91", "1000000008", "18446744073709551555"];

fn verdicts(reports: &HashMap<JobId, Report>, ids: &[JobId]) -> Vec<Verdict> {
    ids.iter().map(|id| reports[id].verdict.clone()).collect()
}

const PRIME: Verdict = Verdict::Prime;
const COMPOSITE: Verdict = Verdict::Composite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_is_acknowledged_then_answered_once() {
    let daemon = Daemon::start(2).await;
    let mut client = Client::new();
    daemon.submit(&["97", "91", "x"], &client.out).await;
    let Response::Accepted { items } = client.next().await else {
        panic!("expected an acknowledgement first");
    };
    assert!(matches!(items[2], Accepted::Invalid { .. }), "{items:?}");
    let ids: Vec<JobId> = items
        .iter()
        .filter_map(|i| match i {
            Accepted::Job { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let reports = client.reports(2).await;
    assert_eq!(verdicts(&reports, &ids), [PRIME, COMPOSITE]);
    client.nothing_more();
    assert_eq!(daemon.jobs.counts().completed, 2);
    daemon.stop().await;
}

/// A tester killed mid-job loses its queue; its successor asks the balancer for its jobs
/// again and runs them all, counting the attempt that was cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_tester_is_sent_its_jobs_again() {
    let daemon = Daemon::start(1).await;
    let mut client = Client::new();
    let long = occupy_a_tester(&daemon, &mut client).await;
    let tester = running(&daemon, long).await;
    let numbers: Vec<&str> = PRIMES.iter().chain(&COMPOSITES).copied().collect();
    daemon.submit(&numbers, &client.out).await;
    let queued = client.accepted().await;
    let actor = pool::tester(tester).get().unwrap().get_cell();
    let reports = kill_then_release(&daemon, &mut client, actor, (long, 2), queued.len()).await;
    assert_eq!(
        verdicts(&reports, &queued),
        [PRIME, PRIME, PRIME, PRIME, COMPOSITE, COMPOSITE, COMPOSITE]
    );
    assert_eq!(reports[&long].verdict, Verdict::Cancelled);
    assert_eq!(reports[&long].attempts, 2, "the killed attempt counts");
    assert_eq!(daemon.ctx.stats.get(&tester.name()).restarts(), 1);
    client.nothing_more();
    daemon.stop().await;
}

/// The balancer's load table lives only in memory: killed while jobs wait at the testers, it
/// is restarted with the pool (rest_for_one), and the new one places every job the journal has
/// in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_balancer_places_the_journals_jobs_again() {
    let daemon = Daemon::start(1).await;
    let mut client = Client::new();
    let long = occupy_a_tester(&daemon, &mut client).await;
    running(&daemon, long).await;
    daemon.submit(&COMPOSITES, &client.out).await;
    let queued = client.accepted().await;
    let actor = BALANCER_ACTOR.get().unwrap().get_cell();
    // A job stopped with its pool is not its fault: the same attempt may run again.
    let reports = kill_then_release(&daemon, &mut client, actor, (long, 1), queued.len()).await;
    assert_eq!(
        verdicts(&reports, &queued),
        [COMPOSITE, COMPOSITE, COMPOSITE]
    );
    assert_eq!(daemon.ctx.stats.get(BALANCER).restarts(), 1);
    assert_eq!(daemon.journal.counts().in_flight, 0);
    client.nothing_more();
    daemon.stop().await;
}

/// A cancel and a tester's verdict race for every job: each job is answered exactly once, and
/// a cancel succeeds exactly when `Cancelled` is the answer recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_a_completion_is_answered_once() {
    const JOBS: usize = 2000;
    let daemon = Daemon::start(2).await;
    let mut client = Client::new();
    let numbers: Vec<String> = (0..JOBS as u64)
        .map(|k| (1_000_003 + 2 * k).to_string())
        .collect();
    let submission = daemon.jobs.submission(numbers).unwrap();
    daemon.acknowledged(submission, &client.out).await;
    let ids = client.accepted().await;
    let cancels = ids.iter().map(|&id| {
        let jobs = Arc::clone(&daemon.jobs);
        tokio::spawn(async move { (id, jobs.cancel(id).await.is_ok()) })
    });
    let mut cancelled = HashMap::new();
    for cancel in cancels.collect::<Vec<_>>() {
        let (id, ok) = cancel.await.unwrap();
        cancelled.insert(id, ok);
    }
    let reports = client.reports(JOBS).await;
    for (id, report) in &reports {
        let was_cancelled = report.verdict == Verdict::Cancelled;
        assert_eq!(cancelled[id], was_cancelled, "job {id}: {report:?}");
    }
    let counts = daemon.journal.counts();
    assert_eq!((counts.in_flight, counts.completed), (0, JOBS as u64));
    client.nothing_more();
    daemon.stop().await;
}

/// Past the most jobs the testers may hold, the rest wait in the journal only, and are
/// placed, oldest first, as the queues drain: every job is still answered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_past_what_the_testers_hold_waits_in_the_journal() {
    let daemon = Daemon::start(1).await;
    let mut client = Client::new();
    let long = occupy_a_tester(&daemon, &mut client).await;
    running(&daemon, long).await;
    let total = pool::MAX_PLACED + 10_000;
    let ids = submit_many(&daemon, &mut client, total).await;
    assert_eq!(
        placed().await as usize,
        pool::MAX_PLACED,
        "the rest wait in the journal"
    );
    assert_eq!(daemon.jobs.counts().in_flight as usize, total + 1);
    daemon.jobs.cancel(long).await.unwrap();
    let reports = client.reports(total + 1).await;
    assert!(ids.iter().all(|id| reports.contains_key(id)));
    assert_eq!(
        reports[&ids[total - 1]].n,
        nth_number(total - 1),
        "the last one too"
    );
    client.nothing_more();
    assert_eq!(daemon.jobs.counts().in_flight, 0);
    daemon.stop().await;
}

/// Cancels free room too, without the completions that otherwise ask for the backlog: the jobs
/// waiting in the journal are placed once the placed ones are cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_placed_jobs_places_the_backlog() {
    let daemon = Daemon::start(1).await;
    let mut client = Client::new();
    let long = occupy_a_tester(&daemon, &mut client).await;
    running(&daemon, long).await;
    let total = pool::MAX_PLACED - 1 + 100;
    let ids = submit_many(&daemon, &mut client, total).await;
    for &id in &ids[..pool::MAX_PLACED - 1] {
        daemon.jobs.cancel(id).await.unwrap();
    }
    // The long job still holds the tester: the backlog can only be placed, not run.
    let placed = tokio::time::timeout(PATIENCE, async {
        loop {
            match placed().await {
                101 => return 101,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert_eq!(placed, Ok(101), "the long job and the 100 that waited");
    daemon.jobs.cancel(long).await.unwrap();
    let reports = client.reports(total + 1).await;
    assert!(ids[pool::MAX_PLACED - 1..]
        .iter()
        .all(|id| reports[id].verdict != Verdict::Cancelled));
    daemon.stop().await;
}
