//! The sled backend of the journal.
//!
//! A job's record (`J` and its id: the job's number, submit time, attempts, faults, and outcome
//! once done) is in the tree of its block of ids, or in `apart` (see `sled_records`). The
//! `journal` tree holds the rest; its keys are a one-byte kind followed by big-endian integers,
//! so that they sort numerically:
//!
//! | key             | value                                                              |
//! |-----------------|--------------------------------------------------------------------|
//! | `M` `next_id`   | the next job id (u64)                                              |
//! | `M` `low_water` | every job below this id is done (u64)                              |
//! | `M` `format`    | the layout version of these records (u32)                          |
//! | `M` `prune_floor` | below it, finished jobs are pruned (see `sled_prune`)            |
//!
//! Accepting jobs writes their records one key at a time and then the next id, every 128 jobs:
//! a crash can keep a prefix of a large submission, which was not acknowledged, and whose jobs
//! then run like any other; records past the next id (an accept cut off before it moved it) are
//! dropped at open. No sled batches: one takes sled's global write lock, stalling every other
//! write while it runs (accepting in batches of 128 made this daemon about a third slower).
//! Completing a job is one atomic single-key write: the outcome goes into the job's own record.
//! Those are the only writes per job: an index of jobs in flight would cost two more writes per
//! job. Instead the journal keeps the low-water mark (in memory exactly, see [`DoneWindow`],
//! and on disk as of the last flush) and a replay scans the records from it. Every id below
//! `next_id` has a record, so the completed count is `next_id - 1 - in flight`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::info;

use super::integrity;
use super::mark::Mark;
use super::migrate;
use super::record::{CompleteOnce, JobRecord};
use super::sled_keys::{
    be_u64, corrupt, decode, describe, encode, job_key, read_counter, storage, FORMAT_KEY,
    LOW_WATER_KEY, NEXT_ID_KEY, SLED_FORMAT,
};
use super::sled_prune::{self, PruneState};
use super::sled_records::{self, Records};
use super::window::DoneWindow;
use super::{
    BoxFuture, Completion, Counts, GroupCommit, InFlightIter, Journal, JournalError, Lookup, Pass,
    Retained, Ticket, Timings,
};
use crate::event::Event;
use crate::job::{now_ms, InFlight, Job, JobId, Task, Verdict};
use crate::retention::Retention;

/// Most jobs accepted between two moves of the next id. (Not sled batches: sled 0.34 also keeps
/// memory in proportion to the size of the batch a record was written in until the record is
/// rewritten: a million jobs accepted in batches of 1,000 and not yet completed held 1.68 GB.)
const ACCEPT_CHUNK: usize = 128;
/// Least time between the starts of two flushes (see the group-commit module).
const FLUSH_PACE: Duration = Duration::from_millis(1);

/// Sizes chosen by the operator.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// sled's page cache: its 1 GiB default is far more than the in-flight set needs.
    pub cache_bytes: u64,
    /// Events kept in the event log; older ones are dropped.
    pub max_events: u64,
}

pub struct SledJournal {
    /// The `journal` tree: the counters and the format.
    tree: sled::Tree,
    /// The job records.
    records: Arc<Records>,
    /// The event log: `at_ms` and a sequence number, both big-endian, to an encoded event.
    events: sled::Tree,
    event_seq: AtomicU64,
    event_count: AtomicU64,
    max_events: u64,
    mark: Arc<Mark>,
    stable: Arc<Stable>,
    commits: GroupCommit,
    /// Held while allocating ids, so ids are written in order.
    next_id: Mutex<JobId>,
    /// Which ids are done (the low-water mark), and how many are not: shared with the
    /// flusher, which stores the mark.
    window: Arc<Mutex<DoneWindow>>,
    /// Where pruning stands; held for a whole pass (one at a time).
    prune: Mutex<PruneState>,
}

fn be_u32(key: &[u8], bytes: &[u8]) -> Result<u32, JournalError> {
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| corrupt(key, "expected 4 bytes"))?;
    Ok(u32::from_be_bytes(array))
}

fn open_error(path: &Path, err: sled::Error) -> JournalError {
    let reason = err.to_string();
    match err {
        sled::Error::Io(ref e) if integrity::is_disk_full(e) => integrity::disk_full(path, e),
        _ => open_error_of(path.to_path_buf(), err, reason),
    }
}

fn open_error_of(path: std::path::PathBuf, err: sled::Error, reason: String) -> JournalError {
    match err {
        _ if reason.contains("could not acquire lock") => JournalError::Locked { path },
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => {
            JournalError::Damaged { path, reason }
        }
        _ => JournalError::Open { path, reason },
    }
}

/// Opens sled, turning a panic in its recovery (it asserts on some damage) into an error.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, JournalError> {
    // We flush ourselves through group commit; sled's timer would only add fsyncs.
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .flush_every_ms(None);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open())) {
        Ok(opened) => opened.map_err(|e| open_error(dir, e)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(JournalError::Damaged {
                path: dir.to_path_buf(),
                reason: format!("sled failed while recovering it ({message})"),
            })
        }
    }
}

/// Opens the job records, refusing a journal that lost a block of them.
fn open_records(
    dir: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    next_id: JobId,
) -> Result<Records, JournalError> {
    let records = Records::open(db, sled_prune::stored_floor(tree)?)?;
    let needed = sled_records::needed_blocks(records.floor(), next_id);
    let missing = records.missing_blocks(needed);
    if let Some(first) = missing.first() {
        return Err(JournalError::Damaged {
            path: dir.to_path_buf(),
            reason: format!(
                "{} block(s) of job records are missing, the first of ids from {}",
                missing.len(),
                first * sled_records::BLOCK_IDS
            ),
        });
    }
    // Records a crash left from the next id on: written by an accept cut off before it moved
    // the next id, so never acknowledged (an acknowledgement waits for a flush after it), and
    // their ids are given out again.
    records.drop_from(next_id)?;
    Ok(records)
}

/// The event log of a journal no daemon has open (`primed events --data-dir`), at or after
/// `since_ms`: read without touching the jobs, so it works on a journal that will not start.
pub fn stored_events(dir: &Path, since_ms: u64) -> Result<Vec<Event>, JournalError> {
    if !dir.join("conf").exists() {
        return Err(JournalError::Open {
            path: dir.to_path_buf(),
            reason: "there is no journal here".into(),
        });
    }
    integrity::ready_to_read(dir)?;
    let db = open_db(dir, 16 << 20)?;
    let events = db.open_tree("events").map_err(|e| open_error(dir, e))?;
    events
        .range(since_ms.to_be_bytes()..)
        .map(|entry| {
            let (key, value) = entry.map_err(storage("read event log"))?;
            decode(&key, &value)
        })
        .collect()
}

/// Refuses records laid out by another version, upgrading those it knows how to (see
/// [`migrate`]); stamps a new journal with ours.
fn check_format(
    dir: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    events: &sled::Tree,
    marked: u64,
) -> Result<(), JournalError> {
    let found = match tree.get(FORMAT_KEY).map_err(storage("read format"))? {
        Some(bytes) => be_u32(FORMAT_KEY, &bytes)?,
        None if tree
            .get(NEXT_ID_KEY)
            .map_err(storage("read format"))?
            .is_some() =>
        {
            1
        }
        // Not stamped yet: a new journal, unless its mark says jobs were acknowledged.
        None if marked > 1 => {
            return Err(JournalError::Damaged {
                path: dir.to_path_buf(),
                reason: format!(
                    "it holds no records at all, though ids below {marked} had been acknowledged"
                ),
            })
        }
        None => {
            tree.insert(FORMAT_KEY, &SLED_FORMAT.to_be_bytes())
                .map_err(storage("write format"))?;
            SLED_FORMAT
        }
    };
    if found == 3 {
        let jobs = migrate::from_3(tree, events)?;
        tree.flush().map_err(storage("flush the migration"))?;
        migrated(3, 4, jobs);
    }
    if found == 3 || found == 4 {
        migrated(4, SLED_FORMAT, migrate::from_4(db, tree)?);
        return Ok(());
    }
    if found != SLED_FORMAT {
        return Err(JournalError::Format {
            path: dir.to_path_buf(),
            found,
            expected: SLED_FORMAT,
        });
    }
    // What an interrupted migration from format 4 left.
    migrate::remove_moved(tree)
}

fn migrated(from: u32, to: u32, jobs: u64) {
    info!(
        from,
        to,
        jobs,
        event = "journal_migrated",
        "journal upgraded to this version's format"
    );
}

fn count_events(events: &sled::Tree) -> Result<u64, JournalError> {
    let mut count = 0;
    for entry in events.iter().keys() {
        entry.map_err(storage("count events"))?;
        count += 1;
    }
    Ok(count)
}

impl SledJournal {
    /// Opens (or creates) the journal in `dir`.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<Self, JournalError> {
        let marked = integrity::prepare(dir)?;
        Self::open_marked(dir, options, marked).inspect_err(|e| {
            // A failed open (a full disk, say) leaves the journal as it was; but a journal
            // another daemon holds is that daemon's to tidy.
            if !matches!(e, JournalError::Locked { .. }) {
                let _ = integrity::drop_unfinished_snapshots(dir);
            }
        })
    }

    fn open_marked(dir: &Path, options: JournalOptions, marked: u64) -> Result<Self, JournalError> {
        let db = open_db(dir, options.cache_bytes)?;
        let tree = db.open_tree("journal").map_err(|e| open_error(dir, e))?;
        let events = db.open_tree("events").map_err(|e| open_error(dir, e))?;
        let event_seq = match events.last().map_err(storage("read event log"))? {
            Some((key, _)) if key.len() == 16 => be_u64(&key, &key[8..])? + 1,
            _ => 0,
        };
        check_format(dir, &db, &tree, &events, marked)?;
        let event_count = count_events(&events)?;
        // A journal without its `M` keys has never accepted a job: ids start at 1.
        let next_id = read_counter(&tree, NEXT_ID_KEY)?.max(1);
        let low_water = read_counter(&tree, LOW_WATER_KEY)?.clamp(1, next_id);
        integrity::check_complete(dir, marked, next_id)?;
        let records = Arc::new(open_records(dir, &db, &tree, next_id)?);
        // The format stamp or a migration, and whatever a killed daemon left in the page
        // cache, made durable before the mark may cover it.
        db.flush().map_err(|e| open_error(dir, e))?;
        let log = integrity::sync_log(dir).map_err(|e| mark_error(dir, &e))?;
        let mark = Mark::open(dir, next_id).map_err(|e| mark_error(dir, &e))?;
        let mark = Arc::new(mark);
        let stable = Arc::new(Stable {
            db: db.clone(),
            log,
            mark: Arc::clone(&mark),
        });
        // Which of the jobs from the mark on are done is learnt as the replay reads them.
        let window = Arc::new(Mutex::new(DoneWindow::new(low_water, next_id)));
        let commits = start_flusher(dir, &tree, &window, &stable)?;
        let prune = Mutex::new(PruneState::load(&records));
        // Pruned ids are done, and the replay will not read them: the window learns it here.
        for id in low_water..records.floor().min(next_id) {
            if !records.is_apart(id) {
                lock(&window).mark_done(id);
            }
        }
        Ok(Self {
            prune,
            records,
            tree,
            events,
            event_seq: AtomicU64::new(event_seq),
            event_count: AtomicU64::new(event_count),
            max_events: options.max_events,
            mark,
            stable,
            commits,
            next_id: Mutex::new(next_id),
            window,
        })
    }

    fn read_job(&self, id: JobId) -> Result<Option<JobRecord>, JournalError> {
        let key = job_key(id);
        match self.records.get(id)? {
            Some(bytes) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Reads, changes and writes back the record of `id`, as one step among rewrites.
    fn rewrite<R>(
        &self,
        id: JobId,
        what: &'static str,
        change: impl FnOnce(&mut JobRecord) -> Option<R>,
    ) -> Result<Option<R>, JournalError> {
        let key = job_key(id);
        self.records.rewrite(id, |stored| {
            let Some(bytes) = stored else {
                return Err(corrupt(&key, format!("{what}: no such job")));
            };
            let mut record: JobRecord = decode(&key, &bytes)?;
            let Some(changed) = change(&mut record) else {
                return Ok(None);
            };
            Ok(Some((changed, encode(&record)?)))
        })
    }
}

fn mark_error(dir: &Path, error: &std::io::Error) -> JournalError {
    if integrity::is_disk_full(error) {
        return integrity::disk_full(dir, error);
    }
    JournalError::Open {
        path: dir.to_path_buf(),
        reason: format!("cannot write its mark: {error}"),
    }
}

/// What makes applied writes durable, in order: sled's flush, then an `fdatasync` of its log
/// (sled 0.34 flushes with `sync_file_range` alone, which leaves the file's size and the
/// device's cache unflushed: a power cut could lose an acknowledged tail), then the mark.
struct Stable {
    db: sled::Db,
    log: std::fs::File,
    mark: Arc<Mark>,
}

impl Stable {
    fn commit(&self) -> Result<(), String> {
        let covered = self.mark.before_flush();
        self.db.flush().map_err(|e| e.to_string())?;
        self.log
            .sync_data()
            .map_err(|e| format!("cannot sync the journal's log: {e}"))?;
        // Durable, but acknowledged only once the mark covers them: a lost tail of the log
        // must be seen on the next open, never taken for its end.
        self.mark
            .flushed(covered)
            .map_err(|e| format!("cannot move the journal mark: {e}"))
    }
}

/// The group-commit flusher: before each flush it stores the low-water mark (the completions
/// it covers were applied earlier, so the same flush makes them durable first), after each
/// one it moves the high-water mark, before any of the flush's jobs is acknowledged.
fn start_flusher(
    dir: &Path,
    tree: &sled::Tree,
    window: &Arc<Mutex<DoneWindow>>,
    stable: &Arc<Stable>,
) -> Result<GroupCommit, JournalError> {
    let (tree, window, stable) = (tree.clone(), Arc::clone(window), Arc::clone(stable));
    let stored = AtomicU64::new(0);
    let flush = move || {
        let low_water = lock(&window).base();
        if stored.swap(low_water, Ordering::Relaxed) != low_water {
            tree.insert(LOW_WATER_KEY, &low_water.to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
        stable.commit()
    };
    GroupCommit::start(Box::new(flush), FLUSH_PACE).map_err(|e| JournalError::Open {
        path: dir.to_path_buf(),
        reason: format!("cannot start the flusher thread: {e}"),
    })
}

impl SledJournal {
    fn drop_oldest_event(&self) -> Result<(), JournalError> {
        if self
            .events
            .pop_min()
            .map_err(storage("trim event log"))?
            .is_some()
        {
            self.event_count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal for SledJournal {
    fn accept(&self, tasks: Vec<Task>) -> Result<(Vec<Job>, Ticket), JournalError> {
        let submitted_ms = now_ms();
        let mut next_id = lock(&self.next_id);
        let mut jobs = Vec::with_capacity(tasks.len());
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let (first, before) = (*next_id, jobs.len());
            for (id, task) in (first..).zip(tasks.by_ref().take(ACCEPT_CHUNK)) {
                let record = JobRecord::accepted(&task, submitted_ms);
                self.records.accept(id, encode(&record)?)?;
                jobs.push(Job {
                    id,
                    task,
                    attempts: 0,
                });
            }
            let after = first + (jobs.len() - before) as u64;
            // After the records: every id below the next id has one, in any state a crash
            // leaves (records past it are dropped at the next open).
            self.tree
                .insert(NEXT_ID_KEY, &after.to_be_bytes())
                .map_err(storage("accept"))?;
            *next_id = after;
            lock(&self.window).extend(after);
            self.mark.applied(after);
        }
        Ok((jobs, self.commits.record()))
    }

    fn record_attempt(&self, id: JobId, attempts: u32) -> Result<(), JournalError> {
        self.rewrite(id, "record attempt", |record| record.note_attempt(attempts))?;
        Ok(())
    }

    fn complete(
        &self,
        id: JobId,
        verdict: Verdict,
        attempts: u32,
    ) -> Result<(Completion, Ticket), JournalError> {
        let mut once = CompleteOnce::new(id, verdict, attempts);
        let recorded = self.rewrite(id, "complete", |record| once.apply(record))?;
        let completion = once.completion(recorded, || describe(&job_key(id)))?;
        if matches!(completion, Completion::Recorded(_)) {
            lock(&self.window).mark_done(id);
        }
        Ok((completion, self.commits.record()))
    }

    fn record_fault(&self, id: JobId) -> Result<u32, JournalError> {
        let faults = self.rewrite(id, "record fault", |record| Some(record.add_fault()))?;
        // Not awaited: a crash that forgets a fault only grants the job one more attempt.
        self.commits.record();
        faults.ok_or_else(|| corrupt(&job_key(id), "fault not recorded"))
    }

    fn pending(&self, id: JobId) -> Result<Option<Job>, JournalError> {
        Ok(self.read_job(id)?.and_then(|record| record.pending(id)))
    }

    fn in_flight_from(&self, from: JobId) -> InFlightIter {
        let low_water = lock(&self.window).base();
        let window = Arc::clone(&self.window);
        let jobs = self.records.scan(low_water.max(from)).map(move |entry| {
            let (id, value) = entry?;
            let record: JobRecord = decode(&job_key(id), &value)?;
            if record.outcome.is_some() {
                // Done before a restart: the window learns it here.
                lock(&window).mark_done(id);
            }
            Ok(record.pending(id).map(|job| InFlight {
                job,
                submitted_ms: record.submitted_ms,
            }))
        });
        Box::new(jobs.filter_map(Result::transpose))
    }

    fn timings(&self, id: JobId) -> Result<Option<Timings>, JournalError> {
        Ok(self.read_job(id)?.map(|record| record.timings()))
    }

    fn lookup(&self, id: JobId) -> Result<Lookup, JournalError> {
        Ok(match self.read_job(id)? {
            Some(record) => record.result(id).map_or(Lookup::Pending, Lookup::Done),
            // Below the floor only what was kept apart has a record left.
            None if id > 0 && id < self.records.floor() => Lookup::Pruned,
            None => Lookup::Unknown,
        })
    }

    fn prune(&self, policy: &Retention, now_ms: u64, budget: usize) -> Result<Pass, JournalError> {
        let mut state = lock(&self.prune);
        let next_id = *lock(&self.next_id);
        let low_water = lock(&self.window).base();
        let completed = self.counts().completed;
        let ground = sled_prune::Ground {
            meta: &self.tree,
            records: &self.records,
            next_id,
            low_water,
            completed,
        };
        let pass = sled_prune::pass(ground, &mut state, policy, now_ms, budget)?;
        if pass.pruned > 0 {
            // Durable with the next flush; a crash before it only brings records back.
            self.commits.record();
        }
        Ok(pass)
    }

    fn retained(&self) -> Retained {
        let completed = self.counts().completed;
        lock(&self.prune).retained(completed)
    }

    fn counts(&self) -> Counts {
        // Hold the id lock so both numbers describe the same moment's allocations.
        let next_id = *lock(&self.next_id);
        let in_flight = lock(&self.window).pending();
        Counts {
            in_flight,
            completed: (next_id - 1).saturating_sub(in_flight),
        }
    }

    fn durable(&self, ticket: Ticket) -> BoxFuture<Result<(), JournalError>> {
        self.commits.wait(ticket)
    }

    fn record_event(&self, event: &Event) -> Result<(), JournalError> {
        let seq = self.event_seq.fetch_add(1, Ordering::Relaxed);
        let mut key = [0; 16];
        key[..8].copy_from_slice(&event.at_ms.to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        let previous = self
            .events
            .insert(key, encode(event)?)
            .map_err(storage("record event"))?;
        if previous.is_none() && self.event_count.fetch_add(1, Ordering::Relaxed) >= self.max_events
        {
            self.drop_oldest_event()?;
        }
        self.commits.record();
        Ok(())
    }

    fn events(&self, since_ms: u64) -> Result<Vec<Event>, JournalError> {
        self.events
            .range(since_ms.to_be_bytes()..)
            .map(|entry| {
                let (key, value) = entry.map_err(storage("read event log"))?;
                decode(&key, &value)
            })
            .collect()
    }

    fn flush(&self) -> Result<(), JournalError> {
        self.stable.commit().map_err(JournalError::Flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;

    const OPTIONS: JournalOptions = JournalOptions {
        cache_bytes: 8 << 20,
        max_events: 3,
    };

    /// Opens the journal in `dir`, which this process may just have closed: sled's own I/O
    /// threads let go of a closed database (and of its lock) a moment later, and say nothing
    /// when they do, so a reopen in the same process tries again for a while.
    fn try_open(dir: &Path) -> Result<SledJournal, JournalError> {
        for _ in 0..500 {
            match SledJournal::open(dir, OPTIONS) {
                Err(JournalError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                opened => return opened,
            }
        }
        SledJournal::open(dir, OPTIONS)
    }

    fn open(dir: &Path) -> SledJournal {
        try_open(dir).unwrap()
    }

    fn numbers(values: &[u64]) -> Vec<Task> {
        values
            .iter()
            .map(|&v| Task::Test(Number::Small(v)))
            .collect()
    }

    #[tokio::test]
    async fn accepted_jobs_survive_reopening_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, ticket) = {
            let journal = open(dir.path());
            let accepted = journal.accept(numbers(&[7, 8, 9])).unwrap();
            journal.durable(accepted.1).await.unwrap();
            accepted
        };
        assert!(ticket > 0);
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        let journal = open(dir.path());
        let replayed: Vec<_> = journal.in_flight().map(Result::unwrap).collect();
        assert_eq!(replayed.len(), 3);
        assert_eq!(replayed[2].job.task, Task::Test(Number::Small(9)));
        assert_eq!(journal.counts().in_flight, 3);
        let (more, _) = journal.accept(numbers(&[10])).unwrap();
        assert_eq!(more[0].id, 4);
    }

    #[tokio::test]
    async fn replay_sees_pending_jobs_with_their_recorded_attempts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            let (jobs, _) = journal.accept(numbers(&[11, 12, 13])).unwrap();
            journal.record_attempt(jobs[0].id, 2).unwrap();
            journal.record_attempt(jobs[0].id, 1).unwrap();
            journal.complete(jobs[1].id, Verdict::Composite, 1).unwrap();
            assert_eq!(journal.pending(jobs[0].id).unwrap().unwrap().attempts, 2);
            assert_eq!(journal.pending(jobs[1].id).unwrap(), None);
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        let pending: Vec<_> = journal
            .in_flight()
            .map(|f| f.map(|f| (f.job.id, f.job.attempts)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pending, vec![(1, 2), (3, 0)], "attempts never go back");
        assert_eq!(journal.counts().in_flight, 2);
    }

    #[tokio::test]
    async fn the_low_water_mark_survives_reopening_and_bounds_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            let (jobs, _) = journal.accept(numbers(&[2, 3, 4, 5])).unwrap();
            for job in &jobs[..3] {
                journal.complete(job.id, Verdict::Prime, 1).unwrap();
            }
            assert_eq!(lock(&journal.window).base(), 4);
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        assert_eq!(read_counter(&journal.tree, LOW_WATER_KEY).unwrap(), 4);
        assert_eq!(lock(&journal.window).base(), 4);
        assert_eq!(journal.in_flight().count(), 1);
        let (more, _) = journal.accept(numbers(&[6])).unwrap();
        journal.complete(more[0].id, Verdict::Composite, 1).unwrap();
        assert_eq!(lock(&journal.window).base(), 4, "job 4 still pins the mark");
        journal.complete(4, Verdict::Composite, 1).unwrap();
        assert_eq!(lock(&journal.window).base(), 6);
    }

    #[tokio::test]
    async fn completion_is_atomic_and_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = open(dir.path());
        let (jobs, _) = journal.accept(numbers(&[97])).unwrap();
        let id = jobs[0].id;
        assert_eq!(journal.lookup(id).unwrap(), Lookup::Pending);
        let (first, ticket) = journal.complete(id, Verdict::Prime, 1).unwrap();
        journal.durable(ticket).await.unwrap();
        assert!(
            matches!(first, Completion::Recorded(ref r) if r.verdict == Verdict::Prime && r.attempts == 1)
        );
        let (second, _) = journal.complete(id, Verdict::Prime, 2).unwrap();
        assert!(matches!(second, Completion::AlreadyRecorded(ref r) if r.attempts == 1));
        assert_eq!(
            journal.counts(),
            Counts {
                in_flight: 0,
                completed: 1
            }
        );
        assert_eq!(journal.in_flight().count(), 0);
        drop(journal);
        let journal = open(dir.path());
        assert_eq!(
            journal.counts(),
            Counts {
                in_flight: 0,
                completed: 1
            }
        );
        match journal.lookup(id).unwrap() {
            Lookup::Done(result) => assert_eq!(result.task, Task::Test(Number::Small(97))),
            other => panic!("expected a result, got {other:?}"),
        }
        assert_eq!(journal.lookup(999).unwrap(), Lookup::Unknown);
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path());
        let second = SledJournal::open(dir.path(), OPTIONS);
        assert!(
            matches!(second, Err(JournalError::Locked { .. })),
            "{:?}",
            second.err()
        );
    }

    #[tokio::test]
    async fn faults_accumulate_per_job_and_a_quarantine_is_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let journal = open(dir.path());
        let (jobs, _) = journal.accept(numbers(&[91, 92])).unwrap();
        assert_eq!(journal.record_fault(jobs[0].id).unwrap(), 1);
        assert_eq!(journal.record_fault(jobs[0].id).unwrap(), 2);
        assert_eq!(journal.record_fault(jobs[1].id).unwrap(), 1);
        let verdict = Verdict::Quarantined {
            reason: "boom".into(),
        };
        let (done, _) = journal.complete(jobs[0].id, verdict.clone(), 2).unwrap();
        assert!(matches!(done, Completion::Recorded(ref r) if r.verdict == verdict));
        assert_eq!(journal.in_flight().count(), 1);
        assert!(journal.record_fault(999).is_err());
    }

    #[test]
    fn the_event_log_keeps_the_newest_events_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            for at_ms in 1..=5 {
                let mut event = Event::new(crate::event::EventKind::Crash, "tester-1");
                event.at_ms = at_ms * 1000;
                journal.record_event(&event).unwrap();
            }
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        let times = |since| -> Vec<u64> {
            let events = journal.events(since).unwrap();
            events.iter().map(|e| e.at_ms).collect()
        };
        assert_eq!(times(0), vec![3000, 4000, 5000]);
        assert_eq!(times(4000), vec![4000, 5000]);
        let mut event = Event::new(crate::event::EventKind::Restart, "tester-1");
        event.at_ms = 6000;
        journal.record_event(&event).unwrap();
        assert_eq!(times(0), vec![4000, 5000, 6000]);
    }

    #[tokio::test]
    async fn a_journal_that_lost_flushed_jobs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            let (_, ticket) = journal.accept(numbers(&[1, 2, 3])).unwrap();
            journal.durable(ticket).await.unwrap();
            journal.flush().unwrap();
        }
        std::fs::remove_file(dir.path().join("db")).unwrap();
        match try_open(dir.path()) {
            Err(JournalError::Damaged { reason, .. }) => {
                assert!(reason.contains("below 4"), "{reason}")
            }
            other => panic!("a journal without its log opened: {:?}", other.err()),
        }
    }

    #[test]
    fn a_journal_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            journal
                .tree
                .insert(FORMAT_KEY, &9u32.to_be_bytes())
                .unwrap();
            journal.flush().unwrap();
        }
        let refused = try_open(dir.path());
        assert!(
            matches!(
                refused,
                Err(JournalError::Format {
                    found: 9,
                    expected: SLED_FORMAT,
                    ..
                })
            ),
            "{:?}",
            refused.err()
        );
    }

    /// Prunes with `policy` at `now_ms` until a pass says there is no more.
    fn prune_all(journal: &SledJournal, policy: &Retention, now_ms: u64) -> u64 {
        let mut pruned = 0;
        loop {
            let pass = journal.prune(policy, now_ms, 64).unwrap();
            pruned += pass.pruned;
            if !pass.more {
                return pruned;
            }
        }
    }

    const HOUR_MS: u64 = 3_600_000;

    #[tokio::test]
    async fn beyond_max_kept_the_oldest_finished_are_pruned_and_answered_as_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Retention {
            max_kept: 100,
            ..Retention::DEFAULT
        };
        // Pruning by count leaves a thirty-second of room: 97 are kept.
        {
            let journal = open(dir.path());
            let (jobs, _) = journal.accept(numbers(&[97; 300])).unwrap();
            for job in jobs.iter().take(250).filter(|j| j.id != 10) {
                journal.complete(job.id, Verdict::Prime, 1).unwrap();
            }
            assert_eq!(prune_all(&journal, &policy, now_ms()), 152);
            assert_eq!(journal.lookup(1).unwrap(), Lookup::Pruned);
            assert_eq!(journal.lookup(153).unwrap(), Lookup::Pruned);
            assert_eq!(
                journal.lookup(10).unwrap(),
                Lookup::Pending,
                "in flight: kept"
            );
            assert!(matches!(journal.lookup(154).unwrap(), Lookup::Done(_)));
            assert_eq!(journal.lookup(301).unwrap(), Lookup::Unknown);
            assert_eq!(journal.counts().completed, 249, "pruning keeps the counts");
            let retained = journal.retained();
            assert_eq!((retained.kept, retained.pruned), (97, 152));
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        assert_eq!(
            journal.lookup(2).unwrap(),
            Lookup::Pruned,
            "the floor survives reopening"
        );
        assert_eq!(journal.retained().pruned, 152);
        let in_flight: Vec<JobId> = journal.in_flight().map(|e| e.unwrap().job.id).collect();
        assert_eq!(in_flight[0], 10);
        assert_eq!(in_flight.len(), 51);
        assert_eq!(
            journal.counts().completed,
            249,
            "pruned ids count as done after a restart"
        );
        assert_eq!(journal.retained().kept, 97);
        // The job kept apart below the floor finishes, and goes when its turn comes.
        journal.complete(10, Verdict::Prime, 1).unwrap();
        assert_eq!(prune_all(&journal, &policy, now_ms()), 1);
        assert_eq!(journal.lookup(10).unwrap(), Lookup::Pruned);
        let (next, _) = journal.accept(numbers(&[5])).unwrap();
        assert_eq!(next[0].id, 301, "ids are never reused");
    }

    #[tokio::test]
    async fn records_an_accept_left_past_the_next_id_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            journal.accept(numbers(&[97; 10])).unwrap();
            // An accept cut off after two of its records, before it moved the next id.
            for id in [11, 12] {
                let record = JobRecord::accepted(&Task::Test(Number::Small(4)), 0);
                journal
                    .records
                    .accept(id, encode(&record).unwrap())
                    .unwrap();
            }
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        let in_flight: Vec<JobId> = journal.in_flight().map(|e| e.unwrap().job.id).collect();
        assert_eq!(in_flight, (1..=10).collect::<Vec<_>>());
        assert_eq!(journal.lookup(12).unwrap(), Lookup::Unknown);
        let (next, _) = journal.accept(numbers(&[5])).unwrap();
        assert_eq!(next[0].id, 11, "never acknowledged, so given out again");
        assert_eq!(journal.lookup(12).unwrap(), Lookup::Unknown);
    }

    #[tokio::test]
    async fn a_move_apart_cut_off_before_the_floor_leaves_one_record_that_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            journal.accept(numbers(&[97; 300])).unwrap();
            for id in (1..=300).filter(|&id| id != 30) {
                journal.complete(id, Verdict::Prime, 1).unwrap();
            }
            // A pass moved job 30 apart and was cut off before its floor moved.
            journal.records.keep_apart(30).unwrap();
            journal.record_attempt(30, 2).unwrap();
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        let in_flight: Vec<(JobId, u32)> = journal
            .in_flight()
            .map(|e| e.map(|f| (f.job.id, f.job.attempts)).unwrap())
            .collect();
        assert_eq!(in_flight, [(30, 2)], "once, as moved");
        assert_eq!(journal.counts().completed, 299);
        let policy = Retention {
            max_kept: 100,
            ..Retention::DEFAULT
        };
        assert_eq!(prune_all(&journal, &policy, now_ms()), 202);
        assert_eq!(journal.retained().kept, 97);
        assert_eq!(journal.lookup(30).unwrap(), Lookup::Pending);
        assert_eq!(journal.lookup(29).unwrap(), Lookup::Pruned);
        journal.complete(30, Verdict::Prime, 2).unwrap();
        journal.flush().unwrap();
        drop(journal);
        let journal = open(dir.path());
        assert!(matches!(journal.lookup(30).unwrap(), Lookup::Done(_)));
        assert_eq!(journal.retained().pruned, 202);
        assert_eq!(journal.in_flight().count(), 0);
    }

    /// The names of the block trees `journal` has.
    fn block_trees(journal: &SledJournal) -> Vec<String> {
        let names = journal.stable.db.tree_names();
        let names = names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        names.filter(|n| n.starts_with("jobs-")).collect()
    }

    #[tokio::test]
    async fn pruning_past_a_block_drops_its_tree_and_keeps_what_must_stay() {
        let dir = tempfile::tempdir().unwrap();
        let total = 2 * sled_records::BLOCK_IDS + 100;
        let policy = Retention {
            max_kept: 64,
            ..Retention::DEFAULT
        };
        {
            let journal = open(dir.path());
            journal.accept(numbers(&vec![97; total as usize])).unwrap();
            for id in (1..=total).filter(|&id| id != 7) {
                let verdict = if id == 8 {
                    Verdict::Cancelled
                } else {
                    Verdict::Prime
                };
                journal.complete(id, verdict, 1).unwrap();
            }
            assert_eq!(block_trees(&journal).len(), 3);
            let pruned = prune_all(&journal, &policy, now_ms());
            assert_eq!(pruned, total - 1 - 62, "all but 62 kept and job 7");
            assert_eq!(block_trees(&journal), [sled_records::block_name(2)]);
            assert_eq!(journal.lookup(7).unwrap(), Lookup::Pending, "in flight");
            assert_eq!(journal.lookup(8).unwrap(), Lookup::Pruned, "over the count");
            assert_eq!(journal.lookup(total - 62).unwrap(), Lookup::Pruned);
            assert!(matches!(journal.lookup(total).unwrap(), Lookup::Done(_)));
            journal.flush().unwrap();
        }
        let journal = open(dir.path());
        let in_flight: Vec<JobId> = journal.in_flight().map(|e| e.unwrap().job.id).collect();
        assert_eq!(in_flight, [7], "kept apart, and replayed");
        assert_eq!(journal.counts().completed, total - 1);
        assert_eq!(journal.retained().pruned, total - 1 - 62);
        journal.complete(7, Verdict::Prime, 1).unwrap();
        assert_eq!(prune_all(&journal, &policy, now_ms()), 1);
        assert_eq!(journal.lookup(7).unwrap(), Lookup::Pruned);
        assert_eq!(journal.retained().kept, 62);
    }

    #[tokio::test]
    async fn a_journal_that_lost_a_block_of_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = open(dir.path());
            let (_, ticket) = journal.accept(numbers(&[1, 2, 3])).unwrap();
            journal.durable(ticket).await.unwrap();
            let db = &journal.stable.db;
            assert!(db.drop_tree(sled_records::block_name(0)).unwrap());
            journal.flush().unwrap();
        }
        match try_open(dir.path()) {
            Err(JournalError::Damaged { reason, .. }) => {
                assert!(reason.contains("ids from 0"), "{reason}")
            }
            other => panic!("a journal without its block opened: {:?}", other.err()),
        }
    }
    #[tokio::test]
    async fn answers_go_after_their_period_and_failures_after_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let journal = open(dir.path());
        let (jobs, _) = journal.accept(numbers(&[97; 20])).unwrap();
        for job in &jobs {
            let verdict = if job.id == 5 {
                Verdict::Cancelled
            } else {
                Verdict::Prime
            };
            journal.complete(job.id, verdict, 1).unwrap();
        }
        let policy = Retention::DEFAULT;
        assert_eq!(
            prune_all(&journal, &policy, now_ms()),
            0,
            "all within their period"
        );
        assert_eq!(prune_all(&journal, &policy, now_ms() + 25 * HOUR_MS), 19);
        assert!(
            matches!(journal.lookup(5).unwrap(), Lookup::Done(_)),
            "a failure is kept longer"
        );
        assert_eq!(prune_all(&journal, &policy, now_ms() + 8 * 24 * HOUR_MS), 1);
        assert_eq!(journal.lookup(5).unwrap(), Lookup::Pruned);
        assert_eq!(journal.retained().kept, 0);
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(job_key(255) < job_key(256));
        assert!(job_key(JobId::MAX).as_slice() < NEXT_ID_KEY);
    }
}
