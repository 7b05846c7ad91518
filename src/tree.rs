//! The supervision tree of *Programming Erlang* chapter 23, as child specs:
//!
//! ```text
//! root                   one_for_one
//! ├── tester_supervisor  rest_for_one: if the balancer dies, the pool restarts too
//! │   ├── balancer
//! │   └── pool           one_for_one
//! │       └── tester-1 … tester-N
//! └── area_server        (the book's area server: crashes here never touch the pool)
//! ```
//!
//! and its live view for `primed tree`: each supervisor describes its children, and the
//! workers' restarts, current jobs and loads come from the shared counters and the balancer.

use std::sync::Arc;
use std::time::Duration;

use crate::actors::Handle;
use crate::area::AreaSpec;
use crate::job::TesterId;
use crate::pool::{LoadSnapshot, PoolContext, TesterSpec};
use crate::protocol::{NodeKind, TreeNode};
use crate::supervision::{
    BackoffPolicy, ChildSpec, Children, Intensity, Strategy, SupervisorMsg, SupervisorSpec,
    SupervisorView,
};

pub const ROOT: &str = "root";
pub const TESTER_SUPERVISOR: &str = "tester_supervisor";
pub const POOL: &str = "pool";

const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Restart intensities (one per supervisor) and the backoff they all use.
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    pub root: Intensity,
    pub tester_supervisor: Intensity,
    pub pool: Intensity,
    pub backoff: BackoffPolicy,
}

/// The root's spec, and the pool's children (which a reload changes).
pub struct Tree {
    pub root: SupervisorSpec,
    pub pool: Children,
}

/// Specs of tester-1 … tester-`n`.
pub fn tester_specs(ctx: &PoolContext, n: u32) -> Vec<Arc<dyn ChildSpec>> {
    (1..=n)
        .map(|k| {
            Arc::new(TesterSpec {
                id: TesterId(k),
                ctx: ctx.clone(),
            }) as Arc<dyn ChildSpec>
        })
        .collect()
}

pub fn build(ctx: &PoolContext, options: &TreeOptions) -> Tree {
    let supervisor = |name: &str, strategy, intensity, children| SupervisorSpec {
        name: name.to_string(),
        strategy,
        intensity,
        backoff: options.backoff,
        children: Children::new(children),
        stats: Arc::clone(&ctx.stats),
        events: Arc::clone(&ctx.events),
    };
    let pool = supervisor(
        POOL,
        Strategy::OneForOne,
        options.pool,
        tester_specs(ctx, ctx.testers()),
    );
    let pool_children = pool.children.clone();
    let balancer = Arc::new(crate::pool::BalancerSpec { ctx: ctx.clone() });
    let tester_supervisor = supervisor(
        TESTER_SUPERVISOR,
        Strategy::RestForOne,
        options.tester_supervisor,
        vec![balancer, Arc::new(pool)],
    );
    let root = supervisor(
        ROOT,
        Strategy::OneForOne,
        options.root,
        vec![Arc::new(tester_supervisor), Arc::new(AreaSpec::default())],
    );
    Tree {
        root,
        pool: pool_children,
    }
}

/// The supervisor named `name`, whichever incarnation is alive.
pub fn supervisor(name: &str) -> Handle<SupervisorMsg> {
    Handle::named(name.to_string())
}

async fn describe_supervisor(name: &str) -> Option<SupervisorView> {
    supervisor(name)
        .call(SupervisorMsg::Describe, DESCRIBE_TIMEOUT)
        .await
}

/// The live tree from the root down. A supervisor that is restarting shows no children.
pub async fn describe(ctx: &PoolContext, loads: Option<&LoadSnapshot>) -> TreeNode {
    let mut root = node(ctx, ROOT, true, true, loads);
    let mut pending = vec![Vec::<usize>::new()];
    // Supervisors still to describe, each as its path of child indexes from the root (async
    // recursion would need boxing).
    while let Some(path) = pending.pop() {
        let mut at = &mut root;
        for &i in &path {
            at = &mut at.children[i];
        }
        let Some(view) = describe_supervisor(&at.name).await else {
            continue;
        };
        at.kind = NodeKind::Supervisor {
            strategy: view.strategy.name().to_string(),
            max_restarts: view.intensity.max_restarts,
            period_ms: u64::try_from(view.intensity.period.as_millis()).unwrap_or(u64::MAX),
        };
        for (i, child) in view.children.iter().enumerate() {
            at.children.push(node(
                ctx,
                &child.name,
                child.supervisor,
                child.running,
                loads,
            ));
            if child.supervisor && child.running {
                let mut below = path.clone();
                below.push(i);
                pending.push(below);
            }
        }
    }
    root
}

fn node(
    ctx: &PoolContext,
    name: &str,
    supervisor: bool,
    running: bool,
    loads: Option<&LoadSnapshot>,
) -> TreeNode {
    let tester = TesterId::from_name(name);
    let job = tester.and_then(|t| ctx.activity.running_at(t));
    let load = tester.and_then(|t| loads?.testers.get(t.0 as usize - 1));
    TreeNode {
        name: name.to_string(),
        kind: if supervisor {
            NodeKind::Supervisor {
                strategy: String::new(),
                max_restarts: 0,
                period_ms: 0,
            }
        } else {
            NodeKind::Worker
        },
        running,
        restarts: ctx.stats.get(name).restarts(),
        job,
        queued: load.map(|l| l.queued),
        load: load.map(|l| l.load),
        children: Vec::new(),
    }
}
