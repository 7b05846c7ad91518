//! The supervision tree of *Programming Erlang* chapter 23, as child specs:
//!
//! ```text
//! root                 one_for_one
//! └── tester_supervisor  rest_for_one: if the balancer dies, the pool restarts too
//!     ├── balancer
//!     └── pool           one_for_one
//!         └── tester-1 … tester-N
//! ```

use std::sync::Arc;

use crate::job::TesterId;
use crate::pool::{BalancerSpec, PoolContext, TesterSpec};
use crate::supervision::{BackoffPolicy, ChildSpec, Intensity, Strategy, SupervisorSpec};

pub const ROOT: &str = "root";
pub const TESTER_SUPERVISOR: &str = "tester_supervisor";
pub const POOL: &str = "pool";

/// Restart intensities (one per supervisor) and the backoff they all use.
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    pub root: Intensity,
    pub tester_supervisor: Intensity,
    pub pool: Intensity,
    pub backoff: BackoffPolicy,
}

pub fn root_spec(ctx: &PoolContext, options: &TreeOptions) -> SupervisorSpec {
    let supervisor = |name: &str, strategy, intensity, children| SupervisorSpec {
        name: name.to_string(),
        strategy,
        intensity,
        backoff: options.backoff,
        children,
        stats: Arc::clone(&ctx.stats),
        events: Arc::clone(&ctx.events),
    };
    let testers = (1..=ctx.testers)
        .map(|k| {
            Arc::new(TesterSpec {
                id: TesterId(k),
                ctx: ctx.clone(),
            }) as Arc<dyn ChildSpec>
        })
        .collect();
    let pool = supervisor(POOL, Strategy::OneForOne, options.pool, testers);
    let balancer = Arc::new(BalancerSpec { ctx: ctx.clone() });
    let tester_supervisor = supervisor(
        TESTER_SUPERVISOR,
        Strategy::RestForOne,
        options.tester_supervisor,
        vec![balancer, Arc::new(pool)],
    );
    supervisor(
        ROOT,
        Strategy::OneForOne,
        options.root,
        vec![Arc::new(tester_supervisor)],
    )
}
