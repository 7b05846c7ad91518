//! The load balancer: receives every new job and queues it at the least-loaded tester. Its
//! load table (which tester holds which job) lives only in memory: on start it places every
//! job the journal has in flight, and a (re)started tester asks it for its jobs again.
//!
//! The replay is streamed: once the first tester asks for its jobs (the pool starts after the
//! balancer), the journal is read a chunk per message, so testers start on the first jobs (and
//! new submissions are placed) while a long backlog is still being read.

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
    /// The journal's jobs in flight still to be placed, and how many were placed so far.
    replaying: Option<(InFlightIter, u64)>,
    /// Whether placing them has begun (on the first tester's request).
    streaming: bool,
}

impl BalancerState {
    /// Queues `job` at the least-loaded tester. If the tester is down the message is lost,
    /// but not the job: the table holds it, and the tester's successor asks for it.
    fn place(&mut self, job: Job) -> Result<(), ActorProcessingErr> {
        if self.table.holds(job.id) {
            return Ok(());
        }
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

    fn cancel(&mut self, id: JobId) {
        let Some(tester) = self.table.holder(id) else {
            return;
        };
        self.table.remove(id);
        if let Some(jobs) = self.undelivered.get_mut(&tester) {
            jobs.retain(|job| job.id != id);
        }
        super::tester(tester).send(TesterMsg::Cancel(id));
    }

    /// Places the next chunk of the journal's jobs in flight; false once all are placed.
    fn replay_chunk(&mut self) -> Result<bool, ActorProcessingErr> {
        let Some((mut jobs, mut placed)) = self.replaying.take() else {
            return Ok(false);
        };
        let mut in_chunk = 0;
        for entry in jobs.by_ref().take(REPLAY_CHUNK) {
            self.place(entry?.job)?;
            in_chunk += 1;
        }
        placed += in_chunk as u64;
        if in_chunk == REPLAY_CHUNK {
            self.replaying = Some((jobs, placed));
            return Ok(true);
        }
        info!(
            actor = BALANCER,
            jobs = placed,
            event = "replay",
            "placed every job in flight"
        );
        self.ctx
            .events
            .record(Event::new(EventKind::Replay, BALANCER).count(placed));
        Ok(false)
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
            replaying: None,
            streaming: false,
        };
        state.replaying = Some((state.ctx.jobs.in_flight(), 0));
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
                // A message to itself runs again at once on this worker: let the rest of
                // the tree (the pool starting up) have its turn first.
                tokio::task::yield_now().await;
                if state.replay_chunk()? {
                    myself.send_message(BalancerMsg::ReplayMore)?;
                }
            }
            BalancerMsg::Dispatch(jobs) => {
                for job in jobs {
                    state.place(job)?;
                }
            }
            BalancerMsg::Replay(tester) => {
                state.replay(tester)?;
                // The pool is up (it starts after us): time to place the journal's backlog.
                if !state.streaming && state.replaying.is_some() {
                    state.streaming = true;
                    myself.send_message(BalancerMsg::ReplayMore)?;
                }
            }
            BalancerMsg::Holders(ids, reply) => {
                let _ = reply.send(ids.iter().map(|&id| state.table.holder(id)).collect());
            }
            BalancerMsg::Done { id } => {
                state.table.remove(id);
            }
            BalancerMsg::Cancel { id } => state.cancel(id),
            BalancerMsg::Resize(testers, reply) => {
                state.resize(testers)?;
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
