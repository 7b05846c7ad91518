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
use crate::supervision::{ChildSpec, Intensity, Strategy, SupervisorSpec};

pub const ROOT: &str = "root";

pub fn root_spec(ctx: &PoolContext, intensity: Intensity) -> SupervisorSpec {
    let supervisor = |name: &str, strategy, children| SupervisorSpec {
        name: name.to_string(),
        strategy,
        intensity,
        children,
        stats: Arc::clone(&ctx.stats),
    };
    let testers = (1..=ctx.testers)
        .map(|k| {
            Arc::new(TesterSpec {
                id: TesterId(k),
                ctx: ctx.clone(),
            }) as Arc<dyn ChildSpec>
        })
        .collect();
    let pool = supervisor("pool", Strategy::OneForOne, testers);
    let balancer = Arc::new(BalancerSpec { ctx: ctx.clone() });
    let tester_supervisor = supervisor(
        "tester_supervisor",
        Strategy::RestForOne,
        vec![balancer, Arc::new(pool)],
    );
    supervisor(ROOT, Strategy::OneForOne, vec![Arc::new(tester_supervisor)])
}
