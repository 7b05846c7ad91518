//! Restart intensity, as OTP defines it: a supervisor that has to restart children more than
//! `max_restarts` times within `period` gives up and exits, escalating to its own supervisor.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub period: Duration,
}

/// The restarts a supervisor made recently, oldest first.
#[derive(Debug, Clone)]
pub struct RestartLog {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartLog {
    pub fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; false if it exceeds the intensity (the supervisor must give up).
    pub fn record(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) < self.intensity.period {
                break;
            }
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.intensity.max_restarts as usize
    }

    pub fn intensity(&self) -> Intensity {
        self.intensity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max_restarts: u32, secs: u64) -> RestartLog {
        RestartLog::new(Intensity {
            max_restarts,
            period: Duration::from_secs(secs),
        })
    }

    #[test]
    fn more_than_max_restarts_within_the_period_is_exceeded() {
        let start = Instant::now();
        let mut restarts = log(3, 5);
        for i in 0..3 {
            assert!(
                restarts.record(start + Duration::from_secs(i)),
                "restart {i}"
            );
        }
        assert!(!restarts.record(start + Duration::from_secs(3)));
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let start = Instant::now();
        let mut restarts = log(1, 5);
        assert!(restarts.record(start));
        assert!(restarts.record(start + Duration::from_secs(5)));
        assert!(restarts.record(start + Duration::from_secs(10)));
        assert!(!restarts.record(start + Duration::from_secs(11)));
    }

    #[test]
    fn zero_max_restarts_never_restarts() {
        assert!(!log(0, 5).record(Instant::now()));
    }
}
