//! The persistent event log: supervision events (crashes, restarts, backoff, escalation,
//! quarantine, replay counts, daemon starts and stops) and alarms set and cleared, stored,
//! bounded, in the journal's data dir so that they survive the crashes they describe. `primed events` lists them; the
//! restart counters behind `primed status` live here too.
//!
//! Storing is best effort: an event that cannot be stored is logged and dropped, because the
//! event log must never be the reason a restart or a job fails.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::warn;

use crate::job::{now_ms, JobId};
use crate::journal::Journal;

/// Events a slow follower may lag behind before it misses some.
pub const LIVE_BUFFER: usize = 1024;

/// The window of the restart-rate figure in `primed status`.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

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

/// Where events go: the journal (if any) and the restart counters.
pub struct Events {
    store: Option<Arc<dyn Journal>>,
    /// Every event as it is recorded, for `primed events --follow`.
    live: broadcast::Sender<Event>,
    restarts: AtomicU64,
    recent: Mutex<VecDeque<Instant>>,
    /// Why the last supervisor that gave up did so: the root's is the daemon's exit reason.
    escalation: Mutex<Option<String>>,
}

impl Events {
    pub fn new(store: Option<Arc<dyn Journal>>) -> Arc<Events> {
        Arc::new(Events {
            store,
            live: broadcast::channel(LIVE_BUFFER).0,
            restarts: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            escalation: Mutex::new(None),
        })
    }

    /// New events from now on (a follower that falls behind by [`LIVE_BUFFER`] skips some).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    pub fn set_escalation(&self, reason: &str) {
        *self
            .escalation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_string());
    }

    pub fn escalation(&self) -> Option<String> {
        self.escalation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn record(&self, event: Event) {
        if event.kind == EventKind::Restart {
            self.count_restart(Instant::now());
        }
        // No follower is no error.
        let _ = self.live.send(event.clone());
        if let Some(store) = &self.store {
            if let Err(e) = store.record_event(&event) {
                warn!(event_kind = event.kind.name(), reason = %e, "cannot store an event");
            }
        }
    }

    fn count_restart(&self, now: Instant) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back(now);
        prune(&mut recent, now);
    }

    /// Restarts since the daemon started, and within the last [`RATE_WINDOW`].
    pub fn restarts(&self) -> (u64, u64) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        prune(&mut recent, Instant::now());
        (self.restarts.load(Ordering::Relaxed), recent.len() as u64)
    }
}

fn prune(recent: &mut VecDeque<Instant>, now: Instant) {
    while recent
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= RATE_WINDOW)
    {
        recent.pop_front();
    }
}

/// Parses a duration such as `90s`, `15m`, `2h`, `7d` or `1h30m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (use s, m, h or d)")),
        };
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before {c:?}"))?;
        digits.clear();
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "{text:?}: a unit must follow {digits} (s, m, h or d)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `2026-11-25T10:04:05.123Z` for milliseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_junk() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "m", "10x", "5m3", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(1_795_601_045_123),
            "2026-11-25T10:04:05.123Z"
        );
    }

    #[test]
    fn the_restart_rate_counts_only_the_recent_window() {
        let events = Events::new(None);
        let now = Instant::now();
        events.count_restart(now);
        events.count_restart(now);
        assert_eq!(events.restarts(), (2, 2));
        let mut recent = events.recent.lock().unwrap();
        prune(&mut recent, now + RATE_WINDOW);
        assert!(recent.is_empty());
    }
}
