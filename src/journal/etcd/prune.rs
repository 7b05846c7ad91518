//! Pruning the etcd journal, on the leader only: a pass walks the mirror from where the last one
//! stopped, removes the finished records the policy lets go, and queues their deletion, which
//! the committer writes in the same fenced transactions as the counters (`pruned`, and
//! `prune_floor`, one past the highest id pruned), so that a crash never keeps one without the
//! other. Every daemon's follower drops a deleted record from its own mirror: each mirror then
//! holds what is in flight and what is retained, nothing more.
//!
//! Until the leader's own watch has seen a deletion come back, an older write of that record
//! may still be on its way (the watch lags); it is ignored, or the leader would take a job it
//! finished and pruned for a new one.

use std::collections::HashSet;

use super::{Dirty, State};
use crate::job::JobId;
use crate::journal::Pass;
use crate::retention::{Fate, Retention};

/// A finished job is kept at least this long whatever the policy says: a standby retrying the
/// write that created a job (its first try landed, unanswered) would otherwise bring back a
/// record already pruned, and the job would run a second time.
pub(super) const GRACE_MS: u64 = 10_000;

/// What the journal knows of pruning: the counters as etcd holds them (or will, once the queued
/// deletions are written), and the leader's place in the mirror.
#[derive(Debug, Default)]
pub(super) struct Pruning {
    /// Finished jobs pruned since the journal was made.
    pub(super) pruned: u64,
    /// One past the highest id pruned: an id below it without a record was pruned.
    pub(super) floor: JobId,
    /// When the oldest finished job still kept finished, as of the last whole walk.
    pub(super) oldest_kept_ms: Option<u64>,
    /// Deleted by this daemon, not yet seen back on its watch.
    pub(super) unechoed: HashSet<JobId>,
    cursor: JobId,
    walk_oldest: Option<u64>,
}

impl Pruning {
    /// Notes the counters read from etcd (at open, or after a re-read).
    pub(super) fn absorb(&mut self, pruned: u64, floor: JobId) {
        self.pruned = self.pruned.max(pruned);
        self.floor = self.floor.max(floor);
    }

    fn note_pruned(&mut self, id: JobId) {
        self.pruned += 1;
        self.floor = self.floor.max(id.saturating_add(1));
    }
}

impl State {
    /// One pass over at most `budget` records.
    pub(super) fn prune_pass(&mut self, policy: &Retention, now_ms: u64, budget: usize) -> Pass {
        let mut kept = self.completed.saturating_sub(self.pruning.pruned);
        let (mut doomed, mut examined) = (Vec::new(), 0);
        let mut next = self.pruning.cursor;
        for (&id, record) in self.jobs.range(self.pruning.cursor..).take(budget) {
            examined += 1;
            next = id.saturating_add(1);
            let Some(outcome) = &record.outcome else {
                continue;
            };
            let over = kept > policy.count_target();
            let fresh = outcome.completed_ms.saturating_add(GRACE_MS) > now_ms;
            let fate = policy.fate(&outcome.verdict, outcome.completed_ms, now_ms, over);
            if fate == Fate::Prune && !fresh {
                doomed.push(id);
                kept -= 1;
            } else {
                let oldest = &mut self.pruning.walk_oldest;
                *oldest =
                    Some(oldest.map_or(outcome.completed_ms, |o| o.min(outcome.completed_ms)));
            }
        }
        let walked_all = examined < budget;
        self.pruning.cursor = if walked_all { 0 } else { next };
        if walked_all {
            self.pruning.oldest_kept_ms = self.pruning.walk_oldest.take();
        }
        for &id in &doomed {
            self.jobs.remove(&id);
            self.pruning.note_pruned(id);
            self.pruning.unechoed.insert(id);
            let (pruned, floor) = (self.pruning.pruned, self.pruning.floor);
            self.mark(Dirty::Prune { id, pruned, floor }, 64);
        }
        Pass {
            pruned: doomed.len() as u64,
            more: !walked_all,
        }
    }

    /// Drops job `id`, deleted from etcd (by the leader's pruning), from the mirror.
    pub(super) fn forget(&mut self, id: JobId) {
        self.pruning.unechoed.remove(&id);
        if let Some(record) = self.jobs.remove(&id) {
            if record.outcome.is_some() {
                self.pruning.note_pruned(id);
            } else {
                // Never pruned while in flight; a deletion by hand, taken as it is.
                self.in_flight = self.in_flight.saturating_sub(1);
            }
        }
    }

    /// Whether a write of job `id` seen on the watch is older than this daemon's deletion of it.
    pub(super) fn is_pruned_here(&self, id: JobId) -> bool {
        self.pruning.unechoed.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Task, Verdict};
    use crate::journal::record::JobRecord;
    use crate::number::Number;

    const HOUR_MS: u64 = 3_600_000;

    fn state_with(finished: &[(JobId, u64)], pending: &[JobId]) -> State {
        let mut state = State::default();
        for &(id, completed_ms) in finished {
            let mut record = JobRecord::accepted(&Task::Test(Number::Small(7)), 0);
            assert!(record.complete(id, Verdict::Prime, 1).is_ok());
            if let Some(outcome) = record.outcome.as_mut() {
                outcome.completed_ms = completed_ms;
            }
            state.jobs.insert(id, record);
            state.completed += 1;
        }
        for &id in pending {
            state
                .jobs
                .insert(id, JobRecord::accepted(&Task::Test(Number::Small(7)), 0));
            state.in_flight += 1;
        }
        state
    }

    fn prune_all(state: &mut State, policy: &Retention, now_ms: u64) -> u64 {
        let mut pruned = 0;
        loop {
            let pass = state.prune_pass(policy, now_ms, 2);
            pruned += pass.pruned;
            if !pass.more {
                return pruned;
            }
        }
    }

    #[test]
    fn over_max_kept_the_lowest_ids_go_but_never_one_in_flight() {
        let finished: Vec<_> = (1..=10).filter(|&id| id != 4).map(|id| (id, 0)).collect();
        let mut state = state_with(&finished, &[4]);
        let policy = Retention {
            max_kept: 3,
            ..Retention::DEFAULT
        };
        let now = GRACE_MS + 1;
        assert_eq!(prune_all(&mut state, &policy, now), 6);
        let left: Vec<JobId> = state.jobs.keys().copied().collect();
        assert_eq!(left, vec![4, 8, 9, 10]);
        assert_eq!((state.pruning.pruned, state.pruning.floor), (6, 8));
        assert_eq!(state.completed, 9, "pruning keeps the counts");
        let deletions = state
            .dirty
            .iter()
            .filter(|(_, key, _)| matches!(key, Dirty::Prune { .. }))
            .count();
        assert_eq!(deletions, 6);
        assert_eq!(
            state.dirty.back().map(|(_, key, _)| key.clone()),
            Some(Dirty::Prune {
                id: 7,
                pruned: 6,
                floor: 8
            }),
            "each deletion carries the counters as of itself"
        );
    }

    #[test]
    fn answers_go_after_their_period_but_not_within_the_grace() {
        let now = 30 * HOUR_MS;
        let mut state = state_with(&[(1, 0), (2, now - GRACE_MS / 2), (3, now - HOUR_MS)], &[]);
        let policy = Retention {
            max_kept: 0,
            ..Retention::DEFAULT
        };
        assert_eq!(prune_all(&mut state, &policy, now), 2);
        assert_eq!(state.jobs.keys().copied().collect::<Vec<_>>(), vec![2]);
        let mut state = state_with(&[(1, 0), (3, now - HOUR_MS)], &[]);
        assert_eq!(prune_all(&mut state, &Retention::DEFAULT, now), 1);
        assert_eq!(state.pruning.oldest_kept_ms, Some(now - HOUR_MS));
    }

    #[test]
    fn a_deletion_seen_back_is_forgotten_once() {
        let mut state = state_with(&[(1, 0), (2, 0)], &[]);
        let policy = Retention {
            max_kept: 1,
            ..Retention::DEFAULT
        };
        assert_eq!(prune_all(&mut state, &policy, GRACE_MS), 1);
        assert!(state.is_pruned_here(1));
        state.forget(1);
        assert!(!state.is_pruned_here(1));
        assert_eq!(
            state.pruning.pruned, 1,
            "its own deletion is not counted twice"
        );
        // A standby learns of the leader's deletion from its watch.
        let mut standby = state_with(&[(1, 0), (2, 0)], &[]);
        standby.forget(1);
        assert_eq!((standby.pruning.pruned, standby.pruning.floor), (1, 2));
        assert_eq!(standby.completed, 2);
    }
}
