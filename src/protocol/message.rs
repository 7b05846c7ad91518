//! The messages: what a client may ask and what the daemon answers. The same report structs
//! are what the CLI prints with `--json`, so the JSON shapes are defined here once.

use serde::{Deserialize, Serialize};

use crate::alarms::Alarm;
use crate::area::Shape;
use crate::event::Event;
use crate::job::{JobId, JobResult, Task, Verdict};

/// Most numbers one Submit frame may carry.
pub const MAX_BATCH: usize = 4096;

/// Not `Eq`: an area request carries floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Journal these numbers; with `wait`, also stream a `Done` for each once it is answered.
    Submit {
        numbers: Vec<String>,
        wait: bool,
    },
    /// Look up results; with `wait`, pending ones are answered with `Done` when they finish.
    Results {
        ids: Vec<JobId>,
        wait: bool,
    },
    /// Journal a make-prime job and stream its `Done` once the prime is found.
    MakePrime {
        digits: u32,
    },
    /// Give up on a job in flight: it is answered `Cancelled` and its tester stops it.
    Cancel {
        id: JobId,
    },
    Status,
    Jobs,
    /// The active alarms.
    Alarms,
    /// The live supervision tree.
    Tree,
    /// Re-read the configuration and apply what can change live.
    Reload,
    /// Ask the area server.
    Area {
        shape: Shape,
    },
    Kill {
        actor: String,
    },
    /// Stored supervision events at or after `since_ms` (ms since the Unix epoch); with
    /// `follow`, then every new event as it happens, until the connection closes.
    Events {
        since_ms: u64,
        follow: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// One item per submitted number, in order; sent only once the jobs are durable.
    Accepted {
        items: Vec<Accepted>,
    },
    Done(Report),
    Pending {
        id: JobId,
    },
    Unknown {
        id: JobId,
        error: String,
    },
    Status(StatusReport),
    /// A chunk of the in-flight list; `more` is false on the last one.
    Jobs {
        jobs: Vec<JobInfo>,
        more: bool,
    },
    Killed {
        actor: String,
    },
    Cancelled {
        id: JobId,
    },
    Alarms {
        alarms: Vec<Alarm>,
    },
    Tree(TreeNode),
    /// What a reload changed.
    Reloaded {
        changes: String,
    },
    Area {
        shape: Shape,
        area: f64,
    },
    /// A chunk of the event log, oldest first; `more` is false on the last one.
    Events {
        events: Vec<Event>,
        more: bool,
    },
    /// This request failed; the message says why. The connection stays open.
    Failed {
        message: String,
    },
    /// The connection failed (a bad frame, a refused peer) and is closed after this.
    Error {
        message: String,
    },
    /// The job finished, and its record was pruned under the retention policy (cited in
    /// `reason`): its answer is no longer kept.
    Pruned {
        id: JobId,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accepted {
    Job {
        id: JobId,
        n: String,
    },
    /// The input is not a number primed will test.
    Invalid {
        input: String,
        error: String,
    },
    /// Not accepted for now (busy, disk full, journal failure): the same input may be retried.
    Refused {
        input: String,
        error: String,
    },
}

/// A job's answer. Printed as `{"id":7,"n":"97","prime":true,"attempts":1}`, for a
/// quarantined job `{"id":7,"n":"97","error":"quarantined: …","attempts":3}`, and for a
/// make-prime job `{"id":8,"digits":3,"n":"557","attempts":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: JobId,
    /// The number tested; for a make-prime job, the prime made (empty if there is none).
    pub n: String,
    /// Set for a make-prime job: the digits asked for.
    pub digits: Option<u32>,
    pub verdict: Verdict,
    pub attempts: u32,
}

impl From<&JobResult> for Report {
    fn from(result: &JobResult) -> Self {
        let (n, digits) = match (&result.task, &result.verdict) {
            (Task::Test(n), _) => (n.to_string(), None),
            (Task::MakePrime { digits }, Verdict::Made { prime }) => (prime.clone(), Some(*digits)),
            (Task::MakePrime { digits }, _) => (String::new(), Some(*digits)),
        };
        Report {
            id: result.id,
            n,
            digits,
            verdict: result.verdict.clone(),
            attempts: result.attempts,
        }
    }
}

/// Whether a daemon runs the jobs of its journal, or waits to take over a shared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DaemonRole {
    Leader,
    Standby,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub role: DaemonRole,
    /// The daemon leading the shared journal, when this one is its standby (if etcd said).
    pub leader: Option<String>,
    pub testers: Vec<TesterStatus>,
    pub balancer: BalancerStatus,
    pub in_flight: u64,
    pub completed: u64,
    /// Restarts of any actor since the daemon started.
    pub restarts: u64,
    /// Restarts within the last minute: the restart rate.
    pub restarts_last_minute: u64,
    pub retention: RetentionStatus,
}

/// What the journal keeps of finished jobs, for `primed status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetentionStatus {
    /// Finished jobs kept (answerable).
    pub kept: u64,
    /// Finished jobs pruned since the journal was made.
    pub pruned: u64,
    /// When the oldest finished job kept finished (ms since the epoch), as the pruner last saw.
    pub oldest_kept_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TesterStatus {
    pub name: String,
    pub queued: u64,
    pub load: u64,
    pub restarts: u64,
    pub completed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BalancerStatus {
    pub restarts: u64,
    /// False while the balancer is restarting; queues and loads then come from the journal.
    pub available: bool,
}

/// One in-flight job: `{"id":7,"n":"97","tester":"tester-3","attempts":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobInfo {
    pub id: JobId,
    pub n: String,
    pub tester: Option<String>,
    pub attempts: u32,
}

/// A supervisor or worker of the live tree (`primed tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    pub name: String,
    pub kind: NodeKind,
    /// False while it is being restarted.
    pub running: bool,
    pub restarts: u64,
    /// The job a tester is running.
    pub job: Option<JobId>,
    /// A tester's queue and estimated load, as the balancer sees them.
    pub queued: Option<u64>,
    pub load: Option<u64>,
    pub children: Vec<TreeNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    Supervisor {
        strategy: String,
        max_restarts: u32,
        period_ms: u64,
    },
    Worker,
}
