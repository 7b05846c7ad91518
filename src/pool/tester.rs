//! A prime tester: runs its queued jobs one at a time. On start it asks the balancer for the
//! jobs it holds (its predecessor's unfinished queue). Small numbers are tested inline (well
//! under a microsecond); big ones and make-prime jobs on the blocking pool with a cancel flag,
//! so the actor stays responsive and a kill lands at once and stops the computation.
//!
//! Because one job runs at a time, a crash while job J runs is J's fault (a poison job): the
//! tester's child spec counts it against J, and quarantines J once it has crashed its testers
//! `max_attempts` times. A kill from outside is nobody's fault but the killer's.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tracing::{debug, info, warn};

use super::{BalancerMsg, PoolContext};
use crate::alarms::{AlarmGuard, BIG_JOB};
use crate::events::{Event, EventKind};
use crate::job::{Job, JobId, Task, TesterId, Verdict};
use crate::journal::JournalError;
use crate::number::Number;
use crate::primality::{is_prime_big, is_prime_u64, make_prime, Cancelled};
use crate::rng::SplitMix64;
use crate::supervision::{spawn_named, Blame, ChildExit, ChildSpec};
use crate::BoxFuture;

/// How long one message may spend on inline jobs before yielding to the mailbox.
const INLINE_SLICE: Duration = Duration::from_millis(1);

pub struct Tester;

pub enum TesterMsg {
    Assign(Job),
    /// A client cancelled `id` (its answer is already recorded): stop it, or drop it unrun.
    Cancel(JobId),
    /// Keep working through the queue (sent to itself after a time slice).
    Continue,
    /// The blocking computation of `id` ended; `Err` if it panicked.
    Finished {
        id: JobId,
        verdict: Result<Result<Verdict, Cancelled>, String>,
    },
}

pub struct TesterArgs {
    id: TesterId,
    ctx: PoolContext,
}

/// Sets the flag when dropped: when the tester dies, however abruptly, its computation stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// When a job came to the tester and when it started.
#[derive(Clone, Copy)]
struct Timing {
    waited: Duration,
    started: Instant,
}

impl Timing {
    /// Observes a finished run in the histograms of its size class.
    fn ran(self, size: &'static str) {
        crate::metrics::global().ran(size, self.waited, self.started.elapsed());
    }
}

struct Running {
    job: Job,
    timing: Timing,
    _cancel: CancelOnDrop,
    /// The big_job alarm, raised while a job over the threshold runs.
    _alarm: Option<AlarmGuard>,
}

pub struct TesterState {
    id: TesterId,
    name: String,
    ctx: PoolContext,
    /// With when each job came, for the queue-wait histogram.
    queue: VecDeque<(Job, Instant)>,
    /// Ids queued or running, so a job sent twice (placed, then replayed) is run once.
    held: HashSet<JobId>,
    running: Option<Running>,
}

impl TesterState {
    fn enqueue(&mut self, job: Job) {
        if self.held.insert(job.id) {
            self.queue.push_back((job, Instant::now()));
        }
    }

    /// Works through the queue until a big job is running, the queue is empty, the daemon is
    /// draining, or the slice is used up (then it asks itself to continue, letting other
    /// messages in).
    fn work(&mut self, myself: &ActorRef<TesterMsg>) -> Result<(), ActorProcessingErr> {
        let deadline = Instant::now() + INLINE_SLICE;
        while self.running.is_none() {
            let Some((mut job, came)) = self.queue.pop_front() else {
                return Ok(());
            };
            if !self.ctx.activity.begin(self.id, job.id, job.attempts + 1) {
                // Draining for shutdown: the job stays journaled and replays on the next start.
                self.queue.push_front((job, came));
                return Ok(());
            }
            let started = Instant::now();
            let timing = Timing {
                waited: started.saturating_duration_since(came),
                started,
            };
            // Not journaled here (a write per job would cost a fifth of the journal's
            // throughput): a crash records the attempt that was running (see `exited`).
            job.attempts += 1;
            if let Task::Test(n) = &job.task {
                self.ctx.faults.before_testing(n);
            }
            match &job.task {
                Task::Test(Number::Small(n)) => {
                    debug!(actor = %self.name, job = job.id, attempt = job.attempts, "testing");
                    let prime = is_prime_u64(*n);
                    timing.ran("u64");
                    self.finish(job, Verdict::tested(prime))?;
                }
                _ => self.spawn_blocking(job, timing, myself),
            }
            if Instant::now() >= deadline && self.running.is_none() && !self.queue.is_empty() {
                myself.send_message(TesterMsg::Continue)?;
                return Ok(());
            }
        }
        Ok(())
    }

    fn spawn_blocking(&mut self, job: Job, timing: Timing, myself: &ActorRef<TesterMsg>) {
        // Decimal conversion of a big number is not free: once per job start.
        let digits = job.task.digits();
        info!(actor = %self.name, job = job.id, attempt = job.attempts, digits,
              event = "job_start", "running a big job");
        let cancel = Arc::new(AtomicBool::new(false));
        let (flag, task, id, reply) = (
            Arc::clone(&cancel),
            job.task.clone(),
            job.id,
            myself.clone(),
        );
        let computation = tokio::task::spawn_blocking(move || compute(&task, &flag));
        tokio::spawn(async move {
            // A panic in the computation is this tester's crash, not a silent stall.
            let verdict = computation.await.map_err(|e| e.to_string());
            // A dead tester cannot take the answer; its successor recomputes it.
            let _ = reply.send_message(TesterMsg::Finished { id, verdict });
        });
        let alarm = self.big_job_alarm(&job, digits);
        self.running = Some(Running {
            job,
            timing,
            _cancel: CancelOnDrop(cancel),
            _alarm: alarm,
        });
    }

    fn big_job_alarm(&self, job: &Job, digits: u64) -> Option<AlarmGuard> {
        let limit = self.ctx.big_job_digits;
        (digits > limit).then(|| {
            let detail = format!(
                "{} runs job {} ({}), over alarms.big_job_digits = {limit}",
                self.name,
                job.id,
                job.task.summary(digits)
            );
            AlarmGuard::set(&self.ctx.alarms, BIG_JOB, &self.name, detail, Some(job.id))
        })
    }

    /// Records the verdict, and only then counts the tester idle: a shutdown's drain waits for
    /// running jobs to end, and must find this one's answer published when it does.
    fn finish(&mut self, job: Job, verdict: Verdict) -> Result<(), ActorProcessingErr> {
        self.held.remove(&job.id);
        let recorded = record(&self.ctx, self.id, job.id, verdict, job.attempts);
        // Ended whether or not it was recorded: a journal that fails is not the job's fault.
        self.ctx.activity.end(self.id);
        Ok(recorded?)
    }

    /// Drops a cancelled job: stops it if it runs (dropping `Running` sets its cancel flag, and
    /// its late `Finished` no longer matches), or takes it out of the queue.
    fn cancel(&mut self, id: JobId) {
        if !self.held.remove(&id) {
            return;
        }
        if self.running.take_if(|r| r.job.id == id).is_some() {
            self.ctx.activity.end(self.id);
        } else {
            self.queue.retain(|(job, _)| job.id != id);
        }
        info!(actor = %self.name, job = id, event = "cancelled", "stopped a cancelled job");
    }

    fn finished(
        &mut self,
        id: JobId,
        verdict: Result<Result<Verdict, Cancelled>, String>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(running) = self.running.take_if(|r| r.job.id == id) else {
            return Ok(());
        };
        match verdict {
            Ok(Ok(verdict)) => {
                running
                    .timing
                    .ran(crate::metrics::size_class(&running.job.task));
                self.finish(running.job, verdict)
            }
            Ok(Err(Cancelled)) => {
                self.ctx.activity.end(self.id);
                Err(format!("job {id} was cancelled while its tester lived").into())
            }
            Err(panic) => Err(format!("testing job {id} panicked: {panic}").into()),
        }
    }
}

/// The work of a job that runs on the blocking pool.
fn compute(task: &Task, cancel: &AtomicBool) -> Result<Verdict, Cancelled> {
    match task {
        Task::Test(Number::Big(n)) => is_prime_big(n, cancel).map(Verdict::tested),
        Task::Test(Number::Small(n)) => Ok(Verdict::tested(is_prime_u64(*n))),
        Task::MakePrime { digits } => {
            let mut rng = SplitMix64::from_entropy();
            let prime = make_prime(*digits, &mut || rng.next_u64(), cancel)?;
            Ok(Verdict::Made {
                prime: prime.to_string(),
            })
        }
    }
}

/// Records a job's verdict through the intake, counting it for `tester` if it was the first.
fn record(
    ctx: &PoolContext,
    tester: TesterId,
    id: JobId,
    verdict: Verdict,
    attempts: u32,
) -> Result<(), JournalError> {
    if ctx.jobs.finish(id, verdict, attempts)? {
        ctx.stats.record_completed(&tester.name());
    }
    Ok(())
}

pub struct TesterSpec {
    pub id: TesterId,
    pub ctx: PoolContext,
}

impl TesterSpec {
    /// Counts a crash against the job that was running, and quarantines the job once it has
    /// used up its attempts. False if the fault could not be recorded (then the tester takes
    /// the blame: a journal failure is not the job's doing).
    fn blame(&self, job: JobId, attempt: u32, reason: &str) -> bool {
        let (ctx, actor) = (&self.ctx, self.id.name());
        let faults = match ctx.jobs.fault(job) {
            Ok(faults) => faults,
            Err(e) => {
                warn!(actor = %actor, job, reason = %e, "cannot record a fault of a job");
                return false;
            }
        };
        warn!(actor = %actor, job, attempt, faults, reason, event = "poison",
              "the tester crashed while testing this job");
        ctx.events.record(
            Event::new(EventKind::Poison, &actor)
                .job(job, attempt)
                .reason(reason),
        );
        if faults >= ctx.max_attempts {
            let reason =
                format!("its tester crashed {faults} times while testing it; last: {reason}");
            warn!(actor = %actor, job, attempt, reason = %reason, event = "quarantine",
                  "job quarantined");
            ctx.events.record(
                Event::new(EventKind::Quarantine, &actor)
                    .job(job, attempt)
                    .reason(&reason),
            );
            let verdict = Verdict::Quarantined { reason };
            if let Err(e) = record(ctx, self.id, job, verdict, attempt) {
                warn!(actor = %actor, job, reason = %e, "cannot quarantine a job");
            }
        }
        true
    }
}

impl ChildSpec for TesterSpec {
    fn name(&self) -> String {
        self.id.name()
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
        let args = TesterArgs {
            id: self.id,
            ctx: self.ctx.clone(),
        };
        let name = self.id.name();
        let injected =
            self.ctx.faults.fails_restart(self.id) && self.ctx.stats.get(&name).starts > 0;
        Box::pin(async move {
            if injected {
                return Err(SpawnErr::StartupFailed(
                    format!("fault injection: {name} fails every restart").into(),
                ));
            }
            spawn_named(name, Tester, args, supervisor).await
        })
    }

    fn exited(&self, exit: ChildExit<'_>) -> Blame {
        let running = self.ctx.activity.take(self.id);
        if let Some((job, attempt)) = running {
            // The successor replays the job: it must know this attempt happened.
            if let Err(e) = self.ctx.jobs.attempted(job, attempt) {
                warn!(actor = %self.id, job, reason = %e, "cannot record an attempt");
            }
        }
        match running {
            Some((job, attempt)) if exit.failed && self.blame(job, attempt, exit.reason) => {
                Blame::Input
            }
            _ => Blame::Child,
        }
    }
}

impl Actor for Tester {
    type Msg = TesterMsg;
    type State = TesterState;
    type Arguments = TesterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        TesterArgs { id, ctx }: TesterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A predecessor stopped by its supervisor (not crashed) leaves its slot set.
        ctx.activity.take(id);
        // Our name is registered by now, so nothing the balancer sends from here on is lost;
        // what it sent our predecessor, it sends again. A balancer that is down places every
        // job in flight when it starts, which happens before the pool is started again.
        super::BALANCER_ACTOR.send(BalancerMsg::Replay(id));
        Ok(TesterState {
            id,
            name: id.name(),
            ctx,
            queue: VecDeque::new(),
            held: HashSet::new(),
            running: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.work(&myself)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TesterMsg::Assign(job) => state.enqueue(job),
            TesterMsg::Cancel(id) => state.cancel(id),
            TesterMsg::Continue => {}
            TesterMsg::Finished { id, verdict } => state.finished(id, verdict)?,
        }
        state.work(&myself)
    }
}
