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
//! not yet reserved; `event/<at_ms:016x><origin:016x><seq:016x>` → an event; `format` → the
//! record format (the sled backend's); `leader/…` → the election's keys; `epoch` → the
//! current leader's election revision. Ids come from
//! blocks reserved by compare-and-swap on `next_id`, so that two daemons never allocate the
//! same id; the next block is reserved in the background before the current one runs out.

mod batch;
mod follow;
mod leader;
mod target;

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

pub use target::EtcdTarget;

use super::record::{JobRecord, StoredTask};
use super::{
    BoxFuture, Completion, Counts, InFlightIter, Journal, JournalError, JournalOptions, Lookup,
    RemoteChanges, Ticket,
};
use crate::events::Event;
use crate::job::{now_ms, InFlight, Job, JobId, Task, Verdict};

/// Ids reserved at a time; the next block is fetched once half of one is used.
const ID_BLOCK: u64 = 1 << 16;
/// Keys per read when loading the mirror.
const PAGE: i64 = 1024;
/// Largest reply accepted: a page of records of 10,000-digit numbers is several MiB (the
/// client's default limit is 4 MiB).
const MAX_REPLY: usize = 256 << 20;
/// How long one commit may keep retrying before etcd counts as unavailable: long enough to
/// ride out the loss of one member (the client keeps picking a dead one for a while, and a
/// dead raft leader is replaced after an election timeout, 1 s by default, plus a round or two).
const COMMIT_PATIENCE: Duration = Duration::from_secs(5);
/// Bounds one etcd call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between retries while etcd is unavailable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Jobs handed out per `in_flight` chunk.
const SCAN_CHUNK: usize = 4096;
/// Pause before campaigning again after a failed campaign.
const CAMPAIGN_PAUSE: Duration = Duration::from_secs(1);

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

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, JournalError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| etcd_error("encode")(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, JournalError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| JournalError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
}

/// A key the committer must write: a job record, an event, or an event to drop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Dirty {
    Job(JobId),
    Event(String),
    DropEvent(String),
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
    completed: u64,
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

    /// Queues job `id` with its record's size, so that batches stay under etcd's limit.
    fn mark_job(&mut self, id: JobId) -> Ticket {
        let size = self.jobs.get(&id).map_or(64, record_size);
        self.mark(Dirty::Job(id), size)
    }
}

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
struct Progress {
    durable: Ticket,
    failed: Ticket,
    reason: String,
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
        let floor = state
            .jobs
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1));
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
        let floor = state
            .jobs
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1));
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

/// What campaigning needs, apart from the journal (so that it can outlive a borrow of it).
#[derive(Clone)]
struct Candidate {
    client: Client,
    target: EtcdTarget,
    name: String,
    lease_ttl: Duration,
    state: Arc<Mutex<State>>,
    seen: watch::Receiver<i64>,
    deposer: Arc<watch::Sender<Option<String>>>,
    /// Held while leading: given up at shutdown.
    leadership: Arc<Mutex<Option<leader::Leadership>>>,
}

impl Candidate {
    /// Campaigns until elected, then makes sure the mirror holds everything written before
    /// (a fenced write, awaited on the watch: everything before it was seen) and only then
    /// writes as the leader. A failed campaign is tried again.
    async fn take_lead(self) -> Result<(), JournalError> {
        let election = format!("{}leader", self.target.prefix);
        loop {
            let leadership = match leader::campaign(
                &self.client,
                election.clone(),
                self.name.clone(),
                self.lease_ttl,
            )
            .await
            {
                Ok(leadership) => leadership,
                Err(reason) => {
                    warn!(reason = %reason, event = "campaign_failed", "campaigning again");
                    tokio::time::sleep(CAMPAIGN_PAUSE).await;
                    continue;
                }
            };
            info!(journal = %self.target, event = "elected",
                  "this daemon leads: catching up with the journal");
            let fence = leadership.fence();
            let revision = match self.mark_epoch(&fence, leadership.revision).await {
                Ok(revision) => revision,
                Err(reason) => {
                    warn!(reason = %reason, event = "campaign_failed", "campaigning again");
                    leadership.resign().await;
                    tokio::time::sleep(CAMPAIGN_PAUSE).await;
                    continue;
                }
            };
            let mut seen = self.seen.clone();
            seen.wait_for(|&seen| seen >= revision)
                .await
                .map_err(|_| JournalError::Closed)?;
            {
                let mut state = lock(&self.state);
                state.role = Role::Leader;
                state.fence = Some(fence);
            }
            tokio::spawn(watch_lease(
                leadership.lost.clone(),
                Arc::clone(&self.state),
                Arc::clone(&self.deposer),
            ));
            *self
                .leadership
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(leadership);
            info!(journal = %self.target, revision, event = "leading", "caught up: leading");
            return Ok(());
        }
    }

    /// The new leader's first write, `epoch` = its election revision: fenced, so it proves
    /// the election still holds, and its revision is where the mirror must have caught up to.
    async fn mark_epoch(&self, fence: &Compare, epoch: i64) -> Result<i64, String> {
        let put = TxnOp::put(
            format!("{}epoch", self.target.prefix),
            epoch.to_be_bytes().to_vec(),
            None,
        );
        let txn = Txn::new().when([fence.clone()]).and_then([put]);
        let mut client = self.client.clone();
        match tokio::time::timeout(CALL_TIMEOUT, client.txn(txn)).await {
            Ok(Ok(reply)) if reply.succeeded() => reply
                .header()
                .map(|header| header.revision())
                .ok_or_else(|| "etcd answered the epoch write without a revision".to_string()),
            Ok(Ok(_)) => Err("lost the election before the first write".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from etcd within {CALL_TIMEOUT:?}")),
        }
    }

    /// Reads job `id` from etcd itself, and if it is there, waits (for a while) until the
    /// watch has brought it into the mirror.
    async fn catch_up(self, id: JobId) {
        let mut client = self.client.clone();
        let key = job_key(&self.target.prefix, id);
        let options = GetOptions::new().with_keys_only();
        let written = match tokio::time::timeout(CALL_TIMEOUT, client.get(key, Some(options))).await
        {
            Ok(Ok(reply)) => reply.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        };
        if let Some(revision) = written {
            let mut seen = self.seen.clone();
            let _ =
                tokio::time::timeout(CALL_TIMEOUT, seen.wait_for(|&seen| seen >= revision)).await;
        }
    }

    /// Asks etcd who leads (for `status` on a standby).
    async fn leader_name(&self) -> Option<String> {
        let mut client = self.client.clone();
        let election = format!("{}leader", self.target.prefix);
        let reply = tokio::time::timeout(CALL_TIMEOUT, client.leader(election))
            .await
            .ok()?
            .ok()?;
        reply
            .kv()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }
}

/// Reads every record under `prefix` into a fresh mirror: one snapshot (every page at the
/// first page's revision), in pages whose replies may be large (records of big numbers).
async fn load(client: &Client, prefix: &str) -> Result<(State, i64), String> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_REPLY);
    let mut state = State::default();
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(PAGE)
            .with_revision(revision);
        let page = tokio::time::timeout(CALL_TIMEOUT, kv.get(from.clone(), Some(options)))
            .await
            .map_err(|_| format!("no answer from etcd within {CALL_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if revision == 0 {
            revision = page.header().map_or(0, |h| h.revision());
        }
        for kv in page.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let name = key.strip_prefix(prefix).unwrap_or(&key);
            if let Some(hex) = name.strip_prefix("job/") {
                let id = JobId::from_str_radix(hex, 16).map_err(|e| format!("{key}: {e}"))?;
                let record: JobRecord = decode(kv.key(), kv.value()).map_err(|e| e.to_string())?;
                if record.outcome.is_some() {
                    state.completed += 1;
                } else {
                    state.in_flight += 1;
                }
                state.jobs.insert(id, record);
            } else if let Some(event_key) = name.strip_prefix("event/") {
                let event: Event = decode(kv.key(), kv.value()).map_err(|e| e.to_string())?;
                state.events.insert(event_key.to_string(), event);
            }
        }
        match page.kvs().last() {
            Some(last) if page.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok((state, revision)),
        }
    }
}

/// Refuses a journal in another record format, and marks a new one (or one written before the
/// mark existed) with ours, as the sled backend does.
async fn check_format(client: &Client, target: &EtcdTarget) -> Result<(), JournalError> {
    let key = format!("{}format", target.prefix);
    let ours = super::sled_journal::FORMAT;
    let open_error = |reason: String| JournalError::Open {
        path: target.to_string().into(),
        reason,
    };
    let absent = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
    let mark = TxnOp::put(key.clone(), ours.to_be_bytes().to_vec(), None);
    let txn = Txn::new()
        .when([absent])
        .and_then([mark])
        .or_else([TxnOp::get(key, None)]);
    let mut client = client.clone();
    let reply = tokio::time::timeout(CALL_TIMEOUT, client.txn(txn))
        .await
        .map_err(|_| open_error(format!("no answer from etcd within {CALL_TIMEOUT:?}")))?
        .map_err(|e| open_error(e.to_string()))?;
    if reply.succeeded() {
        return Ok(());
    }
    let stored = reply.op_responses().into_iter().find_map(|op| match op {
        etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    let found = stored
        .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| open_error("its format mark is not a 4-byte number".into()))?;
    if found == ours {
        return Ok(());
    }
    Err(JournalError::Format {
        path: target.to_string().into(),
        found,
        expected: ours,
    })
}

/// Reserves the next block of ids by compare-and-swap on `next_id`, never below `floor`.
async fn reserve_ids(client: &Client, prefix: &str, floor: u64) -> Result<(u64, u64), String> {
    let mut client = client.clone();
    let key = format!("{prefix}next_id");
    let started = Instant::now();
    loop {
        let attempt = async {
            let current = client.get(key.clone(), None).await?;
            let (stored, compare) = match current.kvs().first() {
                Some(kv) => {
                    let Ok(bytes) = <[u8; 8]>::try_from(kv.value()) else {
                        return Ok(Err(format!("{key} is not an 8-byte id: refusing to guess")));
                    };
                    let revision = kv.mod_revision();
                    (
                        u64::from_be_bytes(bytes),
                        Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
                    )
                }
                None => (1, Compare::version(key.clone(), CompareOp::Equal, 0)),
            };
            let start = stored.max(floor);
            let Some(end) = start.checked_add(ID_BLOCK) else {
                return Ok(Err(format!("{key} is exhausted ({start})")));
            };
            let put = TxnOp::put(key.clone(), end.to_be_bytes().to_vec(), None);
            let swapped = client
                .txn(Txn::new().when([compare]).and_then([put]))
                .await?;
            Ok::<_, etcd_client::Error>(Ok(swapped.succeeded().then_some((start, end))))
        };
        match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(Ok(Ok(Some(block)))) => return Ok(block),
            Ok(Ok(Err(damaged))) => return Err(damaged),
            // Another daemon took a block meanwhile: read again.
            Ok(Ok(Ok(None))) => continue,
            Ok(Err(e)) if started.elapsed() > COMMIT_PATIENCE => return Err(e.to_string()),
            Err(_) if started.elapsed() > COMMIT_PATIENCE => {
                return Err(format!("no answer from etcd within {CALL_TIMEOUT:?}"))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The operations that write `keys` as the mirror holds them now.
/// A standby's job records are written only where no record exists yet, each on its own (a
/// nested transaction), so that a retried write (the first may have landed unanswered) never
/// overwrites the answer the leader stored since, nor holds back the other records.
fn operations(state: &State, prefix: &str, keys: &[Dirty]) -> Result<Vec<TxnOp>, JournalError> {
    let create_only = state.fence.is_none();
    keys.iter()
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
        })
        .collect()
}

/// What the committer needs: where to write, and the mirror (with the fence every write must
/// pass once this daemon leads).
struct Committer {
    client: Client,
    prefix: String,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Committer {
    /// One transaction, fenced if this daemon led when it was built (only a fenced one can be
    /// refused), retried while etcd is merely unavailable, for a while.
    async fn commit(&mut self, fence: Option<Compare>, ops: Vec<TxnOp>) -> Result<(), CommitError> {
        let started = Instant::now();
        loop {
            let txn = Txn::new().when(fence.clone().into_iter().collect::<Vec<_>>());
            let txn = txn.and_then(ops.clone());
            let error = match tokio::time::timeout(CALL_TIMEOUT, self.client.txn(txn)).await {
                Ok(Ok(reply)) if reply.succeeded() => return Ok(()),
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
async fn watch_lease(
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
async fn commit_loop(
    mut committer: Committer,
    progress: watch::Sender<Progress>,
    deposed: Arc<watch::Sender<Option<String>>>,
    stop: watch::Receiver<()>,
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
                Some(_) => batch::MAX_OPS,
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
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
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
            let record = JobRecord {
                task: StoredTask::from(&task),
                submitted_ms,
                attempts: 0,
                faults: 0,
                outcome: None,
            };
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
        let mut existing = None;
        let (recorded, ticket) = self.change(id, "complete", |record, counts| {
            let recorded = record
                .complete(id, verdict, attempts)
                .map_err(|answered| existing = Some(answered))
                .ok();
            // Counted under the same lock as the change, so status never sees them apart.
            if recorded.is_some() {
                counts.in_flight = counts.in_flight.saturating_sub(1);
                counts.completed += 1;
            }
            recorded
        })?;
        let completion = match (recorded, existing) {
            (Some(result), _) => Completion::Recorded(result),
            (None, Some(result)) => Completion::AlreadyRecorded(result),
            (None, None) => {
                return Err(JournalError::Corrupt {
                    key: job_key(&self.target.prefix, id),
                    reason: "completed without an outcome".into(),
                })
            }
        };
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

    fn in_flight(&self) -> InFlightIter {
        let state = Arc::clone(&self.state);
        // The next id to look at; None once the id space is exhausted.
        let mut from = Some(0);
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

    fn lookup(&self, id: JobId) -> Result<Lookup, JournalError> {
        Ok(match lock(&self.state).jobs.get(&id) {
            Some(record) => record.result(id).map_or(Lookup::Pending, Lookup::Done),
            None => Lookup::Unknown,
        })
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

    fn lead(&self) -> BoxFuture<Result<(), JournalError>> {
        Box::pin(self.candidate.clone().take_lead())
    }

    fn role(&self) -> BoxFuture<super::Role> {
        let candidate = self.candidate.clone();
        Box::pin(async move {
            if lock(&candidate.state).role == Role::Leader {
                return super::Role::Leader;
            }
            super::Role::Standby {
                leader: candidate.leader_name().await,
            }
        })
    }

    fn catch_up(&self, id: JobId) -> BoxFuture<()> {
        Box::pin(self.candidate.clone().catch_up(id))
    }

    fn resign(&self) -> BoxFuture<()> {
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

    fn deposed(&self) -> BoxFuture<String> {
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
