//! Operator requests: status, the in-flight list, and killing an actor on purpose.

use std::collections::HashMap;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use tracing::warn;

use crate::job::TesterId;
use crate::pool::{BalancerMsg, LoadSnapshot, PoolContext, BALANCER};
use crate::protocol::{BalancerStatus, JobInfo, Response, StatusReport, TesterStatus};

const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// A kill must land well under a second: testers never block their task.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);
const JOBS_CHUNK: usize = 1000;

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

/// Queue lengths and loads per tester as the journal records them: the fallback while the
/// balancer is restarting.
fn journal_loads(ctx: &PoolContext) -> HashMap<TesterId, (u64, u64)> {
    let mut loads = HashMap::new();
    for in_flight in ctx.journal.in_flight().flatten() {
        if let Some(tester) = in_flight.tester {
            let entry = loads.entry(tester).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += in_flight.job.n.cost();
        }
    }
    loads
}

pub async fn status(ctx: &PoolContext) -> Response {
    let snapshot = balancer_snapshot().await;
    let fallback = snapshot.is_none().then(|| journal_loads(ctx));
    let testers = (1..=ctx.testers)
        .map(|k| {
            let id = TesterId(k);
            let (queued, load) = match (&snapshot, &fallback) {
                (Some(s), _) => s
                    .testers
                    .get(k as usize - 1)
                    .map_or((0, 0), |t| (t.queued, t.load)),
                (None, Some(f)) => f.get(&id).copied().unwrap_or_default(),
                (None, None) => (0, 0),
            };
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
    Response::Status(StatusReport {
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

/// Streams the in-flight list in chunks, so a long list never sits whole in one frame.
pub fn jobs(ctx: &PoolContext, mut send: impl FnMut(Response)) {
    let mut chunk = Vec::with_capacity(JOBS_CHUNK);
    for entry in ctx.journal.in_flight() {
        match entry {
            Ok(in_flight) => chunk.push(JobInfo {
                id: in_flight.job.id,
                n: in_flight.job.n.to_string(),
                tester: in_flight.tester.map(TesterId::name),
                attempts: in_flight.job.attempts,
            }),
            Err(e) => {
                return send(Response::Failed {
                    message: e.to_string(),
                })
            }
        }
        if chunk.len() == JOBS_CHUNK {
            send(Response::Jobs {
                jobs: std::mem::take(&mut chunk),
                more: true,
            });
        }
    }
    send(Response::Jobs {
        jobs: chunk,
        more: false,
    });
}

/// Streams the stored events since `since_ms`, in chunks like the in-flight list.
pub fn events(ctx: &PoolContext, since_ms: u64, mut send: impl FnMut(Response)) {
    let events = match ctx.journal.events(since_ms) {
        Ok(events) => events,
        Err(e) => {
            return send(Response::Failed {
                message: e.to_string(),
            })
        }
    };
    let mut chunks = events.chunks(JOBS_CHUNK).peekable();
    if chunks.peek().is_none() {
        return send(Response::Events {
            events: Vec::new(),
            more: false,
        });
    }
    while let Some(chunk) = chunks.next() {
        send(Response::Events {
            events: chunk.to_vec(),
            more: chunks.peek().is_some(),
        });
    }
}

/// Kills an actor abruptly, as Erlang's `exit(Pid, kill)`, and waits until it is gone.
pub async fn kill(actor: &str, testers: u32) -> Response {
    let known = actor == BALANCER || TesterId::from_name(actor).is_some_and(|t| t.0 <= testers);
    if !known {
        return Response::Failed {
            message: format!(
                "unknown actor {actor:?}: expected {BALANCER} or tester-1 … tester-{testers}"
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
