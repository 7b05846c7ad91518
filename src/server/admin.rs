//! Operator requests: status, the in-flight list, cancelling a job, and killing an actor on
//! purpose.

use std::time::Duration;

use ractor::rpc::CallResult;
use tracing::warn;

use super::Shared;
use crate::actors;
use crate::area::{self, AreaMsg, Shape, AREA_SERVER, AREA_SERVER_ACTOR};
use crate::event::Event;
use crate::job::{JobId, TesterId};
use crate::journal::Role;
use crate::pool::{BalancerMsg, LoadSnapshot, PoolContext, BALANCER, BALANCER_ACTOR};
use crate::protocol::{BalancerStatus, DaemonRole, JobInfo, Response, StatusReport, TesterStatus};

const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// A kill must land well under a second: testers never block their task.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);
const JOBS_CHUNK: usize = 1000;
const AREA_TIMEOUT: Duration = Duration::from_secs(2);

async fn balancer_snapshot() -> Option<LoadSnapshot> {
    BALANCER_ACTOR
        .call(BalancerMsg::Snapshot, SNAPSHOT_TIMEOUT)
        .await
}

pub async fn status(shared: &Shared) -> Response {
    let ctx = &shared.ctx;
    let snapshot = balancer_snapshot().await;
    let testers = (1..=ctx.testers())
        .map(|k| {
            let id = TesterId(k);
            // Only the balancer knows queues; while it restarts they read as empty.
            let (queued, load) = snapshot
                .as_ref()
                .and_then(|s| s.testers.get(k as usize - 1))
                .map_or((0, 0), |t| (t.queued, t.load));
            let stats = ctx.stats.get(&id.name());
            TesterStatus {
                name: id.name(),
                queued,
                load,
                restarts: stats.restarts(),
                completed: stats.completed,
            }
        })
        .collect();
    let counts = ctx.jobs.counts();
    let (restarts, restarts_last_minute) = ctx.events.restarts();
    let (role, leader) = match shared.coordination.role().await {
        Role::Leader => (DaemonRole::Leader, None),
        Role::Standby { leader } => (DaemonRole::Standby, leader),
    };
    Response::Status(StatusReport {
        role,
        leader,
        restarts,
        restarts_last_minute,
        testers,
        balancer: BalancerStatus {
            restarts: ctx.stats.get(BALANCER).restarts(),
            available: snapshot.is_some(),
        },
        in_flight: counts.in_flight,
        completed: counts.completed,
        retention: ctx.jobs.retained(),
    })
}

/// Which tester holds each job, as the balancer knows it (`None` everywhere while it is down).
pub async fn holders(ids: Vec<JobId>) -> Vec<Option<TesterId>> {
    let count = ids.len();
    BALANCER_ACTOR
        .call(|reply| BalancerMsg::Holders(ids, reply), SNAPSHOT_TIMEOUT)
        .await
        .unwrap_or_else(|| vec![None; count])
}

/// Streams the in-flight list in chunks, so a long list never sits whole in one frame, and
/// waits for `room` before each chunk after the first, so a million jobs in flight are not
/// queued whole for a client that reads slowly.
pub async fn jobs<F: std::future::Future<Output = ()>>(
    ctx: &PoolContext,
    mut send: impl FnMut(Response),
    room: impl Fn() -> F,
) {
    let mut entries = ctx.jobs.in_flight();
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            room().await;
        }
        let mut chunk = Vec::with_capacity(JOBS_CHUNK);
        for entry in entries.by_ref().take(JOBS_CHUNK) {
            match entry {
                Ok(in_flight) => chunk.push(in_flight.job),
                Err(e) => {
                    return send(Response::Failed {
                        message: e.to_string(),
                    })
                }
            }
        }
        let more = chunk.len() == JOBS_CHUNK;
        let held = holders(chunk.iter().map(|job| job.id).collect()).await;
        let jobs = chunk
            .into_iter()
            .zip(held)
            .map(|(job, tester)| JobInfo {
                id: job.id,
                n: job.task.to_string(),
                tester: tester.map(TesterId::name),
                attempts: job.attempts,
            })
            .collect();
        send(Response::Jobs { jobs, more });
        if !more {
            return;
        }
    }
}

/// Streams the stored events since `since_ms`, in chunks like the in-flight list.
/// With `live_follows`, even the last chunk says `more` (live events come next). Returns the
/// events sent, or `None` if they could not be read (the client was told why).
pub fn events(
    ctx: &PoolContext,
    since_ms: u64,
    live_follows: bool,
    mut send: impl FnMut(Response),
) -> Option<Vec<Event>> {
    let events = match ctx.events.stored(since_ms) {
        Ok(events) => events,
        Err(e) => {
            send(Response::Failed {
                message: e.to_string(),
            });
            return None;
        }
    };
    let mut chunks = events.chunks(JOBS_CHUNK).peekable();
    if chunks.peek().is_none() && !live_follows {
        send(Response::Events {
            events: Vec::new(),
            more: false,
        });
    }
    while let Some(chunk) = chunks.next() {
        send(Response::Events {
            events: chunk.to_vec(),
            more: live_follows || chunks.peek().is_some(),
        });
    }
    Some(events)
}

/// Cancels a job in flight, through the intake.
pub async fn cancel(ctx: &PoolContext, id: JobId) -> Response {
    match ctx.jobs.cancel(id).await {
        Ok(()) => Response::Cancelled { id },
        Err(e) => Response::Failed { message: e.message },
    }
}

/// The live supervision tree, with the balancer's view of each tester's load.
/// A standby runs no tree: requests about its actors are answered with where they run.
pub async fn standby_refusal(shared: &Shared) -> Option<Response> {
    match shared.coordination.role().await {
        Role::Leader => None,
        Role::Standby { leader } => Some(Response::Failed {
            message: format!(
                "this daemon is a standby: the leading daemon ({}) runs the supervision tree",
                leader.as_deref().unwrap_or("unknown right now")
            ),
        }),
    }
}

pub async fn tree(ctx: &PoolContext) -> Response {
    let loads = balancer_snapshot().await;
    Response::Tree(crate::tree::describe(ctx, loads.as_ref()).await)
}

/// Asks the area server. If the request crashes it (the book's deliberate bug: a shape it
/// cannot measure), the caller learns why, and the root restarts the server.
pub async fn area(shape: Shape) -> Response {
    let failed = |message: String| Response::Failed { message };
    let Some(server) = AREA_SERVER_ACTOR.get() else {
        return failed(format!(
            "the {AREA_SERVER} is not running right now (it is being restarted); retry"
        ));
    };
    match server
        .call(|reply| AreaMsg::Area(shape, reply), Some(AREA_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(area)) => Response::Area { shape, area },
        Ok(CallResult::Timeout) => failed(format!("the {AREA_SERVER} did not answer in time")),
        _ => {
            // The server died on this request; the pure function says what it choked on.
            let why = area::area(&shape).err().map_or_else(
                || "it exited while answering".to_string(),
                |e| e.to_string(),
            );
            failed(format!(
                "the {AREA_SERVER} crashed on \"{shape}\": {why}; the root supervisor restarts it"
            ))
        }
    }
}

/// Why a kill was refused.
#[derive(Debug)]
pub enum KillRefusal {
    /// No actor of that name exists in this tree.
    Unknown(String),
    /// It exists, but is being restarted.
    Restarting(String),
    /// It did not stop in time.
    Stuck(String),
}

impl KillRefusal {
    pub fn message(self) -> String {
        match self {
            KillRefusal::Unknown(message)
            | KillRefusal::Restarting(message)
            | KillRefusal::Stuck(message) => message,
        }
    }
}

/// Kills an actor abruptly, as Erlang's `exit(Pid, kill)`, and waits until it is gone.
pub async fn kill(actor: &str, testers: u32) -> Response {
    match kill_actor(actor, testers).await {
        Ok(()) => Response::Killed {
            actor: actor.to_string(),
        },
        Err(refusal) => Response::Failed {
            message: refusal.message(),
        },
    }
}

pub async fn kill_actor(actor: &str, testers: u32) -> Result<(), KillRefusal> {
    let known = [BALANCER, AREA_SERVER].contains(&actor)
        || TesterId::from_name(actor).is_some_and(|t| t.0 <= testers);
    if !known {
        return Err(KillRefusal::Unknown(format!(
            "unknown actor {actor:?}: expected {BALANCER}, {AREA_SERVER} or tester-1 … \
             tester-{testers}"
        )));
    }
    let Some(cell) = actors::cell(actor) else {
        return Err(KillRefusal::Restarting(format!(
            "{actor} is not running right now (it is being restarted)"
        )));
    };
    warn!(
        actor,
        reason = "killed on request",
        event = "kill",
        "killing actor"
    );
    cell.kill_and_wait(Some(KILL_TIMEOUT)).await.map_err(|e| {
        KillRefusal::Stuck(format!("{actor} did not stop within {KILL_TIMEOUT:?}: {e}"))
    })
}
