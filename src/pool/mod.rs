//! The prime-tester pool: the balancer that spreads jobs by estimated load, the testers that
//! run them, and the pure load bookkeeping the balancer delegates to.

mod activity;
mod balancer;
mod load;
mod tester;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use activity::Activity;
pub use balancer::{Balancer, BalancerMsg, BalancerSpec, LoadSnapshot, BALANCER};
pub use load::LoadTable;
pub use tester::{Tester, TesterMsg, TesterSpec};

use crate::alarms::Alarms;
use crate::events::Events;
use crate::faults::Faults;
use crate::job::{Job, TesterId};
use crate::journal::Journal;
use crate::outcomes::Outcomes;
use crate::stats::Stats;

/// The largest pool: slots for this many testers are kept, so a reload can grow the pool.
pub const MAX_TESTERS: u32 = 1024;

/// What every actor of the pool shares. Cloned into each child spec, so restarts reuse it.
#[derive(Clone)]
pub struct PoolContext {
    pub journal: Arc<dyn Journal>,
    pub stats: Arc<Stats>,
    pub outcomes: Arc<Outcomes>,
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

/// Hands new jobs to the balancer, whichever incarnation is alive. If none is (it is being
/// restarted), the jobs are safe: they are journaled and the next balancer picks them up.
pub fn dispatch(jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    if let Some(cell) = ractor::registry::where_is(BALANCER) {
        let _ =
            ractor::ActorRef::<BalancerMsg>::from(cell).send_message(BalancerMsg::Dispatch(jobs));
    }
}

/// Sends `job` to `tester` if it is running; gives the job back if it is not. (A tester that
/// dies with the job in its mailbox loses it too; its successor's replay reads it again.)
fn assign_to(tester: TesterId, job: Job) -> Option<Job> {
    match ractor::registry::where_is(tester.name()) {
        Some(cell) => {
            let _ = ractor::ActorRef::<TesterMsg>::from(cell).send_message(TesterMsg::Assign(job));
            None
        }
        None => Some(job),
    }
}
