//! The journal: the durable record of every accepted job, behind a small trait so that a
//! replicated backend can stand in for sled later.
//!
//! Which tester holds a job is not journaled: it is the balancer's in-memory business, and a
//! restart of the balancer places every job in flight again. Per job the journal writes its
//! record once in the accepting batch and once more when it completes.
//!
//! Writes are applied at once and made durable by group commit: every mutation returns a
//! [`Ticket`], and [`Journal::durable`] resolves once a flush covering that ticket has completed.
//! A job is acknowledged to its client only after its ticket is durable.
//!
//! Which daemon may run the jobs of a shared journal is not storage: see [`Coordination`].

mod coordination;
#[cfg(feature = "etcd")]
mod etcd;
mod group_commit;
mod integrity;
mod mark;
#[cfg(test)]
mod memory;
mod migrate;
mod record;
mod sled_journal;
mod sled_keys;
mod sled_prune;
mod sled_records;
mod window;

use std::path::PathBuf;

pub use coordination::{Coordination, Grant, RemoteChange, RemoteChanges, Role, Solo};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdJournal, EtcdTarget};
pub use group_commit::{GroupCommit, Ticket};
#[cfg(test)]
pub(crate) use memory::MemoryJournal;
pub use sled_journal::{stored_events, JournalOptions, SledJournal};

/// Which journal a daemon uses: sled in its data dir, or an etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sled,
    #[cfg(feature = "etcd")]
    Etcd(EtcdTarget),
}

impl Backend {
    /// `sled`, or `etcd://host:port,…[/prefix]`.
    pub fn parse(text: &str) -> Result<Backend, String> {
        if text == "sled" {
            return Ok(Backend::Sled);
        }
        if text.starts_with("etcd://") {
            #[cfg(feature = "etcd")]
            return EtcdTarget::parse(text).map(Backend::Etcd);
            #[cfg(not(feature = "etcd"))]
            return Err(format!(
                "{text:?}: this primed was built without etcd support \
                 (cargo build --release --features etcd)"
            ));
        }
        Err(format!(
            "unknown journal {text:?}: expected sled or etcd://host:port,…"
        ))
    }
}

use crate::event::Event;
use crate::job::{InFlight, Job, JobId, JobResult, Task, Verdict};
use crate::retention::Retention;

pub use crate::BoxFuture;

/// Journal failures. Every variant says what was being done, so logs and clients get context.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open journal at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("journal data dir {path} is in use by another primed process (sled holds its lock)")]
    Locked { path: PathBuf },
    #[error("journal {operation} failed: {reason}")]
    Storage {
        operation: &'static str,
        reason: String,
    },
    #[error(
        "the journal at {path} is damaged: {reason}. primed will not start on it, so that \
         nothing is silently lost: restore the data dir from a backup, or move it aside to \
         start empty (its unfinished jobs are then lost)"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "disk full: the journal at {path} cannot be opened ({reason}); free some space on its \
         filesystem and start again (the journal was left as it was)"
    )]
    DiskFull { path: PathBuf, reason: String },
    #[error(
        "the journal at {path} is in format {found}, and this primed reads format {expected}: \
         let the primed that wrote it finish its jobs, or move the data dir aside"
    )]
    Format {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("journal record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("journal flush failed: {0}")]
    Flush(String),
    #[error("journal is shut down")]
    Closed,
}

/// What looking up a job id found.
/// A job's times and faults, as its record keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub submitted_ms: u64,
    pub finished_ms: Option<u64>,
    /// Crashes of a tester while it ran this job.
    pub faults: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Done(JobResult),
    Pending,
    /// It finished, and its record was pruned under the retention policy.
    Pruned,
    Unknown,
}

/// What one pruning pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Jobs pruned (their records deleted, or left to a block dropped whole).
    pub pruned: u64,
    /// Whether it stopped at its budget with more to look at (run the next one soon).
    pub more: bool,
}

/// What the journal keeps of finished jobs, and what it pruned (since it was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    pub kept: u64,
    pub pruned: u64,
    /// When the oldest finished job still kept finished, as last seen by a pass.
    pub oldest_kept_ms: Option<u64>,
}

/// What completing a job did: results are recorded once, however often the job ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Recorded(JobResult),
    AlreadyRecorded(JobResult),
}

/// Counters kept exactly, without scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub in_flight: u64,
    pub completed: u64,
}

pub type InFlightIter = Box<dyn Iterator<Item = Result<InFlight, JournalError>> + Send>;

pub trait Journal: Send + Sync + 'static {
    /// Records new jobs, allocating their ids. Not durable until `durable(ticket)` resolves.
    fn accept(&self, tasks: Vec<Task>) -> Result<(Vec<Job>, Ticket), JournalError>;

    /// Records that attempt number `attempts` of `id` was made: written when a tester crashes
    /// mid-job or a shutdown interrupts it, so that the replay counts it. Durable only with a
    /// later flush: a kill -9 may forget it.
    fn record_attempt(&self, id: JobId, attempts: u32) -> Result<(), JournalError>;

    /// Stores the result of `id` in its record, unless one is stored: a job is answered once.
    fn complete(
        &self,
        id: JobId,
        verdict: Verdict,
        attempts: u32,
    ) -> Result<(Completion, Ticket), JournalError>;

    /// Counts a crash of a tester while it was testing `id`; returns the job's count so far.
    /// Durable only with a later flush, like `record_attempt`.
    fn record_fault(&self, id: JobId) -> Result<u32, JournalError>;

    /// The job `id` if it is still in flight (what a restarted tester is sent again).
    fn pending(&self, id: JobId) -> Result<Option<Job>, JournalError>;

    /// Every job still in flight with an id from `from` on, in id order.
    fn in_flight_from(&self, from: JobId) -> InFlightIter;

    /// Every job still in flight, in id order.
    fn in_flight(&self) -> InFlightIter {
        self.in_flight_from(0)
    }

    fn lookup(&self, id: JobId) -> Result<Lookup, JournalError>;

    /// When `id` was accepted and finished, and how often it crashed its testers (for a job's
    /// detail); `None` if there is no record of it.
    fn timings(&self, id: JobId) -> Result<Option<Timings>, JournalError>;

    fn counts(&self) -> Counts;

    /// Resolves once everything written up to `ticket` is on disk.
    fn durable(&self, ticket: Ticket) -> BoxFuture<Result<(), JournalError>>;

    /// Stores an event of the persistent event log, dropping the oldest beyond its bound.
    /// Durable with the next flush.
    fn record_event(&self, event: &Event) -> Result<(), JournalError>;

    /// Stored events at or after `since_ms`, oldest first.
    fn events(&self, since_ms: u64) -> Result<Vec<Event>, JournalError>;

    /// Makes everything written so far durable, blocking: for shutdown.
    fn flush(&self) -> Result<(), JournalError>;

    /// For an id this daemon does not know: waits until its view of a shared journal holds
    /// the job if another daemon wrote it before the call (a view lags by a watch event); at
    /// once for a local journal.
    fn catch_up(&self, _id: JobId) -> BoxFuture<()> {
        Box::pin(std::future::ready(()))
    }

    /// Why the journal cannot commit right now (a replicated one without its quorum), if so.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// One pruning pass: prunes the finished jobs that `policy` lets go, oldest first, looking
    /// at most at `budget` records. Blocking (it writes). A backend that does not prune keeps
    /// everything.
    fn prune(
        &self,
        _policy: &Retention,
        _now_ms: u64,
        _budget: usize,
    ) -> Result<Pass, JournalError> {
        Ok(Pass::default())
    }

    /// How many finished jobs are kept, and how many were pruned.
    fn retained(&self) -> Retained {
        Retained {
            kept: self.counts().completed,
            ..Retained::default()
        }
    }
}
