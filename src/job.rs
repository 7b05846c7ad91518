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

/// What a job asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Is `n` prime?
    Test(Number),
    /// A uniformly random prime of exactly `digits` decimal digits (the book's make_prime).
    MakePrime { digits: u32 },
}

impl Task {
    /// The balancer's estimate of the work, in the units of [`Number::cost`].
    pub fn cost(&self) -> u64 {
        match self {
            Task::Test(n) => n.cost(),
            Task::MakePrime { digits } => make_prime_cost(*digits),
        }
    }

    /// What the task does, in a few words, given its [`Task::digits`] (a long number is not
    /// spelled out).
    pub fn summary(&self, digits: u64) -> String {
        match self {
            Task::Test(n) if digits <= 40 => format!("testing {n}"),
            Task::Test(_) => format!("testing a {digits}-digit number"),
            Task::MakePrime { digits } => format!("making a {digits}-digit prime"),
        }
    }

    /// How big the numbers of this task are, in decimal digits (for the big-job alarm).
    pub fn digits(&self) -> u64 {
        match self {
            Task::Test(n) => n.digits(),
            Task::MakePrime { digits } => u64::from(*digits),
        }
    }
}

/// One full test of a K-digit number, times the candidates expected to reach a full test: of
/// the ~1.15 K odd candidates a prime takes on average, trial division discards about 9 in 10.
fn make_prime_cost(digits: u32) -> u64 {
    let bits = (f64::from(digits) * std::f64::consts::LOG2_10).ceil() as u64;
    let full_tests = 1 + u64::from(digits) / 8;
    crate::number::cost_of_bits(bits).saturating_mul(full_tests)
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Test(n) => write!(f, "{n}"),
            Task::MakePrime { digits } => write!(f, "a {digits}-digit prime"),
        }
    }
}

/// An accepted job on its way to, or queued in, a tester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub task: Task,
    /// How many times a tester has started this job.
    pub attempts: u32,
}

/// A job still in flight, as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub job: Job,
    pub submitted_ms: u64,
}

/// How a job ended: tested, a prime made, given up on because it kept crashing its tester,
/// or cancelled by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Prime,
    Composite,
    /// A poison job: `reason` names how often and how its testers died.
    Quarantined {
        reason: String,
    },
    /// The prime a make-prime job found, in decimal.
    Made {
        prime: String,
    },
    Cancelled,
}

impl Verdict {
    /// Whether the job ended without the answer it was for (the client's exit code says so).
    pub fn is_unanswered(&self) -> bool {
        matches!(self, Verdict::Quarantined { .. } | Verdict::Cancelled)
    }

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
    pub task: Task,
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

    #[test]
    fn making_a_prime_costs_more_than_testing_one_of_its_size() {
        let test = Task::Test(Number::from(num_bigint::BigUint::from(10u8).pow(308)));
        let make = Task::MakePrime { digits: 309 };
        assert_eq!(make.digits(), 309);
        assert!(
            make.cost() > 10 * test.cost(),
            "{} vs {}",
            make.cost(),
            test.cost()
        );
        assert!(Task::MakePrime { digits: 2000 }.cost() > make.cost());
        assert_eq!(make.to_string(), "a 309-digit prime");
    }
}
