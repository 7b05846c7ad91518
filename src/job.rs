//! The vocabulary shared by the journal, the actors and the server: job ids, tester ids, a job
//! as it travels through the pool, and its recorded result.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::number::Number;

/// Monotonic, never reused: allocated by the journal in the same atomic batch that records the job.
pub type JobId = u64;

/// 1-based index of a prime tester: tester-1 … tester-N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TesterId(pub u32);

impl TesterId {
    pub fn name(self) -> String {
        format!("tester-{}", self.0)
    }

    /// Parses `tester-K`.
    pub fn from_name(name: &str) -> Option<TesterId> {
        let k = name.strip_prefix("tester-")?.parse::<u32>().ok()?;
        (k > 0).then_some(TesterId(k))
    }
}

impl fmt::Display for TesterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tester-{}", self.0)
    }
}

/// An accepted job on its way to, or queued in, a tester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub n: Number,
    /// How many times a tester has started this job.
    pub attempts: u32,
}

/// A job still in flight, as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub job: Job,
    pub submitted_ms: u64,
}

/// How a job ended: tested, or given up on because testing it kept crashing its tester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Prime,
    Composite,
    /// A poison job: `reason` names how often and how its testers died.
    Quarantined {
        reason: String,
    },
}

impl Verdict {
    pub fn tested(prime: bool) -> Verdict {
        if prime {
            Verdict::Prime
        } else {
            Verdict::Composite
        }
    }
}

/// The recorded answer for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    pub id: JobId,
    pub n: Number,
    pub verdict: Verdict,
    pub attempts: u32,
}

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tester_names_round_trip() {
        assert_eq!(TesterId(3).name(), "tester-3");
        assert_eq!(TesterId::from_name("tester-3"), Some(TesterId(3)));
        assert_eq!(TesterId::from_name("tester-0"), None);
        assert_eq!(TesterId::from_name("tester-x"), None);
        assert_eq!(TesterId::from_name("balancer"), None);
    }
}
