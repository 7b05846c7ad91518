//! Operator requests: status, the in-flight list, cancelling a job, and killing an actor on
//! purpose.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use tracing::{info, warn};

use crate::area::{self, AreaMsg, Shape, AREA_SERVER};
use crate::event::Event;
use crate::job::{JobId, TesterId, Verdict};
use crate::journal::{Completion, Lookup, Role};
use crate::pool::{BalancerMsg, LoadSnapshot, PoolContext, BALANCER};
use crate::protocol::{BalancerStatus, DaemonRole, JobInfo, Response, StatusReport, TesterStatus};

const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// A kill must land well under a second: testers never block their task.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);
const JOBS_CHUNK: usize = 1000;
const AREA_TIMEOUT: Duration = Duration::from_secs(2);

async fn balancer_snapshot() -> Option<LoadSnapshot> {
    let cell = ractor::registry::where_is(BALANCER)?;
    let balancer = ActorRef::<BalancerMsg>::from(cell);
    match balancer
        .call(BalancerMsg::Snapshot, Some(SNAPSHOT_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(snapshot)) => Some(snapshot),
        _ => None,
    }
}

pub async fn status(ctx: &PoolContext) -> Response {
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
    let counts = ctx.journal.counts();
    let (restarts, restarts_last_minute) = ctx.events.restarts();
    let (role, leader) = match ctx.journal.role().await {
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
    })
}

/// Which tester holds each job, as the balancer knows it (`None` everywhere while it is down).
async fn holders(ids: Vec<JobId>) -> Vec<Option<TesterId>> {
    let count = ids.len();
    let answer = match ractor::registry::where_is(BALANCER) {
        Some(cell) => {
            ActorRef::<BalancerMsg>::from(cell)
                .call(
                    |reply| BalancerMsg::Holders(ids, reply),
                    Some(SNAPSHOT_TIMEOUT),
                )
                .await
        }
        None => return vec![None; count],
    };
    match answer {
        Ok(CallResult::Success(holders)) => holders,
        _ => vec![None; count],
    }
}

/// Streams the in-flight list in chunks, so a long list never sits whole in one frame.
pub async fn jobs(ctx: &PoolContext, mut send: impl FnMut(Response)) {
    let mut entries = ctx.journal.in_flight();
    loop {
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
    let events = match ctx.journal.events(since_ms) {
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

/// Cancels a job in flight. Its answer, `Cancelled`, is recorded durably first (so no replay
/// runs it again) and delivered to whoever waits for it; then its tester stops it. A balancer
/// that is restarting misses the stop; its restart restarts the pool too, which stops it.
pub async fn cancel(ctx: &PoolContext, id: JobId) -> Response {
    let failed = |message: String| Response::Failed { message };
    let attempts = match ctx.journal.pending(id) {
        // A running attempt is not journaled until it ends: count it from the activity slot.
        Ok(Some(job)) => ctx
            .activity
            .running_jobs()
            .into_iter()
            .find_map(|(_, running, attempt)| (running == id).then_some(attempt))
            .unwrap_or(job.attempts),
        Ok(None) => return failed(not_in_flight(ctx, id)),
        Err(e) => return failed(format!("cannot cancel job {id}: {e}")),
    };
    let (result, ticket) = match ctx.journal.complete(id, Verdict::Cancelled, attempts) {
        Ok((Completion::Recorded(result), ticket)) => (result, ticket),
        Ok((Completion::AlreadyRecorded(_), _)) => return failed(not_in_flight(ctx, id)),
        Err(e) => return failed(format!("cannot cancel job {id}: {e}")),
    };
    if let Err(e) = ctx.journal.durable(ticket).await {
        return failed(format!("job {id} is cancelled, but not yet durably: {e}"));
    }
    info!(job = id, event = "cancel", "job cancelled by a client");
    ctx.outcomes.publish(ticket, result);
    if let Some(cell) = ractor::registry::where_is(BALANCER) {
        let _ = ActorRef::<BalancerMsg>::from(cell).send_message(BalancerMsg::Cancel { id });
    }
    Response::Cancelled { id }
}

fn not_in_flight(ctx: &PoolContext, id: JobId) -> String {
    match ctx.journal.lookup(id) {
        Ok(Lookup::Unknown) => format!("cannot cancel job {id}: there is no such job"),
        Ok(_) => format!("cannot cancel job {id}: it has already finished (primed result {id})"),
        Err(e) => format!("cannot cancel job {id}: {e}"),
    }
}

/// The live supervision tree, with the balancer's view of each tester's load.
/// A standby runs no tree: requests about its actors are answered with where they run.
pub async fn standby_refusal(ctx: &PoolContext) -> Option<Response> {
    match ctx.journal.role().await {
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
    let Some(cell) = ractor::registry::where_is(AREA_SERVER) else {
        return failed(format!(
            "the {AREA_SERVER} is not running right now (it is being restarted); retry"
        ));
    };
    let server = ActorRef::<AreaMsg>::from(cell);
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

/// Kills an actor abruptly, as Erlang's `exit(Pid, kill)`, and waits until it is gone.
pub async fn kill(actor: &str, testers: u32) -> Response {
    let known = [BALANCER, AREA_SERVER].contains(&actor)
        || TesterId::from_name(actor).is_some_and(|t| t.0 <= testers);
    if !known {
        return Response::Failed {
            message: format!(
                "unknown actor {actor:?}: expected {BALANCER}, {AREA_SERVER} or tester-1 … \
                 tester-{testers}"
            ),
        };
    }
    let Some(cell) = ractor::registry::where_is(actor) else {
        return Response::Failed {
            message: format!("{actor} is not running right now (it is being restarted)"),
        };
    };
    warn!(
        actor,
        reason = "killed on request",
        event = "kill",
        "killing actor"
    );
    match cell.kill_and_wait(Some(KILL_TIMEOUT)).await {
        Ok(()) => Response::Killed {
            actor: actor.to_string(),
        },
        Err(e) => Response::Failed {
            message: format!("{actor} did not stop within {KILL_TIMEOUT:?}: {e}"),
        },
    }
}
