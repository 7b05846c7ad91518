//! A job as the journal stores it, whatever the backend: its task, when it came, what its
//! attempts and faults were, and its outcome once it has one. Encoded with bincode.

use serde::{Deserialize, Serialize};

use super::{Completion, JournalError};
use crate::job::{now_ms, Job, JobId, JobResult, Task, Verdict};
use crate::number::Number;

/// Encodes a record or event for storage, for either backend.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, JournalError> {
    crate::codec::encode(value).map_err(|e| JournalError::Storage {
        operation: "encode",
        reason: e.0,
    })
}

/// Decodes a stored record or event (trailing bytes allowed: a later field appended by a newer
/// primed); `key` names it in the error, as its backend names keys.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    key: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, JournalError> {
    crate::codec::decode_prefix(bytes)
        .map(|(value, _)| value)
        .map_err(|e| JournalError::Corrupt {
            key: key(),
            reason: e.to_string(),
        })
}

/// The one complete-once rule, for both backends: applied to a job's stored record inside the
/// backend's rewrite, it stores the outcome unless the job has one; then it says which
/// happened. A job is answered once, however often it ran.
pub(crate) struct CompleteOnce {
    id: JobId,
    verdict: Option<(Verdict, u32)>,
    earlier: Option<JobResult>,
}

impl CompleteOnce {
    pub(crate) fn new(id: JobId, verdict: Verdict, attempts: u32) -> CompleteOnce {
        CompleteOnce {
            id,
            verdict: Some((verdict, attempts)),
            earlier: None,
        }
    }

    /// The result if it is recorded now (the record must be written), `None` if the job had
    /// one already (nothing to write).
    pub(crate) fn apply(&mut self, record: &mut JobRecord) -> Option<JobResult> {
        let (verdict, attempts) = self.verdict.take()?;
        record
            .complete(self.id, verdict, attempts)
            .map_err(|earlier| self.earlier = Some(earlier))
            .ok()
    }

    /// What the rewrite did, given what [`CompleteOnce::apply`] returned in it; `key` names the
    /// record should it have been neither.
    pub(crate) fn completion(
        self,
        recorded: Option<JobResult>,
        key: impl FnOnce() -> String,
    ) -> Result<Completion, JournalError> {
        match (recorded, self.earlier) {
            (Some(result), _) => Ok(Completion::Recorded(result)),
            (None, Some(result)) => Ok(Completion::AlreadyRecorded(result)),
            (None, None) => Err(JournalError::Corrupt {
                key: key(),
                reason: "completed without an outcome".into(),
            }),
        }
    }
}

/// The layout of these records, shared by both backends (etcd's `format` key; sled's
/// `M format` key says 5 for these records in trees by block of ids, see `sled_keys`). 1 was
/// the layout before the key existed; 2 kept in-flight and per-tester indexes; 3 stored only
/// numbers to test (no make-prime tasks).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) const FORMAT: u32 = 4;

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) task: StoredTask,
    pub(crate) submitted_ms: u64,
    /// Attempts known to have been made (recorded when one is cut short, see `record_attempt`).
    pub(crate) attempts: u32,
    /// Crashes of a tester while it was testing this job (see poison-job quarantine).
    pub(crate) faults: u32,
    pub(crate) outcome: Option<Outcome>,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) attempts: u32,
    pub(crate) completed_ms: u64,
}

/// A task as stored: a number as its minimal big-endian bytes.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) enum StoredTask {
    Test(Vec<u8>),
    MakePrime(u32),
}

impl From<&Task> for StoredTask {
    fn from(task: &Task) -> Self {
        match task {
            Task::Test(n) => StoredTask::Test(n.to_bytes()),
            Task::MakePrime { digits } => StoredTask::MakePrime(*digits),
        }
    }
}

impl From<&StoredTask> for Task {
    fn from(task: &StoredTask) -> Self {
        match task {
            StoredTask::Test(bytes) => Task::Test(Number::from_bytes(bytes)),
            StoredTask::MakePrime(digits) => Task::MakePrime { digits: *digits },
        }
    }
}

impl JobRecord {
    /// The record of a job just accepted: no attempt, no fault, no outcome yet.
    pub(crate) fn accepted(task: &Task, submitted_ms: u64) -> JobRecord {
        JobRecord {
            task: StoredTask::from(task),
            submitted_ms,
            attempts: 0,
            faults: 0,
            outcome: None,
        }
    }

    pub(crate) fn pending(&self, id: JobId) -> Option<Job> {
        self.outcome.is_none().then(|| Job {
            id,
            task: Task::from(&self.task),
            attempts: self.attempts,
        })
    }

    pub(crate) fn timings(&self) -> super::Timings {
        super::Timings {
            submitted_ms: self.submitted_ms,
            finished_ms: self.outcome.as_ref().map(|o| o.completed_ms),
            faults: self.faults,
        }
    }

    pub(crate) fn result(&self, id: JobId) -> Option<JobResult> {
        self.outcome.as_ref().map(|o| JobResult {
            id,
            task: Task::from(&self.task),
            verdict: o.verdict.clone(),
            attempts: o.attempts,
        })
    }

    /// Counts attempt number `attempts` if it is newer and the job is not done; `None` when
    /// nothing changed (so nothing needs writing).
    pub(crate) fn note_attempt(&mut self, attempts: u32) -> Option<()> {
        let newer = self.outcome.is_none() && attempts > self.attempts;
        newer.then(|| self.attempts = attempts)
    }

    /// Stores the outcome unless the job has one: `Ok` with the result recorded now, or `Err`
    /// with the one recorded before (a job is answered once, however often it ran).
    pub(crate) fn complete(
        &mut self,
        id: JobId,
        verdict: Verdict,
        attempts: u32,
    ) -> Result<JobResult, JobResult> {
        if let Some(existing) = self.result(id) {
            return Err(existing);
        }
        let result = JobResult {
            id,
            task: Task::from(&self.task),
            verdict: verdict.clone(),
            attempts,
        };
        self.outcome = Some(Outcome {
            verdict,
            attempts,
            completed_ms: now_ms(),
        });
        Ok(result)
    }

    /// Counts a crash of a tester during this job; returns the count so far.
    pub(crate) fn add_fault(&mut self) -> u32 {
        self.faults = self.faults.saturating_add(1);
        self.faults
    }
}
