//! Upgrading a sled journal written by an older primed, in place, on open: a daemon upgraded
//! with jobs in flight must answer them, not refuse to start (which, under systemd's
//! Restart=on-failure, would loop while the only way out dropped acknowledged jobs).
//!
//! Format 3 → 4: a job stored only a number (now a task: test a number, or make a prime), and
//! events had no alarm field. The two layouts cannot be told apart byte by byte (a format-3
//! record of a small number also decodes as a format-4 make-prime task), so progress is kept
//! instead: job records are rewritten in sled batches of [`CHUNK`], each batch also storing
//! the id migration has reached, and a crash midway resumes from there. Events are rewritten
//! in one batch; the format key is stamped last, in the batch that drops the progress key.
//!
//! Format 4 → 5: job records moved from the `journal` tree into the trees of their blocks of
//! ids, or into `apart` if below the prune floor (they were kept apart there; see
//! `sled_records`). A pruning chunk that a crash cut off is finished first, as format 4 did at
//! open. A crash midway starts over from the originals (what was copied is cleared first: the
//! older primed may have run on them since); the format is stamped after the copies and
//! before the originals are removed (a format-5 open removes any left).

use serde::{Deserialize, Serialize};

use super::record::{JobRecord, Outcome, StoredTask};
use super::sled_keys::{
    be_u64, encode, job_key, read_counter, storage, FORMAT_KEY, PRUNE_FLOOR_KEY, PRUNE_INTENT_KEY,
    SLED_FORMAT,
};
use super::sled_records::Records;
use super::JournalError;
use crate::event::{Event, EventKind};
use crate::job::JobId;

/// Records per sled batch: sled's memory grows with the batch a record was written in.
const CHUNK: usize = 128;
/// Job ids below this are in the new layout (present only while a migration is under way).
const PROGRESS_KEY: &[u8] = b"Mmigrated_below";

#[derive(Serialize, Deserialize)]
struct JobRecordV3 {
    n: Vec<u8>,
    submitted_ms: u64,
    attempts: u32,
    faults: u32,
    outcome: Option<Outcome>,
}

#[derive(Serialize, Deserialize)]
struct EventV3 {
    at_ms: u64,
    kind: EventKind,
    actor: String,
    supervisor: Option<String>,
    reason: Option<String>,
    job: Option<JobId>,
    attempt: Option<u32>,
    delay_ms: Option<u64>,
    count: Option<u64>,
}

/// Decodes all of `bytes` as `T`: a shorter decode is the wrong layout, not a record.
fn decode_exact<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, JournalError> {
    crate::codec::decode(bytes).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &[u8], reason: impl ToString) -> JournalError {
    JournalError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: format!("not a format-3 record: {}", reason.to_string()),
    }
}

fn job_v4(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, JournalError> {
    let old: JobRecordV3 = decode_exact(key, bytes)?;
    encode(&JobRecord {
        task: StoredTask::Test(old.n),
        submitted_ms: old.submitted_ms,
        attempts: old.attempts,
        faults: old.faults,
        outcome: old.outcome,
    })
}

fn event_v4(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, JournalError> {
    let old: EventV3 = decode_exact(key, bytes)?;
    encode(&Event {
        at_ms: old.at_ms,
        kind: old.kind,
        actor: old.actor,
        supervisor: old.supervisor,
        reason: old.reason,
        job: old.job,
        attempt: old.attempt,
        delay_ms: old.delay_ms,
        count: old.count,
        alarm: None,
    })
}

fn job_id(key: &[u8]) -> Result<JobId, JournalError> {
    key.get(1..9)
        .and_then(|id| id.try_into().ok())
        .map(JobId::from_be_bytes)
        .ok_or_else(|| corrupt(key, "not a job key"))
}

/// Rewrites the job records from where a previous run stopped; returns how many it rewrote.
fn migrate_jobs(jobs: &sled::Tree) -> Result<u64, JournalError> {
    let from = match jobs.get(PROGRESS_KEY).map_err(storage("read migration"))? {
        Some(bytes) => bytes
            .as_ref()
            .try_into()
            .map(JobId::from_be_bytes)
            .map_err(|_| corrupt(PROGRESS_KEY, "expected 8 bytes"))?,
        None => 0,
    };
    let (mut batch, mut in_batch, mut rewritten) = (sled::Batch::default(), 0, 0);
    for entry in jobs.range(job_key(from)..=job_key(JobId::MAX)) {
        let (key, value) = entry.map_err(storage("read for migration"))?;
        batch.insert(&key, job_v4(&key, &value)?);
        (in_batch, rewritten) = (in_batch + 1, rewritten + 1);
        if in_batch == CHUNK {
            let next = job_id(&key)?.saturating_add(1);
            batch.insert(PROGRESS_KEY, &next.to_be_bytes());
            jobs.apply_batch(std::mem::take(&mut batch))
                .map_err(storage("migrate"))?;
            in_batch = 0;
        }
    }
    batch.remove(PROGRESS_KEY);
    batch.insert(FORMAT_KEY, &4u32.to_be_bytes());
    jobs.apply_batch(batch).map_err(storage("migrate"))?;
    Ok(rewritten)
}

/// Format 4's prune floor, with a chunk a crash cut off finished: format 4 wrote where a chunk
/// ends (`from`, `to`) before its deletions, and moved the floor after them.
fn floor_4(meta: &sled::Tree) -> Result<JobId, JournalError> {
    let floor = read_counter(meta, PRUNE_FLOOR_KEY)?.max(1);
    let Some(bytes) = meta
        .get(PRUNE_INTENT_KEY)
        .map_err(storage("read the pruning intent"))?
    else {
        return Ok(floor);
    };
    let field = |at: usize| be_u64(PRUNE_INTENT_KEY, bytes.get(at..at + 8).unwrap_or(&[]));
    let (from, to) = (field(0)?, field(8)?);
    if bytes.len() != 16 || to < from || (to > floor && from != floor) {
        return Err(super::sled_keys::corrupt(
            PRUNE_INTENT_KEY,
            "not a pruning intent at its floor",
        ));
    }
    Ok(floor.max(to))
}

/// Format 4 to 5; returns the job records moved.
pub fn from_4(db: &sled::Db, meta: &sled::Tree) -> Result<u64, JournalError> {
    let floor = floor_4(meta)?;
    Records::clear(db)?;
    let records = Records::open(db, floor)?;
    let mut moved = 0;
    for entry in meta.range(job_key(0)..=job_key(JobId::MAX)) {
        let (key, value) = entry.map_err(storage("read for migration"))?;
        records.migrate_in(job_id(&key)?, value)?;
        moved += 1;
    }
    meta.insert(PRUNE_FLOOR_KEY, &floor.to_be_bytes())
        .map_err(storage("migrate"))?;
    meta.remove(PRUNE_INTENT_KEY).map_err(storage("migrate"))?;
    meta.insert(FORMAT_KEY, &SLED_FORMAT.to_be_bytes())
        .map_err(storage("migrate"))?;
    db.flush().map_err(storage("flush the migration"))?;
    remove_moved(meta)?;
    Ok(moved)
}

/// Removes the job records left in the `journal` tree by a migration from format 4 (all of
/// them copied before the format said 5).
pub fn remove_moved(meta: &sled::Tree) -> Result<(), JournalError> {
    for key in meta.range(job_key(0)..=job_key(JobId::MAX)).keys() {
        let key = key.map_err(storage("read moved records"))?;
        meta.remove(key).map_err(storage("remove moved records"))?;
    }
    Ok(())
}

/// Format 3 to 4; returns the job records rewritten. Events go first: once the jobs are done
/// the format says 4, and the events must be new by then. (An event's two layouts differ in
/// length, so one already rewritten by an interrupted run is recognised and kept.)
pub fn from_3(jobs: &sled::Tree, events: &sled::Tree) -> Result<u64, JournalError> {
    let mut batch = sled::Batch::default();
    for entry in events.iter() {
        let (key, value) = entry.map_err(storage("read for migration"))?;
        if decode_exact::<Event>(&key, &value).is_err() {
            batch.insert(&key, event_v4(&key, &value)?);
        }
    }
    events.apply_batch(batch).map_err(storage("migrate"))?;
    migrate_jobs(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Task, Verdict};
    use crate::journal::{Journal, JournalOptions, Lookup, SledJournal};
    use crate::number::Number;

    fn v3_job(n: u8, outcome: Option<Verdict>) -> Vec<u8> {
        encode(&JobRecordV3 {
            n: vec![n],
            submitted_ms: 5,
            attempts: 1,
            faults: 0,
            outcome: outcome.map(|verdict| Outcome {
                verdict,
                attempts: 1,
                completed_ms: 9,
            }),
        })
        .unwrap()
    }

    fn v3_event() -> Vec<u8> {
        encode(&EventV3 {
            at_ms: 1,
            kind: EventKind::Crash,
            actor: "tester-1".into(),
            supervisor: Some("pool".into()),
            reason: Some("boom".into()),
            job: None,
            attempt: None,
            delay_ms: None,
            count: None,
        })
        .unwrap()
    }

    /// sled without its flusher thread, which would hold the directory's lock for a moment
    /// after the drop and make the reopen under test fail as "locked". A journal dropped just
    /// before may still hold it for a moment all the same: try again, for up to a second.
    fn unthreaded(dir: &std::path::Path) -> sled::Db {
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        for _ in 0..100 {
            match config.open() {
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                opened => return opened.unwrap(),
            }
        }
        panic!("sled kept its lock on {} for a second", dir.display());
    }

    /// Opens the journal the test wrote with sled directly. sled can release its directory's
    /// lock from a background thread a moment after the drop, and says nothing when it has:
    /// so try again while it is "locked", for up to a second.
    fn reopen(dir: &std::path::Path) -> SledJournal {
        for _ in 0..100 {
            match SledJournal::open(dir, OPTIONS) {
                Err(JournalError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                opened => return opened.unwrap(),
            }
        }
        panic!("sled kept its lock on {} for a second", dir.display());
    }

    /// A format-3 journal of `jobs` numbers (7, 8, …; the first one done), as 0.3 wrote it.
    fn write_v3(dir: &std::path::Path, jobs: u8) {
        let db = unthreaded(dir);
        let tree = db.open_tree("journal").unwrap();
        for i in 0..jobs {
            let done = (i == 0).then_some(Verdict::Prime);
            tree.insert(job_key(u64::from(i) + 1), v3_job(7 + i, done))
                .unwrap();
        }
        tree.insert(b"Mnext_id", &(u64::from(jobs) + 1).to_be_bytes())
            .unwrap();
        tree.insert(FORMAT_KEY, &3u32.to_be_bytes()).unwrap();
        let events = db.open_tree("events").unwrap();
        events.insert([0u8; 16], v3_event()).unwrap();
        db.flush().unwrap();
        // Its mark, in the one-line format of the time.
        let mark = format!("next_id {}\n", u64::from(jobs) + 1);
        std::fs::write(dir.join("primed.mark"), mark).unwrap();
    }

    const OPTIONS: JournalOptions = JournalOptions {
        cache_bytes: 8 << 20,
        max_events: 100,
    };

    #[test]
    fn a_format_3_journal_opens_with_its_jobs_and_events() {
        let dir = tempfile::tempdir().unwrap();
        // More than one chunk, and numbers small enough to be mistaken for make-prime tasks.
        write_v3(dir.path(), 200);
        let journal = reopen(dir.path());
        let pending: Vec<Task> = journal.in_flight().map(|j| j.unwrap().job.task).collect();
        assert_eq!(pending.len(), 199);
        assert_eq!(pending[0], Task::Test(Number::Small(8)));
        match journal.lookup(1).unwrap() {
            Lookup::Done(result) => {
                assert_eq!(result.task, Task::Test(Number::Small(7)));
                assert_eq!(result.verdict, Verdict::Prime);
            }
            other => panic!("{other:?}"),
        }
        let events = journal.events(0).unwrap();
        assert_eq!((events.len(), events[0].actor.as_str()), (1, "tester-1"));
    }

    #[test]
    fn an_interrupted_migration_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        write_v3(dir.path(), 200);
        {
            // As if a run had rewritten the events and the first chunk, then died.
            let db = unthreaded(dir.path());
            let (tree, events) = (
                db.open_tree("journal").unwrap(),
                db.open_tree("events").unwrap(),
            );
            for id in 1..=128u64 {
                let bytes = tree.get(job_key(id)).unwrap().unwrap();
                tree.insert(job_key(id), job_v4(b"J", &bytes).unwrap())
                    .unwrap();
            }
            tree.insert(PROGRESS_KEY, &129u64.to_be_bytes()).unwrap();
            let bytes = events.get([0u8; 16]).unwrap().unwrap();
            events
                .insert([0u8; 16], event_v4(b"e", &bytes).unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        let journal = reopen(dir.path());
        let pending: Vec<Task> = journal.in_flight().map(|j| j.unwrap().job.task).collect();
        assert_eq!(pending.len(), 199);
        assert!(
            pending.iter().all(|t| matches!(t, Task::Test(_))),
            "{pending:?}"
        );
        assert_eq!(journal.events(0).unwrap().len(), 1);
    }

    /// A format-4 journal of 300 jobs, as the last version left it when a crash cut off a
    /// pruning chunk from 101 to 201 after its removals up to 150: below 101 only jobs 30 (in
    /// flight) and 40 (cancelled) kept apart, 120 in flight and kept in the chunk. All done
    /// but 30, 120 and 250.
    fn write_v4(dir: &std::path::Path) {
        let db = unthreaded(dir);
        let tree = db.open_tree("journal").unwrap();
        let kept = |id: u64| id >= 151 || [30, 40, 120].contains(&id);
        for id in (1..=300u64).filter(|&id| kept(id)) {
            let mut record = JobRecord::accepted(&Task::Test(Number::Small(id)), 5);
            if ![30, 120, 250].contains(&id) {
                let verdict = if id == 40 {
                    Verdict::Cancelled
                } else {
                    Verdict::Composite
                };
                record.outcome = Some(Outcome {
                    verdict,
                    attempts: 1,
                    completed_ms: 9,
                });
            }
            tree.insert(job_key(id), encode(&record).unwrap()).unwrap();
        }
        tree.insert(b"Mnext_id", &301u64.to_be_bytes()).unwrap();
        tree.insert(b"Mlow_water", &30u64.to_be_bytes()).unwrap();
        tree.insert(FORMAT_KEY, &4u32.to_be_bytes()).unwrap();
        tree.insert(PRUNE_FLOOR_KEY, &101u64.to_be_bytes()).unwrap();
        let mut intent = [0; 16];
        intent[..8].copy_from_slice(&101u64.to_be_bytes());
        intent[8..].copy_from_slice(&201u64.to_be_bytes());
        tree.insert(PRUNE_INTENT_KEY, &intent).unwrap();
        db.flush().unwrap();
        std::fs::write(dir.join("primed.mark"), "next_id 301\n").unwrap();
    }

    fn assert_as_written_by_v4(journal: &SledJournal) {
        let pending: Vec<JobId> = journal.in_flight().map(|j| j.unwrap().job.id).collect();
        assert_eq!(pending, [30, 120, 250]);
        assert_eq!(journal.lookup(1).unwrap(), Lookup::Pruned);
        assert_eq!(journal.lookup(150).unwrap(), Lookup::Pruned);
        for id in [40, 151, 201, 300] {
            assert!(
                matches!(journal.lookup(id).unwrap(), Lookup::Done(_)),
                "{id}"
            );
        }
        assert_eq!(journal.lookup(301).unwrap(), Lookup::Unknown);
        // Below the new floor, 201: all but 30, 40, 120 and 151..=200 were pruned.
        assert_eq!(journal.retained().pruned, 200 - 53);
        assert_eq!(journal.counts().completed, 297);
    }

    #[test]
    fn a_format_4_journal_moves_into_blocks_finishing_a_cut_off_chunk() {
        let dir = tempfile::tempdir().unwrap();
        write_v4(dir.path());
        let journal = reopen(dir.path());
        assert_as_written_by_v4(&journal);
        journal.flush().unwrap();
        drop(journal);
        let db = unthreaded(dir.path());
        let tree = db.open_tree("journal").unwrap();
        let format = tree.get(FORMAT_KEY).unwrap().unwrap();
        assert_eq!(format.as_ref(), SLED_FORMAT.to_be_bytes());
        assert_eq!(tree.get(PRUNE_INTENT_KEY).unwrap(), None);
        let left = tree.range(job_key(0)..=job_key(JobId::MAX)).count();
        assert_eq!(left, 0, "the originals are removed");
        // As if a migration had been cut off after its stamp: originals still there.
        tree.insert(job_key(250), b"stale".to_vec()).unwrap();
        db.flush().unwrap();
        drop((tree, db));
        let journal = reopen(dir.path());
        assert_as_written_by_v4(&journal);
    }

    #[test]
    fn a_migration_cut_off_then_run_by_the_older_primed_starts_over_from_its_originals() {
        let dir = tempfile::tempdir().unwrap();
        write_v4(dir.path());
        {
            // A first migration copied job 250 (then in flight) apart and to its block, and
            // was cut off; the older primed then ran and finished it.
            let db = unthreaded(dir.path());
            let stale = encode(&JobRecord::accepted(&Task::Test(Number::Small(250)), 5)).unwrap();
            let apart = db.open_tree("apart").unwrap();
            apart.insert(job_key(250), stale.clone()).unwrap();
            let block = db
                .open_tree(crate::journal::sled_records::block_name(0))
                .unwrap();
            block.insert(job_key(260), stale).unwrap();
            let tree = db.open_tree("journal").unwrap();
            let mut done: JobRecord = crate::journal::record::decode(
                || "250".into(),
                &tree.get(job_key(250)).unwrap().unwrap(),
            )
            .unwrap();
            done.outcome = Some(Outcome {
                verdict: Verdict::Prime,
                attempts: 1,
                completed_ms: 10,
            });
            tree.insert(job_key(250), encode(&done).unwrap()).unwrap();
            db.flush().unwrap();
        }
        let journal = reopen(dir.path());
        let pending: Vec<JobId> = journal.in_flight().map(|j| j.unwrap().job.id).collect();
        assert_eq!(pending, [30, 120], "250 finished since: not run again");
        assert!(matches!(journal.lookup(250).unwrap(), Lookup::Done(_)));
        assert!(matches!(journal.lookup(260).unwrap(), Lookup::Done(_)));
    }
}
