//! Keeping the mirror in step with what other daemons write: one watch on the journal's
//! prefix, from the revision the mirror was loaded at, re-opened from the last revision seen
//! when it breaks (etcd-client does not resume a watch whose member died), and replaced by a
//! fresh load if etcd compacted the revisions it still needed.
//!
//! What a change means depends on the daemon's role (pure, in [`apply_job`]): a standby takes
//! every job record as written (the leader completes jobs); the leader, the only writer of
//! existing records, takes only jobs it does not know yet (a standby accepted them) and hands
//! them on to be run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::store::load;
use super::{decode, lock, Role, State, MAX_REPLY};
use crate::event::Event;
use crate::job::JobId;
use crate::journal::record::JobRecord;
use crate::journal::RemoteChange;

/// Pause before re-opening a broken watch.
const REOPEN_PAUSE: Duration = Duration::from_millis(200);

/// Where the follower sends what it learns.
pub(super) struct Follower {
    pub client: Client,
    pub prefix: String,
    pub state: Arc<Mutex<State>>,
    /// The highest revision applied to the mirror.
    pub seen: watch::Sender<i64>,
    pub changes: mpsc::UnboundedSender<RemoteChange>,
}

/// Records job `id` as another daemon wrote it, and says what that changed for this one.
pub(super) fn apply_job(state: &mut State, id: JobId, record: JobRecord) -> Option<RemoteChange> {
    let role = state.role;
    match state.jobs.get_mut(&id) {
        None => {
            let job = record.pending(id);
            if job.is_some() {
                state.in_flight += 1;
            } else {
                state.completed += 1;
            }
            state.jobs.insert(id, record);
            job.filter(|_| role == Role::Leader)
                .map(RemoteChange::Accepted)
        }
        // The leader's own records are newer than anything it reads back.
        Some(_) if role == Role::Leader => None,
        // An answer is never taken back.
        Some(known) if known.outcome.is_some() => None,
        Some(known) => {
            *known = record;
            let result = known.result(id)?;
            state.in_flight = state.in_flight.saturating_sub(1);
            state.completed += 1;
            Some(RemoteChange::Completed(result))
        }
    }
}

impl Follower {
    /// Follows the prefix from `revision` + 1 until `stop` is dropped.
    pub async fn run(self, mut revision: i64, mut stop: watch::Receiver<()>) {
        loop {
            tokio::select! {
                next = self.follow(revision) => revision = next,
                _ = stop.changed() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(REOPEN_PAUSE) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One watch, until it breaks; returns the revision to go on from.
    async fn follow(&self, mut revision: i64) -> i64 {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut watcher = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_REPLY);
        let mut stream = match watcher.watch(self.prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(e) => {
                warn!(reason = %e, event = "watch_failed", "cannot watch the journal: retrying");
                return revision;
            }
        };
        loop {
            let reply = match stream.message().await {
                Ok(Some(reply)) => reply,
                Ok(None) => return revision,
                Err(e) => {
                    warn!(reason = %e, event = "watch_broken", "the journal watch broke: re-opening");
                    return revision;
                }
            };
            if reply.compact_revision() > 0 || reply.canceled() {
                return self.reload(revision, reply.compact_revision()).await;
            }
            for event in reply.events() {
                let Some(kv) = event.kv() else { continue };
                self.apply(event.event_type(), kv.key(), kv.value());
                revision = revision.max(kv.mod_revision());
            }
            self.seen.send_replace(revision);
        }
    }

    fn apply(&self, kind: EventType, key: &[u8], value: &[u8]) {
        let name = String::from_utf8_lossy(key);
        let Some(name) = name.strip_prefix(&self.prefix) else {
            return;
        };
        let mut state = lock(&self.state);
        if let Some(hex) = name.strip_prefix("job/") {
            let Ok(id) = JobId::from_str_radix(hex, 16) else {
                return;
            };
            if kind == EventType::Delete {
                state.forget(id);
                return;
            }
            // Written before this daemon pruned it, and seen only now.
            if state.is_pruned_here(id) {
                return;
            }
            match decode::<JobRecord>(key, value) {
                Ok(record) => {
                    if let Some(change) = apply_job(&mut state, id, record) {
                        let _ = self.changes.send(change);
                    }
                }
                Err(e) => warn!(reason = %e, job = id, event = "unreadable_record",
                                "ignoring an unreadable job record"),
            }
        } else if let Some(event_key) = name.strip_prefix("event/") {
            match kind {
                EventType::Delete => {
                    state.events.remove(event_key);
                }
                EventType::Put => {
                    if let Ok(event) = decode::<Event>(key, value) {
                        state.events.insert(event_key.to_string(), event);
                    }
                }
            }
        }
    }

    /// etcd no longer has the revisions after `revision`: read everything afresh and apply it
    /// as changes, then follow from the snapshot.
    async fn reload(&self, revision: i64, compacted: i64) -> i64 {
        info!(
            from = revision,
            compacted,
            event = "watch_compacted",
            "the journal watch fell behind etcd's compaction: reading the journal again"
        );
        let (snapshot, at) = match load(&self.client, &self.prefix).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                warn!(reason = %reason, event = "watch_failed", "cannot read the journal again");
                return revision;
            }
        };
        let mut state = lock(&self.state);
        // Pruned while the watch was away: finished records below the floor that etcd no
        // longer holds. (Above it, a record missing from the snapshot may be one of ours not
        // written yet.)
        let floor = snapshot.pruning.floor;
        let gone: Vec<JobId> = state
            .jobs
            .range(..floor)
            .filter(|(id, record)| record.outcome.is_some() && !snapshot.jobs.contains_key(id))
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            state.forget(id);
        }
        state.pruning.absorb(snapshot.pruning.pruned, floor);
        for (id, record) in snapshot.jobs {
            if state.is_pruned_here(id) {
                continue;
            }
            if let Some(change) = apply_job(&mut state, id, record) {
                let _ = self.changes.send(change);
            }
        }
        // Jobs that came and went while the watch was away are in neither: counted afresh.
        let done = state.jobs.values().filter(|r| r.outcome.is_some()).count() as u64;
        state.in_flight = state.jobs.len() as u64 - done;
        state.completed = done + state.pruning.pruned;
        // Merged: events of ours not written yet stay.
        state.events.extend(snapshot.events);
        drop(state);
        self.seen.send_replace(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Task, Verdict};
    use crate::journal::record::StoredTask;

    fn record(n: u64) -> JobRecord {
        JobRecord {
            task: StoredTask::from(&Task::Test(
                crate::number::Number::parse(&n.to_string(), 100).expect("a number"),
            )),
            submitted_ms: 0,
            attempts: 0,
            faults: 0,
            outcome: None,
        }
    }

    fn completed(n: u64, id: JobId) -> JobRecord {
        let mut done = record(n);
        let verdict = Verdict::Prime;
        assert!(done.complete(id, verdict, 1).is_ok());
        done
    }

    #[test]
    fn the_leader_runs_jobs_a_standby_accepted() {
        let mut state = State {
            role: Role::Leader,
            ..State::default()
        };
        let change = apply_job(&mut state, 7, record(13));
        assert!(matches!(change, Some(RemoteChange::Accepted(job)) if job.id == 7));
        assert_eq!(state.in_flight, 1);
    }

    #[test]
    fn the_leader_ignores_its_own_records_read_back() {
        let mut state = State {
            role: Role::Leader,
            ..State::default()
        };
        state.jobs.insert(7, completed(13, 7));
        state.completed = 1;
        // An older write of its own, seen late: the newer answer stays.
        assert_eq!(apply_job(&mut state, 7, record(13)), None);
        assert!(state.jobs[&7].outcome.is_some());
        assert_eq!((state.in_flight, state.completed), (0, 1));
    }

    #[test]
    fn a_standby_learns_answers_and_never_forgets_one() {
        let mut state = State::default();
        assert_eq!(apply_job(&mut state, 7, record(13)), None, "nothing to run");
        let change = apply_job(&mut state, 7, completed(13, 7));
        assert!(matches!(change, Some(RemoteChange::Completed(r)) if r.id == 7));
        assert_eq!((state.in_flight, state.completed), (0, 1));
        assert_eq!(apply_job(&mut state, 7, record(13)), None);
        assert!(state.jobs[&7].outcome.is_some());
    }
}
