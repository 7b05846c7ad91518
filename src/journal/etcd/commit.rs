//! The committer: one task that writes the queued keys to etcd, one transaction at a time
//! (fenced while this daemon leads), tells waiters how far it got, and deposes the daemon when
//! a fenced write is refused or the leadership lease is lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::{
    batch, encode, job_key, lock, Dirty, State, CALL_TIMEOUT, COMMIT_PATIENCE, PRUNED_KEY,
    PRUNE_FLOOR_KEY,
};
use crate::journal::{JournalError, Ticket};

/// Pause between retries while etcd is unavailable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Why a commit failed.
enum CommitError {
    /// etcd cannot commit now (no quorum, no reachable member): retried.
    Unavailable(String),
    /// The fence refused it: another daemon leads.
    Deposed,
}

/// How far the committer got: tickets up to `durable` are in etcd; those up to `failed` were
/// waited for while etcd could not commit, and their waiters were told why.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub(super) durable: Ticket,
    pub(super) failed: Ticket,
    pub(super) reason: String,
}

/// The operations that write `keys` as the mirror holds them now.
///
/// A standby's job records are written only where no record exists yet, each on its own (a
/// nested transaction), so that a retried write (the first may have landed unanswered) never
/// overwrites the answer the leader stored since, nor holds back the other records.
fn operations(state: &State, prefix: &str, keys: &[Dirty]) -> Result<Vec<TxnOp>, JournalError> {
    let create_only = state.fence.is_none();
    let mut ops = keys
        .iter()
        .filter_map(|key| match key {
            Dirty::Job(id) => state.jobs.get(id).map(|record| {
                let key = job_key(prefix, *id);
                let put = TxnOp::put(key.clone(), encode(record)?, None);
                Ok(if create_only {
                    let absent = Compare::create_revision(key, CompareOp::Equal, 0);
                    TxnOp::txn(Txn::new().when([absent]).and_then([put]))
                } else {
                    put
                })
            }),
            Dirty::Event(name) => state.events.get(name).map(|event| {
                encode(event).map(|v| TxnOp::put(format!("{prefix}event/{name}"), v, None))
            }),
            Dirty::DropEvent(name) => {
                Some(Ok(TxnOp::delete(format!("{prefix}event/{name}"), None)))
            }
            Dirty::Prune { id, .. } => Some(Ok(TxnOp::delete(job_key(prefix, *id), None))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Deletions queue in order, each with the counters as of itself: the last one's go with
    // them, so etcd's counters always match the deletions it holds.
    let counters = keys.iter().rev().find_map(|key| match key {
        Dirty::Prune { pruned, floor, .. } => Some((*pruned, *floor)),
        _ => None,
    });
    if let Some((pruned, floor)) = counters {
        ops.push(TxnOp::put(
            format!("{prefix}{PRUNED_KEY}"),
            pruned.to_be_bytes().to_vec(),
            None,
        ));
        ops.push(TxnOp::put(
            format!("{prefix}{PRUNE_FLOOR_KEY}"),
            floor.to_be_bytes().to_vec(),
            None,
        ));
    }
    Ok(ops)
}

/// What the committer needs: where to write, and the mirror (with the fence every write must
/// pass once this daemon leads).
pub(super) struct Committer {
    pub(super) client: Client,
    pub(super) prefix: String,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) wake: Arc<Notify>,
}

impl Committer {
    /// One transaction, fenced if this daemon led when it was built (only a fenced one can be
    /// refused), retried while etcd is merely unavailable, for a while.
    async fn commit(&mut self, fence: Option<Compare>, ops: Vec<TxnOp>) -> Result<(), CommitError> {
        let started = Instant::now();
        let writes = ops.len() as u64;
        loop {
            let txn = Txn::new().when(fence.clone().into_iter().collect::<Vec<_>>());
            let txn = txn.and_then(ops.clone());
            let error = match tokio::time::timeout(CALL_TIMEOUT, self.client.txn(txn)).await {
                Ok(Ok(reply)) if reply.succeeded() => {
                    // A transaction is what makes etcd's writes durable: its group commit.
                    crate::metrics::global().flushed(started.elapsed(), writes);
                    return Ok(());
                }
                Ok(Ok(_)) => return Err(CommitError::Deposed),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer from etcd within {CALL_TIMEOUT:?}"),
            };
            if started.elapsed() >= COMMIT_PATIENCE {
                return Err(CommitError::Unavailable(error));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts a failed batch back in front (it is retried) and says up to which ticket the
    /// waiters are to be told it failed.
    fn put_back(&self, keys: Vec<Dirty>, newest: Ticket, reason: &str) -> Ticket {
        let mut state = lock(&self.state);
        for key in keys.into_iter().rev() {
            state.dirty.push_front((newest, key, 64));
        }
        if state.unavailable.is_none() {
            warn!(reason = %reason, event = "journal_unavailable",
                  "etcd cannot commit: refusing new jobs until it can");
        }
        state.unavailable = Some(reason.to_string());
        state.last_ticket
    }
}

/// Stops writing (and says why) as soon as the leadership lease is lost.
pub(super) async fn watch_lease(
    mut lost: watch::Receiver<Option<String>>,
    state: Arc<Mutex<State>>,
    deposed: Arc<watch::Sender<Option<String>>>,
) {
    let reason = match lost.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or_default(),
        Err(_) => return,
    };
    depose(&state, &deposed, format!("leadership lost: {reason}"));
}

fn depose(state: &Mutex<State>, deposed: &watch::Sender<Option<String>>, reason: String) {
    let mut state = lock(state);
    if state.deposed.is_none() {
        warn!(reason = %reason, event = "deposed", "this daemon no longer leads");
        state.deposed = Some(reason.clone());
        drop(state);
        let _ = deposed.send(Some(reason));
    }
}

/// Writes queued keys to etcd, one transaction at a time, until the journal is dropped or
/// this daemon is deposed (then every waiter is told, and nothing more is written).
pub(super) async fn commit_loop(
    mut committer: Committer,
    progress: watch::Sender<Progress>,
    deposed: Arc<watch::Sender<Option<String>>>,
    mut stop: watch::Receiver<()>,
) {
    loop {
        let (keys, newest, ops) = {
            let mut state = lock(&committer.state);
            if let Some(reason) = state.deposed.clone() {
                let failed = state.last_ticket;
                drop(state);
                progress.send_modify(|p| {
                    p.failed = failed;
                    p.reason = reason;
                });
                return;
            }
            let max_ops = match state.fence {
                // Room for the pruning counters.
                Some(_) => batch::MAX_OPS - 2,
                None => batch::MAX_NESTED_OPS,
            };
            let (keys, newest) = batch::take(&mut state.dirty, max_ops);
            let fence = state.fence.clone();
            let ops = operations(&state, &committer.prefix, &keys);
            (keys, newest, ops.map(|ops| (fence, ops)))
        };
        if keys.is_empty() {
            // Everything is written and the journal is gone: nothing more can come.
            if stop.has_changed().is_err() {
                return;
            }
            tokio::select! {
                () = committer.wake.notified() => {}
                // The journal was dropped: checked at the top of the next round.
                _ = stop.changed() => {}
            }
            continue;
        }
        let result = match ops {
            Ok((fence, ops)) => committer.commit(fence, ops).await,
            Err(e) => Err(CommitError::Unavailable(e.to_string())),
        };
        match result {
            Ok(()) => {
                if lock(&committer.state).unavailable.take().is_some() {
                    info!(event = "journal_available", "etcd commits again");
                }
                progress.send_modify(|p| p.durable = p.durable.max(newest));
            }
            Err(CommitError::Deposed) => {
                let reason = "another daemon leads: a fenced write was refused".to_string();
                depose(&committer.state, &deposed, reason);
            }
            Err(CommitError::Unavailable(reason)) => {
                let failed = committer.put_back(keys, newest, &reason);
                progress.send_modify(|p| {
                    p.failed = failed;
                    p.reason = reason;
                });
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
