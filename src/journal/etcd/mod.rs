//! The etcd backend of the journal (cargo feature `etcd`): the records of the sled backend,
//! kept in a replicated etcd cluster so that the data needed to restart everything survives
//! the loss of a machine.
//!
//! Reads come from an in-memory mirror loaded at open. Every mutation updates the mirror and
//! queues its key with a ticket; one committer task writes the queued keys to etcd in
//! transactions of up to 128 operations, one transaction at a time (group commit again: one
//! quorum write carries many jobs). A ticket is durable once the transaction carrying it has
//! been committed by a quorum. While etcd cannot commit (a lost quorum, no reachable member),
//! waiting tickets fail at once, new jobs are refused with the reason (retry later), and the
//! queued writes are retried until etcd is back, so nothing accepted before is lost.
//!
//! Every daemon on the journal opens it at once, as a standby: it serves its clients from the
//! mirror, which a watch keeps in step (see [`follow`]), and writes only the records of the
//! jobs it accepts (new keys, so it cannot overwrite anyone's). It campaigns for leadership on
//! a lease (see [`leader`]); the winner runs the jobs and is the only writer of existing
//! records. Each of its transactions is fenced on its leadership key, and a refused one
//! (another daemon took over) deposes it.
//!
//! Keys under the target's prefix: `job/<id:016x>` → the job record; `next_id` → the first id
//! not yet reserved; `pruned` and `prune_floor` → the pruning counters (see [`prune`]);
//! `watched/<origin:016x>` → how far that daemon's watch has got (see [`compact`]);
//! `event/<at_ms:016x><origin:016x><seq:016x>` → an event; `format` → the
//! record format (the sled backend's); `leader/…` → the election's keys; `epoch` → the
//! current leader's election revision. Ids come from
//! blocks reserved by compare-and-swap on `next_id`, so that two daemons never allocate the
//! same id; the next block is reserved in the background before the current one runs out.

mod batch;
mod candidate;
mod commit;
mod compact;
mod follow;
mod leader;
mod prune;
mod store;
mod target;

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use etcd_client::{Client, Compare, ConnectOptions};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

pub use target::EtcdTarget;

use candidate::Candidate;
use commit::{commit_loop, Committer, Progress};
use store::{check_format, load, reserve_ids};

use super::record::{CompleteOnce, JobRecord, StoredTask};
use super::{
    BoxFuture, Completion, Coordination, Counts, Grant, InFlightIter, Journal, JournalError,
    JournalOptions, Lookup, Pass, RemoteChanges, Retained, Role as DaemonRole, Ticket, Timings,
};
use crate::event::Event;
use crate::job::{now_ms, InFlight, Job, JobId, Task, Verdict};
use crate::retention::Retention;

/// Ids reserved at a time; the next block is fetched once half of one is used.
const ID_BLOCK: u64 = 1 << 16;
/// Largest reply accepted: a page of records of 10,000-digit numbers is several MiB (the
/// client's default limit is 4 MiB).
const MAX_REPLY: usize = 256 << 20;
/// How long one commit may keep retrying before etcd counts as unavailable: long enough to
/// ride out the loss of one member (the client keeps picking a dead one for a while, and a
/// dead raft leader is replaced after an election timeout, 1 s by default, plus a round or two).
const COMMIT_PATIENCE: Duration = Duration::from_secs(5);
/// Bounds one etcd call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Jobs handed out per `in_flight` chunk.
const SCAN_CHUNK: usize = 4096;
/// The keys (under the prefix) of the pruning counters: finished jobs pruned, and one past the
/// highest id pruned; both 8 bytes big-endian.
const PRUNED_KEY: &str = "pruned";
const PRUNE_FLOOR_KEY: &str = "prune_floor";

/// What this daemon may write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Role {
    /// Only the records of jobs it accepts.
    #[default]
    Standby,
    /// Everything, fenced on its leadership.
    Leader,
}

fn etcd_error(operation: &'static str) -> impl Fn(String) -> JournalError {
    move |reason| JournalError::Storage { operation, reason }
}

use super::record::encode;

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, JournalError> {
    super::record::decode(|| String::from_utf8_lossy(key).into_owned(), bytes)
}

/// A key the committer must write: a job record, an event, or an event to drop; or a pruned
/// job's record to delete, with the counters as of that deletion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Dirty {
    Job(JobId),
    Event(String),
    DropEvent(String),
    Prune {
        id: JobId,
        pruned: u64,
        floor: JobId,
    },
}

#[derive(Default)]
struct Ids {
    next: u64,
    end: u64,
    spare: Option<(u64, u64)>,
    reserving: bool,
}

/// The mirror, and what is still to be written to etcd.
#[derive(Default)]
struct State {
    jobs: BTreeMap<JobId, JobRecord>,
    in_flight: u64,
    /// Every job finished, the pruned ones included.
    completed: u64,
    pruning: prune::Pruning,
    events: BTreeMap<String, Event>,
    event_seq: u64,
    ids: Ids,
    dirty: VecDeque<(Ticket, Dirty, usize)>,
    last_ticket: Ticket,
    /// Why etcd cannot commit right now; `None` when it can.
    unavailable: Option<String>,
    /// Why this daemon no longer leads; from then on nothing is written.
    deposed: Option<String>,
    role: Role,
    /// The condition of every transaction while this daemon leads.
    fence: Option<Compare>,
}

impl State {
    fn mark(&mut self, key: Dirty, size: usize) -> Ticket {
        self.last_ticket += 1;
        self.dirty.push_back((self.last_ticket, key, size));
        self.last_ticket
    }

    /// The lowest id a new block may start at: past every job this daemon knows of, and past
    /// every id pruned.
    fn id_floor(&self) -> JobId {
        let known = self
            .jobs
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1));
        known.max(self.pruning.floor)
    }

    /// Queues job `id` with its record's size, so that batches stay under etcd's limit.
    fn mark_job(&mut self, id: JobId) -> Ticket {
        let size = self.jobs.get(&id).map_or(64, record_size);
        self.mark(Dirty::Job(id), size)
    }
}

pub struct EtcdJournal {
    client: Client,
    target: EtcdTarget,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    progress: watch::Receiver<Progress>,
    deposed: watch::Receiver<Option<String>>,
    candidate: Candidate,
    remote: Mutex<Option<RemoteChanges>>,
    max_events: u64,
    /// Distinguishes this daemon's event keys from another's written in the same millisecond.
    origin: u64,
    /// Dropped with the journal: stops its background tasks.
    _stop: watch::Sender<()>,
}

/// An upper estimate of a record's encoded size, without encoding it.
fn record_size(record: &JobRecord) -> usize {
    let task = match &record.task {
        StoredTask::Test(bytes) => bytes.len(),
        StoredTask::MakePrime(_) => 5,
    };
    let outcome = match record.outcome.as_ref().map(|o| &o.verdict) {
        Some(Verdict::Made { prime }) => prime.len(),
        Some(Verdict::Quarantined { reason }) => reason.len(),
        _ => 0,
    };
    64 + task + outcome
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn job_key(prefix: &str, id: JobId) -> String {
    format!("{prefix}job/{id:016x}")
}

/// The smallest key after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl EtcdJournal {
    /// Connects, loads the mirror, reserves a first block of ids and starts following the
    /// journal, as a standby: [`Journal::lead`] campaigns.
    pub async fn open(
        target: EtcdTarget,
        options: JournalOptions,
        name: String,
        lease_ttl: Duration,
        compact_every: Duration,
    ) -> Result<Self, JournalError> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            // etcd drops clients that ping more often than every 5 s (too_many_pings).
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(3))
            .with_keep_alive_while_idle(false)
            // Without a leader, fail at once instead of hanging for seconds.
            .with_require_leader(true);
        let open_error = |reason: String| JournalError::Open {
            path: target.to_string().into(),
            reason,
        };
        let client = Client::connect(&target.endpoints, Some(connect))
            .await
            .map_err(|e| open_error(e.to_string()))?;
        check_format(&client, &target).await?;
        let (mut state, revision) = load(&client, &target.prefix).await.map_err(open_error)?;
        // Never below an id already used, whatever next_id says.
        let floor = state.id_floor();
        let (start, end) = reserve_ids(&client, &target.prefix, floor)
            .await
            .map_err(open_error)?;
        state.ids = Ids {
            next: start,
            end,
            ..Ids::default()
        };
        info!(journal = %target, jobs = state.jobs.len(), in_flight = state.in_flight,
              event = "journal_open", "etcd journal loaded");
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (deposer, deposed) = watch::channel(None);
        let (seen_tx, seen) = watch::channel(revision);
        let (changes, remote) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(());
        let state = Arc::new(Mutex::new(state));
        let deposer = Arc::new(deposer);
        let journal = EtcdJournal {
            candidate: Candidate {
                client: client.clone(),
                target: target.clone(),
                name,
                lease_ttl,
                state: Arc::clone(&state),
                seen,
                deposer: Arc::clone(&deposer),
                leadership: Arc::default(),
            },
            client,
            target,
            state,
            wake: Arc::new(Notify::new()),
            progress,
            deposed,
            remote: Mutex::new(Some(remote)),
            max_events: options.max_events,
            origin: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            _stop: stop,
        };
        let follower = follow::Follower {
            client: journal.client.clone(),
            prefix: journal.target.prefix.clone(),
            state: Arc::clone(&journal.state),
            seen: seen_tx,
            changes,
        };
        tokio::spawn(follower.run(revision, stopped.clone()));
        let compactor = compact::Compactor {
            client: journal.client.clone(),
            prefix: journal.target.prefix.clone(),
            origin: journal.origin,
            lease_ttl,
            compact_every,
            state: Arc::clone(&journal.state),
            seen: journal.candidate.seen.clone(),
        };
        tokio::spawn(compactor.run(stopped.clone()));
        tokio::spawn(commit_loop(
            Committer {
                client: journal.client.clone(),
                prefix: journal.target.prefix.clone(),
                state: Arc::clone(&journal.state),
                wake: Arc::clone(&journal.wake),
            },
            progress_tx,
            deposer,
            stopped,
        ));
        Ok(journal)
    }

    /// Takes `count` ids, reserving the next block in the background when this one runs low
    /// (or has run out: a failed reservation is tried again on the next call).
    fn allocate(&self, state: &mut State, count: u64) -> Result<u64, JournalError> {
        let floor = state.id_floor();
        let ids = &mut state.ids;
        if ids.next.saturating_add(count) > ids.end {
            match ids.spare {
                Some((start, end)) if end - start >= count => {
                    (ids.next, ids.end) = (start, end);
                    ids.spare = None;
                }
                _ => {
                    self.reserve_in_background(ids, floor);
                    return Err(etcd_error("allocate ids")(
                        "the next block of job ids is not reserved yet (etcd is slow or \
                         unreachable)"
                            .into(),
                    ));
                }
            }
        }
        let first = ids.next;
        ids.next += count;
        if ids.end - ids.next < ID_BLOCK / 2 {
            self.reserve_in_background(ids, floor);
        }
        Ok(first)
    }

    fn reserve_in_background(&self, ids: &mut Ids, floor: u64) {
        if ids.spare.is_none() && !ids.reserving {
            ids.reserving = true;
            let (client, prefix, state) = (
                self.client.clone(),
                self.target.prefix.clone(),
                Arc::clone(&self.state),
            );
            tokio::spawn(async move {
                let reserved = reserve_ids(&client, &prefix, floor).await;
                let mut state = lock(&state);
                state.ids.reserving = false;
                match reserved {
                    Ok(block) => state.ids.spare = Some(block),
                    Err(reason) => warn!(reason = %reason, "cannot reserve job ids"),
                }
            });
        }
    }

    fn change<R>(
        &self,
        id: JobId,
        what: &'static str,
        change: impl FnOnce(&mut JobRecord, &mut Counts) -> Option<R>,
    ) -> Result<(Option<R>, Ticket), JournalError> {
        let mut state = lock(&self.state);
        if state.role == Role::Standby {
            return Err(etcd_error(what)(
                "this daemon is a standby: only the leading daemon changes jobs (primed status \
                 names it)"
                    .into(),
            ));
        }
        let State {
            jobs,
            in_flight,
            completed,
            ..
        } = &mut *state;
        let record = jobs.get_mut(&id).ok_or_else(|| JournalError::Corrupt {
            key: job_key(&self.target.prefix, id),
            reason: format!("{what}: no such job"),
        })?;
        let mut counts = Counts {
            in_flight: *in_flight,
            completed: *completed,
        };
        let changed = change(record, &mut counts);
        (*in_flight, *completed) = (counts.in_flight, counts.completed);
        let Some(changed) = changed else {
            return Ok((None, state.last_ticket));
        };
        let ticket = state.mark_job(id);
        drop(state);
        self.wake.notify_one();
        Ok((Some(changed), ticket))
    }
}

impl Journal for EtcdJournal {
    fn accept(&self, tasks: Vec<Task>) -> Result<(Vec<Job>, Ticket), JournalError> {
        let submitted_ms = now_ms();
        let mut state = lock(&self.state);
        if let Some(reason) = &state.deposed {
            return Err(etcd_error("accept")(format!(
                "this daemon no longer leads: {reason}"
            )));
        }
        if let Some(reason) = &state.unavailable {
            return Err(etcd_error("accept")(format!(
                "etcd cannot commit: {reason}"
            )));
        }
        let first = self.allocate(&mut state, tasks.len() as u64)?;
        let mut jobs = Vec::with_capacity(tasks.len());
        let mut ticket = state.last_ticket;
        for (id, task) in (first..).zip(tasks) {
            if state.jobs.contains_key(&id) {
                return Err(JournalError::Corrupt {
                    key: job_key(&self.target.prefix, id),
                    reason: "allocated an id that is already a job's: next_id is behind".into(),
                });
            }
            let record = JobRecord::accepted(&task, submitted_ms);
            state.jobs.insert(id, record);
            state.in_flight += 1;
            ticket = state.mark_job(id);
            jobs.push(Job {
                id,
                task,
                attempts: 0,
            });
        }
        drop(state);
        self.wake.notify_one();
        Ok((jobs, ticket))
    }

    fn record_attempt(&self, id: JobId, attempts: u32) -> Result<(), JournalError> {
        self.change(id, "record attempt", |record, _| {
            record.note_attempt(attempts)
        })?;
        Ok(())
    }

    fn complete(
        &self,
        id: JobId,
        verdict: Verdict,
        attempts: u32,
    ) -> Result<(Completion, Ticket), JournalError> {
        let mut once = CompleteOnce::new(id, verdict, attempts);
        let (recorded, ticket) = self.change(id, "complete", |record, counts| {
            let recorded = once.apply(record);
            // Counted under the same lock as the change, so status never sees them apart.
            if recorded.is_some() {
                counts.in_flight = counts.in_flight.saturating_sub(1);
                counts.completed += 1;
            }
            recorded
        })?;
        let completion = once.completion(recorded, || job_key(&self.target.prefix, id))?;
        Ok((completion, ticket))
    }

    fn record_fault(&self, id: JobId) -> Result<u32, JournalError> {
        let (faults, _) = self.change(id, "record fault", |record, _| Some(record.add_fault()))?;
        faults.ok_or_else(|| JournalError::Corrupt {
            key: job_key(&self.target.prefix, id),
            reason: "fault not recorded".into(),
        })
    }

    fn pending(&self, id: JobId) -> Result<Option<Job>, JournalError> {
        Ok(lock(&self.state)
            .jobs
            .get(&id)
            .and_then(|record| record.pending(id)))
    }

    fn in_flight_from(&self, from: JobId) -> InFlightIter {
        let state = Arc::clone(&self.state);
        // The next id to look at; None once the id space is exhausted.
        let mut from = Some(from);
        let mut chunk: VecDeque<InFlight> = VecDeque::new();
        Box::new(std::iter::from_fn(move || {
            if chunk.is_empty() {
                let state = lock(&state);
                while let Some((&id, record)) = from.and_then(|f| state.jobs.range(f..).next()) {
                    from = id.checked_add(1);
                    if let Some(job) = record.pending(id) {
                        chunk.push_back(InFlight {
                            job,
                            submitted_ms: record.submitted_ms,
                        });
                        if chunk.len() == SCAN_CHUNK {
                            break;
                        }
                    }
                }
            }
            chunk.pop_front().map(Ok)
        }))
    }

    fn timings(&self, id: JobId) -> Result<Option<Timings>, JournalError> {
        Ok(lock(&self.state)
            .jobs
            .get(&id)
            .map(|record| record.timings()))
    }

    fn lookup(&self, id: JobId) -> Result<Lookup, JournalError> {
        let state = lock(&self.state);
        Ok(match state.jobs.get(&id) {
            Some(record) => record.result(id).map_or(Lookup::Pending, Lookup::Done),
            // Below the floor an id without a record was pruned (or belonged to a block of ids
            // a daemon reserved and never used: no client ever saw it).
            None if id > 0 && id < state.pruning.floor => Lookup::Pruned,
            None => Lookup::Unknown,
        })
    }

    fn prune(&self, policy: &Retention, now_ms: u64, budget: usize) -> Result<Pass, JournalError> {
        let mut state = lock(&self.state);
        // Only the leader prunes; and not while etcd cannot take the deletions (they would
        // only queue up).
        if state.role != Role::Leader || state.deposed.is_some() || state.unavailable.is_some() {
            return Ok(Pass::default());
        }
        let pass = state.prune_pass(policy, now_ms, budget);
        drop(state);
        if pass.pruned > 0 {
            self.wake.notify_one();
        }
        Ok(pass)
    }

    fn retained(&self) -> Retained {
        let state = lock(&self.state);
        Retained {
            kept: state.completed.saturating_sub(state.pruning.pruned),
            pruned: state.pruning.pruned,
            oldest_kept_ms: state.pruning.oldest_kept_ms,
        }
    }

    fn counts(&self) -> Counts {
        let state = lock(&self.state);
        Counts {
            in_flight: state.in_flight,
            completed: state.completed,
        }
    }

    fn durable(&self, ticket: Ticket) -> BoxFuture<Result<(), JournalError>> {
        let mut progress = self.progress.clone();
        Box::pin(async move {
            loop {
                {
                    let now = progress.borrow_and_update();
                    if now.durable >= ticket {
                        return Ok(());
                    }
                    if now.failed >= ticket {
                        return Err(JournalError::Flush(format!(
                            "etcd cannot commit: {}",
                            now.reason
                        )));
                    }
                }
                if progress.changed().await.is_err() {
                    return Err(JournalError::Closed);
                }
            }
        })
    }

    fn record_event(&self, event: &Event) -> Result<(), JournalError> {
        let mut state = lock(&self.state);
        state.event_seq += 1;
        let name = format!(
            "{:016x}{:016x}{:016x}",
            event.at_ms, self.origin, state.event_seq
        );
        state.events.insert(name.clone(), event.clone());
        let size = 128 + event.reason.as_ref().map_or(0, String::len) + event.actor.len();
        state.mark(Dirty::Event(name), size);
        while state.events.len() as u64 > self.max_events {
            let Some((oldest, _)) = state.events.pop_first() else {
                break;
            };
            state.mark(Dirty::DropEvent(oldest), 64);
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    fn events(&self, since_ms: u64) -> Result<Vec<Event>, JournalError> {
        Ok(lock(&self.state)
            .events
            .values()
            .filter(|e| e.at_ms >= since_ms)
            .cloned()
            .collect())
    }

    fn unavailable(&self) -> Option<String> {
        lock(&self.state).unavailable.clone()
    }

    fn catch_up(&self, id: JobId) -> BoxFuture<()> {
        Box::pin(self.candidate.clone().catch_up(id))
    }

    fn flush(&self) -> Result<(), JournalError> {
        let ticket = lock(&self.state).last_ticket;
        let durable = self.durable(ticket);
        // Called at shutdown from the daemon's multi-threaded runtime: wait without stalling
        // its other workers (block_in_place would panic on any other kind).
        let handle = tokio::runtime::Handle::try_current().map_err(|_| JournalError::Closed)?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(JournalError::Flush(
                "an etcd journal flushes from a multi-threaded runtime only".into(),
            ));
        }
        tokio::task::block_in_place(|| handle.block_on(durable))
    }
}

impl Coordination for EtcdJournal {
    fn acquire(&self) -> BoxFuture<Result<Grant, JournalError>> {
        let candidate = self.candidate.clone();
        // The leader runs every job: leading is being granted everything.
        Box::pin(async move { candidate.take_lead().await.map(|()| Grant::Everything) })
    }

    fn role(&self) -> BoxFuture<DaemonRole> {
        let candidate = self.candidate.clone();
        Box::pin(async move {
            if lock(&candidate.state).role == Role::Leader {
                return DaemonRole::Leader;
            }
            DaemonRole::Standby {
                leader: candidate.leader_name().await,
            }
        })
    }

    fn release(&self) -> BoxFuture<()> {
        let held = self
            .candidate
            .leadership
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Box::pin(async move {
            if let Some(leadership) = held {
                leadership.resign().await;
                info!(
                    event = "resigned",
                    "gave up the lead: a standby takes over at once"
                );
            }
        })
    }

    fn remote_changes(&self) -> Option<RemoteChanges> {
        self.remote
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn revoked(&self) -> BoxFuture<String> {
        let mut deposed = self.deposed.clone();
        Box::pin(async move {
            let reason = deposed
                .wait_for(Option::is_some)
                .await
                .map(|reason| reason.clone().unwrap_or_default());
            match reason {
                Ok(reason) => reason,
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_records_are_queued_with_their_size() {
        let mut state = State::default();
        let big = JobRecord {
            task: StoredTask::Test(vec![7; 12_500]),
            submitted_ms: 0,
            attempts: 0,
            faults: 0,
            outcome: None,
        };
        for id in 1..=128 {
            state.jobs.insert(id, big.clone());
            state.mark_job(id);
        }
        let (keys, newest) = batch::take(&mut state.dirty, batch::MAX_OPS);
        assert!(
            keys.len() < 128,
            "128 records of 12.5 KB exceed one etcd request"
        );
        assert_eq!(newest, keys.len() as u64);
        assert!(state.dirty.len() == 128 - keys.len());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end("/primed/"), b"/primed0".to_vec());
        assert!(job_key("/primed/", 7).as_bytes() < prefix_end("/primed/").as_slice());
        assert!(
            job_key("/primed/", 9) < job_key("/primed/", 10),
            "ids sort as numbers"
        );
    }
}
