//! The prime-tester pool: the balancer that spreads jobs by estimated load, the testers that
//! run them, and the pure load bookkeeping the balancer delegates to.

mod balancer;
mod load;
mod tester;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use balancer::{Balancer, BalancerMsg, BalancerSpec, LoadSnapshot, BALANCER, MAX_PLACED};
pub use load::LoadTable;
pub use tester::{Tester, TesterMsg, TesterSpec};

use crate::actors::Handle;
use crate::alarms::Alarms;
use crate::events::Events;
use crate::faults::Faults;
use crate::job::{Job, JobId, TesterId};
use crate::jobs::{Activity, Jobs, Placement};
use crate::stats::Stats;

/// The largest pool: slots for this many testers are kept, so a reload can grow the pool.
pub const MAX_TESTERS: u32 = 1024;

/// What every actor of the pool shares. Cloned into each child spec, so restarts reuse it.
#[derive(Clone)]
pub struct PoolContext {
    pub jobs: Arc<Jobs>,
    pub stats: Arc<Stats>,
    pub events: Arc<Events>,
    pub activity: Arc<Activity>,
    pub faults: Arc<Faults>,
    /// The pool's size now: a reload changes it, and a restarted balancer reads it.
    pub pool_size: Arc<AtomicU32>,
    /// Crashes of its testers a job may cause before it is quarantined.
    pub max_attempts: u32,
    pub alarms: Arc<Alarms>,
    /// Jobs over this many digits raise the big_job alarm while they run.
    pub big_job_digits: u64,
}

impl PoolContext {
    pub fn testers(&self) -> u32 {
        self.pool_size.load(Ordering::SeqCst)
    }
}

/// The balancer, whichever incarnation is alive.
pub const BALANCER_ACTOR: Handle<BalancerMsg> = Handle::new(BALANCER);

/// Tester `id`, whichever incarnation is alive.
pub fn tester(id: TesterId) -> Handle<TesterMsg> {
    Handle::named(id.name())
}

/// The pool's side of a job's life, through the balancer. If none is alive (it is being
/// restarted), the jobs are safe: they are journaled, and the next balancer places every job
/// in flight.
pub struct ToBalancer;

impl Placement for ToBalancer {
    fn place(&self, jobs: Vec<Job>) {
        if !jobs.is_empty() {
            BALANCER_ACTOR.send(BalancerMsg::Dispatch(jobs));
        }
    }

    fn finished(&self, id: JobId) {
        BALANCER_ACTOR.send(BalancerMsg::Done { id });
    }

    fn cancel(&self, id: JobId) {
        BALANCER_ACTOR.send(BalancerMsg::Cancel { id });
    }
}

/// Sends `job` to `tester` if it is running; gives the job back if it is not. (A tester that
/// dies with the job in its mailbox loses it too; its successor's replay reads it again.)
fn assign_to(tester_id: TesterId, job: Job) -> Option<Job> {
    match tester(tester_id).get() {
        Some(actor) => {
            let _ = actor.send_message(TesterMsg::Assign(job));
            None
        }
        None => Some(job),
    }
}
