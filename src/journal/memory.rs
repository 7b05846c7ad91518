//! A journal in memory, for in-process tests of the intake, the balancer and the testers: the
//! same records and the same complete-once rule as the real backends, durable at once.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::record::{CompleteOnce, JobRecord};
use super::{
    BoxFuture, Completion, Counts, InFlightIter, Journal, JournalError, Lookup, Ticket, Timings,
};
use crate::event::Event;
use crate::job::{now_ms, InFlight, Job, JobId, Task, Verdict};

#[derive(Default)]
struct State {
    next_id: JobId,
    jobs: BTreeMap<JobId, JobRecord>,
    counts: Counts,
    events: Vec<Event>,
    ticket: Ticket,
}

#[derive(Default)]
pub struct MemoryJournal(Mutex<State>);

impl MemoryJournal {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record<R>(
        &self,
        id: JobId,
        change: impl FnOnce(&mut JobRecord, &mut Counts) -> R,
    ) -> Result<(R, Ticket), JournalError> {
        let mut state = self.state();
        state.ticket += 1;
        let State {
            jobs,
            counts,
            ticket,
            ..
        } = &mut *state;
        let record = jobs.get_mut(&id).ok_or_else(|| JournalError::Corrupt {
            key: format!("job {id}"),
            reason: "no such job".into(),
        })?;
        Ok((change(record, counts), *ticket))
    }
}

impl Journal for MemoryJournal {
    fn accept(&self, tasks: Vec<Task>) -> Result<(Vec<Job>, Ticket), JournalError> {
        let mut state = self.state();
        let mut jobs = Vec::with_capacity(tasks.len());
        for task in tasks {
            state.next_id += 1;
            let id = state.next_id;
            let record = JobRecord::accepted(&task, now_ms());
            state.jobs.insert(id, record);
            state.counts.in_flight += 1;
            jobs.push(Job {
                id,
                task,
                attempts: 0,
            });
        }
        state.ticket += 1;
        Ok((jobs, state.ticket))
    }

    fn record_attempt(&self, id: JobId, attempts: u32) -> Result<(), JournalError> {
        self.record(id, |record, _| record.note_attempt(attempts))?;
        Ok(())
    }

    fn complete(
        &self,
        id: JobId,
        verdict: Verdict,
        attempts: u32,
    ) -> Result<(Completion, Ticket), JournalError> {
        let mut once = CompleteOnce::new(id, verdict, attempts);
        let (recorded, ticket) = self.record(id, |record, counts| {
            let recorded = once.apply(record);
            if recorded.is_some() {
                counts.in_flight = counts.in_flight.saturating_sub(1);
                counts.completed += 1;
            }
            recorded
        })?;
        Ok((once.completion(recorded, || format!("job {id}"))?, ticket))
    }

    fn record_fault(&self, id: JobId) -> Result<u32, JournalError> {
        Ok(self.record(id, |record, _| record.add_fault())?.0)
    }

    fn pending(&self, id: JobId) -> Result<Option<Job>, JournalError> {
        Ok(self.state().jobs.get(&id).and_then(|r| r.pending(id)))
    }

    fn in_flight_from(&self, from: JobId) -> InFlightIter {
        let state = self.state();
        let jobs: Vec<_> = state
            .jobs
            .range(from..)
            .filter_map(|(&id, record)| {
                let job = record.pending(id)?;
                Some(Ok(InFlight {
                    job,
                    submitted_ms: record.submitted_ms,
                }))
            })
            .collect();
        Box::new(jobs.into_iter())
    }

    fn lookup(&self, id: JobId) -> Result<Lookup, JournalError> {
        Ok(match self.state().jobs.get(&id) {
            None => Lookup::Unknown,
            Some(record) => record.result(id).map_or(Lookup::Pending, Lookup::Done),
        })
    }

    fn timings(&self, id: JobId) -> Result<Option<Timings>, JournalError> {
        Ok(self.state().jobs.get(&id).map(JobRecord::timings))
    }

    fn counts(&self) -> Counts {
        self.state().counts
    }

    fn durable(&self, _ticket: Ticket) -> BoxFuture<Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn record_event(&self, event: &Event) -> Result<(), JournalError> {
        self.state().events.push(event.clone());
        Ok(())
    }

    fn events(&self, since_ms: u64) -> Result<Vec<Event>, JournalError> {
        let state = self.state();
        Ok(state
            .events
            .iter()
            .filter(|e| e.at_ms >= since_ms)
            .cloned()
            .collect())
    }

    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
}
