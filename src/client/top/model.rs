//! What `primed top` shows, as plain data: the latest status, the rates derived from successive
//! statuses, the active alarms and the state of the link to the daemon. No I/O here, so the
//! view can be tested from hand-built models.

use std::collections::VecDeque;
use std::time::Instant;

use crate::protocol::StatusReport;

/// Samples kept per history: two minutes at one poll a second.
pub const HISTORY: usize = 120;

/// The state of the link to the daemon, shown in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Up,
    /// The daemon could not be asked; the reason is shown while top keeps retrying.
    Down(String),
}

/// The counters of the previous sample, from which the next one's rates are derived.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    completed: u64,
    restarts: u64,
    at: Instant,
}

#[derive(Debug)]
pub struct TopModel {
    /// The last status received; kept while the daemon is unreachable so the view goes stale
    /// rather than blank.
    status: Option<StatusReport>,
    baseline: Option<Baseline>,
    /// Jobs completed per second, oldest first.
    throughput: VecDeque<f64>,
    /// Restarts per second, oldest first.
    restart_rate: VecDeque<f64>,
    /// One line per active alarm.
    alarms: Vec<String>,
    link: Link,
}

impl Default for TopModel {
    fn default() -> Self {
        TopModel::new()
    }
}

impl TopModel {
    pub fn new() -> TopModel {
        TopModel {
            status: None,
            baseline: None,
            throughput: VecDeque::with_capacity(HISTORY),
            restart_rate: VecDeque::with_capacity(HISTORY),
            alarms: Vec::new(),
            link: Link::Connecting,
        }
    }

    /// Takes in a status polled at `at`, and records the rates since the previous one.
    pub fn update(&mut self, report: StatusReport, at: Instant) {
        if let Some(prev) = self.baseline {
            let secs = at.saturating_duration_since(prev.at).as_secs_f64();
            // Two samples at the same instant say nothing about a rate.
            if secs > 0.0 {
                let per_sec = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
                push(
                    &mut self.throughput,
                    per_sec(report.completed, prev.completed),
                );
                push(
                    &mut self.restart_rate,
                    per_sec(report.restarts, prev.restarts),
                );
            }
        }
        self.baseline = Some(Baseline {
            completed: report.completed,
            restarts: report.restarts,
            at,
        });
        self.status = Some(report);
        self.link = Link::Up;
    }

    pub fn set_alarms(&mut self, alarms: Vec<String>) {
        self.alarms = alarms;
    }

    /// The daemon could not be asked. The next daemon's counters start again from zero, so
    /// the baseline is dropped: a rate across a restart would be meaningless.
    pub fn disconnected(&mut self, reason: String) {
        self.baseline = None;
        self.link = Link::Down(reason);
    }

    pub fn status(&self) -> Option<&StatusReport> {
        self.status.as_ref()
    }

    pub fn throughput(&self) -> &VecDeque<f64> {
        &self.throughput
    }

    pub fn restart_rate(&self) -> &VecDeque<f64> {
        &self.restart_rate
    }

    pub fn alarms(&self) -> &[String] {
        &self.alarms
    }

    pub fn link(&self) -> &Link {
        &self.link
    }
}

fn push(history: &mut VecDeque<f64>, value: f64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value);
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::{BalancerStatus, TesterStatus};

    pub fn tester(name: &str, queued: u64, load: u64) -> TesterStatus {
        TesterStatus {
            name: name.to_string(),
            queued,
            load,
            restarts: 0,
            completed: 0,
        }
    }

    pub fn report(completed: u64, restarts: u64, testers: Vec<TesterStatus>) -> StatusReport {
        StatusReport {
            role: crate::protocol::DaemonRole::Leader,
            leader: None,
            testers,
            balancer: BalancerStatus {
                restarts: 0,
                available: true,
            },
            in_flight: 0,
            completed,
            retention: Default::default(),
            restarts,
            restarts_last_minute: 0,
        }
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let mut model = TopModel::new();
        let t0 = Instant::now();
        model.update(report(100, 1, vec![]), t0);
        assert!(model.throughput().is_empty(), "one sample has no rate");
        model.update(report(130, 5, vec![]), t0 + Duration::from_secs(2));
        assert_eq!(model.throughput().back(), Some(&15.0));
        assert_eq!(model.restart_rate().back(), Some(&2.0));
    }

    #[test]
    fn history_is_bounded() {
        let mut model = TopModel::new();
        let t0 = Instant::now();
        for i in 0..(HISTORY as u64 + 10) {
            model.update(report(i * 3, 0, vec![]), t0 + Duration::from_secs(i));
        }
        assert_eq!(model.throughput().len(), HISTORY);
        assert_eq!(model.throughput().back(), Some(&3.0));
    }

    #[test]
    fn no_rate_across_a_disconnection() {
        let mut model = TopModel::new();
        let t0 = Instant::now();
        model.update(report(500, 0, vec![]), t0);
        model.disconnected("gone".into());
        assert_eq!(model.link(), &Link::Down("gone".into()));
        assert!(model.status().is_some(), "the last status stays on screen");
        // A restarted daemon counts from zero: no rate from 500 down to 10.
        model.update(report(10, 0, vec![]), t0 + Duration::from_secs(1));
        assert!(model.throughput().is_empty());
        assert_eq!(model.link(), &Link::Up);
    }

    #[test]
    fn a_counter_going_backwards_is_no_negative_rate() {
        let mut model = TopModel::new();
        let t0 = Instant::now();
        model.update(report(50, 0, vec![]), t0);
        model.update(report(40, 0, vec![]), t0 + Duration::from_secs(1));
        assert_eq!(model.throughput().back(), Some(&0.0));
    }
}
