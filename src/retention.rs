//! The retention policy: how long, and how many, finished jobs are kept before they are pruned.
//! Pure rules; the journal applies them in small background passes (`Journal::prune`).
//!
//! Jobs are pruned oldest id first, so that what goes is what was written first (the sled
//! journal then drops whole trees of old ids, etcd's compaction whole revisions). A pass walks from
//! the prune floor up: a finished job goes once it is past its period, or at once while more
//! finished jobs are kept than `max_kept` allows; a job that must stay (in flight, or
//! quarantined or cancelled and still within `failures`) is stepped past and kept apart, and
//! looked at again by later passes; the first answer still within its period ends the pass.

use std::fmt;
use std::time::Duration;

use crate::job::Verdict;

/// How long and how many finished jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Answered jobs (prime, composite, a prime made) are kept this long after they finish.
    pub answers: Duration,
    /// Quarantined and cancelled jobs are kept this long (at least `answers`): their
    /// post-mortem is wanted longer.
    pub failures: Duration,
    /// At most this many finished jobs are kept, whatever their age: this bounds the disk at
    /// any rate of work.
    pub max_kept: u64,
}

impl Retention {
    /// The embedded default: a day of answers, a week of failures, at most a million.
    pub const DEFAULT: Retention = Retention {
        answers: Duration::from_secs(24 * 3600),
        failures: Duration::from_secs(7 * 24 * 3600),
        max_kept: 1_000_000,
    };

    /// Checks the policy makes sense; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_kept == 0 {
            return Err("retention.max_kept must be at least 1".into());
        }
        if self.answers.is_zero() {
            return Err("retention.answers_secs must be a positive number of seconds".into());
        }
        if self.failures < self.answers {
            return Err(format!(
                "retention.failures_secs ({}s) must not be shorter than retention.answers_secs \
                 ({}s): quarantined and cancelled jobs are kept at least as long as answers",
                self.failures.as_secs_f64(),
                self.answers.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// How many finished jobs pruning by count leaves: a thirty-second below `max_kept`, so
    /// that the jobs finishing between two passes (100 ms apart while pruning) do not take the
    /// count past `max_kept` at any rate below `max_kept / 32` jobs per 100 ms (312,500 jobs/s
    /// for the default).
    pub fn count_target(&self) -> u64 {
        self.max_kept - self.max_kept / 32
    }

    /// How long a job that ended with `verdict` is kept.
    pub fn period(&self, verdict: &Verdict) -> Duration {
        match verdict {
            Verdict::Quarantined { .. } | Verdict::Cancelled => self.failures,
            Verdict::Prime | Verdict::Composite | Verdict::Made { .. } => self.answers,
        }
    }

    /// Whether a job that finished at `finished_ms` with `verdict` is past its period at
    /// `now_ms`.
    pub fn expired(&self, verdict: &Verdict, finished_ms: u64, now_ms: u64) -> bool {
        let age = Duration::from_millis(now_ms.saturating_sub(finished_ms));
        age >= self.period(verdict)
    }

    /// What a pruning pass does with a finished job at its front, given whether more finished
    /// jobs are kept than `max_kept` allows.
    pub fn fate(&self, verdict: &Verdict, finished_ms: u64, now_ms: u64, over: bool) -> Fate {
        if over || self.expired(verdict, finished_ms, now_ms) {
            Fate::Prune
        } else if self.period(verdict) > self.answers {
            // A failure kept longer than the answers after it: those may still go.
            Fate::KeepApart
        } else {
            // An answer still within its period: the ones after it finished later.
            Fate::Stop
        }
    }
}

impl Retention {
    /// What a pruning pass does with a job still in flight at its front: it is never pruned;
    /// it is stepped past (kept apart) only if the finished jobs after it may have to go,
    /// because too many are kept or because it has been in flight longer than answers are
    /// kept (it is stuck, and those after it may be past their period). Otherwise the pass
    /// stops: all after it is younger.
    pub fn fate_unfinished(&self, submitted_ms: u64, now_ms: u64, over: bool) -> Fate {
        let age = Duration::from_millis(now_ms.saturating_sub(submitted_ms));
        if over || age >= self.answers {
            Fate::KeepApart
        } else {
            Fate::Stop
        }
    }
}

/// What a pruning pass does with a job, oldest id first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delete its record: it is answered "pruned" from now on.
    Prune,
    /// Step past it and keep it (in flight, or a failure kept longer): it is looked at again by
    /// later passes.
    KeepApart,
    /// Stop here for now: everything after it is younger.
    Stop,
}

impl fmt::Display for Retention {
    /// As an answer for a pruned id cites it: "answers are kept 24h / the newest 1,000,000".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "answers are kept {}, quarantined and cancelled jobs {}, and at most the newest {} \
             finished jobs",
            humantime::format_duration(self.answers),
            humantime::format_duration(self.failures),
            self.max_kept
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn pruning_by_count_leaves_room_below_max_kept() {
        assert_eq!(Retention::DEFAULT.count_target(), 968_750);
        let tiny = |max_kept| Retention {
            max_kept,
            ..Retention::DEFAULT
        };
        assert_eq!(tiny(1).count_target(), 1, "never below one");
        assert_eq!(tiny(100).count_target(), 97);
    }

    #[test]
    fn answers_go_after_their_period_and_failures_after_theirs() {
        let policy = Retention::DEFAULT;
        let now = 30 * 24 * HOUR_MS;
        let answered = now - 25 * HOUR_MS;
        assert_eq!(
            policy.fate(&Verdict::Prime, answered, now, false),
            Fate::Prune
        );
        assert_eq!(
            policy.fate(&Verdict::Cancelled, answered, now, false),
            Fate::KeepApart
        );
        assert_eq!(
            policy.fate(&Verdict::Cancelled, now - 8 * 24 * HOUR_MS, now, false),
            Fate::Prune
        );
        assert_eq!(
            policy.fate(&Verdict::Composite, now - HOUR_MS, now, false),
            Fate::Stop
        );
    }

    #[test]
    fn over_the_count_anything_finished_goes_whatever_its_age() {
        let policy = Retention::DEFAULT;
        let now = 1_000 * HOUR_MS;
        let quarantined = Verdict::Quarantined { reason: "x".into() };
        assert_eq!(policy.fate(&Verdict::Prime, now, now, true), Fate::Prune);
        assert_eq!(policy.fate(&quarantined, now, now, true), Fate::Prune);
    }

    #[test]
    fn a_job_in_flight_is_stepped_past_only_if_what_follows_may_have_to_go() {
        let policy = Retention::DEFAULT;
        let now = 1_000 * HOUR_MS;
        assert_eq!(
            policy.fate_unfinished(now - HOUR_MS, now, false),
            Fate::Stop
        );
        assert_eq!(
            policy.fate_unfinished(now - HOUR_MS, now, true),
            Fate::KeepApart
        );
        assert_eq!(
            policy.fate_unfinished(now - 25 * HOUR_MS, now, false),
            Fate::KeepApart
        );
    }

    #[test]
    fn a_policy_that_makes_no_sense_is_refused_naming_the_key() {
        let none_kept = Retention {
            max_kept: 0,
            ..Retention::DEFAULT
        };
        assert!(none_kept
            .validate()
            .unwrap_err()
            .contains("retention.max_kept"));
        let backwards = Retention {
            failures: Duration::from_secs(1),
            ..Retention::DEFAULT
        };
        assert!(backwards
            .validate()
            .unwrap_err()
            .contains("retention.failures_secs"));
        let instant = Retention {
            answers: Duration::ZERO,
            ..Retention::DEFAULT
        };
        assert!(instant
            .validate()
            .unwrap_err()
            .contains("retention.answers_secs"));
        assert!(Retention::DEFAULT.validate().is_ok());
    }

    #[test]
    fn the_policy_reads_as_a_pruned_answer_cites_it() {
        let text = Retention::DEFAULT.to_string();
        assert!(
            text.contains("1day") && text.contains("7days") && text.contains("1000000"),
            "{text}"
        );
    }
}
