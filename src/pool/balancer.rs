//! The load balancer: receives every new job and queues it at the least-loaded tester. Its
//! load table lives only in memory; on start it is rebuilt from the journal, and jobs that no
//! tester holds (accepted while the balancer was down) are placed then.

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tracing::info;

use super::load::{LoadTable, TesterLoad};
use super::{send_to_tester, PoolContext, TesterMsg};
use crate::job::{Job, JobId, TesterId};
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
    Snapshot(RpcReplyPort<LoadSnapshot>),
}

#[derive(Debug, Clone)]
pub struct LoadSnapshot {
    pub testers: Vec<TesterLoad>,
}

pub struct BalancerState {
    ctx: PoolContext,
    table: LoadTable,
}

impl BalancerState {
    /// Queues `job` at the least-loaded tester, journaling the assignment before sending it, so
    /// that a tester which dies before receiving it finds it on replay.
    fn place(&mut self, job: Job, from: Option<TesterId>) -> Result<(), ActorProcessingErr> {
        if self.table.holds(job.id) {
            return Ok(());
        }
        let tester = self
            .table
            .least_loaded()
            .ok_or("the tester pool is empty")?;
        self.ctx
            .journal
            .assign(job.id, from, tester, job.attempts)?;
        self.table.assign(job.id, tester, job.n.cost());
        send_to_tester(tester, TesterMsg::Assign(job));
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
            table: LoadTable::new(ctx.testers),
            ctx,
        };
        let mut orphans = Vec::new();
        let mut held = 0u64;
        for entry in state.ctx.journal.in_flight() {
            let in_flight = entry?;
            let cost = in_flight.job.n.cost();
            match in_flight.tester {
                Some(t) if state.table.assign(in_flight.job.id, t, cost) => held += 1,
                from => orphans.push((in_flight.job, from)),
            }
        }
        info!(
            actor = BALANCER,
            jobs = held,
            unassigned = orphans.len(),
            event = "replay",
            "rebuilt load table from the journal"
        );
        for (job, from) in orphans {
            state.place(job, from)?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BalancerMsg::Dispatch(jobs) => {
                for job in jobs {
                    state.place(job, None)?;
                }
            }
            BalancerMsg::Done { id } => {
                state.table.remove(id);
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
