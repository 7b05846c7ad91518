//! Restart backoff: a child that keeps exiting is restarted after an exponentially growing
//! delay, capped, so a restart storm sleeps instead of burning CPU. The first restart after a
//! clean run is immediate; the count starts over once the child has run for `reset_after`.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay before the second restart in a row (the first is immediate).
    pub initial: Duration,
    pub max: Duration,
    /// A child that ran this long since its last start has its count reset.
    pub reset_after: Duration,
}

impl BackoffPolicy {
    /// No delays at all.
    pub const NONE: BackoffPolicy = BackoffPolicy {
        initial: Duration::ZERO,
        max: Duration::ZERO,
        reset_after: Duration::ZERO,
    };
}

/// One child's backoff state.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    consecutive: u32,
    started: Option<Instant>,
}

impl Backoff {
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The delay before restarting a child that exited (or failed to start) at `now`.
    pub fn next_delay(&mut self, policy: &BackoffPolicy, now: Instant) -> Duration {
        // The run ends here: restarts that fail before the next start keep counting.
        let ran_cleanly = self
            .started
            .take()
            .is_some_and(|s| now.saturating_duration_since(s) >= policy.reset_after);
        if ran_cleanly {
            self.consecutive = 0;
        }
        let delay = match self.consecutive {
            0 => Duration::ZERO,
            n => {
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                policy.initial.saturating_mul(factor).min(policy.max)
            }
        };
        self.consecutive = self.consecutive.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
        reset_after: Duration::from_secs(5),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let (mut backoff, now) = (Backoff::default(), Instant::now());
        let delays: Vec<_> = (0..7).map(|_| backoff.next_delay(&POLICY, now)).collect();
        assert_eq!(
            delays,
            [ms(0), ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]
        );
    }

    #[test]
    fn a_clean_run_resets_the_count_but_a_short_one_does_not() {
        let (mut backoff, start) = (Backoff::default(), Instant::now());
        backoff.started(start);
        backoff.next_delay(&POLICY, start + ms(1));
        backoff.started(start + ms(1));
        assert_eq!(backoff.next_delay(&POLICY, start + ms(2)), ms(10));
        backoff.started(start + ms(2));
        let later = start + Duration::from_secs(6);
        assert_eq!(backoff.next_delay(&POLICY, later), ms(0));
        // Failed starts in a row (no start in between) back off, however long ago it ran.
        assert_eq!(backoff.next_delay(&POLICY, later), ms(10));
        assert_eq!(backoff.next_delay(&POLICY, later), ms(20));
    }

    #[test]
    fn huge_counts_saturate_at_the_cap() {
        let mut backoff = Backoff {
            consecutive: 200,
            started: None,
        };
        assert_eq!(backoff.next_delay(&POLICY, Instant::now()), POLICY.max);
    }
}
