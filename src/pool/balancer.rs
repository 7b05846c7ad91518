//! The load balancer: receives every new job and queues it at the least-loaded tester. Its
//! load table (which tester holds which job) lives only in memory: on start it places every
//! job the journal has in flight, and a (re)started tester asks it for its jobs again.
//!
//! The replay is streamed: once the first tester asks for its jobs (the pool starts after the
//! balancer), the journal is read a chunk per message, so testers start on the first jobs (and
//! new submissions are placed) while a long backlog is still being read.
//!
//! At most [`MAX_PLACED`] jobs are placed at once. Beyond that a job stays in the journal only
//! (it is there already, durable or about to be), and the balancer reads it back, oldest
//! first, as the queues drain: the same streamed read as the replay. A million jobs in flight
//! then cost their journal records, not a copy in a queue and in the load table each.

use std::collections::{HashMap, HashSet};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tracing::info;

use super::load::{LoadTable, TesterLoad};
use super::{assign_to, PoolContext, TesterMsg};
use crate::events::{Event, EventKind};
use crate::job::{Job, JobId, TesterId};
use crate::journal::InFlightIter;
use crate::supervision::{spawn_named, ChildSpec};
use crate::BoxFuture;

pub const BALANCER: &str = "balancer";

pub struct Balancer;

pub enum BalancerMsg {
    Dispatch(Vec<Job>),
    /// A tester finished `id` (reported whether or not it was the first to).
    Done {
        id: JobId,
    },
    /// A client cancelled `id` (its answer is recorded): forget it, and stop it at its tester.
    Cancel {
        id: JobId,
    },
    /// A tester (re)started: send it again every job it holds.
    Replay(TesterId),
    Snapshot(RpcReplyPort<LoadSnapshot>),
    /// Which tester holds each job (`None`: not placed, or done).
    Holders(Vec<JobId>, RpcReplyPort<Vec<Option<TesterId>>>),
    /// Place the next chunk of the journal's jobs in flight (sent to itself).
    ReplayMore,
    /// The pool now has this many testers: jobs of removed testers are placed again.
    Resize(u32, RpcReplyPort<()>),
}

/// Jobs placed per `ReplayMore`: small enough that other messages wait at most a few ms.
const REPLAY_CHUNK: usize = 4096;
/// Most jobs placed at the testers at once (a second or more of small jobs for the pool).
pub const MAX_PLACED: usize = 65_536;

/// Whether a job handed to the balancer waits in the journal instead of being placed: behind a
/// read of the journal that will reach it (first come, first placed), or when the testers hold
/// all they may. A job below the read's position (another daemon's, seen late) is placed.
fn defers(id: JobId, placed: usize, scan_next: Option<JobId>) -> bool {
    match scan_next {
        Some(next) => id >= next,
        None => placed >= MAX_PLACED,
    }
}

/// A read of the journal's jobs in flight, placing them as room frees.
struct Scan {
    jobs: InFlightIter,
    /// The first id not read yet.
    next: JobId,
    /// The highest id deferred to this read: a read that ends before it starts again there.
    deferred: JobId,
    placed: u64,
    /// Whether this is the replay of a (re)started balancer (logged when done).
    replay: bool,
}

#[derive(Debug, Clone)]
pub struct LoadSnapshot {
    pub testers: Vec<TesterLoad>,
}

pub struct BalancerState {
    ctx: PoolContext,
    table: LoadTable,
    /// Jobs placed at a tester that was not running: handed over when it asks (no journal
    /// read needed, which matters when a whole backlog is placed before the pool starts).
    undelivered: HashMap<TesterId, Vec<Job>>,
    /// The journal's jobs in flight still to be placed.
    scan: Option<Scan>,
    /// Whether placing them has begun (on the first tester's request).
    streaming: bool,
    /// Whether a `ReplayMore` is on its way.
    refill_queued: bool,
    /// Jobs cancelled or finished before the read reached them: a read may hand out what it
    /// saw before their answer was recorded (the memory and etcd journals read ahead), and a
    /// job placed after its cancel was dropped would hold its tester for nothing, for ever if
    /// it is a make-prime that cannot finish. At most the jobs in flight; cleared with the read.
    ended_ahead: HashSet<JobId>,
}

impl BalancerState {
    /// Queues `job` at the least-loaded tester. If the tester is down the message is lost,
    /// but not the job: the table holds it, and the tester's successor asks for it.
    fn place(&mut self, job: Job) -> Result<(), ActorProcessingErr> {
        if self.table.holds(job.id) {
            return Ok(());
        }
        let scan_next = self.scan.as_ref().map(|scan| scan.next);
        if defers(job.id, self.table.placed(), scan_next) {
            let ctx = &self.ctx;
            let scan = self.scan.get_or_insert_with(|| Scan {
                jobs: ctx.jobs.in_flight_from(job.id),
                next: job.id,
                deferred: job.id,
                placed: 0,
                replay: false,
            });
            scan.deferred = scan.deferred.max(job.id);
            return Ok(());
        }
        self.assign(job)
    }

    /// Queues `job` at the least-loaded tester.
    fn assign(&mut self, job: Job) -> Result<(), ActorProcessingErr> {
        let tester = self
            .table
            .least_loaded()
            .ok_or("the tester pool is empty")?;
        self.table.assign(job.id, tester, job.task.cost());
        if let Some(job) = assign_to(tester, job) {
            self.undelivered.entry(tester).or_default().push(job);
        }
        Ok(())
    }

    /// Resizes the table; the jobs of removed testers (queued or running there, and those
    /// never delivered) are placed at the testers that remain.
    fn resize(&mut self, testers: u32) -> Result<(), ActorProcessingErr> {
        let orphans = self.table.resize(testers);
        let mut buffered: HashMap<JobId, Job> = HashMap::new();
        self.undelivered.retain(|tester, jobs| {
            let removed = tester.0 > testers;
            if removed {
                buffered.extend(jobs.drain(..).map(|job| (job.id, job)));
            }
            !removed
        });
        let count = orphans.len();
        for id in orphans {
            let job = match buffered.remove(&id) {
                Some(job) => Some(job),
                None => self.ctx.jobs.pending(id)?,
            };
            if let Some(job) = job {
                self.place(job)?;
            }
        }
        info!(
            actor = BALANCER,
            testers,
            jobs = count,
            event = "handed_back",
            "placed the jobs of removed testers again"
        );
        Ok(())
    }

    /// Forgets `id`, which has its answer, or keeps the read ahead from placing it.
    fn ended(&mut self, id: JobId) {
        if self.table.holds(id) {
            self.table.remove(id);
        } else if self.scan.as_ref().is_some_and(|scan| id >= scan.next) {
            self.ended_ahead.insert(id);
        }
    }

    fn cancel(&mut self, id: JobId) {
        let Some(tester) = self.table.holder(id) else {
            self.ended(id);
            return;
        };
        self.table.remove(id);
        if let Some(jobs) = self.undelivered.get_mut(&tester) {
            jobs.retain(|job| job.id != id);
        }
        super::tester(tester).send(TesterMsg::Cancel(id));
    }

    /// Places the next chunk of the journal's jobs in flight, as far as there is room; true if
    /// there is more, and room for it now.
    fn refill(&mut self) -> Result<bool, ActorProcessingErr> {
        let Some(mut scan) = self.scan.take() else {
            return Ok(false);
        };
        let mut in_chunk = 0;
        let mut restarted = false;
        while in_chunk < REPLAY_CHUNK && self.table.placed() < MAX_PLACED {
            let Some(entry) = scan.jobs.next() else {
                // Jobs deferred after the read began may lie past where it ended.
                if scan.deferred >= scan.next && !restarted {
                    scan.jobs = self.ctx.jobs.in_flight_from(scan.next);
                    restarted = true;
                    continue;
                }
                self.scan_done(&scan);
                self.ended_ahead.clear();
                return Ok(false);
            };
            let job = entry?.job;
            scan.next = job.id.saturating_add(1);
            scan.placed += 1;
            in_chunk += 1;
            if !self.table.holds(job.id) && !self.ended_ahead.remove(&job.id) {
                self.assign(job)?;
            }
        }
        self.scan = Some(scan);
        Ok(self.table.placed() < MAX_PLACED)
    }

    fn scan_done(&self, scan: &Scan) {
        if !scan.replay {
            return;
        }
        info!(
            actor = BALANCER,
            jobs = scan.placed,
            event = "replay",
            "placed every job in flight"
        );
        self.ctx
            .events
            .record(Event::new(EventKind::Replay, BALANCER).count(scan.placed));
    }

    /// Asks itself to place more of the backlog, if there is one and the queues have drained
    /// to half of what they may hold.
    fn refill_soon(&mut self, myself: &ActorRef<BalancerMsg>) -> Result<(), ActorProcessingErr> {
        let due = self.streaming && self.scan.is_some() && self.table.placed() <= MAX_PLACED / 2;
        if due && !self.refill_queued {
            self.refill_queued = true;
            myself.send_message(BalancerMsg::ReplayMore)?;
        }
        Ok(())
    }

    /// Sends `tester` every job it holds that is still in flight (reading each from the
    /// journal: a restart is rare, and the table stays small without the numbers).
    fn replay(&mut self, tester: TesterId) -> Result<(), ActorProcessingErr> {
        let undelivered = self.undelivered.remove(&tester).unwrap_or_default();
        let buffered: HashSet<JobId> = undelivered.iter().map(|job| job.id).collect();
        let mut sent = 0u64;
        let mut send = |job| {
            sent += 1;
            assign_to(tester, job)
        };
        // A job may have been finished meanwhile (by another incarnation): skip it.
        for job in undelivered
            .into_iter()
            .filter(|job| self.table.holds(job.id))
        {
            send(job);
        }
        for id in self.table.held_by(tester) {
            if buffered.contains(&id) {
                continue;
            }
            match self.ctx.jobs.pending(id)? {
                Some(job) => {
                    send(job);
                }
                None => {
                    self.table.remove(id);
                }
            }
        }
        let actor = tester.name();
        info!(actor = %actor, jobs = sent, event = "replay", "replaying unfinished jobs");
        self.ctx
            .events
            .record(Event::new(EventKind::Replay, &actor).count(sent));
        Ok(())
    }
}

pub struct BalancerSpec {
    pub ctx: PoolContext,
}

impl ChildSpec for BalancerSpec {
    fn name(&self) -> String {
        BALANCER.to_string()
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
        let ctx = self.ctx.clone();
        Box::pin(async move { spawn_named(BALANCER.to_string(), Balancer, ctx, supervisor).await })
    }
}

impl Actor for Balancer {
    type Msg = BalancerMsg;
    type State = BalancerState;
    type Arguments = PoolContext;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: PoolContext,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = BalancerState {
            table: LoadTable::new(ctx.testers()),
            ctx,
            undelivered: HashMap::new(),
            scan: None,
            streaming: false,
            refill_queued: false,
            ended_ahead: HashSet::new(),
        };
        state.scan = Some(Scan {
            jobs: state.ctx.jobs.in_flight(),
            next: 0,
            deferred: 0,
            placed: 0,
            replay: true,
        });
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BalancerMsg::ReplayMore => {
                state.refill_queued = false;
                // A message to itself runs again at once on this worker: let the rest of
                // the tree (the pool starting up) have its turn first.
                tokio::task::yield_now().await;
                if state.refill()? {
                    state.refill_queued = true;
                    myself.send_message(BalancerMsg::ReplayMore)?;
                }
            }
            BalancerMsg::Dispatch(jobs) => {
                for job in jobs {
                    state.place(job)?;
                }
                state.refill_soon(&myself)?;
            }
            BalancerMsg::Replay(tester) => {
                state.replay(tester)?;
                // The pool is up (it starts after us): time to place the journal's backlog.
                state.streaming = true;
                state.refill_soon(&myself)?;
            }
            BalancerMsg::Holders(ids, reply) => {
                let _ = reply.send(ids.iter().map(|&id| state.table.holder(id)).collect());
            }
            BalancerMsg::Done { id } => {
                state.ended(id);
                state.refill_soon(&myself)?;
            }
            // Either frees room: a cancel without the `Done` that would ask for the backlog.
            BalancerMsg::Cancel { id } => {
                state.cancel(id);
                state.refill_soon(&myself)?;
            }
            BalancerMsg::Resize(testers, reply) => {
                state.resize(testers)?;
                state.refill_soon(&myself)?;
                let _ = reply.send(());
            }
            BalancerMsg::Snapshot(reply) => {
                let _ = reply.send(LoadSnapshot {
                    testers: state.table.loads().to_vec(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_waits_behind_a_read_that_will_reach_it_or_when_the_testers_are_full() {
        assert!(!defers(7, 0, None));
        assert!(defers(7, MAX_PLACED, None), "full: it waits in the journal");
        assert!(defers(7, 0, Some(5)), "first come, first placed");
        assert!(defers(5, 0, Some(5)));
        assert!(
            !defers(4, MAX_PLACED, Some(5)),
            "behind the read: placed, or it would never be"
        );
    }
}
