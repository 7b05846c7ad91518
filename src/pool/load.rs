//! The balancer's load table: which tester holds which job, and at what estimated cost.
//! Keyed by job id, so a completion reported twice (or for a job never seen) cannot make a
//! load drift, unlike the Erlang original's counters.

use std::collections::HashMap;

use crate::job::{JobId, TesterId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TesterLoad {
    pub queued: u64,
    pub load: u64,
}

#[derive(Debug, Clone)]
pub struct LoadTable {
    testers: Vec<TesterLoad>,
    jobs: HashMap<JobId, (TesterId, u64)>,
}

impl LoadTable {
    pub fn new(testers: u32) -> Self {
        Self {
            testers: vec![TesterLoad::default(); testers as usize],
            jobs: HashMap::new(),
        }
    }

    /// How many jobs are placed.
    pub fn placed(&self) -> usize {
        self.jobs.len()
    }

    pub fn holds(&self, id: JobId) -> bool {
        self.jobs.contains_key(&id)
    }

    pub fn is_tester(&self, tester: TesterId) -> bool {
        (1..=self.testers.len()).contains(&(tester.0 as usize))
    }

    /// The tester with the least estimated load; ties go to the one with fewer jobs, then to
    /// the lowest index. `None` only for an empty pool.
    pub fn least_loaded(&self) -> Option<TesterId> {
        let (index, _) = self
            .testers
            .iter()
            .enumerate()
            .min_by_key(|(i, t)| (t.load, t.queued, *i))?;
        Some(TesterId(index as u32 + 1))
    }

    /// Records `id` at `tester`; false (and no change) if the table already holds it or
    /// the tester is not in the pool.
    pub fn assign(&mut self, id: JobId, tester: TesterId, cost: u64) -> bool {
        if self.holds(id) || !self.is_tester(tester) {
            return false;
        }
        let slot = &mut self.testers[tester.0 as usize - 1];
        slot.queued += 1;
        slot.load = slot.load.saturating_add(cost);
        self.jobs.insert(id, (tester, cost));
        true
    }

    /// Forgets `id`; returns the tester that held it, if any.
    pub fn remove(&mut self, id: JobId) -> Option<TesterId> {
        let (tester, cost) = self.jobs.remove(&id)?;
        let slot = &mut self.testers[tester.0 as usize - 1];
        slot.queued = slot.queued.saturating_sub(1);
        slot.load = slot.load.saturating_sub(cost);
        Some(tester)
    }

    /// Makes the pool `testers` long. Shrinking forgets the jobs of the testers removed and
    /// returns their ids, in id order, to be placed again.
    pub fn resize(&mut self, testers: u32) -> Vec<JobId> {
        let keep = testers as usize;
        self.testers.resize(keep, TesterLoad::default());
        let mut orphans: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, &(t, _))| t.0 as usize > keep)
            .map(|(&id, _)| id)
            .collect();
        orphans.sort_unstable();
        for id in &orphans {
            self.jobs.remove(id);
        }
        orphans
    }

    pub fn loads(&self) -> &[TesterLoad] {
        &self.testers
    }

    pub fn holder(&self, id: JobId) -> Option<TesterId> {
        self.jobs.get(&id).map(|&(tester, _)| tester)
    }

    /// The jobs `tester` holds, in id order (the order they were accepted).
    pub fn held_by(&self, tester: TesterId) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, &(t, _))| t == tester)
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_least_loaded_by_cost_not_count() {
        let mut table = LoadTable::new(3);
        assert!(table.assign(1, TesterId(1), 1_000));
        assert!(table.assign(2, TesterId(2), 1));
        assert!(table.assign(3, TesterId(2), 1));
        assert!(table.assign(4, TesterId(3), 5));
        assert_eq!(table.least_loaded(), Some(TesterId(2)));
    }

    #[test]
    fn ties_spread_jobs_round_the_pool() {
        let mut table = LoadTable::new(3);
        let mut chosen = Vec::new();
        for id in 0..6 {
            let t = table.least_loaded().unwrap();
            table.assign(id, t, 1);
            chosen.push(t.0);
        }
        assert_eq!(chosen, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn shrinking_hands_back_the_removed_testers_jobs() {
        let mut table = LoadTable::new(3);
        for (id, tester) in [(1, 1), (2, 3), (3, 2), (4, 3)] {
            assert!(table.assign(id, TesterId(tester), 10));
        }
        assert_eq!(table.resize(2), vec![2, 4]);
        assert_eq!(table.loads().len(), 2);
        assert!(!table.holds(2) && table.holds(3));
        assert_eq!(table.remove(4), None);
        assert!(table.resize(4).is_empty());
        assert_eq!(
            table.least_loaded(),
            Some(TesterId(3)),
            "new testers are idle"
        );
    }

    #[test]
    fn duplicate_and_unknown_events_cannot_drift_the_loads() {
        let mut table = LoadTable::new(2);
        assert!(table.assign(7, TesterId(1), 10));
        assert!(!table.assign(7, TesterId(2), 10), "a job is held once");
        assert_eq!(table.remove(7), Some(TesterId(1)));
        assert_eq!(table.remove(7), None, "a second completion is a no-op");
        assert_eq!(table.remove(99), None);
        assert_eq!(table.loads(), &[TesterLoad::default(); 2]);
    }

    #[test]
    fn a_testers_jobs_are_listed_in_id_order() {
        let mut table = LoadTable::new(2);
        for id in [9, 3, 5] {
            table.assign(id, TesterId(1), 1);
        }
        table.assign(4, TesterId(2), 1);
        assert_eq!(table.held_by(TesterId(1)), vec![3, 5, 9]);
        assert_eq!(table.holder(4), Some(TesterId(2)));
        assert_eq!(table.holder(8), None);
    }

    #[test]
    fn testers_outside_the_pool_are_refused() {
        let mut table = LoadTable::new(2);
        assert!(!table.assign(1, TesterId(3), 1));
        assert!(!table.assign(1, TesterId(0), 1));
        assert_eq!(LoadTable::new(0).least_loaded(), None);
    }
}
