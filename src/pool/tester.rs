//! A prime tester: runs its queued jobs one at a time. On start it replays the jobs the journal
//! says are assigned to it. Small numbers are tested inline (well under a microsecond); big ones
//! on the blocking pool with a cancel flag, so the actor stays responsive and a kill lands at
//! once and stops the computation.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tracing::{debug, info};

use super::{BalancerMsg, PoolContext, BALANCER};
use crate::job::{Job, JobId, TesterId};
use crate::journal::Completion;
use crate::number::Number;
use crate::primality::{is_prime_big, is_prime_u64, Cancelled};
use crate::supervision::{spawn_named, ChildSpec};
use crate::BoxFuture;

/// How long one message may spend on inline jobs before yielding to the mailbox.
const INLINE_SLICE: Duration = Duration::from_millis(1);

pub struct Tester;

pub enum TesterMsg {
    Assign(Job),
    /// Keep working through the queue (sent to itself after a time slice).
    Continue,
    /// The blocking computation of `id` ended; `Err` if it panicked.
    Finished {
        id: JobId,
        verdict: Result<Result<bool, Cancelled>, String>,
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

struct Running {
    job: Job,
    _cancel: CancelOnDrop,
}

pub struct TesterState {
    id: TesterId,
    name: String,
    ctx: PoolContext,
    queue: VecDeque<Job>,
    /// Ids queued or running, so a job both replayed and re-sent is run once.
    held: HashSet<JobId>,
    running: Option<Running>,
}

impl TesterState {
    fn enqueue(&mut self, job: Job) {
        if self.held.insert(job.id) {
            self.queue.push_back(job);
        }
    }

    /// Works through the queue until a big job is running, the queue is empty, or the slice
    /// is used up (then it asks itself to continue, letting other messages in).
    fn work(&mut self, myself: &ActorRef<TesterMsg>) -> Result<(), ActorProcessingErr> {
        let deadline = Instant::now() + INLINE_SLICE;
        while self.running.is_none() {
            let Some(mut job) = self.queue.pop_front() else {
                return Ok(());
            };
            job.attempts += 1;
            self.ctx.journal.start(job.id, self.id, job.attempts)?;
            match &job.n {
                Number::Small(n) => {
                    debug!(actor = %self.name, job = job.id, attempt = job.attempts, "testing");
                    let prime = is_prime_u64(*n);
                    self.finish(job, prime)?;
                }
                Number::Big(_) => self.spawn_big(job, myself),
            }
            if Instant::now() >= deadline && self.running.is_none() && !self.queue.is_empty() {
                myself.send_message(TesterMsg::Continue)?;
                return Ok(());
            }
        }
        Ok(())
    }

    fn spawn_big(&mut self, job: Job, myself: &ActorRef<TesterMsg>) {
        info!(actor = %self.name, job = job.id, attempt = job.attempts, bits = job.n.bits(),
              event = "job_start", "testing a big number");
        let cancel = Arc::new(AtomicBool::new(false));
        let (flag, n, id, reply) = (Arc::clone(&cancel), job.n.clone(), job.id, myself.clone());
        let computation = tokio::task::spawn_blocking(move || match &n {
            Number::Big(big) => is_prime_big(big, &flag),
            Number::Small(small) => Ok(is_prime_u64(*small)),
        });
        tokio::spawn(async move {
            // A panic in the computation is this tester's crash, not a silent stall.
            let verdict = computation.await.map_err(|e| e.to_string());
            // A dead tester cannot take the answer; its successor recomputes it.
            let _ = reply.send_message(TesterMsg::Finished { id, verdict });
        });
        self.running = Some(Running {
            job,
            _cancel: CancelOnDrop(cancel),
        });
    }

    fn finish(&mut self, job: Job, prime: bool) -> Result<(), ActorProcessingErr> {
        let (completion, ticket) =
            self.ctx
                .journal
                .complete(job.id, self.id, prime, job.attempts)?;
        self.held.remove(&job.id);
        let result = match completion {
            Completion::Recorded(result) => {
                self.ctx.stats.record_completed(&self.name);
                result
            }
            Completion::AlreadyRecorded(result) => result,
        };
        self.ctx.outcomes.publish(ticket, result);
        if let Some(cell) = ractor::registry::where_is(BALANCER) {
            let _ =
                ActorRef::<BalancerMsg>::from(cell).send_message(BalancerMsg::Done { id: job.id });
        }
        Ok(())
    }

    fn finished(
        &mut self,
        id: JobId,
        verdict: Result<Result<bool, Cancelled>, String>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(running) = self.running.take_if(|r| r.job.id == id) else {
            return Ok(());
        };
        match verdict {
            Ok(Ok(prime)) => self.finish(running.job, prime),
            Ok(Err(Cancelled)) => {
                Err(format!("job {id} was cancelled while its tester lived").into())
            }
            Err(panic) => Err(format!("testing job {id} panicked: {panic}").into()),
        }
    }
}

pub struct TesterSpec {
    pub id: TesterId,
    pub ctx: PoolContext,
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
        Box::pin(async move { spawn_named(args.id.name(), Tester, args, supervisor).await })
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
        let replay = ctx.journal.assigned_to(id)?;
        let name = id.name();
        info!(actor = %name, jobs = replay.len(), event = "replay", "replaying unfinished jobs");
        let mut state = TesterState {
            id,
            name,
            ctx,
            queue: VecDeque::with_capacity(replay.len()),
            held: HashSet::with_capacity(replay.len()),
            running: None,
        };
        replay.into_iter().for_each(|job| state.enqueue(job));
        Ok(state)
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
            TesterMsg::Continue => {}
            TesterMsg::Finished { id, verdict } => state.finished(id, verdict)?,
        }
        state.work(&myself)
    }
}
