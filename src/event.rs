//! One supervision event, as stored in the event log and sent to clients: what happened, to
//! which actor, with the fields that apply to its kind. Plain data, shared by the journal that
//! stores events and the event log that records them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::{now_ms, JobId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The daemon started (after replaying `jobs` in flight).
    DaemonStart,
    /// The daemon stopped cleanly.
    DaemonStop,
    /// The root supervisor gave up: the daemon exits non-zero.
    GaveUp,
    Crash,
    Restart,
    /// A restart postponed by backoff for `delay_ms`.
    Backoff,
    StartFailed,
    Escalate,
    /// A crash blamed on the job its tester was running.
    Poison,
    Quarantine,
    Replay,
    /// An alarm was raised (`alarm` names it, `actor` is what it is about).
    AlarmSet,
    AlarmClear,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::DaemonStart => "daemon_start",
            EventKind::DaemonStop => "daemon_stop",
            EventKind::GaveUp => "gave_up",
            EventKind::Crash => "crash",
            EventKind::Restart => "restart",
            EventKind::Backoff => "backoff",
            EventKind::StartFailed => "start_failed",
            EventKind::Escalate => "escalate",
            EventKind::Poison => "poison",
            EventKind::Quarantine => "quarantine",
            EventKind::Replay => "replay",
            EventKind::AlarmSet => "alarm_set",
            EventKind::AlarmClear => "alarm_clear",
        }
    }
}

/// One stored event. Fields that do not apply to a kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub kind: EventKind,
    pub actor: String,
    pub supervisor: Option<String>,
    pub reason: Option<String>,
    pub job: Option<JobId>,
    pub attempt: Option<u32>,
    pub delay_ms: Option<u64>,
    /// Restarts of `actor` so far (restart) or jobs replayed (replay, daemon_start).
    pub count: Option<u64>,
    /// The alarm set or cleared (alarm events only).
    pub alarm: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind, actor: impl Into<String>) -> Event {
        Event {
            at_ms: now_ms(),
            kind,
            actor: actor.into(),
            supervisor: None,
            reason: None,
            job: None,
            attempt: None,
            delay_ms: None,
            count: None,
            alarm: None,
        }
    }

    pub fn supervisor(mut self, supervisor: &str) -> Event {
        self.supervisor = Some(supervisor.to_string());
        self
    }

    pub fn reason(mut self, reason: impl ToString) -> Event {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn job(mut self, job: JobId, attempt: u32) -> Event {
        self.job = Some(job);
        self.attempt = Some(attempt);
        self
    }

    pub fn delay(mut self, delay: Duration) -> Event {
        self.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    pub fn alarm(mut self, alarm: &str) -> Event {
        self.alarm = Some(alarm.to_string());
        self
    }

    pub fn count(mut self, count: u64) -> Event {
        self.count = Some(count);
        self
    }
}
