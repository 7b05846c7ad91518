//! Counters that must outlive the actors they describe (a restarted tester is a new actor, but
//! its restart and completion counts belong to the name). Shared by supervisors and testers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ActorStats {
    pub starts: u64,
    pub completed: u64,
}

impl ActorStats {
    pub fn restarts(&self) -> u64 {
        self.starts.saturating_sub(1)
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    actors: Mutex<HashMap<String, ActorStats>>,
}

impl Stats {
    fn update<R>(&self, name: &str, f: impl FnOnce(&mut ActorStats) -> R) -> R {
        let mut actors = self.actors.lock().unwrap_or_else(PoisonError::into_inner);
        f(actors.entry(name.to_string()).or_default())
    }

    /// Counts a start of `name`; returns how many restarts that makes.
    pub fn record_start(&self, name: &str) -> u64 {
        self.update(name, |s| {
            s.starts += 1;
            s.restarts()
        })
    }

    pub fn record_completed(&self, name: &str) {
        self.update(name, |s| s.completed += 1);
    }

    pub fn get(&self, name: &str) -> ActorStats {
        let actors = self.actors.lock().unwrap_or_else(PoisonError::into_inner);
        actors.get(name).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_starts_after_the_first() {
        let stats = Stats::default();
        assert_eq!(stats.record_start("tester-1"), 0);
        assert_eq!(stats.record_start("tester-1"), 1);
        stats.record_completed("tester-1");
        assert_eq!(
            stats.get("tester-1"),
            ActorStats {
                starts: 2,
                completed: 1
            }
        );
        assert_eq!(stats.get("tester-2").restarts(), 0);
    }
}
