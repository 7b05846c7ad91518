//! A job's life inside the daemon, in one place: taken in (parsed, admitted, journaled),
//! acknowledged once durable, placed, finished (answered once, however often it ran),
//! cancelled, and learnt of from another daemon on a shared journal. Connections, operator
//! requests, the testers and the etcd follower all go through [`Jobs`]; none of them reaches
//! the journal, the delivery of answers or the balancer on its own.
//!
//! The pool is reached through [`Placement`], which the pool implements: this module knows
//! jobs, not actors.

mod activity;
mod admission;
pub mod pruner;

use std::sync::{Arc, PoisonError, RwLock};

use tracing::info;

pub use activity::Activity;
pub use admission::{free_bytes, Admission, Refusal};

use crate::job::{Job, JobId, Task, Verdict};
use crate::journal::{
    Completion, Counts, InFlightIter, Journal, JournalError, Lookup, Pass, RemoteChange, Ticket,
};
use crate::number::{InputError, Number};
use crate::outcomes::{Delivery, Outcomes, Waiter};
use crate::protocol::{Accepted, Report, Response, RetentionStatus, MAX_BATCH};
use crate::retention::Retention;

/// Where jobs run: the pool's side of a job's life.
pub trait Placement: Send + Sync + 'static {
    /// Journaled jobs to run (new, or newly seen on a shared journal).
    fn place(&self, jobs: Vec<Job>);
    /// `id` has its answer: it no longer needs a place.
    fn finished(&self, id: JobId);
    /// `id` was cancelled (its answer is recorded): stop it where it runs.
    fn cancel(&self, id: JobId);
}

/// A client's numbers, parsed: each input in order, `None` for a valid one (its task is next
/// in `tasks`) or why it is invalid.
pub struct Submission {
    inputs: Vec<Option<Accepted>>,
    tasks: Vec<Task>,
}

impl Submission {
    /// How many jobs it would make.
    pub fn jobs(&self) -> usize {
        self.tasks.len()
    }

    fn valid(task: Task) -> Submission {
        Submission {
            inputs: vec![None],
            tasks: vec![task],
        }
    }

    fn invalid(input: String, error: &InputError) -> Submission {
        Submission {
            inputs: vec![Some(invalid(input, error))],
            tasks: Vec::new(),
        }
    }
}

fn invalid(input: String, error: &impl std::fmt::Display) -> Accepted {
    Accepted::Invalid {
        input,
        error: error.to_string(),
    }
}

/// A submission taken in: journaled (not yet known to be durable), or refused with its tasks.
pub struct Intake {
    inputs: Vec<Option<Accepted>>,
    journaled: Result<(Vec<Job>, Ticket), (Refusal, Vec<Task>)>,
    /// The client waits for the answers on this connection.
    wait: bool,
}

/// Why a cancel was refused, for callers that map it (the HTTP API's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRefusal {
    NoSuchJob,
    Finished,
    Pruned,
    /// The journal failed: the same cancel may succeed later.
    Journal,
}

/// A refused cancel: the kind, and the sentence the CLI prints.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CancelError {
    pub why: CancelRefusal,
    pub message: String,
}

pub struct Jobs {
    journal: Arc<dyn Journal>,
    outcomes: Arc<Outcomes>,
    activity: Arc<Activity>,
    placement: Arc<dyn Placement>,
    admission: Admission,
    /// The policy in force: a reload changes it.
    retention: RwLock<Retention>,
}

/// Records a pruning pass looks at, at most: a pass never holds the journal for long.
const PRUNE_BUDGET: usize = 4096;

impl Jobs {
    /// Starts the delivery of answers too; it ends when the `Jobs` is dropped.
    pub fn new(
        journal: Arc<dyn Journal>,
        activity: Arc<Activity>,
        placement: Arc<dyn Placement>,
        admission: Admission,
        retention: Retention,
    ) -> Arc<Jobs> {
        Arc::new(Jobs {
            outcomes: Outcomes::start(Arc::clone(&journal)),
            journal,
            activity,
            placement,
            admission,
            retention: RwLock::new(retention),
        })
    }

    pub fn retention(&self) -> Retention {
        *self
            .retention
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A reload's new policy, applied from the next pruning pass on.
    pub fn set_retention(&self, retention: Retention) {
        *self
            .retention
            .write()
            .unwrap_or_else(PoisonError::into_inner) = retention;
    }

    /// One pruning pass under the policy in force (blocking: run it off the async workers).
    pub fn prune_pass(&self) -> Result<Pass, JournalError> {
        let policy = self.retention();
        self.journal
            .prune(&policy, crate::job::now_ms(), PRUNE_BUDGET)
    }

    /// What is kept of finished jobs, and what was pruned.
    pub fn retained(&self) -> RetentionStatus {
        let retained = self.journal.retained();
        RetentionStatus {
            kept: retained.kept,
            pruned: retained.pruned,
            oldest_kept_ms: retained.oldest_kept_ms,
        }
    }

    /// Numbers to test, parsed against the digit limit; an over-long request is refused whole.
    pub fn submission(&self, numbers: Vec<String>) -> Result<Submission, String> {
        if numbers.len() > MAX_BATCH {
            return Err(format!(
                "a submission of {} numbers exceeds the maximum of {MAX_BATCH} per request",
                numbers.len()
            ));
        }
        let max_digits = self.admission.max_digits;
        let mut submission = Submission {
            inputs: Vec::with_capacity(numbers.len()),
            tasks: Vec::with_capacity(numbers.len()),
        };
        for text in numbers {
            match Number::parse(&text, max_digits) {
                Ok(n) => {
                    submission.inputs.push(None);
                    submission.tasks.push(Task::Test(n));
                }
                Err(e) => submission.inputs.push(Some(invalid(text, &e))),
            }
        }
        Ok(submission)
    }

    /// "Make me a K-digit prime": one job, within the digit limit.
    pub fn make_prime(&self, digits: u32) -> Submission {
        let limit = self.admission.max_digits;
        match usize::try_from(digits) {
            Ok(d) if (1..=limit).contains(&d) => Submission::valid(Task::MakePrime { digits }),
            _ => Submission::invalid(
                format!("--digits {digits}"),
                &InputError::PrimeDigits { digits, limit },
            ),
        }
    }

    /// Admits and journals a submission's jobs in one write. Not acknowledged yet: see
    /// [`Jobs::acknowledge`], which also keeps the answers in the order of the submissions.
    pub fn accept(&self, submission: Submission, wait: bool) -> Intake {
        let Submission { inputs, tasks } = submission;
        let draining = self.activity.is_draining();
        let admitted = self
            .admission
            .admit(self.journal.counts().in_flight, draining);
        let journaled = match admitted {
            // The tasks stay with a refusal only so that it can name them.
            Err(refusal) => Err((refusal, tasks)),
            Ok(()) => match self.journal.accept(tasks.clone()) {
                Ok(accepted) => Ok(accepted),
                Err(e) => Err((Refusal::from(e), tasks)),
            },
        };
        Intake {
            inputs,
            journaled,
            wait,
        }
    }

    /// Answers a submission on `out` once its jobs are durable (with one permit per job to free
    /// when the client does not wait), then watches them for a waiting client and places them.
    pub async fn acknowledge(&self, intake: Intake, out: &Waiter) {
        let Intake {
            inputs,
            journaled,
            wait,
        } = intake;
        let (jobs, ticket) = match journaled {
            Ok(accepted) => accepted,
            Err((refusal, tasks)) => {
                let count = tasks.len() as u32;
                let refused = tasks.iter().map(|task| Accepted::Refused {
                    input: task.to_string(),
                    error: format!("not accepted: {refusal}"),
                });
                return answer(out, in_order(inputs, refused), count);
            }
        };
        let count = jobs.len() as u32;
        if let Err(e) = self.journal.durable(ticket).await {
            answer(
                out,
                in_order(inputs, jobs.iter().map(|j| unacknowledged(j, &e))),
                count,
            );
            // Journaled, just not known to be durable: they run, and may be answered.
            return self.placement.place(jobs);
        }
        crate::metrics::global().submitted.inc_by(u64::from(count));
        let accepted = jobs.iter().map(|job| Accepted::Job {
            id: job.id,
            n: job.task.to_string(),
        });
        answer(
            out,
            in_order(inputs, accepted),
            if wait { 0 } else { count },
        );
        if wait {
            self.watch_new(&jobs, out);
        }
        self.placement.place(jobs);
    }

    /// Watches freshly accepted jobs. A balancer restarting since the accept may already have
    /// run one (its replay sees every journaled job), so answer those that are already done.
    fn watch_new(&self, jobs: &[Job], out: &Waiter) {
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        self.outcomes.watch(&ids, out);
        for &id in &ids {
            if let Ok(Lookup::Done(result)) = self.journal.lookup(id) {
                if self.outcomes.unwatch(id, out) {
                    answer_one(out, Response::Done(Report::from(&result)), 1);
                }
            }
        }
    }

    /// What `id` is, as a response to send now: `None` when `waiter` is given and the answer
    /// will be pushed to it later (the job is in flight, or its answer is already on its way).
    /// An answer sent for a waiter frees the one permit the wait took.
    pub async fn answer(&self, id: JobId, waiter: Option<&Waiter>) -> Option<Response> {
        if let Some(waiter) = waiter {
            // Registered before the lookup, so that no answer can slip between the two.
            self.outcomes.watch(&[id], waiter);
        }
        let lookup = self.lookup(id).await;
        if matches!(lookup, Ok(Lookup::Pending)) {
            return waiter.is_none().then_some(Response::Pending { id });
        }
        // Still registered: the answer is ours to send. If not, the hub's copy is on its way.
        if waiter.is_some_and(|w| !self.outcomes.unwatch(id, w)) {
            return None;
        }
        Some(match lookup {
            Ok(Lookup::Done(result)) => Response::Done(Report::from(&result)),
            Ok(Lookup::Pruned) => Response::Pruned {
                id,
                reason: format!("retention: {}", self.retention()),
            },
            Ok(Lookup::Pending) | Ok(Lookup::Unknown) => Response::Unknown {
                id,
                error: format!("no job with id {id}"),
            },
            Err(e) => Response::Unknown {
                id,
                error: e.to_string(),
            },
        })
    }

    /// Looks `id` up; an id not known here may have been written by another daemon on a
    /// shared journal and not be seen yet, so that view is caught up first.
    async fn lookup(&self, id: JobId) -> Result<Lookup, JournalError> {
        let lookup = self.journal.lookup(id);
        if !matches!(lookup, Ok(Lookup::Unknown)) {
            return lookup;
        }
        self.journal.catch_up(id).await;
        self.journal.lookup(id)
    }

    /// Records a tester's verdict on `id` (once: a later verdict is ignored), answers whoever
    /// waits for it once durable, and frees its place. True if this call recorded it.
    pub fn finish(&self, id: JobId, verdict: Verdict, attempts: u32) -> Result<bool, JournalError> {
        let (completion, ticket) = self.journal.complete(id, verdict, attempts)?;
        let (recorded, result) = match completion {
            Completion::Recorded(result) => (true, result),
            Completion::AlreadyRecorded(result) => (false, result),
        };
        if recorded {
            crate::metrics::global().finished(&result.verdict);
        }
        self.outcomes.publish(ticket, result);
        self.placement.finished(id);
        Ok(recorded)
    }

    /// Cancels a job in flight. Its answer, `Cancelled`, is recorded durably first (so no replay
    /// runs it again) and delivered to whoever waits for it; then its tester stops it. A
    /// balancer that is restarting misses the stop; its restart restarts the pool too, which
    /// stops it.
    pub async fn cancel(&self, id: JobId) -> Result<(), CancelError> {
        let journal_failed = |e: &dyn std::fmt::Display| CancelError {
            why: CancelRefusal::Journal,
            message: format!("cannot cancel job {id}: {e}"),
        };
        let pending = self.journal.pending(id).map_err(|e| journal_failed(&e))?;
        let Some(job) = pending else {
            return Err(self.not_in_flight(id));
        };
        // A running attempt is not journaled until it ends: count it from the activity slot.
        let attempts = self.activity.running_attempt(id).unwrap_or(job.attempts);
        let (result, ticket) = match self.journal.complete(id, Verdict::Cancelled, attempts) {
            Ok((Completion::Recorded(result), ticket)) => (result, ticket),
            Ok((Completion::AlreadyRecorded(_), _)) => return Err(self.not_in_flight(id)),
            Err(e) => return Err(journal_failed(&e)),
        };
        self.journal
            .durable(ticket)
            .await
            .map_err(|e| CancelError {
                why: CancelRefusal::Journal,
                message: format!("job {id} is cancelled, but not yet durably: {e}"),
            })?;
        info!(job = id, event = "cancel", "job cancelled by a client");
        crate::metrics::global().finished(&Verdict::Cancelled);
        self.outcomes.publish(ticket, result);
        self.placement.cancel(id);
        Ok(())
    }

    fn not_in_flight(&self, id: JobId) -> CancelError {
        let (why, message) = match self.journal.lookup(id) {
            Ok(Lookup::Unknown) => (
                CancelRefusal::NoSuchJob,
                format!("cannot cancel job {id}: there is no such job"),
            ),
            Ok(Lookup::Pruned) => (
                CancelRefusal::Pruned,
                format!("cannot cancel job {id}: it finished long ago and was pruned"),
            ),
            Ok(_) => (
                CancelRefusal::Finished,
                format!("cannot cancel job {id}: it has already finished (primed result {id})"),
            ),
            Err(e) => (
                CancelRefusal::Journal,
                format!("cannot cancel job {id}: {e}"),
            ),
        };
        CancelError { why, message }
    }

    /// Stops delivering `id`'s answer to `waiter` (a wait that timed out); true if it was
    /// still registered, false if the answer is already on its way to it.
    pub fn stop_waiting(&self, id: JobId, waiter: &Waiter) -> bool {
        self.outcomes.unwatch(id, waiter)
    }

    /// What other daemons did to a shared journal: jobs a standby accepted are placed (if this
    /// daemon runs a pool), answers the leader stored go to the clients waiting here.
    pub fn remote(&self, changes: impl IntoIterator<Item = RemoteChange>) {
        let mut jobs = Vec::new();
        for change in changes {
            match change {
                RemoteChange::Accepted(job) => jobs.push(job),
                // Read back from the journal: durable already (ticket 0 waits for nothing).
                RemoteChange::Completed(result) => self.outcomes.publish(0, result),
            }
        }
        if !jobs.is_empty() {
            self.placement.place(jobs);
        }
    }

    /// Records that attempt `attempt` of `id` was made (cut short by a crash or a shutdown),
    /// so that its replay counts it.
    pub fn attempted(&self, id: JobId, attempt: u32) -> Result<(), JournalError> {
        self.journal.record_attempt(id, attempt)
    }

    /// Counts a crash of a tester while it ran `id`; returns the job's count so far.
    pub fn fault(&self, id: JobId) -> Result<u32, JournalError> {
        self.journal.record_fault(id)
    }

    /// `id` if it is still in flight: what a restarted tester is sent again.
    pub fn pending(&self, id: JobId) -> Result<Option<Job>, JournalError> {
        self.journal.pending(id)
    }

    /// Every job in flight, in id order: what a (re)started balancer places.
    pub fn in_flight(&self) -> InFlightIter {
        self.journal.in_flight()
    }

    /// Every job in flight from id `from` on: the backlog the balancer places as room frees.
    pub fn in_flight_from(&self, from: JobId) -> InFlightIter {
        self.journal.in_flight_from(from)
    }

    pub fn counts(&self) -> Counts {
        self.journal.counts()
    }

    /// When `id` was accepted and finished, and its faults (a job's detail).
    pub fn timings(&self, id: JobId) -> Result<Option<crate::journal::Timings>, JournalError> {
        self.journal.timings(id)
    }

    /// Why new jobs cannot be made durable right now, if so (a replicated journal without its
    /// quorum).
    pub fn unavailable(&self) -> Option<String> {
        self.journal.unavailable()
    }

    /// For shutdown: delivers every answer published so far, then forgets every waiter, so
    /// that connections can finish writing and close.
    pub async fn settle(&self) {
        self.outcomes.close().await;
    }
}

/// Each input's answer in the client's order: the invalid ones as they were, the valid ones
/// from `valid`, in order.
fn in_order(
    inputs: Vec<Option<Accepted>>,
    mut valid: impl Iterator<Item = Accepted>,
) -> Vec<Accepted> {
    inputs
        .into_iter()
        .filter_map(|input| input.or_else(|| valid.next()))
        .collect()
}

/// A job journaled whose flush failed: not acknowledged (it may or may not survive a crash),
/// and not to be retried blindly either, since it may still run; the error says how to look.
fn unacknowledged(job: &Job, cause: &JournalError) -> Accepted {
    let id = job.id;
    Accepted::Invalid {
        input: job.task.to_string(),
        error: format!(
            "not acknowledged: {cause}; it was journaled as job {id} and may still be answered \
             (primed result {id})"
        ),
    }
}

fn answer(out: &Waiter, items: Vec<Accepted>, release: u32) {
    answer_one(out, Response::Accepted { items }, release);
}

fn answer_one(out: &Waiter, response: Response, release: u32) {
    // A closed connection has no one left to tell.
    let _ = out.send(Delivery { response, release });
}

#[cfg(test)]
mod tests;
